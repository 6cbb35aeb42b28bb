"""A layer's arithmetic as data: the labelled terms of its size, parameter and neuron rules.

A kind returns these from ``Layer.size_terms`` (how its output size follows from its input)
and ``Layer.count_terms`` (how its parameters, buffers and neurons are made up); the views
word them (archcalc/views/wording.py: explain's board, the report's formula column, the
diagram). No text is made here, so a new view never re-derives a rule and the wording of a
rule cannot drift from the numbers it shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .geometry import Window

# --- size terms: one per spatial axis (labelled), or one for the whole layer ---------------


@dataclass(frozen=True)
class WindowAxis:
    """One axis of a sliding window (conv, pool): out = (D - F_eff + P_left + P_right)/S + 1.

    ``window`` holds D, F, dilation (F_eff), P left/right, S, the rounding applied, the exact
    quotient and the result (geometry.Window); ``same`` says P was chosen by 'same' padding
    (out = ceil(D/S)), ``asked`` is the rounding the layer declares (a strict 'same' layer
    floors: its windows carry 'floor').
    """

    axis: str          # H, W, D (depth), L
    window: Window
    same: bool = False
    asked: str = "strict"


@dataclass(frozen=True)
class TransposedAxis:
    """One axis of a transposed convolution: out = (D-1)*S - 2P + dilation*(F-1) + 1 + output_padding."""

    axis: str
    size: int            # D
    kernel: int          # F
    stride: int          # S
    padding: int         # P, removed on each side
    dilation: int
    output_padding: int
    output: int

    @property
    def effective_kernel(self) -> int:
        return self.dilation * (self.kernel - 1) + 1


@dataclass(frozen=True)
class Joined:
    """A merge's joined axis: its size is the sum of the branches' (64+128+32 = 224)."""

    axis: int              # counted without the batch axis: 0 = a map's channels, a sequence's steps
    parts: tuple           # each input's size on that axis
    total: int
    name: str = ""         # "channels", "steps", "features"; "" for an axis without a name


@dataclass(frozen=True)
class Flattened:
    """Every axis folded into one: C*H*W."""

    factors: tuple
    total: int


@dataclass(frozen=True)
class Recurrence:
    """A recurrent stack unrolled over the sequence: T steps x H (x directions x layers), and
    its bias vectors per gate (2 PyTorch, 1 the course's single bias, 0 none)."""

    steps: int
    hidden: int
    directions: int
    layers: int
    bias_vectors: int


# --- count terms: how a count is made up ---------------------------------------------------

Expression = Union[int, "Product", "Sum", "Ratio"]


@dataclass(frozen=True)
class Product:
    """Factors multiplied, in the course's order (F x F x C x K; H x W x C)."""

    factors: tuple


@dataclass(frozen=True)
class Sum:
    """Terms added (weights + biases)."""

    terms: tuple


@dataclass(frozen=True)
class Ratio:
    """A whole quotient among factors: the channels each group sees, C/groups."""

    numerator: int
    denominator: int


@dataclass(frozen=True)
class Count:
    """A count and how it is made up: ``expression`` evaluates to ``value`` (None: nothing to
    expand); ``meaning`` names its parts ('gamma, beta'); ``shared_steps``: the weights serve
    every step of a sequence of that length."""

    value: int
    expression: Expression | None = None
    meaning: str = ""
    shared_steps: int = 0


@dataclass(frozen=True)
class Counts:
    """How a layer's parameters, buffers and neurons are made up (``Layer.count_terms``)."""

    params: Count
    buffers: Count
    neurons: Count



@dataclass(frozen=True)
class Attending:
    """What an attention layer attends (``Layer.attending``), for the sequence figures
    (analysis/sequence.py) and explain's per-head arithmetic: ``heads`` query heads and
    ``kv_heads`` key/value heads of ``head_dim`` features, ``queries`` positions (T) attending
    to ``keys`` positions (S: T itself in self-attention, the memory's in cross-attention),
    projections from and to ``model_dim`` (d) features, keys and values read from
    ``memory_dim`` features. ``causal``: position t sees positions <= t; ``cross``: keys and
    values come from another sequence; ``fused``: a fused kernel (flash) never holds the
    heads x T x S score matrices."""

    heads: int
    kv_heads: int
    head_dim: int
    queries: int
    keys: int
    model_dim: int
    memory_dim: int
    causal: bool = False
    cross: bool = False
    fused: bool = False
