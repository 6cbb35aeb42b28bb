"""The attention kind against PyTorch: outputs computed by hand with
torch.nn.functional.scaled_dot_product_attention from the spec's own weights (self, cross, causal,
grouped KV heads, rotary), nn.MultiheadAttention's tensors and outputs, and parameters and MACs
against FlopCounterMode's count of the same computation written by hand."""
import math

import pytest
from conftest import analyze_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archcalc

torch = pytest.importorskip("torch")
F = torch.nn.functional

from archcalc.backend import build  # noqa: E402  (after torch is known to be there)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def spec(layer: str, t: int = 6, d: int = 16, memory: tuple | None = None) -> str:
    """A spec of one attention layer over a [t, d] sequence, reading a [S, d_m] memory too when given."""
    if memory is None:
        return f"input: {{steps: {t}, features: {d}}}\nlayers:\n  - {layer}\n"
    return (f"inputs: {{query: {{steps: {t}, features: {d}}}, memory: {{steps: {memory[0]}, features: {memory[1]}}}}}\n"
            f"layers:\n  - {layer}\n")


def built(text: str):
    """The spec's network in float64 (tight comparisons), and its attention module."""
    network = build(archcalc.loads(text), dtype="float64", seed=0)
    return network, network.submodule("attn1")


def weights(attention, heads: int, kv_heads: int, head_dim: int) -> dict:
    """The module's projections as (weight, bias) pairs by role, read by PyTorch's names."""
    named = dict(attention.named_parameters())
    if "in_proj_weight" in named:
        rows = (heads * head_dim, kv_heads * head_dim, kv_heads * head_dim)
        w = named["in_proj_weight"].split(rows)
        b = named["in_proj_bias"].split(rows) if "in_proj_bias" in named else (None,) * 3
        return {"q": (w[0], b[0]), "k": (w[1], b[1]), "v": (w[2], b[2]),
                "o": (named["out_proj.weight"], named.get("out_proj.bias"))}
    return {role: (named[f"{role}_proj.weight"], named.get(f"{role}_proj.bias")) for role in "qkvo"}


def rotated(x, theta: float):
    """The rotary embedding written with complex numbers: feature i and i + hd/2 of position p are
    one complex number, turned by p * theta^(-2i/hd)."""
    half = x.shape[-1] // 2
    angles = torch.arange(x.shape[-2], dtype=torch.float64)[:, None] * theta ** (
        -torch.arange(half, dtype=torch.float64) / half)
    z = torch.complex(x[..., :half], x[..., half:]) * torch.polar(torch.ones_like(angles), angles)
    return torch.cat((z.real, z.imag), dim=-1)


