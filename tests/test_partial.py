"""One partial analysis: ``analyze(partial=True)`` records the failing layer once (as analyzed,
with its input and error), and explain, render, solve, diff and the backend read that record."""
import re

import pytest
from conftest import spec_text

import archcalc
from archcalc.errors import ArchcalcError, UnknownName
from archcalc.layers import FeatureMap
from archcalc.views.diff import diff
from archcalc.views.explain import explain
from archcalc.views.solve import solve

# conv2 asks for floor rounding; --rounding strict overrides it, and (8-3)/2+1 = 3.5 is not whole
FLOORED = spec_text((1, 8, 8), "conv: {filters: 2, kernel: 3, padding: 1}",
                    "conv: {filters: 4, kernel: 3, stride: 2, rounding: floor}", "flatten", "dense: 2")


def test_the_failure_record_holds_the_layer_as_analyzed():
    analysis = archcalc.analyze(archcalc.loads(FLOORED), rounding="strict", partial=True)
    failure = analysis.failure
    assert [s.name for s in analysis.layers] == ["conv1"]
    assert failure.name == "conv2" and failure.layer.rounding == "strict"  # the override, not the spec's floor
    assert failure.node.layer.rounding == "floor"
    assert failure.input_shape == FeatureMap((2, 8, 8))
    assert analysis.error is failure.error and "3.5 is not whole" in failure.error.message
    assert archcalc.analyze(archcalc.loads(FLOORED), partial=True).failure is None  # floor: valid


def test_render_draws_the_failing_layer_as_explain_shows_it_under_rounding():
    pytest.importorskip("graphviz")
    from archcalc.views.render import to_dot

    spec = archcalc.loads(FLOORED)
    board = explain(spec, rounding="strict").layers[-1]
    assert board.name == "conv2" and board.error is not None
    assert board.heading == "conv 4 3x3, stride 2"  # strict is the default, so not named
    dot = to_dot(archcalc.analyze(spec, rounding="strict", partial=True))
    red = re.search(r'n1 \[label=<<B>conv2</B><BR/>([^<]*)<BR/>', dot)
    assert red.group(1) == board.heading
    assert "rounding floor" not in dot


def test_solve_reads_the_record_at_each_offending_layer():
    spec = archcalc.loads(spec_text((1, 10), "conv: {filters: 1, kernel: 3, stride: 2}",
                                    "conv: {filters: 1, kernel: 3, stride: 2}", "flatten"))
    first, second = solve(spec, low=5, high=12).repairs
    assert (first.layer, first.input_shape) == ("conv1", FeatureMap((1, 10)))
    assert first.axes[0].arithmetic == "(10-3+2*0)/2+1 = 4.5"
    # past conv1 the walk floors to 4, as PyTorch would: (4-3)/2+1 = 1.5 at conv2
    assert (second.layer, second.input_shape) == ("conv2", FeatureMap((1, 4)))
    assert second.axes[0].arithmetic == "(4-3+2*0)/2+1 = 1.5"


def test_diff_and_the_backend_refuse_a_partial_analysis_with_its_error():
    partial = archcalc.analyze(archcalc.loads(FLOORED), rounding="strict", partial=True)
    whole = archcalc.analyze(archcalc.loads(FLOORED))
    with pytest.raises(archcalc.SpecError, match="3.5 is not whole"):
        diff(whole, partial)
    pytest.importorskip("torch")
    from archcalc.backend import build
    with pytest.raises(archcalc.SpecError, match="3.5 is not whole"):
        build(partial)


def test_an_unknown_layer_name_is_a_clear_key_error():
    analysis = archcalc.analyze(archcalc.loads(FLOORED))
    with pytest.raises(UnknownName) as info:
        analysis.layer("flatten")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ArchcalcError)
    assert (info.value.message, info.value.hint) == ("no layer is named 'flatten'", "did you mean 'flatten1'?")
    partial = archcalc.analyze(archcalc.loads(FLOORED), rounding="strict", partial=True)
    with pytest.raises(UnknownName, match="layer 'flatten1' was not analyzed: the analysis stopped at layer conv2"):
        partial.layer("flatten1")
