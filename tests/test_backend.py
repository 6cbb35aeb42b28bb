"""The PyTorch backend against PyTorch itself: every layer kind, every shipped spec, the course's
worked examples (values from the slides), export round-trips, and clean errors."""
import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from conftest import SPECS, shipped, shipped_specs, spec_text
from kind_table import each_row

import archcalc
from archcalc.cli import main
from archcalc.errors import SpecError
from archcalc.layers import lookup

torch = pytest.importorskip("torch")  # what holds without torch: test_backend_without_torch.py
from archcalc.backend import build, export_source, verify  # noqa: E402  (these import torch)
from archcalc.backend.export import export_checked  # noqa: E402
from archcalc.backend.plan import make_plan  # noqa: E402
from archcalc.backend.verification import parse_values  # noqa: E402

CPU_BYTES = 300 * 10**6  # specs lighter than this also run on the CPU; every spec runs on meta
QUICK_MACS = 10**8       # on the CPU, a spec beyond this (the torchvision networks) is in the slow tier


def analyze(text: str, **options):
    return archcalc.analyze(archcalc.loads(textwrap.dedent(text), "test.yaml"), **options)


def values_of(text: str, sample: list) -> dict:
    analysis = analyze(text)
    result = verify(analysis, device="cpu", values=parse_values(json.dumps(sample), analysis.input_shape))
    assert result.ok, result.disagreements
    return result.outputs


# --- every kind, every spec ---------------------------------------------------------------------

@each_row("kind,fragment,input_shape,output,params")
def test_every_layer_kind_compiles_and_pytorch_agrees(kind, fragment, input_shape, output, params):
    """The layer table's numbers (PyTorch's) against a real PyTorch run on the CPU, batch 2; a kind
    without a PyTorch form (opaque) is refused at its layer, saying so."""
    if lookup(kind).opaque:
        with pytest.raises(SpecError, match=r"layer opaque1: opaque layer \(.*\) has no PyTorch form"):
            verify(archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment)), batch=2), device="cpu")
        return
    result = verify(archcalc.analyze(archcalc.loads(spec_text(input_shape, fragment)), batch=2), device="cpu")
    assert result.ok, result.disagreements
    check = result.checks[0]
    assert check.actual_shape == tuple(output)
    assert check.actual_params == params


def verified_cases():
    """Every spec on meta (shapes and counts, no memory; quick: a cover of every kind); the lighter
    ones on the CPU too."""
    for param in shipped_specs(quick="kinds"):
        path = param.values[0]
        yield pytest.param(path, "meta", id=f"{path.name}-meta", marks=param.marks)
        totals = shipped(path, batch=2).totals
        if totals.forward_bytes < CPU_BYTES:
            yield pytest.param(path, "cpu", id=f"{path.name}-cpu",
                               marks=[pytest.mark.slow] if totals.batch_macs > QUICK_MACS else [])


@pytest.mark.parametrize("path,device", list(verified_cases()))
def test_every_shipped_spec_verifies(path, device):
    analysis = archcalc.analyze(archcalc.load(str(path)), batch=2)
    result = verify(analysis, device=device)
    assert result.ok, (device, result.disagreements)
    assert result.actual_params == analysis.totals.params


def test_meta_verifies_networks_far_larger_than_memory():
    vgg = archcalc.analyze(archcalc.load(str(SPECS / "vgg16.yaml")), batch=10_000)
    assert verify(vgg, device="meta").ok
    huge = analyze("""
        input: [400000]
        layers:
          - dense: 250000
        """)  # 10^11 weights: 400 GB in float32
    result = verify(huge, device="meta")
    assert result.ok and result.actual_params == 400_000 * 250_000 + 250_000


# --- the course's worked examples (slides 39-61, 105), exact values --------------------------------

SIGNAL = [40, 50, 70, 80, 90, 10, 20, 30, 40]
EDGES = [10, 20, -30, 40, -50]


