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
  fsdp   weights, gradients and optimizer state / N (stage 3, P_os+g+p), plus the gathered units:
         the root's parameters (FSDP2 keeps the root unsharded through the step), the largest two
         neighbouring units (the one computed and the one prefetched), whole, in the compute dtype,
         and one flat buffer the size of the largest unit (padded to N shards): FSDP2 all-gathers
         into it before copying out, and copies the gradients into it to reduce-scatter them
How a shard divides: ZeRO flattens the parameters into one buffer padded to a multiple of N, so
each GPU holds ceil(Psi/N) elements (zero1, zero2). fsdp follows PyTorch's FSDP2 (fully_shard,
what ``archcalc run --shard fsdp`` runs): each parameter tensor is split on its first axis as
torch.chunk splits it, every rank storing ceil(d0/N) rows (padded), rank r's to_local() the rows
that remain for it. When every first axis divides by N the two agree: the ZeRO paper's figures.

Activations per GPU: the memory schedule's (analysis/schedule.py) training step at the per-GPU
batch = batch / N (``activity``): at each moment of its forward and backward passes, the input,
the activations alive and the transient gradients, beside the share of the parameter gradients
made so far; the moment where these and the model states peak together is the step's. The optimizer step's temporaries, as torch.optim's default
implementation makes them: Adam and AdamW on CUDA (foreach) one the size of every parameter
held, on CPU (tensor by tensor) two the size of the largest one (sqrt(v) and its division);
SGD, with or without momentum, none (in place).

The per-GPU peak is the largest of three moments of a step (gradients set to None before it, as
zero_grad does by default; DDP's buckets and FSDP's gathered units at every moment):
  forward and backward  weights, optimizer state, the schedule's peak of activations and transient
                    gradients with the parameter gradients made by then (their share of the shard;
                    none under fsdp, whose unsharded gradients sit in the gathered buffers)
  end of backward   weights, optimizer state, gradients, the batch (the activations are freed)
  optimizer step    weights, optimizer state, gradients, the batch, the step's temporaries
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
from typing import Any

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
    shapes: tuple[ShapeCount, ...]  # their parameter tensors ((shape, count), ...)


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
    return Unit(name, tuple(stats.name for stats in members), sum(stats.params for stats in members), shapes)


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
    gathered_bytes: int       # fsdp: the root + the two largest neighbouring units, whole, + a flat buffer
    gathered_units: tuple[str, ...]  # their names
    bucket_bytes: int         # ddp: the gradient buckets
    buckets: int
    collectives: tuple[Collective, ...]
    flops: int                # training FLOPs of one GPU's batch, per step
    input_bytes: int          # the per-GPU batch itself (within the activations)
    step_bytes: int           # the optimizer step's temporaries
    device: str               # whose optimizer implementation: 'cuda' or 'cpu'

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
                "end of backward": states + self.gathered_bytes + self.input_bytes,
                "optimizer step": states + self.input_bytes + self.step_bytes}

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
    """The optimizer step's temporaries over parameter tensors ``shapes`` ((shape, count), ...)
    of ``size``-byte numbers (see the module's model)."""
    if optimizer not in ("adam", "adamw") or not shapes:
        return 0
    if device == "cuda":
        return size * sum(prod(shape) * count for shape, count in shapes)
    return 2 * size * max(prod(shape) for shape, _ in shapes)


@dataclass(frozen=True)
class Activity:
    """What one GPU's training step holds besides the model states, from the memory schedule: per
    moment of its forward and backward passes (fixed bytes, bytes per sample, the share of the
    parameter gradients made by then). The one place the sharding model reads the schedule."""

    moments: tuple[tuple[int, int, Fraction], ...]  # ((fixed, per sample, Fraction), ...)
    input_sample: int     # the network input, bytes per sample

    def at(self, batch: int, gradients: int) -> tuple[int, int]:
        """(activation bytes, parameter gradient bytes held) at the moment their sum peaks, for
        ``batch`` samples and ``gradients`` bytes of gradients (the GPU's share)."""
        best = max(self.moments, key=lambda m: m[0] + m[1] * batch + _share(gradients, m[2]))
        return best[0] + best[1] * batch, _share(gradients, best[2])


def _share(total: int, fraction: Fraction) -> int:
    return total * fraction.numerator // fraction.denominator


