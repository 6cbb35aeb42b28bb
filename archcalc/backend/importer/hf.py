"""Hugging Face transformers' models (GPT-2, BERT, Llama) in ``archcalc import``.

They are traced with torch.fx like any model, not with torch.export. torch.export does trace
them (transformers supports it), but into ATen operators over lifted weights: the attention
would come back as a dozen matmuls, views and a softmax to be recognized as one layer again,
through a second mapping beside fx's. fx keeps a module whole when asked, and these modules
are what the spec's kinds are: GPT2Attention, BertSelfAttention and LlamaAttention are
``attention`` layers (their projections, heads, key/value heads, rotary positions and
causality read off the module and its config), LlamaRMSNorm is ``rmsnorm``, GPT-2's Conv1D a
``dense`` layer, its NewGELUActivation ``gelu`` with the tanh approximation. Three things in
transformers' top-level forward stop fx, and are set aside while it traces (``traceable``):

- forward takes ``**kwargs`` behind decorators, whose signature fx cannot read: the model's
  class is swapped, for the trace only, for a subclass whose forward takes the token inputs by
  name (input_ids, then token_type_ids and position_ids, as many as --input gives) and calls
  the model's with use_cache=False and return_dict=False (a tuple of tensors, no KV cache);
- the attention masks (transformers.masking_utils' create_causal_mask and the others) branch
  on the inputs' values: they return None while tracing. A mask does not change a shape, a
  parameter or a MAC; causality is read from the attention module (``is_causal``) and written
  ``causal: true``; a padding mask is an input archcalc does not model;
- the rotary embedding (LlamaRotaryEmbedding) computes cos and sin from the positions: kept
  whole, it becomes no layer (``rotary:`` on the attention layers says it).

Position tables read at 0..T-1 (GPT-2's ``wpe(arange(T))``, BERT's position_embeddings over
its ``position_ids`` buffer) and added to the tokens are a ``positions`` layer.
"""
from __future__ import annotations

import contextlib
import sys

from ...errors import ArchcalcError
from .mapping import Mapper, Value, _Unsupported

MASKS = ("create_causal_mask", "create_bidirectional_mask", "create_sliding_window_causal_mask",
         "create_chunked_causal_mask", "create_masks_for_generate")
INPUTS = ("input_ids", "token_type_ids", "position_ids")  # the token inputs, in the order --input gives them
ATTENTION = ("GPT2Attention", "BertSelfAttention", "LlamaAttention")
LEAVES = (*ATTENTION, "Conv1D", "NewGELUActivation", "LlamaRMSNorm", "LlamaRotaryEmbedding")


def is_transformers(module) -> bool:
    return type(module).__module__.startswith("transformers.")


def is_leaf(module) -> bool:
    """transformers' modules the tracer keeps whole: each is one spec layer (or none)."""
    return type(module).__name__ in LEAVES and is_transformers(module)


@contextlib.contextmanager
def traceable(model, inputs: int):
    """While fx traces ``model`` (a transformers model; anything else is left alone): its forward
    takes ``inputs`` token inputs by name (``named_inputs``), the mask builders of its modeling
    modules return None."""
    if not is_transformers(model):
        yield
        return
    modules = {sys.modules[type(m).__module__] for m in model.modules() if is_transformers(m)}
    saved = [(module, name, getattr(module, name)) for module in modules for name in MASKS if hasattr(module, name)]
    with named_inputs(model, inputs):
        try:
            for module, name, _ in saved:
                setattr(module, name, _no_mask)
            yield
        finally:
            for module, name, function in saved:
                setattr(module, name, function)


@contextlib.contextmanager
def named_inputs(model, inputs: int):
    """``model`` (a transformers model; anything else is left alone) with a forward that takes
    ``inputs`` token inputs (input_ids, token_type_ids, position_ids: the first of those its
    forward has) and returns its outputs as a tuple, no KV cache: its class swapped meanwhile."""
    if not is_transformers(model):
        yield
        return
    base = type(model)
    names = [name for name in INPUTS if name in _parameters(base.forward)][:inputs]
    if len(names) < inputs:
        raise ArchcalcError(f"{base.__name__} takes at most {len(names)} token inputs ({', '.join(names)}), "
                            f"but --input gives {inputs}", hint="give one --input per token input, in that order")
    model.__class__ = type(base.__name__, (base,), {"forward": _forward(base, names), "__module__": base.__module__})
    try:
        yield
    finally:
        model.__class__ = base


