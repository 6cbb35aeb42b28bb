"""What ``archcalc import`` says about an import: both sides' numbers, how the spec was made readable."""
from __future__ import annotations

from ..layers import shape_text
from ..layers.shapes import shape_of


def summary(imported) -> str:
    """'imported resnet50: 176 layers, 25,557,032 parameters, 4,089,184,256 MACs, output 1000, as
    PyTorch counts them', then the blocks and repeats, then what was approximated or kept opaque.
    Where a number differs, both sides."""
    source, spec = imported.source, imported.spec
    layers = len(imported.analysis.layers)
    outputs = ", ".join(shape_text(shape_of(shape)) for shape in spec.outputs)
    origin = imported.origin
    if spec.macs is not None:
        macs = f"{spec.macs:,} MACs"
    elif origin == "PyTorch":
        macs = "MACs not cross-checked (the source's count failed)"
    else:  # an ONNX graph has no MAC count of its own
        macs = f"{imported.analysis.totals.macs:,} MACs (the spec's: {origin} has no count to compare)"
    if imported.opaque and spec.macs is not None and spec.macs != source.macs:
        macs = f"{spec.macs:,} of {origin}'s {source.macs:,} MACs (the opaque layers' not counted)"
    lines = [f"imported {imported.analysis.spec.name}: {layers:,} layers, {spec.params:,} parameters, {macs}, "
             f"output {outputs}" + (f", as {origin} counts them" if imported.exact else "")]
    if not imported.exact:
        lines = [f"the imported spec differs from {origin}:"]
        for what, ours, theirs in (("parameters", spec.params, source.params), ("MACs", spec.macs, source.macs),
                                   ("outputs", spec.outputs, source.outputs)):
            if ours != theirs:
                lines.append(f"  {what}: spec {_number(ours)}, {origin} {_number(theirs)}")
    written = imported.written
    if written.blocks:
        blocks = ", ".join(f"{name} (x{count})" for name, count in written.blocks.items())
        repeats = f"; {written.repeats} repeat{'s' if written.repeats != 1 else ''}" if written.repeats else ""
        lines.append(f"  blocks: {blocks}{repeats}")
    lines += [f"  approximated: {note}" for note in imported.notes]
    opaque = imported.opaque
    if opaque:
        shown = ", ".join(opaque[:8]) + (f" and {len(opaque) - 8} more" if len(opaque) > 8 else "")
        lines.append(f"  opaque ({len(opaque)}, shapes and parameters as traced, MACs and FLOPs not counted): {shown}")
    return "\n".join(lines)


def _number(value) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple):
        return ", ".join(shape_text(shape_of(shape)) for shape in value)
    return str(value)
