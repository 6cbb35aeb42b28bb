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

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from ..errors import Location, SpecError
from ..gcpause import paused_gc
from ..layers import Shape, Steps, lookup, shape_of
from ..layers.arguments import closest, positive_int, shown, sizes_text, text
from .expand import NodeBuilder, Scope, check_keys, substitute
from .expressions import Params
from .include import blocks_with_includes
from .model import INPUT, TOP_LEVEL_KEYS, Node, Spec
from .source import Mapping, Sequence, load_file, load_text, location_of

T = TypeVar("T")


@paused_gc
def load(path: str, params: Params | None = None) -> Spec:
    """Read and validate a spec file; ``params`` override the spec's own ``params:``."""
    return parse(load_file(path), path, params)


@paused_gc
def loads(text_: str, path: str = "<spec>", params: Params | None = None) -> Spec:
    """Read and validate spec text (``path`` is only used in messages)."""
    return parse(load_text(text_, path), path, params)


def parse(data: Any, path: str, params: Params | None = None) -> Spec:
    """The Spec of YAML ``data`` read from ``path``, with ``params`` (--set) over its own."""
    expressions: dict[Location, str] = {}
    try:
        return _parse(data, path, params, expressions)
    except SpecError as exc:
        raise _blame_overrides(exc, params or {}, expressions) from None


def _blame_overrides(exc: SpecError, overrides: Params, expressions: dict[Location, str]) -> SpecError:
    """An error in a value computed from a parameter the command line set (--set vocab=abc) says so:
    the spec itself may be right."""
    written = expressions.get(exc.location) if exc.location is not None else None
    if written is None:
        return exc
    for name, value in overrides.items():
        if re.search(rf"\${re.escape(str(name))}\b", written):
            exc.noted(f"the parameter {name} = {shown(value)} comes from the command line: --set {name}=...")
    return exc


def _parse(data: Any, path: str, params: Params | None, expressions: dict[Location, str]) -> Spec:
    top = Location(path, 1, 1)
    if not isinstance(data, Mapping):
        raise SpecError("a spec is a mapping with 'input' and 'layers'",
                        hint="start with 'input: [3, 32, 32]' then 'layers:'",
                        location=location_of(data, top))
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise SpecError(f"unknown top-level key '{key}'", hint=closest(key, TOP_LEVEL_KEYS),
                            location=data.key_location(key))
    steps_parameter = _steps_parameter(data)
    data, spec_params = _with_params(data, params or {}, expressions)
    if "blocks" in data and "layers" not in data and "input" not in data and "inputs" not in data:
        raise SpecError("this file is a block library (blocks, no layers), not a network",
                        hint=f"a spec takes its blocks with 'include:' and the path from the spec's folder (from "
                             f"the folder above: 'include: {Path(path).parent.name}/{Path(path).name}'), and has "
                             f"its own 'input' and 'layers'", location=data.location)
    if "layers" not in data:
        raise SpecError("the spec has no 'layers'", hint="add 'layers:' with one item per layer, e.g. '- conv: {filters: 6, kernel: 5}'",
                        location=data.location)
    inputs, input_location = _network_inputs(data)
    name = _field(data, "name", text, Path(path).stem)
    description = _field(data, "description", lambda v: str(v), "")
    blocks, includes = blocks_with_includes(data, path)
    builder = NodeBuilder(_defaults(data), blocks, spec_params, tuple(inputs), expressions)
    layers = data["layers"]
    if not isinstance(layers, Sequence) or not layers:
        raise SpecError("'layers' must be a non-empty list of layers",
                        hint="each item looks like '- conv: {filters: 6, kernel: 5}' or '- flatten'",
                        location=data.value_location("layers"))
    builder.build_all(layers, Scope(entry=next(iter(inputs))))
    nodes = tuple(builder.nodes)
    outputs = _outputs(data, nodes, builder.instances)
    _check_all_used(nodes, outputs, inputs, data)
    return Spec(name, description, next(iter(inputs.values())), nodes, path, input_location, outputs,
                inputs, dict(builder.instance_kinds), steps_parameter, includes)


