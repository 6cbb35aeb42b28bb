"""Atomic outputs: a failure while writing leaves neither a half-written file nor a temporary one,
and a file that was already there keeps its content."""
import errno
import os
import stat

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


# --- what -o may write: a regular file that is not an input, or standard output ----------------
WRITERS = [  # every command with -o, the output name it writes, and what it needs
    (["inspect", "-f", "json"], "out.json", None),
    (["render"], "out.dot", "graphviz"),
    (["export"], "out.py", "torch"),
]
WRITER_IDS = ["inspect", "render", "export"]


def writer(command, needs, tmp_path):
    """The spec copied into tmp_path (so that its folder shows any stray file), and the command.
    For render it is named net.dot: -o net.yaml would be refused for its extension first."""
    if needs:
        pytest.importorskip(needs)
    spec = tmp_path / ("net.dot" if command[0] == "render" else "net.yaml")
    spec.write_bytes((SPECS / "lenet5.yaml").read_bytes())
    return spec, [command[0], str(spec), *command[1:]]


def invoke(args):
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("command,name,needs", WRITERS, ids=WRITER_IDS)
@pytest.mark.parametrize("alias", ["same path", "another path", "symbolic link", "hard link"])
def test_o_equal_to_the_input_is_refused(tmp_path, monkeypatch, command, name, needs, alias):
    """-o naming the input silently overwrote the spec; it is refused whatever path reaches the file."""
    spec, args = writer(command, needs, tmp_path)
    monkeypatch.chdir(tmp_path)
    before = spec.read_bytes()
    extension = spec.suffix
    output = {"same path": str(spec), "another path": f"../{tmp_path.name}/./{spec.name}",
              "symbolic link": "link" + extension, "hard link": "hard" + extension}[alias]
    if alias == "symbolic link":
        os.symlink(spec.name, output)
    if alias == "hard link":
        os.link(spec.name, output)
    result = invoke([*args, "-o", output, "--force"])  # --force does not allow it either
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --output: {output} is the input")
    assert spec.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == sorted({spec.name, os.path.basename(output)})


def make_fifo(path):
    os.mkfifo(path)


def make_socket(path):
    import socket
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays


def make_device(path):
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a copy of /dev/null's node
    except PermissionError:
        pytest.skip("creating a device node needs root")


@pytest.mark.parametrize("command,name,needs", WRITERS, ids=WRITER_IDS)
@pytest.mark.parametrize("kind,make,words", [
    ("fifo", make_fifo, "a named pipe (FIFO)"), ("socket", make_socket, "a socket"),
    ("device", make_device, "a character device"), ("directory", os.mkdir, "a directory"),
], ids=["fifo", "socket", "device", "directory"])
def test_o_writes_only_a_regular_file(tmp_path, command, name, needs, kind, make, words):
    """The atomic rename replaced a FIFO, a device node (as root, -o /dev/null would replace /dev/null)
    or a socket with a regular file: they are refused, and stay what they were."""
    spec, args = writer(command, needs, tmp_path)
    target = tmp_path / (kind + os.path.splitext(name)[1])  # render picks its format by the extension first
    make(target)
    mode = os.lstat(target).st_mode
    result = invoke([*args, "-o", str(target)])
    assert result.exit_code == 2
    assert result.output == (f"error: --output: {target} is {words}\n"
                             f"  hint: --output takes a regular file's name, or '-' for standard output\n")
    assert os.lstat(target).st_mode == mode
    assert sorted(os.listdir(tmp_path)) == sorted([spec.name, target.name])


def test_o_dev_null_is_refused_not_replaced(monkeypatch):
    def replace(source, destination):  # a safety net: this test must never replace /dev/null
        raise AssertionError(f"os.replace({source!r}, {destination!r}) was called")
    monkeypatch.setattr(os, "replace", replace)
    result = invoke(["inspect", str(SPECS / "lenet5.yaml"), "-f", "json", "-o", "/dev/null"])
    assert result.exit_code == 2
    assert result.output.startswith("error: --output: /dev/null is a character device")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("command,name,needs", WRITERS, ids=WRITER_IDS)
def test_o_symlink_is_refused_unless_force(tmp_path, monkeypatch, command, name, needs):
    """Without --force a symbolic link is refused; with it, its target is written (atomically) and
    the link stays a link."""
    spec, args = writer(command, needs, tmp_path)
    monkeypatch.chdir(tmp_path)
    os.mkdir("elsewhere")
    (tmp_path / "elsewhere" / name).write_text("the previous output\n")
    os.symlink(f"elsewhere/{name}", name)
    refused = invoke([*args, "-o", name])
    assert refused.exit_code == 2
    target = tmp_path.resolve() / "elsewhere" / name
    assert refused.output == (f"error: --output: {name} is a symbolic link (to {target})\n"
                              f"  hint: --force writes {target} through it (the link stays); or choose another "
                              f"file name\n")
    assert (tmp_path / "elsewhere" / name).read_text() == "the previous output\n"
    written = invoke([*args, "-o", name, "--force"])
    assert written.exit_code == 0, written.output
    assert os.path.islink(name) and os.readlink(name) == f"elsewhere/{name}"
    assert (tmp_path / "elsewhere" / name).read_text() != "the previous output\n"
    assert sorted(os.listdir(tmp_path)) == sorted([spec.name, "elsewhere", name])
    assert os.listdir(tmp_path / "elsewhere") == [name]
    direct = tmp_path / "direct"
    invoke([*args, "-o", str(direct.with_suffix(os.path.splitext(name)[1]))])
    produced = (tmp_path / "elsewhere" / name).read_text()
    assert produced == direct.with_suffix(os.path.splitext(name)[1]).read_text()


@pytest.mark.parametrize("command,name,needs", WRITERS, ids=WRITER_IDS)
def test_o_empty_is_an_error(tmp_path, monkeypatch, command, name, needs):
    """-o "" was silently ignored (inspect printed to the terminal)."""
    spec, args = writer(command, needs, tmp_path)
    monkeypatch.chdir(tmp_path)
    result = invoke([*args, "-o", ""])
    assert result.exit_code == 2
    assert result.output == ("error: --output: the file name is empty\n"
                             "  hint: --output takes a regular file's name, or '-' for standard output\n")
    assert os.listdir(tmp_path) == [spec.name]


@pytest.mark.parametrize("command,name,needs", WRITERS, ids=WRITER_IDS)
def test_o_dash_is_standard_output(tmp_path, monkeypatch, command, name, needs):
    """inspect and export wrote a file named '-'; now every command prints what it would write."""
    spec, args = writer(command, needs, tmp_path)
    monkeypatch.chdir(tmp_path)
    invoke([*args, "-o", name])
    result = invoke([*args, "-o", "-"])  # click 8.2's runner keeps stderr apart from stdout
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path)) == sorted([spec.name, name])
    assert result.stdout == (tmp_path / name).read_text()
