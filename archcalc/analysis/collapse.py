"""Blocks and repeats as single rows (inspect --depth), the way torchinfo's depth works.

A layer written inside block instances and repeats sits in containers, outermost first: each
block instance is one (named as the instance: 'stage2', 'outer.inner'), and each repeat is one
as a whole, its iterations together (named by its label: 'layer1', or 'block1.repeat1' inside a
block instance). A top-level layer or container is at depth 1. At depth N, a layer in fewer than
N containers is its own row; the others are summed into the container N deep that holds them
(consecutive layers of the same container make one row). Every count of a row is the sum of its
layers', so the rows add up to the totals at every depth.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod

from ..choices import DTYPE_BYTES
from ..layers import Shape
from .walk import Analysis, LayerStats


@dataclass(frozen=True)
class Group:
    """Consecutive layers of one block instance or repeat, summed."""

    name: str
    kind: str                  # "block" or "repeat"
    layers: tuple[LayerStats, ...]  # in order

    @property
    def input_shape(self) -> Shape:
        return self.layers[0].input_shape

    @property
    def output_shape(self) -> Shape:
        """The last layer's: what the block instance (or the repeat) outputs."""
        return self.layers[-1].output_shape

    def _sum(self, figure: str) -> int:
        return sum(int(getattr(stats, figure)) for stats in self.layers)

    @property
    def params(self) -> int:
        return self._sum("params")

    @property
    def trainable_params(self) -> int:
        return self._sum("trainable_params")

    @property
    def buffers(self) -> int:
        return self._sum("buffers")

    @property
    def neurons(self) -> int:
        return self._sum("neurons")

    @property
    def macs(self) -> int:
        return self._sum("macs")

    @property
    def flops(self) -> int:
        return self._sum("flops")

    @property
    def scores(self) -> int:
        return self._sum("scores")


Row = LayerStats | Group  # a row of the table: one layer, or the layers of a container summed


def members(row: Row) -> tuple[LayerStats, ...]:
    """The layers of a row: a Group's, or the one LayerStats."""
    return row.layers if isinstance(row, Group) else (row,)


def containers(stats: LayerStats) -> list[tuple[str, str]]:
    """[(name, "block" or "repeat"), ...]: what the layer is written in, outermost first."""
    found: list[tuple[str, str]] = []
    instance = ""
    for label, iteration in stats.node.group:
        if iteration == 0:  # a block instance: its label is its full name
            instance = label
            found.append((label, "block"))
        else:               # a repeat: one container for all its iterations
            found.append((f"{instance}.{label}" if instance else label, "repeat"))
    return found


def rows(analysis: Analysis, depth: int | None = None) -> list[Row]:
    """The layers, with those more than ``depth`` containers deep summed into Groups (None: every layer)."""
    if depth is None:
        return list(analysis.layers)
    found: list[Row] = []
    run: list[LayerStats] = []
    key: tuple[str, ...] | None = None
    for stats in analysis.layers:
        inside = containers(stats)
        now = tuple(name for name, _ in inside[:depth]) if len(inside) >= depth else None
        if run and now != key:
            assert key is not None  # run holds the layers of container key
            found.append(Group(key[-1], containers(run[0])[depth - 1][1], tuple(run)))
            run = []
        key = now
        if now is None:
            found.append(stats)
        else:
            run.append(stats)
    if run:
        assert key is not None
        found.append(Group(key[-1], containers(run[0])[depth - 1][1], tuple(run)))
    return found


def figure(name: str, analysis: Analysis) -> Callable[[Row], int | float | None]:
    """A function giving a row's count ``name``: its own (params, trainable_params, neurons, macs,
    flops), at the batch (batch_macs, batch_flops: x batch, as the totals), its share of the
    parameters (params_percent, a float: 100 x params / all params; None when there are none), or
    its memory as the totals count it (memory: (params + buffers) x dtype size + neurons x batch x
    dtype size, Analysis.layer_bytes, summed: the rows add up to the forward bytes)."""
    total, batch = analysis.totals.params, analysis.batch
    derived: dict[str, Callable[[Row], int | float | None]] = {
        "batch_macs": lambda row: row.macs * batch,
        "batch_flops": lambda row: row.flops * batch,
        "params_percent": lambda row: 100 * row.params / total if total else None,
        "memory": lambda row: sum(sum(analysis.layer_bytes(stats)) for stats in members(row)),
    }
    return derived.get(name) or (lambda row: getattr(row, name))


def input_bytes(analysis: Analysis) -> int:
    """The network's inputs at the batch: elements x batch x dtype size (torchinfo's 'Input size')."""
    return sum(prod(shape) for shape in analysis.input_shapes.values()) * analysis.batch * DTYPE_BYTES[analysis.dtype]
