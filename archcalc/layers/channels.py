"""Layers that only move or view values: split, chunk, channel_shuffle, pad, reshape, permute, identity.

None has parameters, multiply-accumulates or FLOPs (PyTorch's FlopCounterMode counts none of
them), and none creates neurons: every output value is an input value, or a pad's constant.
Each kind states whether PyTorch copies (``copies``): a view shares its input's memory, a copy
writes a new tensor of the output's size.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import accumulate
from math import prod
from typing import ClassVar

from ..errors import SpecError
from .arguments import arg, boolean, choice, non_negative_int, per_axis, positive_int, shown
from .base import Label, Layer, feature_map_rank, register, shape_text, spatial_rank
from .footprint import INPUT, Op, Tensor, view
from .receptive import Field
from .recipe import compact, module
from .shapes import Outputs, Shape, Steps, shape_of
from .windowed import PAD_MODULES


@dataclass(frozen=True, kw_only=True)
class Movement(Layer):
    """0 params, 0 FLOPs, 0 new neurons; ``copies``: whether PyTorch writes a new tensor (True)
    or returns a view of its input (False)."""

    creates_neurons = False
    copies: ClassVar[bool]

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A view of the input: no memory, and its gradient a view of the output's (reshape,
        permute, identity)."""
        return (view(),)

    def label(self, x: Shape) -> Label:
        """The main argument as the spec lists it, 'pad [1, 0, 2, 1]': its values are not
        sizes per axis (as a kernel's 3x3 is)."""
        label = super().label(x)
        return Label(label.kind, tuple(list(v) if isinstance(v, tuple) else v for v in label.head), label.settings)


# --- several outputs: split, chunk ----------------------------------------------------------

def _part_sizes(value):
    """A list of at least two sizes >= 1."""
    if not isinstance(value, list) or len(value) < 2:
        raise SpecError(f"must list the size of each part (at least two), got {shown(value)}")
    return tuple(positive_int(size) for size in value)


def _at_least_two(value):
    """A whole number >= 2."""
    if positive_int(value) < 2:
        raise SpecError(f"must be at least 2 (one part is the input itself), got {value}")
    return value


@dataclass(frozen=True, kw_only=True)
class Parts(Movement):
    """The input cut along ``axis`` into consecutive parts, one output each, read as
    '<layer>.0', '<layer>.1', ...: views of the input (torch.split and torch.chunk copy nothing)."""

    axis: int = arg(non_negative_int, 0, "axis to cut along, 0 = channels (no batch axis)", known_as=("dim",))
    copies = False

    def memory_ops(self, x: Shape, y: Outputs, training: bool, device: str) -> tuple:
        """Views of the input, each of its part's size; the backward joins the parts' gradients
        into a new tensor of the input's size (zeros for a part nothing read). The schedule makes
        the views itself (one backward node for every part): no op of its own."""
        return ()

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Each part keeps its input's strides: a part of a map laid out channels last is read as
        channels last (suggest_memory_format), by a convolution say."""
        return inputs[0]

    def part_sizes(self, size: int) -> tuple[int, ...]:
        """The size of each part along the axis, which has ``size``."""
        raise NotImplementedError

    def output_shape(self, x: Shape) -> Outputs:
        if self.axis >= len(x):
            raise SpecError(f"axis {self.axis} does not exist in {shape_text(x)} (axes 0..{len(x) - 1})",
                            field="axis", hint="0 is the channels (a sequence's steps), no batch axis")
        return Outputs(x.like((*x[:self.axis], size, *x[self.axis + 1:])) for size in self.part_sizes(x[self.axis]))

    def receptive_field(self, x: Shape, y: Outputs, field: Field) -> tuple:
        """One field per part: a part along a spatial axis starts ``offset`` units into the input,
        so its first unit sees from start + offset*jump; sizes and jumps are the input's."""
        spatial = self.axis - 1 if not isinstance(x, Steps) else -1
        if not 0 <= spatial < len(field):
            return tuple(field for _ in y)
        offsets = accumulate((part[self.axis] for part in y[:-1]), initial=0)
        axis = field[spatial]
        return tuple(field[:spatial] + (dataclasses.replace(axis, start=axis.start + offset * axis.jump),)
                     + field[spatial + 1:] for offset in offsets)


