"""What a layer's tensor operations allocate and what autograd keeps of them, as data.

Each layer kind describes its PyTorch module as a list of ``Op`` (Layer.memory_ops); the memory
schedule (analysis/schedule.py) replays them in execution order to find the peak. An op reads
the previous op's output (the first op reads the layer's inputs), allocates its output (or
returns a view of its input), may return extra tensors (max-pool indices, batch statistics, a
dropout mask), and, when it is differentiable, keeps for the backward pass what its PyTorch
derivative formula saves (tools/autograd/derivatives.yaml).
"""
from __future__ import annotations

from dataclasses import dataclass

ACTIVATION = "activation"  # the network's dtype
MASK = "mask"              # dropout's mask: bool from the fused kernel (CUDA), the dtype on CPU
INPUT, OUTPUT = "input", "output"
LOWER, FLOAT32 = "lower", "float32"   # autocast's lists: ops run in 16 bits, ops run in float32


@dataclass(frozen=True)
class Tensor:
    """A tensor an op returns besides its output: ``elements`` per sample (``batched``) or in all."""

    elements: int
    dtype: str = ACTIVATION
    batched: bool = True


@dataclass(frozen=True)
class Op:
    """One tensor operation of a layer.

    output: elements per sample of the new tensor it returns; None: a view of its (first) input.
    extras: the other tensors it returns; freed at once unless saved.
    saves: what autograd keeps for the backward pass: INPUT (each input the op reads), OUTPUT, or
           the index of one of ``extras``.
    gradient: "new": the backward allocates one gradient per input that needs it; "view": it
           passes views of its output's gradient on (reshape, slicing, addition); "always": a new
           one even for an input that needs none (a kernel that computes it regardless).
    weights: the layer's parameters are used here: their gradients appear in this op's backward.
    rereads: it also reads the layer's first input, besides the previous op's output.
    scratch: tensors of its output's size that its backward formula computes on the way to the
           gradients (abs: grad * x.sgn()), alive while they are allocated.
    lingers: how many of the layer's following ops still find its output referenced (a Python
           variable that is reassigned only after them), so it is not freed before they allocate.
    autocast: under mixed precision, LOWER (torch.autocast runs it in 16 bits: matrix products,
           convolutions; it casts what it reads, its parameters included), FLOAT32 (autocast
           runs it in float32), or "" (it runs in the dtype of what it reads).
    """

    output: int | None
    extras: tuple = ()
    saves: tuple = ()
    gradient: str = "new"
    weights: bool = False
    rereads: bool = False    # also reads the layer's first input (x / f(x) in local response norm)
    scratch: int = 0         # output-sized temporaries its backward formula makes (abs: sgn(x))
    lingers: int = 0
    autocast: str = ""


def view() -> Op:
    """A reshape, flatten or expand: no memory, and its gradient is a view too."""
    return Op(None, gradient="view")
