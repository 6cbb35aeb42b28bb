"""Atomic outputs: a failure while writing leaves neither a half-written file nor a temporary one,
and a file that was already there keeps its content."""
import errno
import os

import pytest
from click.testing import CliRunner
from conftest import SPECS

from archcalc import ArchcalcError
from archcalc.cli import main
from archcalc.fileio import atomic_path, write_text


def test_a_writer_that_fails_half_way_leaves_nothing(tmp_path):
    target = tmp_path / "report.json"
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as temporary:
            with open(temporary, "w") as handle:
                handle.write('{"layers": [')
            raise RuntimeError("the writer failed half way")
    assert os.listdir(tmp_path) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("the previous report\n")
    with pytest.raises(UnicodeEncodeError):
        write_text(str(target), "half a report, then a character UTF-8 cannot hold: \ud800")
    assert os.listdir(tmp_path) == ["report.json"]
    assert target.read_text() == "the previous report\n"


def test_a_full_disk_is_a_clear_error(tmp_path, monkeypatch):
    def disk_full(source, destination):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(ArchcalcError, match="cannot write .*report.json: No space left on device"):
        write_text(str(tmp_path / "report.json"), "{}")
    assert os.listdir(tmp_path) == []


COMMANDS = [  # every command that writes a file, with the module its output needs
    (["inspect", SPECS / "alexnet.yaml", "-f", "json"], None),
    (["inspect", SPECS / "alexnet.yaml", "-f", "markdown"], None),
    (["render", SPECS / "alexnet.yaml"], None),   # to .dot: Graphviz's own layout is not needed
    (["export", SPECS / "lenet5.yaml"], "torch"),
]


@pytest.mark.parametrize("command,needs", COMMANDS, ids=["inspect json", "inspect markdown", "render dot", "export"])
def test_every_output_is_written_atomically(tmp_path, monkeypatch, command, needs):
    """The rename is made to fail: a command that wrote its file directly would leave it behind."""
    if needs:
        pytest.importorskip(needs)
    target = tmp_path / ("out.py" if command[0] == "export" else "out.dot" if command[0] == "render" else "out.txt")
    target.write_text("the previous output\n")

    def disk_full(source, destination):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "replace", disk_full)
    result = CliRunner().invoke(main, [*map(str, command), "-o", str(target)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: cannot write {target}: No space left on device"
    assert os.listdir(tmp_path) == [target.name]
    assert target.read_text() == "the previous output\n"
