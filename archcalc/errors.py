"""The project's own error types. The library raises them; only the CLI prints them.

Like click's ``ClickException``, an error carries everything needed to report it: the message,
where (a spec location, a layer), what to do (a hint) and the exit code. ``str(error)`` is the
whole report; the CLI writes it and exits with ``error.exit_code``, in one place.
"""
from __future__ import annotations

from collections.abc import Callable
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
    """Base of every error archcalc raises on purpose: where, which layer, what is wrong, what to do.

    ``location`` and ``layer`` are filled in by whoever knows them, often later (``located``);
    ``details`` are lines printed between the message and the hint (one per item of a list the
    message announces); ``notes`` are lines printed after the hint (what was still done, e.g. a
    partial drawing).
    """

    exit_code = 2  # an invalid spec or command line; VerificationFailed is 1
    severity = "error"

    def __init__(self, message: str, *, hint: str = "", location: Location | None = None,
                 layer: str | None = None, details: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.details = details
        self.hint = hint
        self.location = location
        self.layer = layer
        self.notes: list[str] = []

    def located(self, location: Location | None, layer: str | None = None) -> ArchcalcError:
        """Fill in location and layer where still unknown; returns self for `raise ... from`."""
        if self.location is None:
            self.location = location
        if self.layer is None:
            self.layer = layer
        return self

    def noted(self, note: str) -> ArchcalcError:
        """Add a line to print after the hint; returns self for `raise`."""
        self.notes.append(note)
        return self

    def lines(self) -> list[str]:
        """'spec.yaml:3:5: error: layer conv1: message', each detail indented, then '  hint: ...'
        and each note: one line each, though a name in one may hold a newline of its own (the
        command line writes every line escaped, views/escape.visible, so that a name never breaks
        one)."""
        where = f"{self.location}: " if self.location else ""
        who = f"layer {self.layer}: " if self.layer else ""
        lines = [f"{where}{self.severity}: {who}{self.message}", *(f"  {detail}" for detail in self.details)]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return lines + [f"  {note}" for note in self.notes]

    def __str__(self) -> str:
        return "\n".join(self.lines())


class SpecError(ArchcalcError):
    """A spec that cannot be analyzed. ``field`` names the layer argument at fault, so the
    caller can point at its line."""

    def __init__(self, message: str, *, hint: str = "", location: Location | None = None,
                 layer: str | None = None, field: str | None = None):
        super().__init__(message, hint=hint, location=location, layer=layer)
        self.field = field


class SpecWarning(SpecError):
    """A spec that is valid but most likely not what was meant (an input that looks channels-last).
    Never raised: checks return them, the CLI prints them in the errors' form and goes on (exit 0)."""

    severity = "warning"


Fixes = tuple[str | None, ...]


class GeometryError(SpecError):
    """An invalid D-F-S combination: the window does not tile the (padded) input.

    ``fixes`` are the nearest changes that make it whole ('padding: same (-> 16)', 'stride 1
    (-> 32)'), written into the hint as 'try A, B; <otherwise>'; the analysis, which knows the
    network, adds the network input that would do (analysis/walk.py). Both are searched when the
    hint is first read, not when the error is raised: solve judges thousands of input sizes and
    reads none of their messages. A fix is its text, or a function giving it (None: no fix).
    """

    def __init__(self, message: str, *, fixes: Fixes | Callable[[], Fixes] = (), otherwise: str = "",
                 field: str | None = None):
        self._fixes: list[Fixes | Callable[[], Fixes]] = [fixes]  # groups: fixes, or the function finding them
        self.otherwise = otherwise
        super().__init__(message, field=field)
        self._hint: str | None = None  # None: the hint is made from the fixes (a hint set replaces it)

    @property
    def fixes(self) -> list[str]:
        found: list[Fixes] = [group() if callable(group) else group for group in self._fixes]
        self._fixes = list(found)  # searched once
        return [fix for group in found for fix in group if fix is not None]

    def add_fix(self, fix: str | Callable[[], str | None]) -> None:
        self._fixes.append((lambda: (fix(),)) if callable(fix) else (fix,))

    @property
    def hint(self) -> str:
        if self._hint is not None:
            return self._hint
        fixes = self.fixes
        tried = "try " + ", ".join(fixes) if fixes else ""
        return "; ".join(part for part in (tried, self.otherwise) if part)

    @hint.setter
    def hint(self, value: str) -> None:
        self._hint = value


class UsageError(ArchcalcError):
    """A command-line value that cannot be used: names the option, the value and what is accepted.

    '--max-batch: cannot read 'inf' as a size' / 'hint: --max-batch takes a size such as 24GB'.
    """

    def __init__(self, option: str, value, reason: str, accepted: str = "", *, hint: str = ""):
        super().__init__(f"{option}: {reason}", hint=hint or (f"{option} takes {accepted}" if accepted else ""))
        self.option = option
        self.value = value


class MissingDependency(ArchcalcError):
    """An optional dependency (torch, Graphviz's dot) is needed but absent."""


class VerificationFailed(ArchcalcError):
    """PyTorch disagrees with the analyzer (``archcalc run``): a finding, not a usage error."""

    exit_code = 1


class UnknownName(ArchcalcError, KeyError):
    """A name looked up that does not exist (``Analysis.layer("nope")``); the hint says the closest.
    Also a KeyError, as a failed lookup by key is; printed as every ArchcalcError is."""
