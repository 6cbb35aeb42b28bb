"""``--allow-opaque``: an operation (or a leaf module) the mapping has no kind for, kept as an
``opaque`` layer with the output shape PyTorch traced and the parameters it holds.

The parameters an operation holds: a module's own (those no earlier layer took), or for a
function call the model's tensors it reads directly (Swin's shifted_window_attention gets its
q/k/v and projection weights as arguments). An operation that reads only the model's tensors (a
relative position bias computed from its table) has no layer of its own: what it holds is
carried to the first opaque layer that reads its result (``Mapper.pending``), so every parameter
is counted once, where the operation that uses it runs.
"""
from __future__ import annotations

from .mapping import Mapper, Value, _described, _function_name, _Unsupported, _where
from .trace import TRACE_BATCH


def keep(mapper: Mapper, node) -> Value:
    """``node`` as an opaque layer (or, reading no network value, as held tensors carried on)."""
    held, inputs = [], []
    for source in node.all_input_nodes:
        held += mapper.pending.get(source, ())
        value = mapper.values.get(source)
        if value is None:
            continue
        if value.param is not None:
            held.append(value.param)
        elif value.parts and value.ref is not None:
            inputs.append(value.parts[0])
        elif value.ref is not None:
            inputs.append(value)
    if node.op == "call_module":
        held += [f"{node.target}.{name}" for name, _ in mapper.modules[node.target].named_parameters()]
    taken = {name for tensors in mapper.out.tensors for name in tensors}
    held = [name for name in dict.fromkeys(held) if name not in taken and name in mapper.owned]
    if not inputs:  # computed from the model's tensors alone: held on for its reader
        mapper.pending[node] = tuple(held)
        return Value()
    shape, parts = _traced(node)
    # a channels-last map (Swin's, ConvNeXt's) in, the same rank out: written channels first, as
    # the mapping writes every channels-last value, and read on as channels last
    last = inputs[0].channels_last and len(shape) == len(inputs[0].shape) and not parts
    if last:
        shape = (shape[-1], *shape[:-1])
    inputs = [Value(ref=value.ref, shape=value.shape) if last and value.channels_last else mapper.tensor(value, node)
              for value in inputs]
    fields = {"op": _op(mapper, node), "shape": _written(shape, inputs),
              "parameters": sum(mapper.params[name].numel() for name in held)}
    name = node.target if node.op == "call_module" else None
    value = mapper.add(node, "opaque", fields, inputs, name=name, word=_function_name(node).rsplit(".", 1)[-1],
                       tensors=tuple(held), check=not parts, channels_last=last)
    if parts:  # a tuple, its first part the tensor (HF's attention: (output, weights))
        return Value(ref=value.ref, parts=(value, *(Value(is_const=True) for _ in range(parts - 1))))
    return value


def _traced(node) -> tuple[tuple, int]:
    """(the per-sample shape of the node's tensor, how many parts its tuple has: 0 for a tensor)."""
    meta = node.meta.get("tensor_meta")
    parts = 0
    if isinstance(meta, (list, tuple)) and not hasattr(meta, "shape"):
        parts = len(meta)
        meta = meta[0] if meta else None
    if meta is None or not hasattr(meta, "shape") or len(meta.shape) < 2 or meta.shape[0] != TRACE_BATCH:
        shape = list(meta.shape) if meta is not None and hasattr(meta, "shape") else "no tensor"
        raise _Unsupported(_where(node), f"{_described(node, _function_name(node))} gives {shape}, not a value per "
                                         f"sample: not even an opaque layer can hold it")
    return tuple(int(d) for d in meta.shape[1:]), parts


def _written(shape: tuple, inputs: list):
    """The shape as the spec writes it: a sequence {steps, features} where a sequence goes in."""
    from ...layers.shapes import Steps

    if len(shape) == 2 and any(isinstance(value.shape, Steps) for value in inputs):
        return {"steps": shape[0], "features": shape[1]}
    return list(shape)


def _op(mapper: Mapper, node) -> str:
    """'torch.roll', 'nn.Bilinear', 'transformers.models.gpt2.modeling_gpt2.GPT2Attention'."""
    if node.op != "call_module":
        return _described(node, _function_name(node))
    cls = type(mapper.modules[node.target])
    return f"nn.{cls.__name__}" if cls.__module__.startswith("torch.nn") else f"{cls.__module__}.{cls.__qualname__}"