@register("split", known_as=("torch.split", "tensor_split"))
@dataclass(frozen=True, kw_only=True)
class Split(Parts):
    """torch.split(x, sizes, dim): parts of the given sizes, which add up to the axis' size."""

    sizes: tuple = arg(_part_sizes, doc="the size of each part along the axis, in order",
                       known_as=("split_size_or_sections", "num_or_size_splits"))
    main = "sizes"

    def output_count(self) -> int:
        return len(self.sizes)

    def part_sizes(self, size: int) -> tuple[int, ...]:
        if sum(self.sizes) != size:
            raise SpecError(f"the parts {'+'.join(map(str, self.sizes))} = {sum(self.sizes)} do not add up "
                            f"to the {size} of axis {self.axis}", field="sizes",
                            hint=f"give sizes that add up to {size}")
        return self.sizes

    def to_torch(self, x: Shape):
        return module("Split", list(self.sizes), self.axis + 1)  # +1: the batch axis comes first in torch


@register("chunk", known_as=("torch.chunk",))
@dataclass(frozen=True, kw_only=True)
class Chunk(Parts):
    """torch.chunk(x, chunks, dim): parts of ceil(D/chunks) each, the last one smaller when
    chunks does not divide D (ShuffleNetV2 halves its channels so)."""

    chunks: int = arg(_at_least_two, doc="number of parts")
    main = "chunks"

    def output_count(self) -> int:
        return self.chunks

    def part_sizes(self, size: int) -> tuple[int, ...]:
        each = -(-size // self.chunks)
        sizes = (each,) * (size // each) + ((size % each,) if size % each else ())
        if len(sizes) != self.chunks:  # torch.chunk then returns fewer parts than asked
            raise SpecError(f"torch.chunk cuts the {size} of axis {self.axis} into parts of {each}: "
                            f"{len(sizes)} of them ({'+'.join(map(str, sizes))}), not {self.chunks}",
                            field="chunks", hint="give 'split: {sizes: [...]}' the sizes you want")
        return sizes

    def to_torch(self, x: Shape):
        return module("Chunk", self.chunks, self.axis + 1)


# --- one output ---------------------------------------------------------------------------

@register("channel_shuffle", prefix="shuffle", known_as=("ChannelShuffle",))
@dataclass(frozen=True, kw_only=True)
class ChannelShuffle(Movement):
    """ShuffleNet's shuffle: the C channels read as [groups, C/groups], transposed, read back, so
    output channel i*groups + g is input channel g*(C/groups) + i. A copy: torchvision's view,
    transpose, contiguous (the copy), view, as nn.ChannelShuffle computes it."""

    groups: int = arg(positive_int, doc="number of groups the channels come in")
    main = "groups"
    copies = True

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A new tensor; the backward shuffles the gradient back into a new one."""
        return (Op(prod(y)),)

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """In its input's memory format (channels last on a 2-D or 3-D map)."""
        return inputs[0] and spatial_rank(x) >= 2

    def output_shape(self, x: Shape) -> Shape:
        feature_map_rank(x, self.kind)
        if x[0] % self.groups:
            raise SpecError(f"groups={self.groups} must divide the {x[0]} channels", field="groups")
        return x

    def to_torch(self, x: Shape):
        return module("nn.ChannelShuffle", self.groups)


@register("pad", known_as=("ZeroPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d", "ZeroPadding2D",
                           "F.pad"))
@dataclass(frozen=True, kw_only=True)
class Pad(Movement):
    """Padding of the spatial axes, out = D + left + right per axis. The sides in
    torch.nn.functional.pad's order: (left, right) of the last axis, then of the axis before it,
    ...; axes left out are not padded; one number pads every side. zeros writes 0; reflect
    mirrors without repeating the edge (each side < D); replicate repeats the edge; circular
    wraps around (each side <= D). A copy: a new tensor of the output's size."""

    padding: int | tuple = arg(per_axis(non_negative_int), doc="every side, or F.pad's (left, right) pairs "
                                                                "from the last axis backwards")
    mode: str = arg(choice(*PAD_MODULES), "zeros", "what fills the border")
    main = "padding"
    copies = True

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """As F.pad runs (pad_ops)."""
        return pad_ops(x, self.sides(x), self.mode)

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """zeros, reflect and replicate write in their input's memory format (channels last on a
        2-D or 3-D map); circular into a new plain tensor (pad_ops)."""
        return inputs[0] and spatial_rank(x) >= 2 and self.mode != "circular"

    def sides(self, x: Shape) -> tuple[tuple[int, int], ...]:
        """(left, right) per spatial axis, in axis order."""
        rank = feature_map_rank(x, self.kind)
        if isinstance(self.padding, int):
            return ((self.padding, self.padding),) * rank
        if len(self.padding) % 2 or len(self.padding) > 2 * rank:
            raise SpecError(f"padding has {len(self.padding)} values; F.pad takes (left, right) pairs, at most "
                            f"{rank} of them for the {rank} spatial ax{'is' if rank == 1 else 'es'} of "
                            f"{shape_text(x)}", field="padding", hint="e.g. [1, 1, 2, 2]: W by 1, H by 2")
        pairs = tuple(zip(self.padding[::2], self.padding[1::2]))[::-1]  # F.pad starts at the last axis
        return ((0, 0),) * (rank - len(pairs)) + pairs

    def output_shape(self, x: Shape) -> Shape:
        sides = self.sides(x)
        for size, (left, right) in zip(x[1:], sides):
            widest = max(left, right)
            if self.mode == "reflect" and widest >= size or self.mode == "circular" and widest > size:
                need = "smaller than" if self.mode == "reflect" else "at most"
                raise SpecError(f"{self.mode} padding of {widest} on an axis of {size}: PyTorch needs each "
                                f"side {need} the axis", field="padding",
                                hint="pad less, or use mode replicate or zeros")
        return x.like((x[0], *(size + left + right for size, (left, right) in zip(x[1:], sides))))

    def receptive_field(self, x: Shape, y: Shape, field: Field) -> Field:
        """Sizes and jumps unchanged; the first unit now sits ``left`` units into the border."""
        return tuple(dataclasses.replace(axis, start=axis.start - left * axis.jump)
                     for axis, (left, _) in zip(field, self.sides(x)))

    def to_torch(self, x: Shape):
        sides = self.sides(x)
        flat = tuple(side for pair in reversed(sides) for side in pair)  # back to F.pad's order
        return module(f"nn.{PAD_MODULES[self.mode]}{len(sides)}d", compact(flat))


def pad_ops(x: Shape, sides: tuple[tuple[int, int], ...], mode: str) -> tuple:
    """F.pad of a map by (left, right) per spatial axis, in ``mode`` (zeros: any constant), as
    footprint.Op: a new tensor of the padded size. The backward of a constant pad pads the
    gradient by the negated amounts, and constant_pad_nd with no positive pad narrows and then
    clones: a new tensor of the input's size (measured: prelu then pad's backward 0.80 as a
    view); reflect and replicate fold the border's gradient back into a new one, and autograd
    keeps their input for it (their backward formulas take it, for its sizes).

    circular is ATen's _pad_circular, whose parts autograd records: the input sliced along each
    spatial axis (views), a new tensor of the padded size with the input copied into its middle,
    then each padded side's slab, from the last axis backwards, copied in place from the opposite
    side of the output (a view of it: a slab of ``side`` x the other axes' padded sizes x C).
    Nothing is saved. Its backward, slab by slab in reverse (CopySlices): the output's gradient
    copied into a new one, the slab's gradient cloned and its place zeroed (a zeros slab); that
    clone padded back to the output's size (slice_backward) and added to the new one; then the
    middle's copy: the gradient copied once more, the middle cloned, and each slice padded back
    into a new tensor of the input's size (measured: 0.85 of SGD's backward as one folding kernel)."""
    padded = (x[0], *(size + left + right for size, (left, right) in zip(x[1:], sides)))
    if mode == "zeros":
        return (Op(prod(padded)),)
    if mode != "circular":
        return (Op(prod(padded), saves=(INPUT,)),)
    rank = len(x) - 1
    ops = [Op(prod(x), part=True) for _ in range(rank)]
    ops.append(Op(prod(padded), scratch=1))   # its backward's copy of the gradient, freed with it
    written = rank   # the op whose output is the output tensor as last written
    for axis in reversed(range(rank)):
        for side in sides[axis]:
            if side:
                slab = prod(padded) // padded[1 + axis] * side
                ops.append(Op(slab, part=True, reads=(written,)))
                ops.append(Op(None, reads=(written, len(ops) - 1), temporaries=(Tensor(slab),)))
                written = len(ops) - 1
    return tuple(ops)


def _sizes(value):
    """A list of sizes >= 1, one of them -1 at most (inferred)."""
    if not isinstance(value, list) or not value:
        raise SpecError(f"must be a list of sizes, got {shown(value)}", hint="e.g. [-1, 7, 7]")
    sizes = tuple(-1 if size == -1 else positive_int(size) for size in value)
    if sizes.count(-1) > 1:
        raise SpecError("only one size may be -1 (the one inferred)")
    return sizes


def _dims(value):
    """A list of axis indices."""
    if not isinstance(value, list) or not value:
        raise SpecError(f"must list the input's axes in their new order, got {shown(value)}", hint="e.g. [1, 2, 0]")
    return tuple(non_negative_int(axis) for axis in value)


@dataclass(frozen=True, kw_only=True)
class Rearranged(Movement):
    """The same values under other axes: a flat vector for one size, a channels-first feature map
    for more, a sequence [T, F] with ``sequence: true``."""

    sequence: bool = arg(boolean, False, "the result is a sequence [T, F]: steps first")

    def typed(self, sizes: tuple) -> Shape:
        if not self.sequence:
            return shape_of(sizes)
        if len(sizes) != 2:
            raise SpecError(f"a sequence is [T, F], but the result {list(sizes)} has {len(sizes)} ax"
                            f"{'is' if len(sizes) == 1 else 'es'}", field="sequence")
        return Steps(sizes)


@register("reshape", known_as=("Unflatten", "view"))
@dataclass(frozen=True, kw_only=True)
class Reshape(Rearranged):
    """torch.reshape per sample: the values in order under new sizes, whose product is the
    input's; one size -1 is inferred. A view of a contiguous input (PyTorch copies only one whose
    strides forbid it, such as a permute's output)."""

    shape: tuple = arg(_sizes, doc="the new sizes per sample (no batch axis), one of them -1 at most",
                       known_as=("target_shape",))
    main = "shape"
    copies = False

    def output_shape(self, x: Shape) -> Shape:
        total, known = prod(x), prod(size for size in self.shape if size != -1)
        if -1 in self.shape and total % known == 0:
            return self.typed(tuple(total // known if size == -1 else size for size in self.shape))
        if known == total and -1 not in self.shape:
            return self.typed(self.shape)
        raise SpecError(f"{shape_text(x)} holds {total:,} values, which {list(self.shape)} cannot hold "
                        f"({known:,}{' x something' if -1 in self.shape else ''})", field="shape",
                        hint="the sizes' product must equal the input's")

    def to_torch(self, x: Shape):
        return module("Reshape", *self.shape)


@register("permute")
@dataclass(frozen=True, kw_only=True)
class Permute(Rearranged):
    """torch.permute per sample: output axis i is input axis dims[i]. A view (strided: a later
    reshape of it copies)."""

    dims: tuple = arg(_dims, doc="the input's axes in their new order (no batch axis)")
    main = "dims"
    copies = False

    def output_shape(self, x: Shape) -> Shape:
        if sorted(self.dims) != list(range(len(x))):
            raise SpecError(f"dims {list(self.dims)} must order the axes 0..{len(x) - 1} of {shape_text(x)}, "
                            f"each once", field="dims")
        return self.typed(tuple(x[axis] for axis in self.dims))

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A view; where it moves axes of more than one element it is not contiguous (a later
        reshape or .contiguous() copies it), nor is its gradient, a permuted view of the output's."""
        moved = [axis for axis in self.dims if x[axis] > 1]
        if moved == sorted(moved):
            return (view(),)
        return (dataclasses.replace(view(), permuted=self.dims),)

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Whether its axes now lie in memory channels last, from its input's layout (the schedule
        follows each view's memory order through several permutes: Op.permuted)."""
        plain, channels_last = tuple(range(len(x))), (*range(1, len(x)), 0)
        before = channels_last if inputs[0] else plain
        return len(x) > 1 and tuple(self.dims.index(axis) for axis in before) == channels_last

    def to_torch(self, x: Shape):
        return module("Permute", *self.dims)


@register("identity")
@dataclass(frozen=True, kw_only=True)
class Identity(Movement):
    """y = x, the input itself (nn.Identity: a placeholder, a named point to read from)."""

    copies = False

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """The input itself: its layout."""
        return inputs[0]

    def to_torch(self, x: Shape):
        return module("nn.Identity")

