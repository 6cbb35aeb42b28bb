"""Property-based differential tests: the analyzer against PyTorch on random specs.

Normal runs try 500 specs per property on PyTorch's meta device (shapes only, no memory);
ARCHCALC_LONG=1 tries 20,000.
"""
import os

import pytest
from conftest import drawn, spec_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kind_table import sizes

import archcalc

torch = pytest.importorskip("torch")
from archcalc.backend import verify  # noqa: E402  (needs torch)

EXAMPLES = 20_000 if os.environ.get("ARCHCALC_LONG") else 500
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
SIZES = {1: (6, 40), 2: (4, 20), 3: (3, 9)}  # input sizes per spatial rank, small enough to stay fast


def per_axis(draw, rank, values):
    """One value for every axis, or a list with one per axis."""
    if draw(st.booleans()):
        return draw(values)
    return [draw(values) for _ in range(rank)]


def listed(value) -> tuple:
    return tuple(value) if isinstance(value, list) else None


# --- D-F-S validity: the analyzer says "invalid" exactly when PyTorch silently floors ---------------

@st.composite
def windowed_layers(draw):
    """A conv or pool with random geometry on a random input, and the equivalent torch modules
    (floor, and ceil_mode for pools), built directly from torch.nn, not through the backend."""
    rank = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, SIZES[rank][1])) for _ in range(rank)]
    kind = draw(st.sampled_from(["conv", "maxpool", "avgpool"]))
    kernel = [draw(st.integers(1, 7)) for _ in range(rank)]
    stride = [draw(st.integers(1, 5)) for _ in range(rank)]
    dilation = [draw(st.integers(1, 3)) if kind != "avgpool" else 1 for _ in range(rank)]
    if kind == "conv":
        padding = [draw(st.integers(0, 4)) for _ in range(rank)]
        fragment = f"conv: {{filters: 2, kernel: {kernel}, stride: {stride}, padding: {padding}, dilation: {dilation}}}"
        modules = {"floor": getattr(torch.nn, f"Conv{rank}d")(1, 2, kernel, stride, padding, dilation)}
    else:
        padding = [draw(st.integers(0, f // 2)) for f in kernel]  # PyTorch pools take at most F//2
        if kind == "avgpool" and rank == 3:  # AvgPool3d also wants D >= F (the backend pads explicitly)
            sizes = [max(d, f) for d, f in zip(sizes, kernel)]
        extra = f", dilation: {dilation}" if kind == "maxpool" else ""
        fragment = f"{kind}: {{kernel: {kernel}, stride: {stride}, padding: {padding}{extra}}}"
        options = {"dilation": dilation} if kind == "maxpool" else {}
        pool = getattr(torch.nn, f"{'MaxPool' if kind == 'maxpool' else 'AvgPool'}{rank}d")
        modules = {rounding: pool(kernel, stride, padding, ceil_mode=rounding == "ceil", **options)
                   for rounding in ("floor", "ceil")}
    return (1, *sizes), fragment, modules, (kernel, stride, padding, dilation)


def pytorch_sizes(module, shape):
    """The spatial output sizes PyTorch computes, or None when it refuses the geometry."""
    try:
        with torch.device("meta"):
            return tuple(module(torch.empty(1, *shape)).shape[2:])
    except RuntimeError:
        return None


@pytest.mark.slow
@SETTINGS
@given(windowed_layers())
def test_invalid_exactly_when_pytorch_floors(case):
    shape, fragment, modules, (kernel, stride, padding, dilation) = case
    out = pytorch_sizes(modules["floor"], shape)
    # PyTorch's windows tile the padded input exactly when the last one ends on its edge; a kernel
    # that does not fit at all, PyTorch refuses
    pytorch_floors = out is None or any((o - 1) * s + r * (f - 1) + 1 != d + 2 * p
                                        for o, d, f, s, p, r in zip(out, shape[1:], kernel, stride, padding, dilation))
    spec = archcalc.loads(spec_text(shape, fragment))
    try:
        archcalc.analyze(spec)
        flagged = False
    except archcalc.GeometryError:
        flagged = True
    assert flagged == pytorch_floors, fragment
    for rounding, module in modules.items():  # accepted lossy geometry: the same sizes as PyTorch
        sizes = pytorch_sizes(module, shape)
        try:
            ours = archcalc.analyze(spec, rounding=rounding).output_shape[1:]
        except archcalc.GeometryError:
            # only a window larger than the whole padded input, which ceil_mode lets hang over
            assert sizes is None or rounding == "ceil", fragment
            continue
        assert ours == sizes, (rounding, fragment)


# --- random chains: every layer's shape and parameter count equal PyTorch's --------------------------

@st.composite
def chains(draw):
    """A random valid-looking chain of conv/pool/norm layers (1D-3D), maybe flattened into dense."""
    rank = draw(st.integers(1, 3))
    low, high = SIZES[rank]
    channels = draw(st.integers(1, 6))
    shape = (channels, *(draw(st.integers(low, high)) for _ in range(rank)))
    layers = []
    for _ in range(draw(st.integers(1, 5))):
        choice = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool", "batchnorm", "layernorm", "lrn",
                                       "dropout", "activation", "prelu", "scale", "groupnorm", "instancenorm",
                                       "rmsnorm", *MOVES]))
        if choice == "conv":
            groups = draw(st.sampled_from([g for g in range(1, channels + 1) if channels % g == 0]))
            filters = groups * draw(st.integers(1, 3))
            padding = draw(st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 3),
                                     st.lists(st.integers(0, 3), min_size=rank, max_size=rank)))
            fields = {"filters": filters, "kernel": per_axis(draw, rank, st.integers(1, 5)),
                      "stride": per_axis(draw, rank, st.integers(1, 3)),
                      "dilation": per_axis(draw, rank, st.integers(1, 2)), "padding": padding,
                      "groups": groups, "bias": draw(st.booleans()),
                      "padding_mode": draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"])),
                      "rounding": draw(st.sampled_from(["floor", "strict"])),
                      "activation": draw(st.sampled_from(["null", "relu", "tanh", "gelu", *ACTIVATIONS]))}
            channels = filters
        elif choice in ("maxpool", "avgpool"):
            kernel = draw(st.integers(1, 4))
            fields = {"kernel": kernel, "stride": draw(st.integers(1, 3)),
                      "padding": draw(st.one_of(st.just("same"), st.integers(0, kernel // 2))),
                      "rounding": draw(st.sampled_from(["floor", "ceil", "strict"]))}
            if choice == "maxpool":
                fields["dilation"] = draw(st.integers(1, 2))
        elif choice in ("batchnorm", "layernorm", "groupnorm", "instancenorm", "rmsnorm"):
            fields = {"affine": draw(st.booleans())}
            if choice in ("layernorm", "rmsnorm"):
                fields["axes"] = draw(st.sampled_from(["all", "channels"]))
            elif choice == "groupnorm":
                fields["groups"] = draw(st.sampled_from([g for g in range(1, channels + 1) if channels % g == 0]))
            elif choice == "instancenorm":
                fields["track_running_stats"] = draw(st.booleans())
        elif choice == "lrn":
            fields = {"size": draw(st.integers(1, 5))}
        elif choice == "activation":
            choice = draw(st.sampled_from(["relu", "softplus", "logsoftmax", "gelu", *ACTIVATIONS]))
            fields = {"softplus": {"beta": draw(st.sampled_from([0.5, 2]))},
                      "logsoftmax": {"axis": draw(st.integers(0, rank))},
                      "gelu": {"approximate": draw(st.sampled_from(["none", "tanh"]))}}.get(choice, {})
        elif choice == "prelu":
            fields = {"num_parameters": draw(st.sampled_from([1, channels]))}
        elif choice == "scale":
            fields = {"init": draw(st.sampled_from([1.0, 0.5]))}
        elif choice in MOVES:
            fields = moved(draw, choice, rank, channels)
        else:
            fields = {}
        layers.append(f"{choice}: {{{', '.join(f'{k}: {_yaml(v)}' for k, v in fields.items())}}}"
                      if fields else choice)
    if draw(st.booleans()):
        layers.append("flatten")
        for _ in range(draw(st.integers(1, 2))):
            layers.append(f"dense: {{units: {draw(st.integers(1, 8))}, bias: {_yaml(draw(st.booleans()))}, "
                          f"activation: {draw(st.sampled_from(['null', 'relu', 'softmax', 'logsoftmax', 'silu']))}}}")
    return shape, layers


ACTIVATIONS = ["silu", "hardswish", "hardsigmoid", "relu6", "mish", "abs"]  # issue 13's, without arguments
MOVES = ("pad", "channel_shuffle", "identity")  # layers that move values, amid a chain


def moved(draw, choice: str, rank: int, channels: int) -> dict:
    """The fields of a pad (F.pad's sides for some of the axes, any mode: reflect and circular
    may be refused on a small axis, as PyTorch refuses them) or of a channel shuffle."""
    if choice == "pad":
        pairs = draw(st.integers(0, rank))  # 0: one number for every side
        sides = [draw(st.integers(0, 3)) for _ in range(2 * pairs)] if pairs else draw(st.integers(0, 3))
        return {"padding": sides, "mode": draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))}
    if choice == "channel_shuffle":
        return {"groups": draw(st.sampled_from([g for g in range(1, channels + 1) if channels % g == 0]))}
    return {}


def _yaml(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.slow
@SETTINGS
@given(chains(), st.integers(1, 3))
def test_random_chains_agree_with_pytorch_layer_by_layer(chain, batch):
    shape, layers = chain
    partial = archcalc.analyze(archcalc.loads(spec_text(shape, *layers)), partial=True)
    valid = layers[:len(partial.layers)]  # up to the first layer the analyzer refuses
    if not valid:
        return
    analysis = archcalc.analyze(archcalc.loads(spec_text(shape, *valid)), batch=batch)
    try:
        result = verify(analysis, device="meta")
    except archcalc.SpecError as exc:  # what PyTorch cannot express is refused, with the reason
        assert "PyTorch cannot" in exc.message, exc
        return
    assert result.ok, (shape, valid, result.disagreements)
    assert [check.actual_shape for check in result.checks] == [sizes(s.output_shape) for s in analysis.layers]


@pytest.fixture(scope="module")
def drawn_chains():
    return drawn(chains(), 200)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_chains_reach_deep(rank, drawn_chains):
    """The generator is not vacuous: of the chains it draws of each rank, most pass every layer and
    at least one goes on through flatten into dense; a hand-picked chain of its form passes every layer."""
    ranked = [(shape, layers) for shape, layers in drawn_chains if len(shape) == rank + 1]
    whole = [layers for shape, layers in ranked
             if len(archcalc.analyze(archcalc.loads(spec_text(shape, *layers)), partial=True).layers) == len(layers)]
    assert len(ranked) >= 30 and len(whole) >= len(ranked) / 2, (len(whole), len(ranked))
    assert any("flatten" in layers for layers in whole)
    shape = (4, *(SIZES[rank][1],) * rank)
    layers = ["conv: {filters: 4, kernel: 3, stride: 2, padding: same, groups: 2, padding_mode: reflect}",
              "maxpool: {kernel: 2, rounding: ceil}", "batchnorm", "flatten", "dense: 3"]
    result = verify(archcalc.analyze(archcalc.loads(spec_text(shape, *layers))), device="meta")
    assert result.ok and len(result.checks) == 5


def test_chains_draw_the_layers_that_move_values(drawn_chains):
    """Pads (each mode) and shuffles reach PyTorch amid chains that pass every layer."""
    whole = [layers for shape, layers in drawn_chains
             if len(archcalc.analyze(archcalc.loads(spec_text(shape, *layers)), partial=True).layers) == len(layers)]
    for move in (*MOVES, "mode: reflect", "mode: circular", "mode: replicate"):
        assert any(any(move in layer for layer in layers) for layers in whole), move


# --- random graphs: branches merged by add and concat ------------------------------------------------

@st.composite
def graphs(draw):
    """A random DAG: 'same' convolutions (some strided, some with a frozen bias, some applying an
    earlier convolution's weights again with 'shares') and pools reading any earlier layer, adds of
    equal shapes, concats of equal spatial sizes; every layer nobody reads becomes an output.
    Shapes are tracked here with PyTorch's own rule for 'same' (out = ceil(D/S)) so merges are valid."""
    rank = draw(st.integers(1, 2))
    shapes = {"input": (draw(st.integers(1, 4)), *(draw(st.integers(4, 16)) for _ in range(rank)))}
    layers, read = [], set()
    convs = {}  # name -> (input shape, its arguments as written, filters, stride): what a later conv may share
    for index in range(draw(st.integers(2, 8))):
        name = f"n{index}"
        choice = draw(st.sampled_from(["conv", "conv", "pool", "gate", "parameter", "add", "multiply", "subtract",
                                       "concat", "concat", "chunk"]))
        names = list(shapes)
        if choice == "chunk":  # halves read by name, 'n3.0' and 'n3.1', like any layer's output
            source = draw(st.sampled_from(names))
            if shapes[source][0] % 2 == 0:
                layers.append(f"chunk: {{chunks: 2, inputs: {source}, name: {name}}}")
                half = (shapes[source][0] // 2, *shapes[source][1:])
                shapes.update({f"{name}.0": half, f"{name}.1": half})
                read.add(source)
                continue
            choice = "conv"
        if choice == "parameter" and index == 0:  # the first layer reads the network input
            choice = "conv"
        if choice in ("add", "multiply", "subtract", "concat"):
            first = draw(st.sampled_from(names))
            match = [n for n in names if n != first and (shapes[n][1:] == shapes[first][1:] if choice == "concat"
                                                         else broadcasts(shapes[n], shapes[first]))]
            if match:
                second = draw(st.sampled_from(match))
                if choice == "concat":
                    shapes[name] = (shapes[first][0] + shapes[second][0], *shapes[first][1:])
                else:  # element-wise, broadcast: a gate [C, 1, 1] stretches over a map
                    shapes[name] = tuple(max(a, b) for a, b in zip(shapes[first], shapes[second]))
                layers.append(f"{choice}: {{inputs: [{first}, {second}], name: {name}}}")
                read |= {first, second}
                continue
            choice = "conv"
        source = draw(st.sampled_from(names))
        if choice == "parameter":  # a learned tensor of an existing shape, some axes 1: it broadcasts there
            shapes[name] = tuple(size if draw(st.booleans()) else 1 for size in shapes[source])
            layers.append(f"parameter: {{shape: {list(shapes[name])}, name: {name}}}")
            continue
        if choice == "gate":  # squeeze-excitation's squeeze: [C, 1, ...]
            layers.append(f"adaptiveavgpool: {{output: 1, inputs: {source}, name: {name}}}")
            shapes[name] = (shapes[source][0], *(1 for _ in shapes[source][1:]))
            read.add(source)
            continue
        stride = draw(st.integers(1, 2))
        spatial = tuple(-(-d // stride) for d in shapes[source][1:])
        if choice == "conv":
            # the same module applied to another input of that shape ('same' padding fits one size)
            twins = [n for n, twin in convs.items() if twin[0] == shapes[source]]
            if twins and draw(st.booleans()):
                owner = draw(st.sampled_from(twins))
                _, arguments, filters, stride = convs[owner]
                layers.append(f"conv: {{{arguments}, inputs: {source}, name: {name}, shares: {owner}}}")
                spatial = tuple(-(-d // stride) for d in shapes[source][1:])
            else:
                filters = draw(st.integers(1, 6))
                freeze = ", freeze: [bias]" if draw(st.booleans()) else ""
                arguments = (f"filters: {filters}, kernel: {draw(st.integers(1, 4))}, stride: {stride}, "
                             f"padding: same{freeze}")
                layers.append(f"conv: {{{arguments}, inputs: {source}, name: {name}}}")
                convs[name] = (shapes[source], arguments, filters, stride)
            shapes[name] = (filters, *spatial)
        else:
            kind = draw(st.sampled_from(["maxpool", "avgpool"]))
            layers.append(f"{kind}: {{kernel: {draw(st.integers(1, 3))}, stride: {stride}, padding: same, "
                          f"inputs: {source}, name: {name}}}")
            shapes[name] = (shapes[source][0], *spatial)
        read.add(source)
    outputs = [name for name in shapes if name != "input" and name not in read]
    return shapes["input"], layers, outputs


def broadcasts(a: tuple, b: tuple) -> bool:
    """PyTorch's rule, one rank: on each axis equal sizes, or 1 in one of them."""
    return all(x == y or 1 in (x, y) for x, y in zip(a, b))


@pytest.mark.slow
@SETTINGS
@given(graphs())
def test_random_graphs_agree_with_pytorch_layer_by_layer(graph):
    shape, layers, outputs = graph
    text = spec_text(shape, *layers) + f"outputs: [{', '.join(outputs)}]\n"
    analysis = archcalc.analyze(archcalc.loads(text))
    result = verify(analysis, device="meta")
    assert result.ok, (text, result.disagreements)
    assert [check.actual_shape for check in result.checks] == [sizes(s.output_shape) for s in analysis.layers]
    assert analysis.output_shapes.keys() == set(outputs)


def test_graph_generator_is_not_vacuous():
    """The graphs it draws merge branches (add, multiply, subtract, concat; element-wise merges of
    two shapes, broadcast), downsample and end in several outputs, and every one analyzes; a
    hand-written residual + concat graph of its form passes every layer."""
    graphs_drawn = drawn(graphs(), 100)
    for feature in ("add: ", "multiply: ", "subtract: ", "concat: ", "adaptiveavgpool: ", "parameter: ", "stride: 2",
                    "shares: ", "freeze: ", "chunk: "):
        assert sum(any(feature in layer for layer in layers) for _, layers, _ in graphs_drawn) >= 10, feature
    assert sum(len(outputs) > 1 for _, _, outputs in graphs_drawn) >= 10
    broadcast = 0
    for shape, layers, outputs in graphs_drawn:
        analysis = archcalc.analyze(archcalc.loads(spec_text(shape, *layers) + f"outputs: [{', '.join(outputs)}]\n"))
        assert len(analysis.layers) == len(layers)
        broadcast += any(stats.kind in ("add", "multiply", "subtract") and len(set(stats.input_shape)) > 1
                         for stats in analysis.layers)
    assert broadcast >= 10
    layers = ["conv: {filters: 3, kernel: 3, stride: 1, padding: same, inputs: input, name: n0}",
              "add: {inputs: [n0, input], name: n1}", "conv: {filters: 2, kernel: 1, stride: 2, padding: same, "
              "inputs: n1, name: n2}", "maxpool: {kernel: 3, stride: 2, padding: same, inputs: n1, name: n3}",
              "concat: {inputs: [n2, n3], name: n4}"]
    analysis = archcalc.analyze(archcalc.loads(spec_text((3, 9, 9), *layers)))
    assert tuple(analysis.output_shape) == (5, 5, 5)
    assert verify(analysis, device="meta").ok
    shared = ["conv: {filters: 3, kernel: 3, stride: 1, padding: same, freeze: [bias], inputs: input, name: n0}",
              "conv: {filters: 3, kernel: 3, stride: 1, padding: same, freeze: [bias], inputs: n0, name: n1, "
              "shares: n0}", "add: {inputs: [n0, n1], name: n2}"]
    analysis = archcalc.analyze(archcalc.loads(spec_text((3, 9, 9), *shared)))
    assert (analysis.totals.params, analysis.totals.trainable_params) == (84, 81)  # 3x3x3x3 + 3, bias frozen
    result = verify(analysis, device="meta")
    assert result.ok and (result.actual_params, result.actual_trainable) == (84, 81)
