"""Pooling: maxpool, avgpool (windowed), globalavgpool/globalmaxpool, adaptive pools."""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd, prod
from typing import ClassVar

from ..errors import SpecError
from .arguments import arg, choice, padding, size
from .base import Layer, axes, feature_map_rank, register, spatial_rank
from .channels import pad_ops
from .footprint import INPUT, PLAIN, Op, Tensor, view
from .geometry import ROUNDINGS, Window
from .recipe import compact, module, options, sequence
from .shapes import Shape, Vector
from .windowed import Windowed


@dataclass(frozen=True, kw_only=True)
class Pool(Windowed):
    """A window of F per axis, stride S (defaults to F): out = (D - F + 2P)/S + 1; 0 params.

    Channels pass through; each output element counts as a neuron (as in the course's
    AlexNet, where POOL1 holds 27x27x96 neurons).
    """

    main = "kernel"
    torch_name: ClassVar[str]   # nn.MaxPool2d, nn.AvgPool2d... without the rank
    pad_fill: ClassVar[float]   # what an explicit padding holds: -inf never wins a max

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
        return x.like((x[0], *spatial))

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One operation per value read: each output compares (max) or adds (mean) its F^d window."""
        return prod(y) * prod(axes(self.kernel, spatial_rank(x), "kernel"))

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """The pool saves its input; max-pooling also returns int64 indices (the argmax of each
        window, measured even under no_grad), saved too. A padding beyond what the pool takes
        inline is a separate constant pad module first (channels.pad_ops)."""
        rank = len(y) - 1
        pool = Op(prod(y), extras=(Tensor(prod(y), "int64"),), saves=(INPUT, 0)) if self.torch_name == "MaxPool" \
            else Op(prod(y), saves=(INPUT,))
        if self.torch_padding(x, fill=self.pad_fill, limit=lambda w: self.inline_padding(w, rank))[1] is None:
            return (pool,)
        return (*pad_ops(x, tuple((w.pad_left, w.pad_right) for w in self.windows(x)), "zeros"), pool)

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Its input's layout, as the pad before it leaves it (a zeros pad keeps channels last on
        2-D and 3-D maps, not on 1-D ones), on the CPU: a 1-D map is pooled as a 2-D one of height
        1, and the 2-D kernels and 3-D max-pooling write in their input's memory format;
        avg_pool3d writes a plain tensor."""
        rank = spatial_rank(x)
        padded = self.torch_padding(x, fill=self.pad_fill, limit=lambda w: self.inline_padding(w, rank))[1] is not None
        return inputs[0] and (rank >= 2 or not padded) and (self.torch_name == "MaxPool" or rank <= 2)

    def inline_padding(self, window: Window, rank: int) -> int:
        """The most padding PyTorch's pool takes inline on this axis: half the kernel."""
        return window.kernel // 2

    def to_torch(self, x: Shape):
        """nn.MaxPool/AvgPool 1d-3d; Caffe's ceil rounding is PyTorch's ceil_mode."""
        windows = self.windows(x)
        kernel = compact(w.kernel for w in windows)
        padding, pad = self.torch_padding(x, fill=self.pad_fill,
                                          limit=lambda w: self.inline_padding(w, len(windows)))
        if pad is not None and self.rounding == "ceil":
            # an explicit pad is part of the input for ceil_mode, whose last window may then differ
            for w in windows:
                padded = Window(w.size + w.pad_left + w.pad_right, w.kernel, w.stride, 0, 0, w.dilation, "ceil")
                if padded.output != w.output:
                    raise SpecError(f"PyTorch cannot round this pool up: it needs its padding "
                                    f"{w.pad_left}+{w.pad_right} as a separate layer, and ceil_mode would "
                                    f"then give {padded.output} windows instead of {w.output}",
                                    field="rounding", hint="use 'rounding: floor', or a whole (D-F+2P)/S+1")
        pool = module(f"nn.{self.torch_name}{len(windows)}d", kernel,
                      **options(stride=(compact(w.stride for w in windows), kernel), padding=(padding, 0),
                                dilation=(compact(w.dilation for w in windows), 1),
                                ceil_mode=(self.rounding == "ceil", False)))
        return sequence(pad, pool)


@register("maxpool", prefix="pool", known_as=("MaxPooling2D",))
@dataclass(frozen=True, kw_only=True)
class MaxPool(Pool):
    """Largest value in each window."""

    torch_name = "MaxPool"
    pad_fill = float("-inf")

    kernel: int | tuple = arg(size, doc="window size F", known_as=("kernel_size", "pool_size"))
    stride: int | tuple | None = arg(size, None, "step S (default: the kernel)",
                                         known_as=("strides",))
    padding: str | int | tuple = arg(padding, 0, "P per side, valid or same")
    dilation: int | tuple = arg(size, 1, "spacing between window taps", known_as=("dilation_rate",))
    rounding: str = arg(choice(*ROUNDINGS), "strict", "strict, floor (PyTorch) or ceil (Caffe)")


