"""Issue 11's backend cases: specs that crashed run and export, or made export write code that
does not compile, or ran away. Each test is named after its case; the expectations come from
PyTorch itself (what it accepts, what it refuses) and from Python's own rules for identifiers."""
import builtins
import keyword
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from click.testing import CliRunner
from conftest import spec_text
from torch import nn

import archcalc
from archcalc.backend import build, verify
from archcalc.backend.export import export_checked
from archcalc.backend.graph import Network
from archcalc.backend.plan import identifiers, make_plan
from archcalc.cli import main
from archcalc.errors import SpecError
from archcalc.layers.arguments import number

LARGEST = 2**63 - 1


def analyze(text: str, **options):
    return archcalc.analyze(archcalc.loads(textwrap.dedent(text), "test.yaml"), **options)


def cli(*args):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def exported_model(analysis):
    """The class export writes, executed from its source, and an instance of it."""
    source = export_checked(make_plan(analysis))
    namespace: dict = {}
    exec(compile(source, "exported.py", "exec"), namespace)  # noqa: S102 - the code under test
    return source, namespace[make_plan(analysis).class_name]()


def assert_export_matches_build(analysis):
    """The exported class has the state dict keys of build's Network, loads its weights, and then
    computes the same outputs (eval mode, CPU)."""
    source, exported = exported_model(analysis)
    built = build(analysis, seed=0).eval()
    assert list(exported.state_dict()) == list(built.state_dict())
    exported.load_state_dict(built.state_dict())
    exported.eval()
    sample = torch.randn(2, *analysis.input_shape)
    assert torch.equal(exported(sample), built(sample))
    return source


# --- batchnorm over a flat vector ----------------------------------------------------------------

BATCHNORM_ON_VECTOR = spec_text([8], "batchnorm")


def test_export_batchnorm_over_flat_vector(tmp_path):
    spec = tmp_path / "bn.yaml"
    spec.write_text(BATCHNORM_ON_VECTOR)
    result = cli("export", spec, "-o", tmp_path / "bn.py")
    assert result.exit_code == 0, result.output
    assert_export_matches_build(archcalc.analyze(archcalc.load(str(spec))))


@pytest.mark.parametrize("shape", [[8], [4, 1], [4, 1, 1], [4, 2], [4, 3, 3], [2, 1, 1, 1]])
def test_batchnorm_training_batch_is_what_pytorch_accepts(shape):
    """Layer.training_batch against PyTorch: batch 1 trains exactly where PyTorch allows it."""
    analysis = analyze(spec_text(shape, "batchnorm"))
    stats = analysis.layers[0]
    module = build(analysis).train()
    try:
        module(torch.randn(1, *shape))
        accepted = True
    except ValueError as exc:
        assert "Expected more than 1 value per channel when training" in str(exc)
        accepted = False
    assert stats.layer.training_batch(stats.input_shape) == (1 if accepted else 2)
    module(torch.randn(2, *shape))  # batch 2 always trains


def test_run_train_batch_1_on_batchnorm_over_vector_is_refused(tmp_path):
    spec = tmp_path / "bn.yaml"
    spec.write_text(BATCHNORM_ON_VECTOR)
    result = cli("run", spec, "--device", "cpu", "--train", "-n", "1")
    assert result.exit_code == 2
    assert "bn.yaml:3:5: error: layer bn1: PyTorch trains batchnorm on 8 only at batch 2 or more, " \
           "but --batch is 1" in result.output
    assert "hint: use --batch 2" in result.output
    trained = cli("run", spec, "--device", "cpu", "--train", "-n", "1", "--batch", "2")
    assert trained.exit_code == 0, trained.output
    assert "forward + backward" in trained.output
    assert cli("run", spec, "--device", "cpu", "-n", "1").exit_code == 0  # inference is eval mode


# --- names: Python identifiers derived from data ----------------------------------------------------

MODULE_ATTRIBUTES = ["training", "_modules", "_parameters", "_buffers", "forward", "to", "state_dict",
                     "cuda", "eval", "run", "submodule", "_walk", "_by_name", "_spec_name", "self", "x",
                     "torch", "nn", "Add", "Concat", "preset", "max", "None", "class", "__init__", "__w"]


