"""Safe YAML loading that remembers where every key and value came from.

Only YAML's plain data types are built (mappings, sequences, strings, numbers, booleans,
null): any tag that would construct an object is refused. Mappings and sequences come
back as ``Mapping`` / ``Sequence`` that carry their ``Location`` and those of their items,
so an error found much later can still point at file:line:column.
"""
from __future__ import annotations

import yaml

from .errors import Location, SpecError

try:  # libyaml's composer is ~10x faster and still gives line/column marks
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

MAX_FILE_BYTES = 10_000_000
MAX_NODES = 2_000_000  # after alias expansion: refuses "billion laughs" files quickly
MAX_DEPTH = 100

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}
_COLLECTION_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}


class Mapping(dict):
    """A dict from YAML, with the location of itself, of each key and of each value."""

    location: Location
    key_locations: dict
    value_locations: dict

    def key_location(self, key) -> Location:
        return self.key_locations.get(key, self.location)

    def value_location(self, key) -> Location:
        return self.value_locations.get(key, self.location)


class Sequence(list):
    """A list from YAML, with the location of itself and of each item."""

    location: Location
    item_locations: list

    def item_location(self, index: int) -> Location:
        return self.item_locations[index] if index < len(self.item_locations) else self.location


def location_of(value, default: Location) -> Location:
    return getattr(value, "location", default)


def load_text(text: str, path: str = "<spec>"):
    """Parse YAML text into plain data with locations; raises SpecError on any problem."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(f"the spec is {len(text):,} characters long; the limit is {MAX_FILE_BYTES:,}",
                        hint="a network spec is a short file: use repeat and defaults instead of copies",
                        location=Location(path, 1, 1))
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        problem = exc.problem or exc.context or "malformed YAML"
        lines = text.splitlines()
        line_text = lines[loc.line - 1] if 0 < loc.line <= len(lines) else ""
        hint = "YAML indents with spaces only, never tabs" if "\t" in line_text[: loc.column] else \
            "check the indentation and that every 'key: value' has a space after the colon"
        raise SpecError(f"YAML syntax error: {problem}", hint=hint, location=loc) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", location=Location(path, 1, 1)) from None
    if node is None:
        raise SpecError("the spec is empty", hint="start with 'input: [3, 32, 32]' and a 'layers:' list",
                        location=Location(path, 1, 1))
    return _Builder(path).build(node, 0)


def load_file(path: str):
    """Read and parse a spec file; unreadable or non-UTF-8 files are SpecErrors too."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read the spec: {exc.strerror}", location=Location(path, 1, 1)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"the spec is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                        hint="save the file as UTF-8", location=Location(path, line, 1)) from None
    return load_text(text, path)


class _Builder:
    def __init__(self, path: str):
        self.path = path
        self.nodes = 0

    def loc(self, node) -> Location:
        return Location(self.path, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node, depth: int):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SpecError(f"the spec expands to more than {MAX_NODES:,} YAML values (aliases included)",
                            hint="anchors and aliases that multiply each other are refused",
                            location=self.loc(node))
        if depth > MAX_DEPTH:
            raise SpecError(f"the spec nests deeper than {MAX_DEPTH} levels", location=self.loc(node))
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if node.tag not in _SCALAR_TAGS | _COLLECTION_TAGS:
            raise SpecError(f"YAML tag {node.tag!r} is not allowed in a spec",
                            hint="specs hold plain data only: numbers, strings, lists and mappings",
                            location=self.loc(node))
        if isinstance(node, yaml.SequenceNode):
            result = Sequence(self.build(item, depth + 1) for item in node.value)
            result.location = self.loc(node)
            result.item_locations = [self.loc(item) for item in node.value]
            return result
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, depth)
        raise SpecError(f"unsupported YAML node {node.tag}", location=self.loc(node))  # pragma: no cover

    def scalar(self, node):
        try:
            return _SAFE.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise SpecError(f"cannot read value {node.value!r}: {exc}", location=self.loc(node)) from None

    def mapping(self, node, depth: int):
        result = Mapping()
        result.location = self.loc(node)
        result.key_locations, result.value_locations = {}, {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("a mapping key must be a plain word", location=self.loc(key_node))
            key = self.scalar(key_node)
            if key in result:
                raise SpecError(f"duplicate key {key!r}",
                                hint=f"it was first given at line {result.key_locations[key].line}",
                                location=self.loc(key_node))
            result[key] = self.build(value_node, depth + 1)
            result.key_locations[key] = self.loc(key_node)
            result.value_locations[key] = self.loc(value_node)
        return result


_SAFE = yaml.constructor.SafeConstructor()
