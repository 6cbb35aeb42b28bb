"""Normalisation layers: batchnorm, layernorm, groupnorm, instancenorm, rmsnorm, lrn (AlexNet's NORM).

Norm layers keep the shape and, as in the course's AlexNet (NORM1 27x27x96), their output
elements count as neurons.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .arguments import arg, boolean, choice, divisors, number, optional, positive_int, positive_number
from .base import Layer, feature_map_rank, register, require_feature_map, spatial_rank
from .footprint import (
    CHANNELS_LAST,
    EXPANDED,
    INPUT,
    OUTPUT,
    PLAIN,
    STRIDED,
    Op,
    Tensor,
    contiguous,
    strides,
    suggests_channels_last,
)
from .recipe import module, options
from .shapes import Shape, Steps
from .terms import Count, Counts, Product, Sum


@register("batchnorm", prefix="bn", known_as=("BatchNormalization",))
@dataclass(frozen=True, kw_only=True)
class BatchNorm(Layer):
    """Per channel: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    params = 2C (gamma, beta) when affine; buffers = 2C + 1: the running mean and variance, and
    PyTorch's batch counter num_batches_tracked (one int64 element), as model.buffers() holds them.
    """

    eps: float = arg(positive_number, 1e-5, "added to the variance", known_as=("epsilon",))
    momentum: float = arg(number, 0.1, "running statistics update rate")
    affine: bool = arg(boolean, True, "learn gamma and beta")
    int64_buffers = 1  # num_batches_tracked

    def output_shape(self, x: Shape) -> Shape:
        require_feature_map(x, self.kind)
        return x

    def tensors(self, x: Shape) -> dict:
        """weight (gamma) and bias (beta), C each, when affine."""
        return {"weight": (x[0],), "bias": (x[0],)} if self.affine else {}

    def buffers(self, x: Shape) -> int:
        return 2 * x[0] + 1

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """2 per element: at inference the statistics fold into one scale and one shift, a*x + b."""
        return 2 * prod(y)

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        """gamma and beta per channel (2C), then the running mean and variance per channel (2C)
        and the batch counter (1)."""
        per_channel = Product((2, x[0]))
        params = Count(self.params(x), per_channel, "gamma, beta") if self.affine else Count(0)
        buffers = Count(self.buffers(x), Sum((per_channel, 1)), "running mean, variance; batch counter")
        return dataclasses.replace(super().count_terms(x, y), params=params, buffers=buffers)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """The normalised output; training also returns the batch's mean and inverse standard
        deviation per channel (float32), saved with the input."""
        if not training:
            return (Op(prod(y), weights=True),)
        return (Op(prod(y), extras=(Tensor(2 * x[0], "float32", batched=False),), saves=(INPUT, 0), weights=True),)

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Its input's layout on a 2-D or 3-D map (PyTorch's memory-format propagation)."""
        return inputs[0] and spatial_rank(x) >= 2

    def to_torch(self, x: Shape):
        """nn.BatchNorm1d for [F] and [C, L], 2d for [C, H, W], 3d for [C, D, H, W]."""
        return module(f"nn.BatchNorm{max(spatial_rank(x), 1)}d", x[0],
                      **options(eps=(self.eps, 1e-5), momentum=(self.momentum, 0.1), affine=(self.affine, True)))

    def training_batch(self, x: Shape) -> int:
        """2 where a sample holds one value per channel ([F], [C, 1], [C, 1, 1]): training normalises
        each channel by the statistics of batch x spatial values, and PyTorch refuses a single one
        ("Expected more than 1 value per channel when training")."""
        return 1 if prod(x[1:]) > 1 else 2


def affine_terms(layer: Layer, x: Shape, y: Shape, shape: tuple, meaning: str) -> Counts:
    """The layer's counts with its params made up as (tensors) x (the elements of each): 2x(25x4)
    for gamma and beta over a [25, 4] map, 2x96 per channel, 1x16 for a weight alone."""
    tensors = len(layer.tensors(x))
    elements = Product(shape) if len(shape) > 1 else shape[0]
    params = Count(layer.params(x), Product((tensors, elements)), meaning) if tensors else Count(0)
    return dataclasses.replace(Layer.count_terms(layer, x, y), params=params)


