"""Shared weights ('shares: layer', a block instance sharing another) and frozen tensors
('freeze: [bias]'): counted once, marked in every format, one module in PyTorch.

The pinned totals are torchinfo's own (tests/test_output/siamese_net.out and recursive.out in
TylerYep/torchinfo) for its test models SiameseNets and RecursiveNet (tests/fixtures/models.py),
written as specs in tests/torchinfo/.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import spec_text
from kind_table import each_row

import archcalc
from archcalc.errors import SpecError
from archcalc.views import report

TORCHINFO = Path(__file__).parent / "torchinfo"

# spec, torchinfo's total, the count if every use had its own weights (the wrong numbers), sharing layers
TORCHINFO_MODELS = [
    ("siamese_nets", 2_251_585, 4_499_073, ["right.conv1", "right.conv2", "right.conv3", "right.conv4", "right.fc1"]),
    ("recursive_net", 36_928, 221_568, ["conv2", "conv3", "conv4", "conv5", "conv6"]),
]


@pytest.mark.parametrize("spec,total,unshared,sharing", TORCHINFO_MODELS,
                         ids=[case[0] for case in TORCHINFO_MODELS])
def test_torchinfo_counts_shared_weights_once(spec, total, unshared, sharing):
    analysis = archcalc.analyze(archcalc.load(str(TORCHINFO / f"{spec}.yaml")))
    assert analysis.totals.params == analysis.totals.trainable_params == total
    assert sum(stats.layer.params(stats.input_shape) for stats in analysis.layers) == unshared
    assert [stats.name for stats in analysis.layers if stats.shares] == sharing
    assert sum(stats.params for stats in analysis.layers) == total  # the column adds up to the total


def test_siamese_shapes_are_torchinfos():
    analysis = archcalc.analyze(archcalc.load(str(TORCHINFO / "siamese_nets.yaml")))
    shapes = [tuple(stats.output_shape) for stats in analysis.layers if stats.kind in ("conv", "maxpool")][:8]
    assert shapes == [(64, 79, 79), (64, 39, 39), (128, 33, 33), (128, 16, 16), (128, 13, 13), (128, 6, 6),
                      (256, 3, 3), (256, 1, 1)]


def _printed(show, analysis) -> str:
    out = io.StringIO()
    show(analysis, file=out)
    return out.getvalue()


def siamese():
    return archcalc.analyze(archcalc.load(str(TORCHINFO / "siamese_nets.yaml")))


FORMATS = [
    ("table", lambda a: _printed(report.print_table, a), "shares left.conv1"),
    ("markdown", report.to_markdown, "| shares left.conv1 |"),
]


@pytest.mark.parametrize("render,mark", [case[1:] for case in FORMATS], ids=[case[0] for case in FORMATS])
def test_every_format_marks_a_shared_layer(render, mark):
    assert mark in render(siamese())


def test_csv_has_a_shares_column_when_a_layer_shares():
    rows = {row["name"]: row for row in csv.DictReader(io.StringIO(report.to_csv(siamese())))}
    assert (rows["right.conv1"]["shares"], rows["right.conv1"]["params"]) == ("left.conv1", "0")
    assert rows["left.conv1"]["shares"] == ""
    alone = archcalc.analyze(archcalc.loads("input: [4]\nlayers:\n  - dense: 2\n"))
    assert "shares" not in report.to_csv(alone).splitlines()[0]


def test_json_marks_a_shared_layer_and_a_frozen_tensor():
    layers = {layer["name"]: layer for layer in json.loads(report.to_json(siamese()))["layers"]}
    assert (layers["right.conv1"]["shares"], layers["right.conv1"]["params"]) == ("left.conv1", 0)
    assert "shares" not in layers["left.conv1"] and "shares" not in layers["right.pool1"]
    frozen = archcalc.analyze(archcalc.loads("input: [4]\nlayers:\n  - dense: {units: 2, freeze: [bias]}\n"))
    entry = json.loads(report.to_json(frozen))["layers"][0]
    assert (entry["frozen"], entry["params"], entry["trainable_params"]) == (["bias"], 10, 8)


FROZEN = [
    # name, layer, params, trainable
    ("conv bias", "conv: {filters: 4, kernel: 3, freeze: [bias]}", 112, 108),
    ("conv weight", "conv: {filters: 4, kernel: 3, freeze: weight}", 112, 4),
    ("conv both", "conv: {filters: 4, kernel: 3, freeze: [weight, bias]}", 112, 0),
    ("batchnorm beta", "batchnorm: {freeze: [bias]}", 6, 3),
]


@pytest.mark.parametrize("layer,params,trainable", [case[1:] for case in FROZEN], ids=[c[0] for c in FROZEN])
def test_frozen_tensors_are_not_trainable(layer, params, trainable):
    analysis = archcalc.analyze(archcalc.loads(f"input: [3, 8, 8]\nlayers:\n  - {layer}\n"))
    assert (analysis.totals.params, analysis.totals.trainable_params) == (params, trainable)


def test_a_recurrent_layer_freezes_by_pytorchs_names():
    text = "input: {steps: 5, features: 3}\nlayers:\n  - lstm: {hidden: 2, layers: 2, freeze: [weight_ih_l1]}\n"
    analysis = archcalc.analyze(archcalc.loads(text))
    assert analysis.totals.params - analysis.totals.trainable_params == 4 * 2 * 2  # 4 gates x H, x H inputs


ERRORS = [
    # name, layers, message, hint words, the argument whose value the error points at
    ("other arguments", ["conv: {filters: 4, kernel: 3, padding: 1, name: a}",
                         "conv: {filters: 4, kernel: 5, padding: 2, shares: a}"],
     "shares: a is not the same layer (kernel 3 there, 5 here; padding 1 there, 2 here)", "same kind and arguments",
     "shares"),
    ("other kind", ["conv: {filters: 4, kernel: 1, name: a}", "maxpool: {kernel: 1, shares: a}"],
     "shares: a is not the same layer (a is conv)", "same kind", "shares"),
    ("other input channels", ["conv: {filters: 4, kernel: 1, name: a}", "conv: {filters: 4, kernel: 1, shares: a}"],
     "shares: the input 4x8x8 gives other weight shapes than a, whose parameters it shares, input 3x8x8 "
     "(weight 4x3x1x1 there, 4x4x1x1 here)", "same shapes", "shares"),
    ("size-dependent module", ["conv: {filters: 3, kernel: 3, stride: 3, padding: same, name: a}",
                               "conv: {filters: 3, kernel: 3, stride: 3, padding: same, shares: a}"],
     "shares: the module of a is made for its input 3x8x8; on 3x3x3 it would compute something else than this "
     "layer", "explicit padding", "shares"),
    ("trained differently", ["conv: {filters: 3, kernel: 1, name: a}",
                             "conv: {filters: 3, kernel: 1, shares: a, trainable: false}"],
     "shares: a, whose parameters it shares, is trained differently (trainable/freeze)", "on a only", "shares"),
    ("unknown layer", ["conv: {filters: 3, kernel: 1, name: a}", "conv: {filters: 3, kernel: 1, shares: b}"],
     "shares: no earlier layer is named 'b'", "valid: a, input", "shares"),
    ("itself", ["conv: {filters: 3, kernel: 1, name: a, shares: a}"],
     "layer a cannot share its own parameters", "earlier layer", "shares"),
    ("an input", ["conv: {filters: 3, kernel: 1, shares: input}"], "shares: 'input' is a network input, not a layer",
     "", "shares"),
    ("unknown tensor", ["conv: {filters: 3, kernel: 1, freeze: [bais]}"],
     "freeze: conv has no tensor 'bais' here (its tensors: weight, bias)", "did you mean 'bias'?", "freeze"),
    ("no bias to freeze", ["conv: {filters: 3, kernel: 1, bias: false, freeze: bias}"],
     "freeze: conv has no tensor 'bias' here (its tensors: weight)", "", "freeze"),
    ("nothing to freeze", ["relu: {freeze: [weight]}"], "freeze: relu has no tensor 'weight' (it has no parameters)",
     "remove", "freeze"),
    ("freeze is not names", ["conv: {filters: 3, kernel: 1, freeze: 3}"],
     "freeze must name the layer's tensors, e.g. freeze: [bias], got 3", "", "freeze"),
]


@pytest.mark.parametrize("layers,message,hint,key", [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_sharing_and_freezing_errors(layers, message, hint, key):
    text = "name: net\ninput: [3, 8, 8]\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers)
    with pytest.raises(SpecError) as info:
        archcalc.analyze(archcalc.loads(text, "net.yaml"))
    assert info.value.message == message
    assert hint in info.value.hint
    line = text.splitlines()[info.value.location.line - 1]  # the last layer's line, at the value of ``key``
    assert line == f"  - {layers[-1]}" and info.value.location.column == line.index(f"{key}: ") + len(key) + 3


BLOCKS = """\
inputs: {a: [3, 8, 8], b: [3, 8, 8]}
blocks:
  tower: {layers: [conv: {filters: 4, kernel: 3, padding: 1, name: conv}, relu]}
  other: {layers: [conv: {filters: 4, kernel: 3, padding: 1, name: conv}, relu]}
