"""``archcalc memory -o timeline.svg``: the memory schedule's live bytes drawn as stacked bars.

One panel per schedule (inference, then a training step), one bar per layer and phase in execution
order, at the moment of the highest live bytes within it (views/memory.steps, the terminal bars'
moments), stacked by what the bytes are (weights, gradients, optimizer state, input batch,
activations, transient); the peak marked with its layer, each phase labelled.

Drawn by Graphviz like the diagrams (views/render.image), every box pinned where it belongs
(neato with pos="x,y!" in inches): the .dot file draws the same picture with any Graphviz program.
In SVG each bar carries a tooltip with its layer, phase and parts.
"""
from __future__ import annotations

from ..analysis.schedule import CATEGORIES, Schedule
from ..fileio import atomic_path
from ..units import human_bytes
from .escape import html, visible
from .memory import WORDS, steps, title
from .render import format_of, image

# Okabe and Ito's palette: told apart with every common colour-vision deficiency
COLOURS = {"weights": "#0072B2", "gradients": "#E69F00", "optimizer": "#009E73", "input": "#999999",
           "activations": "#56B4E9", "transient": "#D55E00"}
WIDTH = 10.0   # inches of the bars' area
HEIGHT = 2.6   # inches of one panel's tallest bar
GAP = 1.4      # inches between panels (the panel's title, phase labels and legend)
FONT = "Helvetica"


class _Canvas:
    """Pinned Graphviz nodes: boxes, text and lines, in inches from the lower left."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.count = 0

    def _name(self) -> str:
        self.count += 1
        return f"n{self.count}"

    def box(self, x: float, y: float, width: float, height: float, colour: str, tooltip: str = "") -> None:
        """A filled box whose lower-left corner is (x, y)."""
        tip = f', tooltip="{_quoted(tooltip)}"' if tooltip else ""
        self.lines.append(f'{self._name()} [shape=box, style=filled, fillcolor="{colour}", penwidth=0, label="", '
                          f'width={width:.4f}, height={height:.4f}, '
                          f'pos="{x + width / 2:.4f},{y + height / 2:.4f}!"{tip}]')

    def text(self, x: float, y: float, words: str, size: int = 10, align: str = "l", bold: bool = False) -> None:
        """Text whose left end (align "l"), centre ("c") or right end ("r") is at (x, y): a table
        cell wider than the text, aligned inside, so no estimate of the font's widths moves it."""
        width = len(words) * size * 0.7 + 4  # points: wider than any font's text of this length
        label = f"<B>{html(words)}</B>" if bold else html(words)
        cell = {"l": "LEFT", "c": "CENTER", "r": "RIGHT"}[align]
        centre = x + width / 144 if align == "l" else x - width / 144 if align == "r" else x
        self.lines.append(
            f'{self._name()} [shape=plaintext, margin=0, width={width / 72:.4f}, height={size * 1.4 / 72:.4f}, '
            f'fontname="{FONT}", fontsize={size}, pos="{centre:.4f},{y:.4f}!", label=<<TABLE BORDER="0" '
            f'CELLPADDING="0" CELLSPACING="0"><TR><TD FIXEDSIZE="TRUE" WIDTH="{width:.0f}" '
            f'HEIGHT="{size * 1.4:.0f}" ALIGN="{cell}">{label}</TD></TR></TABLE>>]')

    def line(self, x1: float, y1: float, x2: float, y2: float, style: str = "solid", colour: str = "#444444") -> None:
        ends = [self._name(), self._name()]
        for end, (x, y) in zip(ends, ((x1, y1), (x2, y2))):
            self.lines.append(f'{end} [shape=point, width=0, height=0, label="", pos="{x:.4f},{y:.4f}!"]')
        self.lines.append(f'{ends[0]} -> {ends[1]} [arrowhead=none, style={style}, color="{colour}", penwidth=0.8]')

    def dot(self, name: str) -> str:
        body = "\n  ".join(self.lines)
        return (f'digraph "{_quoted(name)}" {{\n  graph [layout=neato, splines=line, overlap=true, '
                f'bgcolor=white, pad=0.2]\n  node [fixedsize=true]\n  {body}\n}}\n')


