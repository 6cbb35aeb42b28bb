"""Formatting an Analysis: rich table, JSON, markdown, CSV. No arithmetic happens here."""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..analysis.conventions import EXTRA_CONVENTIONS, conventions, footnote
from ..analysis.receptive import field_text
from ..analysis.walk import Analysis
from ..choices import DTYPE_BYTES
from ..layers import Steps, shape_text
from ..units import human_bytes, human_count
from . import escape
from .output import JSON_SCHEMA_VERSION, Table, write
from .wording import formula, notes


@dataclass(frozen=True)
class Extras:
    """inspect's optional sections, computed by the library before any formatting."""

    receptive_fields: dict | None = None   # receptive.receptive_fields(): {layer name: Field}
    training: object | None = None         # training.TrainingMemory (--train)
    max_batch: object | None = None        # training.MaxBatch (--max-batch)
    unrolled: list | None = None           # im2col.unrolled_layers(): [(LayerStats, Unrolled)] (--im2col)
    sharding: object | None = None         # sharding.ShardedMemory (--gpus/--shard)
    rates: tuple = (None, None)            # (--bandwidth bytes/s, --throughput FLOPs/s) for its times


def extras(analysis: Analysis, *, receptive_field: bool = False, train: bool = False, optimizer: str = "adam",
           mixed_precision: str | None = None, budget: int | None = None, im2col: bool = False,
           sharding: dict | None = None, rates: tuple = (None, None)) -> Extras:
    """The sections asked for, each from its library function; ``sharding``: sharded_memory's
    strategy, gpus and shard_units (--gpus/--shard)."""
    from ..analysis.im2col import unrolled_layers
    from ..analysis.memory import max_batch, training_memory
    from ..analysis.receptive import receptive_fields

    return Extras(receptive_fields(analysis) if receptive_field else None,
                  training_memory(analysis, optimizer, mixed_precision) if train else None,
                  max_batch(analysis, budget, optimizer, mixed_precision) if budget is not None else None,
                  unrolled_layers(analysis) if im2col else None,
                  _sharding(analysis, sharding, optimizer, mixed_precision), rates)


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
               "im2col": extras.unrolled is not None}
    return {key: text for key, text in EXTRA_CONVENTIONS.items() if present[key]}


def all_conventions(analysis: Analysis, extras: Extras) -> dict:
    """The conventions of the report: the figures' and those of the sections present."""
    return {**conventions(analysis.dtype, analysis.batch), **extra_conventions(extras)}


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
            "input_shape": list(stats.input_shape),
            "output_shape": list(stats.output_shape),
            "output_layout": layout(stats.output_shape),
            "params": stats.params,
            "trainable_params": stats.trainable_params,
            "buffers": stats.buffers,
            "neurons": stats.neurons,
            "formula": formula(stats.size_terms),
            "hyperparameters": {k: list(v) if isinstance(v, tuple) else v
                                for k, v in stats.layer.hyperparameters().items()},
            "notes": notes(stats.size_terms),
            "line": stats.node.location.line,
            "macs": stats.macs,
            "flops": stats.flops,
        }
        if stats.shares is not None:  # its parameters are counted at that layer, once
            entry["shares"] = stats.shares
        if stats.node.frozen:
            entry["frozen"] = list(stats.node.frozen)
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
        },
        **extras_dict(extras),
    }


def im2col_dict(unrolled, analysis: Analysis) -> dict:
    batch = analysis.batch
    return {"filter_matrix": list(unrolled.filter_matrix), "column_matrix": list(unrolled.column_matrix(batch)),
            "output_matrix": list(unrolled.output_matrix(batch)), "groups": unrolled.groups,
            "column_bytes": unrolled.column_bytes(batch, DTYPE_BYTES[analysis.dtype])}