layers:
  - tower: {inputs: a, name: left}
  - {kind}: {inputs: b, shares: {owner}}
  - add: {inputs: [left, {kind}1]}
"""

BLOCK_ERRORS = [
    ("another block", "other", "left", "shares: no earlier instance of block other is named 'left'", "same block"),
    ("unknown instance", "tower", "lft", "shares: no earlier instance of block tower is named 'lft'",
     "did you mean 'left'?"),
]


@pytest.mark.parametrize("kind,owner,message,hint", [case[1:] for case in BLOCK_ERRORS],
                         ids=[case[0] for case in BLOCK_ERRORS])
def test_block_sharing_errors(kind, owner, message, hint):
    with pytest.raises(SpecError) as info:
        archcalc.loads(BLOCKS.replace("{kind}", kind).replace("{owner}", owner))
    assert info.value.message == message
    assert hint in info.value.hint


def test_a_layer_cannot_share_a_block_instance():
    text = BLOCKS.replace("{kind}", "tower").replace("shares: {owner}", "name: tower1") + \
        "  - conv: {filters: 4, kernel: 1, shares: left}\noutputs: [add1, conv1]\n"
    with pytest.raises(SpecError) as info:
        archcalc.loads(text)
    assert info.value.message == "shares: 'left' is a block instance, not a layer"


def test_nested_instances_share_their_twins():
    text = """\
