"""Recipes: how to construct a PyTorch module, written as plain data (no torch here).

A layer's ``to_torch(x)`` returns a Recipe, not a module. The backend builds the module from
it (backend/modules.py, ``construct``) and ``archcalc export`` prints the very same recipe as
Python source, so the exported code constructs exactly the model that ``archcalc run`` verified:

    module("nn.Conv2d", 3, 96, 11, stride=4)
      built:   torch.nn.Conv2d(3, 96, 11, stride=4)
      source:  "nn.Conv2d(3, 96, 11, stride=4)"

A name starting with ``nn.`` is a torch.nn class; any other name is a helper defined in
archcalc/backend/modules.py, whose source the export copies into the file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """A constructor call: ``name(*args, **kwargs)``; arguments may be Recipes themselves."""

    name: str
    args: tuple = ()
    kwargs: tuple = ()  # (keyword, value) pairs, in order

    def source(self) -> str:
        """Python source that constructs the same module: 'nn.Conv2d(3, 96, 11, stride=4)'."""
        parts = [literal(value) for value in self.args]
        parts += [f"{key}={literal(value)}" for key, value in self.kwargs]
        return f"{self.name}({', '.join(parts)})"

    def helpers(self) -> set:
        """Names of the helpers of modules.py this recipe uses, nested ones included."""
        found = set() if self.name.startswith("nn.") else {self.name}
        for value in (*self.args, *(value for _, value in self.kwargs)):
            if isinstance(value, Recipe):
                found |= value.helpers()
        return found


def module(name: str, *args, **kwargs) -> Recipe:
    """The recipe of ``name(*args, **kwargs)``: a torch.nn class ('nn.ReLU') or a helper ('Add')."""
    return Recipe(name, args, tuple(kwargs.items()))


def sequence(*parts: Recipe | None) -> Recipe:
    """nn.Sequential of the given parts (None skipped, nested Sequentials flattened); one part alone
    is returned as it is."""
    flat = []
    for part in parts:
        if part is None:
            continue
        flat.extend(part.args if part.name == "nn.Sequential" else [part])
    return flat[0] if len(flat) == 1 else module("nn.Sequential", *flat)


def options(**pairs: tuple) -> dict:
    """Keyword arguments that differ from their defaults: options(stride=(2, 1)) -> {'stride': 2}.

    Keeps recipes (and the exported code) as short as a person would write them.
    """
    return {key: value for key, (value, default) in pairs.items() if value != default}


def compact(values: tuple):
    """One number when every axis agrees ((3, 3) -> 3), else the per-axis tuple."""
    values = tuple(values)
    return values[0] if len(set(values)) == 1 else values


def literal(value) -> str:
    """Python source for a recipe argument."""
    if isinstance(value, Recipe):
        return value.source()
    if isinstance(value, float) and not math.isfinite(value):
        return f"float('{value}')"
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return f"[{', '.join(literal(v) for v in value)}]"
    return repr(value)
