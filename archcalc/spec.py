"""Reading a spec: YAML -> a validated ``Spec`` whose layers are Layer objects with names.

    name: AlexNet
    input: [3, 227, 227]
    defaults: {conv: {activation: relu}}
    layers:
      - conv: {filters: 96, kernel: 11, stride: 4, name: CONV1}
      - maxpool: 3            # scalar shorthand sets the kind's main field
      - flatten               # bare kind
      - repeat: {times: 2, layers: [...]}

Nothing here knows about shapes: that is the analyzer's job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import Location, SpecError
from .layers import Layer, lookup
from .schema import boolean, closest, positive_int, text
from .yamlsource import Mapping, Sequence, load_file, load_text, location_of

TOP_LEVEL_KEYS = ("name", "description", "input", "defaults", "layers", "outputs")
COMMON_KEYS = ("name", "trainable", "inputs")
INPUT = "input"  # the name by which layers refer to the network's input
MAX_LAYERS = 1_000_000


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


def load(path: str) -> Spec:
    """Read and validate a spec file."""
    return parse(load_file(path), path)


def loads(text_: str, path: str = "<spec>") -> Spec:
    """Read and validate spec text (``path`` is only used in messages)."""
    return parse(load_text(text_, path), path)


def parse(data, path: str) -> Spec:
    top = Location(path, 1, 1)
    if not isinstance(data, Mapping):
        raise SpecError("a spec is a mapping with 'input' and 'layers'",
                        hint="start with 'input: [3, 32, 32]' then 'layers:'",
                        location=location_of(data, top))
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise SpecError(f"unknown top-level key '{key}'", hint=closest(key, TOP_LEVEL_KEYS),
                            location=data.key_location(key))
    for key in ("input", "layers"):
        if key not in data:
            example = {"input": "input: [3, 32, 32]   # channels first: [features] | [C, L] | [C, H, W]",
                       "layers": "layers:\n    - conv: {filters: 6, kernel: 5}"}[key]
            raise SpecError(f"the spec has no '{key}'", hint=f"add {example}", location=data.location)
    name = _field(data, "name", text, Path(path).stem)
    description = _field(data, "description", lambda v: str(v), "")
    defaults = _defaults(data)
    builder = _NodeBuilder(defaults)
    layers = data["layers"]
    if not isinstance(layers, Sequence) or not layers:
        raise SpecError("'layers' must be a non-empty list of layers",
                        hint="each item looks like '- conv: {filters: 6, kernel: 5}' or '- flatten'",
                        location=data.value_location("layers"))
    builder.build_all(layers, ())
    nodes = tuple(builder.nodes)
    outputs = _outputs(data, nodes)
    _check_all_used(nodes, outputs)
    return Spec(name, description, parse_input(data["input"], data.value_location("input")),
                nodes, path, data.value_location("input"), outputs)


def _outputs(data: Mapping, nodes: tuple) -> tuple:
    """The 'outputs' list, or the last layer."""
    if "outputs" not in data:
        return (nodes[-1].name,)
    raw = data["outputs"]
    names = [raw] if isinstance(raw, str) else raw
    known = {node.name for node in nodes}
    if not isinstance(names, list) or not names:
        raise SpecError("outputs must be a layer name or a list of layer names",
                        location=data.value_location("outputs"))
    for index, name in enumerate(names):
        if name not in known:
            where = names.item_location(index) if isinstance(names, Sequence) else data.value_location("outputs")
            raise SpecError(f"outputs: no layer is named {name!r}", hint=closest(name, known), location=where)
    return tuple(names)


def _check_all_used(nodes: tuple, outputs: tuple) -> None:
    """A branch whose result goes nowhere is a mistake, not a silent dead end."""
    used = set(outputs)
    for node in nodes:
        used.update(node.inputs)
    for node in nodes:
        if node.name not in used:
            raise SpecError(f"the output of layer {node.name} is never used",
                            hint="feed it to a later layer with 'inputs:', merge it with add/concat, "
                                 "or list it under 'outputs:'",
                            location=node.location, layer=node.name)


def parse_input(value, location: Location) -> tuple:
    """[features] | [C, L] | [C, H, W] | [C, D, H, W], or the text '3x227x227'."""
    if isinstance(value, str):
        try:
            value = [int(part) for part in value.lower().replace("×", "x").split("x")]
        except ValueError:
            raise SpecError(f"cannot read the input shape {value!r}",
                            hint="write it channels first, like 3x227x227 or [3, 227, 227]",
                            location=location) from None
    if not isinstance(value, list) or not 1 <= len(value) <= 4:
        raise SpecError(f"input must be a list of 1 to 4 sizes, channels first, got {value!r}",
                        hint="[features] | [C, L] | [C, H, W] | [C, D, H, W], e.g. [3, 227, 227]",
                        location=location)
    try:
        return tuple(positive_int(d) for d in value)
    except SpecError as exc:
        raise exc.located(location) from None


def _field(data: Mapping, key: str, convert, default):
    if key not in data:
        return default
    try:
        return convert(data[key])
    except SpecError as exc:
        exc.message = f"{key}: {exc.message}"
        raise exc.located(data.value_location(key)) from None


def _defaults(data: Mapping) -> dict:
    """{kind: (args Mapping, class)}, each validated against its kind's fields."""
    raw = data.get("defaults")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError("defaults must map layer kinds to arguments",
                        hint="e.g. defaults: {conv: {activation: relu}}", location=data.value_location("defaults"))
    result = {}
    for kind, args in raw.items():
        try:
            cls = lookup(kind)
        except SpecError as exc:
            raise exc.located(raw.key_location(kind)) from None
        if not isinstance(args, Mapping):
            raise SpecError(f"defaults for {kind} must be a mapping of its arguments",
                            hint=f"e.g. {kind}: {{{next(iter(cls.spec_fields), 'key')}: ...}}",
                            location=raw.value_location(kind))
        for key, value in args.items():
            spec_field = cls.spec_fields.get(key)
            if spec_field is None:
                raise SpecError(f"unknown key '{key}' for {kind} in defaults",
                                hint=closest(key, cls.spec_fields), location=args.key_location(key))
            try:
                spec_field.metadata["convert"](value)
            except SpecError as exc:
                exc.message = f"{key}: {exc.message}"
                raise exc.located(args.value_location(key)) from None
        result[cls.kind] = args
    return result


