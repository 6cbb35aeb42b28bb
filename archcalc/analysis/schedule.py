"""Peak memory as a schedule, not a sum: the layers replayed as PyTorch runs them, in exact integers.

The walk follows the backend's forward (backend/graph.py): layers in spec order, each value
dropped after its last reader unless the network returns it. Every layer kind states its tensor
operations (Layer.memory_ops, layers/footprint.py): what each allocates, which are views, what
autograd keeps for the backward pass. A tensor lives while anything holds it: the forward's
table of values, the op that saved it, a gradient waiting to be consumed; so a tensor saved by
two ops (relu's output, which the next conv saves as its input) counts once.

- inference (eval mode, no_grad): parameters + buffers + the input + the largest set of tensors
  alive at once;
- a training step, as the backend measures it (the second step, optimizer state present):
  forward to the loss (the sum of the outputs), backward in reverse order (each op's gradients
  allocated while its output's gradient is alive, then that gradient and what the op saved
  released; a value read by several layers sums their gradients into a new tensor; parameter
  gradients kept), then the optimizer step.
- optimizer: sgd keeps nothing, momentum one buffer per weight, adam/adamw two. Their step on
  CPU runs tensor by tensor: adam's sqrt(v) and its bias-corrected copy make two temporaries the
  size of one parameter tensor (Layer.tensors) while the previous tensor's denominator is still
  alive, beside a 4-byte step counter per tensor;
  CUDA's foreach implementation makes one the size of all of them (its counters stay on the host).

Live bytes are kept as (fixed, per sample) pairs, so one replay gives the peak at every batch
size: each moment is a line a + b x batch, and the peak is their maximum.

Not modelled: what a kernel allocates and frees inside one operation (oneDNN and cuDNN
workspaces), the caching allocator's rounding, and, per kind, what the ops say in their
docstrings (the recurrent layers are approximate).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..choices import DTYPE_BYTES, OPTIMIZER_STATES
from ..errors import SpecError
from ..layers import Steps, lookup
from ..layers.footprint import ACTIVATION, INPUT, MASK, OUTPUT, Op
from .walk import Analysis

CATEGORIES = ("weights", "gradients", "optimizer", "input", "activations", "transient")
# weights: parameters and buffers; gradients: of the parameters; optimizer: its state; input:
# the batch (its caller holds it throughout); activations: forward tensors alive (still to be
# read, or saved for backward); transient: activation gradients and temporaries
LOSS_BYTES = 4  # the float32 scalar the outputs sum to (and its gradient, a ones_like)
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Moment:
    """Live bytes right after an allocation: per category, (fixed, per sample)."""

    phase: str
    layer: str
    fixed: tuple
    sample: tuple

    def bytes(self, batch: int) -> int:
        return sum(self.fixed) + batch * sum(self.sample)

    def parts(self, batch: int) -> dict:
        """{category: bytes} at ``batch``."""
        return {name: fixed + batch * sample for name, fixed, sample in zip(CATEGORIES, self.fixed, self.sample)}


@dataclass(frozen=True)
class Schedule:
    """Every moment of one replay; the phases are inference, or forward, backward and step."""

    analysis: Analysis
    training: bool
    optimizer: str | None
    device: str
    moments: tuple

    @property
    def phases(self) -> tuple:
        return tuple(dict.fromkeys(moment.phase for moment in self.moments))

    def peak_moment(self, phase: str | None = None, batch: int | None = None) -> Moment:
        """The moment of the highest live bytes (in ``phase``), at ``batch`` (the analysis's)."""
        batch = self.analysis.batch if batch is None else batch
        moments = [m for m in self.moments if phase is None or m.phase == phase]
        return max(moments, key=lambda moment: moment.bytes(batch))

    def peak(self, phase: str | None = None, batch: int | None = None) -> int:
        batch = self.analysis.batch if batch is None else batch
        return self.peak_moment(phase, batch).bytes(batch)

    def max_batch(self, budget: int) -> int:
        """The largest batch whose peak fits in ``budget`` bytes (0: not even one sample)."""
        largest = None
        for moment in self.moments:
            fixed, sample = sum(moment.fixed), sum(moment.sample)
            if fixed > budget:
                return 0
            if sample:
                fits = (budget - fixed) // sample
                largest = fits if largest is None else min(largest, fits)
        return largest if largest is not None else 2 ** 63 - 1


class _Tensor:
    """A simulated tensor: its bytes, category, holders and whether autograd tracks it."""

    __slots__ = ("fixed", "sample", "category", "holders", "requires_grad")

    def __init__(self, fixed: int, sample: int, category: str, requires_grad: bool = False):
        self.fixed, self.sample, self.category = fixed, sample, category
        self.holders = 0
        self.requires_grad = requires_grad


class _Replay:
    def __init__(self):
        self.fixed = dict.fromkeys(CATEGORIES, 0)
        self.sample = dict.fromkeys(CATEGORIES, 0)
        self.moments: list[Moment] = []
        self.phase, self.layer = "", ""

    def allocate(self, fixed: int, sample: int, category: str, requires_grad: bool = False) -> _Tensor:
        tensor = _Tensor(fixed, sample, category, requires_grad)
        self.hold(tensor)
        self.fixed[category] += fixed
        self.sample[category] += sample
        self.moments.append(Moment(self.phase, self.layer, tuple(self.fixed.values()), tuple(self.sample.values())))
        return tensor

    @staticmethod
    def hold(tensor: _Tensor) -> _Tensor:
        tensor.holders += 1
        return tensor

    def drop(self, tensor: _Tensor) -> None:
        tensor.holders -= 1
        if tensor.holders == 0:
            self.fixed[tensor.category] -= tensor.fixed
            self.sample[tensor.category] -= tensor.sample


@dataclass
class _Recorded:
    """One differentiable op of the forward, for the backward pass."""

    layer: str
    op: Op
    reads: list
    output: _Tensor
    saved: list
    weight_bytes: int   # gradients its backward allocates for trainable parameters


def schedule(analysis: Analysis, *, training: bool = False, optimizer: str = "sgd",
             device: str = "cpu") -> Schedule:
    """Replay ``analysis`` for inference or one training step (see the module's model)."""
    if optimizer not in OPTIMIZER_STATES:
        raise SpecError(f"unknown optimizer {optimizer!r}", hint="one of " + ", ".join(OPTIMIZER_STATES))
    if device not in DEVICES:
        raise SpecError(f"unknown device {device!r}", hint="one of " + ", ".join(DEVICES))
    size = DTYPE_BYTES[analysis.dtype]
    dtypes = {**DTYPE_BYTES, ACTIVATION: size, MASK: 1 if device == "cuda" else size, "int64": 8}
    replay = _Replay()
    totals = analysis.totals
    replay.phase, replay.layer = ("forward" if training else "inference"), ""
    replay.allocate(totals.param_bytes + totals.buffer_bytes, 0, "weights")  # int64 batch counters: 8 B
    if training:
        state = OPTIMIZER_STATES[optimizer] * totals.trainable_params * size
        if optimizer in ("adam", "adamw") and device == "cpu":  # a float32 step counter per tensor (on CUDA
            state += 4 * sum(len(stats.layer.tensors(stats.input_shape))  # it stays in host memory)
                             for stats in analysis.layers if stats.trainable_params)
        replay.allocate(state, 0, "optimizer")
    values = {name: replay.allocate(0, prod(shape) * (8 if _token_ids(shape) else size), "input")
              for name, shape in analysis.input_shapes.items()}
    for tensor in values.values():
        replay.hold(tensor)  # the caller's reference: the batch outlives the forward's table
    last_reader = {name: index for index, stats in enumerate(analysis.layers) for name in stats.node.inputs}
    recorded: list[_Recorded] = []
    for index, stats in enumerate(analysis.layers):
        replay.layer = stats.name
        layer, x, y = stats.layer, stats.input_shape, stats.output_shape
        ops = list(layer.memory_ops(x, y, training, device))
        if layer.activation:
            ops += lookup(layer.activation).from_args({}).memory_ops(y, y, training, device)
        inputs = [values[name] for name in stats.node.inputs]
        reads, weights = inputs, stats.trainable_params * size if training else 0
        for position, op in enumerate(ops):
            if op.rereads:
                reads = [*reads, inputs[0]]
            tracked = training and (any(t.requires_grad for t in reads) or (op.weights and weights > 0))
            if op.output is None:
                output = replay.hold(reads[0])
            else:
                output = replay.allocate(0, op.output * size, "activations", tracked)
            output.requires_grad = output.requires_grad or tracked
            extras = [replay.allocate(*_bytes(extra, dtypes), "activations") for extra in op.extras]
            if tracked:
                saved = [replay.hold(t) for ref in op.saves
                         for t in (reads if ref == INPUT else [output] if ref == OUTPUT else [extras[ref]])]
                recorded.append(_Recorded(stats.name, op, list(reads), output, saved,
                                          weights if op.weights else 0))
            for extra in extras:
                replay.drop(extra)
            if position > 0:  # the previous op's output, an intermediate of this layer
                replay.drop(reads[0])
            reads = [output]
        first, *others = stats.node.outputs  # its name; a split's parts: views of one input
        values[first] = reads[0]
        for part in others:
            values[part] = replay.hold(reads[0])
        for name in stats.node.inputs:
            if last_reader[name] == index and name not in analysis.spec.outputs:
                replay.drop(values.pop(name))
    if training:
        replay.layer = ""
        total = None
        for _ in analysis.output_shapes or (None,):  # loss = 0 + out1.sum() + ...: a scalar each, then their sum
            term = replay.allocate(LOSS_BYTES, 0, "transient")
            added = replay.allocate(LOSS_BYTES, 0, "transient")
            replay.drop(term)
            if total is not None:
                replay.drop(total)
            total = added
        _backward(replay, recorded, [values[name] for name in analysis.spec.outputs or (analysis.layers[-1].name,)
                                     if name in values])
        _step(replay, analysis, optimizer, device, size)
    return Schedule(analysis, training, optimizer if training else None, device, tuple(replay.moments))


def _token_ids(shape) -> bool:
    """A sequence of token ids (an embedding's input), which PyTorch holds as int64."""
    return isinstance(shape, Steps) and len(shape) == 1


def _bytes(tensor, dtypes: dict) -> tuple[int, int]:
    """(fixed, per sample) bytes of a footprint.Tensor."""
    total = tensor.elements * dtypes[tensor.dtype]
    return (0, total) if tensor.batched else (total, 0)


def _backward(replay: _Replay, recorded: list, outputs: list) -> None:
    replay.phase, replay.layer = "backward", ""
    ones = replay.allocate(LOSS_BYTES, 0, "transient")     # its gradient; each output's is a view of it
    grads: dict[int, _Tensor] = {}
    for output in outputs:
        if output.requires_grad:
            _accumulate(replay, grads, output, replay.hold(ones))
    replay.drop(ones)
    for entry in reversed(recorded):
        replay.layer = entry.layer
        gradient = grads.pop(id(entry.output), None)
        if gradient is None:  # nothing downstream reaches the loss
            for tensor in entry.saved:
                replay.drop(tensor)
            continue
        if entry.weight_bytes:
            replay.allocate(entry.weight_bytes, 0, "gradients")   # .grad, kept
        scratch = [replay.allocate(entry.reads[0].fixed, entry.reads[0].sample, "transient")
                   for _ in range(entry.op.scratch)]
        for tensor in entry.reads:
            if tensor.requires_grad:
                if entry.op.gradient == "view":
                    _accumulate(replay, grads, tensor, replay.hold(gradient))
                else:
                    _accumulate(replay, grads, tensor, replay.allocate(tensor.fixed, tensor.sample, "transient"))
        for tensor in [gradient, *scratch, *entry.saved]:
            replay.drop(tensor)
    for gradient in grads.values():
        replay.drop(gradient)


def _accumulate(replay: _Replay, grads: dict, tensor: _Tensor, gradient: _Tensor) -> None:
    """A second gradient for the same tensor: autograd adds them into a new one."""
    earlier = grads.get(id(tensor))
    if earlier is None:
        grads[id(tensor)] = gradient
        return
    grads[id(tensor)] = replay.allocate(tensor.fixed, tensor.sample, "transient")
    replay.drop(earlier)
    replay.drop(gradient)


def _step(replay: _Replay, analysis: Analysis, optimizer: str, device: str, size: int) -> None:
    replay.phase, replay.layer = "step", ""
    if optimizer not in ("adam", "adamw") or not analysis.totals.trainable_params:
        replay.allocate(0, 0, "transient")  # the step's moment: what is live after backward
        return
    if device == "cuda":  # foreach: sqrt(v) for every parameter at once
        replay.drop(replay.allocate(analysis.totals.trainable_params * size, 0, "transient"))
        return
    # tensor by tensor, in the parameters' order: sqrt(v), then sqrt(v) / sqrt(1 - beta2^t), while
    # the previous tensor's denominator is still bound to its variable
    tensors = [(prod(shape), stats.name) for stats in analysis.layers if stats.trainable_params
               for shape in stats.layer.tensors(stats.input_shape).values()]
    previous, (elements, replay.layer) = max(
        ((before[0], now) for before, now in zip([(0, "")] + tensors, tensors)),
        key=lambda pair: pair[0] + 2 * pair[1][0])
    held = replay.allocate(previous * size, 0, "transient")
    replay.allocate(elements * size, 0, "transient")
    replay.allocate(elements * size, 0, "transient")
    replay.drop(held)
