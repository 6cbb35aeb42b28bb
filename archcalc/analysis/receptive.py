"""The receptive field of every layer of an analyzed network (the rules: layers/receptive.py)."""
from __future__ import annotations

from ..layers.receptive import Field, input_field, widest
from .walk import Analysis


def receptive_fields(analysis: Analysis) -> dict[str, Field]:
    """{layer name: Field of its output} for every analyzed layer, in spec order.

    Each kind's rule is its ``Layer.receptive_field(x, y, field)``; a layer with several outputs
    (split) has one field per output, and is listed with its first.
    """
    fields = {name: input_field(shape) for name, shape in analysis.input_shapes.items()}
    for stats in analysis.layers:
        field = widest([fields[name] for name in stats.node.inputs])
        fields.update(stats.node.named(stats.layer.receptive_field(stats.input_shape, stats.output_shape, field)))
    return {stats.name: fields[stats.node.outputs[0]] for stats in analysis.layers}


def field_text(field: Field) -> tuple[str, str, str]:
    """('7x7', '1', '-3'): size per axis, then jump and start (one value when every axis agrees)."""
    if not field:
        return "", "", ""

    def joined(values: list[int], sep: str) -> str:
        return str(values[0]) if len(set(values)) == 1 else sep.join(map(str, values))

    return ("x".join(str(f.size) for f in field), joined([f.jump for f in field], ","),
            joined([f.start for f in field], ","))