def by_hand(attention, x, memory=None, *, heads, kv_heads, head_dim, causal=False, rotary=None):
    """Projections with F.linear, heads split, key/value heads repeated for their query heads,
    F.scaled_dot_product_attention, heads joined, output projection."""
    w = weights(attention, heads, kv_heads, head_dim)
    source = x if memory is None else memory
    n, t, s = x.shape[0], x.shape[1], source.shape[1]
    q = F.linear(x, *w["q"]).view(n, t, heads, head_dim).transpose(1, 2)
    k = F.linear(source, *w["k"]).view(n, s, kv_heads, head_dim).transpose(1, 2)
    v = F.linear(source, *w["v"]).view(n, s, kv_heads, head_dim).transpose(1, 2)
    if rotary is not None:
        q, k = rotated(q, rotary), rotated(k, rotary)
    k, v = (tensor.repeat_interleave(heads // kv_heads, dim=1) for tensor in (k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return F.linear(y.transpose(1, 2).reshape(n, t, heads * head_dim), *w["o"])


CASES = [
    # layer, t, d, memory, (heads, kv_heads, head_dim), causal, rotary
    ("attention: 4", 6, 16, None, (4, 4, 4), False, None),
    ("attention: {heads: 2, causal: true}", 7, 16, None, (2, 2, 8), True, None),
    ("attention: {heads: 4, kv_heads: 2, qkv: separate}", 5, 16, None, (4, 2, 4), False, None),
    ("attention: {heads: 6, kv_heads: 1, head_dim: 5, bias: false, causal: true}", 6, 12, None, (6, 1, 5), True, None),
    ("attention: {heads: 4, kv_heads: 2, qkv: separate, bias: false, causal: true, rotary: 10000}",
     9, 32, None, (4, 2, 8), True, 10000),
    ("attention: {heads: 2, inputs: [query, memory]}", 4, 8, (6, 8), (2, 2, 4), False, None),
    ("attention: {heads: 4, kv_heads: 2, qkv: separate, inputs: [query, memory]}", 3, 16, (7, 10), (4, 2, 4),
     False, None),
    ("attention: {heads: 2, causal: true, qkv: separate, inputs: [query, memory]}", 5, 8, (5, 6), (2, 2, 4),
     True, None),
]


@pytest.mark.parametrize("layer,t,d,memory,heads,causal,rotary", CASES, ids=[case[0] for case in CASES])
def test_outputs_are_scaled_dot_product_attention_by_hand(layer, t, d, memory, heads, causal, rotary):
    network, attention = built(spec(layer, t, d, memory))
    torch.manual_seed(1)
    x = torch.randn(3, t, d, dtype=torch.float64)
    inputs = (x,) if memory is None else (x, torch.randn(3, *memory, dtype=torch.float64))
    expected = by_hand(attention, *inputs, heads=heads[0], kv_heads=heads[1], head_dim=heads[2], causal=causal,
                       rotary=rotary)
    assert torch.allclose(network(*inputs), expected, rtol=0, atol=1e-12)


def test_causal_is_not_a_no_op_and_rotary_is_not_either():
    """The differential cases above would pass for a mask or a rotation that did nothing, if the
    reference ignored them too: here each setting changes the output."""
    text = spec("attention: {heads: 4, qkv: separate, bias: false}", 8, 16)
    _, plain = built(text)
    x = torch.randn(2, 8, 16, dtype=torch.float64)
    full = by_hand(plain, x, heads=4, kv_heads=4, head_dim=4)
    assert not torch.allclose(full, by_hand(plain, x, heads=4, kv_heads=4, head_dim=4, causal=True))
    assert not torch.allclose(full, by_hand(plain, x, heads=4, kv_heads=4, head_dim=4, rotary=10000))
    # the first position sees only itself under the mask, so rotating it by angle 0 changes nothing there
    causal = by_hand(plain, x, heads=4, kv_heads=4, head_dim=4, causal=True)
    assert torch.allclose(causal[:, 0], by_hand(plain, x, heads=4, kv_heads=4, head_dim=4, causal=True,
                                                rotary=10000)[:, 0])


def test_fused_is_nn_multihead_attention():
    """The fused form holds nn.MultiheadAttention's tensors, by name and shape (ViT-B's 2,362,368),
    and with its weights gives its outputs, also masked causally and on a memory."""
    reference = torch.nn.MultiheadAttention(768, 12, batch_first=True)
    assert sum(p.numel() for p in reference.parameters()) == 2_362_368
    _, attention = built(spec("attention: 12", 197, 768))
    assert {name: tuple(p.shape) for name, p in attention.named_parameters()} == \
           {name: tuple(p.shape) for name, p in reference.named_parameters()}

    reference = torch.nn.MultiheadAttention(16, 4, batch_first=True).double().eval()
    for layer, memory, causal in [("attention: 4", None, False), ("attention: {heads: 4, causal: true}", None, True),
                                  ("attention: {heads: 4, inputs: [query, memory]}", (9, 16), False)]:
        network, attention = built(spec(layer, 6, 16, memory))
        attention.load_state_dict(reference.state_dict())
        x = torch.randn(2, 6, 16, dtype=torch.float64)
        source = x if memory is None else torch.randn(2, *memory, dtype=torch.float64)
        mask = torch.ones(6, 6, dtype=torch.bool).triu(1) if causal else None
        expected, _ = reference(x, source, source, attn_mask=mask, need_weights=False)
        assert torch.allclose(network(*((x,) if memory is None else (x, source))), expected, atol=1e-12), layer


def test_separate_names_are_llamas():
    _, attention = built(spec("attention: {heads: 4, kv_heads: 2, qkv: separate, bias: false}", 5, 16))
    assert [(name, tuple(p.shape)) for name, p in attention.named_parameters()] == [
        ("q_proj.weight", (16, 16)), ("k_proj.weight", (8, 16)), ("v_proj.weight", (8, 16)),
        ("o_proj.weight", (16, 16))]


# --- parameters and MACs against FlopCounterMode, on meta tensors ----------------------------

def reference_counts(t, s, d, d_memory, heads, kv_heads, head_dim, bias, causal):
    """(parameters, FlopCounterMode's FLOPs) of the computation written by hand with nn.Linear
    projections and F.scaled_dot_product_attention, on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        projections = [torch.nn.Linear(d, heads * head_dim, bias=bias),
                       torch.nn.Linear(d_memory, kv_heads * head_dim, bias=bias),
                       torch.nn.Linear(d_memory, kv_heads * head_dim, bias=bias),
                       torch.nn.Linear(heads * head_dim, d, bias=bias)]
        x, memory = torch.empty(1, t, d), torch.empty(1, s, d_memory)
        counter = FlopCounterMode(display=False)
        with counter:
            q = projections[0](x).view(1, t, heads, head_dim).transpose(1, 2)
            k, v = (p(memory).view(1, s, kv_heads, head_dim).transpose(1, 2) for p in projections[1:3])
            k, v = (tensor.repeat_interleave(heads // kv_heads, dim=1) for tensor in (k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            projections[3](y.transpose(1, 2).reshape(1, t, heads * head_dim))
    return sum(p.numel() for m in projections for p in m.parameters()), counter.get_total_flops()


def attention_counts(t, s, d, d_memory, heads, kv_heads, head_dim, bias, causal, cross):
    layer = (f"attention: {{heads: {heads}, kv_heads: {kv_heads}, head_dim: {head_dim}, bias: {str(bias).lower()}, "
             f"causal: {str(causal).lower()}, qkv: separate" + (", inputs: [query, memory]}" if cross else "}"))
    analysis = analyze_text(spec(layer, t, d, (s, d_memory) if cross else None))
    return analysis.layers[0], analysis


@st.composite
def attentions(draw):
    kv_heads = draw(st.integers(1, 4))
    heads = kv_heads * draw(st.integers(1, 4))
    cross = draw(st.booleans())
    t = draw(st.integers(1, 40))
    d = draw(st.integers(1, 48))
    s, d_memory = (draw(st.integers(1, 40)), draw(st.integers(1, 48))) if cross else (t, d)
    return t, s, d, d_memory, heads, kv_heads, draw(st.integers(1, 16)), draw(st.booleans()), draw(st.booleans()), cross


def check_counts(t, s, d, d_memory, heads, kv_heads, head_dim, bias, causal, cross):
    stats, analysis = attention_counts(t, s, d, d_memory, heads, kv_heads, head_dim, bias, causal, cross)
    params, flops = reference_counts(t, s, d, d_memory, heads, kv_heads, head_dim, bias, causal)
    assert stats.params == params
    assert 2 * stats.macs == flops
    with torch.device("meta"):  # the spec's own module, counted the same way
        from torch.utils.flop_counter import FlopCounterMode
        network = build(analysis, device="meta")
        counter = FlopCounterMode(display=False)
        with counter:
            network(*(torch.empty(1, *shape) for shape in analysis.input_shapes.values()))
    assert counter.get_total_flops() == flops


@pytest.mark.parametrize("case", [
    (197, 197, 768, 768, 12, 12, 64, True, False, False),     # ViT-B/16's attention
    (64, 64, 2048, 2048, 32, 4, 64, False, True, False),      # TinyLlama's, at T = 64
    (5, 9, 16, 24, 4, 2, 8, True, False, True),               # cross-attention on a wider memory
])
def test_params_and_macs_are_flop_counter_modes(case):
    check_counts(*case)


@pytest.mark.slow
@SETTINGS
@given(attentions())
def test_params_and_macs_are_flop_counter_modes_everywhere(case):
    check_counts(*case)


def test_vit_attention_products_are_the_issues_figure():
    """torchvision's ViT-B/16 at 224: 197 tokens, 12 heads of 64, 12 layers; FlopCounterMode counts
    its two products (aten.bmm) as 715,327,488 MACs."""
    stats = analyze_text(spec("attention: 12", 197, 768)).layers[0]
    projections = 197 * 768 * 768 * 4
    assert 12 * (stats.macs - projections) == 715_327_488
    assert stats.macs - projections == 2 * 12 * 197 * 197 * 64


# --- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layer,t,d,memory,message", [
    ("attention: 5", 4, 16, None, "5 heads cannot share the 16 features equally"),
    ("attention: {heads: 4, kv_heads: 3}", 4, 16, None, "kv_heads 3 must divide the 4 heads"),
    ("attention: {heads: 2, head_dim: 3, rotary: 10000}", 4, 16, None, "head_dim is 3, odd"),
    ("attention: {heads: 2, inputs: [query, memory]}", 4, 16, (5, 8), "the memory has 8"),
])
def test_refusals_name_the_numbers(layer, t, d, memory, message):
    with pytest.raises(archcalc.SpecError, match=message):
        analyze_text(spec(layer, t, d, memory))


def test_a_feature_map_is_refused_with_the_way_to_tokens():
    with pytest.raises(archcalc.SpecError, match="reads sequences") as caught:
        analyze_text("input: [8, 4, 4]\nlayers:\n  - attention: 2\n")
    assert "permute" in caught.value.hint


def test_scale_is_one_over_root_head_dim():
    """The module's scale is SDPA's default 1/sqrt(head_dim): one head over two positions, q = k = v
    weights the identity, attention weights softmax(x·x'/sqrt(d))."""
    network, attention = built(spec("attention: {heads: 1, bias: false}", 2, 4))
    with torch.no_grad():
        attention.in_proj_weight.copy_(torch.eye(4).repeat(3, 1))
        attention.out_proj.weight.copy_(torch.eye(4))
    x = torch.tensor([[[1.0, 0, 0, 0], [0, 2.0, 0, 0]]], dtype=torch.float64)
    a = torch.softmax(torch.tensor([[1.0, 0], [0, 4.0]]) / math.sqrt(4), dim=-1).double()
    assert torch.allclose(network(x), a @ x[0], atol=1e-12)


def test_freeze_names_a_projection():
    text = spec("attention: {heads: 2, freeze: [out_proj.weight, in_proj_bias]}", 4, 8)
    analysis = analyze_text(text)
    assert analysis.totals.params - analysis.totals.trainable_params == 8 * 8 + 3 * 8
    frozen = {name for name, p in build(analysis).submodule("attn1").named_parameters() if not p.requires_grad}
    assert frozen == {"out_proj.weight", "in_proj_bias"}
