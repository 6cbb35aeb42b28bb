"""The verification report of ``archcalc run`` (a verification.Verification): a table or JSON.

Formatting only; no torch."""
from __future__ import annotations

import json

from ..analysis.conventions import conventions, footnote
from ..layers import shape_text
from ..units import human_bytes
from .output import JSON_SCHEMA_VERSION, Table, write
from .report import inputs_text

HEADERS = ("", "layer", "kind", "analyzer", "PyTorch", "analyzer params", "PyTorch params")  # the mark first
OK, CROSS = "✓", "✗"


def print_verification(result, file=None) -> None:
    """The checks layer by layer, then the totals and timings (rich or plain: output.write)."""
    write(table_report(result), file)


def table_report(result) -> list:
    """print_verification's output blocks: a green tick or a red cross per layer, units dim."""
    analysis = result.analysis
    title = (f"{analysis.spec.name}: {inputs_text(analysis)}, batch {analysis.batch}, {result.dtype}, "
             f"on {result.device_name}")
    table = Table(HEADERS, right=tuple(header for header in HEADERS if "params" in header), title=title,
                  fold=("layer",))
    for check in result.checks:
        actual = "-" if check.actual_shape is None else shape_text(check.actual_shape)
        mark = (OK, "green") if check.ok else (CROSS, "bold red")
        table.add_row(mark, check.name, check.kind, shape_text(check.predicted_shape), actual,
                      f"{check.predicted_params:,}", f"{check.actual_params:,}")
    figures = ("shapes", "bytes") if any(t.peak_bytes is not None for t in result.timings) else ("shapes",)
    return [table, *summary_lines(result), (footnote(*figures), "dim")]


def summary_lines(result) -> list[str]:
    totals = result.analysis.totals
    agree = OK if result.ok else CROSS
    lines = [f"params: analyzer {totals.params:,}, PyTorch {result.actual_params:,} "
             f"(trainable {totals.trainable_params:,} / {result.actual_trainable:,}) {agree}"]
    for timing in result.timings:
        what = "forward" if timing.mode == "forward" else "forward + backward"
        lines.append(f"{what}: {timing.milliseconds:.2f} ms per batch of {timing.batch}, "
                     f"{timing.samples_per_second:,.1f} samples/s ({timing.iterations} runs after warm-up)")
        if timing.peak_bytes is not None and timing.predicted_bytes is None:
            lines.append(f"  peak memory: measured {human_bytes(timing.peak_bytes)}, not predicted (the memory "
                         f"schedule does not replay this many operations)")
        elif timing.peak_bytes is not None:
            lines.append(f"  peak memory: measured {human_bytes(timing.peak_bytes)}, predicted "
                         f"{human_bytes(timing.predicted_bytes)} (the memory schedule): ratio {timing.memory_ratio:.2f}")
    for name, values in result.outputs.items():
        shape = shape_text(result.analysis.output_shapes[name])
        lines.append(f"output {name} ({shape}): {values_text(values)}")
    lines += [f"note: {note}" for note in result.notes]
    if result.ok:
        count = len(result.checks)
        lines.append(f"{agree} PyTorch agrees with the analyzer on {'all ' if count > 1 else ''}{count} "
                     f"layer{'s' if count > 1 else ''}")
    else:
        lines += [f"{CROSS} {line}" for line in result.disagreements]
    return lines


def to_json(result) -> str:
    totals = result.analysis.totals
    data = {
        "schema_version": JSON_SCHEMA_VERSION,
        "name": result.analysis.spec.name,
        "device": result.device,
        "device_name": result.device_name,
        "dtype": result.dtype,
        "batch": result.analysis.batch,
        "ok": result.ok,
        "disagreements": result.disagreements,
        "layers": [{"name": c.name, "kind": c.kind, "predicted_shape": list(c.predicted_shape),
                    "actual_shape": None if c.actual_shape is None else list(c.actual_shape),
                    "predicted_params": c.predicted_params, "actual_params": c.actual_params, "ok": c.ok}
                   for c in result.checks],
        "totals": {"predicted_params": totals.params, "actual_params": result.actual_params,
                   "predicted_trainable_params": totals.trainable_params,
                   "actual_trainable_params": result.actual_trainable},
        "timings": [{"mode": t.mode, "iterations": t.iterations, "seconds": t.seconds,
                     "ms_per_batch": t.milliseconds, "samples_per_second": t.samples_per_second,
                     "peak_bytes": t.peak_bytes, "predicted_bytes": t.predicted_bytes,
                     "memory_ratio": t.memory_ratio} for t in result.timings],
        "outputs": result.outputs,
        "notes": list(result.notes),
        "conventions": {key: text for key, text in conventions(result.dtype, result.analysis.batch).items()
                        if key in ("shapes", "params", "bytes")},
    }
    return json.dumps(data, indent=2) + "\n"


def values_text(values) -> str:
    """Nested lists of numbers, 4 decimals at most: [[21, 21, 26, -7]]."""
    if isinstance(values, list):
        return "[" + ", ".join(values_text(item) for item in values) + "]"
    text = f"{values:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