def _steps_parameter(data: Mapping) -> str | None:
    """The spec parameter that the steps of its first sequence input are written as
    ('input: {steps: $T}' with T in 'params:'), as written, before any substitution: what
    ``--steps`` sets, so that everything sized by T (learned positions) follows."""
    if "input" in data:
        written = [data["input"]]
    elif isinstance(data.get("inputs"), Mapping):
        written = list(data["inputs"].values())
    else:
        return None
    declared = data.get("params")
    sequence = next((value for value in written if isinstance(value, Mapping) and "steps" in value), None)
    if sequence is None or not isinstance(declared, Mapping):
        return None
    steps = sequence["steps"]
    name = steps.strip()[1:] if isinstance(steps, str) and steps.strip().startswith("$") else None
    return name if name in declared else None


def _with_params(data: Mapping, overrides: Params, expressions: dict[Location, str]) -> tuple[Mapping, Params]:
    """The spec with every '$' value computed from 'params:' (or an override), and the parameters'
    values, in order: a parameter may use those declared before it (params: {c: 32, hidden: $c * 4}).

    Blocks keep their '$' values: they are computed per instance, block parameters first.
    """
    declared = data.get("params") or Mapping()
    if not isinstance(declared, Mapping):
        raise SpecError("params must map names to values, e.g. params: {vocab: 65}",
                        location=data.value_location("params"))
    for key in overrides:
        if key not in declared:
            raise SpecError(f"the spec declares no parameter '{key}'",
                            hint=closest(key, declared) if declared else "it has no 'params:'",
                            location=data.location)
    values: Params = {}
    for key, value in declared.items():
        values[key] = substitute(overrides.get(key, value), values, declared.value_location(key), expressions)
    result = Mapping()
    result.location, result.key_locations = data.location, data.key_locations
    result.value_locations = data.value_locations
    for key, value in data.items():
        keep = key in ("params", "include", "blocks", "name", "description")
        result[key] = value if keep else substitute(value, values, data.value_location(key), expressions,
                                                    key == "outputs")
    return result, values


def _network_inputs(data: Mapping) -> tuple[dict[str, Shape], Location]:
    """{name: shape} from 'input: shape' (named 'input') or 'inputs: {name: shape, ...}'."""
    if ("input" in data) == ("inputs" in data):
        if "input" in data:
            raise SpecError("give either 'input' or 'inputs', not both", location=data.key_location("inputs"))
        raise SpecError("the spec has no 'input'",
                        hint="add input: [3, 32, 32]   # channels first: [features] | [C, L] | [C, H, W]",
                        location=data.location)
    if "input" in data:
        return {INPUT: parse_input(data["input"], data.value_location("input"))}, data.value_location("input")
    raw = data["inputs"]
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError("inputs must map input names to shapes",
                        hint="e.g. inputs: {image: [3, 224, 224], caption: {steps: 16}}",
                        location=data.value_location("inputs"))
    for name in raw:
        if not isinstance(name, str) or name in ("in",):
            raise SpecError(f"{name!r} cannot name an input", location=raw.key_location(name))
    return ({cast(str, name): parse_input(value, raw.value_location(name)) for name, value in raw.items()},  # checked
            data.value_location("inputs"))


def _outputs(data: Mapping, nodes: tuple[Node, ...], instances: dict[str, str | None]) -> tuple[str, ...]:
    """The 'outputs' list (a block instance's name means its last layer), or the last layer; a
    layer with several outputs (split) gives each of them."""
    outputs = {node.name: node.outputs for node in nodes}
    if "outputs" not in data:
        return nodes[-1].outputs
    raw = data["outputs"]
    names = [raw] if isinstance(raw, str) else raw
    known = {*outputs, *(output for node in nodes for output in node.outputs), *instances}
    if not isinstance(names, list) or not names:
        raise SpecError("outputs must be a layer name or a list of layer names",
                        location=data.value_location("outputs"))
    for index, name in enumerate(names):
        if not isinstance(name, str) or name not in known:  # a list or mapping here is no name either
            where = names.item_location(index) if isinstance(names, Sequence) else data.value_location("outputs")
            raise SpecError(f"outputs: no layer is named {shown(name)}", hint=closest(name, known), location=where)
    layers = (instances.get(name) or name for name in names)  # every instance is built by now
    return tuple(output for layer in layers for output in outputs.get(layer, (layer,)))


