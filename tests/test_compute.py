"""MACs and FLOPs: published totals (torchvision's model tables, the ResNet paper) and PyTorch's own
counter (each kind's stated FLOP rule: the kind table, tests/kind_table.py, checked in test_layers.py)."""
import json

import pytest
from click.testing import CliRunner
from conftest import SPECS, spec_text
from kind_table import each_row

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


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # mkldnn.flags' notice, not ours
@each_row("fragment,input_shape,macs", built=True)
def test_macs_are_pytorchs_flop_count(fragment, input_shape, macs):
    """torch.utils.flop_counter counts 2 per multiply-accumulate of its matrix products and
    convolutions (the recurrent cells', too), nothing for the rest: every row of the kind table (a
    row's second layer, where it has one, multiplies by no weights). On the CPU, not the meta
    device: there a recurrent layer runs its first step only (backend/modules.py), so PyTorch
    would count one step of T; oneDNN off, whose fused LSTM kernel the counter does not see."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from archcalc.backend import build
    from archcalc.backend.plan import make_plan
    from archcalc.backend.tensors import sample_inputs

    analysis = archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment)))
    network = build(analysis, device="cpu")
    inputs = sample_inputs(torch, make_plan(analysis), 1, torch.float32, "cpu", None)
    with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as counter:
        network(*inputs)
    assert counter.get_total_flops() == 2 * macs


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