def normalized_shape(x: Shape, axes: str | None) -> tuple:
    """The trailing axes a layernorm or rmsnorm normalises over, at each position: all of a map or
    vector (nn.LayerNorm([C, H, W])) or a sequence's features at each step, by default; with
    ``axes: channels`` a map's channels at each position (ConvNeXt); ``axes: all`` a whole sequence."""
    if axes == "channels" or (axes is None and isinstance(x, Steps)):
        return (x[-1],) if isinstance(x, Steps) else (x[0],)
    return tuple(x)


def over_axes(norm, x: Shape, axes: str | None):
    """The recipe of ``norm`` (built for the normalised shape) on the layer's input: a map's
    channels come last for it and go back after (ChannelsLast, torchvision's LayerNorm2d)."""
    if moved_channels(x, axes):
        return module("ChannelsLast", norm)
    return norm


def moved_channels(x: Shape, axes: str | None) -> bool:
    """Whether ``over_axes`` moves a map's channels last and back: its output is then laid out
    channels last in memory (Layer.channels_last)."""
    return axes == "channels" and not isinstance(x, Steps) and len(x) > 1


def single_value(values: int, where: str, kind: str) -> None:
    """Refuse statistics over one value: it normalises to 0 whatever it is, and PyTorch refuses it
    (F.group_norm at batch 1, F.instance_norm always: 'Expected more than 1 ...')."""
    if values == 1:
        raise SpecError(f"{kind} normalises {where} over its values, but here that is a single value (always 0 "
                        f"once normalised; PyTorch refuses it)",
                        hint="normalise before the map shrinks to 1x1, or use batchnorm, whose statistics span the batch")


AXES = choice("all", "channels")
AXES_DOC = ("all: every axis of a map, the whole of a sequence; channels: a map's channels at each position, "
            "a sequence's features at each step; default: all of a map, a sequence's features")


@dataclass(frozen=True, kw_only=True)
class SampleNorm(Layer):
    """A norm whose statistics come from each sample as it runs (layernorm, groupnorm,
    instancenorm): y = gamma * (x - mean) / sqrt(var + eps) + beta, gamma and beta learned when
    affine. FLOPs: 5 per element (mean: 1 add; variance: a subtract and a multiply-add;
    normalise: a subtract and a multiply), + 2 for gamma and beta."""

    eps: float = arg(positive_number, 1e-5, "added to the variance", known_as=("epsilon",))
    affine: bool = arg(boolean, True, "learn gamma and beta")

    def affine_shape(self, x: Shape) -> tuple:
        """The shape of gamma and of beta: one per channel, unless a kind says otherwise."""
        return (x[0],)

    def tensors(self, x: Shape) -> dict:
        """weight (gamma) and bias (beta), when affine."""
        shape = self.affine_shape(x)
        return {"weight": shape, "bias": shape} if self.affine else {}

    def extra_flops(self, x: Shape, y: Shape) -> int:
        return (7 if self.affine else 5) * prod(y)

    def statistics(self, x: Shape) -> int:
        """How many (mean, variance) pairs one sample gives: one per channel unless a kind says otherwise."""
        return x[0]

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """The output, and a mean and inverse standard deviation per normalised group, saved with
        the input."""
        return (Op(prod(y), extras=(Tensor(2 * self.statistics(x)),), saves=(INPUT, 0), weights=True),)

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        """gamma and beta for each normalised element (2x(25x4)), or per channel (2xC)."""
        return affine_terms(self, x, y, self.affine_shape(x), "gamma, beta")


@register("layernorm", prefix="ln", known_as=("LayerNormalization",))
@dataclass(frozen=True, kw_only=True)
class LayerNorm(SampleNorm):
    """Over the normalised axes of each position (``normalized_shape``): y = gamma * (x - mean) /
    sqrt(var + eps) + beta.

    params = 2 * prod(normalised shape) when affine: 2*C*H*W over a whole map (PyTorch's
    nn.LayerNorm(shape)), 2C over its channels (ConvNeXt, torchvision's LayerNorm2d), 2F over a
    sequence's features. FLOPs as every SampleNorm.
    """

    axes: str | None = arg(AXES, None, AXES_DOC)

    def affine_shape(self, x: Shape) -> tuple:
        return normalized_shape(x, self.axes)

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Over a map's channels: computed with the channels last and moved back."""
        return moved_channels(x, self.axes)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """As the other norms; over a map's channels its backward computes the map's gradient
        with the channels last too (a channels-last gradient once moved back)."""
        (op,) = super().memory_ops(x, y, training, device)
        return (dataclasses.replace(op, gradient_layout=CHANNELS_LAST),) if moved_channels(x, self.axes) else (op,)

    def statistics(self, x: Shape) -> int:
        """One pair per position normalised: per sample, per step, or per pixel (axes: channels)."""
        return prod(x) // prod(self.affine_shape(x))

    def to_torch(self, x: Shape):
        shape = self.affine_shape(x)
        norm = module("nn.LayerNorm", shape[0] if len(shape) == 1 else shape,
                      **options(eps=(self.eps, 1e-5), elementwise_affine=(self.affine, True)))
        return over_axes(norm, x, self.axes)


