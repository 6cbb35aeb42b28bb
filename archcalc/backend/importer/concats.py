"""Dense connectivity written as a chain: DenseNet's growing concatenations.

torchvision's _DenseLayer begins with ``torch.cat(features, 1)`` of every output before it (the
block's input and each earlier layer's new channels), so layer k's concatenation reads k + 1
values and no two layers have the same structure: 58 layers of DenseNet-121 written one by
one. Concatenation is associative: cat(x0, n1, ..., nk) = cat(cat(x0, ..., nk-1), nk), which
an earlier concatenation already holds. Written so, each one reads two values, and it belongs
at the end of the layer whose new channels it adds: layer k is then ``[its layers..., concat:
{inputs: [in, conv2]}]``, reading only what the layer before gave, and consecutive layers are
one block repeated (DenseNet-121 from some 420 lines to 40). The values, the parameters and the
MACs are the same; only where the spec says the concatenation happens moves, by one module.
"""
from __future__ import annotations


def chain_concats(mapped) -> None:
    """Each concat whose inputs but the last are an earlier concat's, in order and on the same
    axis, reads that concat and its last input instead. The concats of such a chain then move to
    the end of their last input's module (named after it, 'denselayer1.cat'), where that module
    sits beside the concat's own: each module's output is its input and its new channels joined."""
    concats: dict = {}  # (axis, what it joins) -> the concat entry
    chained: list = []
    for entry in mapped.entries:
        if entry.kind != "concat":
            continue
        axis = entry.args.get("axis")
        prefix = concats.get((axis, entry.inputs[:-1])) if len(entry.inputs) > 2 else None
        concats[(axis, entry.inputs)] = entry
        if prefix is not None:
            entry.inputs = (prefix.name, entry.inputs[-1])
            chained += [candidate for candidate in (prefix, entry) if candidate not in chained]
    by_name = {entry.name: entry for entry in mapped.entries}
    moves = {}
    for entry in chained:
        last = by_name.get(entry.inputs[-1])
        if last is not None and last.scope and entry.scope[:len(last.scope) - 1] == last.scope[:-1]:
            moves[entry.name] = (f"{last.scope[-1][0]}.cat", last.scope)
    staying = set(by_name) - set(moves)
    if len({name for name, _ in moves.values()}) < len(moves) or any(name in staying for name, _ in moves.values()):
        return  # the names would clash: left where PyTorch computes them
    renamed = {old: name for old, (name, _) in moves.items()}
    for entry in mapped.entries:
        entry.inputs = tuple(renamed.get(ref, ref) for ref in entry.inputs)
        if entry.name in moves:
            entry.name, entry.scope = moves[entry.name]
    mapped.outputs = tuple(renamed.get(ref, ref) for ref in mapped.outputs)