@pytest.mark.parametrize("name", MODULE_ATTRIBUTES)
def test_layer_named_like_module_attribute_runs_and_exports(name):
    analysis = analyze(f"""
        input: [4]
        layers:
          - dense: {{units: 3, name: "{name}"}}
          - relu
        """)
    result = verify(analysis, device="cpu")
    assert result.ok, result.disagreements
    source = assert_export_matches_build(analysis)
    assert f"  # {name}\n" in source  # the spec's name beside the attribute that stands for it


def test_network_inputs_named_like_module_attributes():
    analysis = analyze("""
        inputs: {training: [4], forward: [4], __x: [4]}
        layers:
          - add: {inputs: [training, forward, __x], name: to}
        """)
    assert verify(analysis, device="cpu").ok
    source, exported = exported_model(analysis)
    assert "def forward(self, training_, forward_, x_):" in source
    built = build(analysis).eval()
    samples = [torch.randn(2, 4) for _ in range(3)]
    assert torch.equal(exported(*samples), built(*samples))


def test_values_on_two_inputs_is_a_usage_error(tmp_path):
    spec = tmp_path / "two.yaml"
    spec.write_text("inputs: {a: [2], b: [2]}\nlayers:\n  - add: {inputs: [a, b]}\n")
    result = cli("run", spec, "--device", "cpu", "--values", "[1, 2]")
    assert result.exit_code == 2
    assert "error: --values: fills one input, but this network has 2 (a, b)" in result.output


def test_every_network_and_module_attribute_as_a_layer_name():
    """All of them at once: the names a built Network answers to, nn.Module's instance attributes."""
    names = sorted(set(dir(Network)) | set(vars(nn.Module())))
    layers = "\n".join(f'  - dense: {{units: 2, name: "{name}"}}' for name in names)
    analysis = archcalc.analyze(archcalc.loads(f"input: [2]\nlayers:\n{layers}\n", "test.yaml"))
    assert verify(analysis, device="cpu").ok
    assert_export_matches_build(analysis)


# each case starts a Python that imports torch (2 s of CPU): one is quick
@pytest.mark.parametrize("name", ["none", *(pytest.param(name, marks=pytest.mark.slow)
                                            for name in ["add", "concat", "True", "torch", "nn", "exception", "preset"])])
