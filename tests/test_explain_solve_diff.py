"""explain, solve and diff: the course's board arithmetic, the sizes AlexNet accepts, AlexNet vs its
two-GPU original. Numbers come from the course (slides on AlexNet and the D=9 signal) and the
AlexNet paper, never from our own output."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT, SPECS, spec_text
from kind_table import each_row
from test_cli import run, write

import archcalc
from archcalc.layers import FeatureMap
from archcalc.views.diff import diff
from archcalc.views.explain import explain, render_text
from archcalc.views.solve import Progression, progressions, solve

SIGNAL_F5_S3 = spec_text([1, 9], "conv: {filters: 1, kernel: 5, stride: 3}")  # "Combinaison D-F-S invalide"


# --- explain ---------------------------------------------------------------------------------
ALEXNET_BOARD = """\
CONV1: conv 96 11x11, stride 4, relu
  input 3x227x227
  (D-F+2P)/S+1 = (227-11+2*0)/4+1 = 55
  output 96x55x55
  params = 11x11x3x96 + 96 = 34,944
  neurons = 55x55x96 = 290,400

POOL1: maxpool 3x3, stride 2
  input 96x55x55
  (D-F+2P)/S+1 = (55-3+2*0)/2+1 = 27
  output 96x27x27
  0 params
  neurons = 27x27x96 = 69,984
