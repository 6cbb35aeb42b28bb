"""Activation checkpointing: which runs of layers a training step recomputes in backward.

A segment is a run of consecutive layers (in the spec's order, the order the backend runs them)
that PyTorch runs under torch.utils.checkpoint.checkpoint(use_reentrant=False): its forward keeps
only the segment's inputs, and backward runs its forward again to get what its ops saved
(the memory schedule, analysis/schedule.py, replays exactly that). A choice names

- a repeat: each of its iterations is one segment ('h': GPT-2's twelve decoder layers);
- a block instance ('decoder_layer3', 'stage2'): one segment;
- a layer: one segment of that layer alone;
- ``every:K``: the layers cut into runs of K, each a segment (the last run may be shorter), so
  the forward keeps every K-th layer's input: checkpoint_sequential's segments, of K layers each.

Names are those of --shard-unit (analysis/sharding.py's units): a repeat by its label, a block
instance by its full name, a layer by its name; a layer inside a chosen repeat or block instance is
part of that one's segments.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import UsageError
from .sharding import units
from .walk import Analysis

EVERY = "every:"


@dataclass(frozen=True)
class Segment:
    """One checkpointed run: what it is called in the output, and its layers in order."""

    name: str
    layers: tuple[str, ...]


def segments(analysis: Analysis, choices: Iterable[str]) -> tuple[Segment, ...]:
    """The segments of the ``choices`` (see the module), in spec order: names as FSDP's wrapping
    units take them (sharding.units: a layer inside a named repeat or block instance is that
    one's), every:K runs beside them. Raises UsageError for a name nothing has (with the nearest
    names), a malformed every:K, or a run of every:K that a named segment cuts across."""
    choices = tuple(dict.fromkeys(choices))
    names = tuple(choice for choice in choices if not choice.startswith(EVERY))
    labels = {entry[0] for stats in analysis.layers for entry in stats.node.group}
    layers = [stats.name for stats in analysis.layers]
    for name in names:
        if name not in labels and name not in layers:
            near = difflib.get_close_matches(name, sorted(labels) + layers, n=3, cutoff=0.5)
            raise UsageError("--checkpoint", name, f"no repeat, block instance or layer is named '{name}'",
                             hint=("did you mean " + " or ".join(f"'{found}'" for found in near) + "?") if near
                             else "name a repeat, a block instance or a layer (inspect --depth shows them), "
                                  "or write every:K")
    found = [Segment(unit.name, unit.layers) for unit in units(analysis, names).units] if names else []
    for choice in choices:
        if choice.startswith(EVERY):
            found += _every(analysis, choice, found)
    position = {name: index for index, name in enumerate(layers)}
    return tuple(sorted(found, key=lambda segment: position[segment.layers[0]]))


def _every(analysis: Analysis, choice: str, named: list[Segment]) -> list[Segment]:
    """every:K: the layers in runs of K."""
    count = choice[len(EVERY):]
    if not count.isdigit() or int(count) < 1:
        raise UsageError("--checkpoint", choice, f"cannot read {count!r} as a number of layers",
                         hint="write every:K with K a whole number of layers, e.g. every:4")
    k, layers = int(count), [stats.name for stats in analysis.layers]
    runs = [tuple(layers[start:start + k]) for start in range(0, len(layers), k)]
    taken = {layer: segment.name for segment in named for layer in segment.layers}
    for run in runs:
        if any(layer in taken for layer in run):
            layer = next(layer for layer in run if layer in taken)
            raise UsageError("--checkpoint", choice, f"its run {run[0]}..{run[-1]} and '{taken[layer]}' "
                             f"both hold layer '{layer}'", hint="segments cannot nest: give every:K alone")
    return [Segment(run[0] if len(run) == 1 else f"{run[0]}..{run[-1]}", run) for run in runs]
