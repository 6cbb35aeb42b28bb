"""`archcalc diff`: two analyzed specs side by side, layer by layer and in total.

Layers are matched by structure first: the sequences of top-level block instances and lone layers
are aligned by block (or kind), the layers of two aligned instances then match by their names
inside them; what the alignment leaves matches by name, then by position (in order, between two
name matches). Every integer
figure of a layer (params, neurons, and whatever count the analyzer adds, such as MACs) and of
the totals is compared, so a new figure is diffed without touching this module.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..analysis import Analysis, LayerStats
from ..analysis.conventions import conventions, footnote
from .output import JSON_SCHEMA_VERSION, Table, write


def counts(record) -> dict:
    """The integer figures of a LayerStats or Totals, in declaration order: {name: value}."""
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    return {name: value for name, value in values.items() if type(value) is int}


def _arguments(layer) -> dict:
    return {name: getattr(layer, name) for name in layer.spec_fields}


@dataclass(frozen=True)
class LayerDiff:
    """One layer of A against its match in B; either side is None when it has no match."""

    a: LayerStats | None
    b: LayerStats | None

    @property
    def name(self) -> str:
        if self.a and self.b and self.a.name != self.b.name:
            return f"{self.a.name} / {self.b.name}"
        return (self.a or self.b).name

    @property
    def status(self) -> str:
        if self.b is None:
            return "only in A"
        if self.a is None:
            return "only in B"
        return "changed" if self.changed else "same"

    @property
    def counts(self) -> dict:
        """{figure: (A, B)}, a missing side counting 0."""
        a, b = counts(self.a) if self.a else {}, counts(self.b) if self.b else {}
        return {name: (a.get(name, 0), b.get(name, 0)) for name in {**a, **b}}

    @property
    def hyperparameters(self) -> dict:
        """{argument: (A, B)} for the spec arguments that differ (None where a kind has no such argument)."""
        if not (self.a and self.b):
            return {}
        a, b = _arguments(self.a.layer), _arguments(self.b.layer)
        return {name: (a.get(name), b.get(name)) for name in {**a, **b} if a.get(name) != b.get(name)}

    @property
    def changed(self) -> bool:
        if not (self.a and self.b):
            return True
        return (self.a.kind != self.b.kind or self.a.input_shape != self.b.input_shape
                or self.a.output_shape != self.b.output_shape or bool(self.hyperparameters)
                or any(x != y for x, y in self.counts.values()))


@dataclass(frozen=True)
class SpecDiff:
    a: Analysis
    b: Analysis
    layers: tuple    # LayerDiff, in B's order with A-only layers where they were

    @property
    def changed(self) -> tuple:
        return tuple(layer for layer in self.layers if layer.changed)

    @property
    def totals(self) -> dict:
        """{figure: (A, B)} over the whole network."""
        a, b = counts(self.a.totals), counts(self.b.totals)
        return {name: (a[name], b[name]) for name in a if name in b}


def diff(a: Analysis, b: Analysis) -> SpecDiff:
    """Match B's layers to A's (by structure, then by name and position) and compare them; a
    partial analysis (``analyze(partial=True)`` of an invalid spec) raises its failing layer's error."""
    a, b = a.complete(), b.complete()
    partner = _match_structure(_units(a), _units(b))
    a_of_b = {j: i for i, j in partner.items()}
    rows, next_a = [], 0
    for j, stats in enumerate(b.layers):
        i = a_of_b.get(j)
        if i is not None:
            while next_a < i:  # A's unmatched layers go where they stood, before this match
                if next_a not in partner:
                    rows.append(LayerDiff(a.layers[next_a], None))
                next_a += 1
            next_a = max(next_a, i + 1)
        rows.append(LayerDiff(a.layers[i] if i is not None else None, stats))
    rows += [LayerDiff(a.layers[i], None) for i in range(next_a, len(a.layers)) if i not in partner]
    return SpecDiff(a, b, tuple(rows))


@dataclass(frozen=True)
class _Unit:
    """What diff aligns: a top-level block instance (all its layers, nested instances included) or
    a layer outside any instance. ``key`` says what it is ('block', block) or ('layer', kind)."""

    name: str
    key: tuple
    indices: tuple       # of its layers in the analysis
    names: tuple         # the layers' names
    local_names: tuple   # the layers' names inside the instance ('conv1' of 'basic3.conv1')
    arguments: tuple     # the layers as written (Layer compares every argument)
    shapes: tuple        # each layer's (input, output) shapes


