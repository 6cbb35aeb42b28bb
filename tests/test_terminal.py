"""Tables and texts at a terminal's width never cut or fold a number (issue 12).

Each command runs in-process with rich forced to a terminal of 60, 80, 100, 120 and 200 columns
(FORCE_COLOR and COLUMNS, as rich reads them) and a couple under `script` for a real terminal.
Three checks:
- no line is wider than the terminal;
- every number of the JSON output appears whole in the table, as the table writes it (exact
  counts with thousands separators, shapes as 96x55x55, MACs and bytes at two decimals): the
  texts are tokenised, so a cut '37,752,8' is a different token from 37,752,832 and fails;
- the terminal shows the same numbers as the pipe's layout (one line per row), no more, no fewer.
"""
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter

import pytest
from click.testing import CliRunner
from conftest import SPECS

from archcalc.cli import main
from archcalc.views.output import cell_width

# the narrowest width is the quick tier's (where a number is likeliest cut); the others are slow
WIDTHS = (60, *(pytest.param(width, marks=pytest.mark.slow) for width in (80, 100, 120, 200)))
# a number as our outputs write it: thousands separated by commas, decimals, shapes joined by x
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:x\d+(?:,\d{3})*)*")
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def tokens(text: str) -> Counter:
    return Counter(NUMBER.findall(text))


def human(count: int) -> str:
    """A count or a byte size as the tables show it: two decimals at k/M/G/T (10^3..10^12)."""
    for factor in (10**12, 10**9, 10**6, 10**3):
        if count >= factor:
            return f"{count / factor:,.2f}"
    return f"{count:,}"


def shape(values) -> str:
    return "x".join(map(str, values))


def run(argv, width=None, monkeypatch=None) -> str:
    """The command's standard output: on a terminal ``width`` wide, or a pipe (None)."""
    if width is not None:
        for variable, value in {"FORCE_COLOR": "1", "TERM": "xterm", "COLUMNS": str(width)}.items():
            monkeypatch.setenv(variable, value)
    else:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
    result = CliRunner().invoke(main, [str(arg) for arg in argv])
    assert result.exit_code == 0, result.output
    return ESCAPES.sub("", result.stdout)


def missing(expected: list, text: str) -> Counter:
    """The numbers of ``expected`` (texts) that the text does not show whole."""
    return Counter(token for item in expected for token in NUMBER.findall(item)) - tokens(text)


def assert_fits(text: str, width: int) -> None:
    wide = [line for line in text.splitlines() if cell_width(line) > width]
    assert not wide, f"{len(wide)} lines wider than {width}: {wide[:3]}"


def check(argv, expected: list, width: int, monkeypatch) -> str:
    text = run(argv, width, monkeypatch)
    assert_fits(text, width)
    assert not missing(expected, text), (width, missing(expected, text))
    assert tokens(text) == tokens(run(argv, None, monkeypatch)), width
    return text


# --- what the JSON says the table must show --------------------------------------------------

def inspect_numbers(document: dict) -> list:
    numbers = []
    for layer in document["layers"]:
        numbers += [shape(layer["output_shape"]), f"{layer['params']:,}", f"{layer['neurons']:,}",
                    human(layer["macs"]), human(layer["flops"]), layer["formula"], *layer["notes"]]
        field = layer.get("receptive_field")
        if field:
            numbers += [shape(field["size"]), *(str(field[key][0]) if len(set(field[key])) == 1 else
                                                ",".join(map(str, field[key])) for key in ("jump", "start"))]
    totals = document["totals"]
    numbers += [f"{totals['params']:,}", f"{totals['neurons']:,}", human(totals["macs"]), human(totals["flops"]),
                human(totals["activation_bytes"]), human(totals["forward_bytes"]),
                human(totals["training_bytes_estimate"]), shape(document["input_shape"])]
    training = document.get("training")
    if training:
        numbers += [human(training[key]) for key in ("weight_bytes", "gradient_bytes", "optimizer_bytes",
                                                     "activation_bytes", "peak_bytes")
                    if training[key]]
        numbers += [human(value) for value in training["phase_peaks"].values()]
    return numbers


def diff_numbers(document: dict) -> list:
    """A pair shows one value when both sides agree, else A, B and the size of the change."""
    numbers = []
    for layer in document["layers"]:
        shapes = {shape(layer[side]["output_shape"]) for side in ("a", "b") if layer[side]}
        numbers += sorted(shapes)
        for name in ("params", "neurons", "macs"):
            count = layer["counts"][name]
            if layer["status"].startswith("only"):
                numbers.append(f"{count['a'] + count['b']:,}")
            elif count["change"]:
                numbers += [f"{count['a']:,}", f"{count['b']:,}", f"{abs(count['change']):,}"]
            else:
                numbers.append(f"{count['a']:,}")
    for name, total in document["totals"].items():
        if total["a"] == total["b"] == 0:
            continue
        text = human if "bytes" in name else (lambda value: f"{value:,}")
        numbers += [text(total["a"]), text(total["b"])] + ([text(abs(total["change"]))] if total["change"] else [])
    return numbers


