"""The static analyzer: pure integer arithmetic over a Spec, no torch.

What every figure means (per sample, channels first, which kinds count neurons and MACs) is
stated once, in conventions.py, and every report takes it from there.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import prod
from typing import cast

from ..choices import DTYPE_BYTES
from ..errors import GeometryError, SpecError, UnknownName
from ..gcpause import paused_gc
from ..layers import Layer, Shape, Steps, shape_of, shape_text
from ..layers.arguments import closest
from ..layers.terms import Attending
from ..spec import INPUT, Node, Spec

INT64_BYTES = 8  # a BatchNorm's num_batches_tracked, whatever the dtype of the model


@dataclass(frozen=True)
class LayerStats:
    """Everything the analyzer knows about one layer, for one sample unless said."""

    node: Node
    layer: Layer               # as analyzed: node.layer with any --rounding override
    # what flows, typed as the Layer methods type it: a Shape; for a merge layer (add, concat) a
    # tuple of the input shapes, for a layer with several outputs (split) an Outputs
    input_shape: Shape
    output_shape: Shape
    params: int
    trainable_params: int
    buffers: int
    neurons: int
    size_terms: tuple[object, ...]  # how the output size follows (Layer.size_terms), for the views to word
    macs: int                  # multiply-accumulates, one sample (Layer.macs)
    flops: int                 # 2 x MACs + the layer's other operations, one sample (Layer.flops)
    shares: str | None = None  # the layer whose parameters it uses: counted there, 0 here
    scores: int = 0            # attention probabilities held besides the output, one sample (sequence.scores)

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def kind(self) -> str:
        return self.layer.kind

    @property
    def int64_buffers(self) -> int:
        """Of ``buffers``, the int64 ones (0 where a shared layer's buffers are counted at its owner)."""
        return self.layer.int64_buffers if self.buffers else 0

    def buffer_bytes(self, size: int) -> int:
        """The buffers in bytes: the floating ones at ``size`` bytes each, the int64 ones at 8."""
        return buffer_bytes(self.buffers, self.int64_buffers, size)


@dataclass(frozen=True)
class Failure:
    """The layer ``analyze(partial=True)`` stopped at: all that explain, render, solve and the
    backend know of it."""

    node: Node
    layer: Layer               # as analyzed: node.layer with any --rounding override
    input_shape: Shape         # for a merge layer (add, concat): a tuple of the input shapes
    error: SpecError

    @property
    def name(self) -> str:
        return self.node.name


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    buffers: int
    neurons: int
    param_bytes: int
    buffer_bytes: int          # floating buffers x dtype size + int64 buffers x 8
    activation_bytes: int      # (neurons + attention scores) x batch x dtype size
    forward_bytes: int         # parameters + buffers + activations
    training_bytes_estimate: int  # the course's rule of thumb: about twice the forward memory
    macs: int                  # per sample: conv/dense/recurrent multiply-accumulates
    flops: int                 # per sample: 2 x MACs + bias, activation, pool, norm and add operations
    batch_macs: int            # x batch
    batch_flops: int           # x batch
    scores: int = 0            # per sample: the attention probabilities eager attention holds (heads x T x S)

    @property
    def non_trainable_params(self) -> int:
        return self.params - self.trainable_params


@dataclass(frozen=True)
class Analysis:
    spec: Spec
    input_shapes: dict[str, Shape]  # {network input name: shape} as analyzed (after --input)
    batch: int
    dtype: str
    layers: tuple[LayerStats, ...]
    totals: Totals
    failure: Failure | None = None  # set only by analyze(..., partial=True), for an invalid spec

    @property
    def input_shape(self) -> Shape:
        """The (first) network input's shape."""
        return next(iter(self.input_shapes.values()))

    @property
    def error(self) -> SpecError | None:
        """The failing layer's error, None when every layer was analyzed."""
        return self.failure.error if self.failure else None

    def complete(self) -> Analysis:
        """This analysis, when every layer was analyzed; the failing layer's error otherwise
        (for what needs the whole network: the backend, a diff)."""
        if self.failure is not None:
            raise self.failure.error
        return self

    @property
    def opaque(self) -> tuple[str, ...]:
        """The layers whose MACs and FLOPs are unknown (opaque: imported operations without a
        kind), left out of the totals' MACs and FLOPs."""
        return tuple(stats.name for stats in self.layers if stats.layer.opaque)

    @property
    def shapes(self) -> dict[str, Shape]:
        """{name: shape} of every value a layer can read: the network inputs, then each analyzed
        layer's output (each of a split's under '<layer>.<i>')."""
        shapes = dict(self.input_shapes)
        for stats in self.layers:
            shapes.update(stats.node.named(stats.output_shape))
        return shapes

    @property
    def output_shapes(self) -> dict[str, Shape]:
        """{output name: shape} for the spec's outputs (those analyzed so far)."""
        analyzed = self.shapes
        return {name: analyzed[name] for name in self.spec.outputs if name in analyzed}

    @property
    def output_shape(self) -> Shape:
        """The shape of the network's (first) output."""
        shapes = self.output_shapes
        if shapes:
            return next(iter(shapes.values()))
        return self.layers[-1].output_shape if self.layers else self.input_shape

    def layer(self, name: str) -> LayerStats:
        """The analyzed layer called ``name``; UnknownName (a KeyError) naming the closest otherwise."""
        for stats in self.layers:
            if stats.name == name:
                return stats
        if self.failure is not None and any(node.name == name for node in self.spec.nodes):
            raise UnknownName(f"layer {name!r} was not analyzed: the analysis stopped at layer "
                              f"{self.failure.name}", hint=self.failure.error.message)
        raise UnknownName(f"no layer is named {name!r}", hint=closest(name, [node.name for node in self.spec.nodes]))

    @property
    def int64_buffers(self) -> int:
        """Of the buffers, the int64 ones (BatchNorm's batch counters): 8 bytes in any dtype."""
        return sum(stats.int64_buffers for stats in self.layers)

    def buffer_bytes(self, size: int) -> int:
        """Every buffer in bytes, the floating ones at ``size`` bytes (``totals.buffer_bytes`` at
        the dtype's), the int64 ones at 8."""
        return buffer_bytes(self.totals.buffers, self.int64_buffers, size)

    def at_batch(self, batch: int) -> Analysis:
        """The same analysis for ``batch`` samples (the layers are per sample: only the totals change)."""
        if batch == self.batch:
            return self
        return dataclasses.replace(self, batch=batch,
                                   totals=_totals(list(self.layers), batch, DTYPE_BYTES[self.dtype]))

    def layer_bytes(self, stats: LayerStats) -> tuple[int, int]:
        """(weight bytes, activation bytes) of one layer, counted as the totals count them:
        params x dtype size + its buffer bytes, and (neurons + attention scores) x batch x dtype size."""
        size = DTYPE_BYTES[self.dtype]
        return stats.params * size + stats.buffer_bytes(size), (stats.neurons + stats.scores) * self.batch * size


@paused_gc
def analyze(spec: Spec, *, input_shape: tuple[int, ...] | None = None, batch: int = 1, dtype: str = "float32",
            rounding: str | None = None, partial: bool = False, input_hint: bool = True) -> Analysis:
    """Walk the layers, computing every shape and count exactly.

    ``rounding`` overrides the rounding of every windowed layer (the CLI's --rounding).
    ``partial`` returns the layers up to the first invalid one, with ``failure`` set (that
    layer as analyzed, its input and the error), instead of raising: a diagram or the board
    arithmetic of the mistake is still useful. ``input_hint``: a layer that does not tile names
    the nearest network input that makes every layer valid among its fixes.
    """
    if dtype not in DTYPE_BYTES:
        raise SpecError(f"unknown dtype {dtype!r}", hint="one of " + ", ".join(DTYPE_BYTES))
    if batch < 1:
        raise SpecError(f"batch must be >= 1, got {batch}")
    shapes = network_inputs(spec, input_shape)
    analyzed_inputs = dict(shapes)
    layers: list[LayerStats] = []
    owners: dict[str, LayerStats] = {}  # for the layers that share an earlier one's parameters
    failure = None
    for node in spec.nodes:
        layer = as_analyzed(node.layer, rounding)
        inputs = tuple(shapes[name] for name in node.inputs)
        x = merged(inputs) if layer.merges else inputs[0]
        try:
            stats = _layer_stats(node, layer, x)
            if node.shares is not None:
                stats = shared(stats, owners[node.shares])
        except SpecError as exc:
            exc.located(node.location_of(exc.field), node.name)
            if isinstance(exc, GeometryError) and input_hint and len(analyzed_inputs) == 1:
                _add_network_input(exc, spec, next(iter(analyzed_inputs.values())), rounding)
            if not partial:
                raise
            failure = Failure(node, layer, x, exc)
            break
        layers.append(stats)
        shapes.update(node.named(stats.output_shape))
        owners[node.name] = stats
    return Analysis(spec, analyzed_inputs, batch, dtype, tuple(layers),
                    _totals(layers, batch, DTYPE_BYTES[dtype]), failure)


def _add_network_input(error: GeometryError, spec: Spec, shape: Shape, rounding: str | None) -> None:
    """Add to a layer's fixes the nearest network input that makes every layer valid: a layer's
    own input size is rarely what one can change ('the network input of 34 (archcalc solve)').
    Searched when the hint is first read (GeometryError)."""
    def fix() -> str | None:
        analyzed = spec if rounding is None else dataclasses.replace(spec, nodes=tuple(
            dataclasses.replace(node, layer=as_analyzed(node.layer, rounding)) for node in spec.nodes))
        found = nearest_valid_input(analyzed, shape)
        if found is None:
            return None
        new, together = found
        varied = next(size for size, old in zip(new, shape) if size != old)
        return (f"the network input of {varied} (archcalc solve)" if together else
                f"the network input {shape_text(new)} (archcalc solve)")

    error.add_fix(fix)


def nearest_valid_input(spec: Spec, shape: Shape, search: int = 64) -> tuple[Shape, bool] | None:
    """(the valid network input nearest ``shape``, whether its sizes varied together), within
    ``search`` of each size; None if there is none. A sequence varies its steps; a square input
    its spatial sizes together, as solve does; any other, one spatial axis at a time. The
    smaller size wins a tie."""
    families: list[tuple[int, ...]]
    if isinstance(shape, Steps):
        families = [(0,)]
    elif len(shape) < 2:
        return None
    else:
        spatial = tuple(range(1, len(shape)))
        families = [spatial] if len({shape[axis] for axis in spatial}) == 1 else [(axis,) for axis in spatial]
    best: tuple[int, Shape, bool] | None = None
    for axes in families:
        current = shape[axes[0]]
        sizes = [size for distance in range(1, search + 1) for size in (current - distance, current + distance)
                 if size >= 1]
        candidates = [type(shape)(size if axis in axes else value for axis, value in enumerate(shape))
                      for size in sizes]
        valid = valid_inputs(spec, candidates)
        found = next((index for index, ok in enumerate(valid) if ok), None)
        if found is not None and (best is None or abs(sizes[found] - current) < best[0]):
            best = (abs(sizes[found] - current), candidates[found], len(families) == 1)
    return None if best is None else (best[1], best[2])


def network_inputs(spec: Spec, input_shape: tuple[int, ...] | None = None) -> dict[str, Shape]:
    """{network input name: shape}: the spec's, or its one input overridden by ``input_shape``."""
    shapes = dict(spec.inputs) or {INPUT: spec.input_shape}
    if input_shape is None:
        return shapes
    if len(shapes) > 1:
        raise SpecError(f"this network has {len(shapes)} inputs ({', '.join(shapes)}); "
                        f"an input override needs exactly one")
    (name, declared), = shapes.items()
    if isinstance(declared, Steps):
        input_shape = Steps(input_shape)  # '25x27' overrides a sequence with a sequence
    elif not isinstance(input_shape, Shape):
        input_shape = shape_of(input_shape)  # plain sizes: [F] a vector, [C, ...] a feature map
    return {name: input_shape}


@paused_gc
def valid_inputs(spec: Spec, input_shapes: list[Shape]) -> list[bool]:
    """For each input shape, whether ``analyze(spec, input_shape=shape)`` succeeds: the same
    walk and the same per-layer rules (``_layer_stats``), for all the shapes at once.

    What flows from layer to layer is a partition of the candidates by the shape each gives
    there (a candidate that failed is in no part): a layer is judged once per distinct input it
    meets, and a strided layer merges the candidates it maps to one size. A layer that meets
    the partition an equal layer met before takes that result whole, so a 100,000-layer repeat
    costs about what its first iterations do. A candidate is valid when it is in a part at
    every layer that no other layer reads.
    """
    if not input_shapes:
        return []
    inputs = [network_inputs(spec, shape) for shape in input_shapes]
    (name, _), = inputs[0].items()
    walk = _PartitionWalk()
    states = {name: walk.first([shape for shapes in inputs for shape in shapes.values()])}
    last_reader = {source: index for index, node in enumerate(spec.nodes) for source in node.inputs}
    valid = [True] * len(input_shapes)
    for index, node in enumerate(spec.nodes):
        if node.inputs:
            part = walk.through(node, tuple(states[source] for source in node.inputs))
        else:  # it reads nothing (a learned tensor): one shape for every candidate
            part = walk.constant(node, len(input_shapes))
        for source in dict.fromkeys(node.inputs):  # a merge may read one layer twice: dropped once
            if last_reader[source] == index:
                del states[source]  # what no later layer reads is dropped: memory stays bounded
        outputs = node.outputs
        for output_index, output in enumerate(outputs):
            if output in last_reader:
                states[output] = part if len(outputs) == 1 else walk.picked(part, output_index)
        if any(output not in last_reader for output in outputs):
            # nothing reads it: its candidates are the valid ones, as far as it is concerned; a
            # candidate has each output of a layer or none, so the layer's partition says it once
            # (not once per output: a chunk of 150,000 unread outputs took solve 100 s)
            valid = [ok and owner >= 0 for ok, owner in zip(valid, part.owners)]
    return valid


class _Partition:
    """``shapes``: the distinct shapes at one layer's output; ``owners[k]``: the index there of
    candidate k's shape, -1 once it has failed. Compared by identity: equal ones are made once."""

    __slots__ = ("shapes", "owners")

    def __init__(self, shapes: tuple[Shape, ...], owners: tuple[int, ...]):
        self.shapes, self.owners = shapes, owners


class _PartitionWalk:
    """The partitions of valid_inputs, with what has been computed on them."""

    BUDGET = 1_000_000  # shapes, owners and verdicts kept for reuse before the memos start afresh

    def __init__(self) -> None:
        self.kept = 0
        self.parts: dict[tuple[tuple[Shape, ...], tuple[int, ...]], _Partition] = {}
        self.results: dict[tuple[Layer, tuple[_Partition, ...]], _Partition] = {}
        self.verdicts: dict[tuple[Layer, Shape], Shape | None] = {}

    def made(self, shapes: tuple[Shape, ...], owners: tuple[int, ...]) -> _Partition:
        """The one partition of these shapes and owners."""
        key = (shapes, owners)
        if key not in self.parts:
            if self.kept > self.BUDGET:  # a long run of distinct layers: forget, the live states stay
                self.kept, self.parts, self.results, self.verdicts = 0, {}, {}, {}
            self.kept += len(shapes) + len(owners)
            self.parts[key] = _Partition(shapes, owners)
        return self.parts[key]

    def first(self, shapes: list[Shape]) -> _Partition:
        index: dict[Shape, int] = {}
        owners = tuple(index.setdefault(shape, len(index)) for shape in shapes)
        return self.made(tuple(index), owners)

    def picked(self, part: _Partition, index: int) -> _Partition:
        """The partition of output ``index`` of a layer with several outputs, whose shapes
        (Outputs) ``part`` holds: two of them may agree on that output."""
        order: dict[Shape, int] = {}
        renumbered = [order.setdefault(shape[index], len(order)) for shape in part.shapes] + [-1]  # -1 stays
        if len(order) == len(part.shapes):  # no two agree: the owners stay (no pass over the candidates)
            return self.made(tuple(order), part.owners)
        return self.made(tuple(order), tuple(renumbered[i] for i in part.owners))

    def through(self, node: Node, sources: tuple[_Partition, ...]) -> _Partition:
        """The partition of ``node``'s output, given those of its inputs."""
        key = (node.layer, sources)
        if key not in self.results:
            self.results[key] = self._through(node, sources)
        return self.results[key]

    def constant(self, node: Node, candidates: int) -> _Partition:
        """The partition of a layer that reads no input: all candidates in one part, or none."""
        y = self.verdict(node, merged(()))
        return self.made((y,), (0,) * candidates) if y is not None else self.made((), (-1,) * candidates)

    def _through(self, node: Node, sources: tuple[_Partition, ...]) -> _Partition:
        xs: list[Shape] | tuple[Shape, ...]
        owners: list[int] | tuple[int, ...]
        if node.layer.merges:  # one input per distinct combination of the inputs' shapes
            combos: dict[tuple[int, ...], int] = {}
            xs, owners = [], []
            for owned in zip(*(part.owners for part in sources)):
                if -1 in owned:
                    owners.append(-1)
                    continue
                if owned not in combos:
                    combos[owned] = len(xs)
                    xs.append(merged(tuple(part.shapes[i] for part, i in zip(sources, owned))))
                owners.append(combos[owned])
        else:
            xs, owners = sources[0].shapes, sources[0].owners
        ys = [self.verdict(node, x) for x in xs]
        # numbered in the order of the candidates, so that equal partitions are equal tuples; the
        # extra last entry sends a failed candidate (-1) to -1 again
        renumbered, order = [-1] * (len(xs) + 1), dict[Shape, int]()
        for i in owners:
            if i < 0 or renumbered[i] >= 0:
                continue
            y = ys[i]
            if y is not None:
                renumbered[i] = order.setdefault(y, len(order))
        return self.made(tuple(order), tuple(map(renumbered.__getitem__, owners)))

    def verdict(self, node: Node, x: Shape) -> Shape | None:
        """The layer's output shape for ``x``, None where the analyzer refuses it."""
        key = (node.layer, x)
        if key not in self.verdicts:
            self.kept += 1
            try:
                self.verdicts[key] = _layer_stats(node, node.layer, x).output_shape
            except SpecError:
                self.verdicts[key] = None
        return self.verdicts[key]


def as_analyzed(layer: Layer, rounding: str | None) -> Layer:
    """The layer with the --rounding override applied, where its kind has a rounding."""
    return layer if rounding is None else layer.rounded(rounding)


def merged(inputs: tuple[Shape, ...]) -> Shape:
    """What a merge layer (add, concat; a layer that reads nothing) reads: the tuple of its inputs'
    shapes, which the Layer methods take where the others take one Shape."""
    return cast(Shape, inputs)


def _layer_stats(node: Node, layer: Layer, x: Shape) -> LayerStats:
    y = layer.output_shape(x)
    params = layer.params(x)
    trainable = params - frozen_params(node, layer, x) if node.trainable else 0
    return LayerStats(node, layer, x, y, params, trainable, layer.buffers(x),
                      layer.neurons(x, y), layer.size_terms(x, y), layer.macs(x, y),
                      layer.flops(x, y), scores=score_elements(layer.attending(x)))


def score_elements(attending: Attending | None) -> int:
    """The attention probabilities an attention layer holds for one sample besides its output:
    heads x T x S (softmax(Q Kᵀ / sqrt(head_dim)) per head, as eager attention computes and
    keeps them for the backward pass); 0 under a fused kernel, which never materialises them,
    and for every other kind."""
    if attending is None or attending.fused:
        return 0
    return attending.heads * attending.queries * attending.keys


def frozen_params(node: Node, layer: Layer, x: Shape) -> int:
    """The elements of the tensors named by 'freeze:', which must be the layer's own."""
    if not node.frozen:
        return 0
    tensors = layer.tensors(x)
    for name in node.frozen:
        if name not in tensors:
            raise SpecError(f"freeze: {layer.kind} has no tensor {name!r}" +
                            (f" here (its tensors: {', '.join(tensors)})" if tensors else " (it has no parameters)"),
                            hint=closest(name, tensors) if tensors else "remove 'freeze'", field="freeze")
    return sum(prod(tensors[name]) for name in node.frozen)


def _module(layer: Layer, x: Shape) -> object:
    """The layer's PyTorch recipe (plain data, no torch): one module serves two layers only if
    both would build it alike. None where PyTorch cannot build it (the backend says why)."""
    try:
        return layer.to_torch(x)
    except SpecError:
        return None


def shared(stats: LayerStats, owner: LayerStats) -> LayerStats:
    """A layer that uses ``owner``'s parameters: the same module applied again (the same kind
    and arguments, tensors of the same shapes), or, for a layer of another kind, the same
    tensors by name and shape, tied (GPT-2's LM head, a dense layer without bias whose weight
    V x E is its token embedding's table, as transformers' tie_weights makes it); trained alike
    either way. Its parameters and buffers are counted once, at the owner, so here they are 0
    (as torch's parameters() counts them)."""
    layer = stats.layer
    if not owner.params and not owner.buffers:
        return stats  # nothing to share (a block instance that shares another also has its relus)
    where = f"{owner.name}, whose parameters it shares,"
    mine, theirs = layer.tensors(stats.input_shape), owner.layer.tensors(owner.input_shape)
    if type(layer) is not type(owner.layer) and mine == theirs and not stats.buffers and not owner.buffers:
        return _trained_alike(stats, owner, where)  # tied: another module, the very same tensors
    if type(layer) is not type(owner.layer) or layer != owner.layer:
        mine, theirs = layer.hyperparameters(), owner.layer.hyperparameters()
        differ = [key for key in {**theirs, **mine} if mine.get(key) != theirs.get(key)]
        detail = (f"{owner.name} is {owner.kind}" if layer.kind != owner.kind else
                  "; ".join(f"{key} {theirs.get(key, 'default')} there, {mine.get(key, 'default')} here"
                            for key in differ))
        raise SpecError(f"shares: {owner.name} is not the same layer ({detail})",
                        hint="a shared layer is the same module applied again: give it the same kind and "
                             "arguments (a layer of another kind ties its weights only when its tensors are the "
                             "same by name and shape: a dense head without bias, weight V x E, and an embedding)",
                        field="shares")
    if mine != theirs:
        shapes = "; ".join(f"{name} {'x'.join(map(str, theirs[name]))} there, {'x'.join(map(str, mine[name]))} "
                           f"here" for name in theirs if mine.get(name) != theirs[name])
        raise SpecError(f"shares: the input {shape_text(stats.input_shape)} gives other weight shapes than "
                        f"{where} input {shape_text(owner.input_shape)} ({shapes})",
                        hint="shared weights must have the same shapes: feed it what the shared layer reads",
                        field="shares")
    if _module(layer, stats.input_shape) != _module(owner.layer, owner.input_shape):
        raise SpecError(f"shares: the module of {owner.name} is made for its input {shape_text(owner.input_shape)}; "
                        f"on {shape_text(stats.input_shape)} it would compute something else than this layer",
                        hint="'same' padding with a stride depends on the input size: give both layers inputs "
                             "of one size, or explicit padding", field="shares")
    return _trained_alike(stats, owner, where)


def _trained_alike(stats: LayerStats, owner: LayerStats, where: str) -> LayerStats:
    """The sharing layer's stats, its parameters counted at ``owner``, after checking that both
    train them alike (one tensor has one requires_grad)."""
    node = stats.node
    if (node.trainable, node.frozen) != (owner.node.trainable, owner.node.frozen):
        raise SpecError(f"shares: {where} is trained differently (trainable/freeze)",
                        hint=f"one module has one setting: set 'trainable'/'freeze' on {owner.name} only, "
                             f"or the same on both", field="shares")
    return dataclasses.replace(stats, params=0, trainable_params=0, buffers=0, shares=owner.name)


def buffer_bytes(buffers: int, int64_buffers: int, size: int) -> int:
    """Bytes of ``buffers`` elements of which ``int64_buffers`` are int64 (8 bytes in any dtype)
    and the rest floating, ``size`` bytes each."""
    return (buffers - int64_buffers) * size + int64_buffers * INT64_BYTES


def _totals(layers: list[LayerStats], batch: int, size: int) -> Totals:
    params = sum(s.params for s in layers)
    buffers = sum(s.buffers for s in layers)
    int64_buffers = sum(s.int64_buffers for s in layers)
    neurons, scores = sum(s.neurons for s in layers), sum(s.scores for s in layers)
    param_bytes, activation_bytes = params * size, (neurons + scores) * batch * size
    buffers_bytes = buffer_bytes(buffers, int64_buffers, size)
    forward = param_bytes + buffers_bytes + activation_bytes
    macs, flops = sum(s.macs for s in layers), sum(s.flops for s in layers)
    return Totals(params, sum(s.trainable_params for s in layers), buffers, neurons, param_bytes,
                  buffers_bytes, activation_bytes, forward, 2 * forward, macs, flops, macs * batch, flops * batch,
                  scores)