def _units(analysis: Analysis) -> list:
    """The analysis's layers grouped into _Units, in order."""
    found: dict = {}
    for index, stats in enumerate(analysis.layers):
        instance = next((label for label, iteration in stats.node.group if iteration == 0), None)
        found.setdefault(instance or stats.name, (instance, []))[1].append(index)
    units = []
    for name, (instance, indices) in found.items():
        layers = [analysis.layers[i] for i in indices]
        key = ("block", analysis.spec.blocks[instance]) if instance else ("layer", layers[0].kind)
        units.append(_Unit(name, key, tuple(indices), tuple(s.name for s in layers),
                           tuple(s.name[len(instance) + 1:] if instance else s.name for s in layers),
                           tuple(s.layer for s in layers),
                           tuple((s.input_shape, s.output_shape) for s in layers)))
    return units


ALIGNED_PAIRS = 2_000_000  # unit pairs the alignment weighs at most; beyond, names match the middle


def _match_structure(a: list, b: list) -> dict:
    """{layer index in A: layer index in B}. The units are aligned first (_align); the layers of two
    aligned units match by their names inside it, then by position; the layers between two aligned
    units match by name, then by position (_match)."""
    pairs = _align(a, b)
    partner = {}
    for i, j in pairs:
        inner = _match(list(a[i].local_names), list(b[j].local_names))
        partner.update({a[i].indices[x]: b[j].indices[y] for x, y in inner.items()})
    for (a_from, b_from), (a_to, b_to) in zip([(-1, -1), *pairs], [*pairs, (len(a), len(b))]):
        gap_a = [layer for unit in a[a_from + 1:a_to] for layer in zip(unit.indices, unit.names)]
        gap_b = [layer for unit in b[b_from + 1:b_to] for layer in zip(unit.indices, unit.names)]
        inner = _match([name for _, name in gap_a], [name for _, name in gap_b])
        partner.update({gap_a[x][0]: gap_b[y][0] for x, y in inner.items()})
    return partner


