"""The one place where a layer's arithmetic becomes words.

The layer kinds give their arithmetic as data (layers/terms.py: ``Layer.size_terms``,
``Layer.count_terms``) and their settings as a ``Label``; this module writes them out for
every view: the report's formula column and its notes (views/report.py), explain's board
lines (views/explain.py), the diagram's boxes (views/render.py) and solve's failing axes.

    (D-F+2P)/S+1 = (227-11+2*0)/4+1 = 55        a window, per axis ('H: ...' when axes differ)
    params = 11x11x3x96 + 96 = 34,944            a count and how it is made up
    neurons = 55x55x96 = 290,400
"""
from __future__ import annotations

from ..analysis.sequence import AttentionLayer
from ..layers import Layer
from ..layers.base import Label
from ..layers.geometry import axis_words, exact_text, rule_text
from ..layers.terms import (
    Count,
    Counts,
    Flattened,
    Joined,
    Product,
    Ratio,
    Recurrence,
    Sum,
    TransposedAxis,
    WindowAxis,
)

BIAS_FORMS = {2: "2 biases (PyTorch)", 1: "1 bias (course)", 0: "no bias"}


# --- sizes --------------------------------------------------------------------------------
def formula(terms: tuple) -> str:
    """The report's formula column: the size rule with numbers, one text for axes that agree
    ('(227-11+2*0)/4+1 = 55'), else labelled per axis ('H: ..., W: ...'). A concat's sum is
    on the board only."""
    if not terms:
        return ""
    first = terms[0]
    if isinstance(first, WindowAxis):
        return ", ".join(_per_axis(terms, [window_text(term) for term in terms]))
    if isinstance(first, TransposedAxis):
        return ", ".join(_per_axis(terms, [_transposed_text(term) for term in terms]))
    if isinstance(first, Flattened):
        return f"{'*'.join(map(str, first.factors))} = {first.total}"
    if isinstance(first, Recurrence):
        return _recurrence_text(first)
    return ""


def size_lines(terms: tuple) -> list[str]:
    """explain's lines for how the output size follows: for windows the effective kernel
    (dilation), the 'same' padding, then the course's rule on each axis."""
    if not terms:
        return []
    first = terms[0]
    if isinstance(first, WindowAxis):
        windows = [term.window for term in terms]
        lines = []
        if any(w.dilation > 1 for w in windows):
            lines += _per_axis(terms, [f"F_eff = d*(F-1)+1 = {w.dilation}*({w.kernel}-1)+1 = {w.effective_kernel}"
                                       for w in windows])
        if any(term.same for term in terms):
            lines += _per_axis(terms, ["'same' padding (out = ceil(D/S)): P = " +
                                       (f"{w.pad_left}" if w.pad_left == w.pad_right else
                                        f"{w.pad_left} left, {w.pad_right} right") for w in windows])
        return lines + _per_axis(terms, [f"(D-F+2P)/S+1 = {window_text(term)}" for term in terms])
    if isinstance(first, TransposedAxis):
        return _per_axis(terms, [_transposed_text(term) for term in terms])
    if isinstance(first, Joined):
        what = first.name or f"along axis {first.axis}"
        return [f"{'+'.join(map(str, first.parts))} = {first.total} {what}"]
    return [formula(terms)]


def window_text(term: WindowAxis) -> str:
    """One axis of a window with its numbers: '(227-11+2*0)/4+1 = 55', '... = 4.5 -> floor 4',
    'ceil(...)+1 = 5', and a ceil whose extra window would start in the padding:
    'ceil((7-2+2*1)/2)+1 = 5 -> 4 as (5-1)*2 >= 7+1' (PyTorch's rule drops that window)."""
    w = term.window
    rule = rule_text(w)
    if w.rounding == "ceil" and w.leftover:
        if w.dropped:
            ceiled = w.output + 1
            return f"ceil({rule})+1 = {ceiled} -> {w.output} as ({ceiled}-1)*{w.stride} >= {w.size}+{w.pad_left}"
        return f"ceil({rule})+1 = {w.output}"
    if w.whole:
        return f"{rule}+1 = {w.output}"
    if w.rounding == "floor" and w.fits:
        return f"{rule}+1 = {exact_text(w)} -> floor {w.output}"
    return f"{rule}+1 = {exact_text(w)}"


