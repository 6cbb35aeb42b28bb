"""Shapes as types: a sequence, a channels-first feature map and a flat vector never pass for
one another, and merges (add, concat) keep their inputs' layout or refuse to mix layouts."""
import pytest

import archcalc
from archcalc.layers import FeatureMap, Steps, Vector

SEQ = "{steps: %d, features: %d}"


def two_inputs(a: str, b: str, *layers: str) -> str:
    body = "\n".join(f"  - {layer}" for layer in layers)
    return f"inputs:\n  a: {a}\n  b: {b}\nlayers:\n{body}\n"


def test_equal_only_within_one_layout():
    assert Steps((3, 4)) == Steps((3, 4)) and FeatureMap((3, 4)) == FeatureMap((3, 4))
    assert Steps((3, 4)) != FeatureMap((3, 4))
    assert Vector((4,)) != Steps((4,)) and Vector((4,)) != (4,)  # not even a plain tuple
    assert len({Steps((3, 4)), FeatureMap((3, 4)), Steps((3, 4))}) == 2
    assert FeatureMap((8, 5, 5)).like((16, 3, 3)) == FeatureMap((16, 3, 3))
    assert Steps((7, 10)).like((7, 4)).steps == 7


# (a, b, concat arguments, expected output, torch.cat's dim on the batched tensors (N, ...))
CONCATS = [
    pytest.param(SEQ % (3, 2), SEQ % (3, 5), "", Steps((3, 7)), -1, id="sequences on features (default)"),
    pytest.param(SEQ % (3, 2), SEQ % (3, 5), ", axis: 1", Steps((3, 7)), 2, id="sequences, axis 1 = features"),
    pytest.param(SEQ % (3, 4), SEQ % (5, 4), ", axis: 0", Steps((8, 4)), 1, id="sequences, axis 0 = steps"),
    pytest.param("[3, 8, 8]", "[5, 8, 8]", "", FeatureMap((8, 8, 8)), 1, id="maps on channels"),
    pytest.param("[3, 10]", "[3, 6]", ", axis: 1", FeatureMap((3, 16)), 2, id="1d maps along their length"),
    pytest.param("[3]", "[4]", "", Vector((7,)), 1, id="vectors"),
]


def _batched(text: str, batch: int = 2) -> tuple:
    shape = archcalc.loads(two_inputs(text, text, "concat: {inputs: [a, b]}")).inputs["a"]
    return (batch, *shape)


@pytest.mark.parametrize("a,b,arguments,expected,dim", CONCATS)
def test_concat_keeps_the_layout_and_matches_torch_cat(a, b, arguments, expected, dim):
    result = archcalc.analyze(archcalc.loads(two_inputs(a, b, f"concat: {{inputs: [a, b]{arguments}}}")))
    assert result.output_shape == expected  # the type is the layout: Steps, FeatureMap or Vector
    torch = pytest.importorskip("torch")
    joined = torch.cat([torch.zeros(_batched(a)), torch.zeros(_batched(b))], dim=dim)
    assert tuple(joined.shape[1:]) == tuple(expected)


@pytest.mark.parametrize("a,b,arguments,expected,dim", CONCATS)
def test_the_backend_builds_the_same_layout(a, b, arguments, expected, dim):
    torch = pytest.importorskip("torch")
    from archcalc.backend import build

    model = build(archcalc.loads(two_inputs(a, b, f"concat: {{inputs: [a, b]{arguments}}}")))
    y = model(torch.zeros(_batched(a)), torch.zeros(_batched(b)))
    assert tuple(y.shape[1:]) == tuple(expected)


def test_layernorm_after_a_sequence_concat_normalises_each_step():
    """Two [3, 2] sequences joined on features -> [3, 4]; nn.LayerNorm(4) has 2*4 = 8 params (not 24)."""
    text = two_inputs(SEQ % (3, 2), SEQ % (3, 2), "concat: {inputs: [a, b]}", "layernorm", "dense: 5", "lstm: 6")
    result = archcalc.analyze(archcalc.loads(text))
    assert result.layer("ln1").params == 8
    assert result.output_shape == Steps((3, 6))
    torch = pytest.importorskip("torch")
    assert sum(p.numel() for p in torch.nn.LayerNorm(4).parameters()) == 8
    from archcalc.backend import verify
    assert verify(result, device="cpu").ok


def test_add_of_sequences_is_a_sequence():
    result = archcalc.analyze(archcalc.loads(two_inputs(SEQ % (3, 4), SEQ % (3, 4), "add: {inputs: [a, b]}")))
    assert result.output_shape == Steps((3, 4))


@pytest.mark.parametrize("kind", ["add", "concat"])
@pytest.mark.parametrize("a,b,first,second", [
    ("[3, 4]", SEQ % (3, 4), "the feature map 3x4", "the sequence 3x4 (TxF)"),
    (SEQ % (3, 4), "[3, 4]", "the sequence 3x4 (TxF)", "the feature map 3x4"),
    ("[4]", "[4, 5]", "the flat vector 4", "the feature map 4x5"),
    ("[4, 5]", "[20]", "the feature map 4x5", "the flat vector 20"),
])
def test_merging_two_layouts_is_refused_where_the_inputs_are_written(kind, a, b, first, second):
    text = two_inputs(a, b, f"{kind}: {{inputs: [a, b]}}")
    with pytest.raises(archcalc.SpecError) as info:
        archcalc.analyze(archcalc.loads(text, "mixed.yaml"))
    error = info.value
    assert error.message == f"{kind} joins inputs of one layout, got {first} and {second}"
    assert error.layer == f"{kind}1" and (error.location.path, error.location.line) == ("mixed.yaml", 5)


def test_a_sequence_input_overridden_by_sizes_stays_a_sequence():
    spec = archcalc.loads("input: {steps: 25, features: 4}\nlayers:\n  - rnn: 8\n")
    assert archcalc.analyze(spec, input_shape=(30, 4)).input_shape == Steps((30, 4))
    image = archcalc.loads("input: [3, 8, 8]\nlayers:\n  - conv: {filters: 2, kernel: 3}\n")
    assert archcalc.analyze(image, input_shape=(3, 9, 9)).output_shape == FeatureMap((2, 7, 7))
