"""Every row of the layer-kind table (tests/kind_table.py): its output shape and parameters (PyTorch's,
checked against PyTorch itself in test_backend.py), its MACs and FLOPs (the stated rules), and a row
for every registered kind; then the conventions that hold across kinds."""
import pytest
from conftest import spec_text
from kind_table import LAYER_TABLE, each_row, sizes

import archcalc
from archcalc.layers import REGISTRY, FeatureMap


@each_row("kind,fragment,input_shape,output,params,macs,flops")
def test_layer(kind, fragment, input_shape, output, params, macs, flops):
    stats = archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment))).layers[0]
    assert stats.kind == kind
    assert sizes(stats.output_shape) == output
    assert stats.params == params
    assert (stats.macs, stats.flops) == (macs, flops)
    assert isinstance(stats.macs, int) and isinstance(stats.flops, int)


def test_every_registered_kind_has_a_row():
    missing = sorted(set(REGISTRY) - {row.kind for row in LAYER_TABLE})
    assert not missing, f"add a row to tests/kind_table.py for each of {missing}"


@pytest.mark.parametrize("fragment,neurons", [
    ("relu", 0), ("dropout: 0.1", 0), ("flatten", 0),                 # create no new neurons
    ("maxpool: 2", 8 * 2 * 2), ("batchnorm", 8 * 4 * 4), ("lrn: 3", 8 * 4 * 4),  # pools and norms count
])
def test_neuron_convention(fragment, neurons):
    result = archcalc.analyze(archcalc.loads(spec_text((8, 4, 4), fragment)))
    assert result.totals.neurons == neurons


def test_huge_counts_are_exact_integers():
    result = archcalc.analyze(archcalc.loads(spec_text((1_000_000,), "dense: 1000000", "dense: 1000000")))
    assert result.totals.params == 2 * (10**12 + 10**6)
    assert isinstance(result.totals.params, int)
    assert result.totals.param_bytes == 8 * (10**12 + 10**6)


def test_batchnorm_buffers_are_not_params():
    """nn.BatchNorm2d(64): parameters weight, bias (64 each); buffers running_mean, running_var (64
    each) and num_batches_tracked (one int64, 8 bytes in any dtype)."""
    result = archcalc.analyze(archcalc.loads(spec_text((64, 8, 8), "batchnorm")))
    assert result.totals.params == 128 and result.totals.buffers == 129
    assert result.totals.buffer_bytes == 128 * 4 + 8


def test_defaults_apply_to_bare_kinds_and_family():
    text = spec_text((3, 32, 32), "conv2d: 8", "conv", defaults="{conv: {filters: 4, kernel: 3, padding: same}}")
    result = archcalc.analyze(archcalc.loads(text))
    assert [tuple(s.output_shape) for s in result.layers] == [(8, 32, 32), (4, 32, 32)]


def test_automatic_names_and_repeat():
    text = spec_text((3, 8, 8), "conv: {filters: 2, kernel: 3, padding: same, name: first}",
                     "repeat: {times: 2, layers: [{conv: {filters: 2, kernel: 3, padding: same}}, relu]}",
                     "maxpool: 2", "flatten", "dense: 3")
    result = archcalc.analyze(archcalc.loads(text))
    assert [s.name for s in result.layers] == ["first", "conv2", "relu1", "conv3", "relu2", "pool1",
                                               "flatten1", "fc1"]
    assert result.layers[1].node.group == (("repeat1", 1),)


def test_trainable_false():
    result = archcalc.analyze(archcalc.loads(spec_text((10,), "dense: {units: 5, trainable: false}", "dense: 2")))
    assert result.totals.params == 55 + 12
    assert result.totals.trainable_params == 12


@pytest.mark.parametrize("dtype,batch,expected", [("float32", 1, 4 * 10), ("float16", 3, 2 * 30),
                                                  ("float64", 2, 8 * 20), ("int8", 5, 50)])
def test_activation_bytes(dtype, batch, expected):
    result = archcalc.analyze(archcalc.loads(spec_text((4,), "dense: 10")), batch=batch, dtype=dtype)
    assert result.totals.activation_bytes == expected


def test_residual_add_and_concat():
    text = """
input: [8, 16, 16]
layers:
  - conv: {filters: 8, kernel: 3, padding: same, name: a}
  - conv: {filters: 8, kernel: 3, padding: same, name: b}
  - add: {inputs: [b, input], name: sum}
  - conv: {filters: 4, kernel: 1, inputs: input, name: side}
  - concat: {inputs: [sum, side]}
"""
    result = archcalc.analyze(archcalc.loads(text))
    assert result.layer("sum").output_shape == FeatureMap((8, 16, 16))
    assert result.layer("sum").node.inputs == ("b", "input")
    assert result.output_shape == FeatureMap((12, 16, 16))
    assert result.layer("concat1").neurons == 0 and result.layer("sum").neurons == 8 * 16 * 16
