"""Diagrams: an Analysis drawn with Graphviz, as DOT text, a graphviz.Digraph or an image file.

    import archcalc
    from archcalc.views.render import to_dot, write
    analysis = archcalc.analyze(archcalc.load("specs/alexnet.yaml"), partial=True)
    write(analysis, "alexnet.svg", rankdir="LR")

Every number drawn is the analyzer's (LayerStats, Totals): this module only lays them out.
A box's text comes from its layer class (``Layer.label``, ``Layer.size_terms``) through
views/wording.py, so a new kind draws without any change here. Graphviz is imported only when
drawing: the Python package builds the graph, its ``dot`` program turns it into SVG, PNG or PDF.
"""
from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import textwrap
from dataclasses import dataclass, field
from typing import NamedTuple

from ..analysis import Analysis, LayerStats
from ..choices import DETAILS, RANKDIRS
from ..errors import ArchcalcError, MissingDependency
from ..fileio import atomic_path
from ..layers import Layer, shape_text
from ..spec import Node
from ..units import decimal_bytes, human_bytes
from .escape import html, visible
from .wording import formula, label_text, notes

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
INSTALL_DOT = ("drawing {fmt} needs Graphviz's 'dot' program: install it with 'apt-get install graphviz', "
               "'brew install graphviz' or 'conda install -c conda-forge graphviz' "
               "(or write .dot: it needs no dot)")

# Boxes: layers with weights strong, parameter-free ones light, the network's ends green,
# the layer that cannot be computed red.
WEIGHTED = {"fillcolor": "#d6e6f5", "color": "#3c6e9f", "fontcolor": "#17232f"}
PARAM_FREE = {"fillcolor": "#f7f8fa", "color": "#b4bcc5", "fontcolor": "#4f5963"}
ENDS = {"fillcolor": "#d9eed0", "color": "#3f7d2c", "fontcolor": "#1c3613", "penwidth": "2"}
INVALID = {"fillcolor": "#fde2e2", "color": "#c62828", "fontcolor": "#7a0c0c", "penwidth": "2.5"}
OPAQUE = {"style": "rounded,filled,dashed"}  # an imported operation without a kind: MACs and FLOPs unknown
COLLAPSED = {"shape": "box3d", "style": "filled", "margin": "0.2,0.11"}  # a repeat drawn as a stack
NOTE_COLOR = "#9a5800"
REPEAT_CLUSTER = {"style": "rounded,filled", "fillcolor": "#f1f5f9", "color": "#9aabbd"}
BLOCK_CLUSTER = {"style": "rounded,dashed", "fillcolor": "white", "color": "#8a97a5"}
FONT = "Helvetica,Arial,sans-serif"
WRAP = 44  # characters per line of the longer texts in a box
LABEL_WRAP = {"TB": WRAP, "LR": 20}  # left to right, narrow boxes keep the chain short


@dataclass
class _Box:
    """One drawn node: its lines of HTML text, colours, and the clusters it sits in."""

    id: str
    lines: list
    style: dict
    clusters: tuple = ()


class _Drawn(NamedTuple):
    """A layer to draw: its node, its layer as analyzed, its input shape(s), its LayerStats
    (None for the layer that failed)."""

    node: Node
    layer: Layer
    x: tuple
    stats: LayerStats | None


@dataclass
class _Cluster:
    label: str
    style: dict
    items: list = field(default_factory=list)  # _Box or _Cluster, in spec order


