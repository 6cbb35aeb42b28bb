"""Formatting an Analysis: rich table, JSON, markdown, CSV. No arithmetic happens here."""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..analysis import collapse
from ..analysis.conventions import EXTRA_CONVENTIONS, conventions, footnote, opaque_convention
from ..analysis.receptive import field_text
from ..analysis.walk import Analysis
from ..choices import DTYPE_BYTES
from ..errors import SpecError
from ..layers import Steps, parts, shape_text
from ..layers.base import axes, spatial_rank
from ..units import decimal_bytes, human_bytes, human_count
from . import escape
from .output import JSON_SCHEMA_VERSION, Table, markdown_table, write
from .sequence import sequence_dict, sequence_lines
from .wording import formula, label_text, notes

PLANNED_DEVICE = "cuda"   # whose kernels inspect's memory lines assume (archcalc memory --device chooses)


@dataclass(frozen=True)
class Extras:
    """inspect's optional sections, computed by the library before any formatting."""

    receptive_fields: dict | None = None   # receptive.receptive_fields(): {layer name: Field}
    training: object | None = None         # schedule.Schedule of a training step (--train)
    max_batch: object | None = None        # schedule.MaxBatch (--max-batch)
    unrolled: list | None = None           # im2col.unrolled_layers(): [(LayerStats, Unrolled)] (--im2col)
    sharding: object | None = None         # sharding.ShardedMemory (--gpus/--shard)
    rates: tuple = (None, None)            # (--bandwidth bytes/s, --throughput FLOPs/s) for its times
    sequence: object | None = None         # sequence.SequenceFigures: a sequence input's per-token figures
    checkpointed: object | None = None     # schedule.Schedule of the training step with --checkpoint's segments
    segments: tuple = ()                   # checkpoint.Segment of each (--checkpoint)
    inference: object | None = None        # schedule.Schedule of inference at the batch (PLANNED_DEVICE's kernels)
    not_replayed: str = ""                 # why there is none: the schedule's refusal (too many operations)


def extras(analysis: Analysis, *, receptive_field: bool = False, train: bool = False, optimizer: str = "adam",
           mixed_precision: str | None = None, budget: int | None = None, im2col: bool = False,
           sharding: dict | None = None, rates: tuple = (None, None), kv_cache: int | None = None,
           segments: tuple = ()) -> Extras:
    """The sections asked for, each from its library function; ``sharding``: sharded_memory's
    strategy, gpus and shard_units (--gpus/--shard); ``kv_cache``: the context length of
    --kv-cache; ``segments``: --checkpoint's (analysis/checkpoint.py), the training step again
    with them checkpointed. A network reading a sequence always gets its per-token figures, every
    network its inference peak (_inference). Memory is the schedule's (analysis/schedule.py) with
    CUDA's kernels, the device one plans for."""
    from ..analysis.im2col import unrolled_layers
    from ..analysis.receptive import receptive_fields
    from ..analysis.schedule import max_batch, schedule
    from ..analysis.sequence import sequence_figures

    inference, not_replayed = _inference(analysis)
    return Extras(receptive_fields(analysis) if receptive_field else None,
                  schedule(analysis, training=True, optimizer=optimizer, device=PLANNED_DEVICE,
                           mixed_precision=mixed_precision) if train else None,
                  max_batch(analysis, budget, optimizer, mixed_precision, PLANNED_DEVICE,
                            tuple(s.layers for s in segments), sharding) if budget is not None else None,
                  unrolled_layers(analysis) if im2col else None,
                  _sharding(analysis, sharding, optimizer, mixed_precision), rates,
                  sequence_figures(analysis, kv_cache),
                  schedule(analysis, training=True, optimizer=optimizer, device=PLANNED_DEVICE,
                           mixed_precision=mixed_precision, checkpoint=tuple(s.layers for s in segments))
                  if train and segments else None, segments, inference, not_replayed)


def _inference(analysis: Analysis) -> tuple[object | None, str]:
    """The inference schedule at the analysis's batch, or why the schedule will not replay it
    (its refusal's message): the report still gives every other figure."""
    from ..analysis.schedule import schedule

    try:
        return schedule(analysis, device=PLANNED_DEVICE), ""
    except SpecError as exc:
        return None, exc.message


def _sharding(analysis: Analysis, options: dict | None, optimizer: str, mixed_precision: str | None):
    if options is None:
        return None
    from ..analysis.sharding import sharded_memory

    return sharded_memory(analysis, optimizer=optimizer, mixed_precision=mixed_precision, **options)


