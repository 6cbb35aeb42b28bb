"""What a parsed spec is: a Spec holding Nodes, each a named Layer with its locations."""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location
from ..layers import Layer, Shape

TOP_LEVEL_KEYS = ("name", "description", "params", "input", "inputs", "defaults", "include", "blocks", "layers",
                  "outputs")
COMMON_KEYS = ("name", "trainable", "inputs", "shares", "freeze")
INPUT = "input"  # the name by which layers refer to the network's input
MAX_LAYERS = 200_000  # twice the largest benchmark; building that many takes seconds already
MAX_VALUES = 2_000_000  # explicit weights and biases in all, copies counted: as many as a spec file may hold
MAX_BLOCK_NESTING = 100  # blocks using blocks (each expansion is a few Python frames deep)


@dataclass(frozen=True)
class Node:
    """One layer of the network as written: its name, rules, and where it was written."""

    name: str
    layer: Layer
    location: Location
    field_locations: dict[Hashable, Location] = field(default_factory=dict)  # by key as written
    group: tuple[tuple[str, int], ...] = ()  # enclosing repeats: ((label, iteration), ...), outermost first
    trainable: bool = True
    inputs: tuple[str, ...] = ()  # names of the layers (or "input") this one reads
    shares: str | None = None  # the earlier layer whose parameters (the same module) this one uses
    frozen: tuple[str, ...] = ()  # names of its tensors that are not trained ('freeze: [bias]')

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of what this layer outputs, as later layers read it: its own name, or
        '<name>.0', '<name>.1', ... for a layer with several outputs (split, chunk)."""
        count = self.layer.output_count()
        return (self.name,) if count == 1 else tuple(f"{self.name}.{index}" for index in range(count))

    def named(self, value: Any) -> tuple[tuple[str, Any], ...]:
        """(output name, value) pairs: ``value`` under the layer's name, or, for a layer with
        several outputs, each item of ``value`` (its shapes, receptive fields, tensors) under
        its output's name."""
        names = self.outputs
        return tuple(zip(names, value, strict=True)) if len(names) > 1 else ((self.name, value),)

    def location_of(self, field_name: str | None) -> Location:
        return self.field_locations.get(field_name, self.location)


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    input_shape: Shape
    nodes: tuple[Node, ...]
    path: str
    input_location: Location
    outputs: tuple[str, ...] = ()  # names of the layers whose results leave the network
    inputs: dict[str, Shape] = field(default_factory=dict)  # {name: shape}; "input" unless 'inputs:'
    blocks: dict[str, str] = field(default_factory=dict)  # {block instance name: the block it instantiates}
    steps_parameter: str | None = None  # the parameter its sequence input's steps are written as ('$T')
    includes: tuple[str, ...] = ()  # the block libraries it read through 'include:' (real paths)
