"""Issue 13's networks written with real operations, against torchvision's figures: parameters and
convolution + linear MACs at 224 (torchvision's "GFLOPS" count them), the same parameters at other
input sizes (every one pools globally before its classifier), and PyTorch agreeing layer by layer.
scripts/zoo_check.py goes further where torchvision is installed: torchvision's weights, same outputs."""
import pytest
from conftest import SPECS

import archcalc

ZOO = [
    # spec, torchvision's parameters, its convolution + linear MACs at 224
    ("mobilenet_v2", 3_504_872, 300_774_272),
    ("mobilenet_v3_small", 2_542_856, 56_510_400),
    ("efficientnet_b0", 5_288_548, 385_814_752),
    ("shufflenet_v2_x1_0", 2_278_604, 144_907_992),
    ("regnet_y_400mf", 4_344_144, 401_842_848),
    ("convnext_tiny", 28_589_128, 4_455_531_264),
]
OTHER_SIZES = (193, 97, 32)  # ConvNeXt needs 32: its stem and three downsamplings divide by 32


def analyzed(name: str, size: int = 224):
    return archcalc.analyze(archcalc.load(str(SPECS / f"{name}.yaml")), input_shape=(3, size, size))


@pytest.mark.parametrize("name,params,macs", ZOO, ids=[row[0] for row in ZOO])
def test_params_and_macs_are_torchvisions(name, params, macs):
    analysis = analyzed(name)
    assert analysis.totals.params == params
    assert sum(stats.macs for stats in analysis.layers if stats.kind in ("conv", "dense")) == macs
    assert analysis.totals.macs == macs  # the gates' multiplies and the layer scale count no MACs
    assert tuple(analysis.output_shape) == (1000,)
    for size in OTHER_SIZES:
        assert analyzed(name, size).totals.params == params, size


def zoo_cases():
    """Every network at 224 (test_backend checks that on meta in the quick tier) and at an odd
    size, 193, where the rounding of each stride shows; one of them quick, the rest slow."""
    for size in (224, 193):
        for name, _, _ in ZOO:
            quick = (name, size) == ("mobilenet_v3_small", 193)
            yield pytest.param(size, name, id=f"{size}-{name}", marks=[] if quick else [pytest.mark.slow])


@pytest.mark.parametrize("size,name", list(zoo_cases()))
def test_pytorch_agrees_layer_by_layer(size, name):
    pytest.importorskip("torch")
    from archcalc.backend import verify

    analysis = analyzed(name, size)
    result = verify(analysis, device="meta")
    assert result.ok, result.disagreements
    assert result.actual_params == analysis.totals.params and len(result.checks) == len(analysis.layers)


def test_no_stand_ins():
    """Written with the operations torchvision runs: squeeze-excitation multiplies by its gate, the
    activations are torchvision's, ShuffleNet splits and shuffles, ConvNeXt normalises the channels
    and scales them; no upsample, no relu where torchvision has another activation."""
    kinds = {name: {node.layer.kind for node in archcalc.load(str(SPECS / f"{name}.yaml")).nodes}
             for name, _, _ in ZOO}
    assert {"relu6"} <= kinds["mobilenet_v2"] and "relu" not in kinds["mobilenet_v2"]
    assert {"hardswish", "hardsigmoid", "multiply", "relu"} <= kinds["mobilenet_v3_small"]
    assert {"silu", "sigmoid", "multiply"} <= kinds["efficientnet_b0"] and "relu" not in kinds["efficientnet_b0"]
    assert {"chunk", "channel_shuffle", "concat"} <= kinds["shufflenet_v2_x1_0"]
    assert {"sigmoid", "multiply"} <= kinds["regnet_y_400mf"]
    assert {"layernorm", "gelu", "scale"} <= kinds["convnext_tiny"] and "batchnorm" not in kinds["convnext_tiny"]
    assert not any("upsample" in found for found in kinds.values())
