"""Expanding a spec's layer list: shorthand, defaults, repeats, blocks with $parameters, automatic names."""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, SpecError
from ..layers import ALIASES, REGISTRY, Layer, lookup
from ..layers.arguments import boolean, closest, positive_int, shown, text
from ..layers.values import Numbers
from .expressions import Params, evaluate, is_expression
from .model import COMMON_KEYS, INPUT, MAX_BLOCK_NESTING, MAX_LAYERS, MAX_VALUES, Node
from .source import Mapping, Sequence


@dataclass
class Scope:
    """Where layers are being written: top level, inside repeats, inside a block instance."""

    prefix: str = ""               # "stage2." for the layers of block instance stage2
    group: tuple[tuple[str, int], ...] = ()  # enclosing repeats: ((label, iteration), ...)
    entry: str = INPUT             # what a block's first layer (and 'in') reads
    params: Params = field(default_factory=dict)  # block parameters, for $name
    counters: dict[str, int] = field(default_factory=dict)  # automatic-name counters of this scope
    last: str | None = None        # the latest layer written in this scope
    in_block: bool = False
    own_groups: int = 0            # repeats inside this scope (they number the names)
    sharing: tuple[str, ...] = ()  # (this instance's prefix, the shared instance's prefix) under 'shares'

    @property
    def suffix(self) -> str:
        return "".join(f"_{iteration}" for _, iteration in self.group[len(self.group) - self.own_groups:])

    def within_repeat(self, label: str, iteration: int) -> Scope:
        """The same scope, one repeat deeper (names and counters shared with the parent)."""
        return Scope(self.prefix, self.group + ((label, iteration),), self.entry, self.params,
                      self.counters, self.last, self.in_block, self.own_groups + 1, self.sharing)

    def shared_name(self, name: str) -> str | None:
        """The layer whose parameters ``name`` uses when its block instance shares another's."""
        if not self.sharing:
            return None
        mine, theirs = self.sharing
        return theirs + name[len(mine):]