@register("avgpool", prefix="pool", known_as=("AveragePooling2D",))
@dataclass(frozen=True, kw_only=True)
class AvgPool(Pool):
    """Mean of each window (the course's mean pooling); padded zeros count in the mean."""

    torch_name = "AvgPool"
    pad_fill = 0.0

    def inline_padding(self, window: Window, rank: int) -> int:
        """PyTorch's AvgPool3d also refuses an input smaller than its kernel, padding or not."""
        return -1 if rank == 3 and window.size < window.kernel else super().inline_padding(window, rank)

    def output_shape(self, x: Shape) -> Shape:
        """As any pool; in 3D a window wider than the padded input is refused even rounding up,
        where 1D and 2D give one window: AvgPool3d checks the input against its kernel."""
        y = super().output_shape(x)
        if spatial_rank(x) == 3:
            for w in self.windows(x):
                if w.span < 0:
                    raise SpecError(f"PyTorch's AvgPool3d refuses an input smaller than its kernel, even with "
                                    f"ceil_mode: the padded input is {w.size + w.pad_left + w.pad_right}, "
                                    f"the kernel {w.kernel}", field="kernel",
                                    hint=f"use kernel {w.size + w.pad_left + w.pad_right} or smaller, or maxpool")
        return y

    kernel: int | tuple = arg(size, doc="window size F", known_as=("kernel_size", "pool_size"))
    stride: int | tuple | None = arg(size, None, "step S (default: the kernel)",
                                         known_as=("strides",))
    padding: str | int | tuple = arg(padding, 0, "P per side, valid or same")
    rounding: str = arg(choice(*ROUNDINGS), "strict", "strict, floor (PyTorch) or ceil (Caffe)")


@dataclass(frozen=True, kw_only=True)
class GlobalPool(Layer):
    """One value per channel: [C, ...] -> [C]; 0 params."""

    torch_name: ClassVar[str]  # the adaptive pool that reduces each channel to one value

    def output_shape(self, x: Shape) -> Shape:
        feature_map_rank(x, self.kind)
        return Vector((x[0],))

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One operation per input value (compared or added)."""
        return prod(x)

    def to_torch(self, x: Shape):
        return sequence(module(f"nn.{self.torch_name}{spatial_rank(x)}d", 1), module("nn.Flatten"))

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """Average: a mean, which keeps nothing; max: values and int64 indices, the input and
        the indices kept. Then a flatten (a view)."""
        return pooled(self.torch_name, x, prod(y), to_one=True), view()


@register("globalavgpool", prefix="gap", known_as=("GlobalAveragePooling2D",))
@dataclass(frozen=True, kw_only=True)
class GlobalAvgPool(GlobalPool):
    """Mean over all spatial positions of each channel."""

    torch_name = "AdaptiveAvgPool"


@register("globalmaxpool", prefix="gmp", known_as=("GlobalMaxPooling2D",))
@dataclass(frozen=True, kw_only=True)
class GlobalMaxPool(GlobalPool):
    """Maximum over all spatial positions of each channel."""

    torch_name = "AdaptiveMaxPool"


@dataclass(frozen=True, kw_only=True)
class AdaptivePool(Layer):
    """A pool whose windows are chosen to give exactly ``output`` per axis; 0 params."""

    main = "output"
    torch_name: ClassVar[str]
    output: int | tuple = arg(size, doc="output size, one number or one per axis", known_as=("output_size",))

    def output_shape(self, x: Shape) -> Shape:
        rank = feature_map_rank(x, self.kind)
        return x.like((x[0], *axes(self.output, rank, "output")))

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One operation per value read, window by window (adaptive windows may overlap)."""
        return x[0] * prod(adaptive_extent(d, out)[0] for d, out in zip(x[1:], y[1:]))

    def receptive_field(self, x: Shape, y: Shape, field: tuple) -> tuple:
        """Exact when the output divides the input (windows of D/out, stride D/out); otherwise the
        windows vary by one, and the largest window with the largest step gives an upper bound."""
        windows = []
        for d, out in zip(x[1:], y[1:]):
            largest = adaptive_extent(d, out)[1]
            windows.append(Window(d, largest, -(-d // out), 0, 0))
        return tuple(axis.through(window) for axis, window in zip(field, windows))

    def to_torch(self, x: Shape):
        rank = spatial_rank(x)
        return module(f"nn.{self.torch_name}{rank}d", compact(axes(self.output, rank, "output")))

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """As a global pool when every output axis is 1 (PyTorch then takes a mean); otherwise
        the adaptive kernel, which keeps its input (and, for max, its indices)."""
        return (pooled(self.torch_name, x, prod(y), to_one=all(size == 1 for size in y[1:])),)


def pooled(torch_name: str, x: Shape, elements: int, to_one: bool) -> Op:
    """An adaptive pool's op: a mean (to one value per channel: nothing kept, its gradient a new
    contiguous tensor) or
    _adaptive_avg_pool (its input kept); a max returns int64 indices and keeps them with its input."""
    if torch_name == "AdaptiveMaxPool":
        return Op(elements, extras=(Tensor(elements, "int64"),), saves=(INPUT, 0))
    return Op(elements, gradient_layout=PLAIN) if to_one else Op(elements, saves=(INPUT,))   # expand and divide: a new tensor


@register("adaptiveavgpool", prefix="pool")
@dataclass(frozen=True, kw_only=True)
class AdaptiveAvgPool(AdaptivePool):
    """PyTorch's AdaptiveAvgPool: mean over windows sized to give ``output``."""

    torch_name = "AdaptiveAvgPool"


@register("adaptivemaxpool", prefix="pool")
@dataclass(frozen=True, kw_only=True)
class AdaptiveMaxPool(AdaptivePool):
    """PyTorch's AdaptiveMaxPool: maximum over windows sized to give ``output``."""

    torch_name = "AdaptiveMaxPool"


def adaptive_extent(size: int, out: int) -> tuple[int, int]:
    """(inputs read in all, longest window) of the adaptive windows along one axis, in O(1): an
    output of 10^9 must not mean 10^9 windows. With q, r = divmod(D, out) and g = gcd(D, out),
    the windows read D + out - g inputs, and the longest spans q (r = 0), q + 1 (r = g) or q + 2
    positions (checked against adaptive_windows in tests/test_limits.py)."""
    q, r = divmod(size, out)
    g = gcd(size, out)
    return size + out - g, q if r == 0 else q + 1 if r == g else q + 2


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows along one axis: [floor(i*D/out), ceil((i+1)*D/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]
