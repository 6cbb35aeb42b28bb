"""torch.fx graph -> spec layers: each module call and function call mapped to a layer kind.

Every mapped layer is checked as it is made: the kind's own ``output_shape`` on the spec's typed
shape must give the shape PyTorch traced, so a mapping that the spec language reads differently
stops here, with both shapes, instead of becoming a silently wrong spec. What has no kind is
collected (module path, operation, the nearest kinds) and refused together at the end.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import operator
from dataclasses import dataclass, field

from ...errors import ArchcalcError, SpecError
from ...layers import REGISTRY, lookup
from ...layers.shapes import FeatureMap, Outputs, Shape, Steps, Vector, shape_of
from ...spec.write import Entry
from .trace import TRACE_BATCH


@dataclass
class Value:
    """What an fx node computes, as the spec sees it."""

    ref: str | None = None        # the spec name holding it (an entry, 'name.i' of a split, a network input)
    shape: Shape | None = None    # its typed shape per sample
    channels_last: bool = False   # a feature map permuted channels-last (ConvNeXt's blocks): shape is the map's
    parts: tuple = ()             # a split's outputs (Values)
    const: object = None          # a plain Python value (a size, an int)
    param: str | None = None      # a parameter or buffer of the model (get_attr), by its path
    is_const: bool = False
    phantom: bool = False         # the result of a refused operation: followed on to find the others
    state: tuple = ()             # a recurrent layer's final state: (entry index, what) (see recurrent)
    initial: bool = False         # a [H] vector made a recurrent layer's initial state (unsqueeze, expand)
    zeros: bool = False           # torch.zeros_like of such a state (an LSTM's initial cell)
    table: str | None = None      # an nn.Embedding read at positions 0..T-1 (GPT-2's wpe): added, a positions layer


@dataclass
class Unsupported:
    where: str
    what: str
    nearest: tuple


@dataclass
class Mapped:
    """The import's layers and what pairs them with the source."""

    entries: list = field(default_factory=list)          # spec.write.Entry, in order
    tensors: list = field(default_factory=list)          # per entry: the source's state_dict keys it holds, in order
    shapes: list = field(default_factory=list)           # per entry: its typed output shape
    inputs: dict = field(default_factory=dict)           # network input name -> typed shape
    outputs: tuple = ()
    unsupported: list = field(default_factory=list)
    notes: list = field(default_factory=list)            # approximations, one line each
    transposed: set = field(default_factory=set)         # source tensors stored transposed ([in, units]: ONNX MatMul's)


class ImportRefused(ArchcalcError):
    """Operations the spec language cannot express (exit 2), each with where and the nearest kinds."""


ACTIVATIONS = {  # torch.nn class name -> kind (their arguments are read below)
    "ReLU": "relu", "ReLU6": "relu6", "Tanh": "tanh", "Sigmoid": "sigmoid", "GELU": "gelu", "ELU": "elu",
    "LeakyReLU": "leakyrelu", "SiLU": "silu", "Hardswish": "hardswish", "Hardsigmoid": "hardsigmoid",
    "Mish": "mish", "Softplus": "softplus", "Softmax": "softmax", "LogSoftmax": "logsoftmax",
}
FUNCTIONS = {  # torch functions and tensor methods by name -> activation kind
    "relu": "relu", "relu_": "relu", "relu6": "relu6", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "gelu",
    "elu": "elu", "leaky_relu": "leakyrelu", "silu": "silu", "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid", "mish": "mish", "softplus": "softplus", "softmax": "softmax",
    "log_softmax": "logsoftmax", "abs": "abs",
}
ALIASES = ("contiguous", "clone", "detach", "float", "identity")  # the same values: no layer
NEAREST = {  # what to use instead, for operations people meet (the rest: the closest names)
    "roll": ("pad", "reshape", "permute"), "matmul": ("dense", "attention"), "bmm": ("dense", "attention"),
    "interpolate": ("upsample",), "pow": ("multiply",), "div": ("multiply", "scale"), "truediv": ("multiply", "scale"),
    "mean": ("globalavgpool", "adaptiveavgpool"), "sum": ("add", "globalavgpool"),
    "expand": ("parameter", "repeatvector"), "getitem": ("split", "chunk"), "unsqueeze": ("reshape",),
    "squeeze": ("reshape", "flatten"), "MultiheadAttention": ("attention",),
}


HELPERS = ("Attention", "Positions", "Sinusoidal", "Parameter", "Recurrent")  # kept whole by the tracer (is_helper)


def is_helper(module) -> bool:
    """Whether ``module`` is one of archcalc's own HELPERS (backend/modules.py) that the tracer
    keeps as one call: that very class, or a class of its name and its source (``archcalc
    export`` copies the source into every file it writes). An edited copy is traced through
    like any other module."""
    name = type(module).__name__
    if name not in HELPERS:
        return False
    from .. import modules

    own = modules.HELPERS[name]
    return type(module) is own or _source(type(module)) == _source(own)


@functools.lru_cache(maxsize=64)
def _source(cls) -> str | None:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):  # defined where Python keeps no source (an interactive session)
        return None


