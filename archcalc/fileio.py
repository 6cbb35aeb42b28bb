"""Writing outputs: to a regular file, atomically, never over an input; or to standard output.

A failed write never leaves a half-written file or a temporary behind. The rename that makes a
write atomic would replace whatever the name was (a FIFO, a device, a symbolic link) with a
regular file, so only regular files are replaced; a symbolic link is written through, to the
file it points to, only when the caller asks for it.
"""
from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager

from .errors import ArchcalcError, UsageError

STDOUT = "-"


def output_path(path: str | None, inputs=(), force: bool = False) -> str | None:
    """The file to write for ``-o path``, checked before any work; None means standard output
    (no ``-o``, or ``-o -``).

    Refused (a UsageError of --output): an empty name; the same file as one of ``inputs`` (by
    device and inode, so through any path, symbolic or hard link); a directory, FIFO, device or
    socket; a symbolic link, unless ``force``: then its target is written (atomically) and the
    link stays a link.
    """
    if path is None or path == STDOUT:
        return None
    if not path:
        raise UsageError("--output", path, "the file name is empty", _ACCEPTED)
    try:
        existing = os.stat(path)  # through symbolic links: what a write would reach
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    if existing is not None:
        for source in inputs:
            try:
                read = os.stat(source)
            except OSError:
                continue
            if (read.st_dev, read.st_ino) == (existing.st_dev, existing.st_ino):
                same = "" if os.path.abspath(source) == os.path.abspath(path) else f" {source}"
                raise UsageError("--output", path, f"{path} is the input{same} of this command (the same file), "
                                 "which the output would destroy", hint="choose another file name")
    target = path
    if os.path.islink(path):
        target = os.path.realpath(path)
        if not force:
            raise UsageError("--output", path, f"{path} is a symbolic link (to {target})",
                             hint=f"--force writes {target} through it (the link stays); or choose another "
                                  f"file name")
    kind = irreplaceable(target)
    if kind:
        raise UsageError("--output", path, f"{path} is {kind}", _ACCEPTED)
    return target


_ACCEPTED = "a regular file's name, or '-' for standard output"


def irreplaceable(path: str) -> str:
    """What ``path`` is when a rename must not replace it ('a named pipe (FIFO)'...); '' when it is
    absent or a regular file, the only things an atomic write replaces."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # absent, or unreachable: the write itself will say why
        return ""
    if stat.S_ISREG(mode):
        return ""
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    Whatever fails (the writer, a full disk, a missing folder), ``path`` stays as it was and no
    temporary file is left; an OSError becomes an ArchcalcError that names the file. Only a
    regular file is ever replaced (see irreplaceable).
    """
    kind = irreplaceable(path)
    if kind:
        raise ArchcalcError(f"cannot write {path}: it is {kind}, and only a regular file is replaced")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=".archcalc-", suffix=os.path.splitext(path)[1], dir=directory)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    os.close(fd)
    try:
        yield temporary
        os.chmod(temporary, _mode_for(path))  # mkstemp's 0600 would hide the file from others
        os.replace(temporary, path)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _cannot_write(path: str, exc: OSError) -> ArchcalcError:
    return ArchcalcError(f"cannot write {path}: {exc.strerror or exc}")


def _mode_for(path: str) -> int:
    """The mode a plain open() would give: the replaced file's, else 0666 less the umask."""
    if os.path.exists(path):
        return os.stat(path).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text(path: str, text: str) -> None:
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
