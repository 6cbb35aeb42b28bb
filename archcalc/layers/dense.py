"""Fully connected layers and the shape-only layers around them: dense, flatten, dropout."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import prod

from ..errors import SpecError
from .activation import activation_name
from .arguments import arg, choice, positive_int, probability
from .base import Layer, register, shape_text
from .footprint import INPUT, LOWER, MASK, PLAIN, STRIDED, Op, Tensor, view
from .recipe import module, options
from .shapes import FeatureMap, Shape, Steps, Vector
from .terms import Count, Counts, Flattened, Product, Sum
from .values import bias_values, check_values, numbers, preset


@register("dense", "fc", "linear", prefix="fc", known_as=("LazyLinear",))
@dataclass(frozen=True, kw_only=True)
class Dense(Layer):
    """Every input connected to every unit: params = in * units + units (bias).

    On a sequence [T, F] it is applied at every step with shared weights (the course's
    y_t = W_hy h_t): [T, F] -> [T, units], params = F * units + units. With ``axes: channels``
    it is applied at every position of a feature map over its C channels (torchvision's
    nn.Linear between two permutes, ConvNeXt): [C, H, W] -> [units, H, W], params = C * units + units.
    """

    units: int = arg(positive_int, doc="number of neurons", known_as=("out_features",))
    bias: bool | tuple = arg(bias_values, True, "one bias per unit (true/false), or their values",
                              known_as=("use_bias",))
    activation: str | None = arg(activation_name, None, "activation applied to the output")
    weights: tuple | None = arg(numbers, None, "explicit weights: [units][inputs] (PyTorch's layout) "
                                               "or one flat list")
    axes: str | None = arg(choice("channels"), None, "channels: on a feature map, the units at each position "
                                                     "over its channels")
    main = "units"

    def features(self, x: Shape) -> int:
        """What each unit reads: a map's channels (``axes: channels``), else the last axis."""
        return x[0] if self.axes == "channels" else x[-1]

    def output_shape(self, x: Shape) -> Shape:
        if self.axes == "channels":
            if not isinstance(x, FeatureMap):
                raise SpecError(f"axes: channels applies dense at each position of a feature map [C, ...], but "
                                f"its input is the {x.layout} {shape_text(x)}", field="axes",
                                hint="on a vector or a sequence dense reads the features already: drop 'axes'")
            self._check_values(x)
            return x.like((self.units, *x[1:]))
        if isinstance(x, Steps):
            if len(x) < 2:
                raise SpecError("dense needs vectors, but its input is a sequence of token ids",
                                hint="add '- embedding: {vocabulary: V, dim: E}' first")
            self._check_values(x)
            return x.like((x.steps, self.units))
        if len(x) > 1:
            raise SpecError(
                f"dense needs a flat feature vector, but its input is the feature map {shape_text(x)}",
                hint=f"add '- flatten' before it (-> {prod(x):,} features), or use a conv whose kernel "
                     f"equals the map size ({'x'.join(map(str, x[1:]))}): the course shows they are "
                     f"equivalent")
        self._check_values(x)
        return x.like((self.units,))

    def _check_values(self, x: Shape) -> None:
        """Explicit weights fill [units][inputs] exactly; explicit biases number ``units``."""
        features = self.features(x)
        check_values(self.weights, self.bias, (self.units, features), f"[units={self.units}][inputs={features}]")

    def to_torch(self, x: Shape):
        """nn.Linear over the last axis (so per step on a sequence, with shared weights); over a
        map's channels, with the channels moved last and back (ChannelsLast)."""
        linear = module("nn.Linear", self.features(x), self.units, **options(bias=(bool(self.bias), True)))
        linear = preset(linear, self.weights, self.bias)
        return module("ChannelsLast", linear) if self.axes == "channels" else linear

    def tensors(self, x: Shape) -> dict:
        """weight units x in, bias units (nn.Linear's)."""
        weight = (self.units, self.features(x))
        return {"weight": weight, "bias": (self.units,)} if self.bias else {"weight": weight}

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A matrix product that saves its input (for the weight gradient): one addmm with the bias
        on a vector or a (contiguous) sequence, which F.linear flattens, and so over a map's
        channels when the map is laid out channels last (after a layernorm or dense over the
        channels, and what keeps their layout: ConvNeXt), or has one channel or one position.
        From a map laid out channels first the channels moved last are not contiguous: matmul's
        reshape copies the input (the copy is what it saves; at a batch of 1 a view: the batch
        and the positions merge), then the product, then the bias added as a separate new tensor
        (as PyTorch runs it under a dispatch mode, the measuring tracker's; without one it adds
        in place: one output fewer). A strided sequence (a recurrent layer's batch-first view)
        is copied first likewise, and the bias then added separately."""
        product = Op(prod(y), saves=(INPUT,), weights=True, autocast=LOWER, product=True, contiguous=len(x) > 1)
        if self.axes != "channels":
            return (product, Op(prod(y), gradient="view", when_copied=True)) if self.bias else (product,)
        product = Op(prod(y), saves=(INPUT,), weights=True, autocast=LOWER, product=True)
        if prod(x[1:]) == 1:
            return (product,)
        # the map's gradient comes out laid out as the matrix the product reads (mm's backward
        # follows it): channels last, but plain from the view of a plain map at a batch of 1; the
        # output's, its channels moved last, is reshaped back for the product (the view of its
        # result): copied unless it is laid out channels last (or is the loss's expanded scalar;
        # or is of one unit, when both layouts agree; or at a batch of 1 with its positions in
        # order, when they merge with the batch: schedule._copies_gradient)
        reshaped = Op(None, gradient="view", batch_copy=True,
                      copies_gradient=(PLAIN, STRIDED) if self.units > 1 else (STRIDED,))
        if x[0] == 1:   # one channel: a view unless the map is permuted, then copied, the bias added apart
            added = (Op(prod(y), gradient="view", when_copied=True),) if self.bias else ()
            return dataclasses.replace(product, contiguous=True), reshaped, *added
        copied = (Op(prod(x), gradient="view", batch_copy=True), product, reshaped)
        copied += (Op(prod(y), gradient="view"),) if self.bias else ()
        return (dataclasses.replace(product, if_channels_first=copied, if_channels_last=(product, reshaped)),)

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Over a map's channels: computed with the channels last and moved back."""
        return self.axes == "channels"

    def macs(self, x: Shape, y: Shape) -> int:
        """in x units (per step on a sequence, per position over channels): each output element
        sums ``in`` products."""
        return prod(y) * self.features(x)

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """One bias add per output element."""
        return prod(y) if self.bias else 0

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        """params = 9216x4096 + 4096: inputs x units, plus one bias per unit (on a sequence,
        shared by its steps)."""
        weights = Product((self.features(x), self.units))
        params = Count(self.params(x), Sum((weights, self.units)) if self.bias else weights,
                       shared_steps=x.steps if isinstance(x, Steps) else 0)
        return dataclasses.replace(super().count_terms(x, y), params=params)


@register("flatten")
@dataclass(frozen=True, kw_only=True)
class Flatten(Layer):
    """[C, H, W] -> [C*H*W]: a view, no new neurons."""

    creates_neurons = False

    def output_shape(self, x: Shape) -> Shape:
        return Vector((prod(x),))

    def size_terms(self, x: Shape, y: Shape | None) -> tuple:
        return (Flattened(tuple(x), prod(x)),)

    def to_torch(self, x: Shape):
        return module("nn.Flatten")

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """A view of its (contiguous) input; a copy of one laid out channels last (a map of more
        than one channel and position: its values are not in the flattened order) or permuted."""
        if x[0] == 1 or prod(x[1:]) == 1:
            return (dataclasses.replace(view(), contiguous=True),)
        return (dataclasses.replace(view(), contiguous=True, if_channels_last=(Op(prod(y), gradient="view"),)),)


@register("dropout")
@dataclass(frozen=True, kw_only=True)
class Dropout(Layer):
    """Zeroes each element with probability p while training: same shape, no new neurons."""

    rate: float = arg(probability, 0.5, "probability p of dropping an element", known_as=("p",))
    main = "rate"
    creates_neurons = False
    elementwise = True

    def to_torch(self, x: Shape):
        return module("nn.Dropout", self.rate)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """In eval mode (or at rate 0) the input itself. Training: a random mask, kept for the
        backward pass (bool from CUDA's fused kernel, the input's dtype on CPU), and the masked output."""
        if not training or self.rate == 0:
            return (view(),)
        return (Op(prod(y), extras=(Tensor(prod(x), MASK),), saves=(0,)),)

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Element-wise (the mask is made like the input): its input's layout."""
        return inputs[0]