class Recorder:
    """What the PyTorch and the ONNX mappings share: the layers recorded so far, unique names,
    the check of each layer against the traced shape, and the finishing passes."""

    def __init__(self):
        self.out = Mapped()
        self.names: set = set()

    def finish(self) -> Mapped:
        if self.out.unsupported:
            raise self.refusal()
        self.round_alike()
        self.fold_activations()
        return self.out

    def is_pair(self, parent: str, scope: tuple) -> bool:
        """Whether module ``parent`` is exactly a layer and its activation (nn.Sequential(conv, relu))."""
        return False

    def emit(self, kind: str, fields: dict, inputs: list, *, name: str, scope: tuple, wanted, where: str, what: str,
             tensors=(), note="", shares=None, channels_last=False, count=1, origin="PyTorch") -> Value:
        """One layer, checked: the kind's own output_shape on the typed input shapes must give
        ``wanted`` (the traced shape per sample; a list of them for a split; None: not checked).
        Recorded and returned as the value it computes."""
        fields = {key: value for key, value in fields.items() if value is not None}
        if fields.get("sequence") is False:
            del fields["sequence"]
        name = self.unique(name)
        cls = lookup(kind)
        shapes = tuple(value.shape for value in inputs)
        try:
            layer = cls.from_args(dict(fields))
            y = layer.output_shape(shapes if cls.merges else shapes[0])
        except SpecError as exc:
            raise _Unsupported(where, f"{what} as {kind}: {exc.message}") from None
        if wanted is not None:
            got = [tuple(shape) for shape in y] if isinstance(y, Outputs) else tuple(y)
            if channels_last and not isinstance(y, Outputs):
                got = (*got[1:], got[0])
            if got != wanted:
                raise _Unsupported(where, f"{what} as {kind} gives {list(got)}, but {origin} gives {list(wanted)}")
        entry = Entry(kind, fields, name, tuple(value.ref for value in inputs), scope, note, count)
        if shares is not None:
            entry.args["shares"] = shares
        self.record(entry, y, tuple(tensors))
        return Value(ref=name, shape=y if not isinstance(y, Outputs) else None, channels_last=channels_last)

    def unique(self, name: str) -> str:
        candidate, number = name, 2
        while candidate in self.names or candidate in ("input", "in"):
            candidate, number = f"{name}_{number}", number + 1
        self.names.add(candidate)
        return candidate

    def record(self, entry: Entry, shape, tensors: tuple) -> None:
        self.out.entries.append(entry)
        self.out.shapes.append(shape)
        self.out.tensors.append(tensors)
        if entry.note:
            self.out.notes.append(f"{entry.name}: {entry.note}")

    def fold_activations(self) -> None:
        """A conv, dense or convtranspose read only by the activation after it takes it as its
        ``activation:`` (conv: {activation: relu}, as specs write it; one Sequential in PyTorch)."""
        entries, readers = self.out.entries, {}
        for entry in entries:
            for ref in entry.inputs:
                readers[ref] = readers.get(ref, 0) + 1
        keep, renamed = [], {}
        for index, entry in enumerate(entries):
            entry.inputs = tuple(renamed.get(ref, ref) for ref in entry.inputs)
            before = keep[-1] if keep else None
            if before is not None and entries[before].kind in ("conv", "dense", "convtranspose") and \
                    "activation" not in entries[before].args and "shares" not in entries[before].args and \
                    _attribute(entry.kind) and not _non_default(entry) and \
                    entry.inputs == (entries[before].name,) and readers.get(entries[before].name) == 1 and \
                    entries[before].name not in self.out.outputs:
                entries[before].args["activation"] = entry.kind
                parent, _, last = entries[before].name.rpartition(".")
                if last == "0" and entry.name == f"{parent}.1" and self.is_pair(parent, entries[before].scope):
                    # nn.Sequential(conv, relu): the pair is the Sequential, named so
                    entries[before].name, entries[before].scope = parent, entries[before].scope[:-1]
                    renamed[f"{parent}.0"] = parent
                renamed[entry.name] = entries[before].name
                self.out.shapes[before] = self.out.shapes[index]
                continue
            keep.append(index)
        self.out.outputs = tuple(renamed.get(ref, ref) for ref in self.out.outputs)
        self.out.entries = [entries[i] for i in keep]
        self.out.shapes = [self.out.shapes[i] for i in keep]
        self.out.tensors = [self.out.tensors[i] for i in keep]

    def round_alike(self) -> None:
        """Where some windows of a kind round down (PyTorch floors: the last row is not read) and
        the others tile their input, every one of them gets ``rounding: floor``: for a window that
        tiles, floor is the same size, and one setting for the kind reads as one default."""
        for kind in ("conv", "maxpool", "avgpool"):
            group = [entry for entry in self.out.entries if entry.kind == kind]
            if {entry.args.get("rounding", "strict") for entry in group} == {"strict", "floor"}:
                for entry in group:
                    entry.args["rounding"] = "floor"

    def refusal(self) -> ImportRefused:
        lines = tuple(f"{item.where}: {item.what} (nearest: {', '.join(item.nearest) or 'none'})"
                      for item in self.out.unsupported)
        count = len(self.out.unsupported)
        error = ImportRefused(f"{count} operation{'s' if count > 1 else ''} of the model "
                              f"{'have' if count > 1 else 'has'} no layer kind:", details=lines,
                              hint="rewrite them with the kinds named (archcalc kinds lists every kind)")
        return error