def format_of(path: str) -> str:
    """'svg', 'png', 'pdf' or 'dot', from the file's extension."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise ArchcalcError(f"cannot tell which format to draw from {path!r}",
                            hint=f"end the file name with {', '.join(FORMATS)}")
    return FORMATS[extension]


def to_dot(analysis: Analysis, *, rankdir: str = "TB", detail: str = "compact", collapse: bool = False,
           once: bool = False) -> str:
    """The Graphviz source of the diagram; the same analysis always gives the same bytes."""
    return to_digraph(analysis, rankdir=rankdir, detail=detail, collapse=collapse, once=once).source


def to_digraph(analysis: Analysis, *, rankdir: str = "TB", detail: str = "compact", collapse: bool = False,
               once: bool = False):
    """A graphviz.Digraph of the analysis (use ``analyze(..., partial=True)`` to draw a mistake).

    One box per layer: name, ``Layer.label``, output shape and parameters (``full`` adds the
    size arithmetic, neurons, memory and notes). Edges carry the tensor shape. Repeats and
    block instances are clusters; ``collapse`` draws each outermost repeat as one box, and each
    run of identical consecutive block instances at the top level ('2 x basic'); ``once`` draws
    each repeat's first iteration in full, in its cluster titled with the count ('repeat1 x22,
    drawn once'), and leaves the other iterations out (a transformer's stack of layers). A chain
    much longer than wide is cut into several columns (TB) or rows (LR): see _segments.
    """
    if collapse and once:
        raise ArchcalcError("collapse and once are two ways to shorten repeats: give one")
    if rankdir not in RANKDIRS or detail not in DETAILS:
        raise ArchcalcError(f"rankdir is one of {RANKDIRS} and detail one of {DETAILS}, "
                            f"got {rankdir!r} and {detail!r}")
    graphviz = _graphviz()
    boxes, edges, titles = _Layout(analysis, detail, collapse, LABEL_WRAP[rankdir], once).build()
    graph = graphviz.Digraph(
        name=f"<{html(analysis.spec.name)}>",  # HTML-like, as every text here: never a DOT string
        graph_attr={"rankdir": rankdir, "fontname": FONT, "bgcolor": "white", "pad": "0.3",
                    "nodesep": "0.3", "ranksep": "0.35", "newrank": "true", "labelloc": "t",
                    "labeljust": "l" if rankdir == "LR" else "c",
                    "label": _caption(analysis)},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": FONT, "fontsize": "12",
                   "margin": "0.16,0.07"},
        edge_attr={"fontname": FONT, "fontsize": "10", "color": "#6b7785", "fontcolor": "#3f4a55",
                   "arrowsize": "0.7"})
    _emit(graph, _nest(boxes, titles), itertools.count())
    segment = _segments(boxes, edges, rankdir)
    for tail, head, label in edges:
        # an edge from one column (row) to the next does not rank its head: each column starts at the top
        loose = {"constraint": "false"} if segment[tail] != segment[head] else {}
        graph.edge(tail, head, label=f"< {html(label)} >", **loose)
    return graph


def write(analysis: Analysis, path: str, **options) -> None:
    """Draw into ``path`` (format from its extension), atomically: never a half-written file."""
    fmt = format_of(path)
    graph = to_digraph(analysis, **options)
    data = graph.source.encode("utf-8") if fmt == "dot" else image(graph.source, fmt)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)


def _graphviz():
    try:
        import graphviz
    except ImportError:
        raise MissingDependency("drawing needs the Python package graphviz, one of archcalc's dependencies: "
                                "pip install -e . (in a checkout) or pip install graphviz") from None
    return graphviz


def image(source: str, fmt: str, timeout: float | None = None) -> bytes:
    """Graphviz's dot run on a DOT source: the drawing's bytes. ``timeout`` (seconds) stops a dot
    that runs longer (a layout can take minutes for a huge graph): an ArchcalcError, the child killed."""
    try:
        done = subprocess.run(["dot", f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise MissingDependency(INSTALL_DOT.format(fmt=fmt.upper())) from None
    except subprocess.TimeoutExpired:
        raise ArchcalcError(f"Graphviz took longer than {timeout:g} s to draw {fmt.upper()}: stopped",
                            hint="draw fewer boxes (archcalc render --collapse) or a smaller spec") from None
    if done.returncode:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = f": {detail[-1]}" if detail else ""
        raise ArchcalcError(f"Graphviz could not draw {fmt.upper()}{reason}")
    return done.stdout


def to_svg(analysis: Analysis, *, timeout: float | None = None, **options) -> str:
    """The diagram as an SVG element for an HTML page (svg_element). Each box is a
    ``<g class="node">`` whose ``<title>`` is its box id (box_ids); names are escaped by Graphviz."""
    return svg_element(to_dot(analysis, **options), timeout)


def svg_element(source: str, timeout: float | None = None) -> str:
    """A DOT source drawn as SVG, without the XML prolog and doctype that HTML does not take."""
    text = image(source, "svg", timeout).decode("utf-8")
    return text[text.index("<svg"):]


def box_ids(analysis: Analysis) -> dict:
    """{layer name: id of its box} in the diagram drawn without collapse, the failing layer's too."""
    return {drawn.node.name: _box_id(index) for index, drawn in enumerate(_Layout(analysis, "compact", False,
                                                                                  WRAP)._layers())}


