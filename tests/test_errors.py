"""One error contract: every error carries its message, place, hint and exit code, and the CLI
prints each one in one form, 'error: ...' then '  hint: ...', never a traceback."""
import pytest
from conftest import SPECS
from conftest import run_cli as run

from archcalc.errors import (
    ArchcalcError,
    GeometryError,
    Location,
    MissingDependency,
    SpecError,
    UsageError,
    VerificationFailed,
)

ALEXNET = str(SPECS / "alexnet.yaml")
SIGNAL = str(SPECS / "signal1d.yaml")


def test_an_error_carries_everything_it_prints():
    error = SpecError("stride 3 leaves the last position unread", hint="try stride 2",
                      location=Location("s.yaml", 3, 5), layer="conv1")
    assert str(error) == "s.yaml:3:5: error: layer conv1: stride 3 leaves the last position unread\n  hint: try stride 2"
    assert str(error.noted("drawn up to it")).endswith("\n  drawn up to it")
    usage = UsageError("--batch", "-1", "-1 is not in the range x>=1", "a whole number >= 1")
    assert str(usage) == "error: --batch: -1 is not in the range x>=1\n  hint: --batch takes a whole number >= 1"
    assert [e.exit_code for e in (error, GeometryError("g"), usage, MissingDependency("m"), ArchcalcError("a"))] == [2] * 5
    assert VerificationFailed("PyTorch disagrees").exit_code == 1


@pytest.mark.parametrize("args,first_line,hint", [
    (["--max-batch", "infGB"], "error: --max-batch: a memory size must be a finite number, got 'infGB'", "24GB"),
    (["--max-batch", "1e400"], "error: --max-batch: 1e400 what? it needs a unit: write 1e400GB", "16GiB"),
    (["--max-batch", "1e400GB"], "error: --max-batch: a memory size must be a finite number", "24GB"),
    (["--max-batch", "nanB"], "error: --max-batch: a memory size must be a finite number, got 'nanB'", "24GB"),
    (["--max-batch", "0.5B"], "error: --max-batch: a memory size must be at least 1 byte", "24GB"),
    (["--max-batch", "24"], "error: --max-batch: 24 what? it needs a unit: write 24GB (10^9 bytes) or 24GiB", "24GB"),
    (["--max-batch", "inf"], "error: --max-batch: cannot read 'inf' as a size", "24GB"),
    (["--set", "vocab=[1"], "error: --set:", "NAME=VALUE"),
    (["--set", "vocab=" + "[" * 3000], "error: --set:", "NAME=VALUE"),
    (["--batch", "-1"], "error: --batch: -1 is not in the range x>=1", "--batch takes a whole number >= 1"),
    (["--batch", "1e3"], "error: --batch: '1e3' is not a valid integer", "--batch takes a whole number >= 1"),
    (["--dtype", "flaot32"], "error: --dtype: unknown value 'flaot32'; did you mean 'float32'?",
     "--dtype takes one of float32, float16, bfloat16, float64, int8"),
    (["--input", "3xfoo"], "error: --input: cannot read the input shape '3xfoo'", "channels first"),
    (["--format", "yaml"], "error: --format: unknown value 'yaml'", "one of table, json, markdown, csv"),
    (["--fomat", "json"], "error: no such option '--fomat'. Did you mean '--format'?", "inspect --help' lists"),
])
def test_a_bad_option_names_the_option_the_value_and_what_it_takes(args, first_line, hint):
    result = run("inspect", ALEXNET, *args)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0].startswith(first_line) and hint in lines[1], result.output


def test_every_command_reports_in_the_same_form(tmp_path):
    for args, first in ([["solve", ALEXNET, "--range", "5..1"], "error: --range: the size range 5..1 is empty"],
                        [["solve", ALEXNET, "--range", "²..5"], "error: --range: '²..5' is not a range"],
                        [["render", ALEXNET, "-o", str(tmp_path / "x.txt")],
                         "error: --output: cannot tell which format to draw from"],
                        [["render", ALEXNET], "error: missing option '--output' / '-o'"],
                        [["inspect"], "error: missing argument 'SPEC'"],
                        [["inspect", str(tmp_path)], "error: invalid value for 'SPEC'"],
                        [["nope"], "error: no such command 'nope'"]):
        result = run(*args)
        assert result.exit_code == 2 and result.output.startswith(first), result.output
        assert not any(line.startswith(("Usage:", "Error:")) for line in result.output.splitlines())


def test_values_errors_name_the_option():
    pytest.importorskip("torch")
    for values, first in (["[1, 2]", "error: --values: has 2 numbers but the input needs 9"],
                          ["[" * 3000, "error: --values:"], ["[1, x]", "error: --values: must contain only numbers"]):
        result = run("run", SIGNAL, "--device", "cpu", "--values", values)
        assert result.exit_code == 2 and result.output.startswith(first), result.output


def test_a_partial_drawing_is_noted_after_the_error(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("input: [1, 9]\nlayers:\n  - conv: {filters: 1, kernel: 5, stride: 3}\n")
    result = run("render", str(spec), "-o", str(tmp_path / "s.dot"))
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == f"  drawn up to it, in red: {tmp_path / 's.dot'}"
