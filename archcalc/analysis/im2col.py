"""The convolutions of an analyzed network as matrix products (the rule: layers/im2col.py)."""
from __future__ import annotations

from ..layers.im2col import Unrolled
from .walk import Analysis, LayerStats


def unrolled_layers(analysis: Analysis) -> list[tuple[LayerStats, Unrolled]]:
    """[(LayerStats, Unrolled)] for every layer that is a matrix product (the convolutions)."""
    found: list[tuple[LayerStats, Unrolled]] = []
    for stats in analysis.layers:
        unrolled = stats.layer.unrolled(stats.input_shape, stats.output_shape)
        if unrolled is not None:
            found.append((stats, unrolled))
    return found
