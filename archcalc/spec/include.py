"""Block libraries: ``include:`` reads the ``blocks:`` of other YAML files into a spec.

    include: blocks/transformer.yaml          # or a list of paths
    layers:
      - repeat: {times: 12, layers: [encoder_layer: {d: 768, heads: 12, mlp: 3072}]}

A path is relative to the file that writes it, and must stay inside the folder of the spec
being read (its own tree): an absolute path, a '..' that climbs out, or a symbolic link whose
target lies outside are refused, so a spec cannot make archcalc read an arbitrary file. A
library holds ``blocks:`` (and may ``include:`` other libraries, and have a ``description``);
each file is read by the same bounded loader as a spec (source.load_file: size, depth, aliases).
A cycle of includes is refused; a file reached twice (two libraries including a third) is read
once. A block name defined twice (by the spec and a library, or by two libraries) is refused
with both places named: an include never silently replaces a block.
"""
from __future__ import annotations

import os
from typing import Any

from ..errors import Location, SpecError
from .expand import Block, read_blocks
from .source import Mapping, Sequence, load_file

LIBRARY_KEYS = ("description", "include", "blocks")
MAX_INCLUDE_DEPTH = 32  # libraries including libraries: real ones nest two or three deep


def blocks_with_includes(data: Mapping, path: str) -> tuple[dict[str, Block], tuple[str, ...]]:
    """The blocks a spec can use, its own ``blocks:`` and those of every file it includes, and
    the files it includes (real paths, sorted)."""
    root = os.path.dirname(os.path.abspath(path))
    reader = _Reader(root)
    blocks = reader.read(data, path, (os.path.realpath(path),))
    own = read_blocks(data)
    for name, block in own.items():
        if name in blocks:
            raise SpecError(f"block {name} is defined both here and in {blocks[name].location.path} "
                            f"(line {blocks[name].location.line}), which this spec includes",
                            hint=f"rename this block (an included block is never replaced), or leave "
                                 f"{name} out of one of them", location=block.location)
    return {**blocks, **own}, tuple(sorted(reader.done))


class _Reader:
    """Reads the libraries a file includes, depth first, each file once."""

    def __init__(self, root: str):
        self.root = root                       # the spec's folder: nothing outside it is read
        self.real_root = os.path.realpath(root)
        self.done: set[str] = set()            # real paths of the libraries read already

    def read(self, data: Mapping, path: str, chain: tuple[str, ...]) -> dict[str, Block]:
        """The blocks of the files ``data`` (read from ``path``) includes, and of theirs.

        ``chain`` holds the real paths from the spec down to ``path``: meeting one again is a cycle.
        """
        if "include" not in data:
            return {}
        result: dict[str, Block] = {}
        for target, location in _paths(data):
            shown_path, real = self.resolve(target, path, location)
            if real in chain:
                cycle = " -> ".join(os.path.relpath(p, self.real_root) for p in (*chain[chain.index(real):], real))
                raise SpecError(f"include: {target} forms a cycle ({cycle})",
                                hint="a library cannot include itself, directly or through others",
                                location=location)
            if real in self.done:
                continue
            if len(chain) > MAX_INCLUDE_DEPTH:
                raise SpecError(f"include: libraries nest more than {MAX_INCLUDE_DEPTH} deep",
                                hint="include the libraries from the spec itself", location=location)
            library = self.load(shown_path, location)
            try:
                blocks = {**self.read(library, shown_path, (*chain, real)), **read_blocks(library)}
            except SpecError as exc:
                raise exc.noted(f"(included from {location})") from None
            for name, block in blocks.items():
                if name in result:
                    first = result[name].location
                    raise SpecError(f"block {name} is defined twice: in {first.path} (line {first.line}) and "
                                    f"in {block.location.path} (line {block.location.line}), both included",
                                    hint="rename one of them, or include only one of the files",
                                    location=location)
            result.update(blocks)
            self.done.add(real)
        return result

    def resolve(self, target: str, including: str, location: Location) -> tuple[str, str]:
        """(the path to read and show, its real path) of ``target`` written in ``including``;
        refused when it leaves the spec's folder or is not a file."""
        if os.path.isabs(target) or target.startswith("~"):
            raise SpecError(f"include: {target} is an absolute path",
                            hint="write the path relative to this file, inside the spec's folder "
                                 "(e.g. include: blocks/transformer.yaml)", location=location)
        joined = os.path.normpath(os.path.join(os.path.dirname(including), target))
        if not _inside(os.path.abspath(joined), self.root):
            raise SpecError(f"include: {target} leaves the spec's folder ({self.root})",
                            hint="a spec includes files from its own folder and the folders below it only; "
                                 "copy the library next to the spec", location=location)
        real = os.path.realpath(joined)
        if not _inside(real, self.real_root):
            raise SpecError(f"include: {target} is a symbolic link to {real}, outside the spec's folder "
                            f"({self.root})",
                            hint="a spec includes files from its own folder and the folders below it only; "
                                 "copy the library there instead of linking it", location=location)
        if not os.path.exists(real):
            raise SpecError(f"include: no such file: {joined}",
                            hint="the path is relative to the file that includes it", location=location)
        if not os.path.isfile(real):
            raise SpecError(f"include: {joined} is not a file", hint="name a YAML file of blocks",
                            location=location)
        return joined, real

    @staticmethod
    def load(path: str, location: Location) -> Mapping:
        """A library's data: a mapping of LIBRARY_KEYS, read by the spec's bounded loader."""
        try:
            data = load_file(path)
        except SpecError as exc:
            raise exc.located(location).noted(f"(included from {location})") from None
        if not isinstance(data, Mapping) or "blocks" not in data:
            where = data.location if isinstance(data, (Mapping, Sequence)) else Location(path, 1, 1)
            raise SpecError(f"{path} holds no 'blocks:', so there is nothing to include",
                            hint="a block library is a mapping with 'blocks:' (and optionally 'include:', "
                                 "'description:')", location=where).noted(f"(included from {location})")
        for key in data:
            if key not in LIBRARY_KEYS:
                raise SpecError(f"a block library holds {', '.join(LIBRARY_KEYS)}, not '{key}'",
                                hint="a library gives blocks to the specs that include it; 'layers', 'input' "
                                     "and 'params' belong in the spec", location=data.key_location(key)
                                ).noted(f"(included from {location})")
        return data


def _paths(data: Mapping) -> list[tuple[str, Location]]:
    """('include: a.yaml' or 'include: [a.yaml, b.yaml]') -> [(path, where it is written)]."""
    raw: Any = data["include"]
    where = data.value_location("include")
    if isinstance(raw, str):
        items, locations = [raw], [where]
    elif isinstance(raw, Sequence) and raw:
        items, locations = list(raw), [raw.item_location(i) for i in range(len(raw))]
    else:
        items, locations = [raw], [where]
    for item, location in zip(items, locations):
        if not isinstance(item, str) or not item.strip():
            raise SpecError(f"include takes a file path or a list of them, got {item!r}",
                            hint="e.g. include: blocks/transformer.yaml", location=location)
    return list(zip(items, locations))


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or below it (both absolute and normalised)."""
    return os.path.commonpath([path, folder]) == folder
