"""Norms over chosen axes compute what PyTorch and torchvision compute: ConvNeXt's channel-only
LayerNorm2d, RMSNorm, GroupNorm, InstanceNorm; their refusals."""
import pytest
from conftest import spec_text

import archcalc

torch = pytest.importorskip("torch")
from torch.nn import functional  # noqa: E402

from archcalc.backend import build  # noqa: E402  (needs torch)


def built(input_shape, fragment):
    analysis = archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment)))
    network = build(analysis, seed=0)
    module = network.submodule(analysis.layers[0].name)
    with torch.no_grad():  # learned values other than the initial ones, so that they matter
        for parameter in module.parameters():
            parameter.copy_(torch.randn_like(parameter))
    return network, module


def test_layernorm_over_channels_is_torchvisions_layernorm2d():
    """torchvision.models.convnext.LayerNorm2d.forward: permute(0, 2, 3, 1), F.layer_norm over C
    with its weight, bias and eps, permute(0, 3, 1, 2)."""
    network, module = built((96, 7, 7), "layernorm: {axes: channels, eps: 1.0e-6}")
    weight, bias = dict(module.named_parameters())["norm.weight"], dict(module.named_parameters())["norm.bias"]
    assert weight.shape == bias.shape == (96,)
    x = torch.randn(2, 96, 7, 7)
    expected = functional.layer_norm(x.permute(0, 2, 3, 1), (96,), weight, bias, 1e-6).permute(0, 3, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(network(x), expected)


def test_layernorm_over_a_whole_sequence_and_by_default_its_features():
    x = torch.randn(2, 7, 10)
    for fragment, shape in [("layernorm", (10,)), ("layernorm: {axes: all}", (7, 10))]:
        network, module = built({"steps": 7, "features": 10}, fragment)
        with torch.no_grad():
            torch.testing.assert_close(network(x), functional.layer_norm(x, shape, module.weight, module.bias))


def test_rmsnorm_divides_by_the_root_mean_square():
    x = torch.randn(2, 8, 5, 5)
    network, module = built((8, 5, 5), "rmsnorm: {axes: channels, eps: 1.0e-6}")
    weight = module.norm.weight.reshape(1, 8, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(network(x), x / torch.sqrt((x * x).mean(dim=1, keepdim=True) + 1e-6) * weight)
    sequence = torch.randn(2, 7, 16)
    network, module = built({"steps": 7, "features": 16}, "rmsnorm")
    eps = torch.finfo(torch.float32).eps  # PyTorch's default
    with torch.no_grad():
        torch.testing.assert_close(network(sequence), sequence * torch.rsqrt(sequence.pow(2).mean(-1, keepdim=True)
                                                                             + eps) * module.weight)


def test_groupnorm_and_instancenorm_normalise_per_group_and_per_channel():
    x = torch.randn(2, 8, 6, 6)
    network, module = built((8, 6, 6), "groupnorm: 4")
    with torch.no_grad():
        torch.testing.assert_close(network(x), functional.group_norm(x, 4, module.weight, module.bias))
    network, module = built((8, 6, 6), "instancenorm: {affine: true}")
    with torch.no_grad():
        torch.testing.assert_close(network(x), functional.instance_norm(x, weight=module.weight, bias=module.bias))
        torch.testing.assert_close(network(x), functional.group_norm(x, 8, module.weight, module.bias))


@pytest.mark.parametrize("input_shape,fragment,message", [
    ((12, 4, 4), "groupnorm: 5", "groupnorm cannot split 12 channels into 5 equal groups"),
    ({"steps": 7, "features": 4}, "groupnorm: 2", "groupnorm works on feature maps"),
    ((12,), "instancenorm", "instancenorm works on spatial axes"),
    ((12, 4, 4), "layernorm: {axes: rows}", "must be one of all, channels"),
    ((12, 1, 1), "instancenorm", "normalises each channel over its values, but here that is a single value"),
    ((12,), "groupnorm: 12", "each of its 12 groups over its values, but here that is a single value"),
])
def test_norm_refusals(input_shape, fragment, message):
    """Statistics over a single value are refused as PyTorch refuses them (F.instance_norm always,
    F.group_norm at batch 1): they normalise to 0."""
    with pytest.raises(archcalc.SpecError, match=message) as caught:
        archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment)))
    if "groupnorm: 5" in fragment:
        assert caught.value.hint == "the nearest divisors of 12: 4 or 6"
