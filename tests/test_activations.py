"""Activations computed as PyTorch's functions compute them (torch.nn.functional), along the axis
the spec names; prelu's slopes; which activations an 'activation:' attribute may name."""
import pytest
from conftest import spec_text

import archcalc

torch = pytest.importorskip("torch")
from torch.nn import functional  # noqa: E402

from archcalc.backend import build  # noqa: E402  (needs torch)


def computed(input_shape, fragment, x):
    network = build(archcalc.loads(spec_text(input_shape, fragment)), seed=0)
    with torch.no_grad():
        return network(x), network


@pytest.mark.parametrize("fragment,function", [
    ("silu", functional.silu),
    ("swish", functional.silu),
    ("hardswish", functional.hardswish),
    ("hardsigmoid", functional.hardsigmoid),
    ("relu6", functional.relu6),
    ("mish", functional.mish),
    ("gelu", functional.gelu),
    ("gelu: {approximate: tanh}", lambda x: 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x**3)))),
    ("softplus: {beta: 2, threshold: 1}", lambda x: torch.where(2 * x > 1, x, torch.log1p(torch.exp(2 * x)) / 2)),
    ("abs", torch.abs),
    ("softmax", lambda x: functional.softmax(x, dim=1)),                  # channels
    ("logsoftmax", lambda x: functional.log_softmax(x, dim=1)),
    ("log_softmax: {axis: 2}", lambda x: functional.log_softmax(x, dim=3)),  # W, after the batch axis
])
def test_activation_values(fragment, function):
    x = torch.randn(2, 3, 4, 5) * 4
    y, _ = computed((3, 4, 5), fragment, x)
    torch.testing.assert_close(y, function(x))


def test_softmax_on_a_sequence_runs_along_its_features_or_the_axis_named():
    x = torch.randn(2, 6, 4)
    torch.testing.assert_close(computed({"steps": 6, "features": 4}, "softmax", x)[0], x.softmax(dim=2))
    torch.testing.assert_close(computed({"steps": 6, "features": 4}, "softmax: {axis: 0}", x)[0], x.softmax(dim=1))


def test_softmax_axis_must_exist():
    with pytest.raises(archcalc.SpecError, match="axis 3 does not exist in 3x4x5"):
        archcalc.analyze(archcalc.loads(spec_text((3, 4, 5), "logsoftmax: {axis: 3}")))


def test_prelu_learns_one_slope_per_channel_or_one_shared():
    x = torch.randn(2, 3, 4, 5)
    y, network = computed((3, 4, 5), "prelu: {num_parameters: 3, init: 0.1}", x)
    slopes = network.submodule("prelu1").weight
    assert slopes.shape == (3,) and torch.all(slopes == 0.1)
    torch.testing.assert_close(y, torch.where(x > 0, x, 0.1 * x))
    with pytest.raises(archcalc.SpecError, match="prelu has 4 slopes but its input 3x4x5 has 3 channels"):
        archcalc.analyze(archcalc.loads(spec_text((3, 4, 5), "prelu: 4")))
    shared = archcalc.analyze(archcalc.loads(spec_text({"steps": 6, "features": 4}, "prelu")))
    assert shared.totals.params == 1  # one slope fits any input
    with pytest.raises(archcalc.SpecError, match="which in a batch-first sequence 6x4 .TxF. is the steps"):
        archcalc.analyze(archcalc.loads(spec_text({"steps": 6, "features": 4}, "prelu: 4")))


def test_activation_attribute_takes_aliases_and_refuses_prelu():
    analysis = archcalc.analyze(archcalc.loads(spec_text((8,), "dense: {units: 4, activation: swish}")))
    assert analysis.layers[0].layer.activation == "silu"
    with pytest.raises(archcalc.SpecError, match="prelu has parameters of its own") as caught:
        archcalc.loads(spec_text((8,), "dense: {units: 4, activation: prelu}"))
    assert "'- prelu'" in caught.value.hint
