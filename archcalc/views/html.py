"""The report as one self-contained HTML page (``inspect -f html``), and the fragment of it that
``archcalc serve`` replaces on every edit.

The page needs no network when it is viewed (it opens from file://): its style and script are
inline (views/web/report.css, report.js), the diagram is inline SVG (views/render.py's Graphviz
drawing), and a Content-Security-Policy lets no other script run and nothing load. Every figure is
another view's: the layer table is report.layer_table, the totals report.summary_lines and
extra_lines (the sequence figures, training), the memory figures the schedule's (views/memory.py), each layer's arithmetic
explain's board. This module only lays them out, and writes every text through escape.html: a
layer named ``<script>`` stays text.

Hovering or clicking a layer's box in the diagram (or its row) shows its board and highlights both:
a row and a board carry the id of the layer's box (render.box_ids), which Graphviz writes as the
``<title>`` of the box's ``<g class="node">``.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from importlib import resources

from ..analysis import collapse
from ..analysis.schedule import schedule
from ..analysis.walk import Analysis
from ..errors import ArchcalcError
from ..layers import shape_text
from . import explain, render
from .escape import html
from .memory import schedule_lines
from .output import Table
from .report import (
    UNITS_NOTE,
    Extras,
    TableOptions,
    all_conventions,
    extra_lines,
    im2col_table,
    inputs_text,
    layer_table,
    summary_lines,
)

NUMBER = ' class="ac-num"'  # a number column's cells: right-aligned, tabular figures
WRAP = ' class="ac-wrap"'  # the arithmetic column's: the one that may wrap (at its spaces)
DIAGRAM_SECONDS = 60  # inspect -f html: a Graphviz layout still running then is stopped, the page says so
HINT = "Point at a layer in the diagram or the table to see its arithmetic; click to keep it."


@dataclass(frozen=True)
class Diagram:
    """The drawing of a report: its SVG, or why there is none (no Graphviz, too slow to lay out);
    neither: drawn later (archcalc serve fetches it after the table)."""

    svg: str = ""
    note: str = ""


def diagram(analysis: Analysis, timeout: float | None = None) -> Diagram:
    """The analysis drawn as SVG (top to bottom, compact); a drawing that cannot be made is a note
    in its place, so the report still shows every figure."""
    try:
        return Diagram(render.to_svg(analysis, timeout=timeout))
    except ArchcalcError as exc:
        return Diagram(note=exc.message)


def asset(name: str) -> str:
    """One of the page's own files (views/web/NAME), as text."""
    return (resources.files(__package__) / "web" / name).read_text(encoding="utf-8")


def script_hash(script: str) -> str:
    """The CSP source that lets exactly this inline script run: 'sha256-...'."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def page(analysis: Analysis, drawing: Diagram, extras: Extras | None = None, options: TableOptions | None = None,
         baseline: Analysis | None = None) -> str:
    """The whole report as one HTML document (an invalid spec: up to its failing layer, in red)."""
    script = asset("report.js")
    policy = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src {script_hash(script)}")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html(analysis.spec.name)} · archcalc</title>\n'
            f'<style>\n{asset("report.css")}</style>\n</head>\n<body class="ac-page">\n'
            f'{fragment(analysis, drawing, extras, options, baseline)}'
            f'<script>{script}</script>\n</body>\n</html>\n')


def fragment(analysis: Analysis, drawing: Diagram, extras: Extras | None = None, options: TableOptions | None = None,
             baseline: Analysis | None = None) -> str:
    """The report's body: heading, the failure (if any), the diagram beside the board, the layer
    table, the totals, the memory figures, the conventions, and every layer's board (hidden)."""
    extras, options = extras or Extras(), options or TableOptions()
    ids = render.box_ids(analysis)
    error = analysis.error
    parts = ['<div class="ac-report">\n', _heading(analysis, options)]
    if error is not None:
        parts.append(_failure(error))
    parts += ['<div class="ac-panes">\n', _figure(drawing), '<div class="ac-side">\n',
              f'<pre class="ac-board" aria-live="polite"><span class="ac-hint">{html(HINT)}</span></pre>\n',
              _table(analysis, extras, options, baseline, ids)]
    if error is None:
        if extras.unrolled is not None:
            parts.append(_plain_table(im2col_table(analysis, extras)))
        parts += [_lines("Totals", "ac-totals", summary_lines(analysis, baseline, extras=extras) + extra_lines(analysis, extras)),
                  _lines("Peak memory (the layers replayed as PyTorch runs them, CUDA kernels)", "ac-memory",
                         _peak_lines(analysis))]
    parts += [_conventions(analysis, extras), '</div>\n</div>\n', _boards(analysis, ids), '</div>\n']
    return "".join(parts)


def _peak_lines(analysis: Analysis) -> list[str]:
    """archcalc memory's, at its defaults (inference and a training step with adam, CUDA's
    kernels); where the schedule will not replay the spec, why (the rest of the page stands)."""
    try:
        return [line for training in (False, True)
                for line in schedule_lines(schedule(analysis, training=training, optimizer="adam", device="cuda"))]
    except ArchcalcError as exc:
        return [f"not replayed: {exc.message}"]


def _heading(analysis: Analysis, options: TableOptions) -> str:
    spec = analysis.spec
    ends = inputs_text(analysis, options.batch_axis)
    if analysis.error is None:
        ends += " → output " + ", ".join(shape_text(shape) for shape in analysis.output_shapes.values())
    about = f'<p class="ac-about">{html(spec.description.strip())}</p>\n' if spec.description else ""
    return (f'<header class="ac-heading">\n<h1>{html(spec.name)}</h1>\n'
            f'<p class="ac-ends">{html(ends)} · batch {analysis.batch}, {html(analysis.dtype)}</p>\n{about}'
            f'</header>\n')


