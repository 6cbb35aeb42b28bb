"""Branching networks: published parameter counts, blocks, and clean errors for bad graphs."""
import pytest
from conftest import SPECS

import archcalc
from archcalc.layers import FeatureMap

# torchvision's model tables (weights' num_params); v1.5 puts the stride on the 3x3
PUBLISHED = [
    ("resnet18.yaml", 11_689_512, (1000,)),
    ("resnet34.yaml", 21_797_672, (1000,)),
    ("resnet50.yaml", 25_557_032, (1000,)),
]


@pytest.mark.parametrize("name,params,output", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_resnet_published_params(name, params, output):
    result = archcalc.analyze(archcalc.load(str(SPECS / name)))
    assert result.totals.params == params
    assert tuple(result.output_shape) == output


def test_resnet50_stage_shapes():
    """torchvision: layer1 256x56x56, layer2 512x28x28, layer3 1024x14x14, layer4 2048x7x7."""
    result = archcalc.analyze(archcalc.load(str(SPECS / "resnet50.yaml")))
    adds = [s for s in result.layers if s.kind == "add"]
    assert len(adds) == 16
    assert [tuple(adds[i].output_shape) for i in (2, 6, 12, 15)] == [(256, 56, 56), (512, 28, 28),
                                                              (1024, 14, 14), (2048, 7, 7)]
    shortcut = result.layer("bottleneck_down2.downsample")
    assert shortcut.node.inputs == ("bottleneck2.relu3",)


def test_inception_3a_channels():
    """GoogLeNet table 1: inception (3a) outputs 28x28x256, (3b) 28x28x480."""
    result = archcalc.analyze(archcalc.load(str(SPECS / "inception.yaml")))
    assert result.layer("inception3a.concat1").output_shape == FeatureMap((256, 28, 28))
    assert result.output_shape == FeatureMap((480, 28, 28))


def test_unet_skips_concatenate_encoder_features():
    result = archcalc.analyze(archcalc.load(str(SPECS / "unet_small.yaml")))
    assert result.layer("skip2").node.inputs == ("up2", "enc2.conv2")
    assert result.layer("skip2").output_shape == FeatureMap((64, 32, 32))
    assert result.output_shape == FeatureMap((2, 64, 64))


def test_block_parameters_and_defaults():
    text = """
input: [4, 8, 8]
blocks:
  pair:
    params: {filters: null, kernel: 3}
    layers:
      - conv: {filters: $filters, kernel: $kernel, padding: same, name: a}
      - conv: {filters: $filters, kernel: 1, name: b}
      - add: {inputs: [a, b]}
layers:
  - pair: 6
  - pair: {filters: 2, kernel: 5, name: second}
"""
    result = archcalc.analyze(archcalc.loads(text))
    assert [s.name for s in result.layers] == ["pair1.a", "pair1.b", "pair1.add1",
                                               "second.a", "second.b", "second.add1"]
    assert result.layer("second.a").params == 6 * 25 * 2 + 2
    assert result.layer("second.a").node.inputs == ("pair1.add1",)


def test_spec_params_and_override():
    path = str(SPECS / "min_char_rnn.yaml")
    h, v = 100, 65
    assert archcalc.analyze(archcalc.load(path)).totals.params == 2 * h * v + h * h + h + v
    v = 27
    assert archcalc.analyze(archcalc.load(path, {"vocab": v})).totals.params == 2 * h * v + h * h + h + v


BAD_GRAPHS = [
    ("input: [4]\nlayers:\n  - dense: {units: 2, inputs: later}\n  - dense: {units: 2, name: later}\n",
     "inputs: no earlier layer is named 'later'", "no cycles"),
    ("input: [4]\nlayers:\n  - dense: {units: 2, name: a, inputs: a}\n",
     "layer a cannot read its own output (that would be a cycle)", ""),
    ("input: [4]\nlayers:\n  - dense: {units: 2, name: a}\n  - dense: {units: 3, inputs: input}\n",
     "the output of layer a is never used", "outputs:"),
    ("input: [4]\nlayers:\n  - dense: {units: 2, name: a}\n  - dense: {units: 3, inputs: [a, input]}\n",
     "dense reads one input, but 2 are given (a, input)", "add"),
    ("input: [4]\nlayers:\n  - dense: {units: 2, name: a}\n  - add: {inputs: [a, input]}\n",
     "add needs shapes that broadcast (each axis equal, or 1 in one of them), got 2 and 4", "projection"),
    ("input: [4]\nblocks:\n  b: {params: {units: null}, layers: [dense: $unit]}\nlayers:\n  - b: 3\n",
     "unknown parameter $unit", "did you mean '$units'?"),
    ("input: [4]\nblocks:\n  b: {params: {units: null}, layers: [dense: $units]}\nlayers:\n  - b: {unit: 3}\n",
     "unknown parameter 'unit' for block b", "did you mean 'units'?"),
    ("input: [4]\noutputs: [nope]\nlayers:\n  - dense: 2\n", "outputs: no layer is named 'nope'", ""),
]


@pytest.mark.parametrize("text,message,hint", BAD_GRAPHS, ids=[b[1][:30] for b in BAD_GRAPHS])
def test_bad_graphs_are_clean_errors(text, message, hint):
    with pytest.raises(archcalc.SpecError) as info:
        archcalc.analyze(archcalc.loads(text, "graph.yaml"))
    assert info.value.message == message
    assert hint in info.value.hint
    assert info.value.location is not None and info.value.location.path == "graph.yaml"


def test_an_input_nothing_reads_is_an_error():
    text = "inputs: {a: [4], b: [3]}\nlayers:\n  - dense: {units: 2, inputs: a}\n"
    with pytest.raises(archcalc.SpecError) as info:
        archcalc.loads(text, "two.yaml")
    assert info.value.message == "no layer reads the input 'b'"
    assert (info.value.location.line, info.value.location.column) == (1, 18)