def extras_dict(extras: Extras) -> dict:
    """The top-level JSON keys of the sections present: training, max_batch."""
    found = {}
    if extras.training is not None:
        t = extras.training
        found["training"] = {
            "optimizer": t.optimizer, "mixed_precision": t.mixed_precision, "batch": t.batch,
            "weight_bytes": t.weight_bytes, "gradient_bytes": t.gradient_bytes,
            "optimizer_bytes": t.optimizer_bytes, "activation_bytes": t.activation_bytes,
            "largest_layer": t.largest_layer, "largest_layer_bytes": t.largest_layer_bytes,
            "fixed_bytes": t.fixed_bytes, "per_sample_bytes": t.sample_bytes, "total_bytes": t.total_bytes,
            "rule_of_thumb_bytes": t.rule_of_thumb_bytes,
        }
    if extras.max_batch is not None:
        m = extras.max_batch
        found["max_batch"] = {"budget_bytes": m.budget, "inference": m.inference, "training": m.training,
                              "optimizer": m.optimizer, "mixed_precision": m.mixed_precision}
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


def inputs_text(analysis: Analysis) -> str:
    """'input 3x227x227 (C x H x W)', or each named input of a multi-input network."""
    if len(analysis.spec.inputs) > 1:
        return "inputs " + ", ".join(f"{name} {shape_text(shape)}" for name, shape in analysis.spec.inputs.items())
    text = shape_text(analysis.input_shape)
    layout = {2: " (C x L)", 3: " (C x H x W)", 4: " (C x D x H x W)"}.get(len(analysis.input_shape), "")
    return f"input {text}" + ("" if "(" in text else layout)


def reads_text(stats, previous: str) -> str:
    """'<- a, b' when a layer reads something other than the layer just before it."""
    if stats.node.inputs == (previous,):
        return ""
    prefix = stats.name.rsplit(".", 1)[0] + "." if "." in stats.name else ""
    return "<- " + ", ".join(name.removeprefix(prefix) for name in stats.node.inputs)


def _rows(analysis: Analysis, name=escape.visible, extras: Extras | None = None):
    """The layer table's rows; ``name`` writes the layer names for the format (escape)."""
    previous = next(iter(analysis.spec.inputs or {"input": None}))
    fields = extras.receptive_fields if extras else None
    for stats in analysis.layers:
        kind = stats.kind + (f" {stats.layer.activation}" if stats.layer.activation else "")
        reads = reads_text(stats, previous)
        row = ((name(stats.name) + " " + name(reads) if reads else name(stats.name)), kind,
               shape_text(stats.output_shape), formula(stats.size_terms), params_text(stats, name), f"{stats.neurons:,}",
               human_count(stats.macs),
               human_count(stats.flops))
        yield row + (field_text(fields[stats.name]) if fields is not None else ())
        previous = stats.name


def params_text(stats, name=escape.visible) -> str:
    """The params cell: the count, or 'shares conv1' for a layer that uses another's parameters
    (counted there, once, as PyTorch counts a module applied twice)."""
    return f"shares {name(stats.shares)}" if stats.shares is not None else f"{stats.params:,}"


HEADERS = ("layer", "kind", "output", "(D-F+2P)/S+1", "params", "neurons", "MACs", "FLOPs")
FIELD_HEADERS = ("field", "jump", "start")  # with --receptive-field
NUMBER_HEADERS = ("params", "neurons", "MACs", "FLOPs", *FIELD_HEADERS)


def headers(extras: Extras | None) -> tuple:
    return HEADERS + (FIELD_HEADERS if extras and extras.receptive_fields is not None else ())


def compute_line(analysis: Analysis) -> str:
    """'compute: 15.47 GMACs, 30.97 GFLOPs per sample' (and per batch when there is one)."""
    t = analysis.totals
    line = f"compute: {human_count(t.macs, 'MACs')}, {human_count(t.flops, 'FLOPs')} per sample"
    if analysis.batch > 1:
        line += (f"; per batch of {analysis.batch}: {human_count(t.batch_macs, 'MACs')}, "
                 f"{human_count(t.batch_flops, 'FLOPs')}")
    return line


