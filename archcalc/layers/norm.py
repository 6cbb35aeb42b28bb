"""Normalisation layers: batchnorm, layernorm, lrn (AlexNet's NORM).

Norm layers keep the shape and, as in the course's AlexNet (NORM1 27x27x96), their output
elements count as neurons.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..schema import arg, boolean, number, positive_int, positive_number
from .base import Layer, Shape, Steps, counted, register, require_feature_map


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

    def params(self, x: Shape) -> int:
        return 2 * x[0] if self.affine else 0

    def buffers(self, x: Shape) -> int:
        return 2 * x[0]

    def explain_params(self, x: Shape) -> str:
        """gamma and beta per channel, then the running mean and variance per channel."""
        params = (counted("params", f"2x{x[0]}", self.params(x)) + " (gamma, beta)") if self.affine else "0 params"
        return f"{params}; {counted('buffers', f'2x{x[0]}', self.buffers(x))} (running mean, variance)"


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

    def params(self, x: Shape) -> int:
        return 2 * prod(self.normalized_shape(x)) if self.affine else 0

    def explain_params(self, x: Shape) -> str:
        """gamma and beta for each normalised element."""
        shape = self.normalized_shape(x)
        elements = "x".join(map(str, shape))
        return counted("params", f"2x({elements})" if len(shape) > 1 else f"2x{elements}", self.params(x))


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
