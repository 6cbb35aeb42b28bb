"""Pooling: maxpool, avgpool (windowed), globalavgpool/globalmaxpool, adaptive pools."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError
from ..geometry import ROUNDINGS
from ..schema import arg, choice, padding, positive_int, size
from .base import Layer, Shape, axes, register, require_feature_map, spatial_rank
from .windowed import Windowed


@dataclass(frozen=True, kw_only=True)
class Pool(Windowed):
    """A window of F per axis, stride S (defaults to F): out = (D - F + 2P)/S + 1; 0 params.

    Channels pass through; each output element counts as a neuron (as in the course's
    AlexNet, where POOL1 holds 27x27x96 neurons).
    """

    main = "kernel"

    def stride_value(self):
        return self.kernel if self.stride is None else self.stride

    def output_shape(self, x: Shape) -> Shape:
        spatial = self.spatial_output(x)
        if self.padding not in ("valid", "same"):
            kernel = axes(self.kernel, len(spatial), "kernel")
            for p, f in zip(axes(self.padding, len(spatial), "padding"), kernel):
                if 2 * p > f:
                    raise SpecError(f"pool padding {p} is more than half the kernel {f}",
                                    hint=f"use padding <= {f // 2} (PyTorch refuses more: the "
                                         f"window would see only padding)", field="padding")
        return (x[0], *spatial)


@register("maxpool", prefix="pool")
@dataclass(frozen=True, kw_only=True)
class MaxPool(Pool):
    """Largest value in each window."""

    kernel: int | tuple = arg(size, doc="window size F")
    stride: int | tuple | None = arg(size, None, "step S (default: the kernel)")
    padding: str | int | tuple = arg(padding, 0, "P per side, valid or same")
    dilation: int | tuple = arg(size, 1, "spacing between window taps")
    rounding: str = arg(choice(*ROUNDINGS), "strict", "strict, floor (PyTorch) or ceil (Caffe)")


@register("avgpool", prefix="pool")
@dataclass(frozen=True, kw_only=True)
class AvgPool(Pool):
    """Mean of each window (the course's mean pooling)."""

    kernel: int | tuple = arg(size, doc="window size F")
    stride: int | tuple | None = arg(size, None, "step S (default: the kernel)")
    padding: str | int | tuple = arg(padding, 0, "P per side, valid or same")
    rounding: str = arg(choice(*ROUNDINGS), "strict", "strict, floor (PyTorch) or ceil (Caffe)")


@dataclass(frozen=True, kw_only=True)
class GlobalPool(Layer):
    """One value per channel: [C, ...] -> [C]; 0 params."""

    def output_shape(self, x: Shape) -> Shape:
        require_feature_map(x, self.kind)
        if spatial_rank(x) < 1:
            raise SpecError(f"{self.kind} needs a feature map [C, ...], got the flat vector {list(x)}")
        return (x[0],)


@register("globalavgpool", prefix="gap")
@dataclass(frozen=True, kw_only=True)
class GlobalAvgPool(GlobalPool):
    """Mean over all spatial positions of each channel."""


@register("globalmaxpool", prefix="gmp")
@dataclass(frozen=True, kw_only=True)
class GlobalMaxPool(GlobalPool):
    """Maximum over all spatial positions of each channel."""


@dataclass(frozen=True, kw_only=True)
class AdaptivePool(Layer):
    """A pool whose windows are chosen to give exactly ``output`` per axis; 0 params."""

    main = "output"

    def output_shape(self, x: Shape) -> Shape:
        require_feature_map(x, self.kind)
        rank = spatial_rank(x)
        if rank < 1:
            raise SpecError(f"{self.kind} needs a feature map [C, ...], got the flat vector {list(x)}")
        return (x[0], *axes(self.output, rank, "output"))


@register("adaptiveavgpool", prefix="pool")
@dataclass(frozen=True, kw_only=True)
class AdaptiveAvgPool(AdaptivePool):
    """PyTorch's AdaptiveAvgPool: mean over windows sized to give ``output``."""

    output: int | tuple = arg(size, doc="output size, one number or one per axis")


@register("adaptivemaxpool", prefix="pool")
@dataclass(frozen=True, kw_only=True)
class AdaptiveMaxPool(AdaptivePool):
    """PyTorch's AdaptiveMaxPool: maximum over windows sized to give ``output``."""

    output: int | tuple = arg(size, doc="output size, one number or one per axis")
