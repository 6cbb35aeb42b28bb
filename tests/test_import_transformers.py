"""archcalc import of Hugging Face transformers' GPT-2, BERT and Llama (importer/hf.py).

Skipped where transformers is not installed (CI does not install it; scripts/import_zoo.py runs
the full-size models: benchmarks/results/import_zoo.md). Each model is built from a small config
and imported; its numbers must be PyTorch's (parameters(), FlopCounterMode, the traced shapes),
equal the shipped spec's (specs/gpt2.yaml, bert_base.yaml, tinyllama.yaml) at the same config
through their params:, and, with its weights copied in, give the model's outputs.
"""
import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import archcalc  # noqa: E402
from archcalc.layers.shapes import Steps  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.fixture(scope="module")
def transformers():
    """transformers without its vision side: with PIL absent it imports no torchvision."""
    saved = sys.modules.get("PIL", False)
    sys.modules["PIL"] = None  # type: ignore[assignment]
    try:
        yield pytest.importorskip("transformers")
    finally:
        if saved is False:
            del sys.modules["PIL"]
        else:
            sys.modules["PIL"] = saved


def imported(factory, shapes):
    from archcalc.backend.importer import import_model

    module = types.ModuleType("transformers_test_models")
    module.build = factory
    sys.modules["transformers_test_models"] = module
    try:
        return import_model("transformers_test_models:build", shapes)
    finally:
        del sys.modules["transformers_test_models"]


def check(factory, shapes, spec: str, params: dict) -> str:
    """The import against PyTorch, against the shipped spec at ``params``, and its outputs."""
    from archcalc.backend.importer import output_difference

    result = imported(factory, shapes)
    assert result.exact, (result.source, result.spec)
    shipped = archcalc.analyze(archcalc.load(str(SPECS / spec), params=params)).totals
    assert (result.spec.params, result.spec.macs) == (shipped.params, shipped.macs)
    torch.manual_seed(0)
    assert output_difference(result, factory()) < 1e-4
    return result.text


def test_gpt2_imports_as_the_shipped_spec(transformers):
    """GPT2LMHeadModel: the tied LM head shares wte, GPT2Attention is one causal attention layer
    (its Conv1D projections transposed when the weights are copied), wpe(arange(T)) positions."""
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=32)
    text = check(lambda: transformers.GPT2LMHeadModel(config), [Steps((16,))], "gpt2.yaml",
                 {"T": 16, "vocab": 100, "positions": 32, "width": 64, "heads": 4, "mlp": 256, "layers": 2})
    assert "- positions: {max: 32, name: transformer.wpe}" in text
    assert "shares: transformer.wte, name: lm_head}" in text
    assert "attention: {causal: true, dropout: 0.1}" in text  # defaults:


@pytest.mark.slow
def test_bert_imports_as_the_shipped_spec(transformers):
    """BertModel with input_ids and token_type_ids: BertSelfAttention and its output projection
    (BertSelfOutput.dense) one attention layer, the position_ids buffer's positions, the pooler."""
    config = transformers.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                     intermediate_size=128, vocab_size=100, max_position_embeddings=32)
    check(lambda: transformers.BertModel(config), [Steps((16,)), Steps((16,))], "bert_base.yaml",
          {"T": 16, "vocab": 100, "positions": 32, "width": 64, "heads": 4, "mlp": 128, "layers": 2})


@pytest.mark.slow
def test_llama_imports_as_the_shipped_spec(transformers):
    """LlamaForCausalLM: grouped key/value heads, rotary positions (the rotary embedding no
    layer), LlamaRMSNorm, the SwiGLU MLP as dense, silu, multiply."""
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
                                      rms_norm_eps=1e-5)
    check(lambda: transformers.LlamaForCausalLM(config), [Steps((16,))], "tinyllama.yaml",
          {"T": 16, "vocab": 100, "width": 64, "mlp": 128, "layers": 2, "heads": 4, "kv_heads": 2})
