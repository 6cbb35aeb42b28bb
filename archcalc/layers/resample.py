"""Layers that grow feature maps back (U-Net's decoder): convtranspose and upsample."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .activation import activation_name
from .arguments import (
    arg,
    boolean,
    choice,
    non_negative_int,
    per_axis,
    positive_int,
    size,
)
from .base import Layer, axes, feature_map_rank, register, spatial_rank
from .footprint import INPUT, LOWER, Op
from .geometry import axis_labels, transposed_output
from .recipe import compact, module, options
from .shapes import Shape
from .terms import TransposedAxis


@register("convtranspose", "upconv", prefix="upconv", known_as=("Conv2DTranspose",))
@dataclass(frozen=True, kw_only=True)
class ConvTranspose(Layer):
    """The gradient of a conv, used to upsample: out = (D-1)*S - 2P + dilation*(F-1) + output_padding + 1;
    params = C * (K/groups) * prod(F) + K (bias)."""

    filters: int = arg(positive_int, doc="number of filters K (output channels)",
                          known_as=("out_channels",))
    kernel: int | tuple = arg(size, doc="filter size F", known_as=("kernel_size",))
    stride: int | tuple = arg(size, 1, "upsampling step S", known_as=("strides",))
    padding: int | tuple = arg(per_axis(non_negative_int), 0, "P removed per side")
    output_padding: int | tuple = arg(per_axis(non_negative_int), 0, "extra size added on one side")
    dilation: int | tuple = arg(size, 1, "spacing between filter taps")
    groups: int = arg(positive_int, 1, "split channels into independent groups")
    bias: bool = arg(boolean, True, "one bias per filter")
    activation: str | None = arg(activation_name, None, "activation applied to the output")
    main = "filters"

    def output_shape(self, x: Shape) -> Shape:
        rank = feature_map_rank(x, self.kind)
        if x[0] % self.groups or self.filters % self.groups:
            raise SpecError(f"groups={self.groups} must divide both the input channels ({x[0]}) and the "
                            f"filters ({self.filters})", field="groups")
        values = zip(x[1:], *(axes(getattr(self, name), rank, name)
                              for name in ("kernel", "stride", "padding", "dilation", "output_padding")))
        spatial = []
        for d, f, s, p, r, extra in values:
            if extra >= max(s, r):
                raise SpecError(f"output_padding {extra} must be smaller than the stride or the dilation",
                                field="output_padding")
            out = transposed_output(d, f, s, p, r, extra)
            if out < 1:
                raise SpecError(f"(D-1)*S - 2P + F_eff = {out} leaves nothing: the padding {p} is too large",
                                field="padding")
            spatial.append(out)
        return x.like((self.filters, *spatial))

    def tensors(self, x: Shape) -> dict:
        """weight C x K/groups x F..., bias K (nn.ConvTransposeNd's)."""
        weight = (x[0], self.filters // self.groups, *axes(self.kernel, spatial_rank(x), "kernel"))
        return {"weight": weight, "bias": (self.filters,)} if self.bias else {"weight": weight}

    def macs(self, x: Shape, y: Shape) -> int:
        """Input elements x (K/groups x kernel volume): each input value is spread by its filters."""
        return prod(x) * (self.filters // self.groups) * prod(axes(self.kernel, spatial_rank(x), "kernel"))

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One bias add per output element."""
        return prod(y) if self.bias else 0

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """Like a convolution, it saves its input for the weight gradient."""
        return (Op(prod(y), saves=(INPUT,), weights=True, autocast=LOWER),)

    def receptive_field(self, x: Shape, y: Shape, field: tuple) -> tuple:
        """Output o reads the inputs i with i*S in [o+P-(F_eff-1), o+P]: at most (F_eff-1)//S + 1
        of them, from ceil((P-(F_eff-1))/S) for o = 0; the jump shrinks by S."""
        rank = spatial_rank(x)
        values = zip(field, *(axes(getattr(self, name), rank, name) for name in ("kernel", "stride", "padding",
                                                                                   "dilation")))
        found = tuple(axis.upsampled(s, r * (f - 1) // s + 1, -((r * (f - 1) - p) // s))
                      for axis, f, s, p, r in values)
        return found if None not in found else super().receptive_field(x, y, field)

    def to_torch(self, x: Shape):
        rank = spatial_rank(x)
        value = {name: compact(axes(getattr(self, name), rank, name))
                 for name in ("kernel", "stride", "padding", "output_padding", "dilation")}
        return module(f"nn.ConvTranspose{rank}d", x[0], self.filters, value["kernel"],
                      **options(stride=(value["stride"], 1), padding=(value["padding"], 0),
                                output_padding=(value["output_padding"], 0), groups=(self.groups, 1),
                                bias=(self.bias, True), dilation=(value["dilation"], 1)))

    def size_terms(self, x: Shape, y: Shape | None) -> tuple:
        """One TransposedAxis per spatial axis, in axis order."""
        rank = spatial_rank(x)
        values = zip(axis_labels(rank), x[1:], *(axes(getattr(self, name), rank, name) for name in
                                                  ("kernel", "stride", "padding", "dilation", "output_padding")))
        return tuple(TransposedAxis(label, d, f, s, p, r, extra, transposed_output(d, f, s, p, r, extra))
                     for label, d, f, s, p, r, extra in values)


@register("upsample", known_as=("UpSampling2D",))
@dataclass(frozen=True, kw_only=True)
class Upsample(Layer):
    """Each position repeated (nearest) or interpolated: out = D * scale per axis; 0 params."""

    scale: int | tuple = arg(size, 2, "integer factor per axis", known_as=("scale_factor",))
    mode: str = arg(choice("nearest", "linear"), "nearest", "nearest, or (bi/tri)linear interpolation")
    main = "scale"

    def output_shape(self, x: Shape) -> Shape:
        rank = feature_map_rank(x, self.kind)
        return x.like((x[0], *(d * k for d, k in zip(x[1:], axes(self.scale, rank, "scale")))))

    def to_torch(self, x: Shape):
        rank = spatial_rank(x)
        mode = self.mode if self.mode == "nearest" else {1: "linear", 2: "bilinear", 3: "trilinear"}[rank]
        scale = axes(self.scale, rank, "scale")
        return module("nn.Upsample", scale_factor=tuple(float(k) for k in scale),
                      **options(mode=(mode, "nearest")))

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A new tensor; its backward needs only the sizes, so nothing is kept."""
        return (Op(prod(y)),)

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """nearest copies (0); linear weighs its 2^d neighbours: a multiply and an add each."""
        return 0 if self.mode == "nearest" else 2 * 2 ** spatial_rank(x) * prod(y)

    def receptive_field(self, x: Shape, y: Shape, field: tuple) -> tuple:
        """Output o reads input floor(o/k) (nearest), or two neighbours among floor(o/k)-1 .. floor(o/k)+1
        (linear, PyTorch's align_corners=False); the jump shrinks by the scale k."""
        reach, first = (1, 0) if self.mode == "nearest" else (3, -1)
        found = tuple(axis.upsampled(k, reach, first)
                      for axis, k in zip(field, axes(self.scale, spatial_rank(x), "scale")))
        return found if None not in found else super().receptive_field(x, y, field)
