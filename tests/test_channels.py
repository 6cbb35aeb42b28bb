"""Layers that move or view values: split and chunk (several outputs, read by name), channel_shuffle,
pad, reshape, permute, identity. Their shapes against PyTorch are rows of the layer table; here
their names, their refusals, their fields, whether PyTorch copies, and their values."""
import json

import pytest
from click.testing import CliRunner
from conftest import analyze_text, spec_text
from kind_table import LAYER_TABLE

import archcalc
from archcalc.analysis.receptive import receptive_fields
from archcalc.analysis.walk import valid_inputs
from archcalc.cli import main
from archcalc.layers import REGISTRY, FeatureMap, Outputs
from archcalc.layers.channels import Movement

SHUFFLE_UNIT = """
input: [8, 6, 6]
blocks:
  unit:                         # ShuffleNetV2's unit: half passes, half is convolved, then shuffled
    layers:
      - chunk: {chunks: 2, name: halves}
      - conv: {filters: 4, kernel: 1, inputs: halves.1}
      - concat: {inputs: [halves.0, conv1]}
      - channel_shuffle: 2
layers:
  - repeat: {times: 2, layers: [unit]}
  - split: {sizes: [3, 5], name: parts}
  - conv: {filters: 2, kernel: 1, inputs: parts.1, name: head}
outputs: [head, parts.0]
"""


def test_outputs_are_read_by_name_in_blocks_and_repeats():
    analysis = analyze_text(SHUFFLE_UNIT)
    assert analysis.layer("unit2.conv1").node.inputs == ("unit2.halves.1",)
    assert analysis.layer("unit2.concat1").node.inputs == ("unit2.halves.0", "unit2.conv1")
    assert analysis.layer("unit2.halves").node.inputs == ("unit1.shuffle1",)
    assert analysis.layer("parts").output_shape == Outputs((FeatureMap((3, 6, 6)), FeatureMap((5, 6, 6))))
    assert analysis.output_shapes == {"head": FeatureMap((2, 6, 6)), "parts.0": FeatureMap((3, 6, 6))}
    assert analysis.totals.params == 2 * (4 * 4 + 4) + 5 * 2 + 2


def test_a_repeated_split_is_read_in_its_own_iteration():
    analysis = analyze_text("""
        input: [4, 5]
        layers:
          - repeat:
              times: 2
              layers:
                - chunk: {chunks: 2, name: c}
                - concat: {inputs: [c.1, c.0]}
        """)
    assert [stats.node.inputs for stats in analysis.layers] == [
        ("input",), ("c_1.1", "c_1.0"), ("concat1",), ("c_2.1", "c_2.0")]


@pytest.mark.parametrize("layers,message", [
    (["split: {sizes: [2, 2]}", "relu"], "split1 has 2 outputs; relu1 must read one of them (split1.0, split1.1)"),
    (["split: {sizes: [2, 2]}", "relu: {inputs: split1}"], "split1 has 2 outputs"),
    (["split: {sizes: [2, 2]}", "concat: {inputs: [split1.0, split1.2]}"],
     "split1 has 2 outputs, split1.0 to split1.1; there is no 'split1.2'"),
    (["split: {sizes: [2, 2]}", "relu: {inputs: split1.1}"], "output split1.0 of layer split1 is never used"),
    (["split: {sizes: [2, 2]}", "relu: {inputs: split1.0, name: split1.1}"], "two layers are named 'split1.1'"),
    (["chunk: 1"], "must be at least 2"),
    (["split: {sizes: [4]}"], "at least two"),
])
def test_reading_a_split_wrongly_is_refused(layers, message):
    with pytest.raises(archcalc.SpecError) as caught:
        archcalc.loads(spec_text((4, 3), *layers))
    assert message in caught.value.message


def test_outputs_of_a_split_by_its_name_are_all_of_them():
    spec = archcalc.loads(spec_text((4, 3), "split: {sizes: [1, 3]}") + "outputs: [split1]\n")
    assert spec.outputs == ("split1.0", "split1.1")
    assert archcalc.loads(spec_text((4, 3), "chunk: 2")).outputs == ("chunk1.0", "chunk1.1")