"""


def test_explain_alexnet_first_layers_as_on_the_board():
    # course: "(227-11)/4+1 = 55", "11x11x96x3 = 34,848" (+96 biases), pool "(55-3)/2+1 = 27", "0!"
    assert ALEXNET_BOARD in render_text(explain(archcalc.load(SPECS / "alexnet.yaml")))


def test_explain_dense_flatten_and_totals():
    explanation = explain(archcalc.load(SPECS / "alexnet.yaml"))
    fc6 = next(layer for layer in explanation.layers if layer.name == "FC6")
    assert "params = 9216x4096 + 4096 = 37,752,832" in fc6.steps
    assert "neurons = 4,096" in fc6.steps
    flatten = explanation.layers[10]
    assert flatten.name == "flatten1" and "0 neurons" in flatten.steps[-1]
    assert "output 9216" in flatten.steps
    assert explanation.totals[0].endswith("= 62,378,344")


def test_explain_grouped_convolution_and_batchnorm():
    grouped = explain(archcalc.load(SPECS / "alexnet_grouped.yaml"))
    conv2 = grouped.layers[3]
    assert conv2.name == "CONV2" and "params = 5x5x(96/2)x256 + 256 = 307,456" in conv2.steps
    bn = explain(archcalc.loads(spec_text([64, 56, 56], "batchnorm"))).layers[0]
    # nn.BatchNorm2d(64): weight, bias; running_mean, running_var (64 each) and num_batches_tracked (1)
    assert "params = 2x64 = 128 (gamma, beta); buffers = 2x64 + 1 = 129 (running mean, variance; batch counter)" \
        in bn.steps


def test_explain_dilation_and_same_padding():
    layer = explain(archcalc.loads(spec_text([1, 7, 7], "conv: {filters: 1, kernel: 3, dilation: 2, bias: false}"))).layers[0]
    assert "F_eff = d*(F-1)+1 = 2*(3-1)+1 = 5" in layer.steps
    assert "(D-F+2P)/S+1 = (7-5+2*0)/1+1 = 3" in layer.steps
    same = explain(archcalc.loads(spec_text([3, 32, 32], "conv: {filters: 6, kernel: 5, padding: same}"))).layers[0]
    assert "'same' padding (out = ceil(D/S)): P = 2" in same.steps  # the course's CIFAR example: 32x32x6
    assert "neurons = 32x32x6 = 6,144" in same.steps


def test_explain_non_square_axes_get_one_line_each():
    layer = explain(archcalc.loads(spec_text([4, 10, 12], "conv: {filters: 8, kernel: [3, 5], padding: [1, 2]}"))
                    ).layers[0]
    assert "H: (D-F+2P)/S+1 = (10-3+2*1)/1+1 = 10" in layer.steps
    assert "W: (D-F+2P)/S+1 = (12-5+2*2)/1+1 = 12" in layer.steps
    assert "params = 3x5x4x8 + 8 = 488" in layer.steps


def test_explain_recurrent_layers_per_gate_and_direction():
    # PyTorch's nn.LSTM(10, 20, num_layers=2, bidirectional=True): 15,040 parameters
    layer = explain(archcalc.loads(spec_text({"steps": 7, "features": 10},
                                             "lstm: {hidden: 20, layers: 2, bidirectional: true}"))).layers[0]
    assert "params = 2x4x(20x10 + 20x20 + 2x20) + 2x4x(20x40 + 20x20 + 2x20) = 15,040" in layer.steps
    assert "neurons = 7x20x2x2 = 560" in layer.steps
    embedding = explain(archcalc.loads(spec_text({"steps": 12}, "embedding: {vocabulary: 1000, dim: 64}"))).layers[0]
    assert "params = 1000x64 = 64,000 (a table, V x E)" in embedding.steps


@each_row("fragment,input_shape,params")
def test_every_kind_explains_its_counts(fragment, input_shape, params):
    layer = explain(archcalc.loads(spec_text(input_shape, fragment))).layers[0]
    counts = [step for step in layer.steps if "params" in step]
    assert len(counts) == 1
    assert (f"= {params:,}" in counts[0]) if params else counts[0].startswith("0 params")
    assert any(step.startswith(("neurons =", "0 neurons")) for step in layer.steps)


def test_explain_stops_at_the_invalid_layer_with_its_fixes(tmp_path):
    text = spec_text([1, 9], "conv: {filters: 1, kernel: 3, padding: 1}", "conv: {filters: 1, kernel: 5, stride: 3}",
                     "dense: 2")
    explanation = explain(archcalc.loads(text))
    assert [layer.name for layer in explanation.layers] == ["conv1", "conv2"]
    assert explanation.layers[0].error is None
    assert explanation.layers[1].steps == ("input 1x9", "(D-F+2P)/S+1 = (9-5+2*0)/3+1 = 2.33")
    assert explanation.totals == ()
    result = run("explain", write(tmp_path, text))
    assert result.exit_code == 2
    assert "(9-5+2*0)/3+1 = 2.33" in result.output
    assert "try padding: same (-> 3), stride 2 (-> 3), padding 1 (-> 3)" in result.output  # slides 56, 60: S=2 or P=1
    assert "Traceback" not in result.output


def test_explain_cli_ok():
    result = run("explain", SPECS / "signal1d.yaml")
    assert result.exit_code == 0
    assert "(D-F+2P)/S+1 = (9-3+2*0)/1+1 = 7" in result.output   # slide 45: 7 outputs
    assert "params = 3x1x1 = 3" in result.output


# --- solve -----------------------------------------------------------------------------------
def test_solve_alexnet_227_but_not_224():
    solution = solve(archcalc.load(SPECS / "alexnet.yaml"), input_shape=(3, 224, 224))
    (axis,) = solution.axes
    assert axis.axis == "H=W"
    assert 227 in axis.sizes and 224 not in axis.sizes
    # stride 4 then three stride-2 pools: the valid sizes repeat every 4*2*2*2 = 32
    assert [run.step for run in axis.progressions] == [32]
    assert axis.nearest() == 227
    assert not solution.valid
    conv1 = solution.repairs[0]
    assert conv1.layer == "CONV1"
    assert conv1.axes[0].arithmetic == "(224-11+2*0)/4+1 = 54.25"
    assert "padding" not in conv1.axes[0].changes   # 213 + 2P is odd: no symmetric padding helps
    assert conv1.axes[0].changes["stride"] == (3, 72)   # (224-11)/3+1 = 72


def test_solve_the_course_signal():
    # slides 56-58: D=9, F=5 works with S=1 or 2, not S=3; (D-5)/3+1 is whole for D = 5, 8, 11, ...
    solution = solve(archcalc.loads(SIGNAL_F5_S3), low=1, high=30)
    (axis,) = solution.axes
    assert axis.axis == "L"
    assert axis.sizes == (5, 8, 11, 14, 17, 20, 23, 26, 29)
    assert axis.progressions == (Progression(5, 29, 3),)
    (repair,) = solution.repairs
    assert repair.axes[0].changes == {"stride": (2, 3), "padding": (1, 3), "kernel": (6, 2)}


def test_solve_valid_spec_and_non_square_input():
    assert solve(archcalc.load(SPECS / "alexnet.yaml")).valid
    solution = solve(archcalc.loads(spec_text([3, 32, 40], "conv: {filters: 1, kernel: 5, stride: 3}")),
                     low=1, high=20)
    height, width = solution.axes
    assert (height.axis, width.axis) == ("H", "W")
    # H is scanned with W moved from the invalid 40 to its nearest valid size (41)
    assert height.sizes == width.sizes == (5, 8, 11, 14, 17, 20)
    assert [fix.axis for fix in solution.repairs[0].axes] == ["W"]


def test_solve_refuses_a_flat_input_and_an_empty_range():
    with pytest.raises(archcalc.SpecError, match="flat feature vector"):
        solve(archcalc.loads(spec_text([10], "dense: 2")))
    with pytest.raises(archcalc.SpecError, match="empty"):
        solve(archcalc.load(SPECS / "alexnet.yaml"), low=10, high=5)
    with pytest.raises(archcalc.SpecError, match="2 inputs"):
        solve(archcalc.load(SPECS / "captioning_vgg16.yaml"))


@pytest.mark.parametrize("sizes,expected", [
    ((), ()),
    (tuple(range(3, 11)), (Progression(3, 10, 1),)),
    ((67, 99, 131, 163), (Progression(67, 163, 32),)),
    ((2, 5, 8, 11, 12), (Progression(2, 11, 3), Progression(12, 12, 3))),   # an outlier stays apart
    ((1, 3, 9, 11, 17, 19), (Progression(1, 17, 8), Progression(3, 19, 8))),  # two phases of one period
])
def test_progressions(sizes, expected):
    assert progressions(sizes) == expected


def test_solve_cli(tmp_path):
    result = run("solve", SPECS / "alexnet.yaml", "--input", "3x224x224")
    assert result.exit_code == 0
    assert "67, 99, 131, ..., 995 (every 32): 30 sizes" in result.output
    assert "nearest valid H=W = 227" in result.output
    data = json.loads(run("solve", write(tmp_path, SIGNAL_F5_S3), "--range", "1..12", "-f", "json").output)
    assert data["valid"] is False and data["sizes"]["L"]["sizes"] == [5, 8, 11]
    assert data["repairs"][0]["axes"][0]["changes"]["stride"] == {"value": 2, "output": 3}
    assert run("solve", SPECS / "alexnet.yaml", "--range", "1-10").exit_code == 2
    assert run("solve", SPECS / "alexnet.yaml", "--range", "10..1").exit_code == 2


# --- diff ------------------------------------------------------------------------------------
def test_diff_alexnet_vs_two_gpu_original():
    # the paper's two-GPU AlexNet splits CONV2, CONV4, CONV5 in two groups
    a = archcalc.analyze(archcalc.load(SPECS / "alexnet.yaml"))
    b = archcalc.analyze(archcalc.load(SPECS / "alexnet_grouped.yaml"))
    result = diff(a, b)
    assert [layer.name for layer in result.changed] == ["CONV2", "CONV4", "CONV5"]
    assert all(layer.hyperparameters == {"groups": (1, 2)} for layer in result.changed)
    assert result.totals["params"] == (62_378_344, 60_965_224)
    conv2 = result.changed[0]
    assert conv2.counts["params"] == (5 * 5 * 96 * 256 + 256, 5 * 5 * 48 * 256 + 256)
    assert conv2.a.output_shape == conv2.b.output_shape == FeatureMap((256, 27, 27))
    macs_a, macs_b = conv2.counts["macs"]  # two groups halve a convolution's MACs
    assert macs_a == 2 * macs_b == 27 * 27 * 256 * 5 * 5 * 96


def test_diff_matches_by_name_then_position():
    # B inserts 'extra' before and 'dense: 3' before the output: the output layer (dense 2 in both)
    # meets its twin by its arguments, 'hidden' by its name
    a = archcalc.analyze(archcalc.loads(spec_text([8], "dense: {units: 4, name: hidden}", "dense: 2")))
    b = archcalc.analyze(archcalc.loads(spec_text([8], "dense: {units: 6, name: extra}",
                                                  "dense: {units: 4, name: hidden}", "dense: 3", "dense: 2")))
    rows = [(layer.a.name if layer.a else None, layer.b.name if layer.b else None, layer.status)
            for layer in diff(a, b).layers]
    assert rows == [(None, "extra", "only in B"), ("hidden", "hidden", "changed"),  # its input grew 8 -> 6
                    (None, "fc3", "only in B"), ("fc2", "fc4", "changed")]  # its input 4 -> 3


def test_diff_resnet18_vs_resnet34_adds_blocks_per_stage():
    # torchvision: ResNet-18 has [2, 2, 2, 2] basic blocks per stage, ResNet-34 [3, 4, 6, 3]
    # (11,689,512 and 21,797,672 parameters); every block of a stage is the same, so ResNet-34 adds
    # 1, 2, 4 and 1 blocks of 64, 128, 256 and 512 filters and changes nothing else
    a = archcalc.analyze(archcalc.load(SPECS / "resnet18.yaml"))
    b = archcalc.analyze(archcalc.load(SPECS / "resnet34.yaml"))
    result = diff(a, b)
    assert {layer.status for layer in result.layers} == {"same", "only in B"}
    added = [layer.b for layer in result.changed]
    instances = {stats.name.split(".")[0]: stats for stats in added if stats.name.endswith(".conv1")}
    assert sorted(stats.layer.filters for stats in instances.values()) == [64, 128, 128, 256, 256, 256, 256, 512]
    assert len(added) == 8 * 7  # a basic block: conv, bn, relu, conv, bn, add, relu
    assert {b.spec.blocks[name] for name in instances} == {"basic"}
    assert sum(stats.params for stats in added) == 21_797_672 - 11_689_512
    assert len(result.layers) == len(b.layers)


def test_diff_beyond_the_alignment_bound_still_pairs_each_layer_once(monkeypatch):
    # past ALIGNED_PAIRS the middle is matched by names and positions: every layer of each side
    # still appears exactly once, in order
    monkeypatch.setattr("archcalc.views.diff.ALIGNED_PAIRS", 0)
    a = archcalc.analyze(archcalc.load(SPECS / "resnet18.yaml"))
    b = archcalc.analyze(archcalc.load(SPECS / "resnet34.yaml"))
    layers = diff(a, b).layers
    assert [layer.b for layer in layers if layer.b] == list(b.layers)
    assert sorted(a.layers.index(layer.a) for layer in layers if layer.a) == list(range(len(a.layers)))


def test_diff_of_a_spec_with_itself_changes_nothing():
    vgg = archcalc.analyze(archcalc.load(SPECS / "vgg16.yaml"))
    result = diff(vgg, vgg)
    assert result.changed == () and len(result.layers) == len(vgg.layers)
    assert all(layer.a is layer.b for layer in result.layers)


BLOCK_SPEC = """\
input: [3, 16, 16]
blocks:
  unit:
    params: {filters: null, kernel: 3}
    layers:
      - conv: {filters: $filters, kernel: $kernel, padding: same, name: conv}
      - relu