@pytest.mark.parametrize("spec,sample,expected", [
    ("course_signal.yaml", SIGNAL, {"f3": [21, 21, 26, -7, 23, 8, 11], "f5": [35, -18, 33, 1, 32],
                                    "f5_stride2": [35, 33, 32], "f7": [44, -8, 44]}),
    ("course_padding.yaml", EDGES, {"valid": [-4, 8, -10], "zeros": [8, -4, 8, -10, -6],
                                    "reflect": [10, -4, 8, -10, 6], "replicate": [9, -4, 8, -10, -21]}),
])
def test_course_worked_examples(spec, sample, expected):
    analysis = archcalc.analyze(archcalc.load(str(SPECS / spec)))
    result = verify(analysis, device="cpu", values=parse_values(json.dumps(sample), analysis.input_shape))
    assert result.ok
    assert set(result.outputs) == set(expected)
    for name, values in expected.items():
        assert result.outputs[name][0] == pytest.approx(values, abs=1e-4), name


def test_course_one_by_one_filter_makes_grey():
    network = build(SPECS / "course_grey.yaml")
    image = torch.rand(2, 3, 32, 32) * 255
    assert torch.allclose(network(image), image.mean(dim=1, keepdim=True), atol=1e-3)


def test_run_values_prints_the_slide(tmp_path):
    result = CliRunner().invoke(main, ["run", str(SPECS / "course_signal.yaml"), "--values",
                                       "[40,50,70,80,90,10,20,30,40]"])
    assert result.exit_code == 0, result.output
    assert "output f3 (1x7): [[21, 21, 26, -7, 23, 8, 11]]" in result.output
    assert "output f7 (1x3): [[44, -8, 44]]" in result.output


def test_nested_weights_and_bias_values():
    outputs = values_of("""
        input: [2, 3]
        layers:
          - conv: {filters: 2, kernel: 2, weights: [[[1, 0], [0, 1]], [[1, 1], [1, 1]]], bias: [100, -100]}
          - flatten
          - dense: {units: 1, weights: [[1, 0, 0, -1]], bias: [0.5], activation: relu}
        """, [[1, 2, 3], [4, 5, 6]])
    # conv: filter 1 = x0[i] + x1[i+1] -> [6, 8] + 100; filter 2 = window sums -> [12, 16] - 100
    # dense: 106 - (-84) + 0.5 = 190.5, relu keeps it
    assert outputs["fc1"] == pytest.approx([190.5])


# --- padding PyTorch cannot express inline, rounding -----------------------------------------------

def test_same_with_stride_pads_the_extra_on_the_right():
    """TensorFlow's 'same' (the README's convention): D=4, F=3, S=2 -> total pad 1, on the right."""
    outputs = values_of("""
        input: [1, 4]
        layers:
          - conv: {filters: 1, kernel: 3, stride: 2, padding: same, bias: false, weights: [1, 1, 1]}
        """, [1, 2, 3, 4])
    assert outputs["conv1"][0] == pytest.approx([6, 7])  # [1+2+3, 3+4+0]; symmetric padding gives [3, 9]


def test_max_pool_same_padding_holds_minus_infinity():
    outputs = values_of("""
        input: [1, 4]
        layers:
          - maxpool: {kernel: 3, stride: 2, padding: same}
        """, [-1, -2, -3, -4])
    assert outputs["pool1"][0] == pytest.approx([-1, -3])  # a zero pad would win the last window


def test_even_kernel_same_and_dilated_pool_same_compile():
    result = verify(analyze("""
        input: [3, 9, 10]
        layers:
          - conv: {filters: 4, kernel: [2, 4], padding: same, padding_mode: reflect}
          - maxpool: {kernel: 3, stride: 1, dilation: 2, padding: same}
          - avgpool: {kernel: 2, stride: 2, padding: same, rounding: floor}
        """), device="cpu")
    assert result.ok, result.disagreements


