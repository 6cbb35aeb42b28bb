"""The habits people bring from PyTorch, Keras, torchinfo and the course (issue 12): each case of
the issue's list, as a user meets it on the command line."""
import json

import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS
from conftest import run_cli as run
from conftest import write_spec as write

from archcalc.cli import main


# --- channels-last inputs -------------------------------------------------------------------
def test_a_channels_last_image_is_warned_about_and_still_analyzed(tmp_path):
    spec = write(tmp_path, "input: [32, 32, 3]\nlayers:\n  - conv: {filters: 8, kernel: 3}\n")
    result = run("inspect", spec, "-f", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["layers"][0]["output_shape"] == [8, 30, 1]  # as written: 32 channels of 32x3
    assert result.stderr.splitlines() == [
        f"{spec}:1:8: warning: input [32, 32, 3] looks channels-last (height, width, channels); archcalc reads "
        "shapes channels first, as PyTorch does: 32 channels of 32x3",
        "  hint: did you mean [3, 32, 32]?"]


@pytest.mark.parametrize("shape", ["[3, 32, 32]", "[1, 28, 28]", "[4, 4, 4]", "[32, 16, 3]", "[64, 64, 8]",
                                   "{steps: 32, features: 3}"])
def test_channels_first_and_unlike_images_pass_quietly(tmp_path, shape):
    spec = write(tmp_path, f"input: {shape}\nlayers:\n  - relu\n")
    result = run("inspect", spec, "-f", "json")
    assert result.exit_code == 0 and result.stderr == ""


def test_no_shipped_spec_draws_a_warning():
    for path in sorted(SPECS.glob("*.yaml")):
        assert run("inspect", path, "-f", "json").stderr == "", path.name


def test_input_that_drops_an_axis_is_warned_about():
    result = run("inspect", SPECS / "vgg16.yaml", "--input", "224x224", "-f", "json")
    assert result.exit_code == 0  # a valid (1D) network, as asked
    assert json.loads(result.stdout)["input_shape"] == [224, 224]
    assert result.stderr.splitlines() == [
        "warning: --input 224x224 has 2 axes but the spec's input 3x224x224 has 3: the network now reads "
        "a 1D map of 224 channels x 224",
        "  hint: did you mean 3x224x224?"]


def test_channels_last_input_option_is_warned_about():
    result = run("explain", SPECS / "alexnet.yaml", "--input", "227x227x3")
    assert "warning: --input 227x227x3 looks channels-last" in result.stderr
    assert "did you mean 3x227x227?" in result.stderr


@pytest.mark.parametrize("text", ["3x224x224", "3×224×224", "[3, 224, 224]", "[3,224,224]", "(3, 224, 224)",
                                  "3,224,224", " 3x224x224 "])
def test_input_option_takes_every_documented_form(text):
    result = run("inspect", SPECS / "vgg16.yaml", "--input", text, "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input_shape"] == [3, 224, 224]
    assert result.stderr == ""


def test_input_option_takes_a_sequence():
    result = run("inspect", SPECS / "min_char_rnn.yaml", "--input", "{steps: 10, features: 65}", "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input_shape"] == [10, 65]


@pytest.mark.parametrize("text", ["3xfoo", "", "[3, 224", "3x-1x2", "3x٣x3"])
def test_unreadable_input_option_is_a_usage_error(text):
    result = run("inspect", SPECS / "vgg16.yaml", "--input", text)
    assert result.exit_code == 2 and result.output.startswith("error: --input: ")


def test_sizes_written_as_text_in_a_spec(tmp_path):
    as_text = write(tmp_path, "input: 3x32x32\nlayers:\n  - conv: {filters: 8, kernel: 3x3, stride: 1x1, "
                              "padding: 1x1}\n  - maxpool: {kernel: 2x2}\n", "text.yaml")
    as_lists = write(tmp_path, "input: [3, 32, 32]\nlayers:\n  - conv: {filters: 8, kernel: [3, 3], "
                               "stride: [1, 1], padding: [1, 1]}\n  - maxpool: {kernel: [2, 2]}\n", "lists.yaml")
    text, lists = (json.loads(run("inspect", path, "-f", "json").stdout) for path in (as_text, as_lists))
    assert [layer["output_shape"] for layer in text["layers"]] == [[8, 32, 32], [8, 16, 16]]
    assert text["layers"] == lists["layers"]


def test_a_kernel_text_that_is_not_sizes_is_refused(tmp_path):
    spec = write(tmp_path, "input: [3, 32, 32]\nlayers:\n  - conv: {filters: 8, kernel: 3x}\n")
    result = run("inspect", spec)
    assert result.exit_code == 2 and "kernel: must be a whole number >= 1, got '3x'" in result.output


# --- set-up ---------------------------------------------------------------------------------
def test_graphviz_is_a_dependency_and_hints_work_from_a_checkout():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dependency.startswith("graphviz") for dependency in project["dependencies"])
    assert "render" not in project["optional-dependencies"]
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        assert "archcalc[" not in page.read_text(), page  # 'pip install archcalc[...]' fails in a checkout


