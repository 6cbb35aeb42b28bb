"""Warnings about a spec's inputs: shapes that are valid but most likely not what was meant.

They do not stop a command (exit code 0): the CLI prints them on stderr before its output.

- Channels last. archcalc, like PyTorch, reads shapes channels first; the course and Keras
  write images as 32x32x3. [32, 32, 3] is a valid shape (32 channels of 32x3), so the mistake
  only shows as odd sizes far down the report: a shape whose last axis is 1, 3 or 4 (grey, RGB,
  RGBA) and whose first two are equal and larger is flagged.
- ``--input`` with another number of axes than the spec's input: 224x224 on VGG16 (3x224x224)
  silently makes a 1D network of 224 channels.
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import Location, SpecWarning
from ..layers import Steps
from .model import Spec

IMAGE_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA


def channels_first(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The channels-first shape a channels-last-looking one probably meant ([32, 32, 3] ->
    [3, 32, 32]), or None when the shape does not look channels-last."""
    if isinstance(shape, Steps) or len(shape) < 3:
        return None
    if shape[-1] in IMAGE_CHANNELS and shape[0] == shape[1] > shape[-1]:
        return (shape[-1], *shape[:-1])
    return None


def input_warnings(spec: Spec, input_shape: tuple[int, ...] | None = None) -> list[SpecWarning]:
    """What looks wrong in the spec's inputs, or in ``input_shape`` (--input) against them."""
    warnings = []
    inputs = dict(spec.inputs) or {"input": spec.input_shape}
    for name, shape in inputs.items():
        if input_shape is None or len(inputs) > 1:
            where = spec.input_location if len(inputs) == 1 else None
            warnings += _channels_last(shape, f"input {name!r}" if len(inputs) > 1 else "input",
                                       _listed, where)
    if input_shape is not None and len(inputs) == 1:
        declared = next(iter(inputs.values()))
        warnings += _channels_last(input_shape, "--input", _sized, None)
        if len(input_shape) != len(declared) and not isinstance(declared, Steps):
            warnings.append(_axes_changed(tuple(input_shape), tuple(declared)))
    return warnings


def _channels_last(shape: tuple[int, ...], what: str, written: Callable[[tuple[int, ...]], str],
                   location: Location | None) -> list[SpecWarning]:
    meant = channels_first(shape)
    if meant is None:
        return []
    return [SpecWarning(f"{what} {written(shape)} looks channels-last (height, width, channels); archcalc reads "
                        f"shapes channels first, as PyTorch does: {shape[0]} channels of {_sized(shape[1:])}",
                        hint=f"did you mean {written(meant)}?", location=location)]


def _axes_changed(given: tuple[int, ...], declared: tuple[int, ...]) -> SpecWarning:
    hint = f"the spec's input is {_sized(declared)}"
    if len(given) < len(declared):
        hint = f"did you mean {_sized(declared[:len(declared) - len(given)] + given)}?"
    return SpecWarning(f"--input {_sized(given)} has {len(given)} ax{'is' if len(given) == 1 else 'es'} but the "
                       f"spec's input {_sized(declared)} has {len(declared)}: the network now reads "
                       f"{_described(given)}", hint=hint)


def _described(shape: tuple[int, ...]) -> str:
    """'a 1D map of 224 channels x 224', 'a flat vector of 224 features'."""
    if len(shape) == 1:
        return f"a flat vector of {shape[0]} features"
    return f"a {len(shape) - 1}D map of {shape[0]} channels x {_sized(shape[1:])}"


def _listed(shape: tuple[int, ...]) -> str:
    """As a spec writes it: [3, 32, 32]."""
    return "[" + ", ".join(map(str, shape)) + "]"


def _sized(sizes: tuple[int, ...]) -> str:
    """As --input writes it: 3x32x32."""
    return "x".join(map(str, sizes))
