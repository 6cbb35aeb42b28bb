"""archcalc's KV cache (inspect --kv-cache) against the cache transformers actually fills.

For each case it builds the Hugging Face model from a config (offline, random weights, never a
download) with the spec's key/value geometry (layers, key/value heads, head_dim), runs one
forward pass over ``context`` tokens for ``batch`` sequences with ``use_cache=True``, and sums
the bytes of every key and value tensor of the DynamicCache it returns. The model's other
widths (vocabulary, MLP) are shrunk to keep the run short: the cache does not depend on them.
archcalc's figure is that of the shipped spec, at the same context, batch and dtype. The two
must be equal, byte for byte.

Needs transformers (archcalc does not; not run in CI):

    PYTHONPATH=. /work/refvenv/bin/python scripts/kv_cache_check.py [-o benchmarks/results/kv_cache_check.md]

Exit status 1 when any case disagrees.
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import archcalc
from archcalc.analysis.sequence import sequence_figures

ROOT = Path(__file__).resolve().parent.parent

# (spec, context, batch, dtype)
CASES = [
    ("tinyllama", 2048, 1, "float16"),
    ("tinyllama", 1000, 3, "float32"),
    ("gpt2", 1024, 1, "float16"),
    ("gpt2", 256, 3, "float32"),
]


def transformers_module():
    """transformers, kept off torchvision: it imports torchvision for images when PIL is
    there, and a torchvision built for another torch fails to load its operators."""
    sys.modules.setdefault("PIL", None)  # type: ignore[arg-type]
    import transformers

    return transformers


def reference_model(spec: str):
    """The reference architecture with the spec's cache geometry, small everywhere else."""
    transformers = transformers_module()
    if spec == "tinyllama":  # 22 layers, 32 heads sharing 4 key/value heads of 64 (TinyLlama-1.1B)
        config = transformers.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=16, head_dim=64,
                                          num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                                          max_position_embeddings=4096)
        return transformers.LlamaForCausalLM(config)
    if spec == "gpt2":  # 12 layers of 12 heads of 64 (GPT-2 small)
        config = transformers.GPT2Config(vocab_size=64, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                                         n_inner=16, bos_token_id=0, eos_token_id=0)
        return transformers.GPT2LMHeadModel(config)
    raise ValueError(spec)


def reference_bytes(spec: str, context: int, batch: int, dtype: str) -> int:
    """Bytes of every key and value tensor transformers caches for ``batch`` x ``context`` tokens."""
    import torch

    model = reference_model(spec).to(getattr(torch, dtype)).eval()
    with torch.no_grad():
        output = model(torch.zeros((batch, context), dtype=torch.long), use_cache=True)
    cache = output.past_key_values
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)


def archcalc_bytes(spec: str, context: int, batch: int, dtype: str) -> int:
    analysis = archcalc.analyze(archcalc.load(str(ROOT / "specs" / f"{spec}.yaml")), batch=batch, dtype=dtype)
    figures = sequence_figures(analysis, context)
    assert figures is not None and figures.kv_cache is not None
    return figures.kv_cache.total_bytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, help="also write the results as markdown")
    args = parser.parse_args()
    transformers = transformers_module()
    import torch

    rows, failed = [], False
    for spec, context, batch, dtype in CASES:
        ours, theirs = archcalc_bytes(spec, context, batch, dtype), reference_bytes(spec, context, batch, dtype)
        verdict = "equal" if ours == theirs else "DIFFERENT"
        failed |= ours != theirs
        rows.append(f"| {spec} | {context:,} | {batch} | {dtype} | {ours:,} | {theirs:,} | {verdict} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "# KV cache: archcalc against transformers' DynamicCache",
        "",
        f"`scripts/kv_cache_check.py`, transformers {transformers.__version__}, torch {torch.__version__}, "
        f"Python {platform.python_version()}. archcalc: `inspect SPEC --kv-cache CONTEXT --batch B --dtype D` "
        "(2 x layers x kv_heads x head_dim x context x batch x dtype bytes); transformers: the bytes of every "
        "key and value tensor its cache holds after one forward pass over the context.",
        "",
        "| spec | context | batch | dtype | archcalc (B) | transformers (B) | |",
        "|---|---:|---:|---|---:|---:|---|",
        *rows, ""])
    if args.output:
        args.output.write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
