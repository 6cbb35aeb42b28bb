"""Layers that join branches: element-wise add (residual connections), multiply (gates) and
subtract, which broadcast; concat (Inception, U-Net)."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar

from ..errors import SpecError
from .arguments import arg, non_negative_int
from .base import Layer, register, shape_text
from .footprint import INPUT, Op, Tensor
from .recipe import module
from .terms import Joined


@dataclass(frozen=True, kw_only=True)
class Elementwise(Layer):
    """Branches combined element by element, their shapes broadcast as PyTorch broadcasts them
    (``broadcast``): y = a op b op ... ; 0 params; the output elements count as neurons (new
    values, like a pool's). FLOPs: n-1 per output element for n inputs (one operation each)."""

    merges = True
    arity: ClassVar[int | None] = None  # exactly this many inputs; None: two or more
    helper: ClassVar[str]               # the module of backend/modules.py that computes it
    example: ClassVar[str]              # a spec line for the hint
    mismatch: ClassVar[str]             # the hint when the shapes do not broadcast

    def output_shape(self, x: tuple) -> tuple:
        if len(x) < 2 or (self.arity is not None and len(x) != self.arity):
            wanted = f"exactly {self.arity}" if self.arity else "at least two"
            raise SpecError(f"{self.kind} needs {wanted} inputs, got {len(x)}", field="inputs",
                            hint=f"e.g. {self.kind}: {{{self.example}}}")
        return broadcast(x, self.kind, self.mismatch)

    def extra_flops(self, x: tuple, y: tuple) -> int:
        """n inputs: n-1 operations per output element."""
        return (len(x) - 1) * prod(y)

    def receptive_field(self, x: tuple, y: tuple, field):
        """The union of the inputs' fields (``field``): a value stretched along an axis (a gate of
        [C, 1, 1]) reaches every output position, with the field it has."""
        return field

    def to_torch(self, x: tuple):
        return module(self.helper)

    def memory_ops(self, x: tuple, y: tuple, training: bool, device: str) -> tuple:
        """A new tensor; with more than two inputs the running result of the previous ones sits
        beside it, a moment. add hands its output's gradient to every input as it is (a view);
        subtract negates it for b and multiply computes one per input, keeping the inputs (new
        tensors). Approximate where an input is broadcast: its gradient is summed down to its size."""
        partial = (Tensor(prod(y)),) if len(x) > 2 else ()
        if self.kind == "multiply":
            return (Op(prod(y), extras=partial, saves=(INPUT,)),)
        return (Op(prod(y), extras=partial, gradient="view" if self.kind == "add" else "new"),)


def broadcast(shapes: tuple, kind: str, hint: str) -> tuple:
    """The shape of an element-wise result, as PyTorch broadcasts: on each axis the sizes are
    equal, or 1 in some inputs, stretched to the others' ([C, 1, 1] * [C, H, W] -> [C, H, W]).

    The per-sample shapes must have one rank: the batch axis leads every tensor, so PyTorch would
    align a [C] against the last axis of a [C, H, W] (W), not against C.
    """
    result = shapes[0]
    for other in shapes[1:]:
        if len(other) != len(result) or any(a != b and 1 not in (a, b) for a, b in zip(result, other)):
            raise SpecError(f"{kind} needs shapes that broadcast (each axis equal, or 1 in one of them), "
                            f"got {shape_text(result)} and {shape_text(other)}",
                            field="inputs", hint=hint)
        result = type(result)(max(a, b) if 1 in (a, b) else a for a, b in zip(result, other))
    return result


@register("add")
@dataclass(frozen=True, kw_only=True)
class Add(Elementwise):
    """Element-wise sum, y = a + b + ... (ResNet's shortcut), shapes broadcast."""

    helper = "Add"
    example = "inputs: [conv3, shortcut]"
    mismatch = "make the shortcut match: a 1x1 conv with the same filters and stride (ResNet's projection)"


@register("multiply", "mul")
@dataclass(frozen=True, kw_only=True)
class Multiply(Elementwise):
    """Element-wise product, y = a * b * ..., shapes broadcast: squeeze-excitation's x * s with
    a gate s of [C, 1, 1]."""

    helper = "Multiply"
    example = "inputs: [features, gate]"
    mismatch = ("a gate that scales each channel is [C, 1, 1]: 'adaptiveavgpool: 1', then 1x1 convs "
                "(squeeze-excitation)")


@register("subtract", "sub")
@dataclass(frozen=True, kw_only=True)
class Subtract(Elementwise):
    """Element-wise difference of exactly two inputs, y = a - b, shapes broadcast."""

    arity = 2
    helper = "Subtract"
    example = "inputs: [left, right]"
    mismatch = "give both inputs one shape, or 1 on the axes to stretch"


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

    def memory_ops(self, x: tuple, y: tuple, training: bool, device: str) -> tuple:
        """torch.cat copies the inputs into a new tensor and keeps nothing; each input's gradient
        is a slice (a view) of the output's."""
        return (Op(prod(y), gradient="view"),)

    def size_terms(self, x: tuple, y: tuple | None) -> tuple:
        """The joined axis is the sum of the branches': 64+128+32 = 224 channels."""
        return (Joined(self.axis, tuple(shape[self.axis] for shape in x), y[self.axis]),)
