"""Convolutions: conv (rank from the input), conv1d, conv2d, conv3d."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import prod
from typing import ClassVar

from ..errors import SpecError
from .activation import activation_name
from .arguments import arg, choice, padding, positive_int, size
from .base import axes, register, spatial_rank
from .channels import pad_ops
from .footprint import INPUT, LOWER, Op, contiguous, strides
from .geometry import ROUNDINGS
from .im2col import Unrolled
from .recipe import compact, module, options, sequence
from .shapes import Shape
from .terms import Count, Counts, Product, Ratio, Sum
from .values import bias_values, check_values, numbers, preset
from .windowed import Windowed

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


@register("conv", prefix="conv")
@dataclass(frozen=True, kw_only=True)
class Conv(Windowed):
    """K filters of F per axis over C channels.

    out = (D - dilation*(F-1) - 1 + 2P)/S + 1 per axis;
    params = K * (C/groups) * prod(F) + K (bias).
    """

    filters: int = arg(positive_int, doc="number of filters K (output channels)",
                          known_as=("out_channels",))
    kernel: int | tuple = arg(size, doc="filter size F, one number or one per axis",
                                  known_as=("kernel_size",))
    stride: int | tuple = arg(size, 1, "step S between windows", known_as=("strides",))
    padding: str | int | tuple = arg(padding, "valid", "valid, same, or P per side (per axis)")
    padding_mode: str = arg(choice(*PADDING_MODES), "zeros", "what the padding holds")
    dilation: int | tuple = arg(size, 1, "spacing between filter taps", known_as=("dilation_rate",))
    groups: int = arg(positive_int, 1, "split channels into independent groups")
    bias: bool | tuple = arg(bias_values, True, "one bias per filter (true/false), or their K values",
                              known_as=("use_bias",))
    activation: str | None = arg(activation_name, None, "activation applied to the output")
    rounding: str = arg(choice(*ROUNDINGS), "strict", "what to do when (D-F+2P)/S+1 is not whole")
    weights: tuple | None = arg(numbers, None, "explicit filter values: [K][C/groups][F...] "
                                               "(PyTorch's layout) or one flat list")

    main = "filters"
    rank: ClassVar[int | None] = None  # fixed by conv1d/conv2d/conv3d

    def output_shape(self, x: Shape) -> Shape:
        self._check_input(x)
        spatial = self.spatial_output(x)
        self._check_values(x)
        return x.like((self.filters, *spatial))

    def tensors(self, x: Shape) -> dict:
        """weight K x C/groups x F..., bias K (nn.ConvNd's)."""
        weight = (self.filters, x[0] // self.groups, *axes(self.kernel, spatial_rank(x), "kernel"))
        return {"weight": weight, "bias": (self.filters,)} if self.bias else {"weight": weight}

    def window_values(self, x: Shape) -> int:
        """C/groups x kernel volume: the inputs one output element is computed from."""
        return x[0] // self.groups * prod(axes(self.kernel, spatial_rank(x), "kernel"))

    def macs(self, x: Shape, y: Shape) -> int:
        """Output elements x (C/groups x kernel volume): K*prod(out) * C/groups*prod(F)."""
        return prod(y) * self.window_values(x)

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One bias add per output element."""
        return prod(y) if self.bias else 0

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """The convolution saves its input for the weight gradient. A separate pad module
        (asymmetric 'same') or nn.Conv's own F.pad (any padding_mode other than zeros, even with
        no padding: F.pad copies) first pads the input (channels.pad_ops), and the padded input is
        then the one saved. Over a 2-D or 3-D map laid out channels last (a circular pad makes a
        plain one) the weight's gradient comes out channels last, and AccumulateGrad copies it to
        the weight's layout where the two differ (not when C/groups or the kernel is 1)."""
        conv = Op(prod(y), saves=(INPUT,), weights=True, autocast=LOWER)
        weight = self.tensors(x)["weight"]
        if spatial_rank(x) >= 2 and self.padding_mode != "circular" and not contiguous(
                weight, strides(weight, (0, *range(2, len(weight)), 1))):
            conv = dataclasses.replace(conv, if_channels_last=(dataclasses.replace(conv, copied_weight=prod(weight)),))
        if self.torch_padding(x, self.padding_mode)[1] is None and self.padding_mode == "zeros":
            return (conv,)
        return (*pad_ops(x, tuple((w.pad_left, w.pad_right) for w in self.windows(x)), self.padding_mode), conv)

    def unrolled(self, x: Shape, y: Shape) -> Unrolled:
        """im2col: K filters of C/groups*prod(F) values, one column per output position."""
        return Unrolled(self.filters, self.groups, self.window_values(x), prod(y[1:]))

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        """params = 11x11x3x96 + 96: F x F x C/groups x K weights, plus K biases."""
        channels = Ratio(x[0], self.groups) if self.groups > 1 else x[0]
        weights = Product((*axes(self.kernel, spatial_rank(x), "kernel"), channels, self.filters))
        params = Count(self.params(x), Sum((weights, self.filters)) if self.bias else weights)
        return dataclasses.replace(super().count_terms(x, y), params=params)

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
        if self.padding_mode in ("reflect", "circular"):
            # reflect mirrors without repeating the edge (pad < D); circular wraps around once (pad <= D)
            for window in self.windows(x):
                pad = max(window.pad_left, window.pad_right)
                if pad > window.size or (pad == window.size and self.padding_mode == "reflect"):
                    raise SpecError(f"{self.padding_mode} padding of {pad} needs an input of at least "
                                    f"{pad + (self.padding_mode == 'reflect')}, got {window.size}",
                                    field="padding_mode", hint="use padding_mode: replicate or zeros")

    def _check_values(self, x: Shape) -> None:
        """Explicit weights fill [K][C/groups][F...] exactly; explicit biases number K."""
        kernel = axes(self.kernel, spatial_rank(x), "kernel")
        channels = x[0] // self.groups
        check_values(self.weights, self.bias, (self.filters, channels, *kernel),
                     f"[K={self.filters}][C/groups={channels}][kernel {'x'.join(map(str, kernel))}]")

    def to_torch(self, x: Shape):
        """nn.Conv1d/2d/3d; asymmetric 'same' padding becomes an explicit pad layer before it."""
        windows = self.windows(x)
        if self.rounding == "ceil" and not all(w.whole for w in windows):
            raise SpecError("PyTorch convolutions cannot round up: nn.Conv always floors (Caffe rounds up "
                            "only its pooling)", field="rounding",
                            hint="use 'rounding: floor', or a padding that makes (D-F+2P)/S+1 whole")
        padding, pad = self.torch_padding(x, self.padding_mode)
        conv = module(f"nn.Conv{len(windows)}d", x[0], self.filters, compact(w.kernel for w in windows),
                      **options(stride=(compact(w.stride for w in windows), 1), padding=(padding, 0),
                                dilation=(compact(w.dilation for w in windows), 1), groups=(self.groups, 1),
                                bias=(bool(self.bias), True),
                                padding_mode=(self.padding_mode if pad is None else "zeros", "zeros")))
        return sequence(pad, preset(conv, self.weights, self.bias))


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