inputs: {a: [3, 8, 8], b: [3, 8, 8]}
blocks:
  unit: {layers: [conv: {filters: 3, kernel: 3, padding: 1, name: conv}, batchnorm]}
  tower: {layers: [unit, unit]}
layers:
  - tower: {inputs: a, name: left}
  - tower: {inputs: b, shares: left, name: right}
  - add: {inputs: [left, right]}
"""
    analysis = archcalc.analyze(archcalc.loads(text))
    assert {s.name: s.shares for s in analysis.layers if s.shares} == {
        "right.unit1.conv": "left.unit1.conv", "right.unit1.bn1": "left.unit1.bn1",
        "right.unit2.conv": "left.unit2.conv", "right.unit2.bn1": "left.unit2.bn1"}
    # two BatchNorm2d(3) held once: running mean and variance (3 each) and num_batches_tracked (1)
    assert analysis.totals.params == 2 * (84 + 6) and analysis.totals.buffers == 2 * (6 + 1)


# --- PyTorch: one module, counted once by parameters(), written once by state_dict() and export ---

@pytest.mark.parametrize("spec,total", [(case[0], case[1]) for case in TORCHINFO_MODELS],
                         ids=[case[0] for case in TORCHINFO_MODELS])
def test_pytorch_agrees_and_holds_shared_weights_once(spec, total):
    torch = pytest.importorskip("torch")
    from archcalc.backend import build, export_source, verify
    from archcalc.backend.export import export_checked
    from archcalc.backend.plan import make_plan

    analysis = archcalc.analyze(archcalc.load(str(TORCHINFO / f"{spec}.yaml")))
    result = verify(analysis, device="cpu")
    assert result.ok and result.actual_params == total, result.disagreements
    model = build(analysis)
    assert sum(tensor.numel() for tensor in model.state_dict().values()) == total
    for stats in analysis.layers:
        if stats.shares:
            assert model.submodule(stats.name) is model.submodule(stats.shares)
    export_checked(make_plan(analysis))  # the exported class builds, with the analyzer's count
    source = export_source(analysis)
    namespace: dict = {}
    exec(compile(source, spec, "exec"), namespace)  # noqa: S102 (our own code)
    exported = next(value for key, value in namespace.items() if key.endswith("Torchinfo"))()
    assert sum(p.numel() for p in exported.parameters()) == sum(t.numel() for t in exported.state_dict().values())
    assert torch.is_tensor(next(iter(exported.state_dict().values())))


def test_siamese_computes_torchinfos_similarity():
    """torchinfo's SiameseNets.forward, written with the built model's own modules: each tower
    max_pool2d(relu(conv)) four times and fc1; then sigmoid(fc2(dropout(|x1 - x2|)))."""
    torch = pytest.importorskip("torch")
    from torch.nn import functional

    from archcalc.backend import build

    model = build(siamese(), seed=0).eval()
    convs = [model.submodule(f"left.conv{i}")[0] for i in range(1, 5)]  # conv + relu: the conv

    def tower(x):
        for conv in convs:
            x = functional.max_pool2d(functional.relu(conv(x)), 2, 2)
        return model.submodule("left.fc1")(x.view(x.size(0), -1))

    x1, x2 = torch.randn(2, 1, 88, 88), torch.randn(2, 1, 88, 88)
    with torch.no_grad():
        expected = torch.sigmoid(model.submodule("fc2")[0](torch.abs(tower(x1) - tower(x2))))
        torch.testing.assert_close(model(x1, x2), expected)


def test_pytorch_trains_only_what_is_not_frozen():
    pytest.importorskip("torch")
    from archcalc.backend import build, export_source

    text = ("input: [3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3, activation: relu, freeze: [bias]}\n"
            "  - flatten\n  - dense: {units: 2, freeze: weight}\n")
    analysis = archcalc.analyze(archcalc.loads(text))
    frozen = {name for name, p in build(analysis).named_parameters() if not p.requires_grad}
    assert frozen == {"conv1.0.bias", "fc1.weight"}
    namespace: dict = {}
    exec(compile(export_source(analysis), "frozen", "exec"), namespace)  # noqa: S102 (our own code)
    model = next(value for key, value in namespace.items() if isinstance(value, type) and key != "nn")()
    assert {name for name, p in model.named_parameters() if not p.requires_grad} == frozen


# each kind's tensors by the names PyTorch gives them: every row of the kind table, and stacks
TENSOR_SPECS = [
    ("lstm stack", "{steps: 7, features: 5}", ["lstm: {hidden: 6, layers: 3, bidirectional: true}"]),
    ("gru single bias", "{steps: 7, features: 5}", ["gru: {hidden: 6, layers: 2, bias: single}"]),
]


def tensors_are_pytorchs(analysis):
    """What 'freeze' names: each layer's tensors are its module's parameters, name for name."""
    from archcalc.backend import build

    network = build(analysis, device="meta")
    for stats in analysis.layers:
        paths = {path: tuple(p.shape) for path, p in network.submodule(stats.name).named_parameters()}
        tensors = stats.layer.tensors(stats.input_shape)
        # a tensor's name is the end of its path: 'bias' is '0.bias' behind an activation, 'weight_ih_l0'
        # is 'cell.weight_ih_l0' in a recurrent layer, 'out_proj.weight' itself in attention
        named = {name: [shape for path, shape in paths.items() if path == name or path.endswith("." + name)]
                 for name in tensors}
        assert {name: shapes[0] for name, shapes in named.items() if len(shapes) == 1} == tensors, stats.name
        assert len(paths) == len(tensors), stats.name


@pytest.mark.parametrize("shape,layers", [case[1:] for case in TENSOR_SPECS], ids=[case[0] for case in TENSOR_SPECS])
def test_stacked_tensors_are_pytorchs_by_name(shape, layers):
    pytest.importorskip("torch")
    tensors_are_pytorchs(archcalc.analyze(archcalc.loads(f"input: {shape}\nlayers:\n" +
                                                          "".join(f"  - {l}\n" for l in layers))))


@each_row("fragment,input_shape", built=True)
def test_every_kinds_tensors_are_pytorchs_by_name(fragment, input_shape):
    pytest.importorskip("torch")
    tensors_are_pytorchs(archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment))))


SHARDED = [
    # name, spec text or file, params, trainable
    ("siamese", None, 2_251_585, 2_251_585),
    ("frozen bias", "input: [4]\nlayers:\n  - dense: {units: 3, freeze: [bias]}\n  - dense: {units: 2, trainable: false}\n",
     23, 12),
]


@pytest.mark.parametrize("text,params,trainable", [case[1:] for case in SHARDED], ids=[case[0] for case in SHARDED])
def test_sharding_holds_shared_tensors_once_and_trains_only_unfrozen_ones(text, params, trainable):
    from archcalc.analysis.sharding import layout

    analysis = siamese() if text is None else archcalc.analyze(archcalc.loads(text))
    tensors = layout(analysis)

    def elements(shapes) -> int:
        total = 0
        for shape, count in shapes:
            size = count
            for axis in shape:
                size *= axis
            total += size
        return total
    assert (elements(tensors.shapes), elements(tensors.trained_shapes)) == (params, trainable)
    assert (analysis.totals.params, analysis.totals.trainable_params) == (params, trainable)


TIED = """name: tied head
input: {steps: 6}
layers:
  - embedding: {vocabulary: 50, dim: 8, name: wte}
  - dense: {units: 50, bias: %s, shares: wte, name: lm_head}
"""


def test_a_dense_head_ties_the_embedding_table():
    """GPT-2's LM head: nn.Linear(E, V, bias=False).weight is V x E, the shape of nn.Embedding(V, E)'s
    table, and transformers ties the two (model.parameters() holds it once: 50 x 8 = 400 here)."""
    pytest.importorskip("torch")
    from archcalc.backend import build, export_source, verify

    analysis = archcalc.analyze(archcalc.loads(TIED % "false"))
    assert analysis.totals.params == 400 and analysis.layers[1].shares == "wte"
    network = build(analysis)
    assert network.submodule("lm_head").weight is network.submodule("wte").weight
    assert sum(p.numel() for p in network.parameters()) == 400
    assert verify(analysis, device="cpu").ok
    namespace: dict = {}
    exec(export_source(analysis), namespace)  # noqa: S102  (our own generated code)
    exported = namespace["TiedHead"]()
    assert exported.lm_head.weight is exported.wte.weight


def test_a_head_with_a_bias_ties_nothing():
    with pytest.raises(SpecError) as info:
        archcalc.analyze(archcalc.loads(TIED % "true"))
    assert "shares: wte is not the same layer (wte is embedding)" in info.value.message
    assert "same by name and shape" in info.value.hint