def _check_all_used(nodes: tuple[Node, ...], outputs: tuple[str, ...], inputs: dict[str, Shape],
                    data: Mapping) -> None:
    """A branch whose result goes nowhere, or an input nothing reads, is a mistake, not a silent
    dead end."""
    used = set(outputs)
    for node in nodes:
        used.update(node.inputs)
    for name in inputs:
        if name not in used:
            where = data["inputs"].key_location(name) if "inputs" in data else data.value_location("input")
            raise SpecError(f"no layer reads the input '{name}'",
                            hint=f"give a layer 'inputs: {name}', or remove it", location=where)
    for node in nodes:
        for output in node.outputs:
            if output in used:
                continue
            raise SpecError(f"output {output} of layer {node.name} is never used" if output != node.name else
                            f"the output of layer {node.name} is never used",
                            hint="feed it to a later layer with 'inputs:', merge it with add/concat, "
                                 "or list it under 'outputs:'",
                            location=node.location, layer=node.name)


def parse_input(value: Any, location: Location) -> Shape:
    """[features] (a Vector) | [C, L] | [C, H, W] | [C, D, H, W] (a FeatureMap), the text
    '3x227x227', or a sequence (Steps) {steps: T, features: F} (T vectors of F) | {steps: T}
    (T token ids, for an embedding)."""
    if isinstance(value, Mapping):
        return _parse_sequence(value)
    if isinstance(value, str):
        sizes = sizes_text(value) or ([int(value)] if value.strip().isascii() and value.strip().isdigit() else None)
        if sizes is None:
            raise SpecError(f"cannot read the input shape {shown(value)}",
                            hint="write it channels first, like 3x227x227 or [3, 227, 227]",
                            location=location)
        value = sizes
    if not isinstance(value, list) or not 1 <= len(value) <= 4:
        raise SpecError(f"input must be a list of 1 to 4 sizes, channels first, got {value!r}",
                        hint="[features] | [C, L] | [C, H, W] | [C, D, H, W], e.g. [3, 227, 227]; "
                             "a sequence is {steps: T, features: F}",
                        location=location)
    try:
        return shape_of(positive_int(d) for d in value)
    except SpecError as exc:
        exc.message = f"input size {exc.message}"
        raise exc.located(location) from None


def parse_input_text(text_: str, location: Location) -> Shape:
    """--input's forms, every one the docs show: 3x224x224 (or 3×224×224), [3, 224, 224],
    (3, 224, 224), 3,224,224, 224 (one size), and a sequence {steps: 25, features: 27}."""
    stripped = text_.strip()
    if stripped[:1] in ("[", "{", "("):
        if stripped[:1] == "(" and stripped[-1:] == ")":  # a Python tuple, as torchinfo's input_size reads
            stripped = f"[{stripped[1:-1]}]"
        return parse_input(load_text(stripped, location.path), location)
    if "," in stripped:
        return parse_input(load_text(f"[{stripped}]", location.path), location)
    return parse_input(stripped, location)


def _parse_sequence(value: Mapping) -> Steps:
    check_keys(value, ("steps", "features"), "a sequence input", value.location,
                "{steps: 25, features: 4} (one-hot or vectors) or {steps: 25} (token ids)", required=("steps",))
    dims = []
    for key in ("steps", "features"):
        if key in value:
            try:
                dims.append(positive_int(value[key]))
            except SpecError as exc:
                exc.message = f"input {key}: {exc.message}"
                raise exc.located(value.value_location(key)) from None
    return Steps(dims)


def _field(data: Mapping, key: str, convert: Callable[[Any], T], default: T) -> T:
    if key not in data:
        return default
    try:
        return convert(data[key])
    except SpecError as exc:
        exc.message = f"{key}: {exc.message}"
        raise exc.located(data.value_location(key)) from None


def _defaults(data: Mapping) -> dict[str, Mapping]:
    """{kind: (args Mapping, class)}, each validated against its kind's fields."""
    raw = data.get("defaults")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError("defaults must map layer kinds to arguments",
                        hint="e.g. defaults: {conv: {activation: relu}}", location=data.value_location("defaults"))
    result: dict[str, Mapping] = {}
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
                                hint=cls.key_hint(key), location=args.key_location(key))
            try:
                spec_field.metadata["convert"](value)
            except SpecError as exc:
                exc.message = f"{key}: {exc.message}"
                raise exc.located(args.value_location(key)) from None
        result[cls.kind] = args
    return result