# --- names people already know --------------------------------------------------------------
def layer_error(tmp_path, layer):
    spec = write(tmp_path, f"input: [3, 32, 32]\nlayers:\n  - {layer}\n")
    result = run("inspect", spec)
    assert result.exit_code == 2, result.output
    return result.output


@pytest.mark.parametrize("layer, hint", [
    ("conv: {out_channels: 8, kernel: 3}", "did you mean 'filters'? (archcalc's name for out_channels)"),
    ("conv: {filters: 8, kernel_size: 3}", "did you mean 'kernel'? (archcalc's name for kernel_size)"),
    ("conv: {filters: 8, kernel: 3, strides: 2}", "did you mean 'stride'? (archcalc's name for strides)"),
    ("conv: {filters: 8, kernel: 3, dilation_rate: 2}", "did you mean 'dilation'?"),
    ("conv: {filters: 8, kernel: 3, use_bias: false}", "did you mean 'bias'? (archcalc's name for use_bias)"),
    ("conv: {filters: 8, kernel: 3, in_channels: 3}", "leave it out: archcalc reads in_channels from the layer's input"),
    ("maxpool: {pool_size: 2}", "did you mean 'kernel'? (archcalc's name for pool_size)"),
    ("maxpool: {kernel_size: 2}", "did you mean 'kernel'?"),
    ("dense: {out_features: 10}", "did you mean 'units'? (archcalc's name for out_features)"),
    ("lstm: {units: 10}", "did you mean 'hidden'? (archcalc's name for units)"),
    ("lstm: {hidden_size: 10}", "did you mean 'hidden'? (archcalc's name for hidden_size)"),
    ("gru: {hidden: 10, num_layers: 2}", "did you mean 'layers'? (archcalc's name for num_layers)"),
    ("groupnorm: {num_groups: 4}", "did you mean 'groups'? (archcalc's name for num_groups)"),  # nn.GroupNorm's
    ("embedding: {num_embeddings: 10, dim: 4}", "did you mean 'vocabulary'?"),
    ("dropout: {p: 0.2}", "did you mean 'rate'? (archcalc's name for p)"),
    ("upsample: {scale_factor: 2}", "did you mean 'scale'?"),
    ("nn.ReLU", "did you mean 'relu'? (archcalc's name for nn.ReLU)"),
    ("nn.Conv2d: {filters: 8, kernel: 3}", "did you mean 'conv2d'?"),
    ("torch.nn.Linear: 10", "did you mean 'dense'? (archcalc's name for torch.nn.Linear)"),
    ("MaxPooling2D: 2", "did you mean 'maxpool'? (archcalc's name for MaxPooling2D)"),
    ("nn.MaxPool2d: 2", "did you mean 'maxpool'?"),
    ("AveragePooling2D: 2", "did you mean 'avgpool'?"),
    ("BatchNormalization", "did you mean 'batchnorm'? (archcalc's name for BatchNormalization)"),
    ("nn.BatchNorm2d", "did you mean 'batchnorm'?"),
    ("GlobalAveragePooling2D", "did you mean 'globalavgpool'?"),
    ("Conv2DTranspose: {filters: 8, kernel: 2}", "did you mean 'convtranspose'?"),
    ("nn.ConvTranspose2d: {filters: 8, kernel: 2}", "did you mean 'convtranspose'?"),
    ("UpSampling2D", "did you mean 'upsample'?"),
    ("conv: {filters: 8, kernel: 3, activation: nn.ReLU}", "did you mean 'relu'? (archcalc's name for nn.ReLU)"),
    ("conv: {filters: 8, kernel: 3, activation: nn.SiLU}", "did you mean 'silu'? (archcalc's name for nn.SiLU)"),
    ("conv: {filters: 8, kernel: 3, activation: rellu}", "did you mean 'relu'?"),
])
def test_pytorch_and_keras_names_are_known(tmp_path, layer, hint):
    assert f"  hint: {hint}" in layer_error(tmp_path, layer)