def test_ceil_pool_is_pytorchs_ceil_mode_and_a_ceil_conv_is_refused():
    plan = make_plan(analyze(spec_text((3, 10, 10), "maxpool: {kernel: 3, stride: 2, rounding: ceil}")))
    assert "ceil_mode=True" in plan.steps[0].recipe.source()
    with pytest.raises(archcalc.SpecError, match="cannot round up") as caught:
        make_plan(analyze(spec_text((3, 10, 10), "conv: {filters: 2, kernel: 3, stride: 2, rounding: ceil}")))
    assert caught.value.layer == "conv1" and caught.value.location.line == 3


def test_rounding_override_reaches_pytorch():
    analysis = analyze(spec_text((1, 9), "conv: {filters: 1, kernel: 5, stride: 3}"), rounding="floor")
    result = verify(analysis, device="cpu")
    assert result.ok and result.checks[0].actual_shape == (1, 2)


# --- graphs, trainable, the API ----------------------------------------------------------------------

def test_graph_follows_inputs_and_returns_every_output():
    network = build(analyze("""
        input: [4, 8, 8]
        layers:
          - conv: {filters: 4, kernel: 3, padding: same, name: a}
          - add: {inputs: [a, input], name: sum}
          - conv: {filters: 2, kernel: 1, inputs: input, name: side}
          - concat: {inputs: [sum, side], name: joined}
        outputs: [joined, side]
        """))
    x = torch.randn(2, 4, 8, 8)
    joined, side = network(x)
    assert joined.shape == (2, 6, 8, 8) and side.shape == (2, 2, 8, 8)
    expected = torch.cat([network.a(x) + x, network.side(x)], dim=1)
    assert torch.allclose(joined, expected)


def test_trainable_false_freezes_the_layer():
    network = build(analyze(spec_text((10,), "dense: {units: 5, trainable: false}", "dense: 2")))
    assert [p.requires_grad for p in network.parameters()] == [False, False, True, True]


def test_build_accepts_a_path_a_spec_or_an_analysis_and_a_dtype():
    spec = archcalc.load(str(SPECS / "lenet5.yaml"))
    for source in (SPECS / "lenet5.yaml", spec, archcalc.analyze(spec)):
        assert sum(p.numel() for p in build(source, device="meta").parameters()) == 44_426
    network = build(spec, dtype="float64")
    assert network(torch.randn(1, 1, 28, 28, dtype=torch.float64)).dtype == torch.float64
    assert archcalc.build is build  # the lazy export from archcalc/__init__


# --- export -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", shipped_specs(quick="kinds"))
def test_export_round_trips_on_meta(path):
    """export_checked runs the exported class on meta: parameter count and output shapes must match."""
    analysis = archcalc.analyze(archcalc.load(str(path)))
    source = export_checked(make_plan(analysis))
    assert f"{analysis.totals.params:,} parameters" in source


@pytest.mark.parametrize("name", [pytest.param("resnet18.yaml", marks=pytest.mark.slow), "course_signal.yaml",
                                  pytest.param("inception.yaml", marks=pytest.mark.slow)])
def test_exported_code_computes_what_the_built_network_computes(name):
    analysis = archcalc.analyze(archcalc.load(str(SPECS / name)))
    namespace = {}
    exec(export_source(analysis), namespace)
    exported = namespace[make_plan(analysis).class_name]().eval()
    network = build(analysis).eval()
    exported.load_state_dict(network.state_dict())  # same submodule names, same parameters
    x = torch.randn(2, *analysis.input_shape)
    with torch.no_grad():
        mine, theirs = network(x), exported(x)
    mine, theirs = (t if isinstance(t, tuple) else (t,) for t in (mine, theirs))
    for a, b in zip(mine, theirs, strict=True):  # as many outputs
        assert torch.allclose(a, b)