def extra_conventions(extras: Extras) -> dict:
    """The conventions of the sections present."""
    present = {"receptive_field": extras.receptive_fields is not None,
               "training": extras.training is not None or extras.max_batch is not None,
               "sharding": extras.sharding is not None,
               "im2col": extras.unrolled is not None,
               "sequence": extras.sequence is not None,
               "kv_cache": extras.sequence is not None and extras.sequence.kv_cache is not None}
    return {key: text for key, text in EXTRA_CONVENTIONS.items() if present[key]}


def all_conventions(analysis: Analysis, extras: Extras) -> dict:
    """The conventions of the report: the figures' and those of the sections present."""
    opaque = {"opaque": opaque_convention()} if analysis.opaque else {}
    return {**conventions(analysis.dtype, analysis.batch), **opaque, **extra_conventions(extras)}


def changed_weights(analysis: Analysis, baseline: Analysis | None) -> dict:
    """{layer name: params at the spec's own input} for layers whose count differs there.

    A conv keeps its weights when the input grows; a dense layer after a flatten does not,
    so trained weights would no longer fit: the course's 32x32 vs 64x64 question.
    """
    if baseline is None:
        return {}
    before = {stats.name: stats.params for stats in baseline.layers}
    return {stats.name: before[stats.name] for stats in analysis.layers
            if stats.name in before and before[stats.name] != stats.params}


def layout(shape) -> str:
    """How to read a shape list: 'steps x features' (a sequence, or 'steps' of token ids) or
    'channels first' ([F], [C, L], [C, H, W], [C, D, H, W])."""
    if isinstance(shape, Steps):
        return "steps x features" if len(shape) == 2 else "steps"
    return "channels first"


def to_dict(analysis: Analysis, baseline: Analysis | None = None, extras: Extras | None = None) -> dict:
    """The JSON document (schema JSON_SCHEMA_VERSION, documented in the README)."""
    extras = extras or Extras()
    changed = changed_weights(analysis, baseline)
    unrolled = {stats.name: matrix for stats, matrix in extras.unrolled or []}
    totals = analysis.totals
    layers = []
    for stats in analysis.layers:
        entry = {
            "name": stats.name,
            "kind": stats.kind,
            "inputs": list(stats.node.inputs),
            "within": [name for name, _ in collapse.containers(stats)],  # blocks and repeats, outermost first
            "input_shape": list(stats.input_shape),
            "output_shape": list(stats.output_shape),  # a split's: one list per output
            "output_layout": layout(parts(stats.output_shape)[0]),
            "params": stats.params,
            "trainable_params": stats.trainable_params,
            "buffers": stats.buffers,
            "neurons": stats.neurons,
            "formula": formula(stats.size_terms),
            "hyperparameters": {k: list(v) if isinstance(v, tuple) else v
                                for k, v in stats.layer.hyperparameters().items()},
            "notes": notes(stats.size_terms),
            "line": stats.node.location.line,
            "macs": None if stats.layer.opaque else stats.macs,  # unknown: not counted
            "flops": None if stats.layer.opaque else stats.flops,
        }
        if stats.scores:  # attention probabilities held besides the output (heads x T x S)
            entry["attention_scores"] = stats.scores
        if stats.shares is not None:  # its parameters are counted at that layer, once
            entry["shares"] = stats.shares
        if stats.node.frozen:
            entry["frozen"] = list(stats.node.frozen)
        if len(stats.node.outputs) > 1:  # a split: output_shape[i] is what later layers read as outputs[i]
            entry["outputs"] = list(stats.node.outputs)
        if stats.name in changed:
            entry["params_at_spec_input"] = changed[stats.name]
        if extras.receptive_fields is not None:
            field = extras.receptive_fields[stats.name]
            entry["receptive_field"] = {key: [getattr(axis, key) for axis in field]
                                        for key in ("size", "jump", "start")}
        if stats.name in unrolled:
            entry["im2col"] = im2col_dict(unrolled[stats.name], analysis)
        layers.append(entry)
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "name": analysis.spec.name,
        "description": analysis.spec.description,
        "input_shape": list(analysis.input_shape),
        "spec_input_shape": list(analysis.spec.input_shape),
        "output_shape": list(analysis.output_shape),
        "batch": analysis.batch,
        "dtype": analysis.dtype,
        "dtype_bytes": DTYPE_BYTES[analysis.dtype],
        "conventions": all_conventions(analysis, extras),
        "layers": layers,
        "totals": {
            "params": totals.params,
            "trainable_params": totals.trainable_params,
            "non_trainable_params": totals.non_trainable_params,
            "buffers": totals.buffers,
            "neurons": totals.neurons,
            "param_bytes": totals.param_bytes,
            "buffer_bytes": totals.buffer_bytes,
            "activation_bytes": totals.activation_bytes,
            "forward_bytes": totals.forward_bytes,
            "training_bytes_estimate": totals.training_bytes_estimate,
            "macs": totals.macs,
            "flops": totals.flops,
            "batch_macs": totals.batch_macs,
            "batch_flops": totals.batch_flops,
            "input_bytes": collapse.input_bytes(analysis),
            "attention_scores": totals.scores,
            **({"not_counted": list(analysis.opaque)} if analysis.opaque else {}),  # MACs and FLOPs unknown
        },
        **({"sequence": sequence_dict(extras.sequence, analysis.batch, analysis.dtype)}
           if extras.sequence is not None else {}),
        **extras_dict(extras),
    }


