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

Names are those ``inspect --depth`` shows: a repeat by its label ('layer1', or 'block.repeat'
inside a block instance), a block instance by its full name.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import UsageError
from .walk import Analysis

EVERY = "every:"


@dataclass(frozen=True)
class Segment:
    """One checkpointed run: what it is called in the output, and its layers in order."""

    name: str
    layers: tuple[str, ...]


def segments(analysis: Analysis, choices: Iterable[str]) -> tuple[Segment, ...]:
    """The segments of the ``choices`` (see the module), in spec order. Raises UsageError for a
    name nothing has (with the nearest names), a malformed every:K, or two choices that share a layer."""
    found: list[tuple[str, Segment]] = []
    for choice in choices:
        found += [(choice, segment) for segment in _chosen(analysis, choice)]
    position = {stats.name: index for index, stats in enumerate(analysis.layers)}
    owner: dict[str, str] = {}
    for choice, segment in found:
        for layer in segment.layers:
            if layer in owner and owner[layer] != choice:
                raise UsageError("--checkpoint", choice, f"'{choice}' and '{owner[layer]}' both hold layer '{layer}'",
                                 hint="segments cannot nest: keep the outer one or the inner one")
            owner[layer] = choice
    unique = {segment.layers: segment for _, segment in found}   # a choice given twice counts once
    return tuple(sorted(unique.values(), key=lambda segment: position[segment.layers[0]]))


def _chosen(analysis: Analysis, choice: str) -> list[Segment]:
    names = [stats.name for stats in analysis.layers]
    if choice.startswith(EVERY):
        count = choice[len(EVERY):]
        if not count.isdigit() or int(count) < 1:
            raise UsageError("--checkpoint", choice, f"cannot read {count!r} as a number of layers",
                             hint="write every:K with K a whole number of layers, e.g. every:4")
        k = int(count)
        runs = [tuple(names[start:start + k]) for start in range(0, len(names), k)]
        return [Segment(run[0] if len(run) == 1 else f"{run[0]}..{run[-1]}", run) for run in runs]
    iterations: dict[tuple[str, int], list[str]] = {}   # a repeat's iterations, each its layers
    instances: dict[str, list[str]] = {}                # a block instance's layers
    for stats in analysis.layers:
        instance = ""
        for label, iteration in stats.node.group:
            if iteration == 0:   # a block instance: its label is its full name
                instance = label
                instances.setdefault(label, []).append(stats.name)
            else:                # a repeat, named as inspect --depth names it
                repeat = f"{instance}.{label}" if instance else label
                iterations.setdefault((repeat, iteration), []).append(stats.name)
    repeated = [(key, layers) for key, layers in iterations.items() if key[0] == choice]
    if repeated:
        return [Segment(f"{choice}[{iteration}]", tuple(layers)) for (_, iteration), layers in repeated]
    if choice in instances:
        return [Segment(choice, tuple(instances[choice]))]
    if choice in names:
        return [Segment(choice, (choice,))]
    known = list(dict.fromkeys([*(repeat for repeat, _ in iterations), *instances, *names]))
    near = difflib.get_close_matches(choice, known, n=3, cutoff=0.5)
    hint = ("did you mean " + " or ".join(f"'{name}'" for name in near) + "?") if near else \
        "name a repeat, a block instance or a layer (inspect --depth lists them), or write every:K"
    raise UsageError("--checkpoint", choice, f"no repeat, block instance or layer is named '{choice}'", hint=hint)
