"""Convolutions: conv (rank from the input), conv1d, conv2d, conv3d."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar

from ..errors import SpecError
from ..geometry import ROUNDINGS
from ..schema import arg, boolean, choice, padding, positive_int, size
from .activation import activation_name
from .base import Shape, axes, counted, register, spatial_rank
from .windowed import Windowed

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


@register("conv", prefix="conv")
@dataclass(frozen=True, kw_only=True)
class Conv(Windowed):
    """K filters of F per axis over C channels.

    out = (D - dilation*(F-1) - 1 + 2P)/S + 1 per axis;
    params = K * (C/groups) * prod(F) + K (bias).
    """

    filters: int = arg(positive_int, doc="number of filters K (output channels)")
    kernel: int | tuple = arg(size, doc="filter size F, one number or one per axis")
    stride: int | tuple = arg(size, 1, "step S between windows")
    padding: str | int | tuple = arg(padding, "valid", "valid, same, or P per side (per axis)")
    padding_mode: str = arg(choice(*PADDING_MODES), "zeros", "what the padding holds")
    dilation: int | tuple = arg(size, 1, "spacing between filter taps")
    groups: int = arg(positive_int, 1, "split channels into independent groups")
    bias: bool = arg(boolean, True, "one bias per filter")
    activation: str | None = arg(activation_name, None, "activation applied to the output")
    rounding: str = arg(choice(*ROUNDINGS), "strict", "what to do when (D-F+2P)/S+1 is not whole")

    main = "filters"
    rank: ClassVar[int | None] = None  # fixed by conv1d/conv2d/conv3d

    def output_shape(self, x: Shape) -> Shape:
        self._check_input(x)
        return (self.filters, *self.spatial_output(x))

    def params(self, x: Shape) -> int:
        kernel = axes(self.kernel, spatial_rank(x), "kernel")
        return self.filters * (x[0] // self.groups) * prod(kernel) + (self.filters if self.bias else 0)

    def explain_params(self, x: Shape) -> str:
        """'params = 11x11x3x96 + 96 = 34,944': F x F x C/groups x K, plus K biases."""
        channels = f"({x[0]}/{self.groups})" if self.groups > 1 else str(x[0])
        kernel = axes(self.kernel, spatial_rank(x), "kernel")
        weights = "x".join([*map(str, kernel), channels, str(self.filters)])
        return counted("params", weights + (f" + {self.filters}" if self.bias else ""), self.params(x))

    def _check_input(self, x: Shape) -> None:
        rank = spatial_rank(x)
        if self.rank is not None and rank != self.rank:
            raise SpecError(f"{self.kind} needs an input with {self.rank} spatial "
                            f"ax{'is' if self.rank == 1 else 'es'}, got {list(x)}",
                            hint=f"use 'conv' to take the rank from the input, or conv{rank}d"
                            if rank in (1, 2, 3) else "")
        channels = x[0]
        if channels % self.groups or self.filters % self.groups:
            raise SpecError(f"groups={self.groups} must divide both the input channels ({channels}) "
                            f"and the filters ({self.filters})", field="groups",
                            hint="choose groups among the common divisors of the two")
        if self.padding_mode == "reflect":
            for window in self.windows(x):
                if max(window.pad_left, window.pad_right) >= window.size:
                    raise SpecError(f"reflect padding of {max(window.pad_left, window.pad_right)} needs "
                                    f"an input larger than that, got {window.size}",
                                    field="padding_mode", hint="use padding_mode: replicate or zeros")


@register("conv1d", prefix="conv")
@dataclass(frozen=True, kw_only=True)
class Conv1d(Conv):
    """A conv that insists on a [C, L] input."""

    rank = 1


@register("conv2d", prefix="conv")
@dataclass(frozen=True, kw_only=True)
class Conv2d(Conv):
    """A conv that insists on a [C, H, W] input."""

    rank = 2


@register("conv3d", prefix="conv")
@dataclass(frozen=True, kw_only=True)
class Conv3d(Conv):
    """A conv that insists on a [C, D, H, W] input."""

    rank = 3