class NodeBuilder:
    """Turns layer entries into Nodes: shorthand, defaults, repeats, blocks, automatic names."""

    def __init__(self, defaults: dict[str, Mapping], blocks: dict[str, Block], spec_params: Params,
                 network_inputs: tuple[str, ...], expressions: dict[Location, str] | None = None):
        self.defaults = defaults
        self.network_inputs = network_inputs  # names layers may read at the top level
        self.blocks = blocks
        self.spec_params = spec_params  # blocks see the spec's params under their own
        self.nodes: list[Node] = []
        self.names: dict[str, Location] = {}
        # block instance name -> its last layer, which it outputs (None while it is being built)
        self.instances: dict[str, str | None] = {}
        self.instance_kinds: dict[str, str] = {}  # block instance name -> its block
        self.layers: dict[str, Node] = {}
        self.expressions = {} if expressions is None else expressions  # {location: '$c * 6'} substituted
        self.repeats = 0
        self.expanding: list[str] = []  # the blocks being expanded, outermost first
        self.built: dict[int, tuple[Any, Layer, int]] = {}  # id(entry) -> (entry, layer, its values)
        self.values = 0                 # explicit weights and biases of every layer so far
        self.outputs = 0                # the outputs of every layer so far (a chunk has several)

    def build_all(self, entries: Sequence, scope: Scope) -> None:
        for index, entry in enumerate(entries):
            self.build(entry, entries.item_location(index), scope)

    def build(self, entry: Any, location: Location, scope: Scope) -> None:
        written = entry
        if scope.in_block:  # the top level was substituted once, with the spec's params
            entry = substitute(entry, scope.params, location, self.expressions)
        kind, args, args_location = self._split(entry, location)
        if kind == "repeat":
            self._repeat(args, args_location, location, scope)
            return
        if isinstance(kind, str) and kind in self.blocks:
            self._block(kind, args, args_location, location, scope)
            return
        if len(self.nodes) >= MAX_LAYERS:
            raise SpecError(f"the spec expands to more than {MAX_LAYERS:,} layers", location=location,
                            hint="that is the limit: no network has that many; check the repeats' times")
        try:
            cls = lookup(kind)
        except SpecError as exc:
            if self.blocks and "did you mean" not in exc.hint:
                exc.hint = closest(kind, [*self.blocks, "repeat"])
            raise exc.located(location) from None
        args = self._as_mapping(cls, args, args_location)
        own = {k: v for k, v in args.items() if k not in COMMON_KEYS}
        scope.counters[cls.prefix] = scope.counters.get(cls.prefix, 0) + 1
        name = self._name(args, f"{cls.prefix}{scope.counters[cls.prefix]}", location, scope)
        field_locations: dict[Hashable, Location] = {}
        implied: dict[Hashable, Any] = {}
        for klass in reversed(cls.__mro__):  # family defaults first: conv before conv1d
            kind_defaults = self.defaults.get(vars(klass).get("kind", ""))
            if kind_defaults:
                implied.update(kind_defaults)
                field_locations.update(kind_defaults.value_locations)
        if isinstance(args, Mapping):
            field_locations.update({k: args.value_location(k) for k in args})
        try:
            layer, values = self._layer(entry, cls, own, implied, substituted=entry is not written)
            trainable = boolean(args.get("trainable", True))
            frozen = _tensor_names(args["freeze"]) if "freeze" in args else ()
        except SpecError as exc:
            field_name = exc.field or next((key for key in ("trainable", "freeze") if key in args), None)
            where = field_locations.get(field_name, args_location)
            if exc.location is None and where in self.expressions and field_name in (*cls.spec_fields, *COMMON_KEYS):
                # the value was computed: name its formula
                exc.message += f" (computed from {self.expressions[where]!r})"
            raise exc.located(where, name) from None
        self.outputs += layer.output_count()
        if self.outputs > MAX_LAYERS:  # each output is named and walked like a layer: the same limit
            raise SpecError(f"the spec's layers have more than {MAX_LAYERS:,} outputs in all (this one "
                            f"{layer.output_count():,})", location=location, layer=name,
                            hint="that is the limit of layers: each output is named and checked like one")
        self.values += values
        if self.values > MAX_VALUES:
            raise SpecError(f"the spec's explicit weights and biases add up to more than {MAX_VALUES:,} numbers "
                            f"(each copy of a repeated layer counts)", location=location, layer=name,
                            hint="explicit values are for worked examples: leave them out of repeated layers "
                                 "(they are then random), or repeat fewer times")
        if not layer.reads_input:
            if "inputs" in args:
                raise SpecError(f"{cls.kind} reads no input (its output is a learned tensor), so it takes no "
                                f"'inputs'", hint="remove 'inputs'; the layers that use it name it in theirs",
                                location=field_locations["inputs"], layer=name)
            inputs: tuple[str, ...] = ()
        else:
            inputs = self._inputs(args, scope, field_locations.get("inputs", args_location), name)
        if len(inputs) > 1 and not layer.merges:
            raise SpecError(f"{cls.kind} reads one input, but {len(inputs)} are given "
                            f"({', '.join(inputs)})",
                            hint="combine branches first with '- add: {inputs: [...]}' or "
                                 "'- concat: {inputs: [...]}'",
                            location=field_locations.get("inputs", args_location), layer=name)
        shares = scope.shared_name(name)
        if "shares" in args:
            shares = self._owner(args["shares"], scope, field_locations["shares"], name)
        if shares is not None and shares not in self.layers:
            raise SpecError(f"shares: {shares} does not exist, so {name} cannot use its parameters",
                            hint="the shared block instance must have the same layers",
                            location=field_locations.get("shares", location), layer=name)
        shares = self.layers[shares].shares or shares if shares is not None else None  # the first owner
        node = Node(name, layer, location, field_locations, scope.group, trainable, inputs, shares, frozen)
        if len(node.outputs) > 1:  # 'split1.0', 'split1.1': the names later layers read
            for output in node.outputs:
                self._claim(output, location)
        self.nodes.append(node)
        self.layers[name] = node
        scope.last = name

    def _layer(self, entry: Any, cls: type[Layer], own: dict[Hashable, Any], implied: dict[Hashable, Any],
               substituted: bool) -> tuple[Layer, int]:
        """(the Layer, how many explicit values it holds), built once per entry of the file.

        The copies of a repeat are the same YAML entry: they share one Layer, so explicit
        weights are converted and checked once, not once per copy. An entry that block
        parameters changed is a new object each time, built each time.
        """
        if not substituted and id(entry) in self.built:
            return self.built[id(entry)][1:]
        layer = cls.from_args(own, implied)
        values = sum(value.count for value in vars(layer).values() if isinstance(value, Numbers))
        if not substituted:
            self.built[id(entry)] = (entry, layer, values)  # the entry is kept: its id stays its own
        return layer, values

    @staticmethod
    def _as_mapping(cls: type[Layer], args: Any, args_location: Location) -> dict[Hashable, Any]:
        """'- kind: value' sets the kind's main argument; a mapping is taken as it is."""
        if isinstance(args, dict):
            return args
        if cls.main is None:
            raise SpecError(f"{cls.kind} takes no value here (got {args!r})",
                            hint=f"write '- {cls.kind}'" + (
                                f" or '- {cls.kind}: {{{next(iter(cls.spec_fields))}: ...}}'"
                                if cls.spec_fields else ""),
                            location=args_location)
        return {cls.main: args}

    def _inputs(self, args: dict[Hashable, Any], scope: Scope, location: Location, name: str) -> tuple[str, ...]:
        """Resolved names this layer reads: 'inputs' if given, else the layer before it.

        Inside a repeat, a name written in the repeated body means that iteration's copy;
        inside a block, names are the block's own and 'in' is what the block reads.
        """
        if "inputs" not in args:
            return (self._whole(scope.last or scope.entry, location, name),)
        raw = args["inputs"]
        refs = [raw] if isinstance(raw, str) else raw
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise SpecError("inputs must be a layer name or a list of layer names",
                            hint="e.g. inputs: [conv3, shortcut] ('input' is the network's input)",
                            location=location, layer=name)
        return tuple(self._resolve(ref, scope, location, name) for ref in refs)

    def _resolve(self, ref: str, scope: Scope, location: Location, name: str) -> str:
        if ref == name:
            raise SpecError(f"layer {name} cannot read its own output (that would be a cycle)",
                            location=location, layer=name)
        if ref == "in" and scope.in_block:
            return scope.entry
        if ref in self.network_inputs and not scope.in_block:
            return ref
        found = self._find(ref, scope, location, name)
        base, dot, index = ref.rpartition(".")
        if found is None and dot and index.isdigit():  # 'split1.1' in a repeat or block: split1's own copy
            owner = self._find(base, scope, location, name)
            if owner in self.layers and self.layers[owner].layer.output_count() > 1:
                outputs = self.layers[owner].outputs
                if int(index) >= len(outputs):
                    raise SpecError(f"inputs: {base} has {len(outputs)} outputs, {base}.0 to "
                                    f"{base}.{len(outputs) - 1}; there is no {ref!r}", location=location, layer=name)
                return outputs[int(index)]
        if found is not None:
            return self._whole(found, location, name)
        # suggest what this scope's own names are: layers and block instances, not the layers
        # inside an instance (reading 'stage2.bn' instead of 'stage2' would skip its last layers)
        known = [n[len(scope.prefix):] for n in self.names if n.startswith(scope.prefix) and n != name]
        if "." not in ref:
            known = [n for n in known if "." not in n]
        extra = "'in' is the block's input" if scope.in_block else \
            f"network inputs: {', '.join(self.network_inputs)}"
        raise SpecError(f"inputs: no earlier layer is named {ref!r}",
                        hint=f"{closest(ref, known + (['in'] if scope.in_block else list(self.network_inputs)))}; "
                             f"layers can only read layers written before them (no cycles); {extra}",
                        location=location, layer=name)

    def _find(self, ref: str, scope: Scope, location: Location, name: str) -> str | None:
        """The name ``ref`` reads from this scope: in a repeat its own iteration's copy, in a
        block its own layers, a block instance's last layer; None where nothing is so named."""
        for candidate in (scope.prefix + ref + scope.suffix, scope.prefix + ref, ref):
            if candidate in self.names and candidate != name:
                if candidate not in self.instances:
                    return candidate
                last = self.instances[candidate]
                if last is None:
                    raise SpecError(f"inputs: {ref!r} is the block instance this layer belongs to; it has "
                                    f"no output yet", hint="inside a block, 'in' is what the block reads",
                                    location=location, layer=name)
                return last
        return None

    def _whole(self, source: str, location: Location, name: str) -> str:
        """``source``, which a layer reads whole: refused for a layer with several outputs."""
        node = self.layers.get(source)
        if node is not None and len(node.outputs) > 1:
            raise SpecError(f"{source} has {len(node.outputs)} outputs; {name} must read one of them "
                            f"({', '.join(node.outputs)})",
                            hint=f"e.g. inputs: {node.outputs[-1]}; a merge reads several: "
                                 f"concat: {{inputs: [{', '.join(node.outputs)}]}}", location=location, layer=name)
        return source

    def _claim(self, name: str, location: Location) -> None:
        """Take ``name`` for a layer or an output; two of one name are refused."""
        if name in self.names:
            first = self.names[name]
            raise SpecError(f"two layers are named '{name}'",
                            hint=f"the first is at line {first.line}; layer names must be unique "
                                 f"(unnamed layers are called kind + number, like conv2)",
                            location=location)
        self.names[name] = location

    def _owner(self, ref: Any, scope: Scope, location: Location, name: str, block: str | None = None) -> str:
        """The layer (or, for a block instance, the instance) named by 'shares:'."""
        if not isinstance(ref, str):
            raise SpecError(f"shares must be the name of an earlier {'block instance' if block else 'layer'}, "
                            f"got {shown(ref)}", location=location, layer=name)
        candidates = (scope.prefix + ref + scope.suffix, scope.prefix + ref, ref)
        instance = next((c for c in candidates if c in self.instances and c != name), None)
        if block is not None:
            if instance is None or self.instance_kinds[instance] != block:
                same = [n for n, kind in self.instance_kinds.items() if kind == block and n != name]
                raise SpecError(f"shares: no earlier instance of block {block} is named {ref!r}",
                                hint=(closest(ref, same) if same else f"write an instance of {block} first") +
                                     "; a block instance shares another instance of the same block",
                                location=location, layer=name)
            return instance
        if instance is not None and not any(c in self.layers for c in candidates):
            raise SpecError(f"shares: {ref!r} is a block instance, not a layer",
                            hint=f"share a whole instance from a block instance ('shares: {ref}' on it), "
                                 f"or name one of its layers", location=location, layer=name)
        if ref == name.removeprefix(scope.prefix):
            raise SpecError(f"layer {name} cannot share its own parameters", hint="name an earlier layer",
                            location=location, layer=name)
        try:
            owner = self._resolve(ref, scope, location, name)
        except SpecError as exc:
            exc.message = exc.message.replace("inputs: ", "shares: ", 1)
            raise
        if owner not in self.layers:
            raise SpecError(f"shares: {owner!r} is a network input, not a layer", location=location, layer=name)
        return owner

    def _split(self, entry: Any, location: Location) -> tuple[Any, Any, Location]:
        """(kind, args, location of args) from '- kind', '- kind: 3' or '- kind: {...}'."""
        if isinstance(entry, str):
            return entry, {}, location
        if isinstance(entry, Mapping) and len(entry) == 1:
            kind = next(iter(entry))
            args = entry[kind]
            return kind, ({} if args is None else args), entry.value_location(kind)
        if isinstance(entry, Mapping) and len(entry) > 1:
            keys = list(entry)
            kinds = [key for key in keys[1:] if key in REGISTRY or key in ALIASES or key in self.blocks]
            raise SpecError(f"a layer is one 'kind: arguments' pair, but this one has {len(keys)} keys "
                            f"({', '.join(map(str, keys))})",
                            hint=f"each layer is its own list item: write '- {kinds[0]}' on a line of its own"
                            if kinds else f"put the arguments inside the kind: '- {keys[0]}: {{{keys[1]}: ...}}'",
                            location=location)
        got = "an empty item ('-' alone)" if entry is None else shown(entry)
        raise SpecError(f"a layer must be a kind or 'kind: arguments', got {got}",
                        hint="e.g. '- flatten' or '- dense: 10' or '- conv: {filters: 6, kernel: 5}'",
                        location=location)

    def _name(self, args: dict[Hashable, Any], auto_name: str, location: Location, scope: Scope) -> str:
        if "name" in args:
            try:
                name: str = text(args["name"])
            except SpecError as exc:  # a block's shorthand value is a plain dict: its entry says where
                raise exc.located(args.value_location("name") if isinstance(args, Mapping) else location) from None
            name = scope.prefix + name + scope.suffix  # copies in a repeat are numbered
        else:
            name = scope.prefix + auto_name
        if name in self.network_inputs or name == "in":
            raise SpecError(f"'{name}' names an input", hint="call this layer something else",
                            location=location)
        self._claim(name, location)
        return name

    def _repeat(self, args: Any, args_location: Location, location: Location, scope: Scope) -> None:
        check_keys(args, ("times", "layers", "name"), "repeat", args_location,
                    "repeat: {times: 3, layers: [{conv: {filters: 64, kernel: 3}}]}")
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
        label = str(args.get("name") or f"repeat{self.repeats}")
        for iteration in range(1, times + 1):
            before = len(self.nodes)
            inner = scope.within_repeat(label, iteration)
            self.build_all(body, inner)
            scope.last = inner.last
            # every iteration has the size of the first: refuse nested repeats that multiply
            # beyond the limit now, not after building a million layers
            if iteration == 1 and before + times * (len(self.nodes) - before) > MAX_LAYERS:
                raise SpecError(f"repeat expands to {times * (len(self.nodes) - before):,} layers; the limit "
                                f"is {MAX_LAYERS:,}", hint="repeats inside repeats multiply their times",
                                location=args.value_location("times"))

    def _block(self, kind: str, args: Any, args_location: Location, location: Location, scope: Scope) -> None:
        """One instance of a reusable block: its layers, named '<instance>.<layer>'."""
        definition = self.blocks[kind]
        param_names = list(definition.params)
        if not isinstance(args, dict):
            if not param_names:
                raise SpecError(f"block {kind} takes no parameters (got {args!r})", location=args_location)
            args = {param_names[0]: args}
        for key in args:
            if key not in (*param_names, "name", "inputs", "shares"):
                where = args.key_location(key) if isinstance(args, Mapping) else args_location
                raise SpecError(f"unknown parameter '{key}' for block {kind}",
                                hint=closest(key, [*param_names, "name", "inputs", "shares"]), location=where)
        params: Params = {}
        for key in param_names:  # a default may use the spec's params and the block's earlier ones
            if key in args:
                params[key] = args[key]
            elif definition.params[key] is None:
                raise SpecError(f"block {kind} needs parameter '{key}'",
                                hint=f"write '- {kind}: {{{key}: ...}}'", location=args_location)
            else:
                params[key] = substitute(definition.params[key], {**self.spec_params, **params},
                                         definition.params.value_location(key), self.expressions)
        scope.counters[kind] = scope.counters.get(kind, 0) + 1
        instance = self._name(args, f"{kind}{scope.counters[kind]}", location, scope)
        self.instances[instance] = None  # reading the instance reads its last layer, known once it is built
        self.instance_kinds[instance] = kind
        sharing: tuple[str, ...] = ()
        twin = scope.shared_name(instance)
        if twin is not None:  # inside an instance that shares another, a nested instance shares its twin
            sharing = (instance + ".", twin + ".")
        if "shares" in args:
            where = args.value_location("shares") if isinstance(args, Mapping) else args_location
            sharing = (instance + ".", self._owner(args["shares"], scope, where, instance, kind) + ".")
        entry = self._inputs(args, scope, args.value_location("inputs") if isinstance(args, Mapping)
                             else args_location, instance)
        if len(entry) != 1:
            raise SpecError(f"block {kind} reads one input, got {len(entry)}", location=args_location)
        if kind in self.expanding or len(self.expanding) >= MAX_BLOCK_NESTING:
            chain = " -> ".join([*self.expanding[self.expanding.index(kind):], kind]
                                if kind in self.expanding else [*self.expanding[:3], "...", kind])
            raise SpecError(f"block {kind} uses itself ({chain})" if kind in self.expanding else
                            f"blocks nest more than {MAX_BLOCK_NESTING} deep ({chain})",
                            hint="a block can use other blocks, never itself", location=location)
        inner = Scope(prefix=instance + ".", group=scope.group + ((instance, 0),), entry=entry[0],
                       params={**self.spec_params, **params}, in_block=True, sharing=sharing)
        self.expanding.append(kind)
        self.build_all(definition.layers, inner)
        self.expanding.pop()
        scope.last = self.instances[instance] = inner.last


