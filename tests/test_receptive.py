"""Receptive fields: the course's 3x3 stack, published AlexNet/VGG16 tables, dilation, branches."""
import json

import pytest
from click.testing import CliRunner
from conftest import SPECS, spec_text
from kind_table import each_row

import archcalc
from archcalc.analysis.receptive import receptive_fields
from archcalc.cli import main
from archcalc.layers import REGISTRY
from archcalc.layers.receptive import AxisField


def fields_of(text_or_name, **options):
    if text_or_name.endswith(".yaml"):
        spec = archcalc.load(str(SPECS / text_or_name))
    else:
        spec = archcalc.loads(text_or_name)
    analysis = archcalc.analyze(spec, **options)
    return analysis, receptive_fields(analysis)


def test_three_3x3_convs_see_7x7_with_27_against_49_c_squared_weights():
    """Course, slides 184-186: three stacked 3x3 filters see 7x7, with 3x3x3 = 27 weights per channel
    pair against 7x7 = 49 for one 7x7 layer. With C = 64 channels in and out, no bias."""
    c = 64
    stacked, stacked_fields = fields_of(spec_text((c, 32, 32), *[f"conv: {{filters: {c}, kernel: 3, bias: false}}"] * 3))
    single, single_fields = fields_of(spec_text((c, 32, 32), f"conv: {{filters: {c}, kernel: 7, bias: false}}"))
    assert [f.size for f in stacked_fields["conv3"]] == [7, 7]
    assert [f.size for f in single_fields["conv1"]] == [7, 7]
    assert [f.size for f in stacked_fields["conv1"]] == [3, 3] and [f.size for f in stacked_fields["conv2"]] == [5, 5]
    assert stacked.totals.params == 27 * c * c and single.totals.params == 49 * c * c
    assert tuple(stacked.output_shape) == tuple(single.output_shape) == (c, 26, 26)


# google-research/receptive_field, RECEPTIVE_FIELD_TABLE.md (TF-Slim alexnet_v2 and vgg_16, the same
# geometry as specs/alexnet.yaml and specs/vgg16.yaml): (RF, effective stride, effective padding);
# effective padding is how far the first unit's field starts before the input: -start.
ALEXNET = {"CONV1": (11, 4, 0), "POOL1": (19, 8, 0), "CONV2": (51, 8, 16), "CONV3": (99, 16, 32),
           "CONV4": (131, 16, 48), "CONV5": (163, 16, 64), "POOL3": (195, 32, 64)}
VGG16 = {"conv1": (3, 1, 1), "pool1": (6, 2, 2), "conv3": (10, 2, 4), "pool2": (16, 4, 6), "conv5": (24, 4, 10),
         "conv6": (32, 4, 14), "pool3": (44, 8, 18), "conv8": (60, 8, 26), "conv9": (76, 8, 34),
         "pool4": (100, 16, 42), "conv11": (132, 16, 58), "conv12": (164, 16, 74), "pool5": (212, 32, 90),
         # not in the table: conv5_3 = pool5 - (2-1)*16 (a 2x2 pool adds one jump), the widely quoted 196
         "conv13": (196, 16, 90)}


@pytest.mark.parametrize("name,expected", [("alexnet.yaml", ALEXNET), ("vgg16.yaml", VGG16)])
def test_published_receptive_fields(name, expected):
    _, fields = fields_of(name)
    for layer, (size, jump, padding) in expected.items():
        assert fields[layer] == (AxisField(size, jump, -padding),) * 2, layer


def test_vgg16_fully_connected_units_see_the_whole_image_and_more():
    """After flatten, one unit reads all 7x7 positions of pool5: 212 + 6*32 = 404 pixels, more than
    the 224 of the image (the rest is padding)."""
    _, fields = fields_of("vgg16.yaml")
    assert fields["fc3"][0].size == 404 and fields["fc3"][0].start == -90


