"""Adversarial specs, from a seed: networks whose names and numbers are chosen to break things.

Independent of the differential tests' and the fuzz tests' generators (tests/test_differential.py,
tests/test_fuzz.py: hypothesis strategies over the layer table's rows): plain ``random.Random``
from a seed, a shape tracker of its own that knows which kinds read which layouts, and other
distributions:
- names drawn from hostile character classes (control characters, bidi overrides, NUL, newlines,
  rich markup and links, DOT syntax, backslashes, markdown, Python keywords and builtins,
  nn.Module attributes, name-mangled ``__w``, NFKC-equal pairs, 2,000-character names, literal
  ``$``, spreadsheet formulas), on layers, the network, its inputs, repeats and block instances;
- numbers at the edges (0, 1, 2^31, 2^63-1, 2^63, nan, infinity) for some argument of some specs;
- every kind of the registry with valid arguments, and now and then invalid ones (a wrong type,
  a number out of range, an unknown key, a misspelt kind); a kind this module does not know yet
  gets its defaults or an edge value for each required field;
- branches (add, multiply with a broadcast gate, subtract, concat), blocks, repeats, shares,
  frozen tensors, spec parameters and expressions, several inputs and outputs.

``case(seed)`` is deterministic: the same seed gives the same spec on every machine.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

import yaml

from archcalc.layers import ALIASES, REGISTRY

LARGEST = 2**63 - 1

# --- names ----------------------------------------------------------------------------------------

HOSTILE_NAMES = {
    "control": ["\x1b[31mred\x1b[0m", "bell\x07", "tab\there", "cr\rlf", "del\x7f", "c1\x85\x9b", "\x1b]8;;http://x\x1b\\l"],
    "newline": ["two\nlines", "ends\n", "\nstarts", "crlf\r\n", "ls\u2028ps\u2029"],
    "bidi": ["\u202egnp.exe", "\u2066iso\u2069", "\u200fmark", "\u061carabic", "abc\u202d"],
    "nul": ["a\x00b", "\x00", "nul\x00"],
    "rich": ["[/oops]", "[link=file:///etc/passwd]click[/link]", "[bold red]loud", ":smile:", "[/]", "[[x]]"],
    "dot": ['<x> { injected [image="/etc/passwd"] } digraph <y>', "}", "a\\", '"quoted"', "-> b", "<b>x</b>",
            "graph { }", "label=<x>"],
    "backslash": ["\\", "a\\nb", "\\\\", "c:\\temp\\", "\\x1b"],
    "keyword": ["class", "None", "def", "lambda", "import", "return", "True", "async", "match", "_"],
    "builtin": ["print", "input", "max", "len", "object", "type", "id", "super", "exec", "__import__"],
    "module": ["training", "_modules", "_parameters", "_buffers", "forward", "to", "eval", "state_dict", "cuda",
               "__init__", "__class__", "__dict__", "self", "x", "torch", "nn", "F", "Add", "Concat", "preset",
               "register_buffer", "_forward_hooks", "T_destination", "dump_patches", "call_super_init"],
    "mangled": ["__w", "__x__", "___", "__", "_private", "__init"],
    "nfkc": ["ﬁlter", "filter", "Ⅸ", "IX", "ｆｕｌｌ", "full", "a²", "a2", "ℌ", "H", "㎏", "kg"],
    "unicode": ["π", "数据", "שלום", "😀", "e\u0301", "zero\u200bwidth", "Ωmega", "ǅ", "İ", "ß"],
    "markdown": ["|a|b|", "**bold**", "`code`", "# head", "&amp;", "~~s~~", "_i_", "[t](http://x)", "a:b"],
    "dollar": ["cost $x", "$$", "a$b", "$ 1", "price: $5", "$x * 2"],
    "path": ["../../etc/passwd", "/tmp/x", "a/b", "a.b", "..", "C:\\x"],
    "archcalc": ["input", "in", "conv1", "relu1", "fc1", "total", "output", "repeat", "layers", "block1.conv1"],
    "space": [" ", " lead", "trail ", "a  b", "\u00a0nbsp", "\u3000"],
    "quote": ["'", '"', "it's", '"""', "'''", "#comment", "%s", "{0}", "{x}"],
    "formula": ["=1+1", "=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@SUM(A1)", '=HYPERLINK("http://x","y")',
                "\t=1", "\r=1", "-", "-3x-3", "=", "@"],
}


def long_name(rng: random.Random) -> str:
    alphabet = "abcxyz_0123456789ﬁ²€\\[]<>{}$ \n\x1b\u202e😀"
    return "".join(rng.choice(alphabet) for _ in range(rng.choice([200, 1000, 2000, 5000])))