@dataclass(frozen=True)
class Block:
    """A reusable, parameterised group of layers (blocks: in the spec)."""

    params: Mapping       # name -> default (None = required), with their locations
    layers: Sequence
    location: Location    # where its name is written (a spec's or an included library's)


def read_blocks(data: Mapping) -> dict[str, Block]:
    raw = data.get("blocks")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError("blocks must map block names to {params, layers}",
                        hint="e.g. blocks: {basic: {params: {filters: null}, layers: [...]}}",
                        location=data.value_location("blocks"))
    result = {}
    for name, definition in raw.items():
        location = raw.value_location(name)
        if not isinstance(name, str) or name in ("repeat", "in") or name in REGISTRY or name in ALIASES:
            raise SpecError(f"block name {name!r} is already a layer kind or keyword",
                            hint="pick another name", location=raw.key_location(name))
        check_keys(definition, ("params", "layers"), f"block {name}", location,
                    f"{name}: {{params: {{filters: null}}, layers: [...]}}", required=("layers",))
        params = definition.get("params")
        if params is None:  # no parameters
            params = Mapping()
        elif not isinstance(params, Mapping):
            raise SpecError(f"params of block {name} must map parameter names to defaults (null = required)",
                            location=definition.value_location("params"))
        layers = definition["layers"]
        if not isinstance(layers, Sequence) or not layers:
            raise SpecError(f"block {name} needs a non-empty list of layers",
                            location=definition.value_location("layers"))
        result[name] = Block(params, layers, raw.key_location(name))
    return result