def test_dilation():
    """Yu & Koltun (2016): 3x3 convolutions dilated 1, 2, 4 see 3, 7 and 15 pixels."""
    dilated = [f"conv: {{filters: 2, kernel: 3, dilation: {d}, padding: same}}" for d in (1, 2, 4)]
    _, fields = fields_of(spec_text((1, 32, 32), *dilated))
    assert [fields[name][0].size for name in ("conv1", "conv2", "conv3")] == [3, 7, 15]
    assert all(fields[name][0].jump == 1 for name in ("conv1", "conv2", "conv3"))


def test_per_axis_kernels_strides_and_paddings():
    _, fields = fields_of(spec_text((1, 20, 19), "conv: {filters: 1, kernel: [3, 5], stride: [1, 2], padding: [1, 2]}",
                                    "maxpool: {kernel: 2}"))
    assert fields["conv1"] == (AxisField(3, 1, -1), AxisField(5, 2, -2))
    assert fields["pool1"] == (AxisField(4, 2, -1), AxisField(7, 4, -2))


def test_branches_take_the_largest_field():
    text = """
input: [4, 16, 16]
layers:
  - conv: {filters: 4, kernel: 5, padding: 2, name: wide}
  - conv: {filters: 4, kernel: 3, padding: 1, inputs: input, name: narrow}
  - add: {inputs: [narrow, wide], name: sum}
  - concat: {inputs: [narrow, input], name: joined}
  - conv: {filters: 4, kernel: 3, padding: 1, inputs: sum, name: after}
  - concat: {inputs: [after, joined], name: out}
"""
    _, fields = fields_of(text)
    assert fields["sum"][0] == AxisField(5, 1, -2)
    assert fields["joined"][0] == AxisField(3, 1, -1)
    assert fields["after"][0].size == 7 and fields["out"][0].size == 7


def test_global_pool_and_flatten_see_everything():
    _, fields = fields_of(spec_text((3, 8, 8), "conv: {filters: 2, kernel: 3}", "globalavgpool", "dense: 2"))
    assert fields["gap1"] == (AxisField(8, 0, 0),) * 2          # 3 + (6-1)*1 = the 8 input pixels
    assert fields["fc1"] == fields["gap1"]


def test_adaptive_pool_that_divides_is_a_plain_pool():
    _, fields = fields_of(spec_text((1, 12, 12), "adaptiveavgpool: 3"))
    assert fields["pool1"] == (AxisField(4, 4, 0),) * 2


def test_sequences_have_no_spatial_field():
    _, fields = fields_of(spec_text({"steps": 7, "features": 10}, "rnn: 20", "dense: 4"))
    assert fields == {"rnn1": (), "fc1": ()}


@each_row("kind,fragment,input_shape")
def test_every_kind_has_a_field(kind, fragment, input_shape):
    """One field per spatial axis of the network input, none for a sequence. A kind on flat vectors
    is reached from a 3-pixel 1D map through a 3-wide conv and flatten, whose one unit sees all 3
    pixels: the kind must pass that field on. A kind whose output has no spatial axes sees its
    whole input map, the same for every unit (jump 0). A kind that reads nothing sees nothing."""
    if not REGISTRY[kind].reads_input:
        analysis, fields = fields_of(spec_text(input_shape, fragment))
        assert fields[analysis.layers[0].name] == ()
    elif isinstance(input_shape, dict):  # a sequence has no spatial axes: nothing to see
        analysis, fields = fields_of(spec_text(input_shape, fragment))
        assert fields[analysis.layers[-1].name] == ()
    elif len(input_shape) == 1:
        analysis, fields = fields_of(spec_text((1, 3), f"conv: {{filters: {input_shape[0]}, kernel: 3}}", "flatten",
                                               fragment))
        assert analysis.layers[-1].kind == kind and tuple(analysis.layers[-1].input_shape) == input_shape
        assert fields[analysis.layers[-1].name] == (AxisField(3, 0, 0),)
    else:
        analysis, fields = fields_of(spec_text(input_shape, fragment))
        field = fields[analysis.layers[0].name]
        assert len(field) == len(input_shape) - 1
        assert all(axis.size >= 1 and axis.jump >= 0 for axis in field)
        if len(analysis.output_shape) == 1:  # flatten, a global pool
            assert field == tuple(AxisField(size, 0, 0) for size in input_shape[1:])


