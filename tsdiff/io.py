"""Atomic file writes: a reader never sees a truncated file, even if the writer is killed."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


def _permissions(path: Path) -> int:
    """The permission bits the written file gets: those of the file it replaces, else what a
    plain ``open(path, "w")`` would give (``0o666`` less the umask), not ``mkstemp``'s ``0o600``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` for writers that need a file name (netCDF libraries).

    When the ``with`` block ends without an error the file is synced and renamed to ``path``
    (with the permissions :func:`atomic_write` gives); on an error it is removed, so ``path``
    is never left half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _permissions(path))
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write through ``write(file_object)`` into a temporary file, then rename it into place.

    The file keeps the permissions of the one it replaces (a new file gets the umask's)."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        write(fh)
        fh.flush()
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (see :func:`atomic_write`)."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda fh: fh.write(text), mode="w")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by :func:`write_json`.

    Raises:
        DataError: the file does not exist, or is not complete valid JSON (e.g. a
            file truncated by a crash of a writer that did not write atomically).
    """
    from tsdiff.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"JSON file {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path} is not a complete JSON document ({exc}); it may be truncated or corrupt - "
            "re-create it (e.g. re-run the command that wrote it)"
        ) from None