def test_every_known_name_points_at_a_field_of_its_own_kind():
    from archcalc.layers import REGISTRY
    from archcalc.layers.base import FOREIGN

    assert set(FOREIGN.values()) <= set(REGISTRY)
    for cls in REGISTRY.values():
        for name, spec_field in cls.spec_fields.items():
            for foreign in spec_field.metadata["known_as"]:
                assert foreign not in cls.spec_fields, (cls.kind, foreign)
                assert cls.key_hint(foreign) == f"did you mean '{name}'? (archcalc's name for {foreign})"


def test_kinds_and_activations_in_any_case(tmp_path):
    mixed = write(tmp_path, "input: [3, 32, 32]\nlayers:\n  - Conv: {filters: 8, kernel: 3, activation: ReLU}\n"
                            "  - BatchNorm\n  - LeakyReLU\n  - MaxPool: 2\n  - Flatten\n"
                            "  - Dense: {units: 10, activation: Softmax}\n", "mixed.yaml")
    lower = write(tmp_path, "input: [3, 32, 32]\nlayers:\n  - conv: {filters: 8, kernel: 3, activation: relu}\n"
                            "  - batchnorm\n  - leakyrelu\n  - maxpool: 2\n  - flatten\n"
                            "  - dense: {units: 10, activation: softmax}\n", "lower.yaml")
    a, b = (run("inspect", path, "-f", "json") for path in (mixed, lower))
    assert a.exit_code == b.exit_code == 0
    layers = json.loads(a.stdout)["layers"]
    assert layers == json.loads(b.stdout)["layers"]
    assert [layer["kind"] for layer in layers][:3] == ["conv", "batchnorm", "leakyrelu"]
    assert layers[0]["hyperparameters"]["activation"] == "relu"
    assert layers[0]["params"] == 8 * 3 * 3 * 3 + 8  # K x C x F x F + K, as nn.Conv2d(3, 8, 3) counts


