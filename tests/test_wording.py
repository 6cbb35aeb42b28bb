"""A layer's arithmetic as data (layers/terms.py) and its wording (views/wording.py).

The terms must add up to the numbers the analyzer reports, and what is printed from them must
be true: the numbers in each printed formula are recomputed here from PyTorch's documented
rules (nn.MaxPool1d/2d with ceil_mode, nn.ConvTranspose2d) and, with torch, from PyTorch itself.
"""
import re
from math import prod

import pytest
from conftest import SPECS, spec_text
from kind_table import LAYER_TABLE

import archcalc
from archcalc.layers import FeatureMap, lookup
from archcalc.layers.terms import Product, Ratio, Sum, TransposedAxis, WindowAxis
from archcalc.views.explain import explain
from archcalc.views.wording import formula, notes, window_text

CEIL_TEXT = re.compile(r"ceil\(\((\d+)-(\d+)\+2\*(\d+)\)/(\d+)\)\+1 = (\d+)"
                       r"(?: -> (\d+) as \((\d+)-1\)\*(\d+) >= (\d+)\+(\d+))?$")


def value(expression) -> int:
    """A count expression's value, computed here independently of the library."""
    if isinstance(expression, int):
        return expression
    if isinstance(expression, Product):
        return prod(value(factor) for factor in expression.factors)
    if isinstance(expression, Sum):
        return sum(value(term) for term in expression.terms)
    assert isinstance(expression, Ratio) and expression.numerator % expression.denominator == 0
    return expression.numerator // expression.denominator


def every_layer():
    """(LayerStats) of every shipped spec and every row of the layer table."""
    for path in sorted(SPECS.glob("*.yaml")):
        yield from archcalc.analyze(archcalc.load(path)).layers
    for row in LAYER_TABLE:
        yield from archcalc.analyze(archcalc.loads(spec_text(row.input_shape, row.fragment))).layers


def test_terms_add_up_to_the_reported_numbers():
    checked = set()
    for stats in every_layer():
        counts = stats.layer.count_terms(stats.input_shape, stats.output_shape)
        # a layer that shares another's tensors (GPT-2's tied head) words them; they are counted at the owner
        params = stats.params if stats.shares is None else stats.layer.params(stats.input_shape)
        for count, expected in ((counts.params, params), (counts.buffers, stats.buffers),
                                (counts.neurons, stats.neurons)):
            assert count.value == expected, stats.name
            if count.expression is not None:
                assert value(count.expression) == expected, stats.name
        axes = [term for term in stats.size_terms if isinstance(term, (WindowAxis, TransposedAxis))]
        if axes:  # one term per spatial axis, in axis order, giving the output's size on it
            outputs = [term.window.output if isinstance(term, WindowAxis) else term.output for term in axes]
            assert tuple(outputs) == tuple(stats.output_shape[1:]), stats.name
        checked.add(stats.kind)
    assert {"conv", "maxpool", "convtranspose", "lstm", "batchnorm", "embedding", "concat"} <= checked


