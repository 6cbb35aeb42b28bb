"""MACs and FLOPs: published totals (torchvision's model tables, the ResNet paper), PyTorch's own
counter, and each kind's stated FLOP rule."""
import json

import pytest
from click.testing import CliRunner
from conftest import SPECS, spec_text
from test_layers import LAYER_TABLE

import archcalc
from archcalc.cli import main


def analyzed(name, **options):
    return archcalc.analyze(archcalc.load(str(SPECS / name)), **options)


def test_vgg16_macs_are_torchvisions_15_47_gflops():
    """torchvision's table: VGG16 "GFLOPS" 15.47 = conv + dense multiply-accumulates, no bias.
    The exact count, from the architecture: 13 3x3 convs (out H*W*K * 9*C) and 3 dense layers."""
    convs = [(224, 3, 64), (224, 64, 64), (112, 64, 128), (112, 128, 128), (56, 128, 256), (56, 256, 256),
             (56, 256, 256), (28, 256, 512), (28, 512, 512), (28, 512, 512), (14, 512, 512), (14, 512, 512),
             (14, 512, 512)]
    expected = sum(size * size * out * 9 * channels for size, channels, out in convs)
    expected += 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    macs = analyzed("vgg16.yaml").totals.macs
    assert macs == expected
    assert round(macs / 1e9, 2) == 15.47


@pytest.mark.parametrize("name,params,gmacs,digits", [
    ("alexnet_torchvision.yaml", 61_100_840, 0.714, 3),   # torchvision: AlexNet_Weights, 0.714 GFLOPS
    ("resnet18.yaml", 11_689_512, 1.814, 3),              # ResNet18_Weights: 1.814
    ("resnet34.yaml", 21_797_672, 3.66, 2),               # ResNet34_Weights: 3.66
    ("resnet50.yaml", 25_557_032, 4.089, 3),              # ResNet50_Weights: 4.089
])
def test_torchvision_gflops(name, params, gmacs, digits):
    totals = analyzed(name).totals
    assert totals.params == params
    assert round(totals.macs / 1e9, digits) == gmacs


def test_resnet50_v1_is_the_papers_3_8_billion():
    """He et al. (2015), table 1: ResNet-50 has "3.8 x 10^9" FLOPs (multiply-adds). That is v1, with
    the stride on each downsampling bottleneck's first 1x1; torchvision's v1.5 moves it to the 3x3,
    which then runs on the larger map: 4.089 G."""
    text = (SPECS / "resnet50.yaml").read_text()
    v1 = text.replace("{filters: $width, kernel: 1, name: conv1}\n      - batchnorm: {name: bn1}\n      - relu\n"
                      "      - conv: {filters: $width, kernel: 3, stride: $stride, padding: 1, name: conv2}",
                      "{filters: $width, kernel: 1, stride: $stride, name: conv1}\n      - batchnorm: {name: bn1}"
                      "\n      - relu\n      - conv: {filters: $width, kernel: 3, padding: 1, name: conv2}")
    assert v1 != text
    totals = archcalc.analyze(archcalc.loads(v1)).totals
    assert totals.params == 25_557_032
    assert 3.8e9 <= totals.macs < 3.9e9


