"""Training on N GPUs: per-GPU memory and communication under data parallelism and ZeRO/FSDP sharding.

Model states, for Psi trainable parameters (Rajbhandari et al., "ZeRO: Memory Optimizations Toward
Training Trillion Parameter Models", SC20, section 3.1 and Figure 1):
- mixed precision (bf16/fp16), as ZeRO and DeepSpeed hold it: 16-bit weights (2 Psi bytes), 16-bit
  gradients (2 Psi) and K bytes of optimizer state per parameter, all fp32: the master weights (4)
  and the optimizer's own states (4 each), K = 4 + 4 x states: Adam 12, momentum 8, SGD 4.
  (torch.autocast keeps fp32 weights and gradients instead: that is inspect --train's model.)
- no mixed precision, s bytes per number (the dtype): weights s Psi, gradients s Psi, optimizer
  state s x states x Psi (Adam 2).
Frozen parameters are weights only (16-bit under mixed precision); buffers stay replicated in the
dtype (fp32 under mixed precision) under every strategy.

Per GPU, for N GPUs:
  none   one GPU holds everything (N = 1)
  ddp    every GPU a full replica; DDP also keeps its gradient buckets, a flat copy of the gradients
         (gradient_as_bucket_view=False, PyTorch's default), filled bucket by bucket: the first
         bucket up to 1 MiB, the others up to bucket_cap_mb = 25 MiB, parameters in reverse order
  zero1  optimizer state / N                       (ZeRO stage 1, P_os)
  zero2  optimizer state and gradients / N         (stage 2, P_os+g)
  fsdp   weights, gradients and optimizer state / N (stage 3, P_os+g+p), plus what FSDP2 gathers
         and reduces moment by moment (below)
How a shard divides: ZeRO flattens the parameters into one buffer padded to a multiple of N, so
each GPU holds ceil(Psi/N) elements (zero1, zero2). fsdp follows PyTorch's FSDP2 (fully_shard,
what ``archcalc run --shard fsdp`` runs): each parameter tensor is split on its first axis as
torch.chunk splits it, every rank storing ceil(d0/N) rows (padded), rank r's to_local() the rows
that remain for it. When every first axis divides by N the two agree: the ZeRO paper's figures.

fsdp, moment by moment: PyTorch's FSDP2 (torch/distributed/fsdp/_fully_shard/, torch 2.13), as
``archcalc run`` wraps the network: fully_shard on each unit (``units``), then on the root, which
holds the layers in no unit. A unit's "whole" size is N padded shards, N x sum of ceil(d0/N) x
(the other axes) over its tensors, in the weight dtype; every buffer below has that size.
_FSDPReplay replays these hooks over the memory schedule's moments and marks (the live bytes as
each layer begins, forward and backward, and as each pass ends):
  root pre-forward    the root's all-gather output, then its unsharded parameters (copied out of
                      it); the root is never resharded after forward (_lazy_init sets its
                      post_forward_mesh_info to None), so they stay until its post-backward
  unit pre-forward    its all-gather output is allocated while the previous one (the root's, or
                      the previous unit's) is still kept for implicit prefetching (comm_ctx.
                      all_gather_state), which the copy-out then frees; then the unsharded
                      parameters. post-forward frees them (reshard_after_forward) but not the
                      all-gather output, which the root's post-forward frees after the last unit
  root pre-backward   (a hook on the network's output) prefetches the last unit: its all-gather
                      output waits for that unit's pre-backward
  unit pre-backward   the copy-out into unsharded parameters, then the all-gather output freed at
                      once (backward keeps none), then the previous unit in forward order
                      prefetched (_backward_prefetch): its all-gather output
  unit post-backward  (when autograd has the gradients of the unit's inputs: for a unit whose
                      inputs autograd does not track, the network's first, at the end) reshard;
                      free the previous unit's reduce-scatter input (reduce_scatter_states keeps
                      one); allocate this one's, N padded shards of the trainable tensors in the
                      gradient dtype, copy the whole gradients (autograd's .grad of the unsharded
                      parameters, made as the schedule makes them) into it and free them, all but
                      the last tensor's, which foreach_reduce's loop variable holds until it
                      returns; allocate the reduce-scatter output, one padded shard, which stays as
                      the sharded gradients; gloo (on CPU) reduces a clone of its input with an
                      all-reduce and copies the rank's chunk out: one more such buffer meanwhile
  final callback      the post-backward of the root and of the units autograd did not reach, the
                      last reduce-scatter input freed

Activations per GPU: the memory schedule's (analysis/schedule.py) training step at the per-GPU
batch = batch / N (``activity``): at each moment of its forward and backward passes, the input,
the activations alive and the transient gradients, beside the share of the parameter gradients
made so far; the moment where these and the model states peak together is the step's. The
optimizer step's temporaries, as torch.optim's default implementation makes them: Adam and AdamW
on CUDA (foreach) one the size of every parameter held, on CPU (tensor by tensor) two the size
of one tensor (sqrt(v) and its division) while the previous tensor's denominator is still
alive, the most over the tensors in order, and a 4-byte step counter per tensor; SGD, with or
without momentum, none (in place).

The per-GPU peak is the largest of three moments of a step (gradients set to None before it, as
zero_grad does by default; DDP's buckets at every moment):
  forward and backward  weights, optimizer state, and the most at any moment of the passes of the
                    schedule's activations and transient gradients with the parameter gradients
                    held then (their share of the shard; under fsdp the whole gradients of the
                    units not yet reduce-scattered and the shards of the others) and FSDP's
                    unsharded parameters and buffers then
  end of backward   weights, optimizer state, gradients, what the passes leave (the batch, the
                    network's outputs and the loss, which the training loop still holds)
  optimizer step    weights, optimizer state, gradients, what the passes leave, the step's temporaries
                    (FSDP's units are resharded by then)

Communication per step, bytes each GPU sends (and receives as many), a ring algorithm:
  all-reduce 2(N-1)/N x payload; reduce-scatter and all-gather (N-1)/N x payload
  ddp        all-reduce of the gradients
  zero1/2    reduce-scatter of the gradients, all-gather of the updated parameters (ZeRO's 2 Psi)
  fsdp       all-gather of the parameters in forward and again in backward (all but the root's,
             which stays gathered), reduce-scatter of the gradients (ZeRO's 3 Psi)
Gradients travel in the gradient dtype, parameters in the weight dtype. Compute per step: the
training FLOPs of one GPU's batch, 3 x the forward FLOPs (the backward pass computes the gradients
of the inputs and of the weights, each about one forward: Kaplan et al. 2020's 6 FLOPs per
parameter per token).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from math import prod
from typing import Any, NamedTuple

from ..choices import DTYPE_BYTES, MIXED_PRECISION, OPTIMIZER_STATES
from ..errors import SpecError
from ..layers.arguments import closest
from .walk import Analysis, LayerStats

STRATEGIES = ("none", "ddp", "zero1", "zero2", "fsdp")
MASTER_BYTES = DTYPE_BYTES["float32"]
DDP_FIRST_BUCKET = 1024 * 1024         # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES
DDP_BUCKET_CAP = 25 * 1024 * 1024      # DistributedDataParallel(bucket_cap_mb=25), in MiB
TRAINING_FLOPS_FACTOR = 3              # forward + backward (inputs' and weights' gradients)
ShapeCount = tuple[tuple[int, ...], int]   # a parameter tensor's shape, and how many tensors have it


@dataclass(frozen=True)
class Precision:
    """Bytes per number of each model state."""

    weight: int          # the weights the forward reads (16-bit under mixed precision)
    gradient: int
    optimizer: int       # K: optimizer bytes per trainable parameter (master weights included)
    buffer: int
    name: str            # 'float32', 'mixed bf16'


def precision(dtype: str, optimizer: str, mixed_precision: str | None) -> Precision:
    """The bytes of each state (see the module's model)."""
    if optimizer not in OPTIMIZER_STATES:
        raise SpecError(f"unknown optimizer {optimizer!r}", hint="one of " + ", ".join(OPTIMIZER_STATES))
    states = OPTIMIZER_STATES[optimizer]
    if mixed_precision is None:
        size = DTYPE_BYTES[dtype]
        return Precision(size, size, size * states, size, dtype)
    if mixed_precision not in MIXED_PRECISION:
        raise SpecError(f"unknown mixed precision {mixed_precision!r}", hint="one of " + ", ".join(MIXED_PRECISION))
    if dtype != "float32":
        raise SpecError(f"mixed precision keeps float32 master weights, but the dtype is {dtype}",
                        hint="leave --dtype at float32 with --mixed-precision")
    half = DTYPE_BYTES[MIXED_PRECISION[mixed_precision]]
    return Precision(half, half, MASTER_BYTES * (1 + states), MASTER_BYTES, f"mixed {mixed_precision}")


def shard(elements: int, gpus: int) -> int:
    """ZeRO's share of a flat buffer of ``elements``: ceil(elements / N), the last GPU's padded."""
    return -(-elements // gpus)


def chunk_rows(rows: int, gpus: int, rank: int) -> int:
    """Rows of a first axis of ``rows`` that torch.chunk (FSDP2's Shard(0)) gives ``rank``:
    chunks of ceil(rows/N), the last ones shorter or empty."""
    size = -(-rows // gpus)
    return max(0, min(size, rows - rank * size))


def fsdp_elements(shapes: Iterable[ShapeCount], gpus: int, rank: int | None = None) -> int:
    """Elements of FSDP2's shards of the parameter tensors ``shapes`` ((shape, count), ...): what
    ``rank``'s to_local() holds, or, for rank None, what every rank stores (padded: ceil(d0/N) rows)."""
    total = 0
    for shape, count in shapes:
        rows, rest = shape[0], prod(shape[1:])
        held = -(-rows // gpus) if rank is None else chunk_rows(rows, gpus, rank)
        total += count * held * rest
    return total


@dataclass(frozen=True)
class Unit:
    """A group of consecutive layers whose parameters FSDP gathers at once."""

    name: str
    layers: tuple[str, ...]        # layer names, in spec order
    params: int          # all of their parameters, trainable or frozen
    shapes: tuple[ShapeCount, ...]  # their parameter tensors ((shape, count), ...), in the parameters' order
    trained: tuple[ShapeCount, ...] = ()  # those that train (whose gradients FSDP reduce-scatters)


@dataclass(frozen=True)
class Units:
    """The spec's wrapping units, and the root: the layers in none of them."""

    root: Unit
    units: tuple[Unit, ...]

    def of(self, layer: str) -> Unit:
        return next((unit for unit in self.units if layer in unit.layers), self.root)


def group_label(entry: tuple[str, int]) -> str:
    """A repeat's iteration 'block3[2]', or a block instance 'basic1'."""
    label, iteration = entry
    return f"{label}[{iteration}]" if iteration else label


def units(analysis: Analysis, names: tuple[str, ...] = ()) -> Units:
    """The wrapping units: by default each layer's innermost repeat iteration or block instance;
    with ``names``, the repeats and block instances so named (each iteration of a repeat a unit) and
    the layers so named. Layers in no unit belong to the root. A name that is none of those raises."""
    keys = []
    if names:
        labels = {entry[0] for stats in analysis.layers for entry in stats.node.group}
        layer_names = {stats.name for stats in analysis.layers}
        for name in names:
            if name not in labels and name not in layer_names:
                raise SpecError(f"--shard-unit {name!r} is not a repeat, block or layer of this spec",
                                hint=closest(name, sorted(labels | layer_names)) or
                                "name a repeat, a block instance or a layer")
        for stats in analysis.layers:
            group = stats.node.group
            depth = next((i for i, entry in enumerate(group) if entry[0] in names), None)
            keys.append(group[:depth + 1] if depth is not None
                        else (stats.name,) if stats.name in names else None)
    else:
        keys = [stats.node.group or None for stats in analysis.layers]
    runs: list[list[Any]] = []   # [key, [stats, ...]] for each maximal run of equal keys (a mutable pair)
    for key, stats in zip(keys, analysis.layers):
        if runs and runs[-1][0] == key:
            runs[-1][1].append(stats)
        else:
            runs.append([key, [stats]])
    root: list[LayerStats]
    found: list[Unit]
    seen: dict[str, int]
    root, found, seen = [], [], {}
    for key, members in runs:
        if key is None:
            root += members
            continue
        name = members[0].name if isinstance(key[-1], str) else group_label(key[-1])
        seen[name] = seen.get(name, 0) + 1
        found.append(_unit(f"{name}#{seen[name]}" if seen[name] > 1 else name, members))
    return Units(_unit("root", root), tuple(found))


def _unit(name: str, members: list[LayerStats]) -> Unit:
    shapes = tuple(pair for stats in members for pair in tensor_shapes(stats))
    trained = tuple(pair for stats in members for pair in tensor_shapes(stats, trained=True))
    return Unit(name, tuple(stats.name for stats in members), sum(stats.params for stats in members), shapes, trained)


@dataclass(frozen=True)
class Collective:
    """One collective of a step: ``payload`` bytes in all; each GPU sends ``factor`` x payload."""

    name: str            # 'all-reduce', 'all-gather', 'reduce-scatter'
    what: str            # 'gradients', 'parameters (forward)'
    payload: int
    factor: Fraction

    @property
    def bytes(self) -> int:
        """Bytes each GPU sends (and receives), rounded up."""
        return -(-self.payload * self.factor.numerator // self.factor.denominator)


def ring_factor(collective: str, gpus: int) -> Fraction:
    """A ring's bytes sent per GPU, per byte of payload: all-reduce 2(N-1)/N, the others (N-1)/N."""
    return Fraction(2 * (gpus - 1) if collective == "all-reduce" else gpus - 1, gpus)


@dataclass(frozen=True)
class ShardedMemory:
    """Per-GPU memory and communication of one training step; every figure in bytes."""

    strategy: str
    gpus: int
    batch: int                # the global batch
    precision: Precision
    optimizer: str
    trainable_params: int
    weight_bytes: int         # parameters held (the shard) + buffers
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int     # at the per-GPU batch, at the passes' peak: input, activations, transient
    live_gradient_bytes: int  # the parameter gradients held at that moment
    gathered_bytes: int       # fsdp: unsharded parameters and communication buffers at that moment
    gathered_units: tuple[str, ...]  # whose they are
    bucket_bytes: int         # ddp: the gradient buckets
    buckets: int
    collectives: tuple[Collective, ...]
    flops: int                # training FLOPs of one GPU's batch, per step
    kept_bytes: int           # what the passes leave at the per-GPU batch: the batch, the outputs, the loss
    step_bytes: int           # the optimizer step's temporaries
    device: str               # whose optimizer implementation: 'cuda' or 'cpu'
    passes: tuple[Line, ...] = ()  # every moment of the forward and backward passes (the peak is one of them)

    @property
    def gpu_batch(self) -> int:
        return self.batch // self.gpus

    @property
    def model_state_bytes(self) -> int:
        """Weights, gradients and optimizer state: the ZeRO paper's Figure 1."""
        return self.weight_bytes + self.gradient_bytes + self.optimizer_bytes

    def moments(self) -> dict[str, int]:
        """{moment: bytes} of the three moments of a step (see the module's model)."""
        states = self.model_state_bytes + self.bucket_bytes
        return {"forward and backward": states - self.gradient_bytes + self.live_gradient_bytes + self.gathered_bytes
                + self.activation_bytes,
                "end of backward": states + self.kept_bytes,
                "optimizer step": states + self.kept_bytes + self.step_bytes}

    @property
    def total_bytes(self) -> int:
        """The per-GPU peak: the largest moment."""
        return max(self.moments().values())

    @property
    def peak_moment(self) -> str:
        moments = self.moments()
        return max(moments, key=moments.__getitem__)

    def terms(self) -> dict[str, int]:
        """{term: bytes}, in the order they are printed."""
        return {"weights": self.weight_bytes, "gradients": self.gradient_bytes,
                "optimizer state": self.optimizer_bytes, "activations": self.activation_bytes,
                "gathered units": self.gathered_bytes, "gradient buckets": self.bucket_bytes,
                "optimizer step": self.step_bytes}

    @property
    def communication_bytes(self) -> int:
        return sum(collective.bytes for collective in self.collectives)

    def communication_seconds(self, bandwidth: int) -> float:
        """At ``bandwidth`` bytes per second per GPU."""
        return self.communication_bytes / bandwidth

    def compute_seconds(self, throughput: int) -> float:
        """At ``throughput`` FLOPs per second per GPU."""
        return self.flops / throughput


def model_states(params: int, strategy: str, gpus: int, states: Precision) -> tuple[int, int, int]:
    """(weights, gradients, optimizer state) bytes per GPU for ``params`` trainable parameters,
    divided as ZeRO divides them (ceil(Psi/N) elements each): the ZeRO paper's Figure 1."""
    check_strategy(strategy, gpus)
    share = shard(params, gpus)
    weights = states.weight * (share if strategy == "fsdp" else params)
    gradients = states.gradient * (share if strategy in ("zero2", "fsdp") else params)
    optimizer = states.optimizer * (params if strategy in ("none", "ddp") else share)
    return weights, gradients, optimizer


def check_strategy(strategy: str, gpus: int) -> None:
    if strategy not in STRATEGIES:
        raise SpecError(f"unknown sharding {strategy!r}", hint="one of " + ", ".join(STRATEGIES))
    if gpus < 1:
        raise SpecError(f"--gpus must be at least 1, got {gpus}")
    if strategy == "none" and gpus > 1:
        raise SpecError(f"--shard none trains on one GPU, but --gpus is {gpus}",
                        hint="--shard ddp replicates the model on every GPU; zero1, zero2 and fsdp shard it")


def step_bytes(optimizer: str, device: str, shapes: tuple[ShapeCount, ...], size: int) -> int:
    """The optimizer step's temporaries over parameter tensors ``shapes`` ((shape, count), ...,
    in the parameters' order) of ``size``-byte numbers (see the module's model): on CPU the most
    of the previous tensor's denominator + two the size of the current one."""
    if optimizer not in ("adam", "adamw") or not shapes:
        return 0
    if device == "cuda":
        return size * sum(prod(shape) * count for shape, count in shapes)
    most, previous = 0, 0
    for shape, count in shapes:
        each = prod(shape)
        most = max(most, previous + 2 * each, 3 * each if count > 1 else 0)
        previous = each
    return size * most


def step_counters(optimizer: str, device: str, shapes: tuple[ShapeCount, ...]) -> int:
    """Adam's step counters on CPU: a float32 scalar tensor per parameter tensor (on CUDA they
    stay in host memory, as the memory schedule counts them)."""
    if optimizer not in ("adam", "adamw") or device != "cpu":
        return 0
    return MASTER_BYTES * sum(count for _, count in shapes)


class Point(NamedTuple):
    """A moment of the memory schedule's passes, or a mark between two layers (where FSDP's hooks
    run): what the sharding model takes from it."""

    phase: str           # 'forward' or 'backward'
    layer: str           # the layer running, or beginning at a mark ('' outside every layer)
    mark: bool
    fixed: int           # input, activations and transient gradients: bytes at batch 0
    sample: int          # and per sample
    gradients: int       # the parameter gradients made by then, whole (the schedule's)


class Line(NamedTuple):
    """One moment of a GPU's passes: bytes beside the weights, optimizer state and buckets."""

    fixed: int           # input, activations and transient gradients at batch 0
    sample: int          # per sample
    gradients: int       # the parameter gradients held
    gathered: int        # fsdp: unsharded parameters and communication buffers
    units: tuple[str, ...] = ()   # whose those are

    def at(self, batch: int) -> int:
        return self.fixed + self.sample * batch + self.gradients + self.gathered


@dataclass(frozen=True)
class Activity:
    """What one GPU's training step holds besides the model states, from the memory schedule: per
    moment of its forward and backward passes (fixed bytes, bytes per sample, the share of the
    parameter gradients made by then), and every moment and mark in order (for FSDP's hooks).
    The one place the sharding model reads the schedule."""

    moments: tuple[tuple[int, int, Fraction], ...]  # ((fixed, per sample, Fraction), ...), each distinct one once
    kept: tuple[int, int]  # what the passes leave (the batch, the outputs, the loss): fixed, per sample
    points: tuple[Point, ...] = ()

    def lines(self, gradients: int) -> tuple[Line, ...]:
        """The moments with ``gradients`` bytes of gradients (the GPU's share) made in proportion."""
        return tuple(Line(fixed, sample, _share(gradients, share), 0) for fixed, sample, share in self.moments)


def _share(total: int, fraction: Fraction) -> int:
    return total * fraction.numerator // fraction.denominator


def activity(analysis: Analysis, mixed_precision: str | None, device: str) -> Activity:
    """The schedule of one training step (SGD: the step's own temporaries are counted apart),
    reduced to its forward and backward moments. Under mixed precision ZeRO's convention
    (DeepSpeed's fp16/bf16) runs the model itself in 16 bits, its inputs, activations and
    gradients too: the schedule of the 16-bit model (its model states are counted apart, by
    ``precision``)."""
    from .schedule import CATEGORIES, Moment, schedule

    if mixed_precision is not None:
        precision(analysis.dtype, "sgd", mixed_precision)   # refuses what ZeRO's convention cannot run
        analysis = dataclasses.replace(analysis, dtype=MIXED_PRECISION[mixed_precision])
    replay = schedule(analysis, training=True, optimizer="sgd", device=device)
    held = [CATEGORIES.index(name) for name in ("input", "activations", "transient")]
    gradient = CATEGORIES.index("gradients")
    total = max((moment.fixed[gradient] for moment in replay.moments), default=0) or 1
    found = {(sum(moment.fixed[i] for i in held), sum(moment.sample[i] for i in held),
              Fraction(moment.fixed[gradient], total))
             for moment in replay.moments if moment.phase != "step"}
    def point(moment: Moment, mark: bool) -> Point:
        return Point(moment.phase, moment.layer, mark, sum(moment.fixed[i] for i in held),
                     sum(moment.sample[i] for i in held), moment.fixed[gradient])

    marks: dict[int, list[Moment]] = {}
    for position, moment in replay.marks:
        marks.setdefault(position, []).append(moment)
    points = []
    for position in range(len(replay.moments) + 1):
        points += [point(mark, True) for mark in marks.get(position, ())]
        if position < len(replay.moments) and replay.moments[position].phase != "step":
            points.append(point(replay.moments[position], False))
    end = points[-1]   # the mark as the backward pass ends
    return Activity(tuple(sorted(found)), (end.fixed, end.sample), tuple(points))


def batch_hint(batch: int, gpus: int) -> str:
    """The multiples of ``gpus`` on either side of ``batch`` (only the one above a batch smaller
    than ``gpus``: 'a batch of 4 or 4' said nothing)."""
    below = batch // gpus * gpus
    return f"a batch of {below} or {below + gpus}" if below else f"a batch of {gpus} (or a multiple of it)"


def ddp_buckets(shapes: tuple[ShapeCount, ...], size: int) -> list[tuple[int, int]]:
    """DDP's bucket sizes in bytes: the gradients in reverse parameter order, a bucket closed once it
    reaches its cap (1 MiB for the first, 25 MiB after), as the Reducer assigns them; as runs
    (bytes, how many buckets in a row have that size). ``count`` equal tensors of b bytes are taken
    a bucket at a time: ceil((cap - filled) / b) of them close the open one, then each full bucket
    holds ceil(cap / b); so 2^63 tensors (a gru of 2^63-1 layers) cost what 2 do."""
    buckets: list[tuple[int, int]] = []
    current = 0

    def close(total: int, times: int = 1) -> None:
        if buckets and buckets[-1][0] == total:
            buckets[-1] = (total, buckets[-1][1] + times)
        else:
            buckets.append((total, times))

    for shape, count in reversed(shapes):
        each = prod(shape) * size
        left = count
        while left and each:
            cap = DDP_FIRST_BUCKET if not buckets else DDP_BUCKET_CAP
            closing = max(1, -(-(cap - current) // each))
            if closing > left:
                break
            close(current + closing * each)
            left -= closing
            current = 0
            per_bucket = max(1, -(-DDP_BUCKET_CAP // each))
            if full := left // per_bucket:
                close(per_bucket * each, full)
                left -= full * per_bucket
        current += left * each
    if current:
        close(current)
    return buckets


@dataclass(frozen=True)
class Layout:
    """What sharding reads of an analysis, computed once: its units and parameter tensors."""

    units: Units
    shapes: tuple[ShapeCount, ...]          # every parameter tensor ((shape, count), ...)
    trained_shapes: tuple[ShapeCount, ...]  # those of the trainable layers


def tensor_shapes(stats: LayerStats, trained: bool = False) -> tuple[ShapeCount, ...]:
    """A layer's parameter tensors ((shape, count), ...): none for a layer that shares another's
    (they are that layer's); with ``trained``, only those it trains (not under trainable: false
    or freeze)."""
    if stats.shares is not None or (trained and not stats.trainable_params):
        return ()
    if trained and stats.node.frozen:
        tensors = stats.layer.tensors(stats.input_shape)
        return tuple(Counter(shape for name, shape in tensors.items() if name not in stats.node.frozen).items())
    return stats.layer.parameter_shapes(stats.input_shape)


def layout(analysis: Analysis, shard_units: tuple[str, ...] = ()) -> Layout:
    def shapes(trained: bool) -> tuple[ShapeCount, ...]:
        return tuple(pair for stats in analysis.layers for pair in tensor_shapes(stats, trained))
    return Layout(units(analysis, shard_units), shapes(False), shapes(True))


def sharded_memory(analysis: Analysis, strategy: str, gpus: int, *, batch: int | None = None,
                   optimizer: str = "adam", mixed_precision: str | None = None, shard_units: tuple[str, ...] = (),
                   shapes: Layout | None = None, device: str = "cuda", rank: int = 0,
                   active: Activity | None = None, backend: str | None = None) -> ShardedMemory:
    """Per-GPU memory and communication of one training step of ``analysis`` on ``gpus`` GPUs under
    ``strategy`` (see the module's model); ``batch`` is the global batch (the analysis's by default),
    ``shapes`` and ``active`` the layout and activity when the caller has them already; ``device``
    whose kernels and optimizer temporaries; ``backend`` torch.distributed's (by default gloo on
    CPU, nccl on CUDA);
    ``rank`` the GPU (under fsdp the first ranks hold the most: the optimizer creates its state
    like the local shard, to_local()'s rows, while the shards themselves are stored padded)."""
    check_strategy(strategy, gpus)
    batch = analysis.batch if batch is None else batch
    if batch % gpus:
        raise SpecError(f"{gpus} GPUs do not divide the batch of {batch}: each GPU needs the same number "
                        f"of samples", hint=batch_hint(batch, gpus))
    states = precision(analysis.dtype, optimizer, mixed_precision)
    totals = analysis.totals
    trainable, frozen = totals.trainable_params, totals.params - totals.trainable_params
    if strategy != "none" and trainable == 0:
        raise SpecError("nothing to train: the spec has no trainable parameter", hint="drop --gpus/--shard")
    if strategy in ("zero1", "zero2", "fsdp") and totals.params < gpus:
        raise SpecError(f"the spec is too small to shard: {totals.params:,} parameters for {gpus} GPUs",
                        hint="every GPU needs at least one element: fewer GPUs, or --shard ddp")
    shapes = shapes or layout(analysis, shard_units)
    weights, gradients, optimizer_bytes = model_states(trainable, strategy, gpus, states)
    bucket_sizes: list[tuple[int, int]]
    collectives: list[Collective]
    bucket_sizes, collectives = [], []
    grad_payload = trainable * states.gradient
    active = active or activity(analysis, mixed_precision, device)
    if strategy == "fsdp":
        held = fsdp_elements(shapes.shapes, gpus)   # every rank stores ceil(d0/N) rows of each tensor
        trained_held = fsdp_elements(shapes.trained_shapes, gpus)
        weights = states.weight * held
        gradients = states.gradient * trained_held
        optimizer_bytes = states.optimizer * fsdp_elements(shapes.trained_shapes, gpus, rank)
        padded = held * gpus * states.weight
        kept = fsdp_elements(shapes.units.root.shapes, gpus) * gpus * states.weight  # the root stays gathered
        collectives = [Collective("all-gather", "parameters (forward)", padded, ring_factor("all-gather", gpus)),
                       Collective("all-gather", "parameters (backward)", padded - kept,
                                  ring_factor("all-gather", gpus)),
                       Collective("reduce-scatter", "gradients", trained_held * gpus * states.gradient,
                                  ring_factor("reduce-scatter", gpus))]
        backend = backend or ("gloo" if device == "cpu" else "nccl")
        passes = _FSDPReplay(analysis, shapes.units, gpus, states, backend).replay(active.points)
    else:
        weights += frozen * states.weight
        if strategy == "ddp":
            bucket_sizes = ddp_buckets(shapes.trained_shapes, states.gradient)
            collectives = [Collective("all-reduce", "gradients", grad_payload, ring_factor("all-reduce", gpus))]
        elif strategy in ("zero1", "zero2"):
            collectives = [Collective("reduce-scatter", "gradients", grad_payload,
                                      ring_factor("reduce-scatter", gpus)),
                           Collective("all-gather", "parameters", trainable * states.weight,
                                      ring_factor("all-gather", gpus))]
        passes = active.lines(gradients)
    per_gpu = batch // gpus
    peak = max(passes, key=lambda line: line.at(per_gpu))
    master = MASTER_BYTES if mixed_precision else states.weight   # the optimizer's arithmetic
    stepped = shapes.trained_shapes   # the tensors the step updates: whole, FSDP's shards, or ZeRO's flat one
    if strategy == "fsdp":
        stepped = tuple(((chunk_rows(shape[0], gpus, rank), *shape[1:]), count) for shape, count in stepped)
    elif strategy in ("zero1", "zero2"):
        stepped = (((shard(trainable, gpus),), 1),)
    optimizer_bytes += step_counters(optimizer, device, stepped)
    return ShardedMemory(
        strategy, gpus, batch, states, optimizer, trainable, weights + analysis.buffer_bytes(states.buffer), gradients,
        optimizer_bytes, peak.fixed + peak.sample * per_gpu, peak.gradients, peak.gathered, peak.units,
        sum(size * times for size, times in bucket_sizes),
        sum(times for _, times in bucket_sizes), tuple(collectives),
        TRAINING_FLOPS_FACTOR * totals.flops * per_gpu, active.kept[0] + active.kept[1] * per_gpu,
        step_bytes(optimizer, device, stepped, master), device, passes)


@dataclass(frozen=True)
class Fit:
    """One strategy's answer in a plan: the fewest GPUs of the range where one sample per GPU fits,
    and the largest per-GPU batch there (``gpus`` None: no count in the range fits)."""

    strategy: str
    gpus: int | None
    gpu_batch: int                # the largest per-GPU batch at ``gpus`` (0 when none fits)
    memory: ShardedMemory         # at that count and batch; when none fits, one sample per GPU on the most GPUs
    largest_gpu_batch: int        # at the largest count of the range (``top_gpus``)
    top_gpus: int

    @property
    def too_big(self) -> tuple[str, int]:
        """The largest term of ``memory``: what keeps it from fitting."""
        return max(self.memory.terms().items(), key=lambda item: item[1])


UNBOUNDED = 2 ** 63 - 1   # a batch that any memory fits: nothing grows with the samples


def max_gpu_batch(memory: ShardedMemory, active: Activity, budget: int) -> int:
    """The largest per-GPU batch whose peak fits in ``budget``: every moment is a line in the
    batch, the passes' rising by the schedule's bytes per sample at that moment, the others' by the
    input (0: not even one sample)."""
    largest = UNBOUNDED
    moments = memory.moments()
    constant = memory.weight_bytes + memory.optimizer_bytes + memory.bucket_bytes
    lines = [(constant + line.at(0), line.sample) for line in memory.passes]
    lines += [(total - memory.kept_bytes + active.kept[0], active.kept[1]) for moment, total in moments.items()
              if moment != "forward and backward"]
    for fixed, rate in lines:
        if fixed + rate > budget:
            return 0
        if rate:
            largest = min(largest, (budget - fixed) // rate)
    return largest


def max_global_batch(analysis: Analysis, budget: int, strategy: str, gpus: int, *, optimizer: str = "adam",
                     mixed_precision: str | None = None, shard_units: tuple[str, ...] = (),
                     device: str = "cuda") -> int:
    """The largest global batch, a multiple of ``gpus``, whose per-GPU peak (ShardedMemory.total_bytes)
    fits in ``budget`` (0: not one sample per GPU): max_gpu_batch's lines, replayed at the
    answer until it holds (schedule.largest_batch)."""
    from .schedule import largest_batch

    shapes = layout(analysis, shard_units)
    memories: dict[int, tuple[ShardedMemory, Activity]] = {}

    def memory(gpu_batch: int) -> tuple[ShardedMemory, Activity]:
        if gpu_batch not in memories:
            at = analysis.at_batch(gpu_batch * gpus)
            active = activity(at, mixed_precision, device)
            memories[gpu_batch] = (sharded_memory(at, strategy, gpus, optimizer=optimizer,
                                                  mixed_precision=mixed_precision, shapes=shapes, device=device,
                                                  active=active), active)
        return memories[gpu_batch]

    found = largest_batch(lambda gpu_batch: max_gpu_batch(*memory(gpu_batch), budget),
                          lambda gpu_batch: memory(gpu_batch)[0].total_bytes <= budget, max(analysis.batch // gpus, 1))
    return found if found == UNBOUNDED else found * gpus


def plan(analysis: Analysis, budget: int, gpus: tuple[int, int], *, optimizer: str = "adam",
         mixed_precision: str | None = None, shard_units: tuple[str, ...] = (),
         strategies: Iterable[str] = STRATEGIES) -> tuple[Fit, ...]:
    """For each strategy, the fewest GPUs in ``gpus`` (low, high) on which it fits in ``budget`` bytes
    per GPU, and the largest per-GPU batch (see Fit). ``none`` is tried on one GPU only, the others
    on 2 GPUs or more. A GPU's memory never grows with the count (each shard is at most the one
    before), so the fewest is found by bisection."""
    low, high = gpus
    if not 1 <= low <= high:
        raise SpecError(f"--gpus {low}..{high} is not a range of GPU counts", hint="write it like 1..64")
    shapes = layout(analysis, shard_units)
    active = activity(analysis, mixed_precision, "cuda")

    def memory(strategy: str, count: int, gpu_batch: int = 1) -> ShardedMemory:
        return sharded_memory(analysis, strategy, count, batch=count * gpu_batch, optimizer=optimizer,
                              mixed_precision=mixed_precision, shapes=shapes, active=active)

    def largest(strategy: str, count: int) -> int:   # per GPU, as --max-batch with --gpus finds it
        found = max_global_batch(analysis, budget, strategy, count, optimizer=optimizer,
                                 mixed_precision=mixed_precision, shard_units=shard_units)
        return found if found == UNBOUNDED else found // count

    fits = []
    for strategy in strategies:
        first, last = (1, 1) if strategy == "none" else (max(low, 2), high)
        if strategy == "none" and low > 1:
            continue
        if strategy in ("zero1", "zero2", "fsdp"):   # every GPU needs at least one element
            last = min(last, analysis.totals.params)
        if first > last or (strategy != "none" and analysis.totals.trainable_params == 0):
            continue
        most = memory(strategy, last)
        if not max_gpu_batch(most, active, budget):
            fits.append(Fit(strategy, None, 0, most, 0, last))
            continue
        lo, hi = first, last          # the fewest that fits is in lo..hi, and hi fits
        while lo < hi:
            middle = (lo + hi) // 2
            if max_gpu_batch(memory(strategy, middle), active, budget):
                hi = middle
            else:
                lo = middle + 1
        gpu_batch = largest(strategy, lo)
        at = memory(strategy, lo) if gpu_batch in (0, UNBOUNDED) else \
            sharded_memory(analysis.at_batch(lo * gpu_batch), strategy, lo, optimizer=optimizer,
                           mixed_precision=mixed_precision, shapes=shapes)
        fits.append(Fit(strategy, lo, gpu_batch, at, largest(strategy, last), last))
    return tuple(fits)


def requires_grad(analysis: Analysis) -> set[str]:
    """The values autograd tracks: the outputs of layers that train or read a tracked value."""
    owners = {stats.name: stats for stats in analysis.layers}
    tracked: set[str] = set()
    for stats in analysis.layers:
        owner = owners[stats.shares] if stats.shares is not None else stats
        if owner.trainable_params or any(name in tracked for name in stats.node.inputs):
            tracked.update(stats.node.outputs)
    return tracked


class _FSDPReplay:
    """FSDP2's hooks replayed over the memory schedule's passes (see the module's model): the
    lines of every moment, with the unsharded parameters, the all-gather and reduce-scatter buffers
    and the gradients (whole until their unit's reduce-scatter, then the shard) held then."""

    def __init__(self, analysis: Analysis, wrapping: Units, gpus: int, states: Precision, backend: str):
        self.gpus, self.states, self.backend = gpus, states, backend
        self.groups = [unit for unit in wrapping.units if unit.params]   # fully_shard of a unit without parameters holds nothing
        self.root = wrapping.root if wrapping.root.params else None
        self.owner = {layer: unit for unit in self.groups for layer in unit.layers}
        tracked = requires_grad(analysis)
        layers = {stats.name: stats for stats in analysis.layers}
        self.deferred = set()   # units whose inputs autograd does not track: their post-backward waits for the end
        for unit in self.groups:
            made = {out for name in unit.layers for out in layers[name].node.outputs}
            reads = {read for name in unit.layers for read in layers[name].node.inputs} - made
            if not reads & tracked:
                self.deferred.add(unit.name)
        self.live: dict[tuple[str, str], int] = {}   # (unit, what) -> bytes
        self.freed = 0      # whole gradients reduce-scattered and freed
        self.shards = 0     # their shards (the reduce-scatters' outputs, kept as the sharded .grad)
        self.pending: tuple[str, str] | None = None       # forward: the last all-gather output, freed by the next copy-out
        self.scattering: tuple[str, str] | None = None    # backward: the last reduce-scatter input, freed by the next
        self.prefetched: set[str] = set()
        self.lines: list[Line] = []
        self.here = Point("forward", "", True, 0, 0, 0)

    def gathered(self, unit: Unit) -> int:
        """Bytes of a unit's all-gather output, and of its unsharded parameters: N shards, padded."""
        return self.gpus * fsdp_elements(unit.shapes, self.gpus) * self.states.weight

    def emit(self) -> None:
        here = self.here
        self.lines.append(Line(here.fixed, here.sample, here.gradients - self.freed + self.shards,
                               sum(self.live.values()),
                               tuple(unit if what == "unsharded" else f"{unit} ({what})" for unit, what in self.live)))

    def allocate(self, key: tuple[str, str], size: int) -> None:
        self.live[key] = size
        self.emit()

    def free(self, key: tuple[str, str] | None) -> None:
        if key is not None:
            self.live.pop(key, None)

    def unshard(self, unit: Unit) -> None:
        """All-gather (its output allocated, unless prefetched), then the copy-out into the
        unsharded parameters; in forward the output stays until the next unit's copy-out (implicit
        prefetching), in backward it goes at once."""
        if unit.name not in self.prefetched:
            self.allocate((unit.name, "all-gather"), self.gathered(unit))
        self.prefetched.discard(unit.name)
        if self.here.phase == "forward":
            self.free(self.pending)
            self.pending = (unit.name, "all-gather")
        self.allocate((unit.name, "unsharded"), self.gathered(unit))
        if self.here.phase == "backward":
            self.free((unit.name, "all-gather"))

    def prefetch(self, unit: Unit) -> None:
        self.prefetched.add(unit.name)
        self.allocate((unit.name, "all-gather"), self.gathered(unit))

    def post_backward(self, unit: Unit) -> None:
        """Reshard, free the previous reduce-scatter input, copy the whole gradients into this one
        (N shards, padded) and free them, but the last, which foreach_reduce's loop variable holds
        until it returns; the reduce-scatter's output is the sharded .grad. gloo reduces a clone of
        its input (an all-reduce) and copies the rank's chunk out."""
        g = self.states.gradient
        self.free((unit.name, "unsharded"))
        self.free(self.scattering)
        self.scattering = None
        shard = fsdp_elements(unit.trained, self.gpus) * g
        if not shard:
            return
        whole = sum(prod(shape) * count for shape, count in unit.trained) * g
        last = prod(unit.trained[-1][0]) * g
        self.scattering = (unit.name, "reduce-scatter")
        self.allocate(self.scattering, self.gpus * shard)
        self.freed += whole - last
        self.shards += shard
        self.emit()
        if self.backend == "gloo":
            self.allocate((unit.name, "gloo's copy"), self.gpus * shard)
            self.free((unit.name, "gloo's copy"))
        self.freed += last

    def replay(self, points: tuple[Point, ...]) -> tuple[Line, ...]:
        order = self.groups
        index = {unit.name: i for i, unit in enumerate(order)}
        forward: Unit | None = None     # the unit whose layers run (None: the root's)
        backward: Unit | None = None
        started = {"forward": False, "backward": False}
        for point in points:
            self.here = point
            if not point.mark:
                self.emit()
                continue
            unit = self.owner.get(point.layer)
            if point.phase == "forward":
                if not started["forward"] and self.root is not None:  # the root's pre-forward: it stays unsharded
                    self.unshard(self.root)
                started["forward"] = True
                if forward is not None and unit is not forward:   # post-forward: reshard
                    self.free((forward.name, "unsharded"))
                if unit is not None and unit is not forward:
                    self.unshard(unit)
                forward = unit
                if not point.layer:          # the root's post-forward frees the last all-gather output
                    self.free(self.pending)
                    self.pending = None
                continue
            if not started["backward"] and self.root is not None and order:
                self.prefetch(order[-1])    # the root's pre-backward prefetches the last unit
            started["backward"] = True
            if backward is not None and unit is not backward and backward.name not in self.deferred:
                self.post_backward(backward)
            if unit is not None and unit is not backward:
                self.unshard(unit)
                if index[unit.name] > 0:
                    self.prefetch(order[index[unit.name] - 1])
            backward = unit
            if not point.layer:   # the root's final callback: the post-backward of the root and of the
                for late in ([self.root] if self.root else []) + [u for u in order if u.name in self.deferred]:
                    self.post_backward(late)   # units autograd reached no input of, then every buffer freed
                self.free(self.scattering)
                self.live.clear()
                self.emit()
        return tuple(self.lines)
