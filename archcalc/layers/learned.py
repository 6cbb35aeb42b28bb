"""Learned tensors used as they are: scale (a learned factor per channel) and parameter (a learned
tensor that reads no input: class tokens, position embeddings)."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .arguments import arg, number, positive_int, shown
from .base import Layer, register, shape_text
from .footprint import INPUT, Op
from .receptive import Field
from .recipe import module, options
from .shapes import Shape, Steps, shape_of


@register("scale")
@dataclass(frozen=True, kw_only=True)
class Scale(Layer):
    """y = gamma * x with one learned factor per channel (ConvNeXt's layer scale): per channel
    of a feature map, per feature of a sequence's steps or of a vector.

    params = C; 0 MACs (nothing is summed); FLOPs = 1 multiply per element. Its outputs count
    as neurons (new values, as a norm's affine step makes).
    """

    elementwise = True

    init: float = arg(number, 1.0, "every factor's starting value (ConvNeXt: 1e-6)")
    main = "init"

    def factor_shape(self, x: Shape) -> tuple:
        """weight's shape, as it broadcasts over one sample: [C, 1, ...] on a map (torchvision's
        layer_scale), [F] on a sequence [T, F] or a vector [F]."""
        if isinstance(x, Steps):
            if len(x) < 2:
                raise SpecError(f"scale multiplies features, but its input {shape_text(x)} holds token ids",
                                hint="put an embedding first")
            return (x[-1],)
        return (x[0],) + (1,) * (len(x) - 1)

    def output_shape(self, x: Shape) -> Shape:
        self.factor_shape(x)
        return x

    def tensors(self, x: Shape) -> dict:
        """weight: one factor per channel."""
        return {"weight": self.factor_shape(x)}

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """x * gamma: a new tensor; the product keeps x for gamma's gradient, grad * x, an
        input-sized temporary before it is summed to gamma's shape."""
        return (Op(prod(y), saves=(INPUT,), weights=True, scratch=1),)

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One multiply per element."""
        return prod(y)

    def to_torch(self, x: Shape):
        return module("Scale", self.factor_shape(x), **options(init=(self.init, 1.0)))


def tensor_shape(value) -> Shape:
    """A shape as the spec's input is written: [F] | [C, L] | [C, H, W] | ..., or a sequence
    {steps: T, features: F}."""
    if isinstance(value, dict):
        if set(value) != {"steps", "features"}:
            raise SpecError(f"a sequence shape is {{steps: T, features: F}}, got {shown(value)}")
        return Steps((positive_int(value["steps"]), positive_int(value["features"])))
    if not isinstance(value, list) or not value:
        raise SpecError(f"must be a list of sizes like [1, 768], or {{steps: T, features: F}}; got {shown(value)}")
    return shape_of(positive_int(size) for size in value)


@register("parameter", prefix="param")
@dataclass(frozen=True, kw_only=True)
class Parameter(Layer):
    """A learned tensor of ``shape``, the same for every sample; it reads no input (a class
    token [1, D] or position embeddings [T, D] as ``{steps: T, features: D}``; ViT's).

    params = prod(shape); 0 MACs, 0 FLOPs, 0 neurons: its values are parameters, and PyTorch
    gives every sample the same tensor (expand, a view, no copy). No receptive field: it sees
    no input pixel.
    """

    shape: Shape = arg(tensor_shape, doc="the tensor's shape per sample: [sizes...] or {steps: T, features: F}")
    main = "shape"
    merges = True        # x is the tuple of its inputs' shapes: ()
    reads_input = False
    creates_neurons = False

    def output_shape(self, x: tuple) -> Shape:
        return self.shape

    def tensors(self, x: tuple) -> dict:
        """weight: the tensor itself."""
        return {"weight": tuple(self.shape)}

    def lookup_params(self, x: tuple) -> int:
        """The whole tensor: added or joined to the input (positions, a class token), never
        multiplied by it."""
        return self.params(x)

    def receptive_field(self, x: tuple, y: Shape, field: Field) -> Field:
        return ()

    def to_torch(self, x: tuple):
        return module("Parameter", tuple(self.shape))

    def memory_ops(self, x: tuple, y: Shape, training: bool, device: str) -> tuple:
        """The weight expanded over the batch: a view, no memory; its backward sums the batch's
        gradients into the weight's (the .grad itself)."""
        return (Op(0, weights=True),)