@pytest.mark.parametrize("fragment,shape,message", [
    ("split: {sizes: [2, 3]}", (4, 3), "the parts 2+3 = 5 do not add up to the 4 of axis 0"),
    ("split: {sizes: [2, 2], axis: 2}", (4, 3), "axis 2 does not exist in 4x3"),
    ("chunk: 4", (5, 2), "torch.chunk cuts the 5 of axis 0 into parts of 2: 3 of them (2+2+1), not 4"),
    ("channel_shuffle: 3", (4, 2, 2), "groups=3 must divide the 4 channels"),
    ("channel_shuffle: 2", (4,), "flat feature vector"),
    ("pad: {padding: 3, mode: reflect}", (1, 3), "reflect padding of 3 on an axis of 3"),
    ("pad: {padding: 4, mode: circular}", (1, 3), "circular padding of 4 on an axis of 3"),
    ("pad: [1, 1, 1]", (1, 3, 3), "padding has 3 values"),
    ("pad: [1, 1, 1, 1]", (1, 3), "at most 1 of them"),
    ("reshape: [5, -1]", (2, 3), "2x3 holds 6 values, which [5, -1] cannot hold (5 x something)"),
    ("reshape: [5, 2]", (2, 3), "which [5, 2] cannot hold (10)"),
    ("reshape: [-1, -1]", (2, 3), "only one size may be -1"),
    ("reshape: {shape: [6], sequence: true}", (2, 3), "a sequence is [T, F]"),
    ("permute: [0, 0]", (2, 3), "dims [0, 0] must order the axes 0..1 of 2x3, each once"),
])
def test_refusals_name_the_numbers(fragment, shape, message):
    with pytest.raises(archcalc.SpecError) as caught:
        archcalc.analyze(archcalc.loads(spec_text(shape, fragment)))
    assert message in caught.value.message


def test_pytorch_refuses_what_the_analyzer_refuses():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="Padding size should be less"):
        torch.nn.ReflectionPad1d(3)(torch.zeros(1, 1, 3))
    with pytest.raises(RuntimeError, match="wrapping around more than once"):
        torch.nn.CircularPad1d(4)(torch.zeros(1, 1, 3))
    assert len(torch.chunk(torch.zeros(5), 4)) == 3
    torch.nn.ReflectionPad1d(2)(torch.zeros(1, 1, 3))  # each side below the size: accepted, as here
    torch.nn.CircularPad1d(3)(torch.zeros(1, 1, 3))


def test_pad_sides_are_f_pads_order():
    """F.pad's (left, right) pairs start at the last axis: [1, 0, 2, 1] pads W by 1 left, H by 2
    on top and 1 below; the analyzer's shape and field follow that order."""
    torch = pytest.importorskip("torch")
    for padding in ([1, 0, 2, 1], [0, 3], [2, 1, 0, 0], 2):
        analysis = archcalc.analyze(archcalc.loads(spec_text((1, 4, 6), f"pad: {padding}")))
        pad = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        expected = torch.nn.functional.pad(torch.zeros(1, 1, 4, 6), pad).shape[1:]
        assert tuple(analysis.output_shape) == tuple(expected)
    field = receptive_fields(archcalc.analyze(archcalc.loads(spec_text((1, 4, 6), "pad: [1, 0, 2, 1]"))))
    assert [axis.start for axis in field["pad1"]] == [-2, -1]  # H's top 2, W's left 1


def test_a_spatial_split_shifts_its_second_fields_start():
    analysis = analyze_text("""
        input: [1, 9, 9]
        layers:
          - conv: {filters: 2, kernel: 3, stride: 2, padding: 1}
          - split: {sizes: [2, 3], axis: 2, name: s}
          - add: {inputs: [s.0, s.0]}
          - relu: {inputs: s.1}
        outputs: [add1, relu1]
        """)
    fields = receptive_fields(analysis)
    assert fields["s"] == fields["conv1"] and fields["add1"] == fields["conv1"]
    conv = fields["conv1"][1]
    assert fields["relu1"][1].start == conv.start + 2 * conv.jump and fields["relu1"][1].size == conv.size


def test_solve_follows_each_output_of_a_split():
    """valid_inputs judges each output of a split on its own: an input size is valid exactly when
    analyzing it alone succeeds (the conv tiles lengths divisible by 3, the pool odd ones)."""
    spec = archcalc.loads("""
input: [4, 9]
layers:
  - split: {sizes: [2, 2], name: s}
  - conv: {filters: 1, kernel: 3, stride: 3, inputs: s.0}
  - maxpool: {kernel: 3, stride: 2, inputs: s.1}
outputs: [conv1, pool1]
""")
    shapes = [(4, size) for size in range(1, 30)] + [(3, 9), (5, 9)]
    expected = []
    for shape in shapes:
        try:
            archcalc.analyze(spec, input_shape=shape)
            expected.append(True)
        except archcalc.SpecError:
            expected.append(False)
    assert valid_inputs(spec, shapes) == expected
    assert [shape for shape, ok in zip(shapes, expected) if ok] == [(4, 3), (4, 9), (4, 15), (4, 21), (4, 27)]


