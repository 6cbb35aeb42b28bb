"""The compile plan of an analyzed spec: per layer its torch recipe, a Python name, what it reads.

The graph module (graph.py) builds a plan and the exporter (export.py) prints it, so the
runnable model and the exported source are two readings of one plan.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from ..analysis import Analysis, LayerStats, analyze
from ..errors import SpecError
from ..layers import lookup
from ..layers.recipe import Recipe, sequence
from ..spec import INPUT, Spec, load


@dataclass(frozen=True)
class Step:
    """One layer: ``attribute = recipe`` in __init__, ``name = attribute(*reads)`` in forward."""

    stats: LayerStats
    attribute: str      # the submodule's Python name (the spec's name, made an identifier)
    recipe: Recipe
    reads: tuple        # spec names of the values it reads: earlier layers or network inputs
    shares: str | None = None  # the attribute of the module it applies again ('shares:'), not its own

    @property
    def name(self) -> str:
        return self.stats.name

    @property
    def module(self) -> str:
        """The attribute of the module it calls: its own, or the shared layer's."""
        return self.shares or self.attribute


@dataclass(frozen=True)
class Plan:
    analysis: Analysis
    class_name: str
    inputs: dict        # network input name -> per-sample shape, in forward's argument order
    input_variables: tuple  # their Python names (unique among the steps' attributes)
    steps: tuple
    outputs: tuple      # spec names of the values forward returns

    def releases(self) -> list[tuple]:
        """Per step, the values read for the last time there (forward drops them, so memory is
        freed as a hand-written forward would free it)."""
        last = {}
        for index, step in enumerate(self.steps):
            for name in step.reads:
                last[name] = index
        done = [[] for _ in self.steps]
        for name, index in last.items():
            if name not in self.outputs:
                done[index].append(name)
        return [tuple(names) for names in done]


def as_analysis(source, **analyze_options) -> Analysis:
    """An Analysis from a spec path, a Spec or an Analysis (returned as it is)."""
    if isinstance(source, Analysis):
        if source.error is not None:
            raise source.error
        return source
    if isinstance(source, (str, Path)):
        source = load(str(source))
    if not isinstance(source, Spec):
        raise TypeError(f"expected a spec path, a Spec or an Analysis, got {type(source).__name__}")
    return analyze(source, **analyze_options)


def make_plan(source, **analyze_options) -> Plan:
    analysis = as_analysis(source, **analyze_options)
    spec = analysis.spec
    inputs = dict(spec.inputs) or {INPUT: spec.input_shape}
    inputs[next(iter(inputs))] = analysis.input_shape  # --input overrides the (single) input
    taken: set = set()
    variables = tuple(identifier(name, taken) for name in inputs)
    attributes = {stats.name: identifier(stats.name, taken) for stats in analysis.layers}
    steps = tuple(Step(stats, attributes[stats.name], layer_recipe(stats), stats.node.inputs,
                       attributes[stats.shares] if stats.shares is not None else None)
                  for stats in analysis.layers)
    return Plan(analysis, class_name(spec.name), inputs, variables, steps, spec.outputs)


def layer_recipe(stats: LayerStats) -> Recipe:
    """The layer's own recipe, then its ``activation:`` attribute if it has one."""
    layer = stats.layer
    try:
        recipe = layer.to_torch(stats.input_shape)
        if layer.activation:
            recipe = sequence(recipe, lookup(layer.activation).from_args({}).to_torch(stats.output_shape))
    except SpecError as exc:
        raise exc.located(stats.node.location_of(exc.field), stats.name) from None
    return recipe


def identifier(name: str, taken: set) -> str:
    """A Python name for a layer, unique in ``taken`` (which it joins): 'stage2.conv1' -> 'stage2_conv1'.

    Avoids keywords and nn.Module's own attributes ('forward', 'training'...).
    """
    from torch import nn

    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit():
        text = f"layer_{text}"
    if keyword.iskeyword(text) or hasattr(nn.Module, text) or text in ("self", "x"):
        text += "_"
    candidate, number = text, 2
    while candidate in taken:
        candidate, number = f"{text}_{number}", number + 1
    taken.add(candidate)
    return candidate


def class_name(name: str) -> str:
    """'1D signal, D=9' -> 'Net1DSignalD9': CamelCase words, never starting with a digit."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    text = "".join(word[0].upper() + word[1:] for word in words) or "Network"
    return f"Net{text}" if text[0].isdigit() else text
