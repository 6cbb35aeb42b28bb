"""Layers that join branches: element-wise add (residual connections), multiply (gates) and
subtract, which broadcast; concat (Inception, U-Net)."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar

from ..errors import SpecError
from .arguments import arg, non_negative_int
from .base import Layer, elementwise_layout, register, shape_text
from .footprint import INPUT, Op, Tensor, layer_input
from .recipe import module
from .shapes import FeatureMap, Shape, Steps, Vector
from .terms import Joined


@dataclass(frozen=True, kw_only=True)
class Elementwise(Layer):
    """Branches combined element by element, their shapes broadcast as PyTorch broadcasts them
    (``broadcast``): y = a op b op ... ; 0 params; the output elements count as neurons (new
    values, like a pool's). FLOPs: n-1 per output element for n inputs (one operation each)."""

    merges = True
    elementwise = True
    arity: ClassVar[int | None] = None  # exactly this many inputs; None: two or more
    helper: ClassVar[str]               # the module of backend/modules.py that computes it
    example: ClassVar[str]              # a spec line for the hint
    mismatch: ClassVar[str]             # the hint when the shapes do not broadcast

    def output_shape(self, x: tuple) -> tuple:
        if len(x) < 2 or (self.arity is not None and len(x) != self.arity):
            wanted = f"exactly {self.arity}" if self.arity else "at least two"
            raise SpecError(f"{self.kind} needs {wanted} inputs, got {len(x)}", field="inputs",
                            hint=f"e.g. {self.kind}: {{{self.example}}}")
        same_layout(x, self.kind)
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

    def channels_last(self, x: tuple, inputs: tuple[bool, ...]) -> bool:
        """The layout of its first input of the output's shape (PyTorch's element-wise kernels
        follow the first operand's strides; one broadcast along an axis has none to give)."""
        full = max(prod(shape) for shape in x)
        return next(elementwise_layout(shape, laid) for shape, laid in zip(x, inputs) if prod(shape) == full)

    def memory_ops(self, x: tuple, y: tuple, training: bool, device: str) -> tuple:
        """A new tensor; with more than two inputs the running result of the previous ones sits
        beside it, a moment. add hands its output's gradient to every input as it is (a view);
        subtract negates it for b; multiply multiplies input by input, each product keeping
        what it reads (the running product too) and computing one gradient per input (new tensors). Approximate where an input is broadcast: its gradient is summed down to its size."""
        if self.kind == "multiply":   # product = product * other, input by input: each product keeps what it reads
            return (Op(prod(y), reads=(layer_input(0), layer_input(1)), saves=(INPUT,)),
                    *(Op(prod(y), reads=(k - 2, layer_input(k)), saves=(INPUT,)) for k in range(2, len(x))))
        partial = (Tensor(prod(y)),) if len(x) > 2 else ()
        return (Op(prod(y), extras=partial, gradient="view" if self.kind == "add" else "new"),)


def broadcast(shapes: tuple, kind: str, hint: str) -> tuple:
    """The shape of an element-wise result, as PyTorch broadcasts: on each axis the sizes are
    equal, or 1 in some inputs, stretched to the others' ([C, 1, 1] * [C, H, W] -> [C, H, W]).

    The per-sample shapes must have one layout (``same_layout``) and one rank: the batch axis
    leads every tensor, so PyTorch would align a [C] against the last axis of a [C, H, W] (W),
    not against C.
    """
    result = shapes[0]
    for other in shapes[1:]:
        if len(other) != len(result) or any(a != b and 1 not in (a, b) for a, b in zip(result, other)):
            raise SpecError(f"{kind} needs shapes that broadcast (each axis equal, or 1 in one of them), "
                            f"got {shape_text(result)} and {shape_text(other)}",
                            field="inputs", hint=hint)
        result = result.like(max(a, b) if 1 in (a, b) else a for a, b in zip(result, other))
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


@register("concat", known_as=("Concatenate", "torch.cat"))
@dataclass(frozen=True, kw_only=True)
class Concat(Layer):
    """Branches of one layout joined along one axis, the other axes equal: by default the
    channels of feature maps (C = C1 + C2 + ...), the features of sequences (F = F1 + F2 + ...,
    torch.cat on the last axis of (N, T, F)) or the sizes of flat vectors. ``axis`` numbers
    the axes after the batch, as the shapes are written: 0 is a map's channels and a
    sequence's steps, 1 a sequence's features.

    0 params; creates no new neurons (it only places existing values side by side).
    """

    axis: int | None = arg(non_negative_int, None,
                           "axis to join along, counted without the batch axis: 0 = channels of a feature "
                           "map, steps of a sequence; default: channels, or a sequence's features",
                           known_as=("dim",))
    merges = True
    creates_neurons = False

    def joined_axis(self, x: tuple) -> int:
        """The axis joined: ``axis`` if given, else channels (0) of maps, the last axis otherwise."""
        if self.axis is not None:
            return self.axis
        return 0 if isinstance(x[0], FeatureMap) else len(x[0]) - 1

    def output_shape(self, x: tuple) -> tuple:
        if len(x) < 2:
            raise SpecError("concat needs at least two inputs", field="inputs",
                            hint="e.g. concat: {inputs: [branch1, branch2]}")
        first = same_layout(x, self.kind)
        axis, rank = self.joined_axis(x), len(first)
        if axis >= rank:
            raise SpecError(f"axis {axis} does not exist in {shape_text(first)}", field="axis")
        for other in x[1:]:
            if len(other) != rank or any(a != b for i, (a, b) in enumerate(zip(first, other)) if i != axis):
                raise SpecError(f"concat along axis {axis} needs the other axes equal, got "
                                f"{shape_text(first)} and {shape_text(other)}", field="inputs",
                                hint="pad or crop one branch, or pick 'same' padding in its convolutions")
        joined = sum(shape[axis] for shape in x)
        return first.like(first[:axis] + (joined,) + first[axis + 1:])

    def to_torch(self, x: tuple):
        return module("Concat", self.joined_axis(x) + 1)  # +1: the batch axis comes first in torch

    def channels_last(self, x: tuple, inputs: tuple[bool, ...]) -> bool:
        """torch.cat writes channels last when every input suggests it (2-D and 3-D maps laid out
        channels last, of more than one position; a map of one channel too, whose strides say so
        where a convolution wrote it: elementwise_layout), else a plain tensor."""
        return all(laid and prod(shape[1:]) > 1 for shape, laid in zip(x, inputs)) \
            and isinstance(x[0], FeatureMap) and len(x[0]) >= 3

    def memory_ops(self, x: tuple, y: tuple, training: bool, device: str) -> tuple:
        """torch.cat copies the inputs into a new tensor and keeps nothing; each input's gradient
        is a slice (a view) of the output's."""
        return (Op(prod(y), gradient="view"),)

    def size_terms(self, x: tuple, y: tuple | None) -> tuple:
        """The joined axis is the sum of the branches': 64+128+32 = 224 channels."""
        axis = self.joined_axis(x)
        return (Joined(axis, tuple(shape[axis] for shape in x), y[axis], AXIS_NAMES.get((type(x[0]), axis), "")),)


AXIS_NAMES = {(FeatureMap, 0): "channels", (Steps, 0): "steps", (Steps, 1): "features", (Vector, 0): "features"}


def same_layout(x: tuple, kind: str) -> Shape:
    """The first input, after refusing inputs of different layouts (a [C, L] map beside a [T, F]
    sequence holds its numbers in another order: PyTorch's (N, C, L) against (N, T, F))."""
    first = x[0]
    for other in x[1:]:
        if type(other) is not type(first):
            raise SpecError(f"{kind} joins inputs of one layout, got the {first.layout} {shape_text(first)} "
                            f"and the {other.layout} {shape_text(other)}", field="inputs",
                            hint="declare both inputs in one layout (a sequence is {steps: T, features: F}, "
                                 "a feature map [C, L]), or flatten the feature map into a vector")
    return first
