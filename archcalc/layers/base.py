"""The Layer base class and the registry of layer kinds.

A layer kind is one small frozen dataclass registered under its spec name. Its fields are
its spec schema (declared with ``schema.arg``) and its methods hold every rule about it.
The base class gives the dull defaults: the shape passes through, no parameters, and the
layer's output elements count as neurons.

A new kind overrides only what differs from those defaults, each method one job:
- the numbers: ``output_shape`` (and its checks), ``params``, ``buffers``, ``neurons``,
  ``macs``, ``extra_flops``, ``receptive_field`` (a kind that slides a window), ``unrolled``
  (a convolution as a matrix product);
- the same arithmetic as data, for explain, the report and the diagram to word
  (views/wording.py): ``size_terms`` (how the output size follows, layers/terms.py) and
  ``count_terms`` (how params, buffers and neurons are made up);
- ``label``: the settings a heading or a diagram box shows, as data;
- the PyTorch recipe: ``to_torch``, and ``sample_input`` for a kind that reads integers.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from math import prod
from typing import ClassVar

from ..errors import SpecError
from .arguments import closest
from .receptive import Field, covering, spatial_axes
from .shapes import FeatureMap, Outputs, Shape, Steps
from .terms import Attending, Count, Counts, Product

REGISTRY: dict[str, type[Layer]] = {}
ALIASES: dict[str, str] = {}
FOREIGN: dict[str, str] = {}  # PyTorch's and Keras's names (folded, see _folded) -> kind: suggested, not read
# what PyTorch and Keras make you give but archcalc reads from the layer's input
INFERRED = ("in_channels", "in_features", "input_size", "num_features", "normalized_shape", "input_shape")


def register(kind: str, *aliases: str, prefix: str | None = None, known_as: tuple = ()):
    """Class decorator: make a Layer subclass available in specs as ``kind`` (and aliases),
    in any case (ReLU, Dense, Conv2D). ``known_as``: PyTorch's and Keras's names for the kind
    that do not fold to it by themselves (MaxPooling2D; nn.MaxPool2d folds to maxpool): a spec
    that writes one is told the kind's name."""
    def decorate(cls):
        cls.kind = kind
        cls.prefix = prefix or kind
        REGISTRY[kind] = cls
        for alias in aliases:
            ALIASES[alias] = kind
        cls.known_as = known_as
        for name in known_as:
            FOREIGN[_folded(name)] = kind
        cls.spec_fields = {f.name: f for f in dataclasses.fields(cls) if "convert" in f.metadata}
        return cls
    return decorate


def canonical(name: str) -> str | None:
    """The registered kind a name means, in any case ('ReLU' -> 'relu', 'Linear' -> 'dense'), or None."""
    folded = name.lower()
    folded = ALIASES.get(folded, folded)
    return folded if folded in REGISTRY else None


def lookup(kind) -> type[Layer]:
    """The class for a kind or alias, in any case; a SpecError naming the closest kind otherwise
    (PyTorch's and Keras's names are known: nn.MaxPool2d, MaxPooling2D -> maxpool)."""
    if not isinstance(kind, str):
        raise SpecError(f"a layer kind must be a word, got {kind!r}")
    name = canonical(kind)
    if name is None:
        raise SpecError(f"unknown layer kind '{kind}'", hint=kind_hint(kind, [*REGISTRY, *ALIASES]))
    return REGISTRY[name]


def kind_hint(word: str, kinds) -> str:
    """'did you mean ...?' for an unknown kind among ``kinds``: a PyTorch or Keras name first, then
    the closest spelling."""
    bare = word.rsplit(".", 1)[-1]  # nn.Conv2d -> conv2d, nn.MaxPool2d -> maxpool
    known = canonical(bare) or FOREIGN.get(_folded(word)) or canonical(_folded(word))
    if known is not None and known in kinds:
        return f"did you mean '{known}'? (archcalc's name for {word})"
    return closest(word.lower(), kinds)


def _folded(name: str) -> str:
    """A framework's class name as archcalc would spell it: lower case, without the module
    ('nn.', 'keras.layers.') and the dimension suffix ('2d'): nn.MaxPool2d -> maxpool."""
    name = name.lower().rsplit(".", 1)[-1]
    return name[:-2] if len(name) > 2 and name[-2] in "123" and name[-1] == "d" else name


