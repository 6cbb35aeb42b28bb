"""Activation functions: standalone layers, or the ``activation:`` attribute of conv/dense.

They create no new neurons (they transform the neurons of the layer before them) and have
no parameters, except prelu's learned slopes (which make it a layer of its own).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar

from ..errors import SpecError
from .arguments import arg, choice, closest, non_negative_int, number, positive_int, shown
from .base import REGISTRY, Layer, canonical, kind_hint, register, shape_text
from .footprint import INPUT, LOWER, OUTPUT, Op
from .recipe import module
from .shapes import Shape, Steps


@dataclass(frozen=True, kw_only=True)
class Activation(Layer):
    """y = f(x) element-wise: same shape, 0 params (prelu: 1 or C), 0 new neurons.

    FLOPs: 1 per element, whatever the function: a stated convention, the one ptflops applies to
    ReLU, PReLU and ELU (exp, tanh, erf cost more on real hardware; PyTorch's FlopCounterMode
    counts 0 for every activation). Each kind repeats it with its formula.
    """

    creates_neurons = False
    elementwise = True
    as_attribute: ClassVar[bool] = True  # usable as conv/dense's 'activation:' (not with parameters)
    torch_name: ClassVar[str]  # the torch.nn class; its keyword arguments are our field names
    keeps: ClassVar[str] = INPUT  # what its derivative needs: relu, tanh, sigmoid, softmax their output

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A new tensor (torch.nn activations do not run in place by default); autograd keeps
        its input (gelu, elu, leakyrelu) or its output (relu, tanh, sigmoid, softmax)."""
        return (Op(prod(y), saves=(self.keeps,)),)

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One operation per element (the activation convention)."""
        return prod(y)

    def to_torch(self, x: Shape):
        return module(f"nn.{self.torch_name}", **self.hyperparameters())


def activation_name(value):
    """The name of a registered activation kind, in any case (relu, ReLU, tanh, swish -> silu, ...)."""
    if value is None:
        return None
    kind = canonical(value) if isinstance(value, str) else None
    cls = REGISTRY[kind] if kind is not None else object
    if issubclass(cls, Activation) and cls.as_attribute:
        return kind
    if issubclass(cls, Activation):
        raise SpecError(f"{kind} has parameters of its own, so it cannot be an 'activation:' attribute",
                        hint=f"write it as its own layer, '- {kind}', after this one")
    kinds = [kind for kind, cls in REGISTRY.items() if issubclass(cls, Activation) and cls.as_attribute]
    raise SpecError(f"unknown activation {shown(value)}",
                    hint=kind_hint(value, kinds) if isinstance(value, str) else closest(value, kinds))


@register("relu")
@dataclass(frozen=True, kw_only=True)
class ReLU(Activation):
    """max(0, x); 1 FLOP per element."""

    torch_name = "ReLU"
    keeps = OUTPUT


@register("tanh")
@dataclass(frozen=True, kw_only=True)
class Tanh(Activation):
    """tanh(x); 1 FLOP per element."""

    torch_name = "Tanh"
    keeps = OUTPUT


@register("sigmoid")
@dataclass(frozen=True, kw_only=True)
class Sigmoid(Activation):
    """1 / (1 + exp(-x)); 1 FLOP per element."""

    torch_name = "Sigmoid"
    keeps = OUTPUT


@register("gelu")
@dataclass(frozen=True, kw_only=True)
class GELU(Activation):
    """x * Phi(x), Phi the standard normal's distribution function; ``approximate: tanh`` is
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) (BERT, GPT-2); 1 FLOP per element."""

    approximate: str = arg(choice("none", "tanh"), "none", "none: the exact erf form; tanh: its approximation")
    torch_name = "GELU"


@register("elu")
@dataclass(frozen=True, kw_only=True)
class ELU(Activation):
    """x if x > 0 else alpha * (exp(x) - 1); 1 FLOP per element."""

    alpha: float = arg(number, 1.0, "slope of the negative part")
    main = "alpha"
    torch_name = "ELU"


@register("leakyrelu")
@dataclass(frozen=True, kw_only=True)
class LeakyReLU(Activation):
    """x if x > 0 else negative_slope * x; 1 FLOP per element."""

    negative_slope: float = arg(number, 0.01, "slope for x < 0")
    main = "negative_slope"
    torch_name = "LeakyReLU"


@dataclass(frozen=True, kw_only=True)
class AlongAxis(Activation):
    """A function of all the values along one axis (softmax): ``axis`` counted without the batch,
    as the shapes are written; by default a map's or vector's channels, a sequence's features."""

    elementwise = False

    axis: int | None = arg(non_negative_int, None, "axis the values are normalised along, counted without the "
                                                   "batch axis; default: channels, or a sequence's features")

    def along(self, x: Shape) -> int:
        """The axis (without the batch) the function runs along."""
        axis = self.axis if self.axis is not None else (len(x) - 1 if isinstance(x, Steps) else 0)
        if axis >= len(x):
            raise SpecError(f"axis {axis} does not exist in {shape_text(x)}", field="axis",
                            hint=f"the axes are 0 to {len(x) - 1}, counted without the batch")
        return axis

    def output_shape(self, x: Shape) -> Shape:
        self.along(x)
        return x

    keeps = OUTPUT

    def to_torch(self, x: Shape):
        return module(f"nn.{self.torch_name}", dim=self.along(x) + 1)  # +1: the batch axis comes first


