"""Receptive fields: how much of the network input one output unit of a layer sees, per spatial axis.

Through a window of kernel F (effective F_eff = dilation*(F-1)+1), stride S and left padding P,
in input pixels (Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019):

    size  = size_in + (F_eff - 1) * jump_in
    jump  = jump_in * S                       the effective stride: input pixels between neighbours
    start = start_in - P * jump_in            the left edge of the first unit's field (< 0: padding)

Unit i of a layer sees the input pixels start + i*jump ... start + i*jump + size - 1. The network
input starts at size 1, jump 1, start 0. A merge (add, concat) sees the union of its inputs'
fields: the largest, for branches centred alike. A layer whose output has no spatial axes
(flatten, global pool) sees the union of all its input's fields, size + (n-1)*jump, with jump 0,
and so does everything after it. Exact through convolutions and pools; an upsampling by S (upsample,
convtranspose) divides the jump by S, and its outputs share inputs unevenly, so from there on
the field is an enclosing bound (the whole input when S does not divide the jump). Sequences
and flat vectors have no spatial axes: their field is empty.
"""
from __future__ import annotations

from dataclasses import dataclass

from .geometry import Window
from .shapes import Steps


@dataclass(frozen=True)
class AxisField:
    """The receptive field of a layer's units along one spatial axis, in network-input pixels."""

    size: int       # input pixels one unit sees (padding included)
    jump: int       # effective stride: input pixels between two neighbouring units (0: all see the same)
    start: int      # input coordinate of the first unit's left edge; negative = in the padding

    @property
    def centre(self) -> float:
        """Centre of the first unit's field; unit i is centred at centre + i*jump."""
        return self.start + (self.size - 1) / 2

    def through(self, window: Window) -> AxisField:
        """The field after one more window (a conv or pool axis)."""
        return AxisField(self.size + (window.effective_kernel - 1) * self.jump, self.jump * window.stride,
                         self.start - window.pad_left * self.jump)

    def upsampled(self, factor: int, reach: int, first: int) -> AxisField | None:
        """After an upsampling by ``factor`` (upsample, a transposed conv) where output unit o reads
        at most ``reach`` neighbouring input units from ceil((o + a)/factor) on, ``first`` being
        that for o = 0. Outputs share inputs unevenly, so the field becomes an enclosing bound: each
        side widens by the up to factor-1 output steps an output's first input can lag. None when
        ``factor`` does not divide the jump (units between input pixels)."""
        if self.jump % factor:
            return None
        jump = self.jump // factor
        slack = (factor - 1) * jump
        return AxisField(self.size + (reach - 1) * self.jump + 2 * slack, jump, self.start + first * self.jump - slack)

    def covering(self, units: int) -> AxisField:
        """What a unit that reads all ``units`` positions of this field sees (a global pool, a
        flatten); jump 0: every unit of such a layer sees the same pixels."""
        return AxisField(self.size + (units - 1) * self.jump, 0, self.start)


Field = tuple[AxisField, ...]  # one AxisField per spatial axis; () where there are none (vectors, sequences)


def spatial_axes(shape) -> tuple:
    """The spatial sizes of a feature map [C, ...]; () for a flat vector or a sequence."""
    return () if isinstance(shape, Steps) else tuple(shape[1:])


def input_field(shape) -> Field:
    """A network input: each pixel sees itself."""
    return tuple(AxisField(1, 1, 0) for _ in spatial_axes(shape))


def covering(field: Field, shape) -> Field:
    """The field of a unit that reads every position of a map ``shape`` whose units see ``field``."""
    return tuple(axis.covering(units) for axis, units in zip(field, spatial_axes(shape)))


def widest(fields: list) -> Field:
    """Per axis, the field of a merge: the union of its inputs' fields (the largest one when they
    are centred alike, as in Inception and ResNet); the largest when their jumps differ."""
    present = [field for field in fields if field]
    if not present:
        return ()
    merged = []
    for axis in range(max(len(field) for field in present)):
        candidates = [field[axis] for field in present if len(field) > axis]
        if len({f.jump for f in candidates}) > 1:
            merged.append(max(candidates, key=lambda f: f.size))
            continue
        start = min(f.start for f in candidates)
        merged.append(AxisField(max(f.start + f.size for f in candidates) - start, candidates[0].jump, start))
    return tuple(merged)
