"""Activation functions: standalone layers, or the ``activation:`` attribute of conv/dense.

They create no new neurons (they transform the neurons of the layer before them) and
have no parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError
from ..schema import arg, closest, number
from .base import REGISTRY, Layer, register


@dataclass(frozen=True, kw_only=True)
class Activation(Layer):
    """y = f(x) element-wise: same shape, 0 params, 0 new neurons."""

    creates_neurons = False


def activation_name(value):
    """The name of a registered activation kind (relu, tanh, ...)."""
    if value is None:
        return None
    kinds = [kind for kind, cls in REGISTRY.items() if issubclass(cls, Activation)]
    if value not in kinds:
        raise SpecError(f"unknown activation {value!r}", hint=closest(value, kinds))
    return value


@register("relu")
@dataclass(frozen=True, kw_only=True)
class ReLU(Activation):
    """max(0, x)."""


@register("tanh")
@dataclass(frozen=True, kw_only=True)
class Tanh(Activation):
    """tanh(x)."""


@register("sigmoid")
@dataclass(frozen=True, kw_only=True)
class Sigmoid(Activation):
    """1 / (1 + exp(-x))."""


@register("gelu")
@dataclass(frozen=True, kw_only=True)
class GELU(Activation):
    """x * Phi(x)."""


@register("elu")
@dataclass(frozen=True, kw_only=True)
class ELU(Activation):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    alpha: float = arg(number, 1.0, "slope of the negative part")
    main = "alpha"


@register("leakyrelu")
@dataclass(frozen=True, kw_only=True)
class LeakyReLU(Activation):
    """x if x > 0 else negative_slope * x."""

    negative_slope: float = arg(number, 0.01, "slope for x < 0")
    main = "negative_slope"


@register("softmax")
@dataclass(frozen=True, kw_only=True)
class Softmax(Activation):
    """exp(x_i) / sum_j exp(x_j) over the channel (feature) axis."""