class _NodeBuilder:
    """Turns layer entries into Nodes: shorthand, defaults, repeats, automatic names."""

    def __init__(self, defaults: dict):
        self.defaults = defaults
        self.nodes: list[Node] = []
        self.counters: dict[str, int] = {}
        self.names: dict[str, Location] = {}
        self.repeats = 0

    def build_all(self, entries: Sequence, group: tuple) -> None:
        for index, entry in enumerate(entries):
            self.build(entry, entries.item_location(index), group)

    def build(self, entry, location: Location, group: tuple) -> None:
        kind, args, args_location = self._split(entry, location)
        if kind == "repeat":
            self._repeat(args, args_location, location, group)
            return
        if len(self.nodes) >= MAX_LAYERS:
            raise SpecError(f"more than {MAX_LAYERS:,} layers", location=location)
        try:
            cls = lookup(kind)
        except SpecError as exc:
            raise exc.located(location) from None
        if not isinstance(args, dict):
            if cls.main is None:
                raise SpecError(f"{kind} takes no value here (got {args!r})",
                                hint=f"write '- {kind}'" + (
                                    f" or '- {kind}: {{{next(iter(cls.spec_fields))}: ...}}'"
                                    if cls.spec_fields else ""),
                                location=args_location)
            args = {cls.main: args}
        own = {k: v for k, v in args.items() if k not in COMMON_KEYS}
        counter = self.counters[cls.prefix] = self.counters.get(cls.prefix, 0) + 1
        auto_name = f"{cls.prefix}{counter}"
        name = self._name(args, auto_name, location, group)
        field_locations = {}
        implied = {}
        for klass in reversed(cls.__mro__):  # family defaults first: conv before conv1d
            kind_defaults = self.defaults.get(vars(klass).get("kind"))
            if kind_defaults:
                implied.update(kind_defaults)
                field_locations.update(kind_defaults.value_locations)
        if isinstance(args, Mapping):
            field_locations.update({k: args.value_location(k) for k in args})
        try:
            layer = cls.from_args(own, implied)
            trainable = boolean(args.get("trainable", True))
        except SpecError as exc:
            field_name = exc.field or ("trainable" if "trainable" in args else None)
            raise exc.located(field_locations.get(field_name, args_location), name) from None
        inputs = self._inputs(args, group, field_locations.get("inputs", args_location), name)
        if len(inputs) > 1 and not layer.merges:
            raise SpecError(f"{cls.kind} reads one input, but {len(inputs)} are given "
                            f"({', '.join(inputs)})",
                            hint="combine branches first with '- add: {inputs: [...]}' or "
                                 "'- concat: {inputs: [...]}'",
                            location=field_locations.get("inputs", args_location), layer=name)
        self.nodes.append(Node(name, layer, location, field_locations, group, trainable, inputs))

    def _inputs(self, args: dict, group: tuple, location: Location, name: str) -> tuple:
        """Resolved names this layer reads: 'inputs' if given, else the layer before it.

        Inside a repeat, a name written in the repeated body means that iteration's copy.
        """
        previous = self.nodes[-1].name if self.nodes else INPUT
        if "inputs" not in args:
            return (previous,)
        raw = args["inputs"]
        refs = [raw] if isinstance(raw, str) else raw
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise SpecError("inputs must be a layer name or a list of layer names",
                            hint="e.g. inputs: [conv3, shortcut] ('input' is the network's input)",
                            location=location, layer=name)
        suffix = "".join(f"_{iteration}" for _, iteration in group)
        resolved = []
        for ref in refs:
            if ref == name:
                raise SpecError(f"layer {name} cannot read its own output (that would be a cycle)",
                                location=location, layer=name)
            if ref == INPUT:
                resolved.append(INPUT)
            elif suffix and ref + suffix in self.names:
                resolved.append(ref + suffix)
            elif ref in self.names:
                resolved.append(ref)
            else:
                raise SpecError(f"inputs: no earlier layer is named {ref!r}",
                                hint=f"{closest(ref, [*self.names, INPUT])} Layers can only read layers "
                                     f"written before them (no cycles); 'input' is the network input",
                                location=location, layer=name)
        return tuple(resolved)

    def _split(self, entry, location: Location):
        """(kind, args, location of args) from '- kind', '- kind: 3' or '- kind: {...}'."""
        if isinstance(entry, str):
            return entry, {}, location
        if isinstance(entry, Mapping) and len(entry) == 1:
            kind = next(iter(entry))
            args = entry[kind]
            return kind, ({} if args is None else args), entry.value_location(kind)
        if isinstance(entry, Mapping) and len(entry) > 1:
            keys = list(entry)
            raise SpecError(f"a layer is one 'kind: arguments' pair, but this one has {len(keys)} keys "
                            f"({', '.join(map(str, keys))})",
                            hint=f"put the arguments inside the kind: '- {keys[0]}: {{{keys[1]}: ...}}'",
                            location=location)
        raise SpecError(f"a layer must be a kind or 'kind: arguments', got {entry!r}",
                        hint="e.g. '- flatten' or '- dense: 10' or '- conv: {filters: 6, kernel: 5}'",
                        location=location)

    def _name(self, args: dict, auto_name: str, location: Location, group: tuple) -> str:
        if "name" in args:
            try:
                name = text(args["name"])
            except SpecError as exc:
                raise exc.located(args.value_location("name")) from None
            if group:  # the same layer written once inside a repeat: number its copies
                name = name + "".join(f"_{iteration}" for _, iteration in group)
        else:
            name = auto_name
        if name in self.names or name == INPUT:
            if name == INPUT:
                raise SpecError("'input' is the network input's name", hint="call this layer something else",
                                location=location)
            first = self.names[name]
            raise SpecError(f"two layers are named '{name}'",
                            hint=f"the first is at line {first.line}; layer names must be unique "
                                 f"(unnamed layers are called kind + number, like conv2)",
                            location=location)
        self.names[name] = location
        return name

    def _repeat(self, args, args_location: Location, location: Location, group: tuple) -> None:
        if not isinstance(args, Mapping):
            raise SpecError("repeat needs 'times' and 'layers'",
                            hint="repeat: {times: 3, layers: [{conv: {filters: 64, kernel: 3}}]}",
                            location=args_location)
        for key in args:
            if key not in ("times", "layers", "name"):
                raise SpecError(f"unknown key '{key}' for repeat",
                                hint=closest(key, ("times", "layers", "name")), location=args.key_location(key))
        for key in ("times", "layers"):
            if key not in args:
                raise SpecError(f"repeat needs '{key}'",
                                hint="repeat: {times: 3, layers: [{conv: {filters: 64, kernel: 3}}]}",
                                location=args_location)
        try:
            times = positive_int(args["times"])
        except SpecError as exc:
            exc.message = f"times: {exc.message}"
            raise exc.located(args.value_location("times")) from None
        body = args["layers"]
        if not isinstance(body, Sequence) or not body:
            raise SpecError("repeat's layers must be a non-empty list", location=args.value_location("layers"))
        if times * len(body) > MAX_LAYERS:
            raise SpecError(f"repeat expands to {times * len(body):,} layers; the limit is {MAX_LAYERS:,}",
                            location=args.value_location("times"))
        self.repeats += 1
        label = args.get("name") or f"repeat{self.repeats}"
        for iteration in range(1, times + 1):
            self.build_all(body, group + ((str(label), iteration),))