# --- options that surprise --------------------------------------------------------------------
@pytest.mark.parametrize("name, check", [
    ("report.json", lambda text: json.loads(text)["totals"]["params"] == 44_426),
    ("report.md", lambda text: text.startswith("# LeNet-5\n") and "| conv1 |" in text),
    ("report.csv", lambda text: text.splitlines()[0].startswith("name,kind,")),
    ("report.txt", lambda text: text.startswith("LeNet-5: input 1x28x28") and "44,426" in text),
    ("REPORT.JSON", lambda text: json.loads(text)["name"] == "LeNet-5"),
])
def test_the_extension_of_o_picks_the_format(tmp_path, name, check):
    out = tmp_path / name
    result = run("inspect", SPECS / "lenet5.yaml", "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert check(out.read_text())
    kind = {".json": "JSON", ".md": "Markdown", ".csv": "CSV", ".txt": "table"}[out.suffix.lower()]
    assert result.stderr.startswith(f"wrote {out} ({kind}, ") and result.stderr.endswith("B)\n")


def test_the_size_said_is_the_size_written(tmp_path):
    out = tmp_path / "r.json"
    result = run("inspect", SPECS / "alexnet.yaml", "-o", out)
    size = out.stat().st_size
    assert 1000 < size < 10**6
    assert result.stderr == f"wrote {out} (JSON, {size / 1000:,.2f} kB)\n"


def test_format_wins_over_an_unknown_extension_and_a_conflict_is_refused(tmp_path):
    out = tmp_path / "report.out"
    assert run("inspect", SPECS / "lenet5.yaml", "-o", out, "-f", "csv").exit_code == 0
    assert out.read_text().startswith("name,kind,")
    assert run("inspect", SPECS / "lenet5.yaml", "-o", tmp_path / "plain").exit_code == 0
    assert (tmp_path / "plain").read_text().startswith("LeNet-5: input")  # no extension: the table
    conflict = run("inspect", SPECS / "lenet5.yaml", "-o", tmp_path / "r.csv", "-f", "json")
    assert conflict.exit_code == 2 and not (tmp_path / "r.csv").exists()
    assert conflict.output.splitlines() == [f"error: --format: -o {tmp_path / 'r.csv'} names CSV by its extension",
                                            "  hint: drop --format, or write to a file ending in .json"]
    agreeing = run("inspect", SPECS / "lenet5.yaml", "-o", tmp_path / "r.json", "-f", "json")
    assert agreeing.exit_code == 0
    text = run("inspect", SPECS / "lenet5.yaml", "-o", tmp_path / "r.txt", "-f", "json")  # any text in a .txt
    assert text.exit_code == 0 and json.loads((tmp_path / "r.txt").read_text())["name"] == "LeNet-5"


def test_render_and_export_say_what_they_wrote(tmp_path):
    dot = tmp_path / "lenet.dot"
    result = run("render", SPECS / "lenet5.yaml", "-o", dot)
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == f"wrote {dot} (DOT, {dot.stat().st_size / 1000:,.2f} kB)\n"
    pytest.importorskip("torch")
    code = tmp_path / "lenet.py"
    result = run("export", SPECS / "lenet5.yaml", "-o", code)
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == (f"wrote {code} (Python, {code.stat().st_size / 1000:,.2f} kB): class LeNet5, "
                             "44,426 parameters\n")


@pytest.mark.parametrize("args, message", [
    (["export", "-o", "m.py", "--batch", "7"],
     "error: --batch: does not apply here: the exported module takes any batch size; give the batch when calling it"),
    (["export", "-o", "m.py", "--dtype", "int8"], "error: --dtype: unknown value 'int8'"),
    (["render", "-o", "l.dot", "--batch", "7"], "error: --batch: does not apply here: it changes only the memory "
                                                "figures, which the diagram shows with --detail full"),
    (["render", "-o", "l.dot", "--dtype", "float16"], "error: --dtype: does not apply here"),
    (["inspect", "--optimizer", "sgd"], "error: --optimizer: does not apply here: it sets the training memory of "
                                        "--train, --max-batch and --gpus; add one of them"),
    (["inspect", "--mixed-precision", "bf16"], "error: --mixed-precision: does not apply here"),
    (["run", "--shard", "fsdp"], "error: --shard: does not apply here: it sets up the distributed run; add --nproc N"),
    (["run", "--master-port", "29500"], "error: --master-port: does not apply here: it sets up the distributed run"),
    (["run", "--optimizer", "adam"], "error: --optimizer: does not apply here: it is the optimizer of --nproc's "
                                     "training steps and of --memory --train; add one of them"),
    (["run", "--memory", "--optimizer", "adam"], "error: --optimizer: does not apply here"),
    (["memory", "--optimizer", "sgd"], "error: --optimizer: does not apply here: it is the optimizer of the training "
                                       "step; add --train"),
    (["inspect", "--max-batch", "24"], "error: --max-batch: 24 what? it needs a unit: write 24GB (10^9 bytes) or "
                                       "24GiB (2^30 bytes)"),
])
def test_options_that_cannot_apply_are_refused_with_a_reason(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    command, *options = args
    result = run(command, SPECS / "lenet5.yaml", *options)
    assert result.exit_code == 2
    assert result.output.splitlines()[0].startswith(message), result.output
    assert list(tmp_path.iterdir()) == []


def test_the_same_options_apply_where_they_mean_something(tmp_path):
    assert run("render", SPECS / "lenet5.yaml", "-o", tmp_path / "l.dot", "--detail", "full", "--batch", "7").exit_code == 0
    assert "activations 162.79 kB" in (tmp_path / "l.dot").read_text()  # 5,814 neurons x 7 x 4 bytes
    trained = run("inspect", SPECS / "lenet5.yaml", "--train", "--optimizer", "sgd", "-f", "json")
    assert json.loads(trained.stdout)["training"]["optimizer"] == "sgd"


def test_export_dtype_sets_the_model_dtype(tmp_path):
    torch = pytest.importorskip("torch")
    code = tmp_path / "lenet.py"
    assert run("export", SPECS / "lenet5.yaml", "-o", code, "--dtype", "float16").exit_code == 0
    namespace = {}
    exec(compile(code.read_text(), str(code), "exec"), namespace)
    model = namespace["LeNet5"]()
    assert {p.dtype for p in model.parameters()} == {torch.float16}
    assert "self.to(torch.float16)" in code.read_text()
    plain = tmp_path / "plain.py"
    assert run("export", SPECS / "lenet5.yaml", "-o", plain).exit_code == 0
    assert "self.to(" not in plain.read_text()


def test_help_says_what_each_option_does_in_that_command():
    def option_help(command, name):
        text = " ".join(run(command, "--help").stdout.split())
        return text.split(name, 1)[1]

    assert option_help("run", "--dtype").split("[default")[0].count("model's dtype") == 1
    assert "memory figures" in option_help("inspect", "--dtype").split("--input")[0]
    assert "self.to(torch.DTYPE)" in option_help("export", "--dtype")
    assert "--batch" not in run("export", "--help").stdout
    assert "Samples per batch the model runs on" in option_help("run", "--batch")
    assert "--detail full" in option_help("render", "--batch").split("--dtype")[0]


def test_command_summaries_are_whole_sentences_within_80_columns():
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)  # click's help at 80 columns
    commands = result.output.split("Commands:\n", 1)[1].splitlines()
    assert len(commands) == len(main.commands)
    for line in commands:
        assert len(line) <= 80 and line.endswith(".") and "..." not in line, line
        summary = line.split(None, 1)[1]
        assert summary[0].isupper(), line


def test_set_errors_name_the_parameter_and_the_command_line(tmp_path):
    result = run("inspect", SPECS / "min_char_rnn.yaml", "--set", "vocab=abc")
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"{SPECS / 'min_char_rnn.yaml'}:7:34: error: input features: must be a whole number >= 1, got 'abc' (a string)",
        "  the parameter vocab = 'abc' comes from the command line: --set vocab=..."]
    result = run("inspect", SPECS / "captioning_vgg16.yaml", "--set", "vocab=0")
    assert "vocabulary: must be a whole number >= 1, got 0" in result.output
    assert "the parameter vocab = 0 comes from the command line: --set vocab=..." in result.output
    own = write(tmp_path, "params: {vocab: abc}\ninput: {steps: 5, features: $vocab}\nlayers:\n  - rnn: 4\n")
    result = run("inspect", own)
    assert result.exit_code == 2 and "command line" not in result.output  # the spec's own value