def _box_id(index: int) -> str:
    return f"n{index}"


# --- what to draw --------------------------------------------------------------------------

def _cluster_keys(group: tuple) -> tuple:
    """One key per enclosing repeat or block instance, outermost first. A key is the path to
    it with its own iteration left out, so every iteration of a repeat shares one cluster."""
    return tuple((group[:depth], label) for depth, (label, _) in enumerate(group))


class _Layout:
    """Boxes, edges and cluster titles of one analysis; pure data, no Graphviz."""

    def __init__(self, analysis: Analysis, detail: str, collapse: bool, width: int, once: bool = False):
        self.analysis = analysis
        self.width = width  # of a layer label's lines
        self.full = detail == "full"
        self.collapse = collapse
        self.once = once
        self.shapes = analysis.shapes

    def build(self) -> tuple[list, list, dict]:
        analysis = self.analysis
        ids, boxes = {}, []
        for index, (name, shape) in enumerate(analysis.input_shapes.items()):
            ids[name] = f"input{index}"
            title = "input" if name == "input" else f"input: {name}"
            boxes.append(_Box(ids[name], [f"<B>{html(title)}</B>", html(shape_text(shape))], ENDS))
        layers = self._layers()
        collapsed = self._collapsed(layers)
        aliases = self._aliases(layers)
        for index, drawn in enumerate(layers):
            name = drawn.node.name
            key = collapsed.get(name)
            if name in aliases:  # a later iteration's layer: drawn as the first iteration's
                ids.update((mine, ids[theirs]) for mine, theirs in zip((name, *drawn.node.outputs),
                                                                        (aliases[name], *aliases[name + "."])))
                continue
            if key is None:
                ids[name] = _box_id(index)
                boxes.append(self._layer_box(ids[name], drawn))
            elif key not in ids:
                ids[key] = ids[name] = f"r{index}"
                members = [other for other in layers if collapsed.get(other.node.name) == key]
                boxes.append(self._collapsed_box(ids[key], key, members))
            else:
                ids[name] = ids[key]
            ids.update((output, ids[name]) for output in drawn.node.outputs)  # a split's edges leave its box
        edges = self._edges([drawn for drawn in layers if drawn.node.name not in aliases], ids, collapsed)
        if analysis.error is None:
            outputs = analysis.spec.outputs
            for index, name in enumerate(outputs):
                title = "output" if len(outputs) == 1 else f"output: {name}"
                boxes.append(_Box(f"output{index}", [f"<B>{html(title)}</B>",
                                                     html(shape_text(self.shapes[name]))], ENDS))
                edges.append((ids[name], f"output{index}", shape_text(self.shapes[name])))
        return boxes, edges, _cluster_titles(analysis.spec, self.once)

    def _layers(self) -> list:
        """The layers drawn: those analyzed, then the one that failed (as analyzed: with the
        --rounding override, as explain shows it)."""
        layers = [_Drawn(stats.node, stats.layer, stats.input_shape, stats) for stats in self.analysis.layers]
        failure = self.analysis.failure
        if failure is not None:
            layers.append(_Drawn(failure.node, failure.layer, failure.input_shape, None))
        return layers

    def _collapsed(self, layers: list) -> dict:
        """{layer or output name: key of the box it is drawn inside of} when collapsing: a layer in a repeat
        or block instance goes into its outermost one's box, where a run of identical consecutive
        top-level instances (same block, same layers, same shapes) shares the first one's key. The
        container holding a failing layer stays open so the red box shows."""
        if not self.collapse:
            return {}
        items: list = []  # [outermost container key or None, its layers]: the top level, in order
        for drawn in layers:
            key = _cluster_keys(drawn.node.group)[0] if drawn.node.group else None
            if key is None or not items or items[-1][0] != key:
                items.append([key, []])
            items[-1][1].append(drawn)
        keys, run, previous = {}, None, None
        for key, members in items:
            signature = None
            if key is not None and members[0].node.group[0][1] == 0:  # a block instance
                signature = (self.analysis.spec.blocks[key[1]],
                             [(d.layer, d.x, d.stats and d.stats.output_shape) for d in members])
                run = run if signature == previous else key
            previous = signature
            keys.update({name: run if signature else key for drawn in members if key is not None
                         for name in (drawn.node.name, *drawn.node.outputs)})  # a split's outputs too
        failed = [keys.get(drawn.node.name) for drawn in layers if drawn.stats is None]
        return {name: key for name, key in keys.items() if key not in failed}

    def _aliases(self, layers: list) -> dict:
        """With ``once``: {layer name: the layer of the repeat's first iteration drawn for it},
        for every layer in a later iteration of a repeat (the same place in the iteration), and
        {layer name + '.': the outputs drawn for its outputs}. The layer that failed stays drawn."""
        if not self.once:
            return {}
        iterations: dict = {}  # a repeat iteration's group path -> its layers' names, in order
        for drawn in layers:
            group = drawn.node.group
            for depth, (_, iteration) in enumerate(group):
                if iteration:
                    iterations.setdefault(group[:depth + 1], []).append(drawn)
        aliases: dict = {}
        for drawn in layers:
            group = drawn.node.group
            depth = next((depth for depth, (_, iteration) in enumerate(group) if iteration > 1), None)
            if depth is None or drawn.stats is None:
                continue
            mine, first = iterations[group[:depth + 1]], iterations.get(group[:depth] + ((group[depth][0], 1),), [])
            if len(mine) == len(first):
                twin = first[mine.index(drawn)]
                aliases[drawn.node.name], aliases[drawn.node.name + "."] = twin.node.name, twin.node.outputs
        for name in [name for name in aliases if not name.endswith(".")]:
            while aliases[name] in aliases:  # a nested repeat's later iteration, within a later one
                aliases[name + "."] = aliases[aliases[name] + "."]
                aliases[name] = aliases[aliases[name]]
        return aliases

    def _edges(self, layers: list, ids: dict, collapsed: dict) -> list:
        """(tail, head, shape) from every input of every layer; edges inside a collapsed repeat
        vanish, and those its collapsing merged into one are drawn once."""
        edges, seen = [], set()
        for node, *_ in layers:
            for source in node.inputs:
                edge = (ids[source], ids[node.name], shape_text(self.shapes[source]))
                if edge[0] == edge[1]:
                    continue
                if source in collapsed or node.name in collapsed:
                    if edge in seen:
                        continue
                    seen.add(edge)
                edges.append(edge)
        return edges

    def _layer_box(self, box_id: str, drawn: _Drawn) -> _Box:
        node, stats = drawn.node, drawn.stats
        name = node.name.rsplit(".", 1)[-1] if node.group else node.name  # the cluster says the rest
        label = label_text(drawn.layer.label(drawn.x))
        lines = [f"<B>{html(name)}</B>"]
        if not (label == drawn.layer.kind and name.startswith(label)):  # 'relu1' needs no 'relu' below
            lines += _packed(label, self.width)
        clusters = _cluster_keys(node.group)
        if stats is None:
            error = self.analysis.error
            lines += _wrapped(error.message)
            if error.hint:
                lines += [f'<FONT POINT-SIZE="10">{line}</FONT>' for line in _wrapped(error.hint, WRAP + 8)]
            return _Box(box_id, lines, INVALID, clusters)
        lines += self._counts(stats.output_shape, stats.params, stats.params and not stats.trainable_params)
        if self.full:
            lines += _wrapped(formula(stats.size_terms))
            lines += self._memory(stats.neurons, *self.analysis.layer_bytes(stats), stats.buffers)
            lines += [f'<FONT COLOR="{NOTE_COLOR}">{line}</FONT>'
                      for note in notes(stats.size_terms) for line in _wrapped("! " + note)]
        style = WEIGHTED if stats.params else PARAM_FREE
        if stats.layer.opaque:
            lines.append(f'<FONT COLOR="{NOTE_COLOR}">MACs, FLOPs not counted</FONT>')
            style = {**style, **OPAQUE}
        return _Box(box_id, lines, style, clusters)

    def _collapsed_box(self, box_id: str, key: tuple, members: list) -> _Box:
        """One box for a whole repeat ('block3: 3 x conv 256 3x3, padding 1, relu') or run of
        block instances ('basic3 … basic5: 3 x basic'), with the summed counts."""
        depth = len(key[0])
        copies = list(dict.fromkeys(drawn.node.group[depth] for drawn in members))  # iterations or instances
        body = [drawn for drawn in members if drawn.node.group[depth] == copies[0]]
        inner = {drawn.node.group[depth + 1] if len(drawn.node.group) > depth + 1 else None for drawn in body}
        blocks = self.analysis.spec.blocks
        if copies[0][1] == 0:  # block instances: the block's name says what they are
            text, title = blocks[copies[0][0]], key[1] if len(copies) == 1 else f"{key[1]} … {copies[-1][0]}"
        elif len(inner) == 1 and None not in inner and next(iter(inner))[1] == 0:  # a repeat of one block
            text, title = blocks[next(iter(inner))[0]], key[1]
        elif len(body) == 1:
            text, title = label_text(body[0].layer.label(body[0].x)), key[1]
        else:  # several layers per iteration: their kinds, or their labels when few
            parts = [d.layer.kind for d in body] if len(body) > 3 else [label_text(d.layer.label(d.x)) for d in body]
            text, title = "[" + " → ".join(parts) + "]", key[1]
        stats = [drawn.stats for drawn in members]
        params, trainable = sum(s.params for s in stats), sum(s.trainable_params for s in stats)
        count = f"{len(copies)} x " if len(copies) > 1 or copies[0][1] else ""
        lines = [f"<B>{html(title)}</B>", *_packed(count + text, self.width),
                 *self._counts(stats[-1].output_shape, params, params and not trainable)]
        if self.full:
            sizes = [self.analysis.layer_bytes(s) for s in stats]
            lines += self._memory(sum(s.neurons for s in stats), sum(w for w, _ in sizes),
                                  sum(a for _, a in sizes), sum(s.buffers for s in stats))
        return _Box(box_id, lines, {**(WEIGHTED if params else PARAM_FREE), **COLLAPSED},
                    _cluster_keys(members[0].node.group)[:depth])

    def _counts(self, shape, params: int, frozen: bool) -> list:
        """The output shape (bold) and the parameters: one line, or two in narrow boxes."""
        lines = [f"<B>{html(shape_text(shape))}</B>"]
        if params:
            lines.append(f"{params:,} params" + (" (frozen)" if frozen else ""))
        return lines if self.width < WRAP else ["  ·  ".join(lines)]

    def _memory(self, neurons: int, weight_bytes: int, activation_bytes: int, buffers: int) -> list:
        lines = []
        if buffers:
            lines.append(f"{buffers:,} buffers")
        if neurons:
            lines.append(f"{neurons:,} neurons · {decimal_bytes(activation_bytes)} activations")
        if weight_bytes:
            lines.append(f"{decimal_bytes(weight_bytes)} weights ({self.analysis.dtype})")
        return lines