def _no_mask(*args, **kwargs):
    return None


def _parameters(function) -> tuple:
    import inspect

    return tuple(inspect.signature(function).parameters)


def _forward(base, names: list):
    """forward(self, <names>) -> the model's outputs as a tuple. Its parameters are named as the
    model's inputs (fx names the network inputs after them: input_ids, token_type_ids), so it is
    written out: ``names`` come from INPUTS, never from outside."""
    def call(self, **given):
        return base.forward(self, **given, use_cache=False, return_dict=False)

    namespace = {"call": call}
    exec(f"def forward(self, {', '.join(names)}):\n"  # the text: INPUTS' names
         f"    return call(self, {', '.join(f'{name}={name}' for name in names)})\n", namespace)
    return namespace["forward"]


def source_state(model) -> dict:
    """``model``'s state_dict as the spec's modules hold it: GPT-2's Conv1D keeps its weight
    [in, out], transposed from nn.Linear's [out, in] (what ``archcalc import`` maps it to)."""
    state = model.state_dict()
    for path, module in model.named_modules():
        if type(module).__name__ == "Conv1D" and is_transformers(module):
            state[f"{path}.weight"] = state[f"{path}.weight"].t()
    return state


# --- the mapping ---------------------------------------------------------------------------------

def call(mapper: Mapper, node, module, args: list) -> Value | None:
    """The Value of a module call transformers' models need mapped (None: not one of them)."""
    from torch import nn

    name = type(module).__name__
    if isinstance(module, nn.Embedding) and args and isinstance(args[0], Value) and args[0].ref is None \
            and _counts_up(node.args[0]):
        return Value(table=node.target)  # read at 0..T-1: a positions layer where it is added
    if _absorbed(mapper, node.target):  # BERT's attention output projection: in its attention layer
        return args[0]
    if not is_leaf(module):
        return None
    # what it reads: the first argument, or (called by keyword) hidden_states
    x = args[0] if args else mapper.arg(node.kwargs.get("hidden_states", next(iter(node.kwargs.values()), None)))
    if name == "LlamaRotaryEmbedding":  # cos and sin of the positions: the attention layers' rotary
        return Value(is_const=True)
    if name in ATTENTION:
        return attention(mapper, node, module, x)
    if name == "Conv1D":
        kind, fields = "dense", {"units": module.nf}
    elif name == "NewGELUActivation":
        kind, fields = "gelu", {"approximate": "tanh"}
    elif name == "LlamaRMSNorm":
        mapped = mapper.norm("rmsnorm", x, tuple(module.weight.shape), {"eps": module.variance_epsilon})
        if mapped is None:
            raise _Unsupported(node.target, f"{name} over {list(module.weight.shape)} of {list(x.shape)}")
        kind, fields = mapped[:2]
    else:
        return None
    return mapper.module_entry(node, module, kind, fields, [mapper.tensor(x, node)],
                               shares=mapper.owner(node, module))