def test_a_missing_spec_is_no_such_file():
    result = run("explain", "nonexistent.yaml")
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == "error: no such file: nonexistent.yaml"


# --- hints ------------------------------------------------------------------------------------
def windows_of(size, kernel, stride, padding=0, dilation=1):
    from archcalc.layers import lookup

    layer = lookup("conv").from_args({"filters": 1, "kernel": kernel, "stride": stride, "padding": padding,
                                      "dilation": dilation, "rounding": "floor"})
    return layer, layer.windows((1, size))[0]


def unread_by_pytorch(torch, size, kernel, stride, padding, dilation):
    """The input positions no window reads: where the gradient of a ones-filter conv is zero."""
    conv = torch.nn.Conv1d(1, 1, kernel, stride, padding, dilation, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = torch.ones(1, 1, size, requires_grad=True)
    conv(x).sum().backward()
    return [p for p in range(size) if x.grad[0, 0, p] == 0]


@pytest.mark.parametrize("sizes,cases", [(range(1, 9), 500),  # about 0.5 s of CPU
                                         pytest.param(range(9, 26), 2000, marks=pytest.mark.slow)])
def test_unread_inputs_counted_as_pytorch_reads_them(sizes, cases):
    torch = pytest.importorskip("torch")
    checked = 0
    for size in sizes:
        for kernel in range(1, 5):
            for stride in range(1, 6):
                for dilation in (1, 2, 3):
                    for padding in range(0, 3):
                        if dilation * (kernel - 1) + 1 > size + 2 * padding:
                            continue
                        _, window = windows_of(size, kernel, stride, padding, dilation)
                        unread = unread_by_pytorch(torch, size, kernel, stride, padding, dilation)
                        assert window.unread == len(unread), (size, kernel, stride, padding, dilation)
                        tail = [p for p in unread if p > window.last_read]
                        assert window.unread_last == len(tail)
                        checked += 1
    assert checked > cases


def test_unread_inputs_are_counted_in_closed_form_for_huge_sizes():
    from archcalc.layers.geometry import Window

    # kernel 1, stride 2 on 10^18 positions: every odd one is skipped
    assert Window(10**18, 1, 2, 0, 0).unread == 10**18 // 2
    # kernel 3, dilation 10^9, stride 10^9 + 7: taps of one window are 10^9 apart
    window = Window(10**18, 3, 10**9 + 7, 0, 0, 10**9, "floor")
    assert window.unread == 10**18 - window.output * 3 + 0  # no two windows share a tap here
    assert window.output == (10**18 - 2 * 10**9 - 1) // (10**9 + 7) + 1


@pytest.mark.parametrize("size, kernel, stride, padding, expected", [
    # kernel 1 < stride 2 with 'same' on 16: 8 rows skipped (was 'the last 1 never read (1 input row lost)')
    (16, 1, 2, "same", "same along H: 8 of 16 input rows never read: 7 between the windows (kernel 1 < stride 2) "
                       "and the last 1"),
    # on 31 the windows tile exactly, yet 15 rows are stepped over (no note before)
    (31, 1, 2, "same", "stride 2 along H: 15 of 31 input rows never read: 15 between the windows "
                       "(kernel 1 < stride 2)"),
    (33, 2, 3, 0, "floor along H: 11 of 33 input rows never read: 10 between the windows (kernel 2 < stride 3) "
                  "and the last 1"),
    (32, 3, 2, 1, None),  # overlapping windows, every row read: 'floor' notes only what is lost
])
def test_the_skipped_inputs_note(tmp_path, size, kernel, stride, padding, expected):
    rounding = "" if padding == "same" else ", rounding: floor"
    spec = write(tmp_path, f"input: [1, {size}, {size}]\nlayers:\n  - conv: {{filters: 1, kernel: {kernel}, "
                           f"stride: {stride}, padding: {padding}{rounding}}}\n")
    notes = json.loads(run("inspect", spec, "-f", "json").stdout)["layers"][0]["notes"]
    if expected is None:
        assert not any("between" in note for note in notes)
    else:  # rows along H, columns along W
        assert notes == [expected, expected.replace("along H", "along W").replace("rows", "columns")]


def test_the_resnet_downsample_is_told_about_padding_same(tmp_path):
    """3x3, stride 2, padding 1 on 32: (32-3+2)/2+1 = 16.5. 'same' pads 0 left, 1 right: (32-3+1)/2+1 = 16,
    what PyTorch's floor gives and what ResNet means."""
    spec = write(tmp_path, "input: [64, 32, 32]\nlayers:\n  - conv: {filters: 128, kernel: 3, stride: 2, padding: 1}\n")
    result = run("inspect", spec)
    assert result.exit_code == 2
    hint = result.output.splitlines()[1]
    assert hint.startswith("  hint: try padding: same (-> 16), stride 1 (-> 32), kernel 2 (-> 17), ")
    fixed = write(tmp_path, "input: [64, 32, 32]\nlayers:\n  - conv: {filters: 128, kernel: 3, stride: 2, "
                            "padding: same}\n", "fixed.yaml")
    assert json.loads(run("inspect", fixed, "-f", "json").stdout)["layers"][0]["output_shape"] == [128, 16, 16]
    torch = pytest.importorskip("torch")
    floored = torch.nn.Conv2d(64, 128, 3, 2, 1)(torch.zeros(1, 64, 32, 32))
    assert tuple(floored.shape[2:]) == (16, 16)


def test_same_is_not_offered_where_it_leaves_inputs_unread(tmp_path):
    # kernel 1, stride 2 on 16: 'same' gives out 8 but still floors (15/2): not whole, not offered
    spec = write(tmp_path, "input: [1, 16]\nlayers:\n  - conv: {filters: 1, kernel: 1, stride: 2}\n")
    hint = run("inspect", spec).output.splitlines()[1]
    assert "padding: same" not in hint and hint.startswith("  hint: try stride 1 (-> 16)")


def test_the_hint_names_the_network_input_solve_finds(tmp_path):
    """A pool meets 33 (35 - 3 + 1) deep in the network: the input to change is the network's, and
    solve lists it (34 -> 32 -> 16)."""
    spec = write(tmp_path, "input: [1, 35, 35]\nlayers:\n  - conv: {filters: 4, kernel: 3}\n  - maxpool: 2\n")
    result = run("inspect", spec)
    assert result.exit_code == 2
    assert "(33-2+2*0)/2+1 = 16.5" in result.output
    hint = result.output.splitlines()[1]
    assert "the network input of 34 (archcalc solve)" in hint and "an input of" not in hint
    solved = json.loads(run("solve", spec, "-f", "json", "--range", "30..40").stdout)
    assert 34 in solved["sizes"]["H=W"]["sizes"] and 35 not in solved["sizes"]["H=W"]["sizes"]
    assert run("inspect", spec, "--input", "1x34x34").exit_code == 0


def test_the_network_input_of_a_non_square_input_is_given_whole(tmp_path):
    spec = write(tmp_path, "input: [1, 32, 35]\nlayers:\n  - conv: {filters: 4, kernel: 3}\n  - maxpool: 2\n")
    assert "the network input 1x32x34 (archcalc solve)" in run("inspect", spec).output


# --- archcalc kinds ---------------------------------------------------------------------------
def test_kinds_lists_every_registered_kind():
    from archcalc.layers import REGISTRY

    result = run("kinds")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()[:len(REGISTRY)]]
    assert listed == list(REGISTRY)
    assert "dense (fc, linear)  " in result.stdout


def test_kinds_kind_gives_fields_defaults_docs_and_foreign_names():
    result = run("kinds", "MaxPooling2D")  # Keras's name: told archcalc's
    assert result.exit_code == 2 and "did you mean 'maxpool'? (archcalc's name for MaxPooling2D)" in result.output
    result = run("kinds", "MaxPool")  # any case
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "maxpool: Largest value in each window."
    assert "PyTorch/Keras: MaxPooling2D" in lines
    assert any(line.split()[:2] == ["kernel", "required"] and "pool_size" in line for line in lines)
    assert any(line.split()[:2] == ["stride", "none"] and "default: the kernel" in line for line in lines)
    assert run("kinds", "conv", "--markdown").exit_code == 2


def test_the_docs_table_of_kinds_is_the_registry():
    from archcalc.views.kinds import TABLE_BEGIN, TABLE_END, markdown_table

    page = (ROOT / "docs" / "spec.md").read_text()
    block = page.split(TABLE_BEGIN + "\n", 1)[1].split(TABLE_END, 1)[0]
    assert block == markdown_table() == run("kinds", "--markdown").stdout
