"""What a parsed spec is: a Spec holding Nodes, each a named Layer with its locations."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Location
from ..layers import Layer

TOP_LEVEL_KEYS = ("name", "description", "params", "input", "inputs", "defaults", "blocks", "layers",
                  "outputs")
COMMON_KEYS = ("name", "trainable", "inputs")
INPUT = "input"  # the name by which layers refer to the network's input
MAX_LAYERS = 200_000  # twice the largest benchmark; building that many takes seconds already
MAX_BLOCK_NESTING = 100  # blocks using blocks (each expansion is a few Python frames deep)


@dataclass(frozen=True)
class Node:
    """One layer of the network as written: its name, rules, and where it was written."""

    name: str
    layer: Layer
    location: Location
    field_locations: dict = field(default_factory=dict)
    group: tuple = ()          # enclosing repeats: ((label, iteration), ...), outermost first
    trainable: bool = True
    inputs: tuple = ()         # names of the layers (or "input") this one reads

    def location_of(self, field_name: str | None) -> Location:
        return self.field_locations.get(field_name, self.location)


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    input_shape: tuple
    nodes: tuple
    path: str
    input_location: Location
    outputs: tuple = ()        # names of the layers whose results leave the network
    inputs: dict = field(default_factory=dict)  # {name: shape}; one entry, "input", unless 'inputs:'
