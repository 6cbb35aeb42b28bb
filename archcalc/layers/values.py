"""Explicit parameter values for teaching: a conv's or dense layer's ``weights`` and ``bias``.

The course works filters out by hand ([.2, -.3, .4] sliding over a signal); a spec may carry
those numbers so ``archcalc run --values`` reproduces the slides. Weights follow PyTorch's
layout ([K][C/groups][F...] for a conv, [units][inputs] for dense) or are one flat list that
fills it exactly. Counts are checked here, statically, without torch.
"""
from __future__ import annotations

from math import prod

from ..errors import SpecError
from .arguments import boolean
from .recipe import Recipe, module, options


class Numbers(tuple):
    """Explicit values as nested tuples, with ``count``, how many numbers they hold in all.

    A layer in a repeat is built once and shared by its copies, so are its values: their
    nesting is measured once too (``nesting``), not once per copy.
    """

    count: int

    def nesting(self, field: str) -> tuple:
        """(4, 3) for four lists of three numbers; ragged nesting is an error."""
        if "shape" not in self.__dict__:
            self.shape = _nested_shape(self, field)
        return self.shape


def numbers(value) -> Numbers:
    """A list of numbers, flat or nested: [0.2, -0.3, 0.4] or [[[0.2, -0.3, 0.4]]]."""
    values, count = _numbers(value)
    result = Numbers(values)
    result.count = count
    return result


def _numbers(value) -> tuple[tuple, int]:
    if not isinstance(value, list) or not value:
        raise SpecError(f"must be a non-empty list of numbers, got {value!r}",
                        hint="e.g. [0.2, -0.3, 0.4], or nested lists in PyTorch's order")
    items, count = [], 0
    for item in value:
        if isinstance(item, list):
            item, inner = _numbers(item)
            count += inner
        else:
            item = _number(item)
            count += 1
        items.append(item)
    return tuple(items), count


def bias_values(value):
    """true, false, or the list of bias values (one per filter or unit)."""
    if isinstance(value, list):
        values = numbers(value)
        if any(isinstance(item, tuple) for item in values):
            raise SpecError("a bias is one flat list of numbers, one per filter or unit")
        return values
    return boolean(value)


def check_values(weights, bias, shape: tuple, layout: str) -> None:
    """Explicit values are all or nothing (a half-random layer reproduces no worked example):
    ``weights`` fill ``shape`` = [outputs][...] and ``bias`` is false or one value per output."""
    if weights is None and not isinstance(bias, tuple):
        return
    if weights is None:
        raise SpecError("bias values without weights would leave the weights random", field="bias",
                        hint=f"give the weights too, in PyTorch's layout {layout}")
    if bias is True:
        raise SpecError("explicit weights with a random bias", field="weights",
                        hint=f"give the {shape[0]} bias values (bias: [...]) or 'bias: false'")
    check_count(weights, shape, "weights", layout)
    if isinstance(bias, tuple):
        check_count(bias, shape[:1], "bias", f"[{shape[0]}]")


def check_count(values, shape: tuple, field: str, layout: str, owner: str = "this layer") -> None:
    """``values`` must be flat with prod(shape) numbers, or nested exactly as ``shape``."""
    nested = values.nesting(field)
    expected = "x".join(map(str, shape))
    if len(nested) == 1:
        if nested[0] != prod(shape):
            raise SpecError(f"{field} has {nested[0]} numbers but {owner} needs {prod(shape)} "
                            f"({layout} = {expected})", field=field,
                            hint=f"give {prod(shape)} numbers, or nest them as {layout}")
    elif nested != tuple(shape):
        raise SpecError(f"{field} is nested as {'x'.join(map(str, nested))} but {owner} is laid out as "
                        f"{layout} = {expected}", field=field,
                        hint=f"nest them as {expected}, or give one flat list of {prod(shape)} numbers")


def preset(recipe: Recipe, weights, bias) -> Recipe:
    """The recipe with its explicit weights and bias values applied, if the spec gives any."""
    bias_list = bias if isinstance(bias, tuple) else None
    if weights is None and bias_list is None:
        return recipe
    return module("preset", recipe, **options(weight=(weights, None), bias=(bias_list, None)))


def _number(item):
    if isinstance(item, bool) or not isinstance(item, (int, float)):
        raise SpecError(f"must contain only numbers, got {item!r}")
    return item


def _nested_shape(values: tuple, field: str) -> tuple:
    """(4, 3) for four lists of three numbers; ragged nesting is an error."""
    if not any(isinstance(item, tuple) for item in values):
        return (len(values),)
    if not all(isinstance(item, tuple) for item in values):
        raise SpecError(f"{field} mixes numbers and lists at one level", field=field)
    inner = {_nested_shape(item, field) for item in values}
    if len(inner) > 1:
        raise SpecError(f"{field} has lists of different lengths at one level", field=field)
    return (len(values), *inner.pop())