def test_every_movement_kind_states_whether_pytorch_copies():
    """A view shares its input's storage, a copy does not: each kind's ``copies`` is what PyTorch
    does on a contiguous input (each kind's first row of the kind table whose input is a map)."""
    torch = pytest.importorskip("torch")
    from archcalc.backend import build

    kinds = {kind for kind, cls in REGISTRY.items() if issubclass(cls, Movement)}
    rows = {row.kind: row for row in reversed(LAYER_TABLE) if row.kind in kinds and isinstance(row.input_shape, tuple)}
    assert set(rows) == kinds and "pad" in kinds
    for kind, row in rows.items():
        network = build(archcalc.loads(spec_text(row.input_shape, row.fragment)))
        x = torch.randn(2, *row.input_shape)
        value = network(x)
        first = value[0] if isinstance(value, tuple) else value
        shares = first.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
        assert shares != REGISTRY[kind].copies, kind


def test_values_are_pytorchs():
    """chunk halves, channel_shuffle interleaves as torchvision's view/transpose/view, reflect mirrors."""
    torch = pytest.importorskip("torch")
    from archcalc.backend import build

    x = torch.arange(2 * 6 * 2 * 2, dtype=torch.float32).reshape(2, 6, 2, 2)
    network = build(archcalc.loads(spec_text((6, 2, 2), "channel_shuffle: 3")))
    shuffled = x.view(2, 3, 2, 2, 2).transpose(1, 2).contiguous().view(2, 6, 2, 2)  # torchvision's channel_shuffle
    assert torch.equal(network(x), shuffled)
    network = build(archcalc.loads(spec_text((6, 2, 2), "chunk: 2") + "outputs: [chunk1.1, chunk1.0]\n"))
    second, first = network(x)
    assert torch.equal(first, x[:, :3]) and torch.equal(second, x[:, 3:])
    network = build(archcalc.loads(spec_text((1, 3), "pad: {padding: [2, 1], mode: reflect}")))
    assert network(torch.tensor([[[1.0, 2.0, 3.0]]])).tolist() == [[[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]]


def test_table_json_and_export_show_each_output(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "shuffle.yaml"
    path.write_text(SHUFFLE_UNIT)
    table = CliRunner().invoke(main, ["inspect", str(path)])
    assert table.exit_code == 0 and "unit1.halves" in table.output and "4x6x6, 4x6x6" in table.output
    document = json.loads(CliRunner().invoke(main, ["inspect", str(path), "--format", "json"]).output)
    parts = next(layer for layer in document["layers"] if layer["name"] == "parts")
    assert parts["output_shape"] == [[3, 6, 6], [5, 6, 6]] and parts["outputs"] == ["parts.0", "parts.1"]
    assert "outputs" not in document["layers"][1]
    source = CliRunner().invoke(main, ["export", str(path), "-o", "-"]).output
    assert "unit1_halves_0, unit1_halves_1 = self.unit1_halves(x)" in source
    assert "return head, parts_0" in source
    run = CliRunner().invoke(main, ["run", str(path), "--device", "cpu"])
    assert run.exit_code == 0 and "agrees with the analyzer on all 10 layers" in run.output


def test_dense_over_channels_is_linear_between_permutes():
    """dense with axes: channels computes torchvision's ConvNeXt step x.permute(0, 2, 3, 1) ->
    nn.Linear -> permute back, with nn.Linear's weight; its MACs are H x W x C x units."""
    torch = pytest.importorskip("torch")
    from archcalc.backend import build

    analysis = archcalc.analyze(archcalc.loads(spec_text((6, 3, 4), "dense: {units: 5, axes: channels}")))
    assert analysis.totals.macs == 3 * 4 * 6 * 5
    network = build(analysis)
    linear = next(module for module in network.modules() if isinstance(module, torch.nn.Linear))
    x = torch.randn(2, 6, 3, 4)
    assert torch.allclose(network(x), linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    with pytest.raises(archcalc.SpecError, match="applies dense at each position of a feature map"):
        archcalc.analyze(archcalc.loads(spec_text((6,), "dense: {units: 5, axes: channels}")))