# Estimated sizes, in inches, of what dot draws (12-point Helvetica, the margins and separations
# set in to_digraph): enough to tell how much longer than wide a chain comes out.
CHAR_WIDTH, LINE_HEIGHT, BOX_MARGIN = 0.09, 0.2, 0.35
RANK_GAP = 0.35     # ranksep; edge labels sit between two ranks, their height (TB) or width (LR) added
LABEL_CHAR_WIDTH, LABEL_HEIGHT = 0.075, 0.35  # 10-point edge labels
NODE_GAP = 0.3      # nodesep
MAX_ASPECT = 2.5    # a longer chain is cut into columns (rows) until it is at most this long


def _size(box: _Box) -> tuple[float, float]:
    """(width, height) of a box from its lines of text, without their markup."""
    texts = [re.sub(r"<[^>]*>", "", line) for line in box.lines]
    return (max(len(text) for text in texts) * CHAR_WIDTH + BOX_MARGIN,
            len(texts) * LINE_HEIGHT + BOX_MARGIN)


def _segments(boxes: list, edges: list, rankdir: str) -> dict:
    """{box id: its column (TB) or row (LR)}, from 0. Boxes are ranked by their longest path from
    an input; a diagram whose ranks, laid end to end, run more than MAX_ASPECT times its width
    (the widest rank, or the caption) is cut between ranks into k parts of about equal length,
    k = ceil(sqrt(length / (MAX_ASPECT x width))), so that length / k <= MAX_ASPECT x k x width.
    A cut never goes through a top-level cluster (a repeat or block instance stays whole)."""
    rank = {box.id: 0 for box in boxes}
    for tail, head, _ in edges:  # boxes and edges come in spec order: a tail is ranked before its head
        rank[head] = max(rank[head], rank[tail] + 1)
    along, across = (1, 0) if rankdir == "TB" else (0, 1)
    ranks = max(rank.values()) + 1
    extent, breadth, gap = [0.0] * ranks, [0.0] * ranks, [RANK_GAP] * ranks  # gap[r]: after rank r
    for tail, _, label in edges:
        label_extent = LABEL_HEIGHT if rankdir == "TB" else len(label) * LABEL_CHAR_WIDTH + RANK_GAP
        gap[rank[tail]] = max(gap[rank[tail]], RANK_GAP + label_extent)
    spans: dict = {}  # top-level cluster -> (first rank, last rank)
    for box in boxes:
        size, r = _size(box), rank[box.id]
        extent[r] = max(extent[r], size[along])
        breadth[r] += size[across] + NODE_GAP
        if box.clusters:
            first, last = spans.get(box.clusters[0], (r, r))
            spans[box.clusters[0]] = (min(first, r), max(last, r))
    length = sum(extent) + sum(gap[:-1])
    width = max(max(breadth), 4.5 if rankdir == "TB" else 1.5)  # the caption's width (TB), height (LR)
    parts = max(1, math.ceil(math.sqrt(length / (MAX_ASPECT * width))))
    cut_after, walked = set(), 0.0
    for r in range(ranks - 1):
        walked += extent[r] + gap[r]
        whole = all(not first <= r < last for first, last in spans.values())
        if whole and walked >= length / parts * (len(cut_after) + 1) and len(cut_after) < parts - 1:
            cut_after.add(r)
    return {box_id: sum(r > cut for cut in cut_after) for box_id, r in rank.items()}


