"""Fully connected layers and the shape-only layers around them: dense, flatten, dropout."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from ..schema import arg, boolean, positive_int, probability
from .activation import activation_name
from .base import Layer, Shape, Steps, counted, register, shape_text


@register("dense", "fc", "linear", prefix="fc")
@dataclass(frozen=True, kw_only=True)
class Dense(Layer):
    """Every input connected to every unit: params = in * units + units (bias).

    On a sequence [T, F] it is applied at every step with shared weights (the course's
    y_t = W_hy h_t): [T, F] -> [T, units], params = F * units + units.
    """

    units: int = arg(positive_int, doc="number of neurons")
    bias: bool = arg(boolean, True, "one bias per unit")
    activation: str | None = arg(activation_name, None, "activation applied to the output")
    main = "units"

    def output_shape(self, x: Shape) -> Shape:
        if isinstance(x, Steps):
            if len(x) < 2:
                raise SpecError("dense needs vectors, but its input is a sequence of token ids",
                                hint="add '- embedding: {vocabulary: V, dim: E}' first")
            return Steps((x.steps, self.units))
        if len(x) > 1:
            raise SpecError(
                f"dense needs a flat feature vector, but its input is the feature map {shape_text(x)}",
                hint=f"add '- flatten' before it (-> {prod(x):,} features), or use a conv whose kernel "
                     f"equals the map size ({'x'.join(map(str, x[1:]))}): the course shows they are "
                     f"equivalent")
        return (self.units,)

    def params(self, x: Shape) -> int:
        return x[-1] * self.units + (self.units if self.bias else 0)

    def explain_params(self, x: Shape) -> str:
        """'params = 9216x4096 + 4096 = 37,752,832': inputs x units, plus one bias per unit."""
        expression = f"{x[-1]}x{self.units}" + (f" + {self.units}" if self.bias else "")
        shared = f" (shared by the {x.steps} steps)" if isinstance(x, Steps) else ""
        return counted("params", expression, self.params(x)) + shared


@register("flatten")
@dataclass(frozen=True, kw_only=True)
class Flatten(Layer):
    """[C, H, W] -> [C*H*W]: a view, no new neurons."""

    creates_neurons = False

    def output_shape(self, x: Shape) -> Shape:
        return (prod(x),)

    def formula(self, x: Shape, y: Shape) -> str:
        return f"{'*'.join(map(str, x))} = {y[0]}"


@register("dropout")
@dataclass(frozen=True, kw_only=True)
class Dropout(Layer):
    """Zeroes each element with probability p while training: same shape, no new neurons."""

    rate: float = arg(probability, 0.5, "probability p of dropping an element")
    main = "rate"
    creates_neurons = False
