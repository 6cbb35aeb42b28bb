"""archcalc import over a zoo: every torchvision classification model, and GPT-2, BERT and a
Llama decoder built from transformers' configs (offline, nothing downloaded).

For each model: import it (torch.fx on the meta device), compare the spec's parameters, MACs and
output shapes with PyTorch's (parameters(), FlopCounterMode, the traced outputs), and, for
models up to --values-below parameters, build it on the CPU with its random weights, copy them
into the spec's model and compare the outputs (largest difference, absolute and relative to the
largest output, both below 1e-4). Reports the time per import, the spec's lines and blocks, and
what stops the models that do not import.

Needs torchvision (and transformers for the language models), which archcalc does not:

    PYTHONPATH=. /work/refvenv/bin/python scripts/import_zoo.py -o benchmarks/results/import_zoo.md [names...]
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_check import import_torchvision  # noqa: E402

import archcalc  # noqa: E402
from archcalc.backend.importer import compare_outputs, import_model  # noqa: E402
from archcalc.errors import ArchcalcError  # noqa: E402
from archcalc.layers.shapes import FeatureMap, Steps  # noqa: E402

TOLERANCE = 1e-4
# keyword arguments a model needs to import as it runs at inference: the auxiliary classifiers
# of GoogLeNet and Inception v3 are built by default, but forward runs them only while training
ARGUMENTS = {"googlenet": {"aux_logits": False}, "inception_v3": {"aux_logits": False}}
INPUTS = {"inception_v3": (3, 299, 299)}


def language_models() -> dict:
    """name -> (factory, token inputs, the shipped spec of the same model) for transformers' GPT-2,
    BERT (input_ids and token_type_ids) and TinyLlama's Llama, from configs, at the shipped specs'
    lengths: 1024, 512 and 2048 tokens."""
    from zoo_check import import_transformers

    transformers = import_transformers()
    if transformers is None:
        return {}
    gpt2 = transformers.GPT2Config()
    bert = transformers.BertConfig()
    llama = transformers.LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                                     num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                                     rms_norm_eps=1e-5)

    def built(cls, config):
        def factory():
            return cls(config)
        factory.__name__ = cls.__name__
        return factory

    return {"gpt2 (GPT2LMHeadModel, GPT2Config())": (built(transformers.GPT2LMHeadModel, gpt2), [1024], "gpt2"),
            "bert-base (BertModel, BertConfig())": (built(transformers.BertModel, bert), [512, 512], "bert_base"),
            "llama (LlamaForCausalLM, TinyLlama-1.1B's config)": (built(transformers.LlamaForCausalLM, llama), [2048],
                                                                  "tinyllama")}


class Registry:
    """The language models' factories, which import_model reaches as 'import_zoo_models:<name>'."""


