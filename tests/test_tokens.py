"""Tokens and positions against their definitions: sinusoids as Vaswani et al. write them, a
learned table read as nn.Embedding reads it at positions 0..T-1, x[:, 0] and x.mean(1)."""
import math

import pytest
from conftest import analyze_text

import archcalc

torch = pytest.importorskip("torch")

from archcalc.backend import build  # noqa: E402


def network(layer: str, t: int, d: int):
    return build(archcalc.loads(f"input: {{steps: {t}, features: {d}}}\nlayers:\n  - {layer}\n"), dtype="float64")


def test_sinusoidal_is_the_papers_table():
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))
    (Attention Is All You Need, section 3.5), added to the input; an odd d ends with a sine."""
    for d in (8, 7):
        x = torch.zeros(1, 5, d, dtype=torch.float64)
        table = network("sinusoidal", 5, d)(x)[0]
        for pos in range(5):
            for column in range(d):
                angle = pos / 10000 ** (2 * (column // 2) / d)
                expected = math.sin(angle) if column % 2 == 0 else math.cos(angle)
                assert abs(table[pos, column].item() - expected) < 1e-12, (d, pos, column)


def test_positions_read_the_table_as_an_embedding_of_the_positions():
    model = network("positions: 16", 6, 4)
    table = model.submodule("pos1").weight
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    lookup = torch.nn.functional.embedding(torch.arange(6), table)
    assert torch.equal(model(x), x + lookup)


def test_select_and_mean():
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    assert torch.equal(network("select", 5, 4)(x), x[:, 0])
    assert torch.equal(network("select: -1", 5, 4)(x), x[:, -1])
    assert torch.equal(network("mean", 5, 4)(x), x.mean(1))


def test_position_and_token_figures():
    positions = analyze_text("input: {steps: 6, features: 4}\nlayers:\n  - positions: 16\n").layers[0]
    assert (positions.params, positions.flops, positions.neurons) == (64, 24, 24)
    select = analyze_text("input: {steps: 6, features: 4}\nlayers:\n  - select\n").layers[0]
    assert (select.flops, select.neurons) == (0, 0)
    mean = analyze_text("input: {steps: 6, features: 4}\nlayers:\n  - mean\n").layers[0]
    assert (mean.flops, mean.neurons) == (24, 4)


@pytest.mark.parametrize("layer,message", [
    ("positions: 4", "the sequence has 6 steps, but the table holds 4 positions"),
    ("select: 6", "index 6 is outside the 6 steps"),
    ("select: -7", "index -7 is outside the 6 steps"),
])
def test_refusals(layer, message):
    with pytest.raises(archcalc.SpecError, match=message):
        analyze_text(f"input: {{steps: 6, features: 4}}\nlayers:\n  - {layer}\n")


@pytest.mark.parametrize("layer", ["mean", "select", "sinusoidal", "positions: 8"])
def test_a_feature_map_is_not_a_sequence(layer):
    with pytest.raises(archcalc.SpecError, match="reads a sequence") as caught:
        analyze_text(f"input: [4, 6]\nlayers:\n  - {layer}\n")
    assert "permute" in caught.value.hint
