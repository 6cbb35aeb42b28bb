"""Issue 14's transformers written with real operations, against the reference implementations'
figures: parameters as torchvision's and transformers' models count them, and MACs as PyTorch's
FlopCounterMode counts the eager reference models on meta tensors, halved (every matrix product:
the linear layers, the LM head, the full T x T attention products), at the issue's sizes.
scripts/zoo_check.py goes further where torchvision and transformers are installed: the
references' weights in the spec's model, the same outputs."""
import pytest
from conftest import SPECS

import archcalc

TRANSFORMERS = [
    # spec, parameters, MACs, steps T (None: an image); the table
    ("vit_b_16", 86_567_656, 17_563_828_224, None),        # torchvision ViT_B_16_Weights: 86,567,656; 17.56 GFLOPS
    ("gpt2", 124_439_808, 145_824_153_600, 1024),          # GPT2LMHeadModel(GPT2Config()), head tied
    ("bert_base", 109_482_240, 48_318_971_904, 512),       # BertModel(BertConfig()), pooler included
    ("tinyllama", 1_100_048_384, 2_496_449_740_800, 2048),  # LlamaForCausalLM, TinyLlama-1.1B's shape, untied
]


def analyzed(name: str, **params):
    return archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml"), params or None))


@pytest.mark.parametrize("name,params,macs,steps", TRANSFORMERS, ids=[row[0] for row in TRANSFORMERS])
def test_params_and_macs_are_the_references(name, params, macs, steps):
    analysis = analyzed(name)
    assert analysis.totals.params == params
    assert analysis.totals.macs == macs
    if steps is not None:
        assert analysis.input_shapes[next(iter(analysis.input_shapes))][0] == steps


@pytest.mark.parametrize("name", ["gpt2", "bert_base", "tinyllama"])
def test_parameters_do_not_depend_on_the_sequence_length(name):
    """Position tables are sized by the model (GPT-2 1024, BERT 512), rotary positions have none:
    a shorter sequence has the same parameters, and MACs that fall with T."""
    full, short = analyzed(name), analyzed(name, T=128)
    assert short.totals.params == full.totals.params
    assert short.totals.macs < full.totals.macs


def test_vit_attention_products_are_flop_counter_modes_bmm():
    """FlopCounterMode's aten.bmm in torchvision's ViT-B/16 at 224: 715,327,488 MACs, the products
    Q Kᵀ and A V of 12 layers (12 heads x 197 x 197 x 64 each)."""
    attention = [stats for stats in analyzed("vit_b_16").layers if stats.kind == "attention"]
    projections = 4 * 197 * 768 * 768
    assert len(attention) == 12
    assert sum(stats.macs - projections for stats in attention) == 715_327_488


def test_gpt2_ties_its_head_and_counts_it_once():
    analysis = analyzed("gpt2")
    head = next(stats for stats in analysis.layers if stats.name == "lm_head")
    assert head.shares == "wte" and head.params == 0
    assert head.macs == 1024 * 768 * 50257  # the head's product still counts


def test_no_stand_ins():
    """Written with the operations the references run: attention (GPT-2's and Llama's causal, Llama's
    with grouped KV heads and rotary positions, no biases), GELU's tanh form in GPT-2, RMSNorm and
    a SwiGLU multiply in Llama, the class token selected in ViT and BERT's pooler."""
    def layers(name):
        return archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml"))).layers

    def attention(name):
        return next(stats.layer for stats in layers(name) if stats.kind == "attention")

    kinds = {name: {stats.kind for stats in layers(name)} | {stats.layer.activation for stats in layers(name)}
             for name, *_ in TRANSFORMERS}  # kinds and 'activation:' attributes
    assert {"conv", "parameter", "concat", "attention", "layernorm", "gelu", "select"} <= kinds["vit_b_16"]
    assert {"embedding", "positions", "attention", "gelu", "layernorm"} <= kinds["gpt2"]
    assert next(s.layer for s in layers("gpt2") if s.kind == "gelu").approximate == "tanh"
    assert {"embedding", "positions", "attention", "layernorm", "select", "tanh"} <= kinds["bert_base"]
    assert {"embedding", "rmsnorm", "attention", "multiply", "silu"} <= kinds["tinyllama"]
    assert not kinds["tinyllama"] & {"layernorm", "positions", "gelu"}
    assert attention("gpt2").causal and not attention("bert_base").causal and not attention("vit_b_16").causal
    llama = attention("tinyllama")
    assert (llama.kv_heads, llama.rotary, llama.bias, llama.causal) == (4, 10000, False, True)


SMALL = {  # the widths scripts/zoo_check.py compares with transformers' models
    "gpt2": {"T": 24, "vocab": 1000, "positions": 64, "width": 64, "heads": 4, "mlp": 256, "layers": 2},
    "bert_base": {"T": 24, "vocab": 1000, "positions": 64, "width": 64, "heads": 4, "mlp": 128, "layers": 2},
    "tinyllama": {"T": 24, "vocab": 1000, "width": 64, "mlp": 176, "layers": 2, "heads": 8, "kv_heads": 2},
}


@pytest.mark.parametrize("name", SMALL)
def test_pytorch_agrees_layer_by_layer_on_the_cpu_at_small_widths(name):
    """Every layer's shape and parameters as PyTorch runs them on real tensors (the full sizes run
    on meta in test_backend.py)."""
    pytest.importorskip("torch")
    from archcalc.backend import verify

    analysis = archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml"), SMALL[name]), batch=2)
    result = verify(analysis, device="cpu")
    assert result.ok, result.disagreements
    assert len(result.checks) == len(analysis.layers)


@pytest.mark.slow
def test_vit_runs_on_the_cpu():
    pytest.importorskip("torch")
    from archcalc.backend import verify

    result = verify(analyzed("vit_b_16"), device="cpu")
    assert result.ok, result.disagreements


@pytest.mark.parametrize("name,params,macs,steps", TRANSFORMERS, ids=[row[0] for row in TRANSFORMERS])
def test_the_specs_own_models_count_the_same_on_meta(name, params, macs, steps):
    """FlopCounterMode over the spec's own PyTorch model at full size, on meta tensors: the
    computation archcalc runs is the one it counts."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from archcalc.backend import build
    from archcalc.backend.plan import make_plan
    from archcalc.backend.tensors import sample_inputs

    analysis = analyzed(name)
    network = build(analysis, device="meta")
    with FlopCounterMode(display=False) as counter:
        network(*sample_inputs(torch, make_plan(analysis), 1, torch.float32, "meta", None))
    assert counter.get_total_flops() == 2 * macs