def test_cli_columns_and_json():
    runner = CliRunner()
    table = runner.invoke(main, ["inspect", str(SPECS / "vgg16.yaml"), "--receptive-field"]).output
    assert "212x212" in table and "jump" in table
    data = json.loads(runner.invoke(main, ["inspect", str(SPECS / "alexnet.yaml"), "--rf", "-f", "json"]).output)
    pool3 = next(layer for layer in data["layers"] if layer["name"] == "POOL3")
    assert pool3["receptive_field"] == {"size": [195, 195], "jump": [32, 32], "start": [-64, -64]}
    assert "receptive_field" in data["conventions"]
    plain = json.loads(runner.invoke(main, ["inspect", str(SPECS / "alexnet.yaml"), "-f", "json"]).output)
    assert "receptive_field" not in plain["layers"][0]


ONE_D = [  # 1D layer lists; True: exact (no upsampling), False: an enclosing bound
    (["conv: {filters: 2, kernel: 3}", "conv: {filters: 2, kernel: 3}", "conv: {filters: 2, kernel: 3}"], True),
    (["conv: {filters: 2, kernel: 5, stride: 2, padding: 2, rounding: floor}",
      "avgpool: {kernel: 3, stride: 2, rounding: floor}", "conv: {filters: 2, kernel: 3, dilation: 3, padding: 3}"],
     True),
    (["conv: {filters: 2, kernel: 3, padding: 1}", "avgpool: 2", "conv: {filters: 2, kernel: 3, padding: 1}",
      "upconv: {filters: 2, kernel: 2, stride: 2}", "conv: {filters: 2, kernel: 3, padding: 1}"], False),
    (["conv: {filters: 2, kernel: 3, stride: 2, padding: 1, rounding: floor}", "avgpool: 2",
      "upconv: {filters: 2, kernel: 3, stride: 2, padding: 1, output_padding: 1}", "upsample: {scale: 2, mode: linear}",
      "conv: {filters: 2, kernel: 3, padding: 1}"], False),
    (["conv: {filters: 2, kernel: 3, padding: 1}", "upsample: 3", "conv: {filters: 2, kernel: 3, padding: 1}"], False),
]


@pytest.mark.parametrize("layers,exact", ONE_D, ids=[" | ".join(row[0]) for row in ONE_D])
def test_fields_match_pytorchs_gradients(layers, exact):
    """The input pixels a unit's gradient reaches (weights of 1, so nothing cancels) are its field:
    exactly through convolutions and pools, within the bound after an upsampling."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    analysis, fields = fields_of(spec_text((2, 96), *layers))
    modules = []
    for stats in analysis.layers:
        layer = stats.layer
        if stats.kind == "conv":
            modules.append(nn.Conv1d(2, 2, layer.kernel, layer.stride, layer.padding, layer.dilation))
        elif stats.kind == "avgpool":
            modules.append(nn.AvgPool1d(layer.kernel, layer.stride or layer.kernel))
        elif stats.kind == "convtranspose":
            modules.append(nn.ConvTranspose1d(2, 2, layer.kernel, layer.stride, layer.padding, layer.output_padding))
        else:
            modules.append(nn.Upsample(scale_factor=layer.scale, mode=layer.mode))
    net = nn.Sequential(*modules).double()
    for parameter in net.parameters():
        nn.init.constant_(parameter, 1.0)
    x = torch.ones(1, 2, 96, dtype=torch.float64, requires_grad=True)
    y = net(x)
    assert tuple(y.shape[1:]) == tuple(analysis.output_shape)
    field = fields[analysis.layers[-1].name][0]
    middle = y.shape[-1] // 2
    for unit in range(middle, middle + 6):
        x.grad = None
        y[0, 0, unit].backward(retain_graph=True)
        reached = torch.nonzero(x.grad[0].sum(0)).flatten().tolist()
        first, last = field.start + unit * field.jump, field.start + unit * field.jump + field.size - 1
        if exact:
            assert (reached[0], reached[-1]) == (first, last)
        else:
            assert first <= reached[0] and reached[-1] <= last