def _cluster_titles(spec, once: bool = False) -> dict:
    """{cluster key: (title, style)}: a block instance's name, or a repeat's name and count
    ('block3 x3'; 'block3 x3, drawn once' with ``once``), counted over the whole spec (a mistake
    may stop the drawing inside it)."""
    iterations = {}
    for node in spec.nodes:
        for key, (_, iteration) in zip(_cluster_keys(node.group), node.group):
            iterations.setdefault(key, set()).add(iteration)
    drawn_once = ", drawn once" if once else ""
    return {key: (key[1], BLOCK_CLUSTER) if seen == {0} else
            (f"{key[1]} x{len(seen)}" + (drawn_once if len(seen) > 1 else ""), REPEAT_CLUSTER)
            for key, seen in iterations.items()}


def _nest(boxes: list, titles: dict) -> _Cluster:
    """The boxes as a tree of clusters, each in the order its first member appears."""
    root = _Cluster("", {})
    clusters = {(): root}
    for box in boxes:
        for depth in range(1, len(box.clusters) + 1):
            path = box.clusters[:depth]
            if path not in clusters:
                clusters[path] = _Cluster(*titles[path[-1]])
                clusters[path[:-1]].items.append(clusters[path])
        clusters[box.clusters].items.append(box)
    return root