def one(name: str, target: str, factory, shapes: list, arguments: dict, values_below: int) -> dict:
    row = {"name": name}
    started = time.perf_counter()
    try:
        imported = import_model(target, shapes, json.dumps(arguments) if arguments else None,
                                name=name.split(" ")[0])
    except ArchcalcError as exc:
        row.update(seconds=time.perf_counter() - started, status="refused", reason=_reason(exc))
        row["opaque"] = kept_opaque(target, shapes, arguments, name)
        return row
    except Exception as exc:  # noqa: BLE001 - a bug: reported, the zoo goes on
        row.update(seconds=time.perf_counter() - started, status="crashed",
                   reason=f"{type(exc).__name__}: {exc} ({traceback.extract_tb(exc.__traceback__)[-1].name})")
        return row
    row.update(seconds=time.perf_counter() - started, params=imported.source.params, spec_params=imported.spec.params,
               macs=imported.source.macs, spec_macs=imported.spec.macs, lines=imported.lines,
               blocks=imported.written.blocks, repeats=imported.written.repeats, exact=imported.exact,
               layers=len(imported.analysis.layers))
    row["status"] = "exact" if imported.exact else "differs"
    if imported.exact and imported.source.params <= values_below:
        try:
            torch.manual_seed(0)
            source = factory(**arguments).eval()
            difference, largest = compare_outputs(imported, source)
            row["difference"] = (difference, largest)
            if not (difference < TOLERANCE and difference <= TOLERANCE * largest):
                row["status"] = "values differ"
        except Exception as exc:  # noqa: BLE001
            row["status"] = "values failed"
            row["reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        finally:
            gc.collect()
    return row


def kept_opaque(target: str, shapes: list, arguments: dict, name: str) -> str:
    """What ``--allow-opaque`` makes of a refused model: its opaque layers and the MACs counted."""
    try:
        imported = import_model(target, shapes, json.dumps(arguments) if arguments else None, allow_opaque=True,
                                name=name.split(" ")[0])
    except ArchcalcError as exc:
        return f"refused too: {_reason(exc)[:200]}"
    source, spec = imported.source, imported.spec
    params = "params exact" if spec.params == source.params else f"params {spec.params:,} vs {source.params:,}"
    macs = f"{spec.macs:,} of {source.macs:,} MACs counted" if source.macs else "MACs not counted"
    return (f"{len(imported.opaque)} opaque of {len(imported.analysis.layers)} layers, {params}, {macs}, "
            f"{imported.lines} lines")


def _reason(exc: ArchcalcError) -> str:
    lines = str(exc).splitlines()
    return " / ".join(line.strip() for line in lines[:6] if not line.strip().startswith("hint:"))


def table(rows: list) -> list:
    lines = ["| model | result | params | MACs | layers | spec lines | blocks | seconds | outputs, weights copied |",
             "|---|---|---:|---:|---:|---:|---|---:|---|"]
    for row in rows:
        if row["status"] in ("refused", "crashed"):
            opaque = f" With --allow-opaque: {row['opaque']}." if row.get("opaque") else ""
            lines.append(f"| {row['name']} | {row['status']} | | | | | | {row['seconds']:.1f} | "
                         f"{row['reason']}{opaque} |")
            continue
        blocks = ", ".join(f"{k} x{v}" for k, v in row["blocks"].items()) or "none"
        if row["repeats"]:
            blocks += f"; {row['repeats']} repeats"
        difference = row.get("difference")
        compared = f"{difference[0]:.1e} of {difference[1]:.2g}" if difference else row.get("reason", "not run (size)")
        if difference and difference[1] == 0:
            compared = "every output 0 (the head starts at 0): not compared"
        macs = f"{row['spec_macs']:,}" if row["spec_macs"] == row["macs"] else f"{row['spec_macs']} vs {row['macs']}"
        params = f"{row['spec_params']:,}" if row["spec_params"] == row["params"] else \
            f"{row['spec_params']:,} vs {row['params']:,}"
        lines.append(f"| {row['name']} | {row['status']} | {params} | {macs} | {row['layers']} | {row['lines']} | "
                     f"{blocks} | {row['seconds']:.1f} | {compared} |")
    return lines


def against_shipped(rows: list, shipped: dict) -> list:
    """Per language model: the import's parameters and MACs (PyTorch's, where exact) against the
    shipped spec's, analyzed at its own params."""
    lines = []
    for row in rows:
        spec = f"specs/{shipped[row['name']]}.yaml"
        totals = archcalc.analyze(archcalc.load(spec)).totals
        if row["status"] not in ("exact", "values differ", "values failed"):
            lines.append(f"- {row['name']}: {row['status']}, not compared with {spec}")
            continue
        same = (row["spec_params"], row["spec_macs"]) == (totals.params, totals.macs)
        lines.append(f"- {row['name']}: {row['spec_params']:,} parameters, {row['spec_macs']:,} MACs: "
                     + (f"equal to {spec}'s" if same else f"{spec} has {totals.params:,} and {totals.macs:,}"))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="only these models")
    parser.add_argument("-o", "--output", help="write the markdown results here")
    parser.add_argument("--values-below", type=int, default=150_000_000,
                        help="compare outputs for models with at most this many parameters (default 150M)")
    options = parser.parse_args()
    torchvision = import_torchvision()
    zoo = {name: (f"torchvision.models:{name}", getattr(torchvision.models, name),
                  [FeatureMap(INPUTS.get(name, (3, 224, 224)))], ARGUMENTS.get(name, {}))
           for name in torchvision.models.list_models(module=torchvision.models)}
    vision = set(zoo)
    sys.modules["import_zoo_models"] = Registry  # type: ignore[assignment]
    shipped = {}
    for name, (factory, lengths, spec) in language_models().items():
        key = name.split(" ")[0].replace("-", "_")
        setattr(Registry, key, staticmethod(factory))
        zoo[name] = (f"import_zoo_models:{key}", factory, [Steps((steps,)) for steps in lengths], {})
        shipped[name] = spec
    names = [n for n in zoo if not options.names or n.split(" ")[0] in options.names or n in options.names]
    rows = []
    for name in names:
        target, factory, shapes, arguments = zoo[name]
        row = one(name, target, factory, shapes, arguments, options.values_below)
        rows.append(row)
        print(f"{name}: {row['status']} {row['seconds']:.1f}s {row.get('lines', '')} lines "
              f"{row.get('difference', '')} {row.get('reason', '')[:300]}", flush=True)
    exact = [r for r in rows if r["status"] == "exact" and r["name"] in vision]
    vision_rows = [r for r in rows if r["name"] in vision]
    summary = [f"torchvision classification models: {len(exact)} of {len(vision_rows)} import exactly "
               f"({100 * len(exact) / max(len(vision_rows), 1):.0f}%)"]
    print(summary[0])
    against = against_shipped([row for row in rows if row["name"] in shipped], shipped)
    print("\n".join(against))
    if options.output:
        text = ["# archcalc import over torchvision's classification models and transformers' decoders", "",
                f"`scripts/import_zoo.py` with archcalc {archcalc.__version__}, torch {torch.__version__}, "
                f"torchvision {torchvision.__version__}, Python {platform.python_version()}, {platform.machine()} "
                f"({platform.processor() or 'CPU'}); models built on the meta device, traced at 3x224x224 "
                f"(Inception v3 at 3x299x299; the language models at their shipped specs' lengths, GPT-2 1024, BERT 512 (input_ids and token_type_ids), Llama 2048 tokens).", "",
                "**Exact** means the imported spec's parameters equal the model's `parameters()`, its MACs "
                "PyTorch's `FlopCounterMode` count (FLOPs / 2) and its output shapes the traced ones; for models up "
                f"to {options.values_below:,} parameters the model is then built on the CPU with its random "
                "weights, they are copied into the spec's model (`archcalc.backend.importer.output_difference`) and "
                "the outputs compared on one random batch of 2: largest difference, and the largest output it is "
                "relative to. Seconds: the whole import (build on meta, trace, map, write, read back, analyze), on a "
                "shared machine.", "", f"**{summary[0]}.**", "", *table(rows), "",
                "## transformers' models against the shipped specs", "",
                "Built from their configs (transformers, offline), imported by `archcalc import` (torch.fx, "
                "transformers' attention, norm, Conv1D and GELU modules kept whole: archcalc/backend/importer/hf.py), "
                "at the shipped specs' lengths; the specs' numbers are `archcalc inspect`'s.", "", *against, ""]
        Path(options.output).write_text("\n".join(text))
    return 0 if len(exact) >= 0.9 * len(vision_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