class Mapper(Recorder):
    def __init__(self, graph_module, model, input_shapes: list[Shape], allow_opaque: bool = False):
        super().__init__()
        self.gm = graph_module
        self.modules = dict(model.named_modules())
        self.params = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        self.values: dict = {}
        self.module_names: dict = {}   # module path -> spec name of its first call (shares: for later calls)
        self.holders: dict = {}        # id of a Parameter -> the spec name of the first layer holding it
        self.sequences_read: set = set()  # recurrent entries whose every-step output is read
        self.input_shapes = input_shapes
        self.allow_opaque = allow_opaque
        self.owned = set(dict(model.named_parameters()))  # parameters, each once (a tied one under its first name)
        self.pending: dict = {}  # --allow-opaque: node -> the parameters an operation on them alone holds (opaque.py)

    # --- the walk ---------------------------------------------------------------------
    def run(self) -> Mapped:
        placeholders = [node for node in self.gm.graph.nodes if node.op == "placeholder"]
        if len(placeholders) != len(self.input_shapes):
            raise ArchcalcError(f"the model's forward takes {len(placeholders)} inputs "
                                f"({', '.join(p.name for p in placeholders)}), but --input gives "
                                f"{len(self.input_shapes)}", hint="give one --input per forward argument")
        for node in self.gm.graph.nodes:
            recorded = len(self.out.entries)
            try:
                try:
                    self.values[node] = self.visit(node)
                except _Skip:
                    if not any(source in self.pending for source in node.all_input_nodes):
                        self.values[node] = Value()
                        continue
                    # it reads what an operation on the model's tensors alone computed (opaque.py)
                    raise _Unsupported(_where(node), _described(node, _function_name(node))) from None
            except _Unsupported as exc:
                self.forget(recorded)
                refused = exc
                if self.allow_opaque and node.op not in ("placeholder", "output"):
                    try:
                        self.values[node] = self.opaque(node)
                        continue
                    except _Unsupported as kept:  # not even an opaque layer can hold it
                        self.forget(recorded)
                        refused = kept
                self.out.unsupported.append(Unsupported(refused.where or _where(node), refused.what,
                                                        nearest_kinds(refused.what)))
                self.values[node] = self.phantom(node)
        return self.finish()

    def forget(self, recorded: int) -> None:
        """Drop the layers a mapping recorded before it failed (a buffer read as a parameter layer
        for an operation that was then refused): only the first ``recorded`` stay."""
        del self.out.entries[recorded:], self.out.shapes[recorded:], self.out.tensors[recorded:]

    def opaque(self, node) -> Value:
        """--allow-opaque: the operation kept as an opaque layer (opaque.py)."""
        from .opaque import keep

        return keep(self, node)

    def refusal(self) -> ImportRefused:
        error = super().refusal()
        error.hint += ", or keep them as opaque layers with --allow-opaque (their MACs are then not counted)"
        return error

    def is_pair(self, parent: str, scope: tuple) -> bool:
        return scope[-1:] == ((parent, "Sequential"),) and sum(1 for _ in self.modules[parent].children()) == 2

    def visit(self, node) -> Value:
        if node.op == "placeholder":
            name = "input" if len(self.input_shapes) == 1 else node.name
            shape = self.input_shapes[len(self.out.inputs)]
            self.out.inputs[name] = shape
            self.names.add(name)
            return Value(ref=name, shape=shape)
        if node.op == "get_attr":
            return Value(param=node.target)
        if node.op == "output":
            self.out.outputs = tuple(self.tensor(value, node).ref for value in _flat(self.arg(node.args[0])))
            return Value()
        if node.op == "call_module":
            return self.module_call(node)
        return self.function_call(node)

    def phantom(self, node) -> Value:
        """A refused operation's result, with its traced shape, so that the operations after it
        are still mapped (and the refusal lists every one, not only the first)."""
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape") or len(meta.shape) < 2 or meta.shape[0] != TRACE_BATCH:
            return Value()
        sizes = tuple(int(d) for d in meta.shape[1:])
        first = next((v for v in (self.values.get(a) for a in node.all_input_nodes) if v is not None and v.shape), None)
        sequence = first is not None and isinstance(first.shape, Steps) and len(sizes) == 2
        return Value(ref="<refused>", shape=Steps(sizes) if sequence else shape_of(sizes), phantom=True)

    def arg(self, value):
        """An fx argument with its nodes replaced by their Values."""
        from torch import fx

        if isinstance(value, fx.Node):
            return self.values[value]
        if isinstance(value, (list, tuple)):
            return type(value)(self.arg(item) for item in value)
        if isinstance(value, dict):
            return {key: self.arg(item) for key, item in value.items()}
        return Value(const=value, is_const=True)

    def tensor(self, value, node) -> Value:
        """``value`` as a tensor the spec holds (a channels-last view gets its permute written)."""
        if not isinstance(value, Value) or value.is_const or (value.ref is None and value.param is None):
            raise _Skip
        if value.param is not None:
            return self.parameter(value, node)
        if value.channels_last:  # written where a layer reads it as it is: a [C, L] map so is a sequence [L, C]
            rank = len(value.shape)
            return self.add(node, "permute", {"dims": [*range(1, rank), 0], "sequence": rank == 2},
                            [Value(ref=value.ref, shape=value.shape)], word="permute", check=False)
        return value

    # --- modules ----------------------------------------------------------------------
    def module_call(self, node) -> Value:
        from torch import nn

        module = self.modules[node.target]
        cls = type(module).__name__
        args = [self.arg(a) for a in node.args]
        if isinstance(module, nn.Identity):
            return args[0]
        if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
            return self.recurrent(node, module, args)
        if isinstance(module, nn.MultiheadAttention):
            return self.attention(node, module, args)
        if is_helper(module):
            return self.helper(node, module, args)
        from .hf import call  # transformers' modules, position tables

        mapped = call(self, node, module, args)
        if mapped is not None:
            return mapped
        if not args or not isinstance(args[0], Value):
            return self.unsupported(node, cls)
        x = args[0]
        if x.ref is None and x.param is None:
            raise _Skip
        shares = self.owner(node, module)
        mapped = self.module_layer(module, x, node)
        if mapped is None:
            return self.unsupported(node, cls)
        kind, fields, note = mapped
        if kind is None:  # the same values
            return x
        keep_channels_last = x.channels_last and kind in CHANNELWISE
        inputs = [x] if keep_channels_last else [self.tensor(x, node)]
        if keep_channels_last:
            inputs = [Value(ref=x.ref, shape=x.shape)]
            if kind in ("dense", "layernorm", "rmsnorm"):
                fields["axes"] = "channels"
        return self.module_entry(node, module, kind, fields, inputs, note=note, shares=shares,
                                 channels_last=keep_channels_last)

    def module_entry(self, node, module, kind, fields, inputs, *, shares=None, **options) -> Value:
        """The layer of one module call, holding the module's tensors unless it ``shares`` them."""
        tensors = () if shares else tuple(f"{node.target}.{key}" for key in module.state_dict())
        value = self.add(node, kind, fields, inputs, name=node.target, tensors=tensors, shares=shares, **options)
        self.module_names.setdefault(node.target, value.ref)
        for parameter in module.parameters():
            self.holders.setdefault(id(parameter), value.ref)
        return value

    def owner(self, node, module) -> str | None:
        """The layer whose parameters this module call uses (``shares:``): the same module called
        before, or another module holding the very same Parameter objects (a tied LM head: GPT-2's
        lm_head.weight is wte.weight)."""
        parameters = list(module.parameters())
        if not parameters:
            return None
        if node.target in self.module_names:
            return self.module_names[node.target]
        holders = {self.holders.get(id(parameter)) for parameter in parameters}
        return holders.pop() if len(holders) == 1 and None not in holders else None

    def helper(self, node, module, args) -> Value:
        """archcalc's own modules (backend/modules.py), kept whole by the tracer: the kind each is
        the PyTorch form of, its hyperparameters read from the module."""
        cls = type(module).__name__
        if cls == "Parameter":  # reads only the batch size of its input: no input in the spec
            sizes = tuple(int(d) for d in module.weight.shape)
            shape = {"steps": sizes[0], "features": sizes[1]} if len(sizes) == 2 else list(sizes)
            return self.module_entry(node, module, "parameter", {"shape": shape}, [], shares=self.owner(node, module))
        inputs = [self.tensor(value, node) for value in args if not (isinstance(value, Value) and value.is_const)]
        if cls == "Positions":
            kind, fields = "positions", {"max": int(module.weight.shape[0])}
        elif cls == "Sinusoidal":
            kind, fields = "sinusoidal", {"base": module.base}
        elif cls == "Recurrent":
            if not module.cell.batch_first or getattr(module.cell, "proj_size", 0):
                return self.unsupported(node, "Recurrent over an nn.RNN/LSTM/GRU without batch_first or with proj_size")
            kind, fields = recurrent_fields(module.cell)
            fields["returns"] = "last" if module.last else None
        else:
            d = inputs[0].shape[-1]
            bias = (module.q_proj.bias if module.separate else module.in_proj_bias) is not None
            kind, fields = "attention", {
                "heads": module.heads, "kv_heads": module.kv_heads if module.kv_heads != module.heads else None,
                "head_dim": module.head_dim if module.head_dim != d // module.heads else None, "bias": bias,
                "qkv": "separate" if module.separate else None, "causal": module.causal,
                "dropout": module.dropout, "rotary": module.rotary, "fused": module.fused}
        return self.module_entry(node, module, kind, fields, inputs, shares=self.owner(node, module))

    def module_layer(self, module, x: Value, node):
        """(kind, fields, note) for a torch.nn module, (None, ...) for one that passes values on,
        None for one the spec cannot express."""
        from torch import nn

        cls = type(module).__name__
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return self.conv(module, x)
        if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            if module.padding_mode != "zeros":
                return None
            return "convtranspose", {"filters": module.out_channels, "kernel": _compact(module.kernel_size),
                                     "stride": _compact(module.stride), "padding": _compact(module.padding),
                                     "output_padding": _compact(module.output_padding),
                                     "dilation": _compact(module.dilation), "groups": module.groups,
                                     "bias": module.bias is not None}, ""
        if isinstance(module, nn.Linear):
            return "dense", {"units": module.out_features, "bias": module.bias is not None}, ""
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            if not module.track_running_stats or module.momentum is None:
                return None
            return "batchnorm", {"eps": module.eps, "momentum": module.momentum, "affine": module.affine}, ""
        if isinstance(module, nn.LayerNorm):
            if module.elementwise_affine and module.bias is None:
                return None
            return self.norm("layernorm", x, tuple(module.normalized_shape),
                             {"eps": module.eps, "affine": module.elementwise_affine})
        if isinstance(module, nn.RMSNorm):
            return self.norm("rmsnorm", x, tuple(module.normalized_shape),
                             {"eps": module.eps, "affine": module.elementwise_affine})
        if isinstance(module, nn.GroupNorm):
            return "groupnorm", {"groups": module.num_groups, "eps": module.eps, "affine": module.affine}, ""
        if isinstance(module, (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)):
            return "instancenorm", {"eps": module.eps, "affine": module.affine, "momentum": module.momentum,
                                    "track_running_stats": module.track_running_stats}, ""
        if isinstance(module, nn.LocalResponseNorm):
            return "lrn", {"size": module.size, "alpha": module.alpha, "beta": module.beta, "k": module.k}, ""
        if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
            if module.return_indices:
                return None
            return self.pool("maxpool", x, module.kernel_size, module.stride, module.padding, module.dilation,
                             module.ceil_mode)
        if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
            if getattr(module, "divisor_override", None) or (not module.count_include_pad and
                                                             _any(module.padding)):
                return None
            return self.pool("avgpool", x, module.kernel_size, module.stride, module.padding, 1, module.ceil_mode)
        if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                               nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
            if getattr(module, "return_indices", False):
                return None
            return self.adaptive("adaptiveavgpool" if "Avg" in cls else "adaptivemaxpool", x, module.output_size)
        if isinstance(module, nn.Flatten):
            return self.reshaped(x, node)
        if isinstance(module, nn.Unflatten):
            return self.reshaped(x, node)
        if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)):
            if module.p == 0:
                return None, {}, ""  # drops nothing, even while training: left out
            note = "" if type(module) is nn.Dropout else \
                f"{cls} drops whole channels (or keeps the self-normalising mean) while training: written as dropout"
            return "dropout", {"rate": module.p}, note
        if isinstance(module, nn.Embedding):
            return "embedding", {"vocabulary": module.num_embeddings, "dim": module.embedding_dim}, ""
        if isinstance(module, nn.PReLU):
            return "prelu", {"num_parameters": module.num_parameters}, ""
        if isinstance(module, nn.ChannelShuffle):
            return "channel_shuffle", {"groups": module.groups}, ""
        if isinstance(module, nn.Upsample):
            return self.upsample(module, x)
        if isinstance(module, (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d,
                               nn.ConstantPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d,
                               nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d,
                               nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d)):
            if getattr(module, "value", 0) != 0:
                return None
            mode = "zeros" if "Zero" in cls or "Constant" in cls else \
                {"Reflection": "reflect", "Replication": "replicate", "Circular": "circular"}[cls[:-len("PadNd")]]
            return "pad", {"padding": _compact(tuple(module.padding)), "mode": mode}, ""
        if cls in ACTIVATIONS:
            return self.activation(ACTIVATIONS[cls], x, module)
        return None

    def recurrent(self, node, module, args) -> Value:
        """nn.RNN/LSTM/GRU (batch first): every step's output, part 0 of its result; its final
        state, part 1, becomes ``returns: last`` where the top layer's state of each direction is
        joined (see ``joined_states``). An initial state read from a [H] vector is the layer's
        second input."""
        from torch import nn

        if not module.batch_first or getattr(module, "proj_size", 0):
            return self.unsupported(node, f"nn.{type(module).__name__} without batch_first" if not module.batch_first
                                    else "nn.LSTM with proj_size")
        sequence = self.tensor(args[0], node)
        inputs = [sequence]
        if len(args) > 1 and not (isinstance(args[1], Value) and args[1].is_const and args[1].const is None):
            state = args[1]
            hidden = state[0] if isinstance(state, tuple) else state
            cell = state[1] if isinstance(state, tuple) else None
            if not (isinstance(hidden, Value) and hidden.initial) or \
                    (isinstance(module, nn.LSTM) != (cell is not None)) or (cell is not None and not cell.zeros):
                return self.unsupported(node, f"nn.{type(module).__name__} with an initial state the spec cannot "
                                              f"express (it takes one [H] vector for every layer and direction)")
            inputs.append(Value(ref=hidden.ref, shape=hidden.shape))
        kind, fields = recurrent_fields(module)
        tensors = tuple(f"{node.target}.{key}" for key in module.state_dict())
        value = self.add(node, kind, fields, inputs, name=node.target, tensors=tensors, check=False)
        index = len(self.out.entries) - 1
        y = self.out.shapes[index]
        traced = tuple(int(d) for d in node.meta["tensor_meta"][0].shape[1:])
        if tuple(y) != traced:
            raise _Unsupported(node.target, f"nn.{type(module).__name__} as {kind} gives {list(y)}, but PyTorch "
                                            f"gives {list(traced)}")
        return Value(ref=value.ref, parts=(Value(ref=value.ref, shape=y), Value(state=(index, "final"))))

    def attention(self, node, module, args) -> Value:
        """nn.MultiheadAttention (batch first, self-attention: query, key and value the same
        sequence, no mask): attention with its fused projections; its result is (output, weights)."""
        from ...layers import REGISTRY

        kwargs = {key: self.arg(value) for key, value in node.kwargs.items()}
        query = args[0]
        same = len(args) >= 3 and all(isinstance(v, Value) and v.ref == query.ref and v.ref is not None
                                      for v in args[1:3])
        masked = any(not (v.is_const and v.const in (None, False)) for key, v in kwargs.items()
                     if key in ("attn_mask", "key_padding_mask", "is_causal") and isinstance(v, Value))
        if "attention" not in REGISTRY or not module.batch_first or not module._qkv_same_embed_dim or \
                module.bias_k is not None or module.add_zero_attn or not same or masked:
            return self.unsupported(node, "MultiheadAttention" if "attention" not in REGISTRY else
                                    "MultiheadAttention other than batch-first self-attention without a mask")
        tensors = tuple(f"{node.target}.{key}" for key in module.state_dict())
        fields = {"heads": module.num_heads, "bias": module.in_proj_bias is not None}
        value = self.add(node, "attention", fields, [self.tensor(query, node)], name=node.target, tensors=tensors,
                         check=False)
        if tuple(value.shape) != tuple(int(d) for d in node.meta["tensor_meta"][0].shape[1:]):
            raise _Unsupported(node.target, f"nn.MultiheadAttention as attention gives {list(value.shape)}")
        return Value(ref=value.ref, parts=(value, Value(is_const=True)))

    def joined_states(self, node, parts: list) -> Value | None:
        """torch.cat of the top layer's final state of each direction: the recurrent layer with
        ``returns: last`` (what the Recurrent helper and Keras's return_sequences=False give)."""
        index = parts[0].state[0]
        entry = self.out.entries[index]
        directions = 2 if entry.args.get("bidirectional") else 1
        if [part.state for part in parts] != [(index, "layer", i) for i in range(-directions, 0)] or \
                index in self.sequences_read:
            return None
        entry.args["returns"] = "last"
        layer = lookup(entry.kind).from_args(dict(entry.args))
        shapes = tuple(self.out.shapes[self.out.entries.index(e)] if e in self.out.entries else self.out.inputs[ref]
                       for ref in entry.inputs for e in [self.entry_named(ref)])
        y = layer.output_shape(shapes)
        if tuple(y) != self.traced(node):
            return None
        self.out.shapes[index] = y
        return Value(ref=entry.name, shape=y)

    def entry_named(self, ref: str):
        return next((entry for entry in self.out.entries if entry.name == ref), None)

    def conv(self, module, x: Value):
        padding = module.padding if isinstance(module.padding, str) else _compact(module.padding)
        if padding == 0:
            padding = "valid"
        fields = {"filters": module.out_channels, "kernel": _compact(module.kernel_size),
                  "stride": _compact(module.stride), "padding": padding, "padding_mode": module.padding_mode,
                  "dilation": _compact(module.dilation), "groups": module.groups, "bias": module.bias is not None}
        if not isinstance(module.padding, str) and not _whole(x.shape, module.kernel_size, module.stride, module.padding,
                                                       module.dilation):
            fields["rounding"] = "floor"
        return "conv", fields, ""

    def pool(self, kind, x: Value, kernel, stride, padding, dilation, ceil_mode):
        rank = len(x.shape) - 1
        kernel, stride = _axes(kernel, rank), _axes(stride if stride not in (None, ()) else kernel, rank)
        padding, dilation = _axes(padding, rank), _axes(dilation, rank)
        fields = {"kernel": _compact(kernel), "stride": None if stride == kernel else _compact(stride),
                  "padding": _compact(padding)}
        if kind == "maxpool":
            fields["dilation"] = _compact(dilation)
        if not _whole(x.shape, kernel, stride, padding, dilation):
            fields["rounding"] = "ceil" if ceil_mode else "floor"
        return kind, fields, ""

    def adaptive(self, kind, x: Value, output):
        rank = len(x.shape) - 1
        sizes = _axes(output, rank)
        if any(size is None for size in sizes):
            sizes = tuple(x.shape[1 + axis] if size is None else size for axis, size in enumerate(sizes))
        return kind, {"output": _compact(sizes)}, ""

    def norm(self, kind, x: Value, normalized: tuple, fields: dict):
        if x.channels_last:
            return (kind, fields, "") if normalized == (x.shape[0],) else None
        for axes in (None, "all"):
            from ...layers.norm import normalized_shape

            try:
                if tuple(normalized_shape(x.shape, axes)) == normalized:
                    return kind, {**fields, "axes": axes}, ""
            except SpecError:
                continue
        return None

    def activation(self, kind, x: Value, module=None, **given):
        """An activation kind with its arguments, from a module or a function's keywords."""
        source = (lambda name, default: getattr(module, name, default)) if module is not None else \
            (lambda name, default: given.get(name, default))
        fields: dict = {}
        if kind == "gelu":
            fields["approximate"] = source("approximate", "none")
        elif kind == "elu":
            fields["alpha"] = float(source("alpha", 1.0))
        elif kind == "leakyrelu":
            fields["negative_slope"] = float(source("negative_slope", 0.01))
        elif kind == "softplus":
            fields.update(beta=float(source("beta", 1.0)), threshold=float(source("threshold", 20.0)))
        elif kind in ("softmax", "logsoftmax"):
            dim = source("dim", None)
            if dim is None:
                return None
            rank = len(x.shape) + 1
            fields["axis"] = (dim % rank) - 1
            if fields["axis"] < 0 or x.channels_last:
                return None
            if fields["axis"] == (len(x.shape) - 1 if isinstance(x.shape, Steps) else 0):
                del fields["axis"]  # the kind's own default: channels, or a sequence's features
        return kind, fields, ""

    def upsample(self, module, x: Value):
        scale = module.scale_factor
        if scale is None or module.mode not in ("nearest", "linear", "bilinear", "trilinear"):
            return None
        scales = _axes(scale, len(x.shape) - 1)
        if any(float(s) != int(s) for s in scales) or (module.mode != "nearest" and module.align_corners):
            return None
        return "upsample", {"scale": _compact(tuple(int(s) for s in scales)),
                            "mode": "nearest" if module.mode == "nearest" else "linear"}, ""

    def reshaped(self, x: Value, node):
        """flatten when the result is flat, else reshape to the traced shape (None: the same shape)."""
        shape = self.traced(node)
        if shape is None:
            return None
        if tuple(shape) == tuple(x.shape) and not x.channels_last:
            return None, {}, ""
        if len(shape) == 1 and len(x.shape) > 1 and not x.channels_last:
            return "flatten", {}, ""
        return "reshape", {"shape": list(shape), "sequence": len(shape) == 2 and isinstance(x.shape, Steps)}, ""

    # --- functions and methods --------------------------------------------------------------
    def function_call(self, node) -> Value:
        name = _function_name(node)
        args = [self.arg(a) for a in node.args]
        kwargs = {key: self.arg(value) for key, value in node.kwargs.items()}
        tensors = [a for a in _flat(args) if isinstance(a, Value) and not a.is_const]
        if not any(t.ref is not None or t.param is not None or t.parts or t.state or t.zeros or t.initial or t.table
                   for t in tensors):
            if tensors:
                raise _Skip  # an input already refused
            return Value(const=None, is_const=True)  # sizes and other plain values
        if name in ("size", "getattr", "dim", "_assert"):
            return Value(is_const=True)
        if name == "stochastic_depth" and _const(args[3] if len(args) > 3 else kwargs.get("training"), True) is False:
            return args[0]  # torchvision's stochastic depth drops nothing at inference
        if name == "expand" and isinstance(args[0], Value) and args[0].param is not None:
            return args[0]  # a tensor of the model over the batch (ViT's class token): a parameter layer where read
        if name == "getitem":
            return self.getitem(node, args)
        if name in ALIASES or (name == "to" and node.meta.get("tensor_meta") is not None):
            return args[0]
        if name in ("add", "iadd", "sub", "mul", "imul"):
            return self.arithmetic(node, name, args)
        if name in ("cat", "concat", "concatenate"):
            if all(isinstance(v, Value) and v.state for v in args[0]):
                joined = self.joined_states(node, list(args[0]))
                return joined if joined is not None else self.unsupported(node, "cat of recurrent states")
            parts = [self.tensor(v, node) for v in args[0]]
            if len(parts) == 1:  # torch.cat of one tensor: a copy of it (DenseNet's first layer)
                return parts[0]
            dim = _const(args[1] if len(args) > 1 else kwargs.get("dim"), 0)
            axis = dim % (len(parts[0].shape) + 1) - 1
            default = 0 if isinstance(parts[0].shape, FeatureMap) else len(parts[0].shape) - 1
            return self.add(node, "concat", {"axis": None if axis == default else axis}, parts, word="cat")
        if name == "flatten":
            start = _const(args[1] if len(args) > 1 else kwargs.get("start_dim"), 0)
            end = _const(args[2] if len(args) > 2 else kwargs.get("end_dim"), -1)
            x = self.tensor(args[0], node)
            if start == 1 and end == -1:
                return self.add(node, "flatten", {}, [x], word="flatten")
            return self.as_reshape(node, x)
        if name == "unsqueeze" and isinstance(args[0], Value) and isinstance(args[0].shape, Vector) and \
                _const(args[1] if len(args) > 1 else kwargs.get("dim"), None) == 0:
            return Value(ref=args[0].ref, shape=args[0].shape, initial=True)  # (1, N, H): a recurrent state
        if name == "expand" and isinstance(args[0], Value) and args[0].initial:
            return args[0]
        if name == "zeros_like" and isinstance(args[0], Value) and args[0].initial:
            return Value(zeros=True, shape=args[0].shape)
        if name in ("view", "reshape", "unflatten", "squeeze", "unsqueeze"):
            return self.as_reshape(node, self.tensor(args[0], node))
        if name in ("permute", "transpose", "movedim", "swapaxes"):
            return self.permuted(node, name, args, kwargs)
        if name in ("split", "chunk"):
            return self.split(node, name, args, kwargs)
        if name in FUNCTIONS:
            x = args[0]
            given = {key: _const(value, None) for key, value in kwargs.items()}
            if name in ("softmax", "log_softmax") and len(args) > 1:
                given["dim"] = _const(args[1], None)
            if name == "gelu" and "approximate" not in given:
                given["approximate"] = "none"
            mapped = self.activation(FUNCTIONS[name], self.known(x), **given)
            if mapped is None:
                return self.unsupported(node, name)
            keep = x.channels_last
            return self.add(node, mapped[0], mapped[1], [Value(ref=x.ref, shape=x.shape) if keep else
                                                          self.tensor(x, node)], word=name.rstrip("_"),
                            channels_last=keep)
        if name == "dropout" or name == "dropout2d":
            p = _const(args[1] if len(args) > 1 else kwargs.get("p"), 0.5)
            x = args[0]
            if p == 0:
                return x  # drops nothing: left out
            return self.add(node, "dropout", {"rate": p}, [self.tensor(x, node)], word="dropout")
        if name in ("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
                    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"):
            x = self.tensor(args[0], node)
            output = _const(args[1] if len(args) > 1 else kwargs.get("output_size"), None)
            kind, fields, _ = self.adaptive("adaptiveavgpool" if "avg" in name else "adaptivemaxpool", x, output)
            return self.add(node, kind, fields, [x], word=name.split("_pool")[0].replace("adaptive_", "adaptive") +
                            "pool")
        if name in ("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d"):
            return self.functional_pool(node, name, args, kwargs)
        if name == "mean":
            return self.mean(node, args, kwargs)
        if name == "layer_norm":
            return self.functional_norm(node, args, kwargs)
        if name == "linear":
            return self.functional_linear(node, args, kwargs)
        return self.unsupported(node, name)

    def known(self, value):
        if not isinstance(value, Value) or value.shape is None:
            raise _Skip
        return value

    def getitem(self, node, args) -> Value:
        container, index = args[0], _const(args[1], None)
        if container.parts and isinstance(index, int):
            if index == 0 and len(container.parts) == 2 and container.parts[1].state and node.users:
                self.sequences_read.add(container.parts[1].state[0])
            return container.parts[index]
        if container.state and isinstance(index, int):
            entry_index, what = container.state[:2]
            kind = self.out.entries[entry_index].kind
            if what == "final" and kind == "lstm":
                return Value(state=(entry_index, "h" if index == 0 else "c"))
            if (what == "final" and kind != "lstm") or what == "h":
                return Value(state=(entry_index, "layer", index - self.state_layers(entry_index)
                                    if index >= 0 else index))
        if container.state:
            return self.unsupported(node, "the final state of a recurrent layer, read otherwise than as its "
                                          "top layer's (returns: last)")
        if container.is_const or container.ref is None:
            return Value(is_const=True)
        from ...layers import REGISTRY

        if isinstance(container.shape, Steps) and isinstance(index, tuple) and len(index) == 2 and \
                index[0] == slice(None) and isinstance(index[1], int) and "select" in REGISTRY:
            return self.add(node, "select", {"index": index[1]}, [self.tensor(container, node)], word="select")
        if all(isinstance(part, slice) and part.start in (None, 0) and part.stop is None and part.step in (None, 1)
               for part in (index if isinstance(index, tuple) else (index,))):
            return container  # x[:, 0:, :]: every value (transformers' logits_to_keep=0)
        return self.unsupported(node, "getitem")

    def state_layers(self, entry_index: int) -> int:
        """layers x directions: the first axis of a recurrent layer's final state."""
        args = self.out.entries[entry_index].args
        return args.get("layers", 1) * (2 if args.get("bidirectional") else 1)

    def arithmetic(self, node, name, args) -> Value:
        a, b = args[0], args[1]
        tables = [v for v in (a, b) if isinstance(v, Value) and v.table]
        if name in ("add", "iadd") and len(tables) == 1:
            from .hf import positions

            return positions(self, node, tables[0].table, b if a is tables[0] else a)
        params = [v for v in (a, b) if isinstance(v, Value) and v.param is not None]
        if name in ("mul", "imul") and len(params) == 1:
            other = b if a is params[0] else a
            return self.scaled(node, params[0], self.tensor(other, node))
        if any(isinstance(v, Value) and v.is_const for v in (a, b)):
            return self.unsupported(node, f"{name} of a tensor and a constant")
        kind = {"add": "add", "iadd": "add", "sub": "subtract", "mul": "multiply", "imul": "multiply"}[name]
        if a.channels_last and b.channels_last:  # two channels-last maps (Swin's residuals): the result is one too
            return self.add(node, kind, {}, [Value(ref=v.ref, shape=v.shape) for v in (a, b)], word=kind,
                            channels_last=True)
        return self.add(node, kind, {}, [self.tensor(a, node), self.tensor(b, node)], word=kind)

    def scaled(self, node, param: Value, x: Value) -> Value:
        """weight * x with one learned factor per channel: scale (ConvNeXt's layer scale)."""
        weight = self.params[param.param]
        channels = x.shape[-1] if isinstance(x.shape, (Steps, Vector)) else x.shape[0]
        wanted = (channels,) if isinstance(x.shape, (Steps, Vector)) else (channels, *[1] * (len(x.shape) - 1))
        if tuple(weight.shape) != wanted or not weight.requires_grad:
            return self.unsupported(node, "mul by a tensor of the model")
        return self.add(node, "scale", {"init": 1.0}, [x], word="scale", tensors=(param.param,), name=param.param)

    def parameter(self, value: Value, node) -> Value:
        """A tensor of the model read as a value (a position embedding added): a parameter layer."""
        tensor = self.params[value.param]
        if tensor.dim() < 2 or tensor.shape[0] != 1:
            raise _Unsupported(value.param, "a tensor of the model used as a value")
        sizes = tuple(tensor.shape[1:])
        shape = {"steps": sizes[0], "features": sizes[1]} if len(sizes) == 2 else list(sizes)
        name = self.unique(value.param)
        entry = Entry("parameter", {"shape": shape}, name, (), self.scope(node))
        layer = lookup("parameter").from_args({"shape": shape})
        self.record(entry, layer.output_shape(()), (value.param,))
        return Value(ref=name, shape=self.out.shapes[-1])

    def as_reshape(self, node, x: Value) -> Value:
        shape = self.traced(node)
        if tuple(shape) == tuple(x.shape):
            return x
        if len(shape) == 1 and len(x.shape) > 1:
            return self.add(node, "flatten", {}, [x], word="flatten")
        fields = {"shape": list(shape)}
        return self.add(node, "reshape", fields, [x], word="reshape")

    def permuted(self, node, name, args, kwargs) -> Value:
        x = args[0]
        self.known(x)
        rank = len(x.shape) + 1  # with the batch
        if name == "permute":
            dims = [_const(d, None) for d in (args[1:] if len(args) > 2 or not isinstance(args[1], (list, tuple))
                                               else args[1])]
        else:
            first = _const(args[1] if len(args) > 1 else kwargs.get("dim0", kwargs.get("source")), None)
            second = _const(args[2] if len(args) > 2 else kwargs.get("dim1", kwargs.get("destination")), None)
            dims = list(range(rank))
            first, second = first % rank, second % rank
            if name == "movedim":
                dims.remove(first)
                dims.insert(second, first)
            else:
                dims[first], dims[second] = dims[second], dims[first]
        dims = [d % rank for d in dims]
        if dims[0] != 0:
            return self.unsupported(node, f"{name} of the batch axis")
        per_sample = [d - 1 for d in dims[1:]]
        spatial = len(x.shape) - 1
        to_last = [*range(1, spatial + 1), 0]
        if isinstance(x.shape, FeatureMap) and spatial >= 1:
            if not x.channels_last and per_sample == to_last:
                return Value(ref=x.ref, shape=x.shape, channels_last=True)
            if x.channels_last and per_sample == [spatial, *range(spatial)]:
                return Value(ref=x.ref, shape=x.shape)
        x = self.tensor(x, node)
        traced = self.traced(node)
        sequence = len(traced) == 2 and not isinstance(x.shape, Vector) and \
            (isinstance(x.shape, Steps) or self.sequence_follows(node))
        return self.add(node, "permute", {"dims": per_sample, "sequence": sequence}, [x], word="permute")

    def sequence_follows(self, node) -> bool:
        """A [C, L] map transposed to [L, C] reads as a sequence of L steps (ViT's patches) when a
        layer over the last axis follows."""
        return any(user.op == "call_module" and type(self.modules[user.target]).__name__ in
                   ("Linear", "LayerNorm", "Dropout", "MultiheadAttention") for user in node.users) or \
            any(_function_name(user) in ("cat", "add") for user in node.users)

    def split(self, node, name, args, kwargs) -> Value:
        x = self.tensor(args[0], node)
        dim = _const(args[2] if len(args) > 2 else kwargs.get("dim"), 0)
        axis = dim % (len(x.shape) + 1) - 1
        metas = node.meta.get("tensor_meta")
        sizes = [int(meta.shape[dim]) for meta in metas]
        if name == "chunk":
            fields = {"chunks": _const(args[1] if len(args) > 1 else kwargs.get("chunks"), None), "axis": axis}
        else:
            fields = {"sizes": sizes, "axis": axis}
        value = self.add(node, name, fields, [x], word=name, count=len(sizes))
        if value.phantom or value.ref is None:  # after a refused operation: its parts as traced
            return Value(phantom=True, parts=tuple(Value(ref="<refused>", shape=shape_of(tuple(int(d) for d in
                                                                                                meta.shape[1:])),
                                                         phantom=True) for meta in metas))
        return Value(ref=value.ref, parts=tuple(Value(ref=f"{value.ref}.{i}", shape=shape)
                                                for i, shape in enumerate(self.out.shapes[-1])))

    def functional_pool(self, node, name, args, kwargs) -> Value:
        x = self.tensor(args[0], node)
        names = ["kernel_size", "stride", "padding", "dilation", "ceil_mode"] if name.startswith("max") else \
            ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"]
        given = {key: _const(args[i + 1], None) for i, key in enumerate(names) if i + 1 < len(args)}
        given.update({key: _const(value, None) for key, value in kwargs.items()})
        if given.get("return_indices") or given.get("divisor_override") or \
                (given.get("count_include_pad") is False and _any(given.get("padding", 0))):
            return self.unsupported(node, name)
        kind = "maxpool" if name.startswith("max") else "avgpool"
        kind, fields, _ = self.pool(kind, x, given["kernel_size"], given.get("stride"), given.get("padding", 0),
                                    given.get("dilation", 1), bool(given.get("ceil_mode", False)))
        return self.add(node, kind, fields, [x], word=kind)

    def mean(self, node, args, kwargs) -> Value:
        x = self.tensor(args[0], node)
        dims = _const(args[1] if len(args) > 1 else kwargs.get("dim"), None)
        keep = _const(args[2] if len(args) > 2 else kwargs.get("keepdim"), False)
        rank = len(x.shape) + 1
        dims = sorted(d % rank for d in ([dims] if isinstance(dims, int) else dims or []))
        if isinstance(x.shape, Steps) and len(x.shape) == 2 and dims == [1] and not keep:
            return self.add(node, "mean", {}, [x], word="mean")  # the mean of a sequence's steps
        if not isinstance(x.shape, FeatureMap) or dims != list(range(2, rank)):
            return self.unsupported(node, "mean")
        if keep:
            return self.add(node, "adaptiveavgpool", {"output": 1}, [x], word="mean")
        return self.add(node, "globalavgpool", {}, [x], word="mean")

    def functional_norm(self, node, args, kwargs) -> Value:
        x = self.known(args[0])
        normalized = tuple(_const(args[1] if len(args) > 1 else kwargs.get("normalized_shape"), ()))
        weight = args[2] if len(args) > 2 else kwargs.get("weight")
        bias = args[3] if len(args) > 3 else kwargs.get("bias")
        eps = _const(args[4] if len(args) > 4 else kwargs.get("eps"), 1e-5)
        affine = isinstance(weight, Value) and weight.param is not None
        if affine != (isinstance(bias, Value) and bias.param is not None):
            return self.unsupported(node, "layer_norm with a weight and no bias")
        mapped = self.norm("layernorm", x, normalized, {"eps": eps, "affine": affine})
        if mapped is None:
            return self.unsupported(node, "layer_norm")
        keep = x.channels_last
        fields = {**mapped[1], **({"axes": "channels"} if keep else {})}
        tensors = (weight.param, bias.param) if affine else ()
        return self.add(node, "layernorm", fields, [Value(ref=x.ref, shape=x.shape) if keep else self.tensor(x, node)],
                        word="layer_norm", tensors=tensors, channels_last=keep)

    def functional_linear(self, node, args, kwargs) -> Value:
        x = self.known(args[0])
        weight = args[1]
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        if weight.param is None:
            return self.unsupported(node, "linear with a computed weight")
        units = int(self.params[weight.param].shape[0])
        has_bias = isinstance(bias, Value) and bias.param is not None
        keep = x.channels_last
        fields = {"units": units, "bias": has_bias, **({"axes": "channels"} if keep else {})}
        tensors = (weight.param, bias.param) if has_bias else (weight.param,)
        return self.add(node, "dense", fields, [Value(ref=x.ref, shape=x.shape) if keep else self.tensor(x, node)],
                        word="linear", tensors=tensors, channels_last=keep)

    # --- recording ----------------------------------------------------------------------
    def traced(self, node) -> tuple | None:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            return None
        shape = tuple(int(d) for d in meta.shape)
        if not shape or shape[0] != TRACE_BATCH:
            raise _Unsupported(_where(node), f"{_function_name(node)} over the batch axis (shape {list(shape)})")
        return shape[1:]

    def scope(self, node) -> tuple:
        stack = node.meta.get("nn_module_stack") or {}
        scope = []
        for path, cls in stack.values():
            if node.op == "call_module" and path == node.target:
                continue
            if path:
                scope.append((path, getattr(cls, "__name__", str(cls))))
        return tuple(scope)

    def add(self, node, kind, fields, inputs, *, name=None, word=None, tensors=(), note="", shares=None,
            channels_last=False, check=True, count=1) -> Value:
        """One layer for an fx node, named after its module path (or the module it runs in and
        ``word``), checked against the node's traced shape."""
        if any(value.phantom for value in inputs):
            return self.phantom(node)
        scope = self.scope(node)
        if name is None and scope and not any(True for _ in self.modules[scope[-1][0]].children()):
            name, scope = scope[-1][0], scope[:-1]  # a module of its own that is this one operation (Add)
        elif name is None:
            name = scope[-1][0] + "." + word if scope else word
        wanted = None
        if check:
            traced = node.meta.get("tensor_meta")
            several = isinstance(traced, (list, tuple)) and not hasattr(traced, "shape")  # a split's tuple
            wanted = [tuple(int(d) for d in meta.shape[1:]) for meta in traced] if several else self.traced(node)
        return self.emit(kind, fields, inputs, name=name, scope=scope, wanted=wanted, where=_where(node),
                         what=_function_name(node), tensors=tensors, note=note, shares=shares,
                         channels_last=channels_last, count=count)

    def unsupported(self, node, what: str) -> Value:
        raise _Unsupported(_where(node), _described(node, what))


def recurrent_fields(cell) -> tuple:
    """(kind, fields) of an nn.RNN/LSTM/GRU; its second bias vectors made buffers is ``bias: single``."""
    from torch import nn

    kind = {nn.RNN: "rnn", nn.LSTM: "lstm", nn.GRU: "gru"}[type(cell)]
    own = dict(cell.named_parameters())
    bias = False if not cell.bias else True if "bias_hh_l0" in own else "single"
    fields = {"hidden": cell.hidden_size, "layers": cell.num_layers, "bidirectional": cell.bidirectional, "bias": bias}
    if kind == "rnn":
        fields["nonlinearity"] = cell.nonlinearity
    return kind, fields


def _attribute(kind: str) -> bool:
    """Whether ``kind`` may be a conv's or dense layer's ``activation:``."""
    return getattr(lookup(kind), "as_attribute", False)


def _non_default(entry: Entry) -> bool:
    """Arguments of an activation other than its defaults (an activation: attribute has none)."""
    fields = lookup(entry.kind).spec_fields
    return any(key in fields and fields[key].default != value for key, value in entry.args.items())


CHANNELWISE = frozenset({"dense", "layernorm", "rmsnorm", "relu", "gelu", "silu", "tanh", "sigmoid", "relu6",
                         "hardswish", "hardsigmoid", "mish", "elu", "leakyrelu", "softplus", "dropout", "abs"})


class _Skip(Exception):
    """An operation on a value already refused: nothing more to say about it."""


class _Unsupported(Exception):
    def __init__(self, where: str, what: str):
        super().__init__(what)
        self.where, self.what = where, what


def _where(node) -> str:
    """The module path an operation ran in ('layer1.0'), 'forward' for the model's own."""
    if node.op == "call_module":
        return node.target
    stack = node.meta.get("nn_module_stack") or {}
    paths = [path for path, _ in stack.values() if path]
    return paths[-1] if paths else "forward"


def _described(node, what: str) -> str:
    """'torch.roll', 'Tensor.mul of a tensor and a constant', 'nn.LSTM': the operation as PyTorch names it."""
    if node.op == "call_module":
        return what if what.startswith("nn.") or " " in what else f"nn.{what}"
    name = _function_name(node)
    if node.op == "call_method":
        qualified = f"Tensor.{name}"
    else:
        module = getattr(node.target, "__module__", None) or ""
        qualified = {"_operator": "operator", "torch._C._nn": "torch.nn.functional",
                     "torch._C._VariableFunctions": "torch"}.get(module, module)
        qualified = f"{qualified}.{name}" if qualified else name
    return qualified + what[len(name):] if what.startswith(name) else f"{qualified}: {what}"


def _function_name(node) -> str:
    if node.op == "call_module":
        return node.target
    target = node.target
    if isinstance(target, str):
        return target
    name = getattr(target, "__name__", str(target))
    if target in (operator.add, operator.iadd, operator.mul, operator.imul, operator.sub, operator.truediv,
                  operator.getitem, operator.floordiv):
        return name.strip("_")
    return name


def _flat(values):
    if isinstance(values, (list, tuple)):
        for item in values:
            yield from _flat(item)
    elif isinstance(values, dict):
        for item in values.values():
            yield from _flat(item)
    else:
        yield values


def _const(value, default):
    if value is None:
        return default
    if isinstance(value, Value):
        if not value.is_const:
            raise _Unsupported("", "a size computed from a tensor")
        return default if value.const is None else value.const
    if isinstance(value, (list, tuple)):
        return type(value)(_const(item, None) for item in value)
    return value


def _compact(values):
    if isinstance(values, (list, tuple)):
        values = tuple(values)
        return values[0] if len(set(values)) == 1 else list(values)
    return values


def _axes(value, rank: int) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(value) if len(value) == rank else tuple(value) * rank if len(value) == 1 else tuple(value)
    return (value,) * rank


def _any(value) -> bool:
    return any(_axes(value, 1)) if isinstance(value, (list, tuple)) else bool(value)


def _whole(shape, kernel, stride, padding, dilation) -> bool:
    """Every window tiles the padded input: (D + 2P - dilation*(F-1) - 1) % S == 0 per axis."""
    rank = len(shape) - 1
    kernel, stride, padding, dilation = (_axes(v, rank) for v in (kernel, stride, padding, dilation))
    return all((size + 2 * p - d * (k - 1) - 1) % s == 0
               for size, k, s, p, d in zip(shape[1:], kernel, stride, padding, dilation))


def nearest_kinds(what: str) -> tuple:
    word = what.split(" ")[0].rsplit(".", 1)[-1]
    if word in NEAREST:
        return NEAREST[word]
    return tuple(difflib.get_close_matches(word.lower(), list(REGISTRY), n=3, cutoff=0.5))


