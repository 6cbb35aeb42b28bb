"""`archcalc solve`: which input sizes make every layer valid, and what fixes an invalid one.

The sizes are found by the analyzer's own walk, done for every candidate size at once
(analysis.walk.valid_inputs): the analyzer stays the only judge of validity, whatever layer
kinds the spec uses, and each layer is judged once per distinct size it meets. A square input varies
its spatial sizes together (AlexNet: 227 works, 224 does not); any other input varies one
axis at a time, the others kept as given.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..analysis import analyze
from ..analysis.walk import valid_inputs
from ..errors import GeometryError, Location, SpecError
from ..layers import Steps, shape_text
from ..layers.geometry import axis_labels, valid_alternatives
from ..spec import Spec
from .escape import visible
from .output import JSON_SCHEMA_VERSION
from .wording import window_text

DEFAULT_RANGE = (1, 1024)
MAX_CANDIDATES = 100_000  # sizes tried per axis: a layer is judged once per distinct size it meets


@dataclass(frozen=True)
class Progression:
    """first, first+step, ..., last: one family of valid sizes."""

    first: int
    last: int
    step: int

    @property
    def count(self) -> int:
        return (self.last - self.first) // self.step + 1

    def values(self) -> range:
        return range(self.first, self.last + 1, self.step)


@dataclass(frozen=True)
class AxisSizes:
    """The valid sizes of one input axis ("H=W" when a square input's axes vary together)."""

    axis: str
    current: int         # the checked input's size on this axis
    sizes: tuple
    progressions: tuple

    def nearest(self) -> int | None:
        """The valid size closest to the current one (the smaller on a tie)."""
        return min(self.sizes, key=lambda size: (abs(size - self.current), size), default=None)


@dataclass(frozen=True)
class AxisFix:
    """One axis of an offending layer: its arithmetic and the nearest changes that make it whole."""

    axis: str            # "H", "W", "L"; "H/W" when every axis fails alike
    arithmetic: str      # (224-11+2*0)/4+1 = 54.25
    changes: dict        # {"stride": (3, 72), "padding": ..., "kernel": (12, 54)}: new value, new output


@dataclass(frozen=True)
class Repair:
    """An offending layer at the checked input; ``axes`` is empty when no window change helps."""

    layer: str
    location: Location
    input_shape: tuple
    error: SpecError
    axes: tuple


@dataclass(frozen=True)
class Solution:
    spec: Spec
    input_shape: tuple   # the input checked for repairs
    low: int
    high: int
    axes: tuple          # AxisSizes
    repairs: tuple       # Repair, in spec order; empty when input_shape is valid

    @property
    def valid(self) -> bool:
        return not self.repairs


def check_range(low: int, high: int) -> tuple[int, int]:
    """(low, high) if it is a range of input sizes solve can try, else a SpecError saying why."""
    if not 1 <= low <= high:
        raise SpecError(f"the size range {low}..{high} is empty", hint="write it like 1..1024")
    if high - low >= MAX_CANDIDATES:
        raise SpecError(f"the size range {low}..{high} has more than {MAX_CANDIDATES:,} sizes",
                        hint="narrow it, e.g. 1..4096")
    return low, high


def solve(spec: Spec, *, input_shape: tuple | None = None, low: int = DEFAULT_RANGE[0],
          high: int = DEFAULT_RANGE[1]) -> Solution:
    """The valid input sizes from ``low`` to ``high`` and the repairs of ``input_shape``."""
    check_range(low, high)
    if len(spec.inputs) > 1:
        raise SpecError(f"solve varies the size of the network's input, but this network has {len(spec.inputs)} "
                        f"inputs ({', '.join(spec.inputs)})",
                        hint="solve each branch as a spec of its own")
    shape = spec.input_shape if input_shape is None else input_shape
    repairs = _repairs(spec, shape)  # first: it raises what no input size can change
    return Solution(spec, shape, low, high, _scan(spec, shape, low, high), repairs)


def _scan(spec: Spec, shape: tuple, low: int, high: int) -> tuple:
    """AxisSizes per varied axis.

    A square input varies its spatial axes together. Otherwise (or when no common size works:
    kernels that differ per axis) each axis varies alone, the others as given; an axis whose
    given size is itself invalid is then set to its nearest valid size and the others scanned
    again, so that one bad axis does not hide the sizes of the rest.
    """
    axes, labels = _varied_axes(shape)

    def scanned(label: str, varied: tuple, base: tuple) -> AxisSizes:
        candidates = range(low, high + 1)
        valid = valid_inputs(spec, [_resized(base, varied, size) for size in candidates])
        sizes = tuple(size for size, ok in zip(candidates, valid) if ok)
        return AxisSizes(label, shape[varied[0]], sizes, progressions(sizes))

    if len(axes) > 1 and len({shape[axis] for axis in axes}) == 1:
        together = scanned("=".join(labels), axes, shape)
        if together.sizes:
            return (together,)
    found = [scanned(label, (axis,), shape) for axis, label in zip(axes, labels)]
    base = shape
    for axis, result in zip(axes, found):
        if result.sizes and result.current not in result.sizes:
            base = _resized(base, (axis,), result.nearest())
    if base != shape:
        found = [scanned(label, (axis,), base) for axis, label in zip(axes, labels)]
    return tuple(found)


def _varied_axes(shape: tuple) -> tuple:
    """(axes, labels): a sequence's steps T, or the spatial axes of a feature map."""
    if isinstance(shape, Steps):
        return (0,), ("T",)
    rank = len(shape) - 1
    if rank < 1:
        raise SpecError(f"solve varies the spatial sizes of the input, but {shape_text(shape)} is a flat "
                        f"feature vector: every layer's validity is already fixed")
    return tuple(range(1, rank + 1)), axis_labels(rank)


def _resized(shape: tuple, axes: tuple, size: int) -> tuple:
    """The shape with ``axes`` set to ``size``, of the same kind (a sequence stays a sequence)."""
    return type(shape)(size if axis in axes else value for axis, value in enumerate(shape))


def progressions(sizes: tuple) -> tuple:
    """The sizes as the fewest arithmetic progressions of one common step: 67, 99, ..., 1019 (every 32).

    A chain of strided layers accepts sizes that repeat with the product of its strides, so
    one step usually covers them all; sizes off the pattern become progressions of their own.
    """
    if not sizes:
        return ()
    present = set(sizes)

    def starts(step: int) -> list:
        return [size for size in sizes if size - step not in present]

    best = 1
    if len(starts(1)) > 1:
        steps = range(1, max(2, (sizes[-1] - sizes[0]) // 2 + 1))
        best = min(steps, key=lambda step: (len(starts(step)), step))
    chains = []
    for first in starts(best):
        last = first
        while last + best in present:
            last += best
        chains.append(Progression(first, last, best))
    return tuple(chains)


def _repairs(spec: Spec, shape: tuple) -> tuple:
    """Every offending layer at ``shape``, in order, with the nearest changes that make it valid.

    After an offending layer the walk goes on as PyTorch would (rounding down), so that later
    layers are checked too; it stops at an error no window change can mend.
    """
    repairs = []
    while True:
        failure = analyze(spec, input_shape=shape, partial=True, input_hint=False).failure  # the scan says that
        if failure is None:
            return tuple(repairs)
        node, layer, x, error = failure.node, failure.layer, failure.input_shape, failure.error
        axes = _axis_fixes(layer, x) if isinstance(error, GeometryError) else ()
        repairs.append(Repair(node.name, error.location, x, error, axes))
        # a window that does not fit at all (or a kind without rounding) cannot be floored past
        if not axes or "rounding" not in layer.spec_fields or not all(w.fits for w in layer.windows(x)):
            return tuple(repairs)
        floored = dataclasses.replace(node, layer=dataclasses.replace(layer, rounding="floor"))
        spec = dataclasses.replace(spec, nodes=tuple(floored if n is node else n for n in spec.nodes))


def _axis_fixes(layer, x: tuple) -> tuple:
    """The failing axes of a windowed layer: those that do not fit or do not tile (strict)."""
    # the layer's own hyper-parameters only: which network inputs work is the size scan's answer
    fixes = []
    for term in layer.size_terms(x, None):
        w = term.window
        if not w.fits or (not w.whole and w.rounding == "strict"):
            changes = valid_alternatives(w)
            fixes.append(AxisFix(term.axis, window_text(term), changes))
    if len(fixes) > 1 and all((f.arithmetic, f.changes) == (fixes[0].arithmetic, fixes[0].changes)
                              for f in fixes):
        return (dataclasses.replace(fixes[0], axis="/".join(f.axis for f in fixes)),)
    return tuple(fixes)


# --- presentation ---------------------------------------------------------------------------
MAX_SHOWN = 12  # progressions listed before "... and N more"


def progression_text(run: Progression) -> str:
    """'227', '67, 99, 131, ..., 995 (every 32)', '3 to 1024 (every size)'."""
    values = list(run.values()) if run.count <= 3 else None
    if values:
        return ", ".join(map(str, values))
    if run.step == 1:
        return f"{run.first} to {run.last} (every size)"
    return f"{run.first}, {run.first + run.step}, {run.first + 2 * run.step}, ..., {run.last} (every {run.step})"


def sizes_text(axis: AxisSizes) -> str:
    if not axis.sizes:
        return "none"
    shown = [progression_text(run) for run in axis.progressions[:MAX_SHOWN]]
    more = len(axis.progressions) - MAX_SHOWN
    return "; ".join(shown) + (f"; ... and {more} more" if more > 0 else "") + \
        f": {len(axis.sizes)} size{'s' if len(axis.sizes) != 1 else ''}"


def change_text(changes: dict) -> str:
    """'stride 3 (-> 72), kernel 12 (-> 54)'."""
    return ", ".join(f"{what} {value} (-> {out})" for what, (value, out) in changes.items())


def render_text(solution: Solution) -> str:
    spec, shape = solution.spec, solution.input_shape
    together = len(solution.axes) == 1 and "=" in solution.axes[0].axis
    how = ("its spatial sizes together" if together else
           "one axis at a time, the others as given or, where invalid, at their nearest valid size")
    out = [f"{visible(spec.name)}: input sizes {solution.low}..{solution.high} that make every layer valid "
           f"(input {shape_text(shape)}, varying {how}):"]
    out += [f"  {axis.axis}: {sizes_text(axis)}" for axis in solution.axes]
    out.append("")
    if solution.valid:
        out.append(f"input {shape_text(shape)} is valid.")
        return "\n".join(out) + "\n"
    count = len(solution.repairs)
    out.append(f"input {shape_text(shape)} is invalid at {count} layer{'s' if count > 1 else ''}" +
               (" (past each one the walk rounds down, as PyTorch would):" if count > 1 else ":"))
    for repair in solution.repairs:
        out.append(f"  {visible(repair.layer)} ({visible(repair.location)}), input {shape_text(repair.input_shape)}")
        for fix in repair.axes:
            changes = change_text(fix.changes) or "no single stride, padding or kernel fixes it"
            out.append(f"    {fix.axis}: {fix.arithmetic}: try {changes}")
        if not repair.axes:
            out.append(f"    {visible(repair.error.message)}" +
                       (f"\n    hint: {visible(repair.error.hint)}" if repair.error.hint else ""))
    nearest = [f"{axis.axis} = {axis.nearest()}" for axis in solution.axes
               if axis.sizes and axis.current != axis.nearest()]
    if nearest:
        out.append(f"or change the input: nearest valid {', '.join(nearest)}")
    return "\n".join(out) + "\n"


def to_dict(solution: Solution) -> dict:
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "name": solution.spec.name,
        "input_shape": list(solution.input_shape),
        "range": [solution.low, solution.high],
        "valid": solution.valid,
        "sizes": {axis.axis: {"sizes": list(axis.sizes),
                              "progressions": [{"first": run.first, "last": run.last, "step": run.step}
                                               for run in axis.progressions]}
                  for axis in solution.axes},
        "repairs": [{"layer": repair.layer, "line": repair.location.line if repair.location else None,
                     "input_shape": list(repair.input_shape), "error": repair.error.message,
                     "axes": [{"axis": fix.axis, "arithmetic": fix.arithmetic,
                               "changes": {what: {"value": value, "output": out}
                                           for what, (value, out) in fix.changes.items()}}
                              for fix in repair.axes]}
                    for repair in solution.repairs],
    }