def activity(analysis: Analysis, mixed_precision: str | None, device: str) -> Activity:
    """The schedule of one training step (SGD: the step's own temporaries are counted apart),
    reduced to its forward and backward moments (each distinct one once). Under mixed precision
    ZeRO's convention (DeepSpeed's fp16/bf16) runs the model itself in 16 bits, its inputs,
    activations and gradients too: the schedule of the 16-bit model (its model states are
    counted apart, by ``precision``)."""
    from .schedule import CATEGORIES, schedule

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
    return Activity(tuple(sorted(found)), max(moment.sample[CATEGORIES.index("input")] for moment in replay.moments))


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
                   active: Activity | None = None) -> ShardedMemory:
    """Per-GPU memory and communication of one training step of ``analysis`` on ``gpus`` GPUs under
    ``strategy`` (see the module's model); ``batch`` is the global batch (the analysis's by default),
    ``shapes`` and ``active`` the layout and activity when the caller has them already; ``device``
    whose kernels and optimizer temporaries;
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
    gathered_names: tuple[str, ...]
    bucket_sizes: list[tuple[int, int]]
    collectives: list[Collective]
    gathered, gathered_names, bucket_sizes, collectives = 0, (), [], []
    grad_payload = trainable * states.gradient
    if strategy == "fsdp":
        held = fsdp_elements(shapes.shapes, gpus)   # every rank stores ceil(d0/N) rows of each tensor
        trained_held = fsdp_elements(shapes.trained_shapes, gpus)
        weights = states.weight * held
        gradients = states.gradient * trained_held
        optimizer_bytes = states.optimizer * fsdp_elements(shapes.trained_shapes, gpus, rank)
        gathered_elements, gathered_names = _gathered(shapes.units)
        flat = max((fsdp_elements(unit.shapes, gpus) for unit in (shapes.units.root, *shapes.units.units)), default=0)
        gathered = (gathered_elements + flat * gpus) * states.weight
        padded = held * gpus * states.weight
        kept = fsdp_elements(shapes.units.root.shapes, gpus) * gpus * states.weight  # the root stays gathered
        collectives = [Collective("all-gather", "parameters (forward)", padded, ring_factor("all-gather", gpus)),
                       Collective("all-gather", "parameters (backward)", padded - kept,
                                  ring_factor("all-gather", gpus)),
                       Collective("reduce-scatter", "gradients", trained_held * gpus * states.gradient,
                                  ring_factor("reduce-scatter", gpus))]
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
    per_gpu = batch // gpus
    active = active or activity(analysis, mixed_precision, device)
    # under fsdp a unit's backward makes its gradients unsharded, in the gathered buffers, until the
    # reduce-scatter leaves the shard: the passes hold none of the sharded gradients yet
    activations, live_gradients = active.at(per_gpu, 0 if strategy == "fsdp" else gradients)
    master = MASTER_BYTES if mixed_precision else states.weight   # the optimizer's arithmetic
    stepped = shapes.trained_shapes   # the tensors the step updates: whole, FSDP's shards, or ZeRO's flat one
    if strategy == "fsdp":
        stepped = tuple(((chunk_rows(shape[0], gpus, rank), *shape[1:]), count) for shape, count in stepped)
    elif strategy in ("zero1", "zero2"):
        stepped = (((shard(trainable, gpus),), 1),)
    return ShardedMemory(
        strategy, gpus, batch, states, optimizer, trainable, weights + analysis.buffer_bytes(states.buffer), gradients,
        optimizer_bytes, activations, live_gradients, gathered,
        gathered_names, sum(size * times for size, times in bucket_sizes),
        sum(times for _, times in bucket_sizes), tuple(collectives),
        TRAINING_FLOPS_FACTOR * totals.flops * per_gpu, active.input_sample * per_gpu,
        step_bytes(optimizer, device, stepped, master), device)


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
    """The largest per-GPU batch whose peak fits in ``budget`` (0: not even one sample): every
    moment is a line in the batch, the passes' rising by the schedule's bytes per sample at that
    moment, the others' by the input."""
    largest = UNBOUNDED
    moments = memory.moments()
    passes = moments["forward and backward"] - memory.activation_bytes - memory.live_gradient_bytes
    lines = [(passes + fixed + _share(memory.gradient_bytes, share), rate) for fixed, rate, share in active.moments]
    lines += [(total - memory.input_bytes, active.input_sample) for moment, total in moments.items()
              if moment != "forward and backward"]
    for fixed, rate in lines:
        if fixed + rate > budget:
            return 0
        if rate:
            largest = min(largest, (budget - fixed) // rate)
    return largest


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
        top = max_gpu_batch(most, active, budget)
        if not top:
            fits.append(Fit(strategy, None, 0, most, 0, last))
            continue
        lo, hi = first, last          # the fewest that fits is in lo..hi, and hi fits
        while lo < hi:
            middle = (lo + hi) // 2
            if max_gpu_batch(memory(strategy, middle), active, budget):
                hi = middle
            else:
                lo = middle + 1
        largest = max_gpu_batch(memory(strategy, lo), active, budget)
        fits.append(Fit(strategy, lo, largest, memory(strategy, lo, largest if largest != UNBOUNDED else 1),
                        top, last))
    return tuple(fits)


def _gathered(wrapping: Units) -> tuple[int, tuple[str, ...]]:
    """Elements gathered at once: the root's and the largest two neighbouring units' (or the one unit)."""
    names: tuple[str, ...]
    best, names = 0, ()
    sizes = [(unit.params, unit.name) for unit in wrapping.units]
    for i, (size, name) in enumerate(sizes):
        pair = [(size, name)] + sizes[i + 1:i + 2]
        total = sum(s for s, _ in pair)
        if total > best:
            best, names = total, tuple(n for _, n in pair)
    root = wrapping.root.params
    return root + best, (("root",) if root else ()) + names