@pytest.mark.parametrize("name", ["vgg16.yaml", "alexnet_torchvision.yaml", "alexnet_grouped.yaml"])
def test_macs_match_pytorchs_flop_counter(name):
    """torch.utils.flop_counter counts 2 per multiply-accumulate of conv and matmul, no bias."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    result = analyzed(name)
    layers = []
    for stats in result.layers:
        layer, x = stats.layer, stats.input_shape
        if stats.kind == "conv":
            layers.append(torch.nn.Conv2d(x[0], layer.filters, layer.kernel, layer.stride, layer.padding,
                                          groups=layer.groups, device="meta"))
        elif stats.kind == "dense":
            layers.append(torch.nn.Linear(x[0], layer.units, device="meta"))
        elif stats.kind == "flatten":
            layers.append(torch.nn.Flatten())
        elif stats.kind in ("maxpool", "adaptiveavgpool"):
            layers.append(torch.nn.AdaptiveAvgPool2d(stats.output_shape[1:]))  # same shape, no counted FLOPs
    with FlopCounterMode(display=False) as counter:
        torch.nn.Sequential(*layers)(torch.empty(1, *result.input_shape, device="meta"))
    assert counter.get_total_flops() == 2 * result.totals.macs


# (fragment, input, MACs, FLOPs): each kind's rule, by hand
RULES = [
    # conv: output elements x C/groups x kernel volume; FLOPs 2 x MACs + bias + activation
    ("conv: {filters: 6, kernel: 3, dilation: 2, groups: 3, bias: false}", (3, 16, 16),
     6 * 12 * 12 * 1 * 9, 2 * 6 * 12 * 12 * 9),
    ("conv: {filters: 96, kernel: 11, stride: 4, activation: relu}", (3, 227, 227),
     290_400 * 363, 2 * 290_400 * 363 + 290_400 + 290_400),
    ("dense: 4096", (9216,), 9216 * 4096, 2 * 9216 * 4096 + 4096),
    ("dense: {units: 4, bias: false}", {"steps": 7, "features": 10}, 7 * 10 * 4, 2 * 7 * 10 * 4),
    ("convtranspose: {filters: 4, kernel: 2, stride: 2}", (8, 5, 5), 8 * 25 * 4 * 4, 2 * 3200 + 4 * 10 * 10),
    ("maxpool: {kernel: 3, stride: 2}", (96, 55, 55), 0, 96 * 27 * 27 * 9),    # one per value read
    ("avgpool: 2", (6, 24, 24), 0, 6 * 12 * 12 * 4),
    ("globalavgpool", (512, 7, 7), 0, 512 * 49),
    ("adaptiveavgpool: 2", (1, 5, 5), 0, 3 * 3 * 4),                           # windows [0,3) and [2,5)
    ("batchnorm", (64, 8, 8), 0, 2 * 64 * 64),
    ("layernorm", (10, 4), 0, 7 * 40),
    ("lrn: 5", (96, 27, 27), 0, 13 * 96 * 27 * 27),
    ("relu", (8, 4, 4), 0, 128),
    ("add: {inputs: [input, input, input]}", (8, 4, 4), 0, 2 * 128),
    ("flatten", (256, 6, 6), 0, 0),
    ("dropout", (10,), 0, 0),
    ("concat: {inputs: [input, input]}", (3, 4, 4), 0, 0),
    # rnn: every step multiplies W_ih (10x20) and W_hh (20x20); 2 bias vectors of 20 added per step
    ("rnn: 20", {"steps": 7, "features": 10}, 7 * (20 * 10 + 20 * 20), 2 * 7 * 600 + 7 * 40),
    ("embedding: {vocabulary: 1000, dim: 64}", {"steps": 12}, 0, 0),          # a lookup
    # --- issue 13 (kinds-a): n-1 operations per element for n inputs, one multiply per scaled element ---
    ("multiply: {inputs: [input, input, input]}", (8, 4, 4), 0, 2 * 128),
    ("subtract: {inputs: [input, input]}", (8, 4, 4), 0, 128),
    ("scale: 0.5", (96, 7, 7), 0, 96 * 49),
    # activations, parameters or not: 1 per element (the stated convention)
    ("silu", (8, 4, 4), 0, 128), ("gelu: {approximate: tanh}", (8,), 0, 8), ("logsoftmax", (10,), 0, 10),
    ("prelu: 8", (8, 4, 4), 0, 128),
    ("conv: {filters: 4, kernel: 1, activation: hardswish}", (2, 3, 3), 36 * 2, 2 * 72 + 36 + 36),
    # norms with each sample's statistics: 5 per element, + 2 with gamma and beta; rmsnorm 3, + 1 weight;
    # an instancenorm that keeps running statistics folds them at inference: 2, as batchnorm
    ("layernorm: {axes: channels}", (96, 7, 7), 0, 7 * 96 * 49),
    ("groupnorm: 8", (32, 4, 4), 0, 7 * 512),
    ("instancenorm", (16, 3, 3), 0, 5 * 144),
    ("instancenorm: {track_running_stats: true}", (16, 3, 3), 0, 2 * 144),
    ("rmsnorm", {"steps": 7, "features": 16}, 0, 4 * 112),
    ("rmsnorm: {affine: false}", {"steps": 7, "features": 16}, 0, 3 * 112),
]


@pytest.mark.parametrize("fragment,input_shape,macs,flops", RULES, ids=[row[0] for row in RULES])
def test_flop_rules(fragment, input_shape, macs, flops):
    stats = archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment))).layers[0]
    assert (stats.macs, stats.flops) == (macs, flops)


@pytest.mark.parametrize("kind,fragment,input_shape", [row[:3] for row in LAYER_TABLE],
                         ids=[f"{row[0]}-{i}" for i, row in enumerate(LAYER_TABLE)])
def test_every_kind_counts_exact_integers(kind, fragment, input_shape):
    stats = archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment))).layers[0]
    assert isinstance(stats.macs, int) and isinstance(stats.flops, int)
    assert 0 <= 2 * stats.macs <= stats.flops


def test_batch_scales_the_totals_not_the_per_sample_figures():
    one, eight = analyzed("alexnet.yaml"), analyzed("alexnet.yaml", batch=8)
    assert eight.totals.macs == one.totals.macs and eight.totals.flops == one.totals.flops
    assert eight.totals.batch_macs == 8 * one.totals.macs
    assert eight.totals.batch_flops == 8 * one.totals.flops
    assert [s.macs for s in eight.layers] == [s.macs for s in one.layers]


def test_report_and_json_carry_macs_and_flops():
    runner = CliRunner()
    table = runner.invoke(main, ["inspect", str(SPECS / "vgg16.yaml"), "--batch", "2"]).output
    assert "15.47 GMACs" in table and "per sample" in table and "per batch of 2: 30.94 GMACs" in table
    data = json.loads(runner.invoke(main, ["inspect", str(SPECS / "vgg16.yaml"), "-f", "json", "-b", "2"]).output)
    assert data["layers"][0]["macs"] == 224 * 224 * 64 * 27
    assert data["totals"]["macs"] == 15_470_264_320 and data["totals"]["batch_macs"] == 2 * 15_470_264_320
    assert {"macs", "flops"} <= set(data["conventions"])
    assert {"batch_flops", "flops"} <= set(data["totals"])