def training_lines(analysis: Analysis, extras: Extras, name=escape.visible) -> list[str]:
    """The --train breakdown and the --max-batch answer, with the rule of thumb beside the total;
    ``name`` writes the layer name for the format (escape)."""
    lines = []
    t = extras.training
    if t is not None:
        precision = f"mixed {t.mixed_precision}" if t.mixed_precision else analysis.dtype
        lines += [
            f"training memory ({t.optimizer}, {precision}, batch {t.batch}):",
            f"  weights: {human_bytes(t.weight_bytes)}"
            + (" (fp32 master + 16-bit copy)" if t.mixed_precision else ""),
            f"  gradients: {human_bytes(t.gradient_bytes)} (one per trainable parameter)",
            f"  optimizer state: {human_bytes(t.optimizer_bytes)} ({t.optimizer})",
            f"  activations kept for backprop: {human_bytes(t.activation_bytes)} "
            f"(input + every layer's output, x batch {t.batch})",
            f"  largest layer: {name(t.largest_layer)}, {human_bytes(t.largest_layer_bytes)} "
            f"(its gradient, once, at the backward peak)",
            f"  total: {human_bytes(t.total_bytes)}; the course's rule of thumb (2 x forward): "
            f"{human_bytes(t.rule_of_thumb_bytes)}",
            "  measured peaks on an H200 (forward + backward, no optimizer step) were 0.76-1.26x this model:",
            "  VGG16 1.03, AlexNet 1.19, ResNet-50 0.76 (benchmarks/results/gpu_check.md)",
        ]
    m = extras.max_batch
    if m is not None:
        precision = f", mixed {m.mixed_precision}" if m.mixed_precision else ""
        lines.append(f"largest batch in {human_bytes(m.budget)}: inference {m.inference:,}, "
                     f"training {m.training:,} ({m.optimizer}{precision})")
    if extras.sharding is not None:
        from .sharding import memory_lines
        lines += memory_lines(extras.sharding, *extras.rates, name=name)
    return lines


IM2COL_HEADERS = ("layer", "filters K x C/g*F^d", "columns C/g*F^d x N", "output K x N", "groups",
                  "column buffer")


def im2col_rows(analysis: Analysis, extras: Extras, name=escape.visible) -> list[tuple]:
    """One row per convolution: its matrix product at the batch (N = output positions x batch)."""
    batch, size = analysis.batch, DTYPE_BYTES[analysis.dtype]
    return [(name(stats.name), "x".join(map(str, u.filter_matrix)), "x".join(map(str, u.column_matrix(batch))),
             "x".join(map(str, u.output_matrix(batch))), str(u.groups), human_bytes(u.column_bytes(batch, size)))
            for stats, u in extras.unrolled or []]


def summary_lines(analysis: Analysis, baseline: Analysis | None = None, name=escape.visible) -> list[str]:
    t = analysis.totals
    batch = f"batch {analysis.batch}, {analysis.dtype}"
    lines = [
        f"params: {t.params:,}" + (f" ({t.trainable_params:,} trainable)" if t.non_trainable_params else "")
        + (f", buffers: {t.buffers:,}" if t.buffers else ""),
        f"neurons: {t.neurons:,} per sample (input not counted)",
        compute_line(analysis),
        f"parameter memory: {human_bytes(t.param_bytes + t.buffer_bytes)} ({analysis.dtype})",
        f"activation memory: {human_bytes(t.activation_bytes)} ({batch})",
        f"forward pass: {human_bytes(t.forward_bytes)} = parameters + activations",
        f"training, rule of thumb (x2): {human_bytes(t.training_bytes_estimate)}",
    ]
    for layer, before in changed_weights(analysis, baseline).items():
        now = analysis.layer(layer).params
        lines.append(f"weights no longer fit: {name(layer)} has {now:,} params at input "
                     f"{shape_text(analysis.input_shape)} but {before:,} at the spec's "
                     f"{shape_text(analysis.spec.input_shape)}")
    return lines