def _emit(graph, cluster: _Cluster, numbers) -> None:
    for item in cluster.items:
        if isinstance(item, _Box):
            graph.node(item.id, "<" + "<BR/>".join(item.lines) + ">", **item.style)
            continue
        with graph.subgraph(name=f"cluster_{next(numbers)}") as sub:
            sub.attr(label=f"<<B>{html(item.label)}</B>>", labelloc="t", labeljust="l", fontname=FONT,
                     fontsize="12", fontcolor="#34414e", **item.style)
            _emit(sub, item, numbers)


def _caption(analysis: Analysis) -> str:
    """The caption above the diagram: name, ends, totals with units, and what the colours mean."""
    spec, totals = analysis.spec, analysis.totals
    inputs = ", ".join(shape_text(shape) if name == "input" else f"{name} {shape_text(shape)}"
                       for name, shape in analysis.input_shapes.items())
    rows = [f'<FONT POINT-SIZE="16"><B>{html(spec.name)}</B></FONT>']
    legend = [("weights", WEIGHTED), ("no parameters", PARAM_FREE), ("input / output", ENDS)]
    if analysis.error is None:
        outputs = ", ".join(shape_text(shape) for shape in analysis.output_shapes.values())
        trainable = f" ({totals.trainable_params:,} trainable)" if totals.non_trainable_params else ""
        rows += [html(f"input {inputs}  →  output {outputs}"),
                 html(f"{totals.params:,} params{trainable}  ·  {totals.neurons:,} neurons per sample"),
                 html(f"weights {human_bytes(totals.param_bytes + totals.buffer_bytes)}  ·  "
                       f"activations {human_bytes(totals.activation_bytes)}"),
                 html(f"forward pass {human_bytes(totals.forward_bytes)}  ({analysis.dtype}, "
                       f"batch {analysis.batch})")]
        if analysis.opaque:
            rows.append(f'<FONT COLOR="{NOTE_COLOR}">{html(f"{len(analysis.opaque)} opaque (dashed): MACs, FLOPs not counted")}</FONT>')
    else:
        rows += [html(f"input {inputs}"),
                 # one run of text: a viewer's font wider than dot's estimate cannot overlap two runs
                 f'<FONT COLOR="{INVALID["color"]}"><B>{html(f"invalid: layer {analysis.error.layer}")}'
                 f'{html(" cannot be computed; the layers after it are not drawn")}</B></FONT>']
        legend.append(("invalid", INVALID))
    cells = "".join(f'<TD BGCOLOR="{style["fillcolor"]}" COLOR="{style["color"]}" BORDER="1">'
                    f'<FONT COLOR="{style["fontcolor"]}" POINT-SIZE="10">{html(text)}</FONT></TD>'
                    for text, style in legend)
    body = "".join(f"<TR><TD>{row}</TD></TR>" for row in rows)
    return (f'<<TABLE BORDER="0" CELLSPACING="1" CELLPADDING="1">{body}<TR><TD>'
            f'<TABLE BORDER="0" CELLSPACING="6" CELLPADDING="3"><TR>{cells}</TR></TABLE>'
            f'</TD></TR></TABLE>>')


def _packed(label: str, width: int) -> list:
    """A layer label's escaped lines, broken between its settings ('..., rounding floor')."""
    lines = []
    for part in label.split(", "):
        if lines and len(lines[-1]) + len(part) + 2 <= width:
            lines[-1] += ", " + part
        else:
            if lines:
                lines[-1] += ","
            lines.append(part)
    return [wrapped for line in lines for wrapped in _wrapped(line, width)]


def _wrapped(text: str, width: int = WRAP) -> list:
    """Escaped lines of at most ``width`` characters (a box stays narrow), never breaking inside
    'a = b' or '(-> 3)': textwrap does not break at a no-break space."""
    # visible first: textwrap would turn a newline in a name into a space
    kept = visible(text).replace(" = ", "\u00a0=\u00a0").replace("-> ", "->\u00a0")
    return [html(line.replace("\u00a0", " ")) for line in textwrap.wrap(kept, width, break_on_hyphens=False)]
