"""The sequence figures of the shipped transformers, pinned from outside sources: the KV cache
transformers' DynamicCache fills (scripts/kv_cache_check.py), the per-token compute of PyTorch's
FlopCounterMode (issue 14's table), the 6N + 12·L·T·d estimate as nanoGPT computes it; the score
matrices in the activation memory; explain's per-head arithmetic adding up to the layer's MACs;
the transformer block library giving the very layers the specs wrote inline."""
import json

import pytest
from conftest import SPECS
from conftest import run_cli as run

import archcalc
from archcalc.analysis.sequence import AttentionLayer, sequence_figures
from archcalc.views.explain import explain

TINYLLAMA, GPT2 = SPECS / "tinyllama.yaml", SPECS / "gpt2.yaml"
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


def figures(path, kv=None, **options):
    return sequence_figures(archcalc.analyze(archcalc.load(str(path)), **options), kv)


@pytest.mark.parametrize("spec,context,batch,dtype,expected", [
    # transformers 5.24's DynamicCache after one forward pass of LlamaForCausalLM / GPT2LMHeadModel
    # built from a config with the spec's layers, key/value heads and head_dim: the bytes of its
    # keys and values (scripts/kv_cache_check.py, benchmarks/results/kv_cache_check.md)
    (TINYLLAMA, 2048, 1, "float16", 46_137_344),   # = 2 x 22 x 4 x 64 x 2048 x 1 x 2
    (TINYLLAMA, 1000, 3, "float32", 135_168_000),  # = 2 x 22 x 4 x 64 x 1000 x 3 x 4
    (GPT2, 1024, 1, "float16", 37_748_736),        # = 2 x 12 x 12 x 64 x 1024 x 1 x 2
])
def test_kv_cache_is_what_transformers_caches(spec, context, batch, dtype, expected):
    data = json.loads(run("inspect", spec, "--kv-cache", context, "--batch", batch, "--dtype", dtype,
                          "-f", "json").stdout)
    cache = data["sequence"]["kv_cache"]
    layers = len(cache["layers"])
    assert cache["total_bytes"] == expected
    assert [layer["bytes"] for layer in cache["layers"]] == [expected // layers] * layers
    assert cache["per_token_bytes"] == expected // (context * batch)


def test_the_kv_cache_line_states_the_formula():
    text = run("inspect", TINYLLAMA, "--kv-cache", "2048", "--dtype", "float16").stdout
    assert ("KV cache at 2,048 tokens, batch 1, float16: 2 x 22 layers x 4 kv_heads x 64 head_dim x 2,048 x 1 x 2 B "
            "= 46,137,344 B = 46.14 MB (44.00 MiB); 2.10 MB (2.00 MiB) per layer, 22.53 kB (22.00 KiB) per token "
            "of a sequence") in text
    csv = run("inspect", TINYLLAMA, "--kv-cache", "2048", "--dtype", "float16", "-f", "csv").stdout.splitlines()
    assert csv[0].endswith(",attention_scores,kv_cache_bytes") and csv[-1].endswith(",46137344")
    markdown = run("inspect", TINYLLAMA, "--kv-cache", "2048", "--dtype", "float16", "-f", "markdown").stdout
    assert "- KV cache at 2,048 tokens, batch 1, float16: 2 x 22 layers" in markdown
    assert run("inspect", SPECS / "bert_base.yaml", "--kv-cache", "512").output.startswith(
        "error: --kv-cache: this network keeps no KV cache: its 12 attention layers are not causal self-attention")


def test_per_token_compute_is_flop_counter_modes_over_t():
    """FlopCounterMode on the eager reference models, halved (issue 14's table): GPT-2
    145,824,153,600 MACs at T = 1024, TinyLlama 2,496,449,740,800 at T = 2048."""
    assert figures(GPT2).macs_per_token == 145_824_153_600 // 1024 == 142_406_400
    assert figures(TINYLLAMA).macs_per_token == 2_496_449_740_800 // 2048 == 1_218_969_600


def test_the_estimate_is_nanogpts():
    """nanoGPT's estimate_mfu: flops_per_token = 6N + 12·L·H·Q·T with N = get_num_params(), which
    for GPT-2 leaves out the positions (1024 x 768) and keeps the token table tied to the LM head:
    123,653,376 ('number of parameters: 123.65M'). TinyLlama's untied input table (32000 x 2048)
    is only looked up: N = 1,100,048,384 - 65,536,000."""
    gpt2 = figures(GPT2)
    assert gpt2.estimate_params == 124_439_808 - 1024 * 768 == 123_653_376
    assert gpt2.estimate_flops_per_token == 6 * 123_653_376 + 12 * 12 * 12 * 64 * 1024 == 855_166_464
    llama = figures(TINYLLAMA)
    assert llama.estimate_params == 1_100_048_384 - 32000 * 2048
    assert llama.estimate_flops_per_token == 6 * 1_034_512_384 + 12 * 22 * 32 * 64 * 2048
    assert gpt2.training_flops_per_token == 3 * gpt2.flops_per_token  # archcalc's own count, beside it


def test_steps_follows_the_spec_parameter_and_the_positions_table():
    data = json.loads(run("inspect", GPT2, "--steps", "256", "-f", "json").stdout)
    assert data["input_shape"] == [256] and data["totals"]["params"] == 124_439_808  # the table stays 1024
    assert data["sequence"]["steps"] == 256 and data["sequence"]["attention_layers"][0]["keys"] == 256
    refused = run("inspect", GPT2, "--steps", "2048")
    assert refused.exit_code == 2 and "the table holds 1024 positions" in refused.output


def test_the_score_matrices_are_in_the_activation_memory_unless_fused():
    text = TINYLLAMA.read_text()
    eager = archcalc.analyze(archcalc.loads(text, str(TINYLLAMA)), batch=2, dtype="float16")
    spec = archcalc.loads(text.replace("defaults:\n", "defaults:\n  attention: {fused: true}\n"), str(TINYLLAMA))
    fused = archcalc.analyze(spec, batch=2, dtype="float16")
    scores = 22 * 32 * 2048 * 2048  # heads x T x T per layer
    assert eager.totals.scores == scores and fused.totals.scores == 0
    assert eager.totals.activation_bytes - fused.totals.activation_bytes == scores * 2 * 2
    assert eager.totals.activation_bytes == (eager.totals.neurons + scores) * 2 * 2
    assert (eager.totals.params, eager.totals.macs) == (fused.totals.params, fused.totals.macs)
    assert "attention scores: 22 layers x 32 heads x 2,048 x 2,048 = 2,952,790,016 per sample" in \
        run("inspect", TINYLLAMA).stdout


def test_explain_writes_each_head_and_the_sum_is_the_layers_macs():
    explanation = explain(archcalc.load(str(TINYLLAMA)))
    layer = next(item for item in explanation.layers if item.name.endswith("llama_layer1.self_attn"))
    lines = "\n".join(layer.steps)
    # per head: 2048 x 2048 x 64 for Q, for K and V per key/value head, for Q Kᵀ and A V
    assert "Q = x W_q: 2048x2048 by 2048x64 -> 2048x64, 2048x2048x64 = 268,435,456 MACs per head, x 32" in lines
    assert "x 2 x 4 = 2,147,483,648" in lines and "each key/value head serving 8 query heads" in lines
    assert "scores = Q Kᵀ / sqrt(64): 2048x64 by 64x2048 -> 2048x2048" in lines
    assert "KV cache: 2 x 4 x 64 = 512 numbers per token of context" in lines
    stats = explanation.analysis.layer(layer.name)
    assert AttentionLayer(stats.name, stats.layer.attending(stats.input_shape)).macs == stats.macs
    assert f"= {stats.macs:,}" in lines.splitlines()[-2]


@pytest.mark.parametrize("spec,block,count,params", [
    # torchvision's ViT-B/16: 85,054,464 parameters in its 12 encoder blocks; Hugging Face's
    # BertLayer and GPT2Block of width 768: 7,087,872 each; TinyLlama's 22 LlamaDecoderLayers: 968,974,336
    ("vit_b_16", "encoder_layer", 12, 7_087_872),
    ("bert_base", "post_norm_encoder_layer", 12, 7_087_872),
    ("gpt2", "decoder_layer", 12, 7_087_872),
    ("tinyllama", "llama_layer", 22, 968_974_336 // 22),
])
def test_the_block_library_gives_each_references_layers(spec, block, count, params):
    spec = archcalc.load(str(SPECS / f"{spec}.yaml"))
    analysis = archcalc.analyze(spec)
    instances = [name for name, used in spec.blocks.items() if used == block]
    assert len(instances) == count
    for instance in instances:
        assert sum(stats.params for stats in analysis.layers if stats.name.startswith(instance + ".")) == params
    assert all(node.location.path.endswith("blocks/transformer.yaml") for node in spec.nodes
               if node.name.startswith(instances[0] + "."))