def notes(terms: tuple) -> list[str]:
    """One warning per lossy axis, axes that agree together ('floor along H/W: ...'): the inputs
    no window reads (between the windows, when the kernel is smaller than the stride or dilated,
    and after the last one: a floor, or a ceil whose extra window is dropped), counted exactly;
    or a last window read past the padded edge (ceil)."""
    windows = [term for term in terms if isinstance(term, WindowAxis)]
    by_note: dict[tuple, list[str]] = {}
    for axis, term in enumerate(windows):
        w = term.window
        if not w.fits:
            continue
        words = axis_words(len(windows), axis)
        unread = w.unread
        between = None if unread is None else unread - w.unread_last
        rounding = "ceil" if w.dropped else "floor" if term.asked == "floor" else "same"
        lossy = not w.whole and (w.rounding == "floor" or w.dropped)
        if between:  # inputs the windows step over, whatever the rounding
            last = f" and the last {w.unread_last}" if w.unread_last else ""
            note = (rounding if lossy else f"stride {w.stride}",
                    f"{unread} of {w.size} input {words} never read: {between} between the windows "
                    f"({_taps(w)}){last}")
            by_note.setdefault(note, []).append(term.axis)
        elif lossy:
            lost_inputs = w.leftover - w.pad_right
            lost = ("only padding, harmless" if lost_inputs <= 0 else f"{_counted(lost_inputs, words)} lost")
            unread_text = f"the last {w.leftover} never read ({lost})"
            detail = f"no extra window (it would start in the padding); {unread_text}" if w.dropped else unread_text
            by_note.setdefault((rounding, detail), []).append(term.axis)
        elif between is None:
            by_note.setdefault((f"stride {w.stride}", "some inputs fall between the windows, never read "
                                                      "(too many windows to count them)"), []).append(term.axis)
        if w.rounding == "ceil" and w.leftover and not w.dropped:
            note = ("ceil", f"the last window hangs {w.stride - w.leftover} past the padded edge")
            by_note.setdefault(note, []).append(term.axis)
    return [f"{rounding} along {'/'.join(axes)}: {detail}" for (rounding, detail), axes in by_note.items()]


def _counted(count: int, words: str) -> str:
    """'1 input row', '8 input rows'."""
    return f"{count} input {words if count != 1 else words[:-1]}"


def _taps(w) -> str:
    """What leaves the gaps: 'kernel 1 < stride 2', 'kernel 3 with dilation 2, stride 1'."""
    if w.dilation == 1:
        return f"kernel {w.kernel} < stride {w.stride}"
    return f"kernel {w.kernel} with dilation {w.dilation}, stride {w.stride}"


def _transposed_text(term: TransposedAxis) -> str:
    """(D-1)*S-2P+F_eff[+output_padding] = out: '(9-1)*2-2*0+3 = 19'."""
    extra = f"+{term.output_padding}" if term.output_padding else ""
    return f"({term.size}-1)*{term.stride}-2*{term.padding}+{term.effective_kernel}{extra} = {term.output}"


def _recurrence_text(term: Recurrence) -> str:
    """'25 steps x H 20 x 2 directions x 3 layers; 2 biases (PyTorch)'."""
    parts = [f"{term.steps} steps", f"H {term.hidden}"]
    if term.directions > 1:
        parts.append(f"{term.directions} directions")
    if term.layers > 1:
        parts.append(f"{term.layers} layers")
    return " x ".join(parts) + f"; {BIAS_FORMS[term.bias_vectors]}"


def _per_axis(terms: tuple, texts: list[str]) -> list[str]:
    """One text when every axis agrees (square images), else one per axis, in axis order: 'H: ...'."""
    if len(set(texts)) == 1:
        return texts[:1]
    return [f"{term.axis}: {text}" for term, text in zip(terms, texts)]


# --- counts -------------------------------------------------------------------------------
def params_line(counts: Counts) -> str:
    """'params = 11x11x3x96 + 96 = 34,944'; then the buffers where there are any."""
    line = counted("params", counts.params)
    return line + (f"; {counted('buffers', counts.buffers)}" if counts.buffers.value else "")


def neurons_line(layer: Layer, counts: Counts) -> str:
    """'neurons = 55x55x96 = 290,400', or why a layer creates none."""
    if not layer.reads_input:
        return f"0 neurons: {layer.kind} holds parameters, the same for every sample, not values computed per sample"
    if not layer.creates_neurons:
        return f"0 neurons: {layer.kind} passes on the values it receives, it creates no new ones"
    return counted("neurons", counts.neurons)


def counted(what: str, count: Count) -> str:
    """'params = 9216x4096 + 4096 = 37,752,832'; '0 params'; 'neurons = 4,096' (nothing to expand);
    then what the parts are, '(gamma, beta)', or the steps that share the weights."""
    expression = "" if count.expression is None else expression_text(count.expression)
    if count.value == 0 and not expression:
        text = f"0 {what}"
    elif expression and expression != str(count.value):
        text = f"{what} = {expression} = {count.value:,}"
    else:
        text = f"{what} = {count.value:,}"
    if count.meaning:
        text += f" ({count.meaning})"
    if count.shared_steps:
        text += f" (shared by the {count.shared_steps} steps)"
    return text