def run_numbers(document: dict) -> list:
    numbers = []
    for layer in document["layers"]:
        numbers += [shape(layer["predicted_shape"]), shape(layer["actual_shape"]),
                    f"{layer['predicted_params']:,}", f"{layer['actual_params']:,}"]
    totals = document["totals"]
    return numbers + [f"{totals[key]:,}" for key in totals]


def json_of(argv, monkeypatch) -> dict:
    return json.loads(run([*argv, "-f", "json"], None, monkeypatch))


# --- the checks ------------------------------------------------------------------------------

INSPECT = [["specs/alexnet.yaml"], ["specs/alexnet.yaml", "--rf"], ["specs/alexnet.yaml", "--train", "-b", "8"],
           ["specs/resnet18.yaml", "--rf"], ["specs/inception.yaml"], ["specs/cifar_stride3.yaml", "--rounding",
                                                                          "floor", "--input", "3x33x33"],
           ["specs/char_rnn_masse.yaml", "--rf"], ["specs/mri_valid.yaml", "--rf"]]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("argv", INSPECT, ids=lambda argv: " ".join(argv))
def test_inspect_never_cuts_a_number(argv, width, monkeypatch):
    argv = ["inspect", *(SPECS.parent / arg if arg.startswith("specs/") else arg for arg in argv)]
    check(argv, inspect_numbers(json_of(argv, monkeypatch)), width, monkeypatch)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("pair", [("alexnet", "alexnet_grouped"), ("resnet18", "resnet34"), ("vgg16", "alexnet")])
def test_diff_never_cuts_a_number(pair, width, monkeypatch):
    argv = ["diff", *(SPECS / f"{name}.yaml" for name in pair), "--all"]
    check(argv, diff_numbers(json_of(argv, monkeypatch)), width, monkeypatch)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["alexnet", "resnet18", "seq2seq_assez"])
def test_run_never_cuts_a_number(name, width, monkeypatch):
    pytest.importorskip("torch")
    argv = ["run", SPECS / f"{name}.yaml", "--device", "meta"]
    check(argv, run_numbers(json_of(argv, monkeypatch)), width, monkeypatch)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("argv", [["memory", "resnet50", "--train"], ["memory", "char_rnn_masse", "--train"],
                                  ["explain", "alexnet"], ["explain", "resnet18"], ["explain", "min_char_rnn"],
                                  ["solve", "alexnet"], ["solve", "alexnet", "--input", "3x224x224"],
                                  ["solve", "unet_small"]], ids=" ".join)
def test_explain_solve_and_memory_never_cut_a_number(argv, width, monkeypatch):
    command, name, *rest = argv
    argv = [command, SPECS / f"{name}.yaml", *rest]
    text = run(argv, width, monkeypatch)
    assert_fits(text, width)
    assert tokens(text) == tokens(run(argv, None, monkeypatch))


def test_a_cut_number_fails_the_check():
    """The check above is not vacuous: rich's old 80-column table (cut numbers) fails it."""
    cut = "  FC6   dense relu   4096   37,752,8…   4,096   37.75 M   75.51 M\n  CONV2   conv relu   256x27x…"
    assert missing(["37,752,832", "256x27x27", "4,096"], cut) == Counter({"37,752,832": 1, "256x27x27": 1})


def test_long_names_wrap_inside_the_width(tmp_path, monkeypatch):
    name = "encoder.stage_one.block_number_seven.pointwise_projection_after_the_depthwise_convolution"
    spec = tmp_path / "long.yaml"
    spec.write_text(f"input: [3, 32, 32]\nlayers:\n  - conv: {{filters: 8, kernel: 3, name: {name}}}\n")
    text = check(["inspect", spec], ["8x30x30", "224", "7,200"], 60, monkeypatch)
    lines = text.splitlines()
    rows = lines[next(i for i, line in enumerate(lines) if line.startswith(" \u2500")) + 1:]
    first_column = [line.split()[0] for line in rows[:next(i for i, line in enumerate(rows) if line[2] == " ")]]
    assert len(first_column) > 1 and "".join(first_column) == name


@pytest.mark.parametrize("command,width", [("inspect specs/alexnet.yaml", 80),
                                           ("diff specs/alexnet.yaml specs/alexnet_grouped.yaml", 60)])
def test_under_script_on_a_real_terminal(command, width, monkeypatch):
    if shutil.which("script") is None:
        pytest.skip("util-linux's script is not installed")
    line = shlex.join([sys.executable, "-m", "archcalc", *command.split()])
    done = subprocess.run(["script", "-qec", line, "/dev/null"], capture_output=True, text=True, check=False,
                          cwd=SPECS.parent, env={**__import__("os").environ, "COLUMNS": str(width)})
    assert done.returncode == 0, done.stdout[-2000:]
    text = ESCAPES.sub("", done.stdout.replace("\r", ""))
    assert_fits(text, width)
    monkeypatch.chdir(SPECS.parent)  # the same relative paths: diff prints them (a checkout's digits)
    assert tokens(text) == tokens(run(command.split(), None, monkeypatch))
