"""`archcalc explain`: every layer's arithmetic written out the way a teacher does on the board.

    CONV1: conv 96 11x11, stride 4, relu
      input 3x227x227
      (D-F+2P)/S+1 = (227-11+2*0)/4+1 = 55
      output 96x55x55
      params = 11x11x3x96 + 96 = 34,944
      neurons = 55x55x96 = 290,400

Each kind gives its arithmetic as data (``Layer.size_terms``, ``Layer.count_terms``) and
views/wording.py words it, so a new kind explains itself; this module only puts the steps in
order, adds the totals, and, for an invalid spec, stops at the first invalid layer with its fixes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..analysis.conventions import footnote
from ..analysis.sequence import AttentionLayer
from ..analysis.walk import INT64_BYTES, Analysis, analyze
from ..choices import DTYPE_BYTES
from ..errors import GeometryError, SpecError
from ..layers import shape_text
from ..spec import Node, Spec
from ..units import human_bytes
from .escape import visible
from .wording import attention_lines, label_text, neurons_line, params_line, size_lines

MAX_TERMS = 16  # a total written as a sum of more non-zero terms than this is given as the sum alone


@dataclass(frozen=True)
class LayerExplanation:
    """The board lines of one layer; ``error`` is set on the invalid layer (its output unknown)."""

    name: str
    heading: str                 # the layer as the spec reads: "conv 96 11x11, stride 4, relu"
    input_shape: tuple           # a tuple of shapes for a layer that reads several inputs
    output_shape: tuple | None
    steps: tuple                 # the arithmetic, one line each
    error: SpecError | None = None


@dataclass(frozen=True)
class Explanation:
    analysis: Analysis           # partial when the spec is invalid
    layers: tuple                # LayerExplanation, in spec order
    totals: tuple                # the totals' arithmetic, one line each (empty when invalid)

    @property
    def error(self) -> SpecError | None:
        return self.analysis.error


def explain(spec: Spec, *, input_shape: tuple | None = None, batch: int = 1, dtype: str = "float32",
            rounding: str | None = None) -> Explanation:
    """The arithmetic of every layer up to the first invalid one (then that one, with its error)."""
    return explained(analyze(spec, input_shape=input_shape, batch=batch, dtype=dtype, rounding=rounding,
                             partial=True))


def explained(analysis: Analysis) -> Explanation:
    """The board of an analysis (``analyze(..., partial=True)`` for an invalid spec: up to its failure)."""
    layers = [_explained(stats.node, stats.layer, stats.input_shape, stats.output_shape)
              for stats in analysis.layers]
    failure = analysis.failure
    if failure:
        layers.append(_explained(failure.node, failure.layer, failure.input_shape, None, failure.error))
    totals = () if failure else _totals(analysis)
    return Explanation(analysis, tuple(layers), totals)


def _explained(node: Node, layer, x: tuple, y: tuple | None, error: SpecError | None = None):
    heading = label_text(layer.label(x))
    steps = [f"input {input_text(x)}" if layer.reads_input else "input: none, a learned tensor"]
    if error is None:
        counts = layer.count_terms(x, y)
        steps += [*size_lines(layer.size_terms(x, y)), f"output {shape_text(y)}", params_line(counts),
                  neurons_line(layer, counts)]
        if layer.opaque:  # what an import kept without a kind: nothing of its arithmetic is known
            steps.insert(-3, "output as PyTorch traced it (an opaque layer: archcalc import --allow-opaque)")
            steps.append("MACs and FLOPs not counted: what the operation computes is unknown")
        attending = layer.attending(x)
        if attending is not None:
            steps += attention_lines(AttentionLayer(node.name, attending))
        if node.shares is not None and counts.params.value:
            steps.insert(-1, f"  the weights of {node.shares}, applied again: counted there, once")
    elif isinstance(error, GeometryError):
        # the windows were built before they failed to tile: show the arithmetic that failed,
        # (9-5+2*0)/3+1 = 2.33 (a window's size rule needs no output shape); otherwise the
        # input itself is wrong for this kind and the error says why
        steps += size_lines(layer.size_terms(x, None))
    return LayerExplanation(node.name, heading, x, y, tuple(steps), error)


def _totals(analysis: Analysis) -> tuple:
    t, size, layers = analysis.totals, DTYPE_BYTES[analysis.dtype], analysis.layers
    lines = ["params = " + _sum([s.params for s in layers], t.params)]
    if t.buffers:
        lines.append("buffers = " + _sum([s.buffers for s in layers], t.buffers))
    lines += [
        "neurons = " + _sum([s.neurons for s in layers], t.neurons) + " per sample",
        f"parameter memory = {t.params:,} x {size} B = {human_bytes(t.param_bytes)} ({analysis.dtype})",
    ]
    if t.buffers:
        counters = analysis.int64_buffers
        floating = f"{t.buffers - counters:,} x {size} B" + (
            f" + {counters:,} x {INT64_BYTES} B (int64 batch counters)" if counters else "")
        lines.append(f"buffer memory = {floating} = {human_bytes(t.buffer_bytes)}")
    lines += [
        f"activation memory = {t.neurons:,} x {analysis.batch} x {size} B = {human_bytes(t.activation_bytes)} "
        f"(neurons x batch x bytes)",
        f"course's rule: forward pass = {human_bytes(t.forward_bytes)}; training x2 = "
        f"{human_bytes(t.training_bytes_estimate)}",
    ]
    if analysis.opaque:
        lines.append(f"MACs and FLOPs not counted for the opaque layers: {', '.join(analysis.opaque)}")
    return tuple(lines)


def _sum(terms: list[int], total: int) -> str:
    """'34,944 + 614,656 + ... = 62,378,344', or the total alone when there is nothing to add."""
    terms = [term for term in terms if term]
    if len(terms) < 2 or len(terms) > MAX_TERMS:
        return f"{total:,}" + (f" (sum over {len(terms)} layers)" if len(terms) > MAX_TERMS else "")
    return " + ".join(f"{term:,}" for term in terms) + f" = {total:,}"


def input_text(x) -> str:
    """A layer's input for the board: one shape, or several for a merge layer."""
    if x and isinstance(x[0], tuple):
        return ", ".join(shape_text(shape) for shape in x)
    return shape_text(x)


def render_text(explanation: Explanation) -> str:
    """The board as plain text: each layer's heading and steps, then the totals.

    The invalid layer's error is not included: the caller reports it (with its location).
    """
    analysis = explanation.analysis
    out = [f"{visible(analysis.spec.name)}: input {shape_text(analysis.input_shape)}, batch {analysis.batch}, "
           f"{analysis.dtype}",
           "shapes are C x H x W; products are written as in the course: F x F x C x K, H x W x C", ""]
    for layer in explanation.layers:
        out.append(f"{visible(layer.name)}: {layer.heading}")
        out += [f"  {step}" for step in layer.steps]
        out.append("")
    if explanation.totals:
        out.append("Totals")
        out += [f"  {line}" for line in explanation.totals]
        out.append(footnote("bytes"))
    return "\n".join(out).rstrip("\n") + "\n"
