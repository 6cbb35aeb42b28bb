"""Writing a spec: a flat list of layers (an import's, backend/importer) -> readable spec YAML.

Pure text work, no torch: the importer hands over one ``Entry`` per layer, in the order the
network computes them, each named after its module path (``layer1.0.conv1``) and knowing the
module instances it sits in (``("layer1", "layer1.0")``). The writer then makes it read as a
person would write it:

- ``defaults:``: an argument every layer of a kind shares (``conv: {bias: false}``) is said once;
- ``blocks:``: module instances of one structure (torchvision's ``Bottleneck``) become one block,
  the arguments that differ between instances its parameters (``$filters``, ``$stride``);
- ``repeat:``: consecutive instances of one block with the same arguments, each reading the one
  before, are written once with ``times``;
- ``inputs:`` only where a layer does not read the one before it, names only where a layer is
  read by name or came from a module (automatic names otherwise), a comment where the mapping
  had to approximate.

The layers the spec expands to are the entries, in order: the importer pairs them with the
source's modules by position (weights, checks).
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..layers import lookup
from .model import INPUT


@dataclass
class Entry:
    """One layer to write: ``kind: args`` (every argument, defaults included or not), its name,
    the names it reads (earlier entries, a network input, or 'name.i', output i of a split)."""

    kind: str
    args: dict[str, Any]
    name: str
    inputs: tuple[str, ...]
    scope: tuple[tuple[str, str], ...] = ()  # enclosing module instances: ((path, class name), ...), outermost first
    note: str = ""                           # why the mapping approximates (written as a comment)
    outputs: int = 1                         # how many outputs it has (split, chunk)


@dataclass
class Written:
    """The spec text and how it was made readable (for the import's summary)."""

    text: str
    blocks: dict[str, int] = field(default_factory=dict)  # block name -> instances
    repeats: int = 0


def write_spec(entries: list[Entry], name: str, inputs: dict[str, Any], outputs: tuple[str, ...],
               description: str = "", header: Iterable[str] = ()) -> Written:
    """The spec text of ``entries``. ``inputs``: {network input name: shape as written in YAML
    ([3, 224, 224] or {steps: 16})}; ``outputs``: the names the network returns (the last entry's
    alone is left implicit); ``header``: comment lines for the top of the file."""
    entries = [dataclasses.replace(entry, args=dict(entry.args)) for entry in entries]
    defaults = _defaults(entries)
    writer = _Writer(entries, defaults, tuple(inputs))
    body = writer.top_level()
    lines = [f"# {line}" for line in header]
    lines.append(f"name: {scalar(name)}")
    if description:
        lines.append(f"description: {scalar(description)}")
    if list(inputs) == [INPUT]:
        lines.append(f"input: {flow(inputs[INPUT])}")
    else:
        lines.append(f"inputs: {flow(inputs)}")
    if defaults:
        lines.append("defaults:")
        lines += [f"  {kind}: {flow(args)}" for kind, args in defaults.items()]
    if writer.blocks:
        lines.append("blocks:")
        for block in writer.blocks.values():
            lines.append(f"  {block.name}:{_comment(block.comment)}")
            if block.params:
                lines.append(f"    params: {flow({param: None for param in block.params})}")
            lines.append("    layers:")
            lines += [f"      {line}" for line in block.lines]
    lines.append("layers:")
    lines += [f"  {line}" for line in body]
    named_outputs = [writer.reference(output) for output in outputs]
    if named_outputs and named_outputs != [writer.reference(entries[-1].name)]:
        lines.append(f"outputs: {flow(named_outputs)}")
    return Written("\n".join(lines) + "\n", {b.name: b.instances for b in writer.blocks.values()}, writer.repeats)


# --- defaults ------------------------------------------------------------------------------

def _defaults(entries: list[Entry]) -> dict[str, dict[str, Any]]:
    """Per kind written at least twice, the arguments every one of its layers gives the same
    value that differs from the kind's default; taken out of the entries. The main argument
    stays with each layer (dense: 10 reads better than a default)."""
    by_kind: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_kind[entry.kind].append(entry)
    defaults: dict[str, dict[str, Any]] = {}
    for kind, group in by_kind.items():
        if len(group) < 2:
            continue
        cls = lookup(kind)
        shared = {}
        for key, value in group[0].args.items():
            if key == cls.main or _is_default(kind, key, value):
                continue
            if all(key in entry.args and entry.args[key] == value for entry in group):
                shared[key] = value
        if shared:
            defaults[kind] = shared
            for entry in group:
                for key in shared:
                    del entry.args[key]
    return defaults


def _is_default(kind: str, key: str, value: Any) -> bool:
    spec_field = lookup(kind).spec_fields.get(key)
    return spec_field is not None and spec_field.default is not dataclasses.MISSING and spec_field.default == value


def _effective(kind: str, key: str, args: dict[str, Any], defaults: dict[str, dict[str, Any]]) -> Any:
    """The value a layer gets for ``key``: its own, the spec's default, or the kind's."""
    if key in args:
        return args[key]
    if key in defaults.get(kind, {}):
        return defaults[kind][key]
    spec_field = lookup(kind).spec_fields.get(key)
    return None if spec_field is None else spec_field.default


# --- blocks and repeats --------------------------------------------------------------------

@dataclass
class _Block:
    name: str
    comment: str
    signature: tuple[Any, ...]
    params: dict[str, tuple[tuple[int, str], ...]]  # parameter -> the (entry index, argument) pairs it sets
    lines: list[str] = field(default_factory=list)
    instances: int = 0


@dataclass
class _Instance:
    """A module instance that became a block instance: entries[start:end]."""

    path: str
    start: int
    end: int
    block: _Block | None = None


class _Writer:
    def __init__(self, entries: list[Entry], defaults: dict[str, dict[str, Any]], network_inputs: tuple[str, ...]):
        self.entries = entries
        self.defaults = defaults
        self.network_inputs = network_inputs
        self.index = {entry.name: position for position, entry in enumerate(entries)}
        self.readers: dict[str, set[int]] = defaultdict(set)  # entry name -> positions of the entries reading it
        for position, entry in enumerate(entries):
            for ref in entry.inputs:
                self.readers[self._owner(ref)].add(position)
        self.blocks: dict[tuple[Any, ...], _Block] = {}
        self.repeats = 0
        self.labels: set[str] = set()
        self.renamed: dict[str, str] = {}  # an instance's last entry -> the name that reads it from outside
        self.instances = self._instances()

    def _owner(self, ref: str) -> str:
        """The entry a reference reads: 'chunk.1' -> 'chunk' (an output of a split)."""
        if ref in self.index:
            return ref
        base = ref.rpartition(".")[0]
        return base if base in self.index else ref

    # which module instances become block instances
    def _instances(self) -> list[_Instance]:
        spans: dict[str, list[int]] = {}
        classes: dict[str, str] = {}
        for position, entry in enumerate(self.entries):
            for path, cls in entry.scope:
                spans.setdefault(path, []).append(position)
                classes[path] = cls
        candidates: dict[str, tuple[_Instance, tuple[Any, ...]]] = {}
        for path, positions in spans.items():
            start, end = positions[0], positions[-1] + 1
            if positions != list(range(start, end)) or end - start < 2:
                continue
            signature = self._signature(path, start, end)
            if signature is not None:
                candidates[path] = (_Instance(path, start, end), (classes[path], signature))
        # the structures that save the most lines first: (instances - 1) x layers each; an instance
        # overlapping one already taken is left out (a block holds no blocks)
        groups: dict[tuple[Any, ...], list[_Instance]] = defaultdict(list)
        for instance, signature in candidates.values():
            groups[signature].append(instance)
        ranked = sorted(groups.items(), key=lambda item: -(len(item[1]) - 1) * (item[1][0].end - item[1][0].start))
        taken = [False] * len(self.entries)
        chosen: list[_Instance] = []
        for signature, members in ranked:
            free = [i for i in members if not any(taken[i.start:i.end])]
            if len(free) < 2:
                continue
            block = self._block(signature, free[0])
            for instance in free:
                instance.block = block
                block.instances += 1
                chosen.append(instance)
                for position in range(instance.start, instance.end):
                    taken[position] = True
        self._name_blocks()
        return sorted(chosen, key=lambda i: i.start)

    def _name_blocks(self) -> None:
        """A block is named after its module's class (Bottleneck -> bottleneck); where one class
        gives several structures, the most used keeps the name and the others add the layer only
        they have (bottleneck_downsample), else a number."""
        by_class: dict[str, list[_Block]] = defaultdict(list)
        for block in self.blocks.values():
            by_class[block.signature[0]].append(block)
        taken: set[str] = set()
        for cls, blocks in by_class.items():
            blocks.sort(key=lambda b: -b.instances)
            base = _snake(cls)
            common = {layer[1].split(".")[0] for layer in blocks[0].signature[1]}
            for rank, block in enumerate(blocks):
                own = [layer[1].split(".")[0] for layer in block.signature[1] if layer[1].split(".")[0] not in common]
                wanted = base if rank == 0 else f"{base}_{_python(own[0])}" if own else base
                name, number = wanted, 2
                while name in taken or _is_kind(name) or name in ("repeat", "in"):
                    name, number = f"{wanted}_{number}", number + 1
                block.name = name
                taken.add(name)

    def _signature(self, path: str, start: int, end: int) -> tuple[Any, ...] | None:
        """The structure of entries[start:end] as a block would hold it (kinds, names within the
        instance, what each reads), or None where it cannot be a block: it must read one value
        from outside and be read from outside only through its last entry."""
        prefix = path + "."
        outside: set[str] = set()
        structure = []
        for position in range(start, end):
            entry = self.entries[position]
            if not entry.name.startswith(prefix):
                return None
            reads: list[str | None] = []
            for ref in entry.inputs:
                owner = self._owner(ref)
                if owner in self.index and start <= self.index[owner] < end:
                    reads.append(ref[len(prefix):])
                else:
                    outside.add(ref)
                    reads.append(None)
            if position < end - 1 and any(reader >= end for reader in self.readers[entry.name]):
                return None
            structure.append((entry.kind, entry.name[len(prefix):], tuple(reads), entry.outputs))
        if len(outside) != 1:
            return None
        return tuple(structure)

    def _block(self, signature: tuple[Any, ...], first: _Instance) -> _Block:
        if signature not in self.blocks:
            self.blocks[signature] = _Block("", f"{signature[0]}, as {first.path}", signature, {})
        return self.blocks[signature]

    # parameters: computed once every instance of the block is known
    def _parameters(self, block: _Block) -> None:
        members = [i for i in self.instances if i.block is block]
        vectors: dict[tuple[Any, ...], list[tuple[int, str]]] = {}
        for offset in range(members[0].end - members[0].start):
            kind = self.entries[members[0].start + offset].kind
            keys = sorted({key for i in members for key in self.entries[i.start + offset].args})
            for key in keys:
                values = tuple(_frozen(_effective(kind, key, self.entries[i.start + offset].args, self.defaults))
                               for i in members)
                if len(set(values)) > 1:
                    vectors.setdefault(values, []).append((offset, key))
        names: Counter[str] = Counter()
        for places in vectors.values():
            names[places[0][1]] += 1
        for places in vectors.values():
            offset, key = places[0]
            param = key if names[key] == 1 else f"{_python(self._relname(members[0], offset))}_{key}"
            block.params[param] = tuple(places)

    def _relname(self, instance: _Instance, offset: int) -> str:
        return self.entries[instance.start + offset].name[len(instance.path) + 1:]

    # text
    def top_level(self) -> list[str]:
        for block in self.blocks.values():
            self._parameters(block)
            first = next(i for i in self.instances if i.block is block)
            block.lines = self._body(first, block)
        items: list[tuple[str, Any]] = []  # ("entry", position) | ("instance", _Instance)
        position = 0
        starts = {instance.start: instance for instance in self.instances}
        while position < len(self.entries):
            if position in starts:
                items.append(("instance", starts[position]))
                position = starts[position].end
            else:
                items.append(("entry", position))
                position += 1
        lines: list[str] = []
        previous: str | None = self.network_inputs[0] if len(self.network_inputs) == 1 else None
        index = 0
        while index < len(items):
            what, item = items[index]
            if what == "instance":
                run = self._run(items, index)
                lines += self._instance_lines(run, previous)
                previous = self.reference(self.entries[run[-1].end - 1].name)
                index += len(run)
            else:
                entry = self.entries[item]
                lines += self._entry_lines(entry, previous, top=True)
                previous = entry.name
                index += 1
        return lines

    def _run(self, items: list[tuple[str, Any]], index: int) -> list[_Instance]:
        """The instances from items[index] on that a repeat can write: the same block, the same
        arguments, each reading the previous one's output."""
        first: _Instance = items[index][1]
        run = [first]
        for what, item in items[index + 1:]:
            if what != "instance" or item.block is not first.block or self._arguments(item) != self._arguments(first):
                break
            if self._outside_reads(item) != {self.entries[run[-1].end - 1].name}:
                break
            if any(reader >= item.end for position in range(run[-1].start, run[-1].end - 1)
                   for reader in self.readers[self.entries[position].name]):
                break
            run.append(item)
        return run

    def _outside_reads(self, instance: _Instance) -> set[str]:
        inside = {self.entries[p].name for p in range(instance.start, instance.end)}
        return {ref for p in range(instance.start, instance.end) for ref in self.entries[p].inputs
                if self._owner(ref) not in inside}

    def _arguments(self, instance: _Instance) -> dict[str, Any]:
        assert instance.block is not None
        arguments = {}
        for param, places in instance.block.params.items():
            offset, key = places[0]
            entry = self.entries[instance.start + offset]
            arguments[param] = _effective(entry.kind, key, entry.args, self.defaults)
        return arguments

    def _instance_lines(self, run: list[_Instance], previous: str | None) -> list[str]:
        first = run[0]
        assert first.block is not None
        args: dict[str, Any] = dict(self._arguments(first))
        (source,) = self._outside_reads(first)
        source = self.reference(source)
        if len(run) == 1:
            args["name"] = first.path
            if source != previous:
                args["inputs"] = source
            self.renamed[self.entries[first.end - 1].name] = first.path
            return [f"- {first.block.name}: {flow(args)}"]
        self.repeats += 1
        label = self._label(first)
        if source != previous:  # the repeat's first instance reads something else
            lines = [f"- {first.block.name}: {flow({**args, 'name': first.path, 'inputs': source})}"]
            self.renamed[self.entries[first.end - 1].name] = first.path
            return lines + self._instance_lines(run[1:], first.path)
        for number, instance in enumerate(run, 1):
            self.renamed[self.entries[instance.end - 1].name] = f"{label}_{number}"
        body = flow({**args, "name": label}) if args else flow({"name": label})
        comment = f"{run[0].path} to {run[-1].path}"
        return [f"- repeat: {{name: {scalar(label)}, times: {len(run)}, layers: [{first.block.name}: {body}]}}"
                f"  # {comment}"]

    def _label(self, first: _Instance) -> str:
        """A repeat's name, which also names its instances (label_1, label_2, ...): the module
        holding them (layer2), or the first instance's path where that is taken."""
        for label in (first.path.rpartition(".")[0], first.path):
            if label and label not in self.labels and not any(ref.startswith(label + "_") for ref in self.index):
                self.labels.add(label)
                return label
        number = 2
        while f"{first.path}_{number}" in self.labels:
            number += 1
        self.labels.add(f"{first.path}_{number}")
        return f"{first.path}_{number}"

    def _body(self, instance: _Instance, block: _Block) -> list[str]:
        lines = []
        substituted = {places: f"${param}" for param, all_places in block.params.items() for places in all_places}
        prefix = instance.path + "."
        previous: str | None = None
        for offset in range(instance.end - instance.start):
            entry = self.entries[instance.start + offset]
            args = {key: value for key, value in entry.args.items()}
            for (place_offset, key), param in substituted.items():
                if place_offset == offset:
                    args[key] = param
            inputs = []
            for ref in entry.inputs:
                owner = self._owner(ref)
                inside = owner.startswith(prefix) and owner in self.index and \
                    instance.start <= self.index[owner] < instance.end
                inputs.append(ref[len(prefix):] if inside else "in")
            local = dataclasses.replace(entry, args=args, name=entry.name[len(prefix):], inputs=tuple(inputs))
            lines += self._entry_lines(local, previous or "in", top=False)
            previous = local.name
        return lines

    def reference(self, ref: str) -> str:
        """How the top level reads ``ref``: an instance's last entry by the instance."""
        return self.renamed.get(ref, ref)

    def _entry_lines(self, entry: Entry, previous: str | None, top: bool) -> list[str]:
        args = {key: value for key, value in entry.args.items() if not _is_default(entry.kind, key, value)}
        cls = lookup(entry.kind)
        refs = [self.reference(ref) for ref in entry.inputs] if top else list(entry.inputs)
        args["name"] = entry.name
        if refs and refs != [previous]:
            args["inputs"] = refs[0] if len(refs) == 1 else refs
        elif not refs:
            args.pop("inputs", None)
        written: Any = args
        if cls.main is not None and list(args) == [cls.main] and not isinstance(args[cls.main], (dict, list, tuple)):
            written = args[cls.main]
        text = f"- {entry.kind}" if not args else f"- {entry.kind}: {flow(written)}"
        return [text + _comment(entry.note)]


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    return value


def _is_kind(name: str) -> bool:
    try:
        lookup(name)
    except Exception:  # noqa: BLE001 - any refusal means: not a kind
        return False
    return True


def _snake(name: str) -> str:
    """'InvertedResidual' -> 'inverted_residual', 'Conv2dNormActivation' -> 'conv2d_norm_activation'."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return re.sub(r"[^a-z0-9_]+", "_", text).strip("_") or "block"


def _python(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "layer"


def _comment(note: str) -> str:
    return f"  # {' '.join(note.split())}" if note else ""


# --- YAML values, written in flow style ---------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*\Z")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "none", "~"})


def scalar(value: Any) -> str:
    """One YAML scalar that reads back as ``value``: plain where it is safe, else double-quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:  # YAML 1.1 reads 1e-05 as a string
            text = f"{mantissa}.0e{exponent}"
        return text
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS and not text.startswith("$"):
        return text
    if text.startswith("$") and re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", text):
        return text
    return json.dumps(text, ensure_ascii=False)


def flow(value: Any) -> str:
    """``value`` in YAML's flow style: {a: 1, b: [2, 3]}."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(key)}: {flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(item) for item in value) + "]"
    return scalar(value)
