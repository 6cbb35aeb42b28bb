"""The project's own error types. The library raises them; only the CLI prints them."""
from __future__ import annotations

from typing import NamedTuple


class Location(NamedTuple):
    """A place in a spec file: 1-based line and column, as editors count them.

    A named tuple: every YAML value gets one, and a tuple is built three times faster than a
    frozen dataclass (a tenth of the loading time of a 100,000-layer spec).
    """

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class ArchcalcError(Exception):
    """Base of every error archcalc raises on purpose."""


class SpecError(ArchcalcError):
    """A spec that cannot be analyzed: where, which layer, what is wrong, what to do.

    ``field`` names the layer argument at fault (so the caller can point at its line);
    ``location`` and ``layer`` are filled in by whoever knows them, often later.
    """

    def __init__(self, message: str, *, hint: str = "", location: Location | None = None,
                 layer: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location
        self.layer = layer
        self.field = field

    def located(self, location: Location | None, layer: str | None = None) -> SpecError:
        """Fill in location and layer where still unknown; returns self for `raise ... from`."""
        if self.location is None:
            self.location = location
        if self.layer is None:
            self.layer = layer
        return self

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        who = f"layer {self.layer}: " if self.layer else ""
        text = f"{where}error: {who}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class GeometryError(SpecError):
    """An invalid D-F-S combination: the window does not tile the (padded) input."""


class MissingDependency(ArchcalcError):
    """An optional dependency (torch, Graphviz's dot) is needed but absent."""