def test_export_network_named_like_python_or_helper(name, tmp_path):
    """The class name must not be a keyword, a builtin or a helper the file defines (Add, Concat)."""
    analysis = analyze(f"""
        name: "{name}"
        input: [4]
        layers:
          - dense: {{units: 4, name: a}}
          - add: {{inputs: [input, a]}}
          - concat: {{inputs: [add1, a]}}
        """)
    source = assert_export_matches_build(analysis)
    path = tmp_path / "model.py"
    path.write_text(source, encoding="utf-8")
    class_name = make_plan(analysis).class_name
    run = subprocess.run([sys.executable, "-c", f"import runpy; m = runpy.run_path({str(path)!r})['{class_name}']()"
                          f"; import torch; print(tuple(m(torch.randn(2, 4)).shape))"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(2, 8)"


@pytest.mark.parametrize("names", [["a²"], ["ﬁlter", "filter"], ["a\0b"], ["a\nb", "a\rb"], ["__w"],
                                   ["卷积", "層"], ["x\u202eevil"], ["a\\"], ["é", "e", "e\u0301"]],
                         ids=["superscript", "nfkc-equal", "nul", "newlines", "mangled", "cjk", "bidi",
                              "backslash", "accents"])
def test_export_hostile_layer_names_compile_and_match_build(names):
    """Python refuses 'a²' as an identifier and folds 'ﬁlter' into 'filter' (NFKC); a NUL byte
    cannot be in a source file; '__w' is mangled inside a class; a newline would end a comment."""
    entries = "\n".join(f"  - dense: {{units: 3, name: {_yaml_string(name)}}}" for name in names)
    analysis = archcalc.analyze(archcalc.loads(f"input: [3]\nlayers:\n{entries}\n", "test.yaml"))
    assert [stats.name for stats in analysis.layers] == names
    source = assert_export_matches_build(analysis)
    attributes = [step.attribute for step in make_plan(analysis).steps]
    assert len(set(attributes)) == len(names)
    for attribute in attributes:
        assert attribute.isidentifier() and attribute.isascii() and not attribute.startswith("_")
        assert not keyword.iskeyword(attribute) and not hasattr(builtins, attribute)
        assert not hasattr(nn.Module(), attribute)
    assert "\0" not in source
    assert all(line.isprintable() for line in source.splitlines())


def test_double_underscore_name_state_dicts_agree():
    analysis = analyze("""
        input: [4]
        layers:
          - dense: {units: 2, name: __w}
        """)
    _, exported = exported_model(analysis)
    assert list(exported.state_dict()) == list(build(analysis).state_dict()) == ["w.weight", "w.bias"]


def test_identifiers_are_unique_and_linear():
    names = ["a", "a", "a_2", "a!", "a?", "filter", "ﬁlter", *["é"] * 1000]
    found = identifiers(names)
    assert len(set(found)) == len(found)
    assert found[:7] == ["a", "a_2", "a_2_2", "a_", "a_3", "filter_", "filter_2"]


def _yaml_string(name: str) -> str:
    """A YAML double-quoted scalar for any name (YAML's escapes are JSON's, plus \\0)."""
    return '"' + "".join(f"\\x{ord(c):02x}" if ord(c) < 32 else ("\\\\" if c == "\\" else c) for c in name) + '"'


# --- nan and infinity ------------------------------------------------------------------------------

@pytest.mark.parametrize("fragment,where", [("dropout: .nan", "3:14"), ("dropout: {rate: .nan}", "3:21"),
                                            ("leakyrelu: {negative_slope: .inf}", "3:33"),
                                            ("batchnorm: {momentum: -.inf}", "3:27"),
                                            ("lrn: {size: 3, alpha: .NaN}", "3:27")])
def test_nan_and_infinity_are_refused_where_written(fragment, where, tmp_path):
    spec = tmp_path / "nan.yaml"
    spec.write_text(spec_text([4, 3, 3], fragment))
    result = cli("inspect", spec)
    assert result.exit_code == 2
    assert result.output.startswith(f"{spec}:{where}: error: layer ")
    assert "must be a finite number, got " in result.output


def test_number_refuses_an_integer_beyond_a_float():
    assert number(10**300) == 10**300
    with pytest.raises(SpecError, match="must be a finite number"):
        number(10**400)


# --- sizes beyond PyTorch's int64 storage ---------------------------------------------------------

HUGE_CONV = spec_text([3, 8, 8], f"conv: {{filters: {LARGEST}, kernel: 3}}")


def test_conv_filters_2_63_minus_1_refused_before_building(tmp_path):
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE_CONV)
    inspected = cli("inspect", spec, "-f", "json")
    assert inspected.exit_code == 0  # the static analysis counts it exactly
    assert f"{LARGEST * (3 * 3 * 3) + LARGEST}" in inspected.output.replace(",", "")
    numbers = LARGEST * 28
    for command in (["run", spec, "--device", "meta"], ["run", spec, "--device", "cpu"],
                    ["export", spec, "-o", tmp_path / "huge.py"]):
        result = cli(*command)
        assert result.exit_code == 2, result.output
        assert (f"huge.yaml:3:5: error: layer conv1: its parameters and buffers hold {numbers:,} numbers, "
                f"{numbers * 4:,} bytes in float32: more than PyTorch's largest tensor") in result.output
    assert not (tmp_path / "huge.py").exists()
    with pytest.raises(SpecError, match="more than PyTorch's largest tensor"):
        build(str(spec), device="meta")


def test_run_batch_2_63_minus_1_refused(tmp_path):
    spec = tmp_path / "small.yaml"
    spec.write_text(spec_text([3, 8, 8], "conv: {filters: 4, kernel: 3}"))
    result = cli("run", spec, "--device", "meta", "--batch", LARGEST)
    assert result.exit_code == 2
    assert (f"error: network input input (3x8x8) at batch {LARGEST:,} holds {LARGEST * 192:,} numbers"
            in result.output)
    assert "hint: lower --batch" in result.output
    assert cli("run", spec, "--device", "meta", "--batch", 2**50).exit_code == 0  # meta tensors hold it


def test_largest_tensor_is_pytorchs():
    """The limit is PyTorch's own: 2^61-1 float32 numbers build on meta, 2^61 do not."""
    fits, over = 2**61 - 1, 2**61
    torch.empty(fits, device="meta")
    with pytest.raises(RuntimeError, match="Storage size calculation overflowed"):
        torch.empty(over, device="meta")
    assert verify(analyze(spec_text([fits], "relu")), device="meta").ok
    with pytest.raises(SpecError, match="more than PyTorch's largest tensor"):
        verify(analyze(spec_text([over], "relu")), device="meta")


# --- runaway work: cost per layer stays flat ------------------------------------------------------

def _cpu_seconds(work) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def _chain(layers: int, layer: str, shape: str):
    return analyze(f"input: {shape}\nlayers:\n  - repeat: {{times: {layers}, layers: [{layer}]}}\n")


@pytest.mark.slow
def test_run_100000_relus_is_linear():
    """run looked up each layer's module by searching the layer names: 207 s at 100,000 relus.
    Four times the layers must cost about four times the CPU (quadratic work would cost 16)."""
    small, large = _chain(10_000, "relu", "[4]"), _chain(40_000, "relu", "[4]")
    ratio = _cpu_seconds(lambda: verify(large, device="cpu")) / _cpu_seconds(lambda: verify(small, device="cpu"))
    assert ratio < 6, ratio


@pytest.mark.slow
def test_export_200000_convs_is_linear():
    small = _chain(5_000, "conv: {filters: 1, kernel: 1}", "[1, 4, 4]")
    large = _chain(20_000, "conv: {filters: 1, kernel: 1}", "[1, 4, 4]")
    ratio = (_cpu_seconds(lambda: export_checked(make_plan(large))) /
             _cpu_seconds(lambda: export_checked(make_plan(small))))
    assert ratio < 6, ratio


# --- recurrent layers over long sequences on the meta device (found by the adversarial suite) -----

LONG_GRU = spec_text({"steps": 2**50, "features": 3}, "gru: {hidden: 12, bidirectional: true}")


def test_recurrent_over_2_50_steps_runs_and_exports_on_meta(tmp_path):
    """PyTorch computes a recurrence on meta step by step: 2^50 steps ended in std::bad_alloc,
    reported as a disagreement (exit 1) by run and as a backend failure by export."""
    spec = tmp_path / "long.yaml"
    spec.write_text(LONG_GRU)
    result = cli("run", spec, "--device", "meta")
    assert result.exit_code == 0, result.output
    assert f"{2**50}x24" in result.output
    assert cli("export", spec, "-o", tmp_path / "long.py").exit_code == 0


def test_recurrent_on_meta_costs_what_one_step_does():
    """A 1,000-step GRU took 12 s to check on meta (PyTorch's meta recurrence is a Python loop over
    the steps); 10,000 steps over a minute. 1,000 times the steps must cost about the same CPU."""
    short = analyze(spec_text({"steps": 2, "features": 3}, "gru: {hidden: 12}"))
    long = analyze(spec_text({"steps": 2_000, "features": 3}, "gru: {hidden: 12}"))
    verify(short, device="meta")  # warm-up: imports and PyTorch's first dispatch
    ratio = _cpu_seconds(lambda: verify(long, device="meta")) / _cpu_seconds(lambda: verify(short, device="meta"))
    assert ratio < 5, ratio


@pytest.mark.parametrize("kind, arguments", [("rnn", "hidden: 5"), ("lstm", "hidden: 4, layers: 2, bidirectional: true"),
                                             ("gru", "hidden: 3, returns: last, bidirectional: true"),
                                             ("lstm", "hidden: 4, returns: last, layers: 3"),
                                             ("rnn", "hidden: 2, bias: single")])
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_recurrent_meta_shapes_are_the_cpu_shapes(kind, arguments, steps):
    """On meta the first step gives the shapes; they are those PyTorch computes on the CPU, with and
    without an initial state (an encoder's last state as second input)."""
    hidden = int(arguments.split(",")[0].removeprefix("hidden: "))
    sequence, state = torch.randn(2, steps, 3), torch.randn(2, hidden)
    alone = analyze(spec_text({"steps": steps, "features": 3}, f"{kind}: {{{arguments}}}"))
    with_state = analyze(f"""
        inputs: {{sequence: {{steps: {steps}, features: 3}}, state: [{hidden}]}}
        layers:
          - {kind}: {{{arguments}, inputs: [sequence, state]}}
        """)
    for analysis, inputs in ((alone, (sequence,)), (with_state, (sequence, state))):
        on_cpu, on_meta = build(analysis), build(analysis, device="meta")
        assert on_meta(*(x.to("meta") for x in inputs)).shape == on_cpu(*inputs).shape