@register("groupnorm", prefix="gn", known_as=("GroupNormalization",))
@dataclass(frozen=True, kw_only=True)
class GroupNorm(SampleNorm):
    """The channels in ``groups`` groups, each normalised over its channels and every position:
    y = gamma * (x - mean) / sqrt(var + eps) + beta, gamma and beta per channel.

    params = 2C when affine (nn.GroupNorm(groups, C)); C must divide into the groups. FLOPs as
    every SampleNorm.
    """

    groups: int = arg(positive_int, doc="number of channel groups G (C/G channels each)", known_as=("num_groups",))
    main = "groups"

    def statistics(self, x: Shape) -> int:
        return self.groups

    def output_shape(self, x: Shape) -> Shape:
        require_feature_map(x, self.kind)
        if x[0] % self.groups:
            found = divisors(x[0])
            below = max(g for g in found if g < self.groups)
            above = [g for g in found if g > self.groups][:1]
            raise SpecError(f"groupnorm cannot split {x[0]} channels into {self.groups} equal groups",
                            field="groups", hint=f"the nearest divisors of {x[0]}: " +
                            " or ".join(str(g) for g in (below, *above)))
        single_value(x[0] // self.groups * prod(x[1:]), f"each of its {self.groups} groups", self.kind)
        return x

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """As the other norms; its backward first makes the output's gradient contiguous in the
        input's memory format (channels last on a 2-D or 3-D map laid out so): a copy of any
        other (the loss's expanded scalar, a permuted one, one laid out the other way)."""
        (op,) = super().memory_ops(x, y, training, device)
        op = dataclasses.replace(op, contiguous=True)   # a permuted input is copied first
        plain = dataclasses.replace(op, copies_gradient=(EXPANDED, CHANNELS_LAST, STRIDED))
        if spatial_rank(x) < 2:   # a [C, L] map laid out channels last is read as plain: copied
            copied = (Op(prod(x), gradient="view"), plain) if x[0] > 1 and prod(x[1:]) > 1 else ()
            return (dataclasses.replace(plain, if_channels_last=copied),)
        return (dataclasses.replace(plain, if_channels_last=(
            dataclasses.replace(op, copies_gradient=(EXPANDED, PLAIN, STRIDED)),)),)

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Its input's layout on a 2-D or 3-D map (the kernel's memory format)."""
        return inputs[0] and spatial_rank(x) >= 2

    def to_torch(self, x: Shape):
        return module("nn.GroupNorm", self.groups, x[0], **options(eps=(self.eps, 1e-5), affine=(self.affine, True)))


@register("instancenorm", prefix="in")
@dataclass(frozen=True, kw_only=True)
class InstanceNorm(SampleNorm):
    """Each channel of each sample normalised over its positions: y = gamma * (x - mean) /
    sqrt(var + eps) + beta, as PyTorch's nn.InstanceNorm1d/2d/3d.

    As PyTorch: affine false (0 params; 2C when true) and track_running_stats false; tracked,
    the buffers are 2C + 1 as batchnorm's (running mean and variance, the int64 batch counter
    num_batches_tracked), and at inference the statistics fold into
    a*x + b: 2 FLOPs per element as batchnorm's. Otherwise FLOPs as every SampleNorm.
    """

    momentum: float = arg(number, 0.1, "running statistics update rate")
    affine: bool = arg(boolean, False, "learn gamma and beta per channel")
    track_running_stats: bool = arg(boolean, False, "keep running statistics for inference")
    int64_buffers = 1  # num_batches_tracked, when tracking (no buffers otherwise)

    def output_shape(self, x: Shape) -> Shape:
        feature_map_rank(x, self.kind)
        single_value(prod(x[1:]), "each channel", self.kind)
        return x

    def buffers(self, x: Shape) -> int:
        return 2 * x[0] + 1 if self.track_running_stats else 0

    def extra_flops(self, x: Shape, y: Shape) -> int:
        return 2 * prod(y) if self.track_running_stats else super().extra_flops(x, y)

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        counts = super().count_terms(x, y)
        if not self.track_running_stats:
            return counts
        return dataclasses.replace(counts, buffers=Count(self.buffers(x), Sum((Product((2, x[0])), 1)),
                                                         "running mean, variance; batch counter"))

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """F.instance_norm is batch_norm over the N x C channels of the input reshaped to (1, N x C,
        ...) after .contiguous() (a copy of a map laid out channels last: the copy is what it reads
        and keeps; its gradient passes through). Its affine weights and its running mean and
        variance are repeated for every sample first (C per sample each); batch_norm keeps the
        repeated weight and statistics, and, but at inference with running statistics, returns
        and keeps the batch's mean and inverse deviation per channel; training updates the running
        ones from a mean over the samples (C values). The backward computes the repeated weights'
        gradients (two of C per sample) before summing them over the batch."""
        extras: list[Tensor] = [] if self.track_running_stats and not training else [Tensor(2 * x[0])]
        saves: list = [INPUT, *range(len(extras))]
        if self.affine:
            extras += [Tensor(x[0]), Tensor(x[0])]
            saves.append(len(extras) - 2)
        if self.track_running_stats:
            extras.append(Tensor(2 * x[0]))
            saves.append(len(extras) - 1)
            extras += [Tensor(x[0], batched=False)] if training else []
        op = Op(prod(y), extras=tuple(extras), saves=tuple(saves), weights=True, contiguous=True,
                temporaries=(Tensor(2 * x[0]),) if self.affine else ())
        if x[0] == 1 or prod(x[1:]) == 1:
            return (op,)
        return (dataclasses.replace(op, if_channels_last=(Op(prod(x), gradient="view"), op)),)

    def to_torch(self, x: Shape):
        return module(f"nn.InstanceNorm{spatial_rank(x)}d", x[0],
                      **options(eps=(self.eps, 1e-5), momentum=(self.momentum, 0.1), affine=(self.affine, False),
                                track_running_stats=(self.track_running_stats, False)))


@register("rmsnorm", prefix="rms", known_as=("RMSNormalization",))
@dataclass(frozen=True, kw_only=True)
class RMSNorm(Layer):
    """Over the normalised axes of each position (as layernorm's): y = weight * x / sqrt(mean(x^2)
    + eps), no mean subtracted, no bias (nn.RMSNorm; LLaMA, T5).

    params = prod(normalised shape) (the weight) when affine: d on a sequence of d features.
    FLOPs: 3 per element (square, add to the sum, multiply by 1/rms), + 1 for the weight.
    """

    eps: float | None = arg(optional(positive_number), None,
                            "added to the mean square; default: PyTorch's, the dtype's machine epsilon")
    affine: bool = arg(boolean, True, "learn a weight per element")
    axes: str | None = arg(AXES, None, AXES_DOC)

    def tensors(self, x: Shape) -> dict:
        """weight (no bias), of the normalised shape, when affine."""
        return {"weight": normalized_shape(x, self.axes)} if self.affine else {}

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Its result keeps the strides of what F.rms_norm normalises unless it copies it
        (_normalises): over a map's channels the channels come last for it and go back after, so
        that is laid out channels last when its order is now contiguous."""
        channels_last = bool(inputs) and inputs[0]
        sizes, steps, copies = self._normalises(x, channels_last)
        if moved_channels(x, self.axes):
            return copies or contiguous(sizes, steps)
        return channels_last and not copies

    def _normalises(self, x: Shape, channels_last: bool) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
        """The sizes and strides (a batch of one) of the tensor F.rms_norm normalises (over a map's
        channels: the map with its channels moved last, a view), and whether it copies its result
        at the end: rms_norm's composite makes it contiguous unless PyTorch reads it as channels
        last (footprint.suggests_channels_last); a map laid out channels last in memory is, but
        for one axis ([C, L]), and so is the channels-last view of a plain map with an axis of one."""
        sizes = (1, *x)
        order = (0, *range(2, len(sizes)), 1) if channels_last else tuple(range(len(sizes)))
        steps = strides(sizes, order)
        if moved_channels(x, self.axes):
            axes = (0, *range(2, len(sizes)), 1)
            sizes, steps = tuple(sizes[axis] for axis in axes), tuple(steps[axis] for axis in axes)
        return sizes, steps, not contiguous(sizes, steps) and not suggests_channels_last(sizes, steps)

    def extra_flops(self, x: Shape, y: Shape) -> int:
        return (4 if self.affine else 3) * prod(y)

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        return affine_terms(self, x, y, normalized_shape(x, self.axes), "weight")

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """F.rms_norm op by op, as PyTorch runs it on CPU: x ** 2 (keeps x; its backward makes two
        temporaries), the mean per normalised group, + eps in place, rsqrt (keeps its output; x ** 2
        and the mean are freed after it, the rsqrt when the function returns; its backward,
        -grad / 2 * rsqrt ** 3, two temporaries of its size), x * that (keeps both; the rsqrt's
        gradient is summed from an x-sized product, unless each group is one element), then
        * weight when affine (keeps the normalised x; the weight's gradient likewise), then a copy
        where its result is not laid out as PyTorch expects (_normalises)."""
        groups = prod(x) // prod(normalized_shape(x, self.axes))
        ops = (Op(prod(x), saves=(INPUT,), scratch=2, lingers=3), Op(groups), Op(None, gradient="view"),
               Op(groups, saves=(OUTPUT,), lingers=3, scratch=2),
               Op(prod(x), saves=(INPUT,), rereads=True, scratch=int(groups < prod(x))))
        ops += (Op(prod(y), saves=(INPUT,), weights=True, scratch=1),) if self.affine else ()
        clone = Op(prod(y), gradient="view")   # .contiguous()
        strided = dataclasses.replace(clone, when_strided=True)   # of a permuted map's result
        last = ops[-1]
        return ops[:-1] + (dataclasses.replace(
            last, if_channels_first=(last, clone if self._normalises(x, False)[2] else strided),
            if_channels_last=(last, clone if self._normalises(x, True)[2] else strided)),)

    def to_torch(self, x: Shape):
        shape = normalized_shape(x, self.axes)
        norm = module("nn.RMSNorm", shape[0] if len(shape) == 1 else shape,
                      **options(eps=(self.eps, None), elementwise_affine=(self.affine, True)))
        return over_axes(norm, x, self.axes)


