"""Normalisation layers: batchnorm, layernorm, lrn (AlexNet's NORM).

Norm layers keep the shape and, as in the course's AlexNet (NORM1 27x27x96), their output
elements count as neurons.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .arguments import arg, boolean, number, positive_int, positive_number
from .base import Layer, register, require_feature_map, spatial_rank
from .recipe import module, options
from .shapes import Shape, Steps
from .terms import Count, Counts, Product


@register("batchnorm", prefix="bn")
@dataclass(frozen=True, kw_only=True)
class BatchNorm(Layer):
    """Per channel: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    params = 2C (gamma, beta) when affine; buffers = 2C running statistics (PyTorch also keeps
    a one-element batch counter, not counted here).
    """

    eps: float = arg(positive_number, 1e-5, "added to the variance")
    momentum: float = arg(number, 0.1, "running statistics update rate")
    affine: bool = arg(boolean, True, "learn gamma and beta")

    def output_shape(self, x: Shape) -> Shape:
        require_feature_map(x, self.kind)
        return x

    def tensors(self, x: Shape) -> dict:
        """weight (gamma) and bias (beta), C each, when affine."""
        return {"weight": (x[0],), "bias": (x[0],)} if self.affine else {}

    def buffers(self, x: Shape) -> int:
        return 2 * x[0]

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """2 per element: at inference the statistics fold into one scale and one shift, a*x + b."""
        return 2 * prod(y)

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        """gamma and beta per channel (2C), then the running mean and variance per channel (2C)."""
        per_channel = Product((2, x[0]))
        params = Count(self.params(x), per_channel, "gamma, beta") if self.affine else Count(0)
        buffers = Count(self.buffers(x), per_channel, "running mean, variance")
        return dataclasses.replace(super().count_terms(x, y), params=params, buffers=buffers)

    def to_torch(self, x: Shape):
        """nn.BatchNorm1d for [F] and [C, L], 2d for [C, H, W], 3d for [C, D, H, W]."""
        return module(f"nn.BatchNorm{max(spatial_rank(x), 1)}d", x[0],
                      **options(eps=(self.eps, 1e-5), momentum=(self.momentum, 0.1), affine=(self.affine, True)))

    def training_batch(self, x: Shape) -> int:
        """2 where a sample holds one value per channel ([F], [C, 1], [C, 1, 1]): training normalises
        each channel by the statistics of batch x spatial values, and PyTorch refuses a single one
        ("Expected more than 1 value per channel when training")."""
        return 1 if prod(x[1:]) > 1 else 2


@register("layernorm", prefix="ln")
@dataclass(frozen=True, kw_only=True)
class LayerNorm(Layer):
    """Over all elements of one sample: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    params = 2 * prod(shape) when affine (PyTorch's nn.LayerNorm(shape)); on a sequence [T, F]
    it normalises each step over its F features: params = 2F.
    """

    eps: float = arg(positive_number, 1e-5, "added to the variance")
    affine: bool = arg(boolean, True, "learn gamma and beta per element")

    def normalized_shape(self, x: Shape) -> tuple:
        return (x[-1],) if isinstance(x, Steps) else tuple(x)

    def tensors(self, x: Shape) -> dict:
        """weight (gamma) and bias (beta) of the normalised shape each, when affine."""
        shape = self.normalized_shape(x)
        return {"weight": shape, "bias": shape} if self.affine else {}

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """5 per element, statistics computed on the fly (mean: 1 add; variance: a subtract and a
        multiply-add; normalise: a subtract and a multiply), + 2 for gamma and beta."""
        return (7 if self.affine else 5) * prod(y)

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        """gamma and beta for each normalised element: 2x(25x4), or 2x4 for one axis."""
        shape = self.normalized_shape(x)
        elements = Product(shape) if len(shape) > 1 else shape[0]
        params = Count(self.params(x), Product((2, elements))) if self.affine else Count(0)
        return dataclasses.replace(super().count_terms(x, y), params=params)

    def to_torch(self, x: Shape):
        shape = self.normalized_shape(x)
        return module("nn.LayerNorm", shape[0] if len(shape) == 1 else shape,
                      **options(eps=(self.eps, 1e-5), elementwise_affine=(self.affine, True)))


@register("lrn", prefix="norm")
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

    def to_torch(self, x: Shape):
        return module("nn.LocalResponseNorm", self.size,
                      **options(alpha=(self.alpha, 1e-4), beta=(self.beta, 0.75), k=(self.k, 1.0)))
