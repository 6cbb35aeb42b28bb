"""Safe YAML loading that remembers where every key and value came from.

Only YAML's plain data types are built (mappings, sequences, strings, numbers, booleans,
null): any tag that would construct an object is refused. Mappings and sequences come
back as ``Mapping`` / ``Sequence`` that carry their ``Location`` and those of their items,
so an error found much later can still point at file:line:column.
"""
from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Hashable
from typing import Any

import yaml

from ..errors import Location, SpecError

_Loader: type[yaml.CSafeLoader] | type[yaml.SafeLoader]
try:  # libyaml's parser is ~10x faster and still gives line/column marks
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

# libyaml's parser events (ScalarEvent, MappingStartEvent...): its stubs leave them untyped, and
# the builder tells them apart by their type
Event = Any

MAX_FILE_BYTES = 10_000_000
MAX_NODES = 2_000_000  # after alias expansion: refuses "billion laughs" files quickly
MAX_DEPTH = 100

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}


class Mapping(dict[Hashable, Any]):
    """A dict from YAML, with the location of itself, of each key and of each value."""

    location: Location
    key_locations: dict[Hashable, Location]
    value_locations: dict[Hashable, Location]

    def key_location(self, key: Hashable) -> Location:
        return self.key_locations.get(key, self.location)

    def value_location(self, key: Hashable) -> Location:
        return self.value_locations.get(key, self.location)


class Sequence(list[Any]):
    """A list from YAML, with the location of itself and of each item."""

    location: Location
    item_locations: list[Location]

    def item_location(self, index: int) -> Location:
        return self.item_locations[index] if index < len(self.item_locations) else self.location


def location_of(value: object, default: Location) -> Location:
    return value.location if isinstance(value, (Mapping, Sequence)) else default


def load_text(text: str, path: str = "<spec>") -> Any:
    """Parse YAML text into plain data with locations; raises SpecError on any problem."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(f"the spec is {len(text):,} characters long; the limit is {MAX_FILE_BYTES:,}",
                        hint="a network spec is a short file: use repeat and defaults instead of copies",
                        location=Location(path, 1, 1))
    data = _parse(text, path, "the spec")
    if data is None:
        raise SpecError("the spec is empty", hint="start with 'input: [3, 32, 32]' and a 'layers:' list",
                        location=Location(path, 1, 1))
    return data


def load_value(text: str) -> Any:
    """One YAML value given on the command line (--set NAME=VALUE, --values).

    It is read exactly like a spec's values, with the same limits (size, nesting depth, what
    aliases expand to, no object tags): an argument of a few hundred bytes must not build
    gigabytes either. An empty text is YAML's null. A SpecError says where in the text, in its
    message: the caller names the option.
    """
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(f"the value is {len(text):,} characters long; the limit is {MAX_FILE_BYTES:,}",
                        hint="give it in the spec's params instead")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # argv bytes that are not UTF-8 arrive as lone surrogates
        raise SpecError(f"the value holds bytes that are not UTF-8 text (at column {exc.start + 1})",
                        hint="write the value in UTF-8") from None
    try:
        return _parse(text, "<value>", "the value")
    except SpecError as exc:
        if exc.location is not None:
            exc.message += f" ({_place(text, exc.location)})"
            exc.location = None
        raise


def _place(text: str, location: Location) -> str:
    """Where in a one-argument text: 'at column 7', 'at line 2, column 1', or 'at the end'."""
    lines = text.split("\n")
    if location.line > len(lines) or location.column > len(lines[location.line - 1]):
        return "at the end"
    return f"at column {location.column}" if len(lines) == 1 else f"at line {location.line}, column {location.column}"


def _parse(text: str, path: str, subject: str) -> Any:
    """The data of one YAML document, None if it holds nothing; ``subject`` names it in messages."""
    try:
        return _Builder(path, subject).build(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        problem = exc.problem or exc.context or "malformed YAML"
        if "maximum nesting depth" in problem:  # libyaml's scanner, reading ahead of the builder's limit
            raise _too_deep(subject, loc) from None
        lines = text.splitlines()
        line_text = lines[loc.line - 1] if 0 < loc.line <= len(lines) else ""
        if "\t" in line_text[: loc.column]:
            hint = "YAML indents with spaces only, never tabs"
        elif "expected ',' or" in problem:
            hint = "a '[' or '{' opened before this point is not closed"
        else:
            hint = "check the indentation and that every 'key: value' has a space after the colon"
        raise SpecError(f"YAML syntax error: {problem}", hint=hint, location=loc) from None
    except yaml.reader.ReaderError as exc:  # a character YAML refuses (a control character, NUL...)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        at = text.find(chr(code))  # the first one stopped the reader (libyaml counts bytes, not characters)
        line = text.count("\n", 0, at) + 1
        column = at - text.rfind("\n", 0, at)
        raise SpecError(f"{subject} contains the control character U+{code:04X}, which YAML does not allow",
                        hint="remove it: is the file binary, or saved in another encoding?",
                        location=Location(path, line, column)) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", location=Location(path, 1, 1)) from None


def load_file(path: str) -> Any:
    """Read and parse a spec file; unreadable or non-UTF-8 files are SpecErrors too."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:  # no file, no place in it to point at
        raise SpecError(f"no such file: {path}", hint="give the path of a spec, e.g. specs/alexnet.yaml") from None
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"the spec is larger than {MAX_FILE_BYTES:,} bytes",
                        hint="a network spec is a short file: use repeat and defaults instead of copies",
                        location=Location(path, 1, 1))
    for bom, encoding in _OTHER_BOMS:  # UTF-32's mark starts like UTF-16's: it is tried first
        if raw.startswith(bom):
            raise SpecError(f"the spec is encoded in {encoding} (it starts with a {encoding} byte-order mark)",
                            hint="save the file as UTF-8", location=Location(path, 1, 1))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        byte = raw[exc.start]
        raise SpecError(f"the spec is not valid UTF-8 (byte 0x{byte:02x})",
                        hint=f"save the file as UTF-8 (in Latin-1 or Windows-1252, 0x{byte:02x} would be "
                             f"{bytes([byte]).decode('cp1252', 'replace')!r})",
                        location=Location(path, line, column)) from None
    return load_text(text, path)


