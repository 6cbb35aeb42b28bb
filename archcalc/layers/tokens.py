"""Kinds for sequences of tokens: positions added to them (a learned table, or fixed sinusoids),
one token picked out (select) or all of them averaged (mean).

An image becomes tokens with the kinds that exist (torchvision's ViT does the same): a patch
convolution, then 'reshape: [C, -1]' and 'permute: {dims: [1, 0], sequence: true}' turn the
[C, H, W] map into the sequence [H*W, C]. A class token is a 'parameter' of one step
concatenated on axis 0; ViT's position embeddings are a 'parameter' of T steps and an 'add'.
Rotary positions belong to attention (its ``rotary`` field): they turn q and k, not the tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .arguments import arg, positive_int, positive_number
from .base import Layer, register, shape_text
from .footprint import Op, Tensor
from .recipe import module, options
from .shapes import Shape, Steps, Vector


def sequence_of_vectors(x: Shape, kind: str) -> Steps:
    """``x`` as a sequence [T, F]; a map, a vector or token ids are refused."""
    if not isinstance(x, Steps):
        raise SpecError(f"{kind} reads a sequence [T, F], but its input is the {x.layout} {shape_text(x)}",
                        hint="a [C, H, W] map becomes tokens with 'reshape: [C, -1]' then "
                             "'permute: {dims: [1, 0], sequence: true}'")
    if len(x) < 2:
        raise SpecError(f"{kind} needs vectors at each step, but its input is token ids {shape_text(x)}",
                        hint="add '- embedding: {vocabulary: V, dim: E}' first")
    return x


def step_index(value) -> int:
    """A whole number, negative from the end."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"must be a whole number (0 the first step, -1 the last), got {value!r}")
    return value


@register("positions", prefix="pos", known_as=("PositionalEmbedding", "position_embeddings", "wpe"))
@dataclass(frozen=True, kw_only=True)
class Positions(Layer):
    """Learned absolute position embeddings added to a sequence: y_t = x_t + W[t] for t < T, W a
    table of ``max`` positions x d (GPT-2's wpe, nn.Embedding(1024, 768), read at positions
    0..T-1; BERT's position_embeddings). params = max x d whatever T; FLOPs: 1 add per element."""

    max: int = arg(positive_int, doc="positions in the table (GPT-2: 1024, BERT: 512); T may not exceed it",
                   known_as=("n_positions", "max_position_embeddings", "num_embeddings"))
    main = "max"

    def output_shape(self, x: Shape) -> Shape:
        sequence = sequence_of_vectors(x, self.kind)
        if sequence.steps > self.max:
            raise SpecError(f"the sequence has {sequence.steps} steps, but the table holds {self.max} positions",
                            field="max", hint=f"max: {sequence.steps} or more, or a shorter sequence")
        return x

    def tensors(self, x: Shape) -> dict:
        """weight: the table, max x d (nn.Embedding's name)."""
        return {"weight": (self.max, x[-1])}

    def lookup_params(self, x: Shape) -> int:
        """The whole table: a position's vector is read and added, never multiplied."""
        return self.params(x)

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One add per element."""
        return prod(y)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """x + W[:T]: a new tensor (the slice is a view); the gradient reaches x as it is and the
        table summed over the batch."""
        return (Op(prod(y), gradient="view", weights=True),)

    def to_torch(self, x: Shape):
        return module("Positions", self.max, x[-1])


@register("sinusoidal", prefix="sin", known_as=("PositionalEncoding",))
@dataclass(frozen=True, kw_only=True)
class Sinusoidal(Layer):
    """Fixed sinusoidal positions added to a sequence [T, d] (Vaswani et al. 2017): y = x + PE,
    PE[t, 2i] = sin(t / base^(2i/d)), PE[t, 2i+1] = cos(t / base^(2i/d)). No parameters;
    FLOPs: 1 add per element (the table is a constant, not counted)."""

    base: float = arg(positive_number, 10000, "the wavelengths' base (the paper: 10000)")
    main = "base"

    def output_shape(self, x: Shape) -> Shape:
        sequence_of_vectors(x, self.kind)
        return x

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One add per element."""
        return prod(y)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """The table (T x d, once for the batch) made in forward, then x + table; the gradient
        passes to x as it is."""
        return (Op(prod(y), extras=(Tensor(prod(x), batched=False),), gradient="view"),)

    def to_torch(self, x: Shape):
        return module("Sinusoidal", **options(base=(self.base, 10000)))


@register("select")
@dataclass(frozen=True, kw_only=True)
class Select(Layer):
    """One step of a sequence, x[:, index]: [T, F] -> [F] (ViT's and BERT's class token, index 0;
    the last token, -1). A view; no parameters, FLOPs or new neurons."""

    index: int = arg(step_index, 0, "the step picked, from 0; negative counts from the end")
    main = "index"
    creates_neurons = False

    def output_shape(self, x: Shape) -> Shape:
        sequence = sequence_of_vectors(x, self.kind)
        if not -sequence.steps <= self.index < sequence.steps:
            raise SpecError(f"index {self.index} is outside the {sequence.steps} steps (0..{sequence.steps - 1}, "
                            f"or -1..-{sequence.steps} from the end)", field="index")
        return Vector((sequence[-1],))

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A view; its backward writes the gradient into zeros of the input's size (a new tensor)."""
        return (Op(None, gradient="new"),)

    def to_torch(self, x: Shape):
        return module("Select", **options(index=(self.index, 0)))


@register("mean")
@dataclass(frozen=True, kw_only=True)
class Mean(Layer):
    """The mean over a sequence's steps, x.mean(1): [T, F] -> [F] (mean pooling of tokens); as
    a global pool, 1 FLOP per value read and its outputs count as neurons."""

    def output_shape(self, x: Shape) -> Shape:
        sequence = sequence_of_vectors(x, self.kind)
        return Vector((sequence[-1],))

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One operation per value read."""
        return prod(x)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A new tensor that keeps nothing; its backward expands the gradient over the steps."""
        return (Op(prod(y)),)

    def to_torch(self, x: Shape):
        return module("Mean", 1)
