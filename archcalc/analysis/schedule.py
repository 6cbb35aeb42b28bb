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
- activation checkpointing (``checkpoint``: runs of layers under torch.utils.checkpoint,
  non-reentrant): a segment's ops keep nothing in the forward, and the backward runs the segment
  again when it first needs what they saved (_Frame).
- optimizer: sgd keeps nothing, momentum one buffer per weight, adam/adamw two. Their step on
  CPU runs tensor by tensor: adam's sqrt(v) and its bias-corrected copy make two temporaries the
  size of one parameter tensor (Layer.tensors) while the previous tensor's denominator is still
  alive, beside a 4-byte step counter per tensor;
  CUDA's foreach implementation makes one the size of all of them (its counters stay on the host).

Live bytes are kept as (fixed, per sample) pairs, so one replay gives the peak at every batch
size: each moment is a line a + b x batch, and the peak is their maximum.

Not modelled: what a kernel allocates and frees inside one operation (a workspace it does not
return: convolutions' oneDNN buffers, cuDNN's), the caching allocator's rounding, and, per kind,
what its memory_gap says (printed by every memory report). A workspace a kernel returns for the
backward pass is modelled (oneDNN's LSTM: footprint.Workspace), as are the layouts that make a
later op copy (a recurrent layer's batch-first view, copied by the dense layer that reshapes it; a
map laid out channels last or permuted; a gradient's layout: footprint's PLAIN, CHANNELS_LAST,
EXPANDED, STRIDED). The autograd engine is replayed as it runs under the measuring tracker's
dispatch mode: gradients meeting in one buffer are added out of place (_accumulate).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Any

from ..choices import DTYPE_BYTES, MIXED_PRECISION, OPTIMIZER_STATES
from ..errors import SpecError
from ..layers import Shape, Steps, lookup, parts
from ..layers.base import elementwise_layout
from ..layers.footprint import (
    ACTIVATION,
    CHANNELS_LAST,
    EXPANDED,
    FLOAT32,
    INPUT,
    LOWER,
    MASK,
    MAX_OPS,
    NONE,
    OPMATH,
    OUTPUT,
    PLAIN,
    PRODUCT,
    STRIDED,
    Op,
    Tensor,
    Workspace,
    too_many_ops,
)
from .sharding import UNBOUNDED
from .walk import Analysis, LayerStats

CATEGORIES = ("weights", "gradients", "optimizer", "input", "activations", "transient")
# weights: parameters and buffers; gradients: of the parameters; optimizer: its state; input:
# the batch (its caller holds it throughout); activations: forward tensors alive (still to be
# read, or saved for backward); transient: activation gradients and temporaries
LOSS_BYTES = 4  # the loss's scalar when an output is no floating tensor (its gradient: a ones_like)
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Moment:
    """Live bytes right after an allocation: per category, (fixed, per sample)."""

    phase: str
    layer: str
    fixed: tuple[int, ...]
    sample: tuple[int, ...]

    def bytes(self, batch: int) -> int:
        return sum(self.fixed) + batch * sum(self.sample)

    def parts(self, batch: int) -> dict[str, int]:
        """{category: bytes} at ``batch``."""
        return {name: fixed + batch * sample for name, fixed, sample in zip(CATEGORIES, self.fixed, self.sample)}


@dataclass(frozen=True)
class Schedule:
    """Every moment of one replay; the phases are inference, or forward, backward and step."""

    analysis: Analysis
    training: bool
    optimizer: str | None
    device: str
    moments: tuple[Moment, ...]
    mixed_precision: str | None = None
    checkpoint: tuple[tuple[str, ...], ...] = ()   # the checkpointed segments (their layers) of a training step
    recomputed: tuple[str, ...] = ()   # the layers whose forward backward ran again, in order
    skipped_macs: int = 0              # of theirs, per sample, those of ops the reruns stopped before (Op.macs)
    cut_short: tuple[str, ...] = ()    # layers a rerun stopped before an op with weights and no Op.macs: not known

    @property
    def recomputed_flops(self) -> int:
        """What backward ran again of the forward, at the batch: 2 x the multiply-accumulates of the
        layers recomputed, less the ops the reruns stopped before (as PyTorch's FlopCounterMode
        counts: matrix products and convolutions)."""
        rerun = set(self.recomputed)
        macs = sum(stats.macs for stats in self.analysis.layers if stats.name in rerun) - self.skipped_macs
        return 2 * self.analysis.batch * macs
    # live bytes between two layers, as each begins (forward, backward) and as the passes end, each
    # after the moments before it (how many): where FSDP's hooks run
    marks: tuple[tuple[int, Moment], ...] = ()

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(moment.phase for moment in self.moments))

    def peak_moment(self, phase: str | None = None, batch: int | None = None) -> Moment:
        """The moment of the highest live bytes (in ``phase``), at ``batch`` (the analysis's)."""
        batch = self.analysis.batch if batch is None else batch
        moments = [m for m in self.moments if phase is None or m.phase == phase]
        return max(moments, key=lambda moment: moment.bytes(batch))

    def peak(self, phase: str | None = None, batch: int | None = None) -> int:
        batch = self.analysis.batch if batch is None else batch
        return self.peak_moment(phase, batch).bytes(batch)

    def at_batch(self, batch: int) -> Schedule:
        """The same replay (training or not, optimizer, kernels, autocast, checkpointed segments)
        for ``batch`` samples."""
        return schedule(self.analysis.at_batch(batch), training=self.training, optimizer=self.optimizer or "sgd",
                        device=self.device, mixed_precision=self.mixed_precision, checkpoint=self.checkpoint)

    def max_batch(self, budget: int) -> int:
        """The largest batch whose replayed peak fits in ``budget`` bytes (0: not even one sample;
        UNBOUNDED when nothing grows with the batch): largest_batch over replays of this schedule."""
        replays = {self.analysis.batch: self}

        def replay(batch: int) -> Schedule:
            if batch not in replays:
                replays[batch] = self.at_batch(batch)
            return replays[batch]

        return largest_batch(lambda batch: _solved(replay(batch).moments, budget),
                             lambda batch: replay(batch).peak() <= budget, self.analysis.batch)