_OTHER_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
               (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
_NO_KEY = object()  # a mapping frame waiting for its next key


class _Frame:
    """A mapping or sequence being filled, on the builder's explicit stack."""

    __slots__ = ("value", "location", "anchor", "start", "height", "key", "key_location")

    def __init__(self, value: Mapping | Sequence, location: Location, anchor: str | None, start: int):
        self.value = value
        self.location = location
        self.anchor = anchor
        self.start = start          # values counted before this one: its size is the difference
        self.height = 1             # nesting levels from here down
        self.key: Hashable = _NO_KEY
        self.key_location = location


class _Builder:
    """Builds plain data from the parser's events with an explicit stack.

    No recursion, so a file nested 100,000 brackets deep is an error, not a crash (libyaml's
    own composer recurses in C). An alias shares its anchor's value instead of copying it, and
    counts what it would expand to, so a "billion laughs" file is refused after one reading.
    """

    def __init__(self, path: str, subject: str):
        self.path = path
        self.subject = subject      # "the spec", "the value": what the messages talk about
        self.nodes = 0              # values built, aliases counted as what they expand to
        self.anchors: dict[str, tuple[Any, int, int]] = {}  # name -> (value, expanded size, height)
        # (tag, text, implicit) -> value: most values repeat (conv, 3, same)
        self.scalars: dict[tuple[str | None, str, tuple[bool, bool]], Any] = {}
        self.resolver: yaml.resolver.BaseResolver | None = None

    def loc(self, event: Event) -> Location:
        return Location(self.path, event.start_mark.line + 1, event.start_mark.column + 1)

    def build(self, text: str) -> Any:
        loader = _Loader(text)
        self.resolver = loader
        try:
            return self.walk(loader)
        finally:
            loader.dispose()

    def walk(self, loader: yaml.CSafeLoader | yaml.SafeLoader) -> Any:
        stack: list[_Frame] = []
        root = None
        location: Location | None
        documents = 0
        next_event: Callable[[], Event | None] = loader.get_event
        while (event := next_event()) is not None:
            kind = type(event)
            if kind is yaml.ScalarEvent:
                self.count(1, event)
                value, location, height = self.scalar(event), None, 0
                if event.anchor is not None:  # 'filters: &k 4', later '*k': one value, no expansion
                    self.anchors[event.anchor] = (value, 1, 0)
            elif kind is yaml.AliasEvent:
                value, size, height = self.alias(event, len(stack))
                self.count(size, event)
                location = None
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                self.count(1, event)
                stack.append(self.start(event, len(stack)))
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                value, location, height = frame.value, frame.location, frame.height
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = (value, self.nodes - frame.start, height)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise SpecError(f"{self.subject} holds more than one YAML document ('---' starts another here)",
                                    hint="a spec is one document: remove this '---' and what follows, "
                                         "or split the file", location=self.loc(event))
                continue
            else:  # stream start and end, document end
                continue
            if location is None:
                location = self.loc(event)
            if not stack:
                root = value
            else:
                self.place(stack[-1], value, location, height, kind)
        return root

    def count(self, size: int, event: Event) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise SpecError(f"{self.subject} expands to more than {MAX_NODES:,} YAML values (aliases included)",
                            hint="anchors and aliases that multiply each other are refused",
                            location=self.loc(event))

    def start(self, event: Event, depth: int) -> _Frame:
        if depth >= MAX_DEPTH:
            raise _too_deep(self.subject, self.loc(event))
        is_map = type(event) is yaml.MappingStartEvent
        if event.tag not in (None, "!", _MAP_TAG if is_map else _SEQ_TAG):
            raise _tag_error(event.tag, self.loc(event))
        location = self.loc(event)
        value: Mapping | Sequence
        if is_map:
            value = Mapping()
            value.key_locations, value.value_locations = {}, {}
        else:
            value = Sequence()
            value.item_locations = []
        value.location = location
        return _Frame(value, location, event.anchor, self.nodes - 1)

    def alias(self, event: Event, depth: int) -> tuple[Any, int, int]:
        if event.anchor not in self.anchors:
            raise SpecError(f"alias *{event.anchor} refers to no anchor defined before it",
                            hint=f"define it first with &{event.anchor}, outside the value that uses it",
                            location=self.loc(event))
        value, size, height = self.anchors[event.anchor]
        if depth + height > MAX_DEPTH:
            raise SpecError(f"{self.subject} nests deeper than {MAX_DEPTH} levels (through alias *{event.anchor})",
                            location=self.loc(event))
        return value, size, height

    def scalar(self, event: Event) -> Any:
        key = (event.tag, event.value, event.implicit)
        try:
            return self.scalars[key]
        except KeyError:
            pass
        tag = event.tag
        implicit = tag is None or tag == "!"
        if implicit:
            assert self.resolver is not None  # set by build()
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
            if tag == _STR_TAG and event.implicit[0] and _EXPONENT_FLOAT.fullmatch(event.value):
                tag = _FLOAT_TAG  # a plain (unquoted) 1e-6; '1e-6' in quotes stays a string
        if tag == _MERGE_TAG:
            raise SpecError("YAML merge keys (<<) are not supported in a spec",
                            hint="write the keys out, or put shared layer arguments under 'defaults:'",
                            location=self.loc(event))
        if tag not in _SCALAR_TAGS:
            if not implicit:
                assert tag is not None  # an explicit tag
                raise _tag_error(tag, self.loc(event))
            tag = _STR_TAG  # a plain date or '=' is just text here
        if tag == _INT_TAG and len(event.value) > 100:  # before int() spends time on a huge literal
            raise self.too_large(event)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            value = _SAFE.yaml_constructors[tag](_SAFE, node)
        except (yaml.YAMLError, ValueError, KeyError, OverflowError) as exc:
            raise SpecError(f"cannot read {_short_tag(tag)} value {_cut(event.value)}: {exc}",
                            location=self.loc(event)) from None
        if type(value) is int and value.bit_length() > 64:
            raise self.too_large(event)
        self.scalars[key] = value
        return value

    def too_large(self, event: Event) -> SpecError:
        """Integers beyond 64 bits: no size is that large, and some would not even print."""
        return SpecError(f"the number {_cut(event.value)} is too large for a spec",
                         hint="sizes stop at 2^63-1 (PyTorch's int64)", location=self.loc(event))

    def place(self, frame: _Frame, value: Any, location: Location, height: int, kind: type) -> None:
        """Put a finished value into the collection being filled."""
        if height >= frame.height:
            frame.height = height + 1
        container = frame.value
        if isinstance(container, Sequence):
            container.append(value)
            container.item_locations.append(location)
        elif frame.key is _NO_KEY:
            if isinstance(value, (Mapping, Sequence)):
                raise SpecError("a mapping key must be a plain word", location=location)
            if value in container:
                raise SpecError(f"duplicate key {value!r}",
                                hint=f"it was first given at line {container.key_locations[value].line}",
                                location=location)
            frame.key, frame.key_location = value, location
        else:
            container[frame.key] = value
            container.key_locations[frame.key] = frame.key_location
            container.value_locations[frame.key] = location
            frame.key = _NO_KEY


def _cut(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_STANDARD):] if tag.startswith(_STANDARD) else tag


def _too_deep(subject: str, location: Location) -> SpecError:
    return SpecError(f"{subject} nests deeper than {MAX_DEPTH} levels",
                     hint="a network spec needs a few levels: look for unclosed brackets", location=location)


def _tag_error(tag: str, location: Location) -> SpecError:
    return SpecError(f"YAML tag {_short_tag(tag)} is not allowed in a spec",
                     hint="specs hold plain data only: numbers, strings, lists and mappings",
                     location=location)


_STANDARD = "tag:yaml.org,2002:"
_STR_TAG, _INT_TAG, _FLOAT_TAG, _SEQ_TAG, _MAP_TAG, _MERGE_TAG = (
    _STANDARD + name for name in ("str", "int", "float", "seq", "map", "merge"))
# PyYAML resolves by YAML 1.1, whose floats need a dot and a signed exponent: 1e-6 and 1E5 would be
# strings. YAML 1.2's core schema, and whoever writes eps: 1e-6, reads them as numbers
_EXPONENT_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+")
_SAFE = yaml.constructor.SafeConstructor()