def _markdown_table(header: tuple, rows) -> list[str]:
    """The first column holds names: escaped for markdown (escape.markdown); in the others a '|'."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join([escape.markdown(row[0]), *(cell.replace("|", "\\|") for cell in row[1:])])
                    + " |" for row in rows]


def to_markdown(analysis: Analysis, baseline: Analysis | None = None, extras: Extras | None = None) -> str:
    extras = extras or Extras()
    name = escape.markdown
    out = [f"# {name(analysis.spec.name)}", "", f"input: {shape_text(analysis.input_shape)}", ""]
    out += _markdown_table(headers(extras), _rows(analysis, str, extras=extras))
    out += [""] + [f"- {line}" for line in summary_lines(analysis, baseline, name) +
                   training_lines(analysis, extras, name)]
    if extras.unrolled is not None:
        out += ["", f"Convolutions as matrix products (batch {analysis.batch}):", ""]
        out += _markdown_table(IM2COL_HEADERS, im2col_rows(analysis, extras, str))
    every = all_conventions(analysis, extras)
    out += ["", "Conventions: " + "; ".join(f"{k}: {v}" for k, v in every.items()), ""]
    return "\n".join(out)


def to_csv(analysis: Analysis, baseline: Analysis | None = None, extras: Extras | None = None) -> str:
    """One row per layer, exact integers (MACs and FLOPs per sample); the receptive field's size,
    jump and start per axis joined by 'x' with --receptive-field; a 'shares' column (the layer
    whose parameters a layer uses, its own params then 0) when a layer shares weights."""
    fields = extras.receptive_fields if extras else None
    sharing = any(stats.shares is not None for stats in analysis.layers)
    header = ["name", "kind", "output_shape", "params", "trainable_params", "neurons", "formula", "macs",
              "flops"] + (["rf_size", "rf_jump", "rf_start"] if fields is not None else []) + (
              ["shares"] if sharing else [])
    rows = []
    for stats in analysis.layers:
        row = [stats.name, stats.kind, shape_text(stats.output_shape), stats.params, stats.trainable_params,
               stats.neurons, formula(stats.size_terms), stats.macs, stats.flops]
        if fields is not None:
            row += ["x".join(str(getattr(axis, key)) for axis in fields[stats.name])
                    for key in ("size", "jump", "start")]
        if sharing:
            row.append(stats.shares or "")
        rows.append(row)
    return escape.csv_text(rows, header)


UNITS_NOTE = footnote("bytes", "shapes", "neurons", "macs")


def print_table(analysis: Analysis, baseline: Analysis | None = None, file=None,
                extras: Extras | None = None) -> None:
    """The default, human report: the layer table, then the totals with units (rich on a
    terminal, plain text elsewhere: output.write decides)."""
    write(table_report(analysis, baseline, extras or Extras()), file)


def table_report(analysis: Analysis, baseline: Analysis | None, extras: Extras) -> list:
    """The table report as output blocks: changed weights and notes in yellow, units dim."""
    table = Table(headers(extras), right=NUMBER_HEADERS, title=f"{analysis.spec.name}: {inputs_text(analysis)}",
                  under=(HEADERS[3],), fold=("layer",), together=(FIELD_HEADERS,))
    changed = changed_weights(analysis, baseline)
    for stats, row in zip(analysis.layers, _rows(analysis, extras=extras)):
        table.add_row(*row, style="bold yellow" if stats.name in changed else None)
        for note in notes(stats.size_terms):
            table.add_row("", "", "", f"! {note}", *[""] * (len(row) - 4), style="yellow")
    blocks = [table]
    if extras.unrolled is not None:
        unrolled = Table(IM2COL_HEADERS, right=IM2COL_HEADERS[1:],
                         title=f"Convolutions as matrix products (im2col), batch {analysis.batch}")
        for row in im2col_rows(analysis, extras):
            unrolled.add_row(*row)
        blocks.append(unrolled)
    blocks += [(line, "bold yellow" if line.startswith("weights") else "")
               for line in summary_lines(analysis, baseline) + training_lines(analysis, extras)]
    return blocks + [(UNITS_NOTE, "dim")]


def render_text(analysis: Analysis, fmt: str, baseline: Analysis | None = None,
                extras: Extras | None = None) -> str:
    """Any non-table format as text."""
    return {"json": to_json, "markdown": to_markdown, "csv": to_csv}[fmt](analysis, baseline, extras)