def largest_batch(solved: Callable[[int], int], fits: Callable[[int], bool], start: int) -> int:
    """The largest batch that ``fits`` (0: not even one; UNBOUNDED: any), given ``solved(b)``: the
    answer of the lines a replay at batch b gives (each moment fixed + batch x per sample, exact at
    b). A few ops change with the batch (a batch of one is not copied where more samples are, a
    workspace rounds to pages), so the answer of the replay at ``start`` is replayed and solved
    again until it repeats, then checked: it fits, one sample more does not (bisected between
    replays in the rare case that does not hold)."""
    found, seen = solved(start), set()
    while 0 < found < UNBOUNDED and found not in seen:
        seen.add(found)
        found = solved(found)
    if found == UNBOUNDED:
        return found
    if found == 0 or fits(found):
        low, high = found, found + 1
        while fits(high):
            low, high = high, 2 * high
    else:
        low, high = 0, found
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _solved(moments: tuple[Moment, ...], budget: int) -> int:
    """The largest batch at which every moment's line (fixed + batch x per sample) is within ``budget``."""
    largest = UNBOUNDED
    for moment in moments:
        fixed, sample = sum(moment.fixed), sum(moment.sample)
        if fixed > budget:
            return 0
        if sample:
            largest = min(largest, (budget - fixed) // sample)
    return largest


class _Tensor:
    """A simulated tensor: its bytes, bytes per element, category, holders and whether autograd tracks it."""

    __slots__ = ("fixed", "sample", "category", "holders", "requires_grad", "itemsize", "base", "strided", "order",
                 "layout")

    def __init__(self, fixed: int, sample: int, category: str, requires_grad: bool = False, itemsize: int = 0,
                 base: _Tensor | None = None):
        self.fixed, self.sample, self.category = fixed, sample, category
        self.holders = 0
        self.requires_grad = requires_grad
        self.itemsize = itemsize   # 0: not a floating tensor (token ids, statistics)
        self.base = base           # a view's storage: it holds that, its own bytes size its gradient
        self.strided = False       # not contiguous: a reshape copies it
        self.order: tuple[int, ...] = ()   # a strided tensor's axes in memory order, where a permute made it
        self.layout = PLAIN        # how it lies in memory (footprint's layouts): a gradient's decides copies


class _Replay:
    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.fixed = dict.fromkeys(CATEGORIES, 0)
        self.sample = dict.fromkeys(CATEGORIES, 0)
        self.moments: list[Moment] = []
        self.marks: list[tuple[int, Moment]] = []
        self.phase, self.layer = "", ""
        self.log: list[tuple[Any, ...]] | None = None   # while a checkpointed segment's forward runs: its events

    def mark(self) -> None:
        """Record the live bytes between two layers (no allocation): where FSDP's hooks run."""
        self.marks.append((len(self.moments),
                           Moment(self.phase, self.layer, tuple(self.fixed.values()), tuple(self.sample.values()))))

    def allocate(self, fixed: int, sample: int, category: str, requires_grad: bool = False,
                 itemsize: int = 0) -> _Tensor:
        tensor = _Tensor(fixed, sample, category, requires_grad, itemsize)
        tensor.holders = 1
        if self.log is not None:
            self.log.append(("new", tensor, self.layer))
        self.fixed[category] += fixed
        self.sample[category] += sample
        self.moments.append(Moment(self.phase, self.layer, tuple(self.fixed.values()), tuple(self.sample.values())))
        return tensor

    def like(self, tensor: _Tensor, category: str, itemsize: int | None = None) -> _Tensor:
        """A new tensor of ``tensor``'s shape and layout (in ``itemsize``-byte numbers: a cast)."""
        if itemsize is None or itemsize == tensor.itemsize or not tensor.itemsize:
            new = self.allocate(tensor.fixed, tensor.sample, category, itemsize=tensor.itemsize)
        else:
            new = self.allocate(tensor.fixed * itemsize // tensor.itemsize, tensor.sample * itemsize // tensor.itemsize,
                                category, itemsize=itemsize)
        new.layout = tensor.layout if tensor.layout != EXPANDED else PLAIN
        return new

    def view(self, base: _Tensor, fixed: int, sample: int) -> _Tensor:
        """A view of part of ``base`` (a split's part): no bytes of its own while it holds base."""
        base.holders += 1
        tensor = _Tensor(fixed, sample, base.category, base.requires_grad, base.itemsize, base)
        tensor.holders = 1
        if self.log is not None:
            self.log.append(("view", tensor, base))
        return tensor

    def hold(self, tensor: _Tensor) -> _Tensor:
        tensor.holders += 1
        if self.log is not None:
            self.log.append(("hold", tensor))
        return tensor

    def drop(self, tensor: _Tensor) -> None:
        if self.log is not None:
            self.log.append(("drop", tensor))
        self._release(tensor)

    def _release(self, tensor: _Tensor) -> None:
        tensor.holders -= 1
        if tensor.holders == 0:
            if tensor.base is not None:
                self._release(tensor.base)
                return
            self.fixed[tensor.category] -= tensor.fixed
            self.sample[tensor.category] -= tensor.sample


@dataclass
class _Recorded:
    """One differentiable op of the forward, for the backward pass."""

    layer: str
    op: Op
    reads: list[_Tensor]
    output: _Tensor
    saved: list[_Tensor]
    parts: list[_Tensor] = dataclasses.field(default_factory=list)   # a split's outputs (output: the first)
    weights: tuple[str, int] | None = None   # whose parameters' gradients its backward computes: (the owner's name, the op's position, -1 for all of them)
    weight_bytes: int = 0        # their trainable bytes, in the master dtype
    weight_parts: tuple[int, ...] = ()   # the same, per parameter tensor (one part: not known apart)
    copied_weight: int = 0       # bytes of the weight's gradient AccumulateGrad copies (Op.copied_weight)
    temporaries: list[tuple[int, int]] = dataclasses.field(default_factory=list)   # (fixed, per sample) bytes
    cast: int = 0                # under autocast: bytes per element of the 16-bit weight gradient it computes first
    frame: _Frame | None = None  # the checkpointed segment that packed what it saves (recomputed in backward)


class _Frame:
    """A checkpointed segment, as torch.utils.checkpoint's non-reentrant _CheckpointFrame keeps it.

    Forward: the segment's inputs are held (its saved_args) and its ops' saved tensors are packed
    into holders that keep nothing, so the segment's activations are freed as soon as its own code
    drops them. Backward: the first op of the segment whose saved tensors are unpacked runs the
    segment's forward again (the events logged in forward, replayed on new tensors: the same
    allocations and frees) up to the last tensor the forward saved, then stops (early stop): an op
    that saves only its inputs (a linear or a convolution) is stopped before it computes. What the
    ops save stays until each op's backward unpacks it; everything else the rerun made is freed.
    The inputs are released once the last op that saved something has run its backward.
    Not counted: the CPU random generator's state that checkpoint stashes (5 KB, not a tensor op)."""

    def __init__(self, layers: tuple[str, ...], reads: tuple[str, ...]):
        self.layers, self.reads = layers, reads
        self.inputs: list[_Tensor] = []
        self.log: list[tuple[Any, ...]] = []
        self.stop = 0         # the log's events the rerun replays: up to the last save
        self.packed = 0       # recorded ops that saved something and have not run their backward
        self.finished: set[int] = set()   # those that have (their recomputed tensors are not kept)
        self.recomputed = False
        self.stopped: _Recorded | None = None   # the op the rerun stops before (it saves only its inputs)

    def begin(self, replay: _Replay, values: dict[str, _Tensor]) -> None:
        self.inputs = [replay.hold(values[name]) for name in self.reads]
        replay.log = self.log

    def pack(self, entry: _Recorded, kept: list[_Tensor], inputs_only: bool) -> None:
        """``entry`` saved ``kept``: in the log, where PyTorch packs them (an op saving only its
        inputs packs them before it computes: before its output is allocated)."""
        entry.frame = self
        self.packed += 1
        position = len(self.log)
        if inputs_only:
            position = next((index for index in range(len(self.log) - 1, -1, -1)
                             if self.log[index][0] == "new" and self.log[index][1] is entry.output), position)
        self.log.insert(position, ("save", entry, kept))
        self.stop = position + 1
        self.stopped = entry if inputs_only else None

    def recompute(self, replay: _Replay) -> tuple[list[str], int, list[str]]:
        """The rerun (see the class); returns the layers it computed again, the multiply-accumulates
        (per sample) of the op it stopped before when that op's layer ran other ops, and that layer
        when the op has weights but no Op.macs (what it leaves out is not known)."""
        self.recomputed = True
        twins: dict[int, _Tensor] = {}   # id(forward tensor) -> its recomputed twin
        transient: dict[int, list[Any]] = {}  # id(twin) -> [twin, references the rerun's code holds]
        layer, layers = replay.layer, []
        for event in self.log[:self.stop]:
            kind, tensor = event[0], event[1]
            if kind == "new":
                replay.layer = event[2]
                layers.append(event[2])
                twin = replay.allocate(tensor.fixed, tensor.sample, tensor.category, tensor.requires_grad,
                                       tensor.itemsize)
            elif kind == "view":
                twin = replay.view(twins.get(id(event[2]), event[2]), tensor.fixed, tensor.sample)
            elif kind == "save":
                if id(tensor) not in self.finished:
                    tensor.saved = [replay.hold(twins.get(id(kept), kept)) for kept in event[2]]
                continue
            else:   # hold, drop: of tensors the segment made (its inputs are held throughout)
                if id(tensor) in twins:
                    twin = twins[id(tensor)]
                    if kind == "hold":
                        replay.hold(twin)
                        transient[id(twin)][1] += 1
                    else:
                        replay.drop(twin)
                        transient[id(twin)][1] -= 1
                continue
            twins[id(tensor)] = twin
            transient[id(twin)] = [twin, 1]
        for twin, references in transient.values():   # the rerun stopped: its frames let go
            for _ in range(references):
                replay.drop(twin)
        replay.layer = layer
        stopped = self.stopped if self.stopped is not None and self.stopped.layer in layers else None
        if stopped is None:
            return layers, 0, []
        return layers, stopped.op.macs, [stopped.layer] if stopped.op.weights and not stopped.op.macs else []

    def unpacked(self, replay: _Replay, entry: _Recorded) -> None:
        """``entry``'s backward has run (or never will): the last one frees the segment's inputs."""
        self.finished.add(id(entry))
        self.packed -= 1
        if self.packed == 0:
            for tensor in self.inputs:
                replay.drop(tensor)


def _frames(analysis: Analysis, checkpoint: tuple[tuple[str, ...], ...]) -> dict[str, _Frame]:
    """{layer name: its segment's _Frame} for the checkpointed runs of layers."""
    by_name = {stats.name: stats for stats in analysis.layers}
    frames = {}
    for layers in checkpoint:
        made = {output for name in layers for output in by_name[name].node.outputs}
        reads = tuple(dict.fromkeys(read for name in layers for read in by_name[name].node.inputs if read not in made))
        frame = _Frame(layers, reads)
        frames.update(dict.fromkeys(layers, frame))
    return frames


def schedule(analysis: Analysis, *, training: bool = False, optimizer: str = "sgd",
             device: str = "cpu", mixed_precision: str | None = None,
             checkpoint: tuple[tuple[str, ...], ...] = ()) -> Schedule:
    """Replay ``analysis`` for inference or one training step (see the module's model);
    ``checkpoint``: runs of consecutive layers (their names) that the training step runs under
    torch.utils.checkpoint (non-reentrant: _Frame); inference is the same without."""
    if optimizer not in OPTIMIZER_STATES:
        raise SpecError(f"unknown optimizer {optimizer!r}", hint="one of " + ", ".join(OPTIMIZER_STATES))
    if device not in DEVICES:
        raise SpecError(f"unknown device {device!r}", hint="one of " + ", ".join(DEVICES))
    size = DTYPE_BYTES[analysis.dtype]
    half = _half_bytes(analysis, mixed_precision)
    listed, _ = _layer_ops(analysis, training, device)
    frames = _frames(analysis, checkpoint) if training else {}
    replay = _Replay(analysis.batch)
    totals = analysis.totals
    replay.phase, replay.layer = ("forward" if training else "inference"), ""
    replay.allocate(totals.param_bytes + totals.buffer_bytes, 0, "weights")  # int64 batch counters: 8 B
    if training:
        state = OPTIMIZER_STATES[optimizer] * totals.trainable_params * size
        if optimizer in ("adam", "adamw") and device == "cpu":  # a float32 step counter per tensor (on CUDA
            state += 4 * sum(len(stats.layer.tensors(stats.input_shape))  # it stays in host memory)
                             for stats in analysis.layers if stats.trainable_params)
        replay.allocate(state, 0, "optimizer")
    values = {name: (replay.allocate(0, prod(shape) * 8, "input") if _token_ids(shape)
                     else replay.allocate(0, prod(shape) * size, "input", itemsize=size))
              for name, shape in analysis.input_shapes.items()}
    for tensor in values.values():
        replay.hold(tensor)  # the caller's reference: the batch outlives the forward's table
    last_reader = {name: index for index, stats in enumerate(analysis.layers) for name in stats.node.inputs}
    owners = {stats.name: stats for stats in analysis.layers}
    recorded: list[_Recorded] = []
    cache: dict[str, list[_Tensor]] = {}   # autocast's 16-bit copies of each layer's parameters, until the forward ends
    laid_out: dict[str, bool] = {}   # the values laid out channels last in memory (Layer.channels_last)
    for index, stats in enumerate(analysis.layers):
        replay.layer = stats.name
        replay.mark()
        frame = frames.get(stats.name)
        if frame is not None and stats.name == frame.layers[0]:
            frame.begin(replay, values)
        layer, x, y = stats.layer, stats.input_shape, stats.output_shape
        owner = owners[stats.shares] if stats.shares is not None else stats
        layouts = tuple(laid_out.get(name, False) for name in stats.node.inputs)
        own, activation = listed[index]
        if not layouts or not layouts[0]:
            ops = [alternative for op in own for alternative in (op.if_channels_first or (op,))]
        else:
            ops = [alternative for op in own for alternative in (op.if_channels_last or (op,))]
        laid = layer.channels_last(x, layouts)   # its own activation runs element-wise after it
        laid_out.update(dict.fromkeys(stats.node.outputs, elementwise_layout(y, laid) if activation else laid))
        ops += activation
        inputs = [values[name] for name in stats.node.inputs]
        weights = owner.trainable_params * size if training else 0
        outputs: list[_Tensor] = []   # each op's output, freed after the last op that reads it
        if not any(op.contiguous and any(t.strided for t in inputs) for op in ops[:1]):
            ops = [op for op in ops if not op.when_copied]
        if not (inputs and inputs[0].strided):
            ops = [op for op in ops if not op.when_strided]
        freed: dict[int, list[int]] = {}   # per op, the intermediates of this layer it reads for the last time
        for earlier, end in enumerate(_last_reads(ops)):
            if end is not None:
                freed.setdefault(end, []).append(earlier)
        for position, op in enumerate(ops):
            if op.reads is not None:
                reads = [t for ref in op.reads for t in (inputs if ref == INPUT else [outputs[ref]] if isinstance(ref, int)
                                                         else [inputs[int(ref[len(INPUT):])]])]
            else:
                reads = list(inputs) if position == 0 else [outputs[-1]]
            if op.rereads:
                reads = [*reads, inputs[0]]
            held: list[_Tensor] = []
            # (an op that reads nothing makes a tensor like its layer's input: zeros of its dtype)
            compute = _compute_bytes(op, reads if op.reads != () else inputs[:1], size, half)
            if half and op.autocast in (LOWER, FLOAT32):   # autocast casts what the op reads to its dtype: copies
                reads = held = [_cast(replay, recorded, stats.name, t, compute, training) for t in reads]
            if op.contiguous and any(t.strided for t in reads):   # reshape copies a strided input (autocast's cast first)
                copies = [_copy(replay, recorded, stats.name, t) if t.strided else replay.hold(t) for t in reads]
                held, reads = held + copies, copies
            tracked = training and (any(t.requires_grad for t in reads) or (op.weights and weights > 0))
            # autocast casts the weights with the inputs, before the op computes (and saves)
            copies = (_weight_copies(replay, cache, owner, half, op, position)
                      if half and op.autocast in (LOWER, PRODUCT) and op.weights else [])
            if copies and (op.uncached or not owner.trainable_params):   # not cached: gone after the op unless saved
                held = held + copies
            dtypes = {**DTYPE_BYTES, ACTIVATION: compute, LOWER: half or size, NONE: 0,
                      MASK: 1 if device == "cuda" else compute, "int64": 8, OPMATH: 4 if compute == 2 else compute}
            if op.converts and reads[0].itemsize in (0, dtypes[op.dtype]):   # .to() its own dtype: itself
                op = dataclasses.replace(op, output=None, converts=False, gradient="view")
            if op.output is None or (op.batch_copy and analysis.batch == 1 and not reads[0].strided):
                output = replay.hold(reads[0])
            elif op.part:
                output = replay.view(reads[0], 0, op.output * compute)
            else:
                itemsize = dtypes[op.cast if half and compute > half and op.cast else op.dtype]
                fixed, sample = (op.output * itemsize, 0) if op.unbatched else (0, op.output * itemsize)
                output = replay.allocate(fixed, sample, "activations", tracked, itemsize)
            output.requires_grad = output.requires_grad or tracked
            memory_order = _permuted(reads[0], op.permuted) if op.permuted else ()
            layout = {tuple(range(len(memory_order))): PLAIN, (*range(1, len(memory_order)), 0): CHANNELS_LAST}.get(
                memory_order, STRIDED) if memory_order else STRIDED
            if op.strided and analysis.batch > 1 or op.permuted:   # the same bytes, seen through strides: it takes over the hold
                strided = replay.view(output, output.fixed, output.sample)
                replay.drop(output)
                strided.strided = layout == STRIDED or not op.permuted
                if op.permuted:   # its memory order decides how the next layers read it
                    strided.order, strided.layout = memory_order, layout
                    laid_out[stats.node.outputs[0]] = layout == CHANNELS_LAST
                output = strided
            extras = [replay.allocate(*_bytes(extra, dtypes, analysis.batch, half, compute), "activations") for extra in op.extras]
            if tracked and op.gradient == "split":   # one backward node for the parts of a split: joined
                last = recorded[-1] if recorded else None
                if last is not None and last.parts and last.reads[0] is reads[0] and last.layer == stats.name:
                    last.parts.append(output)
                else:
                    recorded.append(_Recorded(stats.name, Op(None), [reads[0]], output, [], parts=[output]))
            elif tracked:
                kept = [t for ref in op.saves
                        for t in (reads if ref == INPUT else [output] if ref == OUTPUT else [extras[ref]]
                                  if isinstance(ref, int) else [reads[int(ref[len("read"):])]])]
                if half and op.autocast == PRODUCT:   # its 16-bit product saves the 16-bit copies (its extras)
                    kept = [t for t in kept if t.itemsize in (0, half) or any(t is extra for extra in extras)]
                if op.keeps_weights and (not op.product or any(t.requires_grad for t in reads)):   # (a product: for its input's gradient)
                    kept += copies[:1]   # the weights (their bias is not needed)
                share = weights if op.weights is True else op.weights * weights // max(owner.params, 1)
                pieces = (share,)   # per parameter tensor where they add up to the trainable bytes
                if op.weights is True and weights:
                    sizes = tuple(prod(shape) * size for shape in owner.layer.tensors(owner.input_shape).values())
                    pieces = sizes if sum(sizes) == share else pieces
                recorded.append(_Recorded(stats.name, op, list(reads), output,
                                          [replay.hold(t) for t in kept] if frame is None else [],
                                          weights=(owner.name, -1 if op.weights is True else position)
                                          if op.weights and weights else None,
                                          weight_bytes=share if op.weights else 0,
                                          weight_parts=pieces if op.weights else (), cast=half if copies else 0,
                                          copied_weight=op.copied_weight * size if weights else 0,
                                          temporaries=[_bytes(t, dtypes, analysis.batch, half, compute) for t in op.temporaries]))
                if frame is not None and kept:   # checkpoint packs them: kept by nothing until backward reruns
                    frame.pack(recorded[-1], kept, not any(ref == OUTPUT or isinstance(ref, int) for ref in op.saves))
            for extra in extras:
                replay.drop(extra)
            for tensor in held:
                replay.drop(tensor)
            if output not in reads and output.base is None:   # a tensor of its own: laid out as the layer's output
                output.layout = CHANNELS_LAST if laid_out[stats.node.outputs[0]] else PLAIN
            outputs.append(output)
            for earlier in freed.get(position, ()):
                replay.drop(outputs[earlier])
        if len(stats.node.outputs) > 1:   # a split's parts: views of its input, one backward node for all
            whole = inputs[0]
            views = [replay.view(whole, 0, prod(shape) * whole.sample // prod(x)) for shape in parts(y)]
            if training and whole.requires_grad:
                recorded.append(_Recorded(stats.name, Op(None), [whole], views[0], [], parts=views))
            values.update(zip(stats.node.outputs, views))
        else:
            values[stats.node.outputs[0]] = outputs[-1] if outputs else inputs[0]
            if layer.elementwise and inputs and inputs[0].strided:   # its kernel keeps a permuted input's strides
                values[stats.node.outputs[0]].strided = True
                values[stats.node.outputs[0]].order = inputs[0].order
        for name in dict.fromkeys(stats.node.inputs):   # a value read twice (add: [x, x]) is dropped once
            if last_reader[name] == index and name not in analysis.spec.outputs:
                replay.drop(values.pop(name))
        if frame is not None and stats.name == frame.layers[-1]:
            replay.log = None
            if not frame.packed:   # nothing saved: no hook refers to the frame, its inputs go with the call
                for tensor in frame.inputs:
                    replay.drop(tensor)
    returned = [values[name] for name in analysis.spec.outputs or (analysis.layers[-1].name,) if name in values]
    if training:
        replay.layer = ""
        replay.mark()
        total = None
        for output in returned:  # loss = 0 + out1.sum() + ...: a scalar each, then their sum
            term_bytes = output.itemsize or LOSS_BYTES   # in the output's dtype (16 bits under autocast)
            term = replay.allocate(term_bytes, 0, "transient")
            added = replay.allocate(max(term_bytes, total.fixed if total is not None else 0), 0, "transient")
            replay.drop(term)
            if total is not None:
                replay.drop(total)
            total = added
    for copies in cache.values():   # autocast's region ends with the forward: its cache is emptied
        for copy in copies:
            replay.drop(copy)
    recomputed: tuple[list[str], int, list[str]] = ([], 0, [])
    if training:
        recomputed = _backward(replay, recorded, returned, total.fixed if total is not None else LOSS_BYTES)
        _step(replay, analysis, optimizer, device, size)
    order = [stats.name for stats in analysis.layers]
    rerun, cut = set(recomputed[0]), set(recomputed[2])
    return Schedule(analysis, training, optimizer if training else None, device, tuple(replay.moments),
                    mixed_precision, checkpoint if training else (), tuple(name for name in order if name in rerun),
                    recomputed[1], tuple(name for name in order if name in cut), tuple(replay.marks))


def operations(analysis: Analysis, training: bool = False, device: str = "cpu") -> int:
    """The forward's tensor operations a replay lists, as footprint.MAX_OPS counts them (_layer_ops)."""
    return _layer_ops(analysis, training, device)[1]


def _layer_ops(analysis: Analysis, training: bool,
               device: str) -> tuple[list[tuple[tuple[Op, ...], tuple[Op, ...]]], int]:
    """Each layer's memory_ops and its ``activation:``'s, listed before anything is replayed, and
    how many: past footprint.MAX_OPS in all (each layer counting at least one: its step of the
    replay, an op's alternatives theirs) the replay is refused, at the layer that crosses it."""
    listed, count = [], 0
    for stats in analysis.layers:
        layer, x, y = stats.layer, stats.input_shape, stats.output_shape
        try:
            ops = tuple(layer.memory_ops(x, y, training, device)) if len(stats.node.outputs) == 1 else ()
            activation = (tuple(lookup(layer.activation).from_args({}).memory_ops(y, y, training, device))
                          if layer.activation else ())
            count += max(1, len(activation) + sum(max(len(op.if_channels_first), len(op.if_channels_last), 1)
                                                  for op in ops))
            if count > MAX_OPS:
                raise too_many_ops(f"the layers up to this one run {count:,}")
        except SpecError as exc:
            raise exc.located(stats.node.location_of(exc.field), stats.name) from None
        listed.append((ops, activation))
    return listed, count


def _half_bytes(analysis: Analysis, mixed_precision: str | None) -> int:
    """Bytes per element of autocast's 16-bit dtype; 0 without mixed precision."""
    if mixed_precision is None:
        return 0
    if mixed_precision not in MIXED_PRECISION:
        raise SpecError(f"unknown mixed precision {mixed_precision!r}", hint="one of " + ", ".join(MIXED_PRECISION))
    if analysis.dtype != "float32":
        raise SpecError(f"mixed precision keeps float32 master weights, but the dtype is {analysis.dtype}",
                        hint="leave --dtype at float32 with --mixed-precision")
    return DTYPE_BYTES[MIXED_PRECISION[mixed_precision]]


def _compute_bytes(op: Op, reads: list[_Tensor], size: int, half: int) -> int:
    """Bytes per element the op computes in: the dtype; under autocast its list's dtype (16-bit,
    float32), else that of the widest floating tensor it reads (type promotion)."""
    if not half:
        return size
    if op.autocast == LOWER:
        return half
    if op.autocast == FLOAT32:
        return DTYPE_BYTES["float32"]
    return max((t.itemsize for t in reads), default=0) or size   # token ids: the weights' dtype


def _cast(replay: _Replay, recorded: list[_Recorded], layer: str, tensor: _Tensor, itemsize: int, training: bool) -> _Tensor:
    """autocast's copy of ``tensor`` in ``itemsize``-byte numbers (the tensor itself when it is already)."""
    if not tensor.itemsize or tensor.itemsize == itemsize:
        return replay.hold(tensor)
    copy = replay.like(tensor, "activations", itemsize)
    copy.requires_grad, copy.strided = training and tensor.requires_grad, tensor.strided   # (it keeps the strides)
    if copy.requires_grad:   # its backward casts the gradient back to the tensor's dtype
        recorded.append(_Recorded(layer, Op(copy.sample), [tensor], copy, []))
    return copy


def _copy(replay: _Replay, recorded: list[_Recorded], layer: str, tensor: _Tensor) -> _Tensor:
    """A contiguous copy of a strided ``tensor`` (clone); its backward passes the gradient on."""
    copy = replay.like(tensor, "activations")
    copy.requires_grad = tensor.requires_grad
    if copy.requires_grad:
        recorded.append(_Recorded(layer, Op(None, gradient="view"), [tensor], copy, []))
    return copy


def _weight_copies(replay: _Replay, cache: dict[str, list[_Tensor]], owner: LayerStats, half: int,
                   op: Op, position: int) -> list[_Tensor]:
    """autocast's 16-bit copies of ``owner``'s parameters, made once per forward (its cache):
    [the weights, the biases] (a layer's biases: the tensors named bias...); an op that uses its
    own share of them (Op.weights a number: a recurrent layer's) casts that share when it runs.
    A frozen layer's are not cached: made at each use, they go after it unless the op saves
    them (the caller's).

    In a checkpointed segment's forward a copy the cache already held (its weights shared with a
    layer before the segment) is logged as made: the rerun runs in an autocast region of its own
    (torch.utils.checkpoint enters autocast again with the forward's settings), whose cache starts
    empty, so it casts them again; its cache is emptied when the rerun ends (or stops early), and
    only what an op saved is kept."""
    key = owner.name if op.weights is True else f"{owner.name}:{position}"
    if key in cache and replay.log is not None:
        for copy in cache[key]:
            if not any(event[0] == "new" and event[1] is copy for event in replay.log):
                replay.log.append(("new", copy, replay.layer))
    if key in cache:
        return cache[key]
    if op.weights is not True:   # its bias (Op.bias) cast apart
        copies = [replay.allocate(elements * half, 0, "weights", itemsize=half)
                  for elements in (op.weights - op.bias, op.bias) if elements]
    else:
        tensors = owner.layer.tensors(owner.input_shape) if owner.params else {}
        biases = sum(prod(shape) for name, shape in tensors.items() if name.startswith("bias"))
        copies = [replay.allocate((owner.params - biases) * half, 0, "weights", itemsize=half)]
        if biases:
            copies.append(replay.allocate(biases * half, 0, "weights", itemsize=half))
    if owner.trainable_params and not op.uncached:   # autocast caches only parameters that need a gradient
        cache[key] = copies
    return copies


def _token_ids(shape: Shape) -> bool:
    """A sequence of token ids (an embedding's input), which PyTorch holds as int64."""
    return isinstance(shape, Steps) and len(shape) == 1


def _bytes(tensor: Tensor | Workspace, dtypes: dict[str, int], batch: int, half: int,
           compute: int) -> tuple[int, int]:
    """(fixed, per sample) bytes of a footprint.Tensor (``half``: autocast's bytes per number, 0
    without; ``compute``: the op's), or of a Workspace (its line through the exact bytes at
    ``batch``, with the slope of its regions)."""
    if isinstance(tensor, Workspace):
        slope = tensor.slope(dtypes)
        return tensor.bytes(batch, dtypes) - slope * batch, slope
    dtype = tensor.dtype
    if half and tensor.autocast:
        dtype = tensor.autocast
    if half and compute > half and tensor.cast:
        dtype = tensor.cast
    total = tensor.elements * dtypes[dtype]
    return (0, total) if tensor.batched else (total, 0)


def _last_reads(ops: list[Op]) -> list[int | None]:
    """Per op, the position of the last op of the layer that reads its output (or that its
    ``lingers`` keeps it for); None for the last op, whose output is the layer's value."""
    ends: list[int | None] = [position + max(op.lingers, 0) for position, op in enumerate(ops)]
    for position, op in enumerate(ops):
        sources = op.reads if op.reads is not None else (() if position == 0 else (position - 1,))
        for source in sources:
            if isinstance(source, int):
                ends[source] = max(ends[source] or 0, position)
    if ops:
        ends[-1] = None
    return [None if end is None else min(end, len(ops) - 1) for end in ends]


def _backward(replay: _Replay, recorded: list[_Recorded], outputs: list[_Tensor],
              loss_bytes: int) -> tuple[list[str], int, list[str]]:
    """The backward pass (see the module); returns what checkpointed segments' reruns computed
    again (_Frame.recompute), summed."""
    replay.phase, replay.layer = "backward", ""
    rerun: list[str] = []
    skipped = 0
    cut: list[str] = []
    ones = replay.allocate(loss_bytes, 0, "transient")     # its gradient; each output's is a view of it
    ones.layout = EXPANDED
    grads: dict[int, _Tensor] = {}
    for output in outputs:
        if output.requires_grad and _accumulate(replay, grads, output, replay.hold(ones)):
            replay.drop(ones)   # an output named twice: its two views of ones added
    replay.drop(ones)
    accumulated: dict[Any, list[_Tensor]] = {}   # per parameter set, its gradients (a shared weight's later ones add into them)
    uses = Counter(entry.weights for entry in recorded if entry.weight_bytes)   # gradients each set still awaits
    halves: dict[Any, _Tensor] = {}   # under autocast, per shared parameter set: its 16-bit gradients summed so far
    casts = Counter(entry.weights for entry in recorded if entry.weight_bytes and entry.cast)   # uses of its 16-bit copy
    for entry in reversed(recorded):
        if entry.layer != replay.layer:
            replay.layer = entry.layer
            replay.mark()
        if entry.parts:
            _join_parts(replay, grads, entry)
            continue
        gradient = grads.pop(id(entry.output), None)
        if gradient is None:  # nothing downstream reaches the loss
            for tensor in entry.saved:
                replay.drop(tensor)
            if entry.frame is not None:
                entry.frame.unpacked(replay, entry)
            continue
        if entry.frame is not None and not entry.frame.recomputed:   # its saved tensors unpacked: the rerun
            layers, macs, unknown = entry.frame.recompute(replay)
            rerun += layers
            skipped += macs
            cut += unknown
        first, before = entry.op.releases or (0, 0)
        for tensor in entry.saved[:first]:   # a recurrence's first step frees what it saved before its weights' gradients
            replay.drop(tensor)
        contiguous = [replay.like(entry.output, "transient")] if _copies_gradient(replay, entry.op, gradient) \
            and entry.op.gradient != "view" else []   # grad.contiguous() in its backward formula
        computed = None   # under autocast the weights' gradients come out in 16 bits first
        shared: list[_Tensor] = []   # a shared weight's later gradients, added when the node passes them on
        if entry.weight_bytes and entry.cast and not entry.op.float32_gradients:
            computed = replay.allocate(entry.weight_bytes // 4 * entry.cast, 0, "transient")
        elif entry.weight_bytes and not entry.cast:
            shared = _weight_gradients(replay, entry, accumulated)
        for tensor in entry.saved[first:before]:   # and the next steps before their peak
            replay.drop(tensor)
        scratch = [replay.like(entry.output, "transient") for _ in range(entry.op.scratch)]
        scratch += [replay.allocate(fixed, sample, "transient") for fixed, sample in entry.temporaries]
        if entry.op.releases is not None:
            for tensor in entry.saved[before:]:
                replay.drop(tensor)
            entry.saved = []
        computed_inputs = []
        for tensor in entry.reads:
            if tensor.requires_grad:
                computed_inputs.append((tensor, _input_gradient(replay, entry, tensor, gradient)))
            elif entry.op.gradient == "always":
                replay.drop(replay.like(tensor, "transient"))
        if entry.cast and entry.op.float32_gradients:   # the engine casts the kernel's float32 gradients in turn
            first = len(scratch) - len(entry.temporaries)
            wide = scratch[first:first + entry.op.float32_gradients]
            del scratch[first:first + entry.op.float32_gradients]
            computed = _cast_in_turn(replay, wide, entry.cast)
        for tensor in [gradient, *contiguous, *scratch, *entry.saved]:
            replay.drop(tensor)
        # the engine passes them on to the next nodes once this node has freed what it saved and its
        # output's gradient: the inputs' gradients, then the parameters' (their order in the kernel's outputs)
        added = [new for tensor, new in computed_inputs if _accumulate(replay, grads, tensor, new)]
        if shared:
            _add_weight_gradients(replay, entry, accumulated)
        for tensor in added + shared:
            replay.drop(tensor)
        if entry.weight_bytes and not entry.cast:
            _complete(replay, entry, accumulated, uses)
        if entry.frame is not None:
            entry.frame.unpacked(replay, entry)
        if entry.weight_bytes and entry.cast:   # their cast to float32 runs in a node of its own, after this one freed what it saved
            if computed is None:   # (a kernel that returned them in float32: their 16-bit casts, now)
                computed = replay.allocate(entry.weight_bytes // 4 * entry.cast, 0, "transient")
            _cast_weight_gradients(replay, entry, computed, accumulated, uses, casts, halves)
    for gradient in grads.values():
        replay.drop(gradient)
    replay.layer = ""
    replay.mark()
    return rerun, skipped, cut


def _cast_in_turn(replay: _Replay, wide: list[_Tensor], half: int) -> _Tensor:
    """A kernel's float32 gradients cast to its 16-bit inputs' dtype as the engine validates them,
    one after the other, each float32 one freed once cast: the input's (its cast is the input's
    gradient, already made), then the weights'; returns their 16-bit gradients, as one tensor."""
    replay.drop(wide[0])
    casts = []
    for tensor in wide[1:]:
        casts.append(replay.allocate(tensor.fixed * half // 4, tensor.sample * half // 4, "transient"))
        replay.drop(tensor)
    for tensor in casts:
        replay.drop(tensor)
    return replay.allocate(sum(t.fixed for t in casts), sum(t.sample for t in casts), "transient")


def _copies_gradient(replay: _Replay, op: Op, gradient: _Tensor) -> bool:
    """Whether ``op``'s backward first copies ``gradient`` (a reshape that cannot view it). At a
    batch of 1 a batch_copy op's reshape merges the batch with the positions, a view unless the
    gradient's positions lie out of order in memory (permuted back by a permute's backward)."""
    if gradient.layout not in op.copies_gradient:
        return False
    if replay.batch == 1 and op.batch_copy:
        positions = [axis for axis in gradient.order if axis]   # axis 0: the channels
        return positions != sorted(positions)
    return True


def _permuted(tensor: _Tensor, dims: tuple[int, ...]) -> tuple[int, ...]:
    """The memory order of ``tensor`` permuted by ``dims`` (its axes, outermost first); () where
    it is not known (a tensor strided otherwise)."""
    if tensor.strided and not tensor.order:
        return ()
    before = tensor.order or ((*range(1, len(dims)), 0) if tensor.layout == CHANNELS_LAST else tuple(range(len(dims))))
    return tuple(dims.index(axis) for axis in before)   # the same memory, in the output's axes


def _input_gradient(replay: _Replay, entry: _Recorded, tensor: _Tensor, gradient: _Tensor) -> _Tensor:
    """The gradient ``entry``'s backward passes to ``tensor``, which it read: the output's own (a
    view), a permuted view of it, a contiguous copy of it (a reshape that cannot view it), or a
    new tensor laid out as ``tensor`` (or as the op says)."""
    if entry.op.gradient != "view" or _copies_gradient(replay, entry.op, gradient) \
            or gradient.itemsize not in (0, tensor.itemsize):   # a view of it cast to another dtype by the engine
        # (validate_outputs: a 16-bit term of a float32 sum under autocast): a new tensor
        new = (replay.like(entry.output, "transient", tensor.itemsize) if entry.op.converts and entry.op.gradient != "view"
               else replay.like(tensor, "transient"))
        new.layout = entry.op.gradient_layout or (new.layout if entry.op.gradient != "view" else PLAIN)
        return new
    if not entry.op.permuted or gradient.layout == EXPANDED:
        return replay.hold(gradient)
    dims = entry.op.permuted   # the gradient permuted back: its memory order composed as the forward's (_permuted)
    plain, channels_last = tuple(range(len(dims))), (*range(1, len(dims)), 0)
    before = {PLAIN: plain, CHANNELS_LAST: channels_last}.get(gradient.layout, gradient.order)
    permuted = replay.view(gradient, gradient.fixed, gradient.sample)
    permuted.order = tuple(dims[axis] for axis in before) if before else ()   # in the input's axes
    permuted.layout = {plain: PLAIN, channels_last: CHANNELS_LAST}.get(permuted.order, STRIDED)
    return permuted


def _join_parts(replay: _Replay, grads: dict[int, _Tensor], entry: _Recorded) -> None:
    """A split's backward: zeros for each part no gradient reached, then the parts' gradients
    joined into a new gradient of the input (split_with_sizes_backward)."""
    gradients = [grads.pop(id(part), None) for part in entry.parts]
    if any(gradient is not None for gradient in gradients):
        zeros = [replay.like(part, "transient") for part, gradient in zip(entry.parts, gradients) if gradient is None]
        whole = entry.reads[0]
        joined = replay.like(whole, "transient")
        if _accumulate(replay, grads, whole, joined):
            replay.drop(joined)
        for tensor in [*zeros, *(gradient for gradient in gradients if gradient is not None)]:
            replay.drop(tensor)


def _weight_gradients(replay: _Replay, entry: _Recorded, accumulated: dict[Any, list[_Tensor]]) -> list[_Tensor]:
    """The op's parameter gradients in the master dtype, one tensor per parameter: kept (each
    parameter's AccumulateGrad node takes it as .grad). A shared weight's later gradients are
    returned: the engine adds them to the earlier ones when the node passes its outputs on
    (_add_weight_gradients)."""
    kind = "transient" if entry.weights in accumulated else "gradients"
    parts = [replay.allocate(part, 0, kind) for part in entry.weight_parts]
    if kind == "transient":
        return parts
    accumulated[entry.weights] = parts
    return []


def _cast_weight_gradients(replay: _Replay, entry: _Recorded, computed: _Tensor, accumulated: dict[Any, list[_Tensor]],
                           uses: Counter[Any], casts: Counter[Any], halves: dict[Any, _Tensor]) -> None:
    """Under autocast, ``entry``'s 16-bit weight gradients (``computed``) reach the node that casts
    autocast's cached weight copy back to float32: one node per parameter set, however many ops
    use the copy (a shared weight's: ``casts`` counts them). Its input buffer adds each later use's
    gradients to the earlier (out of place, as _accumulate); with the last the cast runs once: the
    float32 gradients (_weight_gradients), the 16-bit sum freed. A use of the float32 parameter
    itself (an embedding whose weight a dense layer shares) does not wait for it: when its
    gradients came first, the cast ones are added to them in the parameter's buffer."""
    earlier = halves.pop(entry.weights, None)
    if earlier is not None:
        summed = replay.allocate(earlier.fixed, 0, "transient")
        replay.drop(earlier)
        replay.drop(computed)
        computed = summed
    casts[entry.weights] -= 1
    if casts[entry.weights]:   # more uses of the copy to come (earlier in the forward): the cast waits for them
        uses[entry.weights] -= 1
        halves[entry.weights] = computed
        return
    shared = _weight_gradients(replay, entry, accumulated)
    replay.drop(computed)
    if shared:
        _add_weight_gradients(replay, entry, accumulated)
        for tensor in shared:
            replay.drop(tensor)
    _complete(replay, entry, accumulated, uses)


def _add_weight_gradients(replay: _Replay, entry: _Recorded, accumulated: dict[Any, list[_Tensor]]) -> None:
    """A shared weight's later gradients added to the earlier in its AccumulateGrad node's buffer,
    each into a new tensor (out of place, as _accumulate), parameter by parameter."""
    earlier = accumulated[entry.weights]
    for index, old in enumerate(earlier):
        earlier[index] = replay.allocate(old.fixed, 0, "gradients")
        replay.drop(old)


def _complete(replay: _Replay, entry: _Recorded, accumulated: dict[Any, list[_Tensor]], uses: Counter[Any]) -> None:
    """``entry``'s parameters have received one more gradient; with the last, their AccumulateGrad
    nodes run (next: they come first in the engine's queue) and take them as .grad, copying a
    weight gradient laid out otherwise than the weight (Op.copied_weight) into a new tensor."""
    uses[entry.weights] -= 1
    parts = accumulated[entry.weights]
    if uses[entry.weights] == 0 and entry.copied_weight and parts[0].fixed == entry.copied_weight:
        copy = replay.allocate(entry.copied_weight, 0, "gradients")
        replay.drop(parts[0])
        parts[0] = copy


def _accumulate(replay: _Replay, grads: dict[int, _Tensor], tensor: _Tensor, gradient: _Tensor) -> bool:
    """A gradient for ``tensor``; a second one is added to the first into a new tensor, and the
    first is freed. The engine (InputBuffer::accumulate) adds in place only into a plain tensor
    whose buffer holds the only reference, and no tensor is plain while a dispatch mode runs
    (isTensorSubclassLike): under the measuring tracker (backend/memtrack.py) every addition is
    out of place (a plain run adds in place where it can: one gradient less at that moment).
    Returns whether ``gradient`` was added: the engine's list of the node's outputs holds it
    until the node has passed them all on (the caller frees it then)."""
    earlier = grads.get(id(tensor))
    if earlier is None:
        grads[id(tensor)] = gradient
        return False
    summed = grads[id(tensor)] = replay.like(tensor, "transient")   # laid out as the first operand that has strides
    summed.layout = next((term.layout for term in (earlier, gradient) if term.layout != EXPANDED), PLAIN)
    replay.drop(earlier)
    return True


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


@dataclass(frozen=True)
class MaxBatch:
    """The largest batches whose peaks fit in ``budget`` bytes (0: not even one sample); with
    checkpointed segments, the training step's with them (``checkpointed``, None without); on
    several GPUs (``sharding``: strategy, gpus), the largest global batch whose per-GPU peak fits
    (``sharded``, a multiple of the GPUs; None on one)."""

    budget: int
    inference: int
    training: int
    optimizer: str
    mixed_precision: str | None
    device: str
    checkpointed: int | None = None
    segments: int = 0
    sharded: int | None = None
    sharding: tuple[str, int] | None = None


def max_batch(analysis: Analysis, budget: int, optimizer: str = "adam", mixed_precision: str | None = None,
              device: str = "cuda", checkpoint: tuple[tuple[str, ...], ...] = (),
              sharding: dict[str, Any] | None = None) -> MaxBatch:
    """The largest inference and training batches for a memory budget (Schedule.max_batch), the
    training step's with ``checkpoint``'s segments when there are any, and with ``sharding``
    (sharded_memory's strategy, gpus, shard_units) the largest global batch per GPU
    (sharding.max_global_batch)."""
    def fits(training: bool, segments: tuple[tuple[str, ...], ...] = ()) -> int:
        return schedule(analysis, training=training, optimizer=optimizer, device=device,
                        mixed_precision=mixed_precision, checkpoint=segments).max_batch(budget)
    sharded = None
    if sharding is not None:
        from .sharding import max_global_batch
        sharded = max_global_batch(analysis, budget, optimizer=optimizer, mixed_precision=mixed_precision,
                                   device=device, **sharding)
    return MaxBatch(budget, fits(False), fits(True), optimizer, mixed_precision, device,
                    fits(True, checkpoint) if checkpoint else None, len(checkpoint), sharded,
                    (sharding["strategy"], sharding["gpus"]) if sharding is not None else None)