def attention(mapper: Mapper, node, module, x: Value) -> Value:
    """GPT2Attention (fused c_attn), BertSelfAttention (query, key, value; its output projection
    is BertSelfOutput.dense, taken in), LlamaAttention (grouped key/value heads, rotary): one
    attention layer; the module's result is (output, weights)."""
    name, config = type(module).__name__, module.config
    d = x.shape[-1]
    if name == "GPT2Attention":
        if module.is_cross_attention or module.scale_attn_by_inverse_layer_idx or not module.scale_attn_weights:
            raise _Unsupported(node.target, "GPT2Attention as cross-attention" if module.is_cross_attention else
                               "GPT2Attention with scores scaled otherwise than by 1/sqrt(head_dim)")
        heads, fields = module.num_heads, {"causal": module.is_causal, "dropout": module.attn_dropout.p}
        tensors = [f"{node.target}.{key}" for key in ("c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias")]
    elif name == "BertSelfAttention":
        heads = module.num_attention_heads
        fields = {"qkv": "separate", "bias": module.query.bias is not None, "causal": bool(module.is_causal),
                  "dropout": module.dropout.p}
        output = _output_projection(node.target)
        tensors = [f"{node.target}.{part}.{key}" for part in ("query", "key", "value")
                   for key in ("weight", "bias") if getattr(module, part).bias is not None or key == "weight"]
        tensors += [f"{output}.{key}" for key, _ in mapper.modules[output].named_parameters()]
    else:
        rope = getattr(config, "rope_parameters", None) or {}
        if rope.get("rope_type", "default") != "default":
            raise _Unsupported(node.target, f"LlamaAttention with {rope.get('rope_type')} rotary scaling")
        heads = config.num_attention_heads
        fields = {"kv_heads": config.num_key_value_heads if config.num_key_value_heads != heads else None,
                  "head_dim": module.head_dim if module.head_dim * heads != d else None, "qkv": "separate",
                  "bias": bool(config.attention_bias), "causal": module.is_causal,
                  "dropout": config.attention_dropout, "rotary": rope.get("rope_theta", 10000.0)}
        tensors = [f"{node.target}.{key}" for key, _ in module.named_parameters()]
    fields = {"heads": heads, **fields}
    value = mapper.add(node, "attention", fields, [mapper.tensor(x, node)], name=node.target, tensors=tuple(tensors),
                       check=False)
    traced = tuple(int(d) for d in node.meta["tensor_meta"][0].shape[1:])
    if tuple(value.shape) != traced:
        raise _Unsupported(node.target, f"{name} as attention gives {list(value.shape)}, PyTorch {list(traced)}")
    mapper.module_names.setdefault(node.target, value.ref)
    return Value(ref=value.ref, parts=(value, Value(is_const=True)))


def positions(mapper: Mapper, node, table: str, x: Value) -> Value:
    """tokens + table(0..T-1): a positions layer holding the table (GPT-2's wpe, BERT's
    position_embeddings)."""
    module = mapper.modules[table]
    value = mapper.add(node, "positions", {"max": module.num_embeddings}, [mapper.tensor(x, node)], name=table,
                       tensors=(f"{table}.weight",))
    mapper.module_names.setdefault(table, value.ref)
    mapper.holders.setdefault(id(module.weight), value.ref)
    return value


def _output_projection(attention: str) -> str:
    """BertSelfAttention 'encoder.layer.0.attention.self' -> its output projection
    'encoder.layer.0.attention.output.dense'."""
    return attention.rsplit(".", 1)[0] + ".output.dense"


def _absorbed(mapper: Mapper, target: str) -> bool:
    """A BertSelfOutput's dense layer, the output projection of the attention beside it."""
    parent = target.rsplit(".", 2)[0]
    own = mapper.modules.get(parent + ".self")
    return target.endswith(".output.dense") and own is not None and type(own).__name__ == "BertSelfAttention"


def _counts_up(node) -> bool:
    """Whether an fx value is the positions 0, 1, ..., T-1: torch.arange(T) (plus 0, unsqueezed,
    expanded, moved), or a slice from 0 of transformers' ``position_ids`` buffer (arange too)."""
    import operator

    import torch
    from torch import fx

    while isinstance(node, fx.Node):
        if node.op == "call_function" and node.target is torch.arange:
            start = node.args[0] if len(node.args) > 1 else node.kwargs.get("start", 0)
            return start == 0
        if node.op == "get_attr":
            return node.target.rsplit(".", 1)[-1] == "position_ids"
        if node.op == "call_function" and node.target is operator.add and node.args[1] == 0:
            node = node.args[0]
        elif node.op == "call_function" and node.target is operator.getitem:
            index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
            if not all(isinstance(part, slice) and part.start in (None, 0) and part.step in (None, 1)
                       for part in index):
                return False
            node = node.args[0]
        elif node.op == "call_method" and node.target in ("unsqueeze", "expand", "to", "view", "long"):
            node = node.args[0]
        else:
            return False
    return False
