"""Writing outputs atomically: a failed write never leaves a half-written file behind."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager

from .errors import ArchcalcError


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    Whatever fails (the writer, a full disk, a missing folder), ``path`` stays as it was and no
    temporary file is left; an OSError becomes an ArchcalcError that names the file.
    """
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