def _quoted(text: str) -> str:
    return visible(text).replace("\\", "\\\\").replace('"', '\\"')


def to_dot(schedules: list[Schedule]) -> str:
    """The picture as DOT: the panels top to bottom, the title above them."""
    canvas = _Canvas()
    analysis = schedules[0].analysis
    top = len(schedules) * (HEIGHT + GAP)
    for index, schedule in enumerate(schedules):
        _panel(canvas, schedule, base=top - (index + 1) * (HEIGHT + GAP) + GAP)
    canvas.text(0, top + 0.8, f"{analysis.spec.name}: live bytes, batch {analysis.batch}, {analysis.dtype}, "
                f"{schedules[0].device} kernels", size=14, bold=True)
    return canvas.dot(analysis.spec.name)


def _panel(canvas: _Canvas, schedule: Schedule, base: float) -> None:
    batch = schedule.analysis.batch
    drawn = steps(schedule)
    peak = schedule.peak_moment()
    top = peak.bytes(batch) or 1
    step = WIDTH / max(1, len(drawn))
    where = f"{peak.phase}, at {peak.layer}" if peak.layer else peak.phase
    canvas.text(0, base + HEIGHT + 0.3, f"{title(schedule)}: peak {human_bytes(peak.bytes(batch))} ({where})",
                size=11, bold=True)
    named = all(len(layer) * 8 * 0.6 + 4 <= step * 72 for _, layer, _ in drawn)  # each name fits its bar
    phase_start = None
    for position, (phase, layer, moment) in enumerate(drawn):
        x = position * step
        if named:
            canvas.text(x + step * 0.45, base - 0.13, layer, size=8, align="c")
        if phase != phase_start:  # a new phase: its name under the axis, a rule where it begins
            phase_start = phase
            canvas.text(x, base - (0.32 if named else 0.15), phase, size=9, bold=named)
            if position:
                canvas.line(x, base - 0.05, x, base + HEIGHT + 0.05, style="dotted", colour="#888888")
        parts = moment.parts(batch)
        tooltip = f"{phase} {layer}: {human_bytes(moment.bytes(batch))}; " + ", ".join(
            f"{WORDS[part].split(' (')[0]} {human_bytes(value)}" for part, value in parts.items() if value)
        y = base
        for part in CATEGORIES:
            height = HEIGHT * parts[part] / top
            if height > 0.0005:
                canvas.box(x, y, step * 0.9, height, COLOURS[part], tooltip)
            y += height
        if moment is peak:
            canvas.text(x + step / 2, y + 0.12, f"peak: {layer}", size=9, align="c")
    canvas.line(0, base, WIDTH, base)
    canvas.line(0, base + HEIGHT, WIDTH, base + HEIGHT, style="dashed", colour="#888888")
    canvas.text(WIDTH + 0.1, base + HEIGHT, human_bytes(top), size=9)
    canvas.text(WIDTH + 0.1, base, "0", size=9)
    parts = peak.parts(batch)
    x = 0.0
    for part in CATEGORIES:
        if parts[part]:
            canvas.box(x, base - 0.62, 0.15, 0.15, COLOURS[part])
            words = WORDS[part].split(" (")[0]
            canvas.text(x + 0.22, base - 0.545, words, size=9)
            x += 0.4 + len(words) * 9 * 0.55 / 72


def write(schedules: list[Schedule], path: str) -> None:
    """Draw into ``path`` (svg, png, pdf, or dot for the source), atomically."""
    fmt = format_of(path)
    source = to_dot(schedules)
    data = source.encode("utf-8") if fmt == "dot" else image(source, fmt)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
