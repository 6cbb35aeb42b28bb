"""Formatting an Analysis: rich table, JSON, markdown, CSV. No arithmetic happens here."""
from __future__ import annotations

import csv
import io
import json

from .analysis import DTYPE_BYTES, Analysis
from .layers import Steps, shape_text
from .units import human_bytes

FORMATS = ("table", "json", "markdown", "csv")
JSON_SCHEMA_VERSION = 1


def conventions(analysis: Analysis) -> dict:
    """The conventions every number in a report follows, stated once."""
    size = DTYPE_BYTES[analysis.dtype]
    return {
        "shapes": "per sample, channels first (C x H x W), no batch axis",
        "params": "learnable weights + biases, as PyTorch's parameters() counts them; "
                  "buffers (BatchNorm running statistics) apart",
        "neurons": "output elements of each layer for one sample; standalone activations, dropout "
                   "and flatten add 0; pools and norms count; the input is not counted",
        "bytes": f"count x {size} ({analysis.dtype}); activations x batch {analysis.batch}; "
                 "1 kB = 1000 B, 1 MB = 10^6 B; KiB/MiB/GiB are binary (2^10, 2^20, 2^30)",
        "training_estimate": "the course's rule of thumb: about twice the forward memory",
    }


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


def to_dict(analysis: Analysis, baseline: Analysis | None = None) -> dict:
    """The JSON document (schema version 1, documented in the README)."""
    changed = changed_weights(analysis, baseline)
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
            "formula": stats.formula,
            "hyperparameters": {k: list(v) if isinstance(v, tuple) else v
                                for k, v in stats.layer.hyperparameters().items()},
            "notes": list(stats.notes),
            "line": stats.node.location.line,
        }
        if stats.name in changed:
            entry["params_at_spec_input"] = changed[stats.name]
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
        "conventions": conventions(analysis),
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
        },
    }


def to_json(analysis: Analysis, baseline: Analysis | None = None) -> str:
    return json.dumps(to_dict(analysis, baseline), indent=2) + "\n"


def inputs_text(analysis: Analysis) -> str:
    """'input 3x227x227 (C x H x W)', or each named input of a multi-input network."""
    if len(analysis.spec.inputs) > 1:
        return "inputs " + ", ".join(f"{name} {shape_text(shape)}" for name, shape in analysis.spec.inputs.items())
    text = shape_text(analysis.input_shape)
    return f"input {text}" + ("" if "(" in text else " (C x H x W)" if len(analysis.input_shape) > 1 else "")


def reads_text(stats, previous: str) -> str:
    """'<- a, b' when a layer reads something other than the layer just before it."""
    if stats.node.inputs == (previous,):
        return ""
    prefix = stats.name.rsplit(".", 1)[0] + "." if "." in stats.name else ""
    return "<- " + ", ".join(name.removeprefix(prefix) for name in stats.node.inputs)


def _rows(analysis: Analysis, reads_separator: str = " "):
    previous = next(iter(analysis.spec.inputs or {"input": None}))
    for stats in analysis.layers:
        kind = stats.kind + (f" {stats.layer.activation}" if stats.layer.activation else "")
        reads = reads_text(stats, previous)
        yield (stats.name + (reads_separator + reads if reads else ""), kind, shape_text(stats.output_shape), stats.formula,
               f"{stats.params:,}", f"{stats.neurons:,}")
        previous = stats.name


HEADERS = ("layer", "kind", "output", "(D-F+2P)/S+1", "params", "neurons")


def summary_lines(analysis: Analysis, baseline: Analysis | None = None) -> list[str]:
    t = analysis.totals
    batch = f"batch {analysis.batch}, {analysis.dtype}"
    lines = [
        f"params: {t.params:,}" + (f" ({t.trainable_params:,} trainable)" if t.non_trainable_params else "")
        + (f", buffers: {t.buffers:,}" if t.buffers else ""),
        f"neurons: {t.neurons:,} per sample (input not counted)",
        f"parameter memory: {human_bytes(t.param_bytes + t.buffer_bytes)} ({analysis.dtype})",
        f"activation memory: {human_bytes(t.activation_bytes)} ({batch})",
        f"forward pass: {human_bytes(t.forward_bytes)} = parameters + activations",
        f"training, rule of thumb (x2): {human_bytes(t.training_bytes_estimate)}",
    ]
    for name, before in changed_weights(analysis, baseline).items():
        now = analysis.layer(name).params
        lines.append(f"weights no longer fit: {name} has {now:,} params at input "
                     f"{shape_text(analysis.input_shape)} but {before:,} at the spec's "
                     f"{shape_text(analysis.spec.input_shape)}")
    return lines


def to_markdown(analysis: Analysis, baseline: Analysis | None = None) -> str:
    out = [f"# {analysis.spec.name}", "", f"input: {shape_text(analysis.input_shape)}", "",
           "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _rows(analysis)]
    out += [""] + [f"- {line}" for line in summary_lines(analysis, baseline)]
    out += ["", "Conventions: " + "; ".join(f"{k}: {v}" for k, v in conventions(analysis).items()), ""]
    return "\n".join(out)


def to_csv(analysis: Analysis, baseline: Analysis | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "kind", "output_shape", "params", "trainable_params", "neurons", "formula"])
    for stats in analysis.layers:
        writer.writerow([stats.name, stats.kind, shape_text(stats.output_shape), stats.params,
                         stats.trainable_params, stats.neurons, stats.formula])
    return buffer.getvalue()


def print_table(analysis: Analysis, baseline: Analysis | None = None, file=None) -> None:
    """The default, human report: a rich table then the totals with units."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, highlight=False)
    if not console.is_terminal:  # a pipe or file has no width: don't squeeze the table into 80
        console.width = max(console.width, 120)
    title = f"{analysis.spec.name}: {inputs_text(analysis)}"
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for header in HEADERS:
        table.add_column(header, justify="right" if header in ("params", "neurons") else "left",
                         no_wrap=header != HEADERS[3])
    changed = changed_weights(analysis, baseline)
    for stats, row in zip(analysis.layers, _rows(analysis, reads_separator="\n  ")):
        style = "bold yellow" if stats.name in changed else None
        table.add_row(*row, style=style)
        for note in stats.notes:
            table.add_row("", "", "", f"[yellow]! {note}[/]", "", "")
    console.print(table)
    for line in summary_lines(analysis, baseline):
        console.print(("[bold yellow]" if line.startswith("weights") else "") + line, markup=True)
    console.print(f"[dim]Units: 1 MB = 10^6 bytes, 1 MiB = 2^20 bytes. Shapes are per sample, "
                  f"channels first. Neurons exclude the input and activation/dropout/flatten layers.[/]")


def render_text(analysis: Analysis, fmt: str, baseline: Analysis | None = None) -> str:
    """Any non-table format as text."""
    return {"json": to_json, "markdown": to_markdown, "csv": to_csv}[fmt](analysis, baseline)