def im2col_dict(unrolled, analysis: Analysis) -> dict:
    batch = analysis.batch
    return {"filter_matrix": list(unrolled.filter_matrix), "column_matrix": list(unrolled.column_matrix(batch)),
            "output_matrix": list(unrolled.output_matrix(batch)), "groups": unrolled.groups,
            "column_bytes": unrolled.column_bytes(batch, DTYPE_BYTES[analysis.dtype])}


def extras_dict(extras: Extras) -> dict:
    """The top-level JSON keys of the sections present: inference (or why it was not replayed),
    training, checkpoint, max_batch, sharding."""
    from .memory import schedule_dict

    found: dict = {}
    if extras.inference is not None:
        found["inference"] = schedule_dict(extras.inference)
    elif extras.not_replayed:
        found["inference"] = None
        found["inference_not_replayed"] = extras.not_replayed
    if extras.training is not None:
        found["training"] = schedule_dict(extras.training)
    if extras.checkpointed is not None:
        from .memory import checkpoint_dict
        found["checkpoint"] = checkpoint_dict(extras.training, extras.checkpointed, extras.segments)
    if extras.max_batch is not None:
        m = extras.max_batch
        found["max_batch"] = {"budget_bytes": m.budget, "inference": m.inference, "training": m.training,
                              "optimizer": m.optimizer, "mixed_precision": m.mixed_precision, "device": m.device}
        if m.checkpointed is not None:
            found["max_batch"]["training_checkpointed"] = m.checkpointed
        if m.sharding is not None:
            found["max_batch"]["sharded"] = {"shard": m.sharding[0], "gpus": m.sharding[1], "batch": m.sharded,
                                             "gpu_batch": m.sharded // m.sharding[1]}
    if extras.sharding is not None:
        from .sharding import memory_dict
        found["sharding"] = memory_dict(extras.sharding, *extras.rates)
    return found


def to_json(analysis: Analysis, baseline: Analysis | None = None, extras: Extras | None = None) -> str:
    """Indented like json.dumps(indent=2), but one line per layer: a 100,000-layer report stays
    easy to grep, and json's C encoder writes it (the indenting encoder is pure Python, 5x slower)."""
    items = []
    for key, value in to_dict(analysis, baseline, extras).items():
        if key == "layers" and value:
            rows = ",\n".join("    " + json.dumps(layer) for layer in value)
            text = f"[\n{rows}\n  ]"
        else:
            text = json.dumps(value, indent=2).replace("\n", "\n  ")
        items.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(items) + "\n}\n"


def inputs_text(analysis: Analysis, batch_axis: bool = False) -> str:
    """'input 3x227x227 (C x H x W)', or each named input of a multi-input network; with
    ``batch_axis``, 'input 8x3x227x227 (N x C x H x W)'."""
    if len(analysis.spec.inputs) > 1:
        return "inputs " + ", ".join(f"{name} {shown_shape(shape, analysis, batch_axis)}"
                                     for name, shape in analysis.input_shapes.items())
    text = shown_shape(analysis.input_shape, analysis, batch_axis)
    layout = {2: "C x L", 3: "C x H x W", 4: "C x D x H x W"}.get(len(analysis.input_shape))
    if "(" in text or layout is None:
        return f"input {text}"
    return f"input {text} ({'N x ' if batch_axis else ''}{layout})"


def shown_shape(shape, analysis: Analysis, batch_axis: bool) -> str:
    """A shape as the table writes it: 96x55x55, or with the batch axis first, 8x96x55x55
    (a sequence: 8x25x4 (NxTxF))."""
    text = shape_text(shape)
    if not batch_axis:
        return text
    return f"{analysis.batch}x" + text.replace(" (", " (Nx", 1)


@dataclass(frozen=True)
class Column:
    """One choice of --columns: its name there, its header(s) in the table, what it shows, and
    whether it is a number (right-aligned, never broken)."""

    name: str
    headers: tuple
    doc: str
    number: bool = True


COLUMNS = (
    Column("kind", ("kind",), "the layer's kind and activation; a block or repeat at --depth", False),
    Column("input", ("input",), "input shape (a merge: each input's)", False),
    Column("output", ("output",), "output shape", False),
    Column("kernel", ("kernel",), "window size per axis (conv, pools)", False),
    Column("formula", ("(D-F+2P)/S+1",), "the output size arithmetic, and its notes", False),
    Column("params", ("params",), "parameters (weights + biases)"),
    Column("params_percent", ("params %",), "share of all parameters"),
    Column("trainable", ("trainable",), "True, Partial or False (-- for no parameters)", False),
    Column("trainable_params", ("trainable params",), "trainable parameters"),
    Column("neurons", ("neurons",), "output elements per sample"),
    Column("macs", ("MACs",), "multiply-accumulates per sample"),
    Column("batch_macs", ("batch MACs",), "multiply-accumulates per batch"),
    Column("flops", ("FLOPs",), "floating-point operations per sample"),
    Column("batch_flops", ("batch FLOPs",), "floating-point operations per batch"),
    Column("memory", ("memory",), "(params + buffers) x dtype + (neurons + attention scores) x batch x dtype: adds up "
                                  "to the course's forward pass"),
    Column("scores", ("attention scores",), "attention probabilities held per sample (heads x T x S), in the memory"),
    Column("kv_cache", ("KV cache",), "bytes of the layer's KV cache at --kv-cache (its context and the batch)"),
    Column("rf", ("field", "jump", "start"), "receptive field per axis: size, jump (effective stride), start"),
)
COLUMN_NAMES = {column.name: column for column in COLUMNS}
TABLE_COLUMNS = ("kind", "output", "formula", "params", "neurons", "macs", "flops")  # the default
CSV_COLUMNS = ("kind", "output", "params", "trainable_params", "neurons", "formula", "macs", "flops")
CSV_HEADERS = {"input": ("input_shape",), "output": ("output_shape",), "memory": ("memory_bytes",),
               "kv_cache": ("kv_cache_bytes",), "scores": ("attention_scores",),
               "rf": ("rf_size", "rf_jump", "rf_start")}  # the others: the column's name
HEADERS = ("layer", *(header for name in TABLE_COLUMNS for header in COLUMN_NAMES[name].headers))


@dataclass(frozen=True)
class TableOptions:
    """What the layer table (and markdown and CSV) show: --columns (None: the format's default,
    with the receptive field when it was computed), --depth, --batch-axis."""

    columns: tuple | None = None
    depth: int | None = None
    batch_axis: bool = False

    def chosen(self, default: tuple, extras: Extras) -> tuple:
        columns = self.columns or default
        if extras.receptive_fields is not None and "rf" not in columns:
            columns += ("rf",)
        return columns


def wants_receptive_fields(columns: tuple | None) -> bool:
    return bool(columns) and "rf" in columns


def reads_text(row, previous: str, row_of: dict) -> str:
    """'<- a, b' when a row reads something other than the row just before it (names relative
    to the row's own block instance); ``row_of`` maps a layer name to its row's name."""
    layers = collapse.members(row)
    inside = {stats.name for stats in layers}
    sources = [row_of.get(name, name) for stats in layers for name in stats.node.inputs if name not in inside]
    if isinstance(row, collapse.Group):
        sources = list(dict.fromkeys(sources))
    if sources == [previous] or not sources:  # nothing read: a learned tensor (parameter)
        return ""
    prefix = row.name.rsplit(".", 1)[0] + "." if "." in row.name else ""
    return "<- " + ", ".join(name.removeprefix(prefix) for name in sources)


def _kind(row) -> str:
    if isinstance(row, collapse.Group):
        return f"{row.kind} ({len(row.layers)} layers)"
    if row.layer.opaque:  # 'opaque torch.roll'
        return label_text(row.layer.label(row.input_shape))
    return row.kind + (f" {row.layer.activation}" if row.layer.activation else "")


COMPUTE = ("macs", "batch_macs", "flops", "batch_flops")


def _opaque(row) -> tuple[int, int]:
    """(opaque layers in the row, layers in the row): an opaque layer's MACs and FLOPs are unknown."""
    layers = collapse.members(row)
    return sum(1 for stats in layers if stats.layer.opaque), len(layers)


def _kernel(row) -> str:
    if isinstance(row, collapse.Group) or "kernel" not in row.layer.spec_fields:
        return ""
    shape = row.input_shape[0] if row.layer.merges else row.input_shape
    return "x".join(map(str, axes(row.layer.kernel, spatial_rank(shape), "kernel")))


def _trainable(row) -> str:
    if not row.params:
        return "--"
    return "True" if row.trainable_params == row.params else "False" if not row.trainable_params else "Partial"


def _input(row, analysis: Analysis, batch_axis: bool) -> str:
    first = collapse.members(row)[0]
    shapes = first.input_shape if first.layer.merges else (first.input_shape,)
    return ", ".join(shown_shape(shape, analysis, batch_axis) for shape in shapes)


def cell_writer(column: str, analysis: Analysis, extras: Extras, options: TableOptions, exact: bool):
    """A function giving a row's cell(s) in ``column`` (a tuple): as the table writes them, or
    ``exact`` (CSV: integers, shapes joined by x, the receptive field per axis)."""
    batch_axis = options.batch_axis
    if column == "kind":
        return lambda row: (row.kind if exact else _kind(row),)
    if column == "input":
        return lambda row: (_input(row, analysis, batch_axis),)
    if column == "output":
        return lambda row: (shown_shape(row.output_shape, analysis, batch_axis),)
    if column == "kernel":
        return lambda row: (_kernel(row),)
    if column == "formula":
        return lambda row: ("" if isinstance(row, collapse.Group) else formula(row.size_terms),)
    if column == "trainable":
        return lambda row: (_trainable(row),)
    if column == "rf":
        fields = extras.receptive_fields
        if exact:
            return lambda row: tuple("x".join(str(getattr(axis, key)) for axis in fields[collapse.members(row)[-1].name])
                                     for key in ("size", "jump", "start"))
        return lambda row: field_text(fields[collapse.members(row)[-1].name])
    if column == "kv_cache":
        cache = extras.sequence.kv_cache if extras.sequence is not None else None
        bytes_of = {name: cache.bytes_of(per_token) for name, per_token in cache.layers} if cache else {}

        def cached(row) -> int:
            return sum(bytes_of.get(stats.name, 0) for stats in collapse.members(row))
        return lambda row: (cached(row),) if exact else (decimal_bytes(cached(row)) if cached(row) else "",)
    value = collapse.figure(column, analysis)
    if column in COMPUTE:  # an opaque layer's: unknown ('?'; empty in CSV); a block holding one: '+?'
        def compute(row) -> tuple:
            opaque, layers = _opaque(row)
            if opaque == layers:
                return ("" if exact else "?",)
            known = value(row)
            return (known,) if exact else (human_count(known) + ("+?" if opaque else ""),)
        return compute
    if column == "params_percent":
        return lambda row: ("" if value(row) is None else f"{value(row):.2f}" if exact else f"{value(row):.2f}%",)
    if exact:
        return lambda row: (value(row),)
    if column == "params":  # a layer that shares another's parameters: counted there, once, as PyTorch does
        return lambda row: (f"shares {row.shares}" if getattr(row, "shares", None) is not None else f"{row.params:,}",)
    if column == "memory":
        return lambda row: (decimal_bytes(value(row)),)
    if column in ("trainable_params", "neurons", "scores"):
        return lambda row: (f"{value(row):,}",)
    return lambda row: (human_count(value(row)),)


def row_writer(columns: tuple, analysis: Analysis, extras: Extras, options: TableOptions, exact: bool):
    """A function giving a row's cells in ``columns``, in order (cell_writer)."""
    writers = [cell_writer(column, analysis, extras, options, exact) for column in columns]
    return lambda row: [cell for write in writers for cell in write(row)]


def layer_table(analysis: Analysis, extras: Extras, options: TableOptions, baseline: Analysis | None = None,
                title: str = "") -> Table:
    """The layer table: the name (and '<- inputs' where a row reads more than the row before),
    then the chosen columns; a layer's notes on rows of their own under the arithmetic (when it is
    shown). The weights that no longer fit at this input in bold yellow, notes in yellow."""
    columns = options.chosen(TABLE_COLUMNS, extras)
    chosen = [COLUMN_NAMES[name] for name in columns]
    headers = ("layer", *(header for column in chosen for header in column.headers))
    right = tuple(header for column in chosen if column.number for header in column.headers)
    table = Table(headers, right=right, title=title, under=COLUMN_NAMES["formula"].headers, fold=("layer",),
                  together=(COLUMN_NAMES["rf"].headers,))
    changed = changed_weights(analysis, baseline)
    rows = collapse.rows(analysis, options.depth)
    row_of = {stats.name: row.name for row in rows for stats in collapse.members(row)}
    previous = next(iter(analysis.input_shapes))
    formula_at = headers.index(COLUMN_NAMES["formula"].headers[0]) if "formula" in columns else None
    write = row_writer(columns, analysis, extras, options, exact=False)
    for row in rows:
        reads = reads_text(row, previous, row_of)
        texts = [row.name + (" " + reads if reads else ""), *write(row)]
        layers = collapse.members(row)
        table.add_row(*texts, style="bold yellow" if any(stats.name in changed for stats in layers) else None)
        if formula_at is not None and not isinstance(row, collapse.Group):
            for note in notes(row.size_terms) + opaque_notes(row):
                table.add_row(*("" if i != formula_at else f"! {note}" for i in range(len(headers))), style="yellow")
        previous = row.name
    return table


def opaque_notes(row) -> list[str]:
    """An opaque layer's note: what is and is not known of it."""
    if not row.layer.opaque:
        return []
    return ["opaque: shape and parameters as traced; MACs and FLOPs unknown, not counted"]


def opaque_line(analysis: Analysis) -> list[str]:
    """The summary's line on opaque layers, where there are any."""
    names = analysis.opaque
    if not names:
        return []
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return [f"not counted: {len(names)} opaque layer{'s' if len(names) > 1 else ''} ({shown}): their MACs and FLOPs "
            f"are unknown; compute leaves them out"]


def compute_line(analysis: Analysis) -> str:
    """'compute: 15.47 GMACs, 30.97 GFLOPs per sample' (and per batch when there is one)."""
    t = analysis.totals
    line = f"compute: {human_count(t.macs, 'MACs')}, {human_count(t.flops, 'FLOPs')} per sample"
    if analysis.batch > 1:
        line += (f"; per batch of {analysis.batch}: {human_count(t.batch_macs, 'MACs')}, "
                 f"{human_count(t.batch_flops, 'FLOPs')}")
    return line


def extra_lines(analysis: Analysis, extras: Extras, name=escape.visible) -> list[str]:
    """The sections' lines under the totals: the sequence figures, then training."""
    sequence = [] if extras.sequence is None else sequence_lines(extras.sequence, analysis.batch, analysis.dtype,
                                                                 name)
    return sequence + training_lines(analysis, extras, name)


def training_lines(analysis: Analysis, extras: Extras, name=escape.visible) -> list[str]:
    """The --train schedule (its peak, what it is made of, each phase's peak; the course's rule of
    thumb stays in the summary, labelled as such) and the --max-batch answer; ``name`` writes the
    layer name for the format (escape)."""
    from .memory import schedule_lines

    lines = []
    t = extras.training
    if t is not None:
        lines.append(f"training memory ({t.optimizer}, {f'mixed {t.mixed_precision}' if t.mixed_precision else analysis.dtype}, "
                     f"batch {analysis.batch}, {t.device} kernels), the layers replayed as PyTorch runs them:")
        lines += ["  " + line for line in schedule_lines(t, name)]
    if t is not None and extras.checkpointed is not None:
        from .memory import checkpoint_lines
        lines += checkpoint_lines(t, extras.checkpointed, [segment.name for segment in extras.segments], name=name)
    m = extras.max_batch
    if m is not None:
        precision = f", mixed {m.mixed_precision}" if m.mixed_precision else ""
        checkpointed = "" if m.checkpointed is None else \
            f", {m.checkpointed:,} with {m.segments} segment{'s' if m.segments > 1 else ''} checkpointed"
        lines.append(f"largest batch in {human_bytes(m.budget)}: inference {m.inference:,}, "
                     f"training {m.training:,}{checkpointed} ({m.optimizer}{precision}, {m.device} kernels)")
        if m.sharding is not None:
            lines.append(f"largest batch in {human_bytes(m.budget)} per GPU, {m.sharding[0]} on {m.sharding[1]} GPUs: "
                         f"{m.sharded:,} ({m.sharded // m.sharding[1]:,} per GPU)")
    if extras.sharding is not None:
        from .sharding import memory_lines
        lines += memory_lines(extras.sharding, *extras.rates, name=name)
    return lines


IM2COL_HEADERS = ("layer", "filters K x C/g*F^d", "columns C/g*F^d x N", "output K x N", "groups",
                  "column buffer")


def im2col_rows(analysis: Analysis, extras: Extras) -> list[tuple]:
    """One row per convolution: its matrix product at the batch (N = output positions x batch)."""
    batch, size = analysis.batch, DTYPE_BYTES[analysis.dtype]
    return [(stats.name, "x".join(map(str, u.filter_matrix)), "x".join(map(str, u.column_matrix(batch))),
             "x".join(map(str, u.output_matrix(batch))), str(u.groups), human_bytes(u.column_bytes(batch, size)))
            for stats, u in extras.unrolled or []]


def summary_lines(analysis: Analysis, baseline: Analysis | None = None, name=escape.visible,
                  extras: Extras | None = None) -> list[str]:
    """The totals: counts, compute, memory (the schedule's inference peak where ``extras`` has
    it, then the course's rule: parameters + activations, x2 for training), changed weights."""
    t = analysis.totals
    batch = f"batch {analysis.batch}, {analysis.dtype}"
    scores = f", attention scores {human_bytes(t.scores * analysis.batch * DTYPE_BYTES[analysis.dtype])} of it" \
        if t.scores else ""
    lines = [
        f"params: {t.params:,}" + (f" ({t.trainable_params:,} trainable)" if t.non_trainable_params else "")
        + (f", buffers: {t.buffers:,}" if t.buffers else ""),
        f"neurons: {t.neurons:,} per sample (input not counted)",
        compute_line(analysis),
        *opaque_line(analysis),
        input_size_line(analysis),
        f"parameter memory: {human_bytes(t.param_bytes + t.buffer_bytes)} ({analysis.dtype})",
        f"activation memory: {human_bytes(t.activation_bytes)} ({batch}{scores})",
        *inference_line(analysis, extras or Extras(), name),
        f"course's rule, forward pass: {human_bytes(t.forward_bytes)} = parameters + activations",
        f"course's rule, training (x2): {human_bytes(t.training_bytes_estimate)}",
    ]
    for layer, before in changed_weights(analysis, baseline).items():
        now = analysis.layer(layer).params
        lines.append(f"weights no longer fit: {name(layer)} has {now:,} params at input "
                     f"{shape_text(analysis.input_shape)} but {before:,} at the spec's "
                     f"{shape_text(analysis.spec.input_shape)}")
    return lines


def inference_line(analysis: Analysis, extras: Extras, name=escape.visible) -> list[str]:
    """'inference peak: 592.57 MB (565.12 MiB) at conv2 (batch 1, cuda kernels: ...)', as archcalc
    memory gives it; or why it was not replayed; nothing where it was not asked for."""
    if extras.inference is None:
        return [f"inference peak: not replayed: {extras.not_replayed}"] if extras.not_replayed else []
    schedule = extras.inference
    moment = schedule.peak_moment()
    where = f" at {name(moment.layer)}" if moment.layer else ""
    return [f"inference peak: {human_bytes(schedule.peak())}{where} (batch {analysis.batch}, {schedule.device} "
            f"kernels: the layers replayed as PyTorch runs them)"]


def input_size_line(analysis: Analysis) -> str:
    """'input size: 618.35 kB (603.86 KiB) (batch 1, float32)', as torchinfo's 'Input size (MB)'."""
    return (f"input size: {human_bytes(collapse.input_bytes(analysis))} "
            f"(batch {analysis.batch}, {analysis.dtype})")


def to_markdown(analysis: Analysis, baseline: Analysis | None = None, extras: Extras | None = None,
                options: TableOptions | None = None) -> str:
    """The table report as markdown: the same layer table (names with '<- inputs', notes on rows
    of their own, every cell escaped), the totals as a list, the conventions."""
    extras, options = extras or Extras(), options or TableOptions()
    name = escape.markdown
    word, _, shapes = inputs_text(analysis, options.batch_axis).partition(" ")
    out = [f"# {name(analysis.spec.name)}", "", f"{word}: {name(shapes)}", ""]
    out += markdown_table(layer_table(analysis, extras, options, baseline))
    out += [""] + [f"- {line}" for line in summary_lines(analysis, baseline, name, extras) +
                   extra_lines(analysis, extras, name)]
    if extras.unrolled is not None:
        out += ["", f"Convolutions as matrix products (batch {analysis.batch}):", ""]
        out += markdown_table(im2col_table(analysis, extras))
    every = all_conventions(analysis, extras)
    out += ["", "Conventions: " + "; ".join(f"{k}: {v}" for k, v in every.items()), ""]
    return "\n".join(out)


def to_csv(analysis: Analysis, baseline: Analysis | None = None, extras: Extras | None = None,
           options: TableOptions | None = None) -> str:
    """One row per layer (or per block at --depth), exact integers (MACs and FLOPs per sample),
    the receptive field's size, jump and start per axis joined by 'x'; a 'shares' column (the layer
    whose parameters a layer uses, its own params then 0) when a layer shares weights; then a row
    'total' with the network's totals in the columns that have one."""
    extras, options = extras or Extras(), options or TableOptions()
    columns = options.chosen(CSV_COLUMNS, extras)
    if options.columns is None:  # the sequence figures that have a value per layer
        cache = extras.sequence.kv_cache if extras.sequence is not None else None
        columns += ("scores",) * bool(analysis.totals.scores) + ("kv_cache",) * (cache is not None)
    sharing = any(stats.shares is not None for stats in analysis.layers)
    header = ["name", *(h for name in columns for h in CSV_HEADERS.get(name, (name,)))] + (["shares"] if sharing else [])
    write = row_writer(columns, analysis, extras, options, exact=True)
    rows = [[row.name, *write(row)]
            + ([getattr(row, "shares", None) or ""] if sharing else []) for row in collapse.rows(analysis, options.depth)]
    totals = analysis.totals
    summed = {"params": totals.params, "trainable_params": totals.trainable_params, "neurons": totals.neurons,
              "macs": totals.macs, "batch_macs": totals.batch_macs, "flops": totals.flops,
              "batch_flops": totals.batch_flops, "memory": totals.forward_bytes, "scores": totals.scores}
    if extras.sequence is not None and extras.sequence.kv_cache is not None:
        summed["kv_cache"] = extras.sequence.kv_cache.total_bytes
    rows.append(["total", *(summed.get(name, "") for name in columns for _ in CSV_HEADERS.get(name, (name,)))]
                + ([""] if sharing else []))
    return escape.csv_text(rows, header)


UNITS_NOTE = footnote("bytes", "shapes", "neurons", "macs")


def print_table(analysis: Analysis, baseline: Analysis | None = None, file=None,
                extras: Extras | None = None, options: TableOptions | None = None) -> None:
    """The default, human report: the layer table, then the totals with units (rich on a
    terminal, plain text elsewhere: output.write decides)."""
    write(table_report(analysis, baseline, extras or Extras(), options), file)


def im2col_table(analysis: Analysis, extras: Extras) -> Table:
    unrolled = Table(IM2COL_HEADERS, right=IM2COL_HEADERS[1:],
                     title=f"Convolutions as matrix products (im2col), batch {analysis.batch}", fold=("layer",))
    for row in im2col_rows(analysis, extras):
        unrolled.add_row(*row)
    return unrolled


def table_report(analysis: Analysis, baseline: Analysis | None, extras: Extras,
                 options: TableOptions | None = None) -> list:
    """The table report as output blocks: changed weights and notes in yellow, units dim."""
    options = options or TableOptions()
    title = f"{analysis.spec.name}: {inputs_text(analysis, options.batch_axis)}"
    blocks: list = [layer_table(analysis, extras, options, baseline, title)]
    if extras.unrolled is not None:
        blocks.append(im2col_table(analysis, extras))
    blocks += [(line, "bold yellow" if line.startswith("weights") else "")
               for line in summary_lines(analysis, baseline, extras=extras) + extra_lines(analysis, extras)]
    return blocks + [(UNITS_NOTE, "dim")]


def render_text(analysis: Analysis, fmt: str, baseline: Analysis | None = None,
                extras: Extras | None = None, options: TableOptions | None = None) -> str:
    """Any non-table format as text (JSON lists every layer: TableOptions do not apply)."""
    if fmt == "json":
        return to_json(analysis, baseline, extras)
    return {"markdown": to_markdown, "csv": to_csv}[fmt](analysis, baseline, extras, options)
