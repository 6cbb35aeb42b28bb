"""Element-wise merges (add, multiply, subtract) broadcast as PyTorch does; squeeze-excitation at
any input size; layer scale. Shapes from torch.broadcast_shapes, values from PyTorch's own ops."""
from math import prod

import pytest
from conftest import analyze_text, spec_text
from hypothesis import given, settings
from hypothesis import strategies as st

import archcalc
from archcalc.layers import FeatureMap


def two_inputs(a, b, kind="multiply") -> str:
    return f"inputs: {{a: {list(a)}, b: {list(b)}}}\nlayers:\n  - {kind}: {{inputs: [a, b]}}\n"


@pytest.mark.parametrize("kind", ["add", "multiply", "subtract"])
@pytest.mark.parametrize("a,b,expected", [
    ((16, 1, 1), (16, 7, 7), (16, 7, 7)),        # squeeze-excitation's gate
    ((16, 7, 7), (16, 1, 1), (16, 7, 7)),
    ((1, 5, 1), (3, 1, 4), (3, 5, 4)),           # both stretch
    ((8,), (1,), (8,)),
    ((2, 9), (2, 9), (2, 9)),
])
def test_broadcast_shapes(kind, a, b, expected):
    stats = archcalc.analyze(archcalc.loads(two_inputs(a, b, kind))).layers[0]
    assert tuple(stats.output_shape) == expected
    assert stats.flops == prod(expected)  # one operation per output element


@given(st.integers(1, 3).flatmap(lambda rank: st.tuples(*[st.tuples(st.sampled_from([1, 2, 3]),
                                                                     st.sampled_from([1, 2, 3]))] * rank)))
@settings(max_examples=200, deadline=None)
def test_broadcast_is_pytorchs(axes):
    """Same rank per sample: accepted exactly when torch.broadcast_shapes accepts the batches
    (N, *a) and (N, *b), with its shape."""
    torch = pytest.importorskip("torch")
    a, b = tuple(pair[0] for pair in axes), tuple(pair[1] for pair in axes)
    try:
        expected = tuple(torch.broadcast_shapes((4, *a), (4, *b)))[1:]
    except RuntimeError:
        expected = None
    try:
        ours = archcalc.analyze(archcalc.loads(two_inputs(a, b))).output_shape
    except archcalc.SpecError as exc:
        assert expected is None, exc
        assert f"got {'x'.join(map(str, a))} and {'x'.join(map(str, b))}" in exc.message
        return
    assert tuple(ours) == expected


def test_shapes_that_do_not_broadcast_are_refused_with_both_shapes():
    with pytest.raises(archcalc.SpecError) as caught:
        archcalc.analyze(archcalc.loads(two_inputs((16, 7, 7), (8, 1, 1))))
    assert caught.value.message == ("multiply needs shapes that broadcast (each axis equal, or 1 in one of them), "
                                    "got 16x7x7 and 8x1x1")
    assert "[C, 1, 1]" in caught.value.hint


def test_another_rank_is_refused_where_pytorch_would_align_the_wrong_axes():
    """(N, 4) against (N, 3, 2, 4): PyTorch aligns the vector's 4 features with W and N with H
    and computes something; per sample that is no [4] * [3, 2, 4], so it is refused."""
    torch = pytest.importorskip("torch")
    assert tuple(torch.broadcast_shapes((2, 4), (2, 3, 2, 4))) == (2, 3, 2, 4)
    with pytest.raises(archcalc.SpecError, match=r"got the flat vector 4 and the feature map 3x2x4"):
        archcalc.analyze(archcalc.loads(two_inputs((4,), (3, 2, 4))))


def test_subtract_takes_exactly_two_inputs():
    with pytest.raises(archcalc.SpecError, match="subtract needs exactly 2 inputs, got 3"):
        archcalc.analyze(archcalc.loads(spec_text((4,), "subtract: {inputs: [input, input, input]}")))


# --- squeeze-excitation: a gate [C, 1, 1] times the map, at any input size ----------------------------

SE = """
name: squeeze-excitation
input: [3, 224, 224]
defaults:
  conv: {rounding: floor}
blocks:
  se:                                   # torchvision.ops.SqueezeExcitation
    params: {channels: null, squeeze: null}
    layers:
      - adaptiveavgpool: 1
      - conv: {filters: $squeeze, kernel: 1, activation: relu, name: fc1}
      - conv: {filters: $channels, kernel: 1, activation: sigmoid, name: fc2}
      - multiply: {inputs: [in, fc2]}
layers:
  - conv: {filters: 16, kernel: 3, stride: 2, padding: 1, name: stem}
  - se: {channels: 16, squeeze: 8, name: se}
"""


@pytest.mark.parametrize("size,side", [(224, 112), (193, 97)])
def test_squeeze_excitation_at_any_size(size, side):
    analysis = analyze_text(SE, input_shape=(3, size, size))
    assert analysis.layer("se.pool1").output_shape == FeatureMap((16, 1, 1))
    assert analysis.output_shape == FeatureMap((16, side, side))
    # fc1 16*8 + 8, fc2 8*16 + 16 (torchvision's SqueezeExcitation(16, 8)), stem 16*27 + 16
    assert analysis.totals.params == 448 + 136 + 144
    assert analysis.layer("se.multiply1").flops == 16 * side * side


@pytest.mark.parametrize("size", [224, 193])
def test_squeeze_excitation_runs_and_computes_x_times_its_gate(size):
    torch = pytest.importorskip("torch")
    from torch.nn import functional

    from archcalc.backend import build, verify

    analysis = analyze_text(SE, input_shape=(3, size, size), batch=2)
    assert verify(analysis, device="cpu").ok
    network = build(analysis, seed=0)
    x = torch.randn(2, 3, size, size)
    stem = network.submodule("stem")(x)
    fc1, fc2 = network.submodule("se.fc1")[0], network.submodule("se.fc2")[0]
    gate = torch.sigmoid(fc2(torch.relu(fc1(functional.adaptive_avg_pool2d(stem, 1)))))
    torch.testing.assert_close(network(x), stem * gate)


def test_scale_is_a_learned_factor_per_channel():
    torch = pytest.importorskip("torch")
    from archcalc.backend import build

    network = build(archcalc.loads(spec_text((4, 3, 3), "scale: 0.5")))
    weight = network.submodule("scale1").weight
    assert weight.shape == (4, 1, 1) and torch.all(weight == 0.5)
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        weight.copy_(torch.arange(4.0).reshape(4, 1, 1))
    torch.testing.assert_close(network(x), x * torch.arange(4.0).reshape(1, 4, 1, 1))
