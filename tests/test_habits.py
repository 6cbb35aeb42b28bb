"""The habits people bring from PyTorch, Keras, torchinfo and the course (issue 12): each case of
the issue's list, as a user meets it on the command line."""
import json

import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS

from archcalc.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


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
    readme = (ROOT / "README.md").read_text()
    assert "archcalc[" not in readme  # 'pip install archcalc[...]' does not work in a checkout
