"""Learned tensors applied as they are: scale (a learned factor per channel)."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .arguments import arg, number
from .base import Layer, register, shape_text
from .recipe import module, options
from .shapes import Shape, Steps


@register("scale")
@dataclass(frozen=True, kw_only=True)
class Scale(Layer):
    """y = gamma * x with one learned factor per channel (ConvNeXt's layer scale): per channel
    of a feature map, per feature of a sequence's steps or of a vector.

    params = C; 0 MACs (nothing is summed); FLOPs = 1 multiply per element. Its outputs count
    as neurons (new values, as a norm's affine step makes).
    """

    init: float = arg(number, 1.0, "every factor's starting value (ConvNeXt: 1e-6)")
    main = "init"

    def factor_shape(self, x: Shape) -> tuple:
        """weight's shape, as it broadcasts over one sample: [C, 1, ...] on a map (torchvision's
        layer_scale), [F] on a sequence [T, F] or a vector [F]."""
        if isinstance(x, Steps):
            if len(x) < 2:
                raise SpecError(f"scale multiplies features, but its input {shape_text(x)} holds token ids",
                                hint="put an embedding first")
            return (x[-1],)
        return (x[0],) + (1,) * (len(x) - 1)

    def output_shape(self, x: Shape) -> Shape:
        self.factor_shape(x)
        return x

    def tensors(self, x: Shape) -> dict:
        """weight: one factor per channel."""
        return {"weight": self.factor_shape(x)}

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One multiply per element."""
        return prod(y)

    def to_torch(self, x: Shape):
        return module("Scale", self.factor_shape(x), **options(init=(self.init, 1.0)))