def check_keys(args: Any, allowed: tuple[str, ...], what: str, location: Location, example: str,
                required: tuple[str, ...] | None = None) -> None:
    if not isinstance(args, Mapping):
        raise SpecError(f"{what} needs {' and '.join(repr(k) for k in (required or allowed[:2]))}",
                        hint=example, location=location)
    for key in args:
        if key not in allowed:
            raise SpecError(f"unknown key '{key}' for {what}", hint=closest(key, allowed),
                            location=args.key_location(key))
    for key in required or allowed[:2]:
        if key not in args:
            raise SpecError(f"{what} needs '{key}'", hint=example, location=location)


def _tensor_names(value: Any) -> tuple[str, ...]:
    """'freeze: bias' or 'freeze: [weight, bias]': names of a layer's tensors (checked against its
    kind once its input is known)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise SpecError(f"freeze must name the layer's tensors, e.g. freeze: [bias], got {shown(value)}",
                        field="freeze")
    return tuple(dict.fromkeys(names))


NAME_KEYS = ("name", "inputs", "outputs", "shares")  # their values are names: data, never arithmetic


def substitute(value: Any, params: Params, location: Location, written: dict[Location, str],
               names: bool = False) -> Any:
    """``value`` with every string that contains '$' replaced by its value over ``params``
    (expressions.evaluate: '$name' alone is the parameter as it is, anything else arithmetic).

    Under NAME_KEYS (``names``) a string is a name, whatever its characters: only '$p' of a
    parameter p is replaced. Returns ``value`` itself where nothing changes (most of a large
    spec); ``written`` collects {location: expression} of what was computed, for messages.
    """
    if names:
        if isinstance(value, str):
            return params[value[1:]] if value.startswith("$") and value[1:] in params else value
    elif is_expression(value):
        written[location] = value
        return evaluate(value, params, location)
    if isinstance(value, Mapping):
        new = {k: substitute(v, params, value.value_location(k), written, names or k in NAME_KEYS)
               for k, v in value.items()}
        if all(new[k] is v for k, v in value.items()):
            return value
        mapping = Mapping(new)
        mapping.location, mapping.key_locations, mapping.value_locations = \
            value.location, value.key_locations, value.value_locations
        return mapping
    if isinstance(value, Sequence):
        items = [substitute(v, params, value.item_location(i), written, names) for i, v in enumerate(value)]
        if all(a is b for a, b in zip(items, value)):
            return value
        sequence = Sequence(items)
        sequence.location, sequence.item_locations = value.location, value.item_locations
        return sequence
    return value