def hostile_name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.08:
        return long_name(rng)
    if roll < 0.3:  # pieces of two classes
        first, second = (rng.choice(HOSTILE_NAMES[key]) for key in rng.sample(sorted(HOSTILE_NAMES), 2))
        return first + rng.choice(["", "_", " ", "."]) + second
    return rng.choice(HOSTILE_NAMES[rng.choice(sorted(HOSTILE_NAMES))])


# --- numbers at the edges -------------------------------------------------------------------------

EDGE_NUMBERS = [0, 1, -1, 2**31, 2**31 - 1, 10**6, 10**12, LARGEST, LARGEST + 1, 10**30, 0.5, 1e-300,
                float("nan"), float("inf"), -float("inf"), 1.5]
WRONG_VALUES = [True, False, None, "", "abc", "same", [], [1, 2, 3, 4], {}, {"a": 1}, "$nowhere", "$x +", "1e3",
                "0x10", [0], [-1], ["a"]]


# --- shapes the generator tracks ------------------------------------------------------------------

@dataclass(frozen=True)
class State:
    """What flows between layers: a feature map [C, sizes...] (no sizes: a flat vector),
    a sequence [T, F], or token ids [T]."""

    layout: str                 # "map", "seq" or "ids"
    channels: int = 0           # C, or F for a sequence
    sizes: tuple = ()           # spatial sizes (map) or (T,) (seq, ids)

    @property
    def rank(self) -> int:
        return len(self.sizes) if self.layout == "map" else 0

    def map(self, channels=None, sizes=None) -> State:
        return State("map", self.channels if channels is None else channels,
                     self.sizes if sizes is None else tuple(sizes))


@dataclass
class Builder:
    rng: random.Random
    invalid: bool
    names: set = field(default_factory=set)
    history: list = field(default_factory=list)   # (name or None, State) of every layer, in order
    params: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)
    params_twice: int = 0
    counter: int = 0

    def name(self, force: bool = False) -> str | None:
        """A unique name for a layer: hostile most of the time, plain otherwise; None (an automatic
        name) for about half the layers."""
        if not force and self.rng.random() < 0.5:
            return None
        for _ in range(20):
            self.counter += 1
            candidate = hostile_name(self.rng) if self.rng.random() < 0.7 else f"layer{self.counter}"
            if candidate not in self.names:
                self.names.add(candidate)
                return candidate
        self.counter += 1
        return f"unique{self.counter}"

    def small(self, low=1, high=8) -> int:
        return self.rng.randint(low, high)


def entry(kind: str, args: dict | None, name: str | None, **common) -> object:
    """A layers: item: a bare kind, or {kind: arguments}."""
    args = dict(args or {})
    if name is not None:
        args["name"] = name
    args.update({key: value for key, value in common.items() if value is not None})
    return {kind: args} if args else kind


# --- one generator per family of kinds: (entry, next state) or None when it does not apply -------

ELEMENTWISE = ["relu", "tanh", "sigmoid", "silu", "swish", "hardswish", "hardsigmoid", "relu6", "mish", "abs"]


def activation_layer(b: Builder, s: State):
    if s.layout == "ids":
        return None
    rng = b.rng
    kind = rng.choice(ELEMENTWISE + ["gelu", "elu", "leakyrelu", "softplus", "softmax", "logsoftmax", "log_softmax",
                                     "prelu"])
    args: dict = {}
    if kind == "gelu":
        args = {"approximate": rng.choice(["none", "tanh"])} if rng.random() < 0.5 else {}
    elif kind == "elu":
        args = {"alpha": rng.choice([1.0, 0.1, 2, 0])}
    elif kind == "leakyrelu":
        args = {"negative_slope": rng.choice([0.01, 0.2, 0, 1, -0.5])}
    elif kind == "softplus":
        args = {"beta": rng.choice([1, 0.5, 2]), "threshold": rng.choice([20, 1, 0.5])}
    elif kind in ("softmax", "logsoftmax", "log_softmax") and rng.random() < 0.4:
        args = {"axis": rng.randrange(0, 1 + (len(s.sizes) if s.layout == "map" else 1))}
    elif kind == "prelu":
        if s.layout != "map":
            args = {"num_parameters": 1}
        else:
            args = {"num_parameters": rng.choice([1, s.channels]), "init": rng.choice([0.25, 0, 1])}
    return entry(kind, args, b.name()), s