@dataclass(frozen=True, kw_only=True)
class Layer:
    """Base of every layer kind: identity shape, no parameters, output elements are neurons."""

    kind: ClassVar[str]
    prefix: ClassVar[str]
    spec_fields: ClassVar[dict]
    known_as: ClassVar[tuple] = ()            # PyTorch's and Keras's names that do not fold to the kind
    main: ClassVar[str | None] = None          # the field a scalar shorthand sets (dense: 4096)
    creates_neurons: ClassVar[bool] = True     # False: passes values on, adds 0 (analysis/conventions.py lists them)
    merges: ClassVar[bool] = False             # True: reads several inputs, x is a tuple of shapes
    reads_input: ClassVar[bool] = True         # False: reads nothing (parameter; a merge of no inputs, x = ())
    activation: ClassVar[str | None] = None    # overridden by a field on conv/dense
    int64_buffers: ClassVar[int] = 0           # of ``buffers``, the int64 counters (8 bytes in any dtype)
    memory_gap: ClassVar[str] = ""             # what its memory_ops leave out, where they are approximate
    mixed_precision_gap: ClassVar[str] = ""    # the same, under torch.autocast only (--mixed-precision)
    opaque: ClassVar[bool] = False             # True: an imported operation without a kind: MACs, FLOPs unknown
    elementwise: ClassVar[bool] = False        # True: an element-wise kernel, whose output keeps its input's strides

    @classmethod
    def from_args(cls, args: dict, implied: dict | None = None) -> Layer:
        """Build from the spec's arguments (already a dict) over the ``implied`` defaults; every
        value goes through its field's converter; unknown or missing keys raise."""
        values = {}
        for key, value in {**(implied or {}), **args}.items():
            spec_field = cls.spec_fields.get(key)
            if spec_field is None:
                raise SpecError(f"unknown key '{key}' for {cls.kind}", hint=cls.key_hint(key), field=key)
            try:
                values[key] = spec_field.metadata["convert"](value)
            except SpecError as exc:
                exc.message = f"{key}: {exc.message}"
                exc.field = key
                raise
        missing = [name for name, f in cls.spec_fields.items()
                   if name not in values and f.default is dataclasses.MISSING]
        if missing:
            example = f"{{{missing[0]}: ...}}"
            raise SpecError(f"{cls.kind} needs '{missing[0]}'",
                            hint=f"write it as '{cls.kind}: {example}'" +
                                 (f" or '{cls.kind}: <{cls.main}>'" if cls.main else ""))
        return cls(**values)

    @classmethod
    def key_hint(cls, key) -> str:
        """What to write instead of an unknown key: this kind's name for a PyTorch or Keras one
        (out_channels -> filters), nothing for what the input gives (in_channels), else the
        closest spelling or the valid keys."""
        if not cls.spec_fields:
            return f"'{cls.kind}' takes no arguments"
        for name, spec_field in cls.spec_fields.items():
            if key in spec_field.metadata["known_as"]:
                return f"did you mean '{name}'? (archcalc's name for {key})"
        if key in INFERRED:
            return f"leave it out: archcalc reads {key} from the layer's input"
        return closest(key, cls.spec_fields)

    # --- rules every kind may override --------------------------------------------------
    def output_shape(self, x: Shape) -> Shape:
        """The output's shape; for a kind with several outputs (``output_count`` > 1) an
        Outputs holding one shape per output."""
        return x

    def output_count(self) -> int:
        """How many outputs the layer has: 1, or one per part (split, chunk), known from its
        arguments alone so that names can be resolved before any shape is."""
        return 1

    def tensors(self, x: Shape) -> dict:
        """The learnable tensors, {PyTorch's parameter name: shape}, in PyTorch's order
        (conv: weight, bias). What ``freeze`` names and what ``shares`` compares. None by default."""
        return {}

    def params(self, x: Shape) -> int:
        """Learnable parameters (weights + biases), as PyTorch's parameters() counts them:
        the elements of every tensor, sum(prod(shape))."""
        return sum(prod(shape) for shape in self.tensors(x).values())

    def buffers(self, x: Shape) -> int:
        """Non-learned state stored with the model: the elements of every registered buffer, as
        ``sum(b.numel() for b in model.buffers())`` counts them (BatchNorm's running mean and
        variance, and its batch counter). Those that are int64 counters whatever the dtype
        (``model.half()`` converts floating buffers only) are ``int64_buffers`` of them."""
        return 0

    def parameter_shapes(self, x: Shape) -> tuple:
        """The parameter tensors as PyTorch's module holds them: ((shape, how many), ...), their
        elements summing to ``params``: ``tensors`` grouped by shape, in order. Sharding needs
        them: FSDP splits each tensor on its first axis (analysis/sharding.py)."""
        return tuple(Counter(self.tensors(x).values()).items())

    def neurons(self, x: Shape, y: Shape) -> int:
        """Elements of this layer's output for one sample, if it creates new neurons."""
        return prod(y) if self.creates_neurons else 0

    def lookup_params(self, x: Shape) -> int:
        """Of ``params``, those read by lookup rather than multiplied by an input (an embedding
        table, learned positions): the 6N estimate of training compute leaves them out of N
        unless another layer multiplies by them (a tied output projection). 0 by default."""
        return 0

    def attending(self, x: Shape) -> Attending | None:
        """What an attention layer attends (heads, key/value heads, positions: terms.Attending),
        from which analysis/sequence.py computes the KV cache, the score matrices and the
        attention term of the 6N + 12·L·T·d estimate; None for every kind that does not attend."""
        return None

    # --- compute, receptive field, convolution as a matrix product (`inspect`'s deeper figures) ---
    def macs(self, x: Shape, y: Shape) -> int:
        """Multiply-accumulates for one sample, for the kinds that multiply by weights (those that
        override this: analysis/conventions.py lists them). 0 for every other kind (their
        arithmetic is in ``extra_flops``)."""
        return 0

    def extra_flops(self, x: Shape, y: Shape) -> int:
        """Operations besides the MACs for one sample: bias adds, comparisons, normalisation, ...
        (each kind states its rule; 0 for layers that only move values: flatten, dropout, concat)."""
        return 0

    def flops(self, x: Shape, y: Shape) -> int:
        """FLOPs for one sample = 2 x MACs (a multiply and an add each) + ``extra_flops`` + one per
        output element for an ``activation:`` attribute (as a standalone activation layer counts)."""
        return 2 * self.macs(x, y) + self.extra_flops(x, y) + (prod(y) if self.activation else 0)

    def receptive_field(self, x: Shape, y: Shape, field: Field) -> Field:
        """The receptive field of this layer's output (see layers/receptive.py), given ``field``,
        its input's (the widest of them for a merge). Default: a layer that keeps the spatial
        sizes keeps the field; one that changes them (flatten, a global pool) sees its whole input:
        exact for those, an upper bound for a new kind that slides a window and should say so."""
        first = x[0] if self.merges else x
        if spatial_axes(first) == spatial_axes(y):
            return field
        return covering(field, first)

    def unrolled(self, x: Shape, y: Shape):
        """This layer as one matrix product (im2col.Unrolled, convolutions), or None."""
        return None

    # --- the same arithmetic as data (layers/terms.py), worded by views/wording.py -----------
    def size_terms(self, x: Shape, y: Shape | None) -> tuple:
        """How the output size follows from the input: per-axis terms (WindowAxis,
        TransposedAxis) or one for the layer (Flattened, Joined, Recurrence); () when the shape
        simply passes through or is set by an argument."""
        return ()

    def count_terms(self, x: Shape, y: Shape) -> Counts:
        """How params, buffers and neurons are made up. Default: the bare counts, and the
        output elements as neurons, spatial axes first as the course writes them (55x55x96)."""
        neurons = self.neurons(x, y)
        factors = tuple(y) if isinstance(y, Steps) else (*y[1:], y[0])
        return Counts(Count(self.params(x)), Count(self.buffers(x)),
                      Count(neurons, Product(factors) if neurons and neurons == prod(y) else None))

    def hyperparameters(self) -> dict:
        """The spec fields that differ from their defaults, in declaration order."""
        shown = {}
        for name, f in self.spec_fields.items():
            value = getattr(self, name)
            if f.default is dataclasses.MISSING or value != f.default:
                shown[name] = value
        return shown

    def label(self, x: Shape) -> Label:
        """The layer as the spec's shorthand reads, for headings and diagrams: the kind, the
        main argument's value (even at its default), then the other non-default settings
        ('dense 4096, relu', 'lstm 20, layers 2, bidirectional'). ``x`` is the input shape (a
        tuple of them for merges)."""
        settings = self.hyperparameters()
        head = ()
        if self.main is not None:  # shown even at its default: 'dropout 0.5'
            settings.pop(self.main, None)
            head = (getattr(self, self.main),)
        return Label(self.kind, head, settings)

    def memory_ops(self, x: Shape, y: Shape, training: bool, device: str) -> tuple:
        """The tensor operations PyTorch runs for this layer, in order, as footprint.Op: what each
        allocates and what autograd keeps of it for the backward pass (analysis/schedule.py
        replays them). ``training``: train mode with autograd recording (else eval and no_grad);
        ``device``: "cpu" or "cuda", where their kernels differ. Leave out the ``activation:``
        attribute: the schedule appends that kind's own ops."""
        raise SpecError(f"layer kind '{self.kind}' has no memory model yet",
                        hint=f"give {type(self).__name__} a memory_ops method (see Layer.memory_ops)")

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Whether PyTorch lays this layer's output out channels last in memory (a map [C, ...]
        whose channels moved last, x.movedim(1, -1), is contiguous), given whether each input is:
        what an op over the channels leaves (it computes with the channels last and moves them
        back), and what PyTorch's memory-format propagation carries on from the first input
        (elementwise kernels at any rank; convolutions, pools and batch norm on 2-D and 3-D maps).
        Base: an element-wise kind (``elementwise``) as its kernel writes it (elementwise_layout),
        any other a new tensor in the plain (channels first) order. The schedule reads it for the
        ops that read the channels last (footprint.Op.if_channels_first)."""
        return self.elementwise and elementwise_layout(x, inputs[0])

    # --- the PyTorch backend (archcalc/backend; torch is never imported on the static path) ---
    def to_torch(self, x: Shape):
        """How PyTorch computes this layer for the per-sample input shape ``x``: a Recipe.

        The backend's whole interface with a layer kind:
        - return ``module("nn.Conv2d", ...)`` (any torch.nn class) or a helper of
          archcalc/backend/modules.py, from archcalc.backend.recipe; ``sequence(a, b)`` chains
          several. A recipe is data: the backend builds it and ``export`` prints it, so both
          always agree;
        - the module maps a batch (N, *x) to (N, *output_shape(x)): our shapes are channels
          first like PyTorch's, sequences [T, F] are batch-first (N, T, F);
        - a merge layer (``merges = True``) gets ``x`` as a tuple of shapes and its module takes
          one tensor per input, in the order of the spec's ``inputs``;
        - leave out the ``activation:`` attribute: the backend appends that layer itself;
        - raise SpecError (with ``field``) for what PyTorch cannot express.
        A new kind without this method fails loudly, here and in tests/test_backend.py.
        """
        raise SpecError(f"layer kind '{self.kind}' has no PyTorch equivalent yet",
                        hint=f"give {type(self).__name__} a to_torch(x) method (see Layer.to_torch)")

    def sample_input(self, x: Shape, batch: int, dtype, device):
        """A random batch (N, *x) this layer accepts, for the network input it reads: standard
        normal numbers; a kind that reads integers (token ids) overrides it."""
        import torch

        return torch.randn((batch, *x), dtype=dtype, device=device)

    def training_batch(self, x: Shape) -> int:
        """The smallest batch at which PyTorch trains this layer on the per-sample input ``x``: 1."""
        return 1

    def rounded(self, rounding: str) -> Layer:
        """This layer with its output sizes rounded by ``rounding`` (the CLI's --rounding): itself,
        for a kind that does not round."""
        return self


@dataclass(frozen=True)
class Label:
    """What a heading or a diagram box shows of a layer: its kind, the values read right after
    it (the main argument; a window's kernel per axis) and the other settings, by name."""

    kind: str
    head: tuple
    settings: dict


def require_feature_map(x: Shape, kind: str) -> None:
    """Refuse a sequence where a [C, ...] feature map is meant (a [T, F] is not a [C, L])."""
    if isinstance(x, Steps):
        raise SpecError(f"{kind} works on feature maps [C, ...], but its input is the sequence "
                        f"{shape_text(x)}",
                        hint="sequences go through rnn/lstm/gru, dense (per step), layernorm, activations "
                             "and dropout; a 1D signal is declared as input: [channels, length]")


def feature_map_rank(x: Shape, kind: str) -> int:
    """The number of spatial axes of a [C, ...] feature map; a sequence or a flat vector is refused."""
    require_feature_map(x, kind)
    if len(x) < 2:
        raise SpecError(f"{kind} works on spatial axes, but its input {list(x)} is a flat feature vector",
                        hint="declare the input as [channels, length] (e.g. [1, 100]) for 1D, "
                             "or drop the flatten before this layer")
    return len(x) - 1


def elementwise_layout(x: Shape, laid: bool) -> bool:
    """Whether an element-wise kernel (TensorIterator) writes its output over ``x`` channels
    last, given whether its input is: as the input (it follows the strides), but a map of one
    channel plainly (an axis of size 1 gives the order nothing to follow: relu of a one-channel
    convolution's output laid out channels last, strides (HW, 1, W, 1), is (HW, HW, W, 1))."""
    return laid and not (isinstance(x, FeatureMap) and x[0] == 1)


def spatial_rank(x: Shape) -> int:
    """Number of spatial axes after the channel axis: 0 for a feature vector."""
    return len(x) - 1


def axes(value, rank: int, name: str) -> tuple:
    """Expand an int or per-axis list to exactly ``rank`` values."""
    if isinstance(value, tuple):
        if len(value) != rank:
            raise SpecError(f"{name} has {len(value)} values but the input has {rank} spatial "
                            f"ax{'is' if rank == 1 else 'es'}",
                            hint=f"give one {name} per axis, or a single number for all", field=name)
        return value
    return (value,) * rank


def shape_text(shape: Shape) -> str:
    """Channels first, like the spec's input and PyTorch: 96x55x55; sequences as 25x4 (TxF);
    several outputs one after the other: 58x28x28, 58x28x28."""
    if isinstance(shape, Outputs):
        return ", ".join(map(shape_text, shape))
    text = "x".join(str(d) for d in shape)
    if isinstance(shape, Steps):
        return f"{text} (TxF)" if len(shape) == 2 else f"{text} (T ids)"
    return text
