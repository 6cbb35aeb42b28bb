"""The command line through click's test runner: formats, JSON schema, exit codes, messages."""
import csv
import io
import json
import subprocess
import sys

import pytest
from conftest import ROOT, SPECS
from conftest import run_cli as run
from conftest import write_spec as write


def test_table_shows_course_numbers():
    result = run("inspect", SPECS / "alexnet.yaml")
    assert result.exit_code == 0
    assert "(227-11+2*0)/4+1 = 55" in result.output
    assert "96x55x55" in result.output
    assert "62,378,344" in result.output
    assert "1 MB = 10^6 bytes" in result.output


def test_json_schema():
    result = run("inspect", SPECS / "vgg16.yaml", "--format", "json", "--batch", "2", "--dtype", "float16")
    data = json.loads(result.output)
    assert {"name", "input_shape", "batch", "dtype", "layers", "totals", "conventions"} <= set(data)
    assert data["batch"] == 2 and data["dtype"] == "float16"
    assert data["input_shape"] == [3, 224, 224]
    first = data["layers"][0]
    assert {"name", "kind", "output_shape", "params", "neurons"} <= set(first)
    assert first["output_shape"] == [64, 224, 224] and first["params"] == 1_792
    totals = data["totals"]
    assert totals["params"] == 138_357_544 and totals["trainable_params"] == 138_357_544
    assert totals["neurons"] == 15_087_080
    assert totals["param_bytes"] == 2 * 138_357_544
    assert totals["activation_bytes"] == 2 * 2 * 15_087_080


def test_markdown_and_csv():
    markdown = run("inspect", SPECS / "lenet1.yaml", "-f", "markdown").output
    # '*' escaped: two in one row would otherwise set the text between them in italics
    assert "| conv1 | conv tanh | 4x24x24 | (28-5+2\\*0)/1+1 = 24 | 104 | 2,304 |" in markdown
    rows = list(csv.DictReader(io.StringIO(run("inspect", SPECS / "lenet1.yaml", "-f", "csv").output)))
    assert [int(r["params"]) for r in rows] == [104, 0, 1_212, 0, 0, 1_930, 3_246]  # the last: the total
    assert rows[-1]["name"] == "total" and rows[-1]["formula"] == ""


def test_input_override_reports_weights_that_no_longer_fit():
    result = run("inspect", SPECS / "rgb3_dense.yaml", "--input", "3x64x64")
    assert "weights no longer fit: fc1 has 25,604 params at input 3x64x64 but 1,028" in result.output
    data = json.loads(run("inspect", SPECS / "rgb3_dense.yaml", "--input", "3x64x64", "-f", "json").output)
    assert data["layers"][-1]["params_at_spec_input"] == 1_028


def test_rounding_option(tmp_path):
    spec = write(tmp_path, "input: [1, 9]\nlayers:\n  - conv: {filters: 1, kernel: 5, stride: 3}\n")
    assert run("inspect", spec).exit_code == 2
    result = run("inspect", spec, "--rounding", "floor", "-f", "json")
    data = json.loads(result.output)
    assert data["output_shape"] == [1, 2]
    assert "never read" in data["layers"][0]["notes"][0]


def test_output_file_is_written(tmp_path):
    target = tmp_path / "alexnet.json"
    assert run("inspect", SPECS / "alexnet.yaml", "-f", "json", "-o", target).exit_code == 0
    assert json.loads(target.read_text())["totals"]["params"] == 62_378_344


ERRORS = [
    # (spec text, exact first line of the message after the path, hint fragment)
    ("input: [1, 9]\nlayers:\n  - conv: {filters: 1, kernel: 5, stride: 3}\n",
     "3:43: error: layer conv1: invalid D-F-S combination: (9-5+2*0)/3+1 = 2.33 is not whole; stride 3 "
     "leaves the last position unread (PyTorch would silently floor to 2)",
     "try padding: same (-> 3), stride 2 (-> 3), padding 1 (-> 3), kernel 6 (-> 2), the network input of 8 (archcalc solve)"),
    ("input: [3, 32, 32]\nlayers:\n  - conv: {filters: 6, kernal: 5}\n",
     "3:32: error: layer conv1: unknown key 'kernal' for conv", "did you mean 'kernel'?"),
    ("input: [3, 32, 32]\nlayers:\n  - convv: {filters: 6, kernel: 5}\n",
     "3:5: error: unknown layer kind 'convv'", "did you mean 'conv'?"),
    ("input: [3, 32, 32]\nlayers:\n  - conv: {filters: 6, kernel: 5}\n  - dense: 10\n",
     "4:5: error: layer fc1: dense needs a flat feature vector, but its input is the feature map 6x28x28",
     "add '- flatten' before it"),
    ("input: [3, 32, 32]\nlayer:\n  - flatten\n", "2:1: error: unknown top-level key 'layer'",
     "did you mean 'layers'?"),
    ("input: [3, 32, 32]\nlayers:\n\t- flatten\n", "3:1: error: YAML syntax error: found character that "
     "cannot start any token", "never tabs"),
    ("input: [3, 8, 8]\nlayers:\n  - !!python/object:os.system {}\n",
     "3:5: error: YAML tag !!python/object:os.system is not allowed in a spec", "plain data"),
    ("input: [8, 4, 4]\nlayers:\n  - conv: {filters: 4, kernel: 1, name: a}\n  - add: {inputs: [a, input]}\n",
     "4:19: error: layer add1: add needs shapes that broadcast (each axis equal, or 1 in one of them), got 4x4x4 "
     "and 8x4x4", "projection"),
    ("input: [8]\nlayers:\n  - dense: {units: 4, name: a}\n  - dense: {units: 2, inputs: input}\n",
     "3:5: error: layer a: the output of layer a is never used", "outputs:"),
]


@pytest.mark.parametrize("text,first_line,hint", ERRORS, ids=[e[1].split("error: ")[1][:30] for e in ERRORS])
def test_error_messages(tmp_path, text, first_line, hint):
    spec = write(tmp_path, text)
    result = run("inspect", spec)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0] == f"{spec}:{first_line}"
    assert hint in lines[1]
    assert "Traceback" not in result.output


def test_missing_file_exit_2(tmp_path):
    result = run("inspect", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == f"error: no such file: {tmp_path / 'nope.yaml'}"  # not nope.yaml:1:1


def test_bad_option_exit_2():
    assert run("inspect", SPECS / "alexnet.yaml", "--input", "3xfoo").exit_code == 2
    assert run("inspect", SPECS / "alexnet.yaml", "--dtype", "float8").exit_code == 2


def test_inspect_never_imports_torch():
    probe = ("import sys, runpy\n"
             "sys.argv = ['archcalc', 'inspect', 'specs/vgg16.yaml', '--format', 'json']\n"
             "try:\n    runpy.run_module('archcalc', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('torch' in sys.modules, 'graphviz' in sys.modules, file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "False False"
    assert json.loads(out.stdout)["totals"]["params"] == 138_357_544