def _align(a: list, b: list) -> list:
    """[(unit in A, unit in B)], in order: the alignment of the two sequences of units that pairs
    the most units of one key (a block with an instance of the same block, a layer with one of the
    same kind: a longest common subsequence of keys), and among those the most identical units
    (same layers, arguments and shapes), then the most units with the same arguments, then the
    most with the same name. ResNet-18 against ResNet-34 so pairs each stage's blocks with that
    stage's, and B's extra blocks are B's alone. The common start and end are paired directly;
    the rest is weighed pair by pair (dynamic programming) unless it exceeds ALIGNED_PAIRS."""
    start = 0
    while start < min(len(a), len(b)) and _identical(a[start], b[start]):
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and _identical(a[-1 - end], b[-1 - end]):
        end += 1
    head = [(k, k) for k in range(start)]
    tail = [(len(a) - end + k, len(b) - end + k) for k in range(end)]
    middle_a, middle_b = a[start:len(a) - end], b[start:len(b) - end]
    n, m = len(middle_a), len(middle_b)
    if n * m > ALIGNED_PAIRS:
        return head + tail
    unit = min(n, m) + 1  # each criterion outweighs every later one summed over all pairs
    weights = (unit ** 3, unit ** 2, unit, 1)

    def score(x: _Unit, y: _Unit) -> int:
        if x.key != y.key:
            return 0
        same_arguments = x.arguments == y.arguments
        return (weights[0] + weights[1] * (same_arguments and x.shapes == y.shapes)
                + weights[2] * same_arguments + weights[3] * (x.name == y.name))

    best = [[0] * (m + 1) for _ in range(n + 1)]  # best[i][j]: of middle_a[i:] and middle_b[j:]
    for i in range(n - 1, -1, -1):
        row, below = best[i], best[i + 1]
        for j in range(m - 1, -1, -1):
            paired = score(middle_a[i], middle_b[j])
            row[j] = max(below[j], row[j + 1], below[j + 1] + paired if paired else 0)
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        paired = score(middle_a[i], middle_b[j])
        if paired and best[i][j] == best[i + 1][j + 1] + paired:
            pairs.append((start + i, start + j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return head + pairs + tail


def _identical(x: _Unit, y: _Unit) -> bool:
    return (x.key == y.key and x.name == y.name and x.local_names == y.local_names
            and x.arguments == y.arguments and x.shapes == y.shapes)


def _match(a_names: list, b_names: list) -> dict:
    """{index in A: index in B}: same names first; then, between two consecutive name matches,
    the unmatched layers of each side pairwise in order (a renamed layer meets its old self)."""
    b_index = {name: j for j, name in enumerate(b_names)}
    partner = {i: b_index[name] for i, name in enumerate(a_names) if name in b_index}
    bounds = [(-1, -1)]
    for i in sorted(partner):
        if partner[i] > bounds[-1][1]:  # matches that keep the order of both sides
            bounds.append((i, partner[i]))
    bounds.append((len(a_names), len(b_names)))
    taken = set(partner.values())
    for (a_from, b_from), (a_to, b_to) in zip(bounds, bounds[1:]):
        rest_a = [i for i in range(a_from + 1, a_to) if i not in partner]
        rest_b = [j for j in range(b_from + 1, b_to) if j not in taken]
        partner.update(zip(rest_a, rest_b))
    return partner


# --- presentation ---------------------------------------------------------------------------
TABLE_FIGURES = ("params", "neurons", "macs")  # per-layer columns, those the analyzer has


def change_text(a: int, b: int) -> str:
    """'614,656 -> 307,456 (-307,200)', or the one value when equal."""
    return f"{a:,}" if a == b else f"{a:,} -> {b:,} ({b - a:+,})"


def _count_text(layer: LayerDiff, name: str) -> str:
    a, b = layer.counts[name]
    if layer.a is None or layer.b is None:
        return f"{a + b:,}"  # one side only: its own figure
    return change_text(a, b)


def percent_text(a: int, b: int) -> str:
    return f" ({(b - a) / a:+.2%})" if a and a != b else ""


def _pair_text(a, b, text=str) -> str:
    if a is None or b is None:
        return text(b if a is None else a)
    return text(a) if a == b else f"{text(a)} -> {text(b)}"


def _what_changed(layer: LayerDiff) -> str:
    if layer.status.startswith("only"):
        return layer.status
    return ", ".join(f"{name} {_short(a)} -> {_short(b)}" for name, (a, b) in layer.hyperparameters.items())


def _short(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def total_rows(result: SpecDiff):
    """(figure, A, B, change) for every total that is not 0 on both sides, bytes in human units."""
    from ..units import human_bytes
    for name, (a, b) in result.totals.items():
        if a == b == 0:
            continue
        text = human_bytes if "bytes" in name else (lambda v: f"{v:,}")
        sign = "+" if b > a else "-"
        change = "same" if a == b else sign + text(abs(b - a)).replace("(", "(" + sign) + percent_text(a, b)
        yield name.replace("_", " "), text(a), text(b), change


def print_table(result: SpecDiff, show_all: bool = False, file=None) -> None:
    """The layers that differ (all with ``show_all``), then every total (rich or plain: output.write)."""
    write(table_report(result, show_all), file)


def table_report(result: SpecDiff, show_all: bool = False) -> list:
    """print_table's output blocks: unchanged layers dim, units dim."""
    from ..layers import shape_text

    a, b = result.a, result.b
    blocks = [f"A: {a.spec.name} ({a.spec.path}), input {shape_text(a.input_shape)}",
              f"B: {b.spec.name} ({b.spec.path}), input {shape_text(b.input_shape)}",
              f"{len(result.changed)} of {len(result.layers)} layers differ"]
    rows = result.layers if show_all else result.changed
    if rows:
        figures = tuple(name for name in TABLE_FIGURES if any(name in layer.counts for layer in rows))
        columns = ("layer", "kind", "output", *figures, "what changed")
        table = Table(columns, right=figures, under=("what changed",), fold=("layer",))
        for layer in rows:
            shapes = [s.output_shape if s else None for s in (layer.a, layer.b)]
            table.add_row(layer.name, _pair_text(*(s.kind if s else None for s in (layer.a, layer.b))),
                          _pair_text(*shapes, text=shape_text),
                          *(_count_text(layer, name) for name in figures), _what_changed(layer),
                          style=None if layer.changed else "dim")
        blocks.append(table)
    totals = Table(("figure", "A", "B", "change"), right=("A", "B", "change"), title="totals")
    for row in total_rows(result):
        totals.add_row(*row)
    return [*blocks, totals, (footnote("bytes", "shapes", "neurons", "macs"), "dim")]


def to_dict(result: SpecDiff) -> dict:
    """The JSON document: each side's identity, every layer pair, every total."""
    def side(analysis: Analysis) -> dict:
        return {"name": analysis.spec.name, "path": analysis.spec.path, "input_shape": list(analysis.input_shape),
                "output_shape": list(analysis.output_shape)}

    def stats(s: LayerStats | None) -> dict | None:
        return None if s is None else {"name": s.name, "kind": s.kind, "output_shape": list(s.output_shape)}

    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "a": side(result.a),
        "b": side(result.b),
        "conventions": conventions(result.a.dtype, result.a.batch),  # one batch and dtype for both sides
        "layers": [{"status": layer.status, "a": stats(layer.a), "b": stats(layer.b),
                    "counts": {name: {"a": x, "b": y, "change": y - x} for name, (x, y) in layer.counts.items()},
                    "hyperparameters": {name: [list(v) if isinstance(v, tuple) else v for v in pair]
                                        for name, pair in layer.hyperparameters.items()}}
                   for layer in result.layers],
        "totals": {name: {"a": x, "b": y, "change": y - x} for name, (x, y) in result.totals.items()},
    }