def conv_layer(b: Builder, s: State):
    if s.layout != "map" or s.rank == 0:
        return None
    rng = b.rng
    kind = rng.choice(["conv", "conv", f"conv{s.rank}d"]) if s.rank <= 3 else "conv"
    groups = rng.choice([1, 1, 1] + [g for g in (2, 3, 4) if s.channels % g == 0])
    filters = groups * b.small(1, 4)
    if rng.random() < 0.3:  # depthwise
        groups, filters = s.channels, s.channels * rng.choice([1, 2])
    dilation = rng.choice([1, 1, 1, 2])
    kernels = [rng.randint(1, max(1, min(5, (d - 1) // dilation + 1))) for d in s.sizes]
    stride = rng.choice([1, 1, 2])
    args: dict = {"filters": filters, "kernel": kernels if rng.random() < 0.5 else kernels[0]}
    if isinstance(args["kernel"], int) and any((d - 1) // dilation + 1 < args["kernel"] for d in s.sizes):
        args["kernel"] = kernels
    if stride != 1:
        args["stride"] = stride
    if dilation != 1:
        args["dilation"] = dilation
    if groups != 1:
        args["groups"] = groups
    padding = rng.choice(["valid", "same", 0, 1, "same"])
    if padding == "same" and stride > 1 and rng.random() < 0.5:
        padding = 1
    if padding != "valid":
        args["padding"] = padding
    if padding not in ("valid", 0) and rng.random() < 0.3:
        args["padding_mode"] = rng.choice(["zeros", "reflect", "replicate", "circular"])
    args["rounding"] = "floor"
    if rng.random() < 0.3:
        args["activation"] = rng.choice(["relu", "tanh", "sigmoid", "gelu", "silu"])
    if rng.random() < 0.2:
        args["bias"] = False
    kernel_list = args["kernel"] if isinstance(args["kernel"], list) else [args["kernel"]] * s.rank
    count = filters * (s.channels // groups)
    for k in kernel_list:
        count *= k
    if rng.random() < 0.1 and count <= 64:  # explicit weights, flat or with a bias list
        args["weights"] = [round(rng.uniform(-1, 1), 3) for _ in range(count)]
        args["bias"] = False if rng.random() < 0.5 else [round(rng.uniform(-1, 1), 2) for _ in range(filters)]
    sizes = []
    for d, k in zip(s.sizes, kernel_list):
        effective = dilation * (k - 1) + 1
        pad = {"valid": 0, 0: 0, 1: 1}.get(padding)
        if padding == "same":
            sizes.append(-(-d // stride))
        else:
            sizes.append((d + 2 * pad - effective) // stride + 1)
    if min(sizes) < 1:
        return None
    return entry(kind, args, b.name()), s.map(filters, sizes)


def dense_layer(b: Builder, s: State):
    if s.layout == "ids" or (s.layout == "map" and s.rank > 0):
        return None
    rng = b.rng
    units = rng.choice([1, 2, 3, 5, 8, 10, 16])
    kind = rng.choice(["dense", "dense", "fc", "linear"])
    args: dict = {"units": units}
    if rng.random() < 0.3:
        args["activation"] = rng.choice(["relu", "softmax", "tanh", "sigmoid", "leakyrelu", "elu", "gelu"])
    if rng.random() < 0.2:
        args["bias"] = False
    if rng.random() < 0.1 and units * s.channels <= 64:
        args["weights"] = [[round(rng.uniform(-2, 2), 2) for _ in range(s.channels)] for _ in range(units)]
        args["bias"] = [0.5] * units if rng.random() < 0.5 else False
    shorthand = rng.random() < 0.2 and set(args) == {"units"}
    layer = {kind: units} if shorthand else entry(kind, args, b.name())
    if shorthand and (name := b.name()) is not None:
        layer = entry(kind, args, name)
    return layer, (State("seq", units, s.sizes) if s.layout == "seq" else State("map", units))


def flatten_layer(b: Builder, s: State):
    if s.layout != "map" or s.rank == 0:
        return None
    total = s.channels
    for d in s.sizes:
        total *= d
    return entry("flatten", None, b.name()), State("map", total)


def dropout_layer(b: Builder, s: State):
    if s.layout == "ids":
        return None
    rate = b.rng.choice([0.5, 0, 0.1, 0.99, 0.999999])
    return (entry("dropout", {"rate": rate}, b.name()) if b.rng.random() < 0.6 else {"dropout": rate}), s


def scale_layer(b: Builder, s: State):
    if s.layout == "ids":
        return None
    return entry("scale", {"init": b.rng.choice([1.0, 1e-6, 0, -2])} if b.rng.random() < 0.5 else None, b.name()), s


def norm_layer(b: Builder, s: State):
    rng = b.rng
    if s.layout == "ids":
        return None
    kinds = ["batchnorm", "layernorm", "lrn", "groupnorm", "instancenorm", "rmsnorm"] if s.layout == "map" \
        else ["layernorm", "rmsnorm"]
    kind = rng.choice(kinds)
    if kind in ("lrn", "instancenorm", "groupnorm") and s.rank == 0:
        kind = "batchnorm"
    args: dict = {}
    if kind == "batchnorm" and rng.random() < 0.4:
        args = {"eps": rng.choice([1e-5, 1e-3, 0.1]), "momentum": rng.choice([0.1, 0.01, 0.9]),
                "affine": rng.choice([True, False])}
    elif kind in ("layernorm", "rmsnorm") and rng.random() < 0.4:
        args = {"eps": 1e-6, "affine": rng.choice([True, False])}
        if s.layout == "map" and rng.random() < 0.5:
            args["axes"] = rng.choice(["channels", "all"])
    elif kind == "lrn":
        args = {"size": rng.choice([1, 2, 3, 5]), "alpha": 1e-4, "beta": 0.75, "k": rng.choice([1, 2])}
    elif kind == "groupnorm":
        args = {"groups": rng.choice([g for g in (1, 2, 3, 4, s.channels) if s.channels % g == 0])}
    elif kind == "instancenorm" and rng.random() < 0.5:
        args = {"affine": rng.choice([True, False]), "track_running_stats": rng.choice([True, False])}
    return entry(kind, args, b.name()), s


def pool_layer(b: Builder, s: State):
    if s.layout != "map" or s.rank == 0:
        return None
    rng = b.rng
    kind = rng.choice(["maxpool", "avgpool"])
    kernel = rng.randint(1, max(1, min(4, min(s.sizes))))
    stride = rng.choice([None, 1, 2, kernel])
    padding = rng.randint(0, kernel // 2)
    rounding = rng.choice(["floor", "ceil"])
    if kind == "avgpool" and s.rank == 3:
        rounding = "floor"  # AvgPool3d refuses any window wider than its input
    args: dict = {"kernel": kernel, "rounding": rounding}
    if stride is not None:
        args["stride"] = stride
    if padding:
        args["padding"] = padding
    step = stride or kernel
    sizes = []
    for d in s.sizes:
        span = d + 2 * padding - kernel
        if span < 0:
            return None
        out = (-(-span // step) if rounding == "ceil" else span // step) + 1
        if rounding == "ceil" and (out - 1) * step >= d + padding:
            out -= 1
        sizes.append(out)
    return entry(kind, args, b.name()), s.map(sizes=sizes)


def global_pool_layer(b: Builder, s: State):
    if s.layout != "map" or s.rank == 0:
        return None
    rng = b.rng
    if rng.random() < 0.5:
        return entry(rng.choice(["globalavgpool", "globalmaxpool"]), None, b.name()), State("map", s.channels)
    output = [rng.randint(1, d) for d in s.sizes]
    kind = rng.choice(["adaptiveavgpool", "adaptivemaxpool"])
    value = output if rng.random() < 0.5 or len(set(output)) > 1 else output[0]
    layer = entry(kind, {"output": value}, b.name()) if rng.random() < 0.7 else {kind: value}
    return layer, s.map(sizes=output)


def transpose_layer(b: Builder, s: State):
    if s.layout != "map" or s.rank == 0 or max(s.sizes) > 64:
        return None
    rng = b.rng
    kernel, stride = rng.randint(1, 4), rng.choice([1, 2])
    padding = rng.randint(0, kernel // 2)
    output_padding = rng.randint(0, stride - 1)
    filters = b.small(1, 6)
    args = {"filters": filters, "kernel": kernel, "stride": stride, "padding": padding,
            "output_padding": output_padding}
    sizes = [(d - 1) * stride - 2 * padding + kernel + output_padding for d in s.sizes]
    if min(sizes) < 1:
        return None
    return entry(rng.choice(["convtranspose", "upconv"]), args, b.name()), s.map(filters, sizes)


def upsample_layer(b: Builder, s: State):
    if s.layout != "map" or s.rank == 0 or max(s.sizes) > 32:
        return None
    scale = b.rng.choice([1, 2, 3])
    args = {"scale": scale, "mode": b.rng.choice(["nearest", "linear"])}
    return entry("upsample", args, b.name()), s.map(sizes=[d * scale for d in s.sizes])


def recurrent_layer(b: Builder, s: State):
    if s.layout != "seq":
        return None
    rng = b.rng
    kind = rng.choice(["rnn", "lstm", "gru"])
    hidden = b.small(1, 12)
    args: dict = {"hidden": hidden}
    if rng.random() < 0.4:
        args["layers"] = rng.choice([1, 2, 3])
    if rng.random() < 0.4:
        args["bidirectional"] = True
    if rng.random() < 0.4:
        args["bias"] = rng.choice([True, False, "single"]) if kind == "rnn" else rng.choice([True, False])
    if kind == "rnn" and rng.random() < 0.3:
        args["nonlinearity"] = rng.choice(["tanh", "relu"])
    returns = rng.choice(["sequence", "sequence", "last"])
    if returns == "last":
        args["returns"] = "last"
    width = hidden * (2 if args.get("bidirectional") else 1)
    return entry(kind, args, b.name()), (State("map", width) if returns == "last" else State("seq", width, s.sizes))


def repeatvector_layer(b: Builder, s: State):
    if s.layout != "map" or s.rank != 0:
        return None
    steps = b.small(1, 6)
    return entry("repeatvector", {"steps": steps}, b.name()), State("seq", s.channels, (steps,))


def embedding_layer(b: Builder, s: State):
    if s.layout != "ids":
        return None
    dim = b.small(1, 8)
    return entry("embedding", {"vocabulary": b.rng.choice([1, 2, 10, 100]), "dim": dim}, b.name()), \
        State("seq", dim, s.sizes)


def reader(b: Builder, s: State, same: bool):
    """An earlier layer (by name) whose output has the current shape (same) or the current
    spatial sizes; None when there is none."""
    matches = [name for name, state in b.history[:-1] if name is not None and
               (state == s if same else (state.layout == "map" and state.sizes == s.sizes and s.layout == "map"))]
    return b.rng.choice(matches) if matches else None


def merge_layer(b: Builder, s: State):
    """add / multiply / subtract / concat with an earlier layer; the current layer is named first so
    that it can be read."""
    rng = b.rng
    if not b.history or b.history[-1][0] is None or s.layout == "ids":
        return None
    current = b.history[-1][0]
    kind = rng.choice(["add", "multiply", "mul", "subtract", "sub", "concat"])
    if kind == "concat":
        other = reader(b, s, same=False)
        if other is None:
            return None
        width = dict((name, state) for name, state in b.history if name is not None)[other].channels
        return entry("concat", {"inputs": [current, other]}, b.name()), s.map(s.channels + width)
    other = reader(b, s, same=True)
    if other is None:
        return None
    inputs = [current, other] if rng.random() < 0.5 else [other, current]
    if kind in ("add", "multiply", "mul") and rng.random() < 0.3:
        inputs.append(current)
    return entry(kind, {"inputs": inputs}, b.name()), s


def gate_layers(b: Builder, s: State):
    """Squeeze-excitation: a [C, 1, ...] gate multiplied into the map (a broadcast)."""
    if s.layout != "map" or s.rank == 0 or not b.history or b.history[-1][0] is None:
        return None
    source = b.history[-1][0]
    gate = b.name(force=True)
    squeeze = max(1, s.channels // 2)
    layers = [{"adaptiveavgpool": {"output": 1, "inputs": [source]}},
              {"conv": {"filters": squeeze, "kernel": 1, "activation": "relu"}},
              {"conv": {"filters": s.channels, "kernel": 1, "activation": "sigmoid", "name": gate}},
              entry(b.rng.choice(["multiply", "mul"]), {"inputs": [source, gate]}, b.name())]
    return layers, s


def huge_layer(b: Builder, s: State):
    """A valid layer whose numbers are at the edge: 2^31 to 2^63-1 units, filters, steps or tokens
    (the static figures stay exact; run and export must refuse what PyTorch cannot hold, cleanly)."""
    rng = b.rng
    big = rng.choice([2**31, 10**12, 2**40, 2**61, LARGEST])
    if s.layout == "map" and s.rank == 0:
        kind, args, after = rng.choice([("dense", {"units": big}, State("map", big)),
                                        ("repeatvector", {"steps": big}, State("seq", s.channels, (big,)))])
    elif s.layout == "map":
        kind, args, after = "conv", {"filters": big, "kernel": 1}, s.map(channels=big)
    elif s.layout == "ids":
        kind, args, after = "embedding", {"vocabulary": big, "dim": rng.choice([1, 2])}, None
    else:
        kind, args, after = rng.choice(["rnn", "gru"]), {"hidden": big}, None
    return entry(kind, args, b.name()), after


def parameter_layers(b: Builder, s: State):
    """A learned tensor (``parameter``, reads no input) added to or multiplied into the current
    layer: a position embedding, or a per-channel gain broadcast over the map."""
    if s.layout == "ids" or not b.history or b.history[-1][0] is None:
        return None
    current, tensor = b.history[-1][0], b.name(force=True)
    if s.layout == "seq":
        shape: object = {"steps": s.sizes[0], "features": s.channels}
    else:
        shape = [s.channels, *s.sizes] if b.rng.random() < 0.5 else [s.channels, *([1] * len(s.sizes))]
    merge = b.rng.choice(["add", "multiply"])
    return [{"parameter": {"shape": shape, "name": tensor}},
            entry(merge, {"inputs": [current, tensor] if b.rng.random() < 0.5 else [tensor, current]}, b.name())], s


FAMILIES = [activation_layer, conv_layer, conv_layer, dense_layer, flatten_layer, dropout_layer, scale_layer,
            norm_layer, pool_layer, global_pool_layer, transpose_layer, upsample_layer, recurrent_layer,
            repeatvector_layer, embedding_layer, merge_layer, merge_layer, gate_layers, huge_layer,
            parameter_layers]

# the kinds (and aliases) the families above write; any other kind of the registry goes through
# unknown_kind_layer with its defaults or edge values
KNOWN_KINDS = {*ELEMENTWISE, "gelu", "elu", "leakyrelu", "softplus", "softmax", "logsoftmax", "log_softmax", "prelu",
               "conv", "conv1d", "conv2d", "conv3d", "dense", "fc", "linear", "flatten", "dropout", "scale",
               "batchnorm", "layernorm", "lrn", "groupnorm", "instancenorm", "rmsnorm", "maxpool", "avgpool", "globalavgpool", "globalmaxpool",
               "adaptiveavgpool", "adaptivemaxpool", "convtranspose", "upconv", "upsample", "rnn", "lstm", "gru",
               "repeatvector", "embedding", "parameter", "add", "multiply", "mul", "subtract", "sub", "concat"}


def unknown_kinds() -> list:
    return sorted(kind for kind in [*REGISTRY, *ALIASES] if kind not in KNOWN_KINDS)


def unknown_kind_layer(b: Builder, s: State):
    """A kind of the registry that no family above writes (one added since): its defaults, an edge
    number for each required field; the state is unknown after it, so it ends the chain."""
    kinds = unknown_kinds()
    if not kinds:
        return None
    kind = b.rng.choice(kinds)
    args = {}
    for name, spec_field in REGISTRY[ALIASES.get(kind, kind)].spec_fields.items():
        if spec_field.default is dataclasses.MISSING:
            args[name] = b.rng.choice([1, 2, 3, [1, 2], 0, "same"])
    return entry(kind, args, b.name()), None


# --- structure: repeats, blocks, shares ------------------------------------------------------------

def preserving(b: Builder, s: State) -> list:
    """Layers that keep the shape exactly (for repeats, blocks and shared layers)."""
    rng = b.rng
    choices = [lambda: "relu", lambda: {"dropout": 0.1}, lambda: rng.choice(["tanh", "silu", "abs", "mish"])]
    if s.layout == "map" and s.rank > 0:
        choices += [lambda: {"conv": {"filters": s.channels, "kernel": rng.choice([1, 3]), "padding": "same"}},
                    lambda: "batchnorm",
                    lambda: {"maxpool": {"kernel": 3, "stride": 1, "padding": 1}}]
    if s.layout == "map" and s.rank == 0:
        choices += [lambda: {"dense": s.channels}, lambda: "batchnorm"]
    if s.layout == "seq":
        choices += [lambda: {"dense": s.channels}, lambda: "layernorm"]
    return [rng.choice(choices)() for _ in range(rng.randint(1, 3))]


def repeat_layers(b: Builder, s: State):
    if s.layout == "ids":
        return None
    args: dict = {"times": b.rng.choice([1, 2, 3, 5]), "layers": preserving(b, s)}
    if b.rng.random() < 0.5:
        args["name"] = b.name(force=True)
    return {"repeat": args}, s


def block_layers(b: Builder, s: State):
    """A block defined once, used by one or two instances (the second may share the first)."""
    if s.layout != "map" or s.rank == 0:
        return None
    rng = b.rng
    block = rng.choice(["unit", "res", "stage", "training", "blk_" + str(len(b.blocks))])
    if block in b.blocks:
        block = f"{block}_{len(b.blocks)}"
    residual = rng.random() < 0.5
    layers = [{"conv": {"filters": "$width", "kernel": 3, "padding": "same", "name": "c1"}}, "relu"]
    if residual:
        layers += [{"conv": {"filters": "$width", "kernel": 1, "name": "c2"}}, {"add": {"inputs": ["c2", "in"]}}]
    b.blocks[block] = {"params": {"width": None}, "layers": layers}
    first = b.name(force=True)
    instances = [{block: {"width": s.channels, "name": first}}]
    if rng.random() < 0.6:
        second: dict = {"width": s.channels}
        if rng.random() < 0.7:
            second["shares"] = first
        if (name := b.name()) is not None:
            second["name"] = name
        instances.append({block: second})
    if rng.random() < 0.3:  # the scalar shorthand
        instances.append({block: s.channels})
    return instances, s


def shared_layer(b: Builder, s: State):
    """A named conv or dense, then a later one sharing it (same input shape, same arguments)."""
    if s.layout != "map":
        return None
    owner = b.name(force=True)
    if s.rank > 0:
        args = {"filters": s.channels, "kernel": 3, "padding": "same"}
        kind = "conv"
    else:
        args, kind = {"units": s.channels}, "dense"
    layers = [{kind: {**args, "name": owner}}, "relu"]
    sharer = {**args, "shares": owner}
    if (name := b.name()) is not None:
        sharer["name"] = name
    if b.rng.random() < 0.4:  # frozen alike: a shared module trains one way
        sharer["freeze"] = layers[0][kind]["freeze"] = ["bias"]
    layers.append({kind: sharer})
    return layers, s


STRUCTURES = [repeat_layers, block_layers, shared_layer]


# --- invalid arguments ------------------------------------------------------------------------------

def spoil(rng: random.Random, layers: list) -> str:
    """Make one layer invalid; returns what was done (for the report)."""
    index = rng.randrange(len(layers))
    layer = layers[index]
    how = rng.choice(["edge", "wrong", "unknown key", "misspelt kind", "unknown input", "duplicate name", "edge"])
    if isinstance(layer, str):
        layer = {layer: {}}
    kind = next(iter(layer))
    args = layer[kind] if isinstance(layer[kind], dict) else {}
    if how in ("edge", "wrong"):
        spec_class = REGISTRY.get(ALIASES.get(kind, kind))
        fields = sorted(spec_class.spec_fields) if spec_class is not None else []
        key = rng.choice(fields or ["name"])
        value = rng.choice(EDGE_NUMBERS if how == "edge" else WRONG_VALUES)
        layers[index] = {kind: {**args, key: value}}
        return f"{kind}.{key} = {value!r}"
    if how == "unknown key":
        layers[index] = {kind: {**args, rng.choice(["filter", "kernal", "strides", "units_", "Name", "bias "]): 1}}
        return f"{kind}: an unknown key"
    if how == "misspelt kind":
        layers[index] = {kind[:-1] + "x" if len(kind) > 1 else "zz": layer[kind]}
        return f"{kind}: misspelt"
    if how == "unknown input":
        layers[index] = {kind: {**args, "inputs": ["nowhere"]}}
        return f"{kind}: reads an unknown layer"
    named = [layer for layer in layers if isinstance(layer, dict) and isinstance(next(iter(layer.values())), dict)
             and "name" in next(iter(layer.values()))]
    if named:
        other = next(iter(rng.choice(named).values()))["name"]
        layers[index] = {kind: {**args, "name": other}}
        return f"{kind}: a duplicate name"
    return "nothing"


# --- the spec ----------------------------------------------------------------------------------------

INPUTS = [
    lambda r: State("map", r.randint(1, 4), (r.randint(4, 24),)),
    lambda r: State("map", r.randint(1, 4), (r.randint(4, 16), r.randint(4, 16))),
    lambda r: State("map", r.randint(1, 3), (r.randint(3, 8), r.randint(3, 8), r.randint(3, 8))),
    lambda r: State("map", r.randint(1, 32)),
    lambda r: State("seq", r.randint(1, 8), (r.randint(1, 10),)),
    lambda r: State("ids", 0, (r.randint(1, 10),)),
    lambda r: r.choice([State("map", 1, (1,)), State("map", 1, (1, 1)), State("map", 1), State("seq", 1, (1,)),
                        State("map", r.choice([2**31, 10**12, LARGEST])), State("map", 2, (2**40,)),
                        State("seq", 3, (2**50,)), State("ids", 0, (LARGEST,))]),
]


def input_value(s: State):
    if s.layout == "map":
        return [s.channels, *s.sizes]
    if s.layout == "seq":
        return {"steps": s.sizes[0], "features": s.channels}
    return {"steps": s.sizes[0]}


@dataclass
class Case:
    seed: int
    document: dict
    invalid: str           # what spoil did, "" for a spec meant to be valid
    kinds: set             # the kinds written (aliases as written; block names too)

    @property
    def text(self) -> str:
        return dump(self.document, self.seed)


def dump(document: dict, seed: int) -> str:
    """YAML text: block or flow style, unicode raw or escaped (PyYAML quotes and escapes every
    control character, NUL and newline in a double-quoted scalar)."""
    rng = random.Random(seed ^ 0x5EED)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=rng.random() < 0.7,
                          default_flow_style=rng.choice([False, None]), width=rng.choice([80, 10**6]))


def layer_kind(layer) -> str:
    return layer if isinstance(layer, str) else next(iter(layer))


def case(seed: int) -> Case:
    rng = random.Random(seed)
    b = Builder(rng, invalid=rng.random() < 0.25)
    state = rng.choice(INPUTS)(rng)
    document: dict = {}
    if rng.random() < 0.7:
        document["name"] = hostile_name(rng) if rng.random() < 0.8 else rng.choice(["none", "add", "concat", "Net"])
    if rng.random() < 0.3:
        document["description"] = hostile_name(rng)
    if rng.random() < 0.25 and state.layout == "map":
        b.params = {"w": state.channels, "twice": "$w * 2"}
        b.params_twice = state.channels * 2
        document["params"] = dict(b.params)
    multi = state.layout != "ids" and rng.random() < 0.15
    input_name = "input"
    if multi:  # two named inputs of the same shape, merged at once
        input_name, other = (hostile_name(rng), hostile_name(rng))
        if input_name == other:
            other += "_2"
        document["inputs"] = {input_name: input_value(state), other: input_value(state)}
        b.names |= {input_name, other}
    else:
        document["input"] = input_value(state)
        if b.params and rng.random() < 0.5:
            document["input"] = ["$w", *state.sizes]
    if rng.random() < 0.15:
        document["defaults"] = {"conv": {"activation": rng.choice(["relu", "tanh"])}}
    layers: list = []
    b.history.append((input_name, state))
    if multi:
        merged = b.name(force=True)
        layers.append({rng.choice(["add", "multiply", "subtract"]): {"inputs": [input_name, other], "name": merged}})
        b.history.append((merged, state))
    outputs = []
    for _ in range(rng.choice([1, 2, 3, 4, 6, 8, 12])):
        roll = rng.random()
        if roll < 0.04:
            produced = unknown_kind_layer(b, state)
        elif roll < 0.2:
            produced = rng.choice(STRUCTURES)(b, state)
        else:
            produced = rng.choice(FAMILIES)(b, state)
        if produced is None:
            continue
        written, after = produced
        written = written if isinstance(written, list) else [written]
        if b.params and after is not None and after.layout == "map" and rng.random() < 0.3:
            if after.rank:  # $twice filters: an expression's value
                written.append({"conv": {"filters": "$twice", "kernel": 1}})
                after = after.map(channels=b.params_twice)
            else:
                written.append({"dense": {"units": "$twice"}})
                after = State("map", b.params_twice)
        layers.extend(written)
        last = written[-1]
        args = last[layer_kind(last)] if isinstance(last, dict) else None
        # a block instance is read by its name too; a repeat's name is a label
        name = args.get("name") if isinstance(args, dict) and layer_kind(last) != "repeat" else None
        if after is None:
            break
        state = after
        b.history.append((name, state))
        if name is not None and rng.random() < 0.1:
            outputs.append(name)
    if not layers:
        layers = ["relu"] if state.layout != "ids" else [{"embedding": {"vocabulary": 5, "dim": 2}}]
    if b.blocks:
        document["blocks"] = b.blocks
    document["layers"] = layers
    if outputs and b.history[-1][0] is not None:
        document["outputs"] = [*dict.fromkeys(outputs), b.history[-1][0]]
    if rng.random() < 0.1:
        document.setdefault("defaults", {})["dense"] = {"activation": "relu"}
    spoiled = spoil(rng, layers) if b.invalid else ""
    kinds = {layer_kind(layer) for layer in layers} | \
        {layer_kind(layer) for block in b.blocks.values() for layer in block["layers"]}
    return Case(seed, document, spoiled, kinds)


def mutated(document: dict, seed: int) -> dict:
    """A copy to diff against: one number changed, a layer dropped or renamed, or the same."""
    import copy

    rng = random.Random(seed ^ 0xD1FF)
    other = copy.deepcopy(document)
    layers = other["layers"]
    how = rng.choice(["number", "number", "drop", "rename", "same"])
    index = rng.randrange(len(layers))
    layer = layers[index]
    if how == "drop" and len(layers) > 1:
        del layers[index]
    elif how in ("number", "rename") and isinstance(layer, dict) and isinstance(layer[layer_kind(layer)], dict):
        args = layer[layer_kind(layer)]
        if how == "rename":
            args["name"] = hostile_name(rng)
        else:
            numeric = [key for key, value in args.items() if isinstance(value, int) and not isinstance(value, bool)]
            if numeric:
                key = rng.choice(numeric)
                args[key] = args[key] + rng.choice([1, -1, 7])
    return other
