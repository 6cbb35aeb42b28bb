"""Activation functions: standalone layers, or the ``activation:`` attribute of conv/dense.

They create no new neurons (they transform the neurons of the layer before them) and
have no parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar

from ..errors import SpecError
from .arguments import arg, closest, number, shown
from .base import REGISTRY, Layer, register
from .recipe import module
from .shapes import Shape, Steps


@dataclass(frozen=True, kw_only=True)
class Activation(Layer):
    """y = f(x) element-wise: same shape, 0 params, 0 new neurons."""

    creates_neurons = False
    torch_name: ClassVar[str]  # the torch.nn class; its keyword arguments are our field names

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One operation per element, whatever the function (a stated convention: exp, tanh...
        cost more on real hardware)."""
        return prod(y)

    def to_torch(self, x: Shape):
        return module(f"nn.{self.torch_name}", **self.hyperparameters())


def activation_name(value):
    """The name of a registered activation kind (relu, tanh, ...)."""
    if value is None:
        return None
    if isinstance(value, str) and issubclass(REGISTRY.get(value, object), Activation):
        return value
    kinds = [kind for kind, cls in REGISTRY.items() if issubclass(cls, Activation)]
    raise SpecError(f"unknown activation {shown(value)}", hint=closest(value, kinds))


@register("relu")
@dataclass(frozen=True, kw_only=True)
class ReLU(Activation):
    """max(0, x)."""

    torch_name = "ReLU"


@register("tanh")
@dataclass(frozen=True, kw_only=True)
class Tanh(Activation):
    """tanh(x)."""

    torch_name = "Tanh"


@register("sigmoid")
@dataclass(frozen=True, kw_only=True)
class Sigmoid(Activation):
    """1 / (1 + exp(-x))."""

    torch_name = "Sigmoid"


@register("gelu")
@dataclass(frozen=True, kw_only=True)
class GELU(Activation):
    """x * Phi(x)."""

    torch_name = "GELU"


@register("elu")
@dataclass(frozen=True, kw_only=True)
class ELU(Activation):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    alpha: float = arg(number, 1.0, "slope of the negative part")
    main = "alpha"
    torch_name = "ELU"


@register("leakyrelu")
@dataclass(frozen=True, kw_only=True)
class LeakyReLU(Activation):
    """x if x > 0 else negative_slope * x."""

    negative_slope: float = arg(number, 0.01, "slope for x < 0")
    main = "negative_slope"
    torch_name = "LeakyReLU"


@register("softmax")
@dataclass(frozen=True, kw_only=True)
class Softmax(Activation):
    """exp(x_i) / sum_j exp(x_j) over the channel (feature) axis."""

    def to_torch(self, x: Shape):
        return module("nn.Softmax", dim=-1 if isinstance(x, Steps) else 1)