def expression_text(expression, within: type | None = None) -> str:
    """A count expression as the course writes it: 'x' between factors, ' + ' between terms,
    parentheses around a sum or a product that is itself a factor: 2x4x(20x27 + 20x20 + 2x20)."""
    if isinstance(expression, Ratio):
        return f"({expression.numerator}/{expression.denominator})"
    if isinstance(expression, Product):
        if len(expression.factors) == 1:
            return expression_text(expression.factors[0], within)
        text = "x".join(expression_text(factor, Product) for factor in expression.factors)
    elif isinstance(expression, Sum):
        text = " + ".join(expression_text(term, Sum) for term in expression.terms)
    else:
        return str(expression)
    return f"({text})" if within is Product else text


# --- labels -------------------------------------------------------------------------------
def label_text(label: Label) -> str:
    """'conv 96 11x11, stride 4, no bias, relu': the kind and its head values, then each
    setting by name, the activation last."""
    settings = dict(label.settings)
    activation = settings.pop("activation", None)
    parts = [" ".join([label.kind, *map(_short, label.head)])]
    for name, value in settings.items():
        if value is True:
            parts.append(name)
        elif value is False:
            parts.append(f"no {name}")
        else:
            parts.append(f"{name} {_short(value)}")
    return ", ".join(parts + ([activation] if activation else []))


def _short(value) -> str:
    if isinstance(value, tuple):
        if all(isinstance(item, int) for item in value):  # per-axis sizes: 3x3
            return "x".join(map(str, value))
        return f"[{_count(value)} values]"                  # explicit weights (teaching)
    return str(value)


def _count(values: tuple) -> int:
    return sum(_count(item) if isinstance(item, tuple) else 1 for item in values)


# --- attention ----------------------------------------------------------------------------
def attention_lines(layer: AttentionLayer) -> list[str]:
    """explain's board for one attention layer, head by head: the projections, Q Kᵀ, the
    softmax, A V and the output projection, each as its matrix product with its MACs per head
    and for all heads, then their sum (the layer's MACs)."""
    a = layer.attending
    t, s, d, m, hd, heads, kv = a.queries, a.keys, a.model_dim, a.memory_dim, a.head_dim, a.heads, a.kv_heads
    source = "m" if a.cross else "x"
    shared = f", each key/value head serving {heads // kv} query heads" if kv != heads else ""
    mask = " (full: the causal mask hides the later keys, the product is still computed whole)" if a.causal else ""
    held = (f"{heads} x {t:,} x {s:,} = {layer.scores:,} held per sample" if layer.scores else
            "never held whole: fused kernel")
    parts = (heads * layer.query_macs, 2 * kv * layer.key_macs, heads * layer.product_macs,
             heads * layer.product_macs, layer.output_macs)
    lines = [
        f"per head: {heads} query heads and {kv} key/value heads of {hd} features{shared}"
        + (f"; keys and values from the memory m ({s} x {m})" if a.cross else ""),
        f"  Q = x W_q: {t}x{d} by {d}x{hd} -> {t}x{hd}, {t}x{d}x{hd} = {layer.query_macs:,} MACs per head, "
        f"x {heads} = {parts[0]:,}",
        f"  K = {source} W_k, V = {source} W_v: {s}x{m} by {m}x{hd} -> {s}x{hd}, {s}x{m}x{hd} = "
        f"{layer.key_macs:,} MACs each per key/value head, x 2 x {kv} = {parts[1]:,}",
        f"  scores = Q Kᵀ / sqrt({hd}): {t}x{hd} by {hd}x{s} -> {t}x{s}, {t}x{s}x{hd} = {layer.product_macs:,} "
        f"MACs per head, x {heads} = {parts[2]:,}{mask}",
        f"  A = softmax(scores) over the {s} keys of each query: {t}x{s} per head, {held}",
        f"  O = A V: {t}x{s} by {s}x{hd} -> {t}x{hd}, {t}x{s}x{hd} = {layer.product_macs:,} MACs per head, "
        f"x {heads} = {parts[3]:,}",
        f"  out = [O_1 ... O_{heads}] W_o: {t}x{heads * hd} by {heads * hd}x{d} -> {t}x{d}, "
        f"{t}x{heads * hd}x{d} = {layer.output_macs:,} MACs",
        "  MACs = " + " + ".join(f"{part:,}" for part in parts) + f" = {layer.macs:,}",
    ]
    if layer.cached_per_token:
        lines.append(f"  KV cache: 2 x {kv} x {hd} = {layer.cached_per_token:,} numbers per token of context "
                     f"(keys and values, decoding)")
    return lines
