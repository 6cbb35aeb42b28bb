"""The compile plan of an analyzed spec: per layer its torch recipe, a Python name, what it reads.

The graph module (graph.py) builds a plan and the exporter (export.py) prints it, so the
runnable model and the exported source are two readings of one plan.
"""
from __future__ import annotations

import functools
import keyword
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..analysis import Analysis, LayerStats, analyze
from ..errors import SpecError
from ..layers import lookup
from ..layers.recipe import Recipe, sequence
from ..spec import Spec, load


@dataclass(frozen=True)
class Step:
    """One layer: ``attribute = recipe`` in __init__, ``name = attribute(*reads)`` in forward."""

    stats: LayerStats
    attribute: str      # the submodule's Python name (the spec's name, made an identifier)
    recipe: Recipe
    reads: tuple        # spec names of the values it reads: earlier layers or network inputs (a layer
                        # that reads nothing, parameter, is given the first network input for its batch size)
    shares: str | None = None  # the attribute of the module it applies again ('shares:'), not its own
    parts: tuple = ()   # a layer with several outputs (split): their Python names, in forward
    ties: str | None = None  # 'shares:' a layer of another kind: its own module, that one's Parameters (tie)

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
        outputs = set(self.outputs)
        for name, index in last.items():
            if name not in outputs:
                done[index].append(name)
        return [tuple(names) for names in done]


def as_analysis(source, **analyze_options) -> Analysis:
    """An Analysis from a spec path, a Spec or an Analysis (returned as it is)."""
    if isinstance(source, Analysis):
        return source.complete()
    if isinstance(source, (str, Path)):
        source = load(str(source))
    if not isinstance(source, Spec):
        raise TypeError(f"expected a spec path, a Spec or an Analysis, got {type(source).__name__}")
    return analyze(source, **analyze_options)


def make_plan(source, **analyze_options) -> Plan:
    analysis = as_analysis(source, **analyze_options)
    spec = analysis.spec
    inputs = analysis.input_shapes  # after --input
    several = [output for stats in analysis.layers if len(stats.node.outputs) > 1 for output in stats.node.outputs]
    names = identifiers([*inputs, *(stats.name for stats in analysis.layers), *several])
    variables = tuple(names[:len(inputs)])
    attributes = dict(zip((stats.name for stats in analysis.layers), names[len(inputs):]))
    first = next(iter(inputs))  # a layer that reads nothing (parameter) reads its batch size there
    parts = dict(zip(several, names[len(inputs) + len(analysis.layers):]))
    kinds = {stats.name: type(stats.layer) for stats in analysis.layers}
    steps = tuple(Step(stats, attributes[stats.name], layer_recipe(stats), stats.node.inputs or (first,),
                       attributes[stats.shares] if stats.shares is not None and same_kind(stats, kinds) else None,
                       tuple(parts[output] for output in stats.node.outputs if output in parts),
                       attributes[stats.shares] if stats.shares is not None and not same_kind(stats, kinds) else None)
                  for stats in analysis.layers)
    return Plan(analysis, class_name(spec.name), inputs, variables, steps, spec.outputs)


def same_kind(stats: LayerStats, kinds: dict) -> bool:
    """A layer that shares one of its own kind applies that module again; one of another kind
    (a dense head sharing an embedding's table) ties the tensors of a module of its own."""
    return kinds[stats.shares] is type(stats.layer)


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


def python_name(name: str) -> str:
    """A valid Python identifier that reads like ``name``: 'stage2.conv1' -> 'stage2_conv1',
    'a²' -> 'a2', 'ﬁlter' -> 'filter_', '__w' -> 'w', '2x' -> 'layer_2x', '卷积' -> 'layer'.

    Names are data, never code: the spec name is decomposed (NFKD: ligatures and superscripts
    become letters and digits, accents are dropped), every run of other characters becomes '_',
    and leading underscores go (Python would mangle '__w' inside a class, and '_modules' is
    nn.Module's own). ASCII only, so Python's NFKC folding of identifiers cannot merge two names.
    A name the generated code or nn.Module already uses (keywords, builtins, 'forward',
    'training', 'torch', 'x'...) gets a trailing '_'.
    """
    text = re.sub(r"[^A-Za-z0-9_]+", "_", _decomposed(name)).lstrip("_") or "layer"
    if text[0].isdigit():
        text = f"layer_{text}"
    return f"{text}_" if text in reserved_names() else text


def identifiers(names) -> list[str]:
    """``python_name`` of each name, made unique by a suffix where two meet ('a', 'a_2', 'a_3';
    'filter_', 'filter_2').

    build and export both take their attribute names from here, so their state dicts agree.
    """
    taken: set = set()
    next_suffix: dict = {}  # per base name: where the search for a free suffix resumes (linear, not quadratic)
    unique = []
    for name in names:
        base = candidate = python_name(name)
        number = next_suffix.get(base, 2)
        while candidate in taken:
            candidate, number = f"{base.rstrip('_')}_{number}", number + 1
        next_suffix[base] = number
        taken.add(candidate)
        unique.append(candidate)
    return unique


@functools.cache
def reserved_names() -> frozenset:
    """Identifiers a layer must not take: Python's keywords and builtins, every attribute of
    nn.Module (class and instance: 'forward', 'to', 'training'), the Network's own methods, and
    the names the exported file uses (torch, nn, its helpers, 'self', 'x' for chains)."""
    import builtins

    from torch import nn

    from .modules import HELPERS

    return frozenset({*keyword.kwlist, *dir(builtins), *dir(nn.Module), *vars(nn.Module()),
                      *NETWORK_METHODS, *HELPERS, "torch", "nn", "self", "x"})


# graph.Network's methods besides nn.Module's (its data attributes start with '_', which no identifier does)
NETWORK_METHODS = ("run", "submodule")


def class_name(name: str) -> str:
    """'1D signal, D=9' -> 'Net1DSignalD9': CamelCase words, ASCII (as python_name decomposes it),
    'Net' in front of a digit or of a name taken ('none' -> 'NetNone', 'add' -> 'NetAdd')."""
    words = re.findall(r"[A-Za-z0-9]+", _decomposed(name))
    text = "".join(word[0].upper() + word[1:] for word in words) or "Network"
    return f"Net{text}" if text[0].isdigit() or text in reserved_names() else text


def _decomposed(name: str) -> str:
    """``name`` with Unicode's compatibility decomposition (NFKD: 'ﬁ' -> 'fi', '²' -> '2',
    'é' -> 'e' + accent) and the accents dropped."""
    if name.isascii():
        return name
    return "".join(char for char in unicodedata.normalize("NFKD", name) if not unicodedata.combining(char))
