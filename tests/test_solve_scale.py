"""solve's cost (issue 11: 20,000 layers took 40 s, 200,000 over 120 s): every size is judged in
one walk (analysis.walk.valid_inputs), and its answers are those of analyzing each size alone."""
import time

import pytest
from conftest import SPECS, shipped

import archcalc
from archcalc.analysis.walk import valid_inputs
from archcalc.errors import SpecError
from archcalc.views import solve as solver


def analyzed_alone(spec, shape) -> bool:
    """The definition: analyze accepts the spec at this input."""
    try:
        archcalc.analyze(spec, input_shape=shape, input_hint=False)  # valid or not; no fixes needed
    except SpecError:
        return False
    return True


def varied(spec):
    """(axes varied together, then each alone) of the spec's input, as solve varies them."""
    axes, _ = solver._varied_axes(spec.input_shape)
    return [axes, *((axis,) for axis in axes)] if len(axes) > 1 else [axes]


QUICK_LAYERS = 3  # specs of more layers take a second or more of CPU (96 sizes, each analyzed alone): slow


def spec_cases():
    for path in sorted(SPECS.glob("*.yaml")):
        small = len(shipped(path).spec.nodes) <= QUICK_LAYERS
        yield pytest.param(path, id=path.stem, marks=[] if small else [pytest.mark.slow])


@pytest.mark.parametrize("path", list(spec_cases()))
def test_solve_walk_agrees_with_analyzing_each_size_alone(path):
    spec = archcalc.load(path)
    if len(spec.inputs) > 1 or len(spec.input_shape) < 2:
        pytest.skip("solve varies the one input's spatial sizes")
    for axes in varied(spec):
        shapes = [solver._resized(spec.input_shape, axes, size) for size in range(1, 97)]
        assert valid_inputs(spec, shapes) == [analyzed_alone(spec, shape) for shape in shapes], axes


def test_solve_walk_agrees_on_branches_and_failures():
    """Merges whose branches disagree at some sizes (a 3x3 conv against a 1x1 one, both strided),
    a layer that fails for some sizes only, and a side output no other layer reads."""
    spec = archcalc.loads("""
input: [3, 16, 16]
outputs: [sum, side]
layers:
  - conv: {filters: 4, kernel: 3, stride: 2, padding: 1, name: a}
  - conv: {filters: 4, kernel: 1, stride: 2, inputs: input, name: b, rounding: floor}
  - add: {inputs: [a, b], name: sum}
  - maxpool: {kernel: 3, stride: 3, inputs: input, name: side}
""")
    shapes = [solver._resized(spec.input_shape, (1, 2), size) for size in range(1, 200)]
    found = valid_inputs(spec, shapes)
    assert found == [analyzed_alone(spec, shape) for shape in shapes]
    assert 0 < sum(found) < len(found)


def test_solve_merge_reading_one_layer_twice():
    """Found by the adversarial suite: an add reading the same layer twice (x + input + x) crashed
    solve with a KeyError (its state was dropped once per mention); PyTorch adds it twice too."""
    spec = archcalc.loads("""
input: [3, 20]
layers:
  - conv: {filters: 3, kernel: 3, padding: same, name: x}
  - add: {inputs: [x, input, x]}
""")
    shapes = [solver._resized(spec.input_shape, (1,), size) for size in range(1, 40)]
    assert valid_inputs(spec, shapes) == [analyzed_alone(spec, shape) for shape in shapes] == [True] * 39
    assert "L: 1 to 1024 (every size): 1024 sizes" in solver.render_text(solver.solve(spec))


@pytest.mark.parametrize("layers", [20_000])
def test_solve_on_a_deep_repeat_is_near_linear(layers):
    """A repeat of 3x3 'same' convs then a 2x2 pool of stride 2: the course's rule (D-2)/2+1 is whole
    for even D only, so the sizes are 2, 4, ..., 1024; before, each of the 1,024 sizes was analyzed
    alone (about 6 s per 1,000 layers: 2 minutes here)."""
    spec = archcalc.loads(f"""
input: [3, 32, 32]
layers:
  - repeat: {{times: {layers}, layers: [{{conv: {{filters: 3, kernel: 3, padding: 1}}}}]}}
  - maxpool: 2
""")
    started = time.process_time()
    solution = solver.solve(spec)
    assert time.process_time() - started < 30  # about 1.5 s on a 2-core machine
    (axis,) = solution.axes
    assert axis.sizes == tuple(range(2, 1025, 2))
    assert solver.sizes_text(axis) == "2, 4, 6, ..., 1024 (every 2): 512 sizes"


def test_solve_judges_a_layer_with_many_unread_outputs_once():
    """Found by the adversarial suite: a chunk of 150,000 outputs that no layer reads (the network's
    outputs) took solve 100 s: each output's candidates were checked in turn, 1,024 of them, though
    a candidate has every output of a layer or none."""
    spec = archcalc.loads("input: {steps: 3, features: 5}\nlayers:\n  - chunk: {chunks: 150000}\n")
    started = time.process_time()
    solution = solver.solve(spec)
    assert time.process_time() - started < 30  # about 1 s on a 2-core machine
    assert "torch.chunk cuts the 3 of axis 0 into parts of 1: 3 of them (1+1+1), not 150000" in \
        solver.render_text(solution)


def test_solve_walk_agrees_on_several_outputs_read_and_unread():
    """A split whose parts agree at some sizes and not at others, one part read by a conv that
    fails for small sizes, the other two the network's outputs."""
    spec = archcalc.loads("""
input: [6, 12]
outputs: [parts.0, parts.2, c]
layers:
  - split: {sizes: [1, 2, 3], name: parts}
  - conv: {filters: 2, kernel: 5, stride: 3, inputs: parts.1, name: c}
""")
    shapes = [solver._resized(spec.input_shape, (1,), size) for size in range(1, 60)]
    found = valid_inputs(spec, shapes)
    assert found == [analyzed_alone(spec, shape) for shape in shapes]
    assert 0 < sum(found) < len(found)
