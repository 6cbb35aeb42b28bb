"""An operation archcalc has no kind for, kept by ``archcalc import --allow-opaque`` as it was
traced: its output shape and the parameters it holds, nothing more."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .arguments import arg, non_negative_int, text
from .base import Label, Layer, register
from .footprint import Op
from .learned import tensor_shape
from .receptive import Field, covering
from .shapes import Shape


@register("opaque")
@dataclass(frozen=True, kw_only=True)
class Opaque(Layer):
    """An imported operation without a kind (``op``: what PyTorch called it, 'torch.roll',
    'nn.MyBlock'): output shape = ``shape`` as PyTorch traced it, whatever its inputs; params =
    ``parameters`` as PyTorch's parameters() counted the tensors it holds (one flat tensor here);
    no buffers. MACs and FLOPs are unknown: not counted (0 in the totals, which every report says,
    ``opaque``). Its output elements count as neurons (it computes new values). Its receptive field
    is its whole input (a bound: what it reads is unknown). It has no PyTorch form: ``run`` and
    ``export`` refuse it."""

    op: str = arg(text, doc="the operation as PyTorch names it (torch.roll, nn.MyBlock)")
    shape: Shape = arg(tensor_shape, doc="its output shape per sample, as traced: [sizes...] or {steps: T, features: F}")
    parameters: int = arg(non_negative_int, 0, doc="the parameters it holds, as PyTorch counts them")
    main = "op"
    merges = True   # one input or several (an operation of two tensors), x a tuple of shapes
    opaque = True

    def output_shape(self, x: tuple) -> Shape:
        if not x:
            raise SpecError("opaque needs at least one input", field="inputs",
                            hint="name what the operation reads: inputs: [a, b]")
        return self.shape

    def tensors(self, x: tuple) -> dict:
        """parameters: one flat tensor of them (their real shapes are not kept)."""
        return {"parameters": (self.parameters,)} if self.parameters else {}

    def receptive_field(self, x: tuple, y: Shape, field: Field) -> Field:
        return covering(field, x[0])

    def label(self, x: tuple) -> Label:
        return Label(self.kind, (self.op,), {})

    memory_gap = "what the operation allocates inside and keeps for its backward is unknown: its output only"

    def memory_ops(self, x: tuple, y: Shape, training: bool, device: str) -> tuple:
        """Its output, a new tensor; its parameters' gradients in its backward (the rest unknown: memory_gap)."""
        return (Op(prod(y), weights=self.parameters > 0),)

    def to_torch(self, x: tuple):
        raise SpecError(f"opaque layer ({self.op}) has no PyTorch form: archcalc kept only its traced shape and "
                        f"parameter count, not what it computes",
                        hint="replace it with layer kinds that compute it (archcalc kinds lists them), or run "
                             "the source model itself")