def test_export_command_writes_code_that_needs_only_torch(tmp_path):
    """LeNet-5 (the course's 44,426 parameters): the written file runs where archcalc cannot be imported."""
    target = tmp_path / "model.py"
    result = CliRunner().invoke(main, ["export", str(SPECS / "lenet5.yaml"), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "class LeNet5" in result.output and "44,426" in result.output
    code = ("import sys; sys.modules['archcalc'] = None\n"  # importing archcalc would now fail
            f"sys.path.insert(0, {str(tmp_path)!r})\n"
            "import torch, model\n"
            "net = model.LeNet5()\n"
            "print(tuple(net(torch.randn(1, 1, 28, 28)).shape), sum(p.numel() for p in net.parameters()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["(1,", "10)", "44426"]


def test_exported_forward_reads_like_hand_written_code():
    source = export_source(SPECS / "course_padding.yaml")
    assert ("self.reflect = preset(nn.Conv1d(1, 1, 3, padding=1, bias=False, padding_mode='reflect'), "
            "weight=(0.1, 0.2, 0.3))") in source
    # 'input' is a builtin: the variable takes PEP 8's trailing underscore
    assert "def forward(self, input_):" in source and "reflect = self.reflect(input_)" in source
    assert "return valid, zeros, reflect, replicate" in source
    chain = export_source(SPECS / "lenet5.yaml")
    assert "        x = self.conv1(x)\n" in chain and "        return x\n" in chain


# --- the run command: table, JSON, errors, exit codes ---------------------------------------------

def test_run_table_and_json():
    result = CliRunner().invoke(main, ["run", str(SPECS / "alexnet.yaml"), "--device", "meta"])
    assert result.exit_code == 0, result.output
    assert "62,378,344" in result.output and "PyTorch agrees with the analyzer on all 16 layers" in result.output
    data = json.loads(CliRunner().invoke(main, ["run", str(SPECS / "lenet1.yaml"), "-f", "json", "--device", "cpu",
                                                "-n", "2", "--train", "-b", "3"]).output)
    assert data["ok"] and data["device"] == "cpu" and data["batch"] == 3
    assert data["totals"]["actual_params"] == 3_246
    assert [t["mode"] for t in data["timings"]] == ["forward", "train"]
    assert all(t["samples_per_second"] > 0 for t in data["timings"])


def test_a_disagreement_exits_1_naming_the_layer_and_number(monkeypatch, tmp_path):
    from archcalc.layers.dense import Dense
    from archcalc.layers.recipe import module

    monkeypatch.setattr(Dense, "to_torch", lambda self, x: module("nn.Linear", x[-1], self.units + 1))
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text((4,), "dense: 3"))
    result = CliRunner().invoke(main, ["run", str(spec), "--device", "cpu"])
    assert result.exit_code == 1
    assert "layer fc1: output shape: analyzer 3, PyTorch 4" in result.output
    assert "layer fc1: parameters: analyzer 15, PyTorch 20" in result.output


def test_pytorch_refusing_a_layer_exits_1(monkeypatch, tmp_path):
    from archcalc.layers.dense import Dense
    from archcalc.layers.recipe import module

    monkeypatch.setattr(Dense, "to_torch", lambda self, x: module("nn.Linear", x[-1] + 1, self.units))
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text((4,), "dense: 3", "relu"))
    result = CliRunner().invoke(main, ["run", str(spec), "--device", "cpu"])
    assert result.exit_code == 1
    assert "layer fc1: PyTorch refused it" in result.output


@pytest.mark.parametrize("args,message", [
    (["--dtype", "int8"], "PyTorch cannot run a network in int8"),
    (["--values", "[1, 2]"], "--values: has 2 numbers but the input needs 9"),
    (["--values", "[1, x]"], "--values: must contain only numbers"),
    (["--values", "[1,2,3,4,5,6,7,8,9]", "--device", "meta"], "the meta device only tracks shapes"),
    (["--values", "[1,2,3,4,5,6,7,8,9]", "--batch", "2"], "--values: one sample, but --batch is 2"),
])
def test_run_usage_errors_exit_2(args, message):
    result = CliRunner().invoke(main, ["run", str(SPECS / "signal1d.yaml"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_cuda_asked_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(main, ["run", str(SPECS / "signal1d.yaml"), "--device", "cuda"])
    assert result.exit_code == 2 and "PyTorch sees no CUDA GPU" in result.output
