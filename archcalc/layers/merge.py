"""Layers that join branches: add (residual connections) and concat (Inception, U-Net)."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .arguments import arg, non_negative_int
from .base import Layer, register, shape_text
from .recipe import module
from .terms import Joined


@register("add")
@dataclass(frozen=True, kw_only=True)
class Add(Layer):
    """Element-wise sum of branches of identical shape (ResNet's shortcut): y = a + b + ...

    0 params; its output elements count as neurons (new values, like a pool's).
    """

    merges = True

    def output_shape(self, x: tuple) -> tuple:
        if len(x) < 2:
            raise SpecError("add needs at least two inputs", field="inputs",
                            hint="e.g. add: {inputs: [conv3, shortcut]}")
        first = x[0]
        for other in x[1:]:
            if other != first:
                raise SpecError(f"add needs inputs of one shape, got {shape_text(first)} and "
                                f"{shape_text(other)}", field="inputs",
                                hint="make the shortcut match: a 1x1 conv with the same filters and stride "
                                     "(ResNet's projection)")
        return first

    def extra_flops(self, x: tuple, y: tuple) -> int:
        """n inputs: n-1 additions per output element."""
        return (len(x) - 1) * prod(y)

    def to_torch(self, x: tuple):
        return module("Add")


@register("concat")
@dataclass(frozen=True, kw_only=True)
class Concat(Layer):
    """Branches joined along the channel axis: C = C1 + C2 + ..., other axes equal.

    0 params; creates no new neurons (it only places existing values side by side).
    """

    axis: int = arg(non_negative_int, 0, "axis to join along, 0 = channels (no batch axis)")
    merges = True
    creates_neurons = False

    def output_shape(self, x: tuple) -> tuple:
        if len(x) < 2:
            raise SpecError("concat needs at least two inputs", field="inputs",
                            hint="e.g. concat: {inputs: [branch1, branch2]}")
        rank = len(x[0])
        if self.axis >= rank:
            raise SpecError(f"axis {self.axis} does not exist in {shape_text(x[0])}", field="axis")
        for other in x[1:]:
            if len(other) != rank or any(a != b for i, (a, b) in enumerate(zip(x[0], other)) if i != self.axis):
                raise SpecError(f"concat along axis {self.axis} needs the other axes equal, got "
                                f"{shape_text(x[0])} and {shape_text(other)}", field="inputs",
                                hint="pad or crop one branch, or pick 'same' padding in its convolutions")
        joined = sum(shape[self.axis] for shape in x)
        return x[0][: self.axis] + (joined,) + x[0][self.axis + 1:]

    def to_torch(self, x: tuple):
        return module("Concat", self.axis + 1)  # +1: the batch axis comes first in torch

    def size_terms(self, x: tuple, y: tuple | None) -> tuple:
        """The joined axis is the sum of the branches': 64+128+32 = 224 channels."""
        return (Joined(self.axis, tuple(shape[self.axis] for shape in x), y[self.axis]),)