@register("lrn", prefix="norm", known_as=("LocalResponseNorm",))
@dataclass(frozen=True, kw_only=True)
class LRN(Layer):
    """Local response normalisation across ``size`` neighbouring channels (AlexNet's NORM):
    b = a / (k + alpha/size * sum a^2)^beta. No parameters.
    """

    size: int = arg(positive_int, doc="number of neighbouring channels n")
    alpha: float = arg(number, 1e-4, "scale")
    beta: float = arg(number, 0.75, "exponent")
    k: float = arg(number, 1.0, "additive constant (AlexNet's paper uses 2)")
    main = "size"
    elementwise = True   # its last op, x / d, keeps x's strides

    def output_shape(self, x: Shape) -> Shape:
        require_feature_map(x, self.kind)
        if spatial_rank(x) < 1:
            raise SpecError(f"lrn normalises across the channels of a feature map [C, ...], but its input "
                            f"is the flat vector {list(x)}", hint="put it before the flatten")
        return x

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """2*size + 3 per element: square and add each of the ``size`` neighbours, then scale and
        shift (k + alpha/n * sum), raise to beta and divide."""
        return (2 * self.size + 3) * prod(y)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """F.local_response_norm, op by op: x*x (keeps x), a zero pad across channels to
        C + size - 1, avg_pool3d (keeps the padded squares), * alpha, + k, ** beta (keeps its base),
        and x / that (keeps x and the divisor). The averages stay bound to their variable until
        ** beta has allocated; the division's backward, -grad * x / d / d, makes two temporaries
        beside its gradients (measured on CPU)."""
        squares, padded = prod(x), (x[0] + self.size - 1) * prod(x[1:])
        return (Op(squares, saves=(INPUT,)), Op(padded, gradient="view"), Op(squares, saves=(INPUT,), lingers=3),
                Op(squares), Op(squares, gradient="view"), Op(squares, saves=(INPUT,)),
                Op(prod(y), saves=(INPUT,), rereads=True, scratch=2))

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Its input's layout: element-wise ops and a pooling of the squares, which keep the strides."""
        return inputs[0]

    def to_torch(self, x: Shape):
        return module("nn.LocalResponseNorm", self.size,
                      **options(alpha=(self.alpha, 1e-4), beta=(self.beta, 0.75), k=(self.k, 1.0)))