layers:
"""


@pytest.mark.parametrize("a_layers, b_layers, expected", [
    # a block inserted in the middle: the later instances (renumbered unit2 -> unit3) meet their twins
    (["unit: 8", "unit: 16", "unit: 32"], ["unit: 8", "unit: 8", "unit: 16", "unit: 32"],
     [("unit1", "unit1", "same"), (None, "unit2", "only in B"), ("unit2", "unit3", "same"), ("unit3", "unit4", "same")]),
    # a block removed at the start
    (["unit: 8", "unit: 16", "unit: 32"], ["unit: 16", "unit: 32"],
     [("unit1", None, "only in A"), ("unit2", "unit1", "changed"), ("unit3", "unit2", "same")]),  # input 8 -> 3 channels
    # a kernel changed inside one instance: that instance changes, nothing else
    (["unit: 8", "unit: 16"], ["unit: 8", "unit: {filters: 16, kernel: 5}"],
     [("unit1", "unit1", "same"), ("unit2", "unit2", "changed")]),
])
def test_diff_matches_block_instances_by_structure(a_layers, b_layers, expected):
    def analysis(layers):
        return archcalc.analyze(archcalc.loads(BLOCK_SPEC + "".join(f"  - {x}\n" for x in layers)))

    rows: dict = {}  # (instance in A, instance in B): status, a layer's 'changed' winning
    for layer in diff(analysis(a_layers), analysis(b_layers)).layers:
        pair = tuple(side.name.split(".")[0] if side else None for side in (layer.a, layer.b))
        rows[pair] = "changed" if rows.get(pair) == "changed" else layer.status
    rows = [(*pair, status) for pair, status in rows.items()]
    assert rows == expected


def test_diff_cli(tmp_path):
    result = run("diff", SPECS / "alexnet.yaml", SPECS / "alexnet_grouped.yaml")
    assert result.exit_code == 0
    assert "3 of 16 layers differ" in result.output
    assert "614,656 -> 307,456 (-307,200)" in result.output and "groups 1 -> 2" in result.output
    assert "-1,413,120 (-2.27%)" in result.output
    data = json.loads(run("diff", SPECS / "alexnet.yaml", SPECS / "alexnet_grouped.yaml", "-f", "json").output)
    assert data["totals"]["params"] == {"a": 62_378_344, "b": 60_965_224, "change": -1_413_120}
    assert [row["b"]["name"] for row in data["layers"] if row["status"] == "changed"] == ["CONV2", "CONV4", "CONV5"]
    broken = write(tmp_path, SIGNAL_F5_S3)
    assert run("diff", SPECS / "alexnet.yaml", broken).exit_code == 2


@pytest.mark.parametrize("args", [["explain", "specs/alexnet.yaml"], ["solve", "specs/lenet1.yaml", "--range", "1..64"],
                                  ["diff", "specs/lenet1.yaml", "specs/lenet5.yaml"]], ids=lambda args: args[0])
def test_static_commands_never_import_torch(args):
    probe = (f"import sys, runpy\nsys.argv = ['archcalc', *{args!r}]\n"
             "try:\n    runpy.run_module('archcalc', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules, 'graphviz' in sys.modules, file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "False False"