def ceil_cases():
    for size in range(1, 13):
        for kernel in range(1, 5):
            for stride in range(1, 5):
                for pad in range(kernel // 2 + 1):  # PyTorch takes at most half the kernel
                    if kernel <= size + 2 * pad:
                        yield size, kernel, stride, pad


def test_ceil_pool_arithmetic_is_true():
    """PyTorch's ceil_mode (its pooling_output_shape): out = ceil((D+2P-F)/S)+1, minus 1 if the last
    window would start in the right padding, (out-1)*S >= D+P. The printed formula must state
    exactly that, and the note must describe the windows that are actually read."""
    dropped = 0
    for size, kernel, stride, pad in ceil_cases():
        layer = lookup("maxpool").from_args({"kernel": kernel, "stride": stride, "padding": pad, "rounding": "ceil"})
        (out,) = layer.output_shape(FeatureMap((1, size)))[1:]
        ceiled = -(-(size + 2 * pad - kernel) // stride) + 1
        torch_out = ceiled - 1 if (ceiled - 1) * stride >= size + pad else ceiled
        assert out == torch_out
        terms = layer.size_terms(FeatureMap((1, size)), None)
        text, found = window_text(terms[0]), notes(terms)
        if kernel < stride:  # inputs between the windows as well: test_habits counts them against PyTorch
            found = None
        last_end = (out - 1) * stride + kernel  # one past the last window read, padded positions
        if (size + 2 * pad - kernel) % stride == 0:
            assert text == f"({size}-{kernel}+2*{pad})/{stride}+1 = {out}" and not found
            continue
        match = CEIL_TEXT.fullmatch(text)
        assert match, text
        numbers = [int(group) if group else None for group in match.groups()]
        assert numbers[:5] == [size, kernel, pad, stride, ceiled]
        if torch_out < ceiled:  # the extra window would start in the padding: shown, then dropped
            dropped += 1
            assert numbers[5:] == [out, ceiled, stride, size, pad]
            assert (ceiled - 1) * stride >= size + pad
            assert found is None or found == [f"ceil along L: no extra window (it would start in the padding); the last "
                             f"{size + 2 * pad - last_end} never read"
                             + (" (only padding, harmless)" if size + pad <= last_end else
                                f" ({size + pad - last_end} input position{'s' * (size + pad - last_end > 1)} lost)")]
        else:
            assert numbers[5:] == [None] * 5
            assert found is None or found == [f"ceil along L: the last window hangs {last_end - size - 2 * pad} past the padded edge"]
    assert dropped > 10


def test_ceil_pool_of_the_issue_against_pytorch():
    """7x7, 2x2 windows, stride 2, padding 1: ceil((7-2+2)/2)+1 = 5 windows would fit, but the 5th
    would start at 8 = 7+1, in the padding, so PyTorch keeps 4 (the claim '= 4' for ceil(...)+1
    and 'the last window hangs 1 past the padded edge' were false)."""
    spec = archcalc.loads(spec_text([2, 7, 7], "maxpool: {kernel: 2, stride: 2, padding: 1, rounding: ceil}"))
    analysis = archcalc.analyze(spec)
    pool = analysis.layers[0]
    assert pool.output_shape == FeatureMap((2, 4, 4))
    assert formula(pool.size_terms) == "ceil((7-2+2*1)/2)+1 = 5 -> 4 as (5-1)*2 >= 7+1"
    assert notes(pool.size_terms) == ["ceil along H/W: no extra window (it would start in the padding); "
                                      "the last 1 never read (only padding, harmless)"]
    steps = explain(spec).layers[0].steps
    assert "(D-F+2P)/S+1 = ceil((7-2+2*1)/2)+1 = 5 -> 4 as (5-1)*2 >= 7+1" in steps
    torch = pytest.importorskip("torch")
    pooled = torch.nn.MaxPool2d(2, 2, 1, ceil_mode=True)(torch.zeros(1, 2, 7, 7))
    assert tuple(pooled.shape[1:]) == tuple(pool.output_shape)


def test_ceil_pools_against_pytorch():
    torch = pytest.importorskip("torch")
    for size, kernel, stride, pad in ceil_cases():
        layer = lookup("maxpool").from_args({"kernel": kernel, "stride": stride, "padding": pad, "rounding": "ceil"})
        expected = torch.nn.MaxPool1d(kernel, stride, pad, ceil_mode=True)(torch.zeros(1, 1, size)).shape[-1]
        assert layer.output_shape(FeatureMap((1, size))) == FeatureMap((1, expected)), (size, kernel, stride, pad)


def test_convtranspose_formula_per_axis_labelled_in_axis_order():
    """A 4x9x10 input: H (9) before W (10), each labelled (sorting the texts put '(10-1)' first).
    PyTorch's ConvTranspose2d: out = (D-1)*S - 2P + dilation*(F-1) + output_padding + 1."""
    spec = archcalc.loads(spec_text([4, 9, 10], "convtranspose: {filters: 2, kernel: 3, stride: 2}"))
    stats = archcalc.analyze(spec).layers[0]
    h, w = (9 - 1) * 2 + (3 - 1) + 1, (10 - 1) * 2 + (3 - 1) + 1
    assert stats.output_shape == FeatureMap((2, h, w))
    assert formula(stats.size_terms) == f"H: (9-1)*2-2*0+3 = {h}, W: (10-1)*2-2*0+3 = {w}"
    steps = explain(spec).layers[0].steps
    assert steps[1:3] == (f"H: (9-1)*2-2*0+3 = {h}", f"W: (10-1)*2-2*0+3 = {w}")
    square = archcalc.analyze(archcalc.loads(spec_text([4, 9, 9], "convtranspose: {filters: 2, kernel: 3, stride: 2}")))
    assert formula(square.layers[0].size_terms) == f"(9-1)*2-2*0+3 = {h}"  # axes that agree: one text


def test_layernorm_without_affine_has_no_parameter_arithmetic():
    """nn.LayerNorm(4, elementwise_affine=False) has no parameters: nothing to multiply out
    (it printed 'params = 2x4 = 0')."""
    layer = explain(archcalc.loads(spec_text({"steps": 5, "features": 4}, "layernorm: {affine: false}"))).layers[0]
    assert "0 params" in layer.steps