def _failure(error) -> str:
    """The error as the command line prints it: where, which layer, what, and the hint with its fixes.
    The banner carries the line and column for the editor."""
    where = error.location
    place = f' data-line="{where.line}" data-column="{where.column}"' if where else ""
    head = f"{where}: " if where else ""
    who = f"layer {error.layer}: " if error.layer else ""
    lines = [f'<p><strong>{html(head)}error: {html(who)}</strong>{html(error.message)}</p>']
    if error.hint:
        lines.append(f'<p class="ac-fix">hint: {html(error.hint)}</p>')
    lines += [f"<p>{html(note)}</p>" for note in error.notes]
    return f'<div class="ac-error" role="alert"{place}>\n' + "\n".join(lines) + "\n</div>\n"


def _figure(drawing: Diagram) -> str:
    body = drawing.svg or (f'<p class="ac-nodiagram">No diagram: {html(drawing.note)}</p>' if drawing.note else "")
    return f'<figure class="ac-diagram">\n{body}\n</figure>\n'


def _table(analysis: Analysis, extras: Extras, options: TableOptions, baseline: Analysis | None, ids: dict) -> str:
    """report.layer_table as HTML: each layer row carries its box id(s) (a block's row at --depth,
    all of its layers'), a note row follows its layer, and the failing layer ends the table in red."""
    table = layer_table(analysis, extras, options, baseline)
    kinds = [NUMBER if column in table.right else WRAP if column in table.under else "" for column in table.columns]
    head = "".join(f"<th{kind}>{html(column)}</th>" for column, kind in zip(table.columns, kinds))
    rows = iter(collapse.rows(analysis, options.depth))
    body = []
    for cells, style in table.rows:
        texts = [cell if isinstance(cell, str) else cell[0] for cell in cells]
        tds = "".join(f"<td{kind}>{html(text)}</td>" for text, kind in zip(texts, kinds))
        if not texts[0]:  # a note under its layer (its only text is in the arithmetic column)
            body.append(f'<tr class="ac-note">{tds}</tr>')
            continue
        boxes = " ".join(ids[stats.name] for stats in collapse.members(next(rows)))
        changed = ' class="ac-changed"' if style else ""
        body.append(f'<tr data-boxes="{html(boxes)}" tabindex="0"{changed}>{tds}</tr>')
    failure = analysis.failure
    if failure is not None:
        error = failure.error
        hint = f'<br><span class="ac-fix">hint: {html(error.hint)}</span>' if error.hint else ""
        body.append(f'<tr class="ac-invalid" data-boxes="{html(ids[failure.name])}" tabindex="0">'
                    f'<td>{html(failure.name)}</td><td colspan="{len(table.columns) - 1}"{WRAP}>'
                    f'<strong>{html(error.message)}</strong>{hint}</td></tr>')
    return (f'<table class="ac-layers">\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body)
            + "\n</tbody>\n</table>\n")


def _plain_table(table: Table) -> str:
    """A table of the report's other sections (--im2col's matrices), under its title."""
    numbers = [NUMBER if column in table.right else "" for column in table.columns]
    head = "".join(f"<th{kind}>{html(column)}</th>" for column, kind in zip(table.columns, numbers))
    rows = "\n".join("<tr>" + "".join(f"<td{kind}>{html(cell if isinstance(cell, str) else cell[0])}</td>"
                                       for cell, kind in zip(cells, numbers)) + "</tr>" for cells, _ in table.rows)
    return (f'<section class="ac-section">\n<h2>{html(table.title)}</h2>\n<table class="ac-layers">\n'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n</section>\n")


def _lines(title: str, css: str, lines: list[str]) -> str:
    """A section of report lines; a line indented under the one before stays indented."""
    items = "\n".join(f'<li class="ac-indent">{html(line.strip())}</li>' if line.startswith(" ")
                      else f"<li>{html(line)}</li>" for line in lines)
    return f'<section class="{css}">\n<h2>{html(title)}</h2>\n<ul>\n{items}\n</ul>\n</section>\n'


def _conventions(analysis: Analysis, extras: Extras) -> str:
    terms = "\n".join(f"<dt>{html(key.replace('_', ' '))}</dt><dd>{html(text)}</dd>"
                      for key, text in all_conventions(analysis, extras).items())
    return (f'<details class="ac-conventions" open>\n<summary>Conventions</summary>\n<dl>\n{terms}\n</dl>\n'
            f'<p>{html(UNITS_NOTE)}</p>\n</details>\n')


def _boards(analysis: Analysis, ids: dict) -> str:
    """Every layer's arithmetic as explain writes it, one hidden block per box; the failing layer's
    ends with its error and hint."""
    blocks = []
    for layer in explain.explained(analysis).layers:
        lines = [f"{layer.name}: {layer.heading}", *(f"  {step}" for step in layer.steps)]
        if layer.error is not None:
            lines += [f"  error: {layer.error.message}"] + ([f"  hint: {layer.error.hint}"] if layer.error.hint else [])
        blocks.append(f'<pre data-box="{html(ids[layer.name])}">{html_lines(lines)}</pre>')
    return '<div class="ac-boards" hidden>\n' + "\n".join(blocks) + "\n</div>\n"


def html_lines(lines: list[str]) -> str:
    """Lines of text inside a <pre>: each escaped on its own (a newline in a name shows as \\n)."""
    return "\n".join(html(line) for line in lines)