@register("softmax")
@dataclass(frozen=True, kw_only=True)
class Softmax(AlongAxis):
    """exp(x_i) / sum_j exp(x_j) along one axis; 1 FLOP per element."""

    torch_name = "Softmax"


@register("logsoftmax", "log_softmax")
@dataclass(frozen=True, kw_only=True)
class LogSoftmax(AlongAxis):
    """x_i - log(sum_j exp(x_j)) along one axis (what nn.NLLLoss reads); 1 FLOP per element."""

    torch_name = "LogSoftmax"


@register("silu", "swish")
@dataclass(frozen=True, kw_only=True)
class SiLU(Activation):
    """x * sigmoid(x) (swish; EfficientNet, RegNetY); 1 FLOP per element."""

    torch_name = "SiLU"


@register("hardswish")
@dataclass(frozen=True, kw_only=True)
class Hardswish(Activation):
    """x * relu6(x + 3) / 6 (MobileNetV3); 1 FLOP per element."""

    torch_name = "Hardswish"


@register("hardsigmoid")
@dataclass(frozen=True, kw_only=True)
class Hardsigmoid(Activation):
    """relu6(x + 3) / 6 (MobileNetV3's squeeze-excitation gate); 1 FLOP per element."""

    torch_name = "Hardsigmoid"


@register("relu6")
@dataclass(frozen=True, kw_only=True)
class ReLU6(Activation):
    """min(max(0, x), 6) (MobileNetV2); 1 FLOP per element."""

    torch_name = "ReLU6"


@register("mish")
@dataclass(frozen=True, kw_only=True)
class Mish(Activation):
    """x * tanh(softplus(x)); 1 FLOP per element."""

    torch_name = "Mish"


@register("softplus")
@dataclass(frozen=True, kw_only=True)
class Softplus(Activation):
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (for numerical
    stability, as PyTorch computes it); 1 FLOP per element."""

    beta: float = arg(number, 1.0, "sharpness of the bend")
    threshold: float = arg(number, 20.0, "above beta * x > threshold the function is x")
    torch_name = "Softplus"


@register("abs")
@dataclass(frozen=True, kw_only=True)
class Abs(Activation):
    """|x| (a Siamese pair's distance |x1 - x2|); 1 FLOP per element."""

    def to_torch(self, x: Shape):
        return module("Abs")  # torch.nn has no module for it

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A new tensor, its input kept; the backward computes grad * x.sgn(), sgn(x) a temporary."""
        return (Op(prod(y), saves=(INPUT,), scratch=1),)


@register("prelu")
@dataclass(frozen=True, kw_only=True)
class PReLU(Activation):
    """x if x > 0 else a * x with a learned slope a: one for every channel (num_parameters: C)
    or one shared (1); 1 FLOP per element, as ptflops counts it.

    params = num_parameters (PyTorch's weight). Having parameters, it is a layer of its own, not
    an ``activation:`` attribute.
    """

    num_parameters: int = arg(positive_int, 1, "learned slopes: 1 shared, or one per channel (C)")
    init: float = arg(number, 0.25, "every slope's starting value")
    main = "num_parameters"
    as_attribute = False
    torch_name = "PReLU"

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A new tensor; keeps its input. Its backward kernel computes the slopes' gradient element
        by element (an input-sized temporary) before summing it to the slopes' shape, and the
        input's gradient even where nothing needs it (a network input). CPU's autocast runs it in
        16 bits."""
        return (Op(prod(y), saves=(INPUT,), weights=True, scratch=1, gradient="always",
                   autocast=LOWER if device == "cpu" else ""),)

    def output_shape(self, x: Shape) -> Shape:
        if self.num_parameters == 1:
            return x
        if isinstance(x, Steps):
            raise SpecError(f"prelu with {self.num_parameters} slopes reads the axis after the batch as channels, "
                            f"which in a batch-first sequence {shape_text(x)} is the steps", field="num_parameters",
                            hint="use one shared slope (num_parameters: 1) on a sequence")
        if self.num_parameters != x[0]:
            raise SpecError(f"prelu has {self.num_parameters} slopes but its input {shape_text(x)} has {x[0]} "
                            f"channels", field="num_parameters", hint=f"num_parameters: 1 (shared) or {x[0]}")
        return x

    def tensors(self, x: Shape) -> dict:
        """weight: the slopes, [num_parameters]."""
        return {"weight": (self.num_parameters,)}
