"""Atomic file writes: a reader never sees a truncated file, even if the writer is killed.

A write goes to a hidden temporary beside the target, ``.NAME.tsdiff-PID-XXXXXXXX.tmp``, renamed
over ``NAME`` when complete. A writer killed with no chance to clean up (``kill -9``, a power cut)
leaves that temporary behind; the next write to the same ``NAME`` removes every such temporary
whose process is gone (and those of older tsdiff versions, ``.NAME.XXXXXXXX.tmp``, once they are
an hour old). :func:`check_writable` and :func:`same_file` let commands refuse an output before
doing any work.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from tsdiff.errors import ConfigError

#: temporaries of tsdiff versions that did not name the writing process are stale after this long
LEGACY_TMP_AGE_S = 3600.0


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
    if path.is_dir():
        raise ConfigError(f"cannot write {str(path)!r}: it is a directory; give a file name inside it, "
                          f"e.g. {str(path / 'output')!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tsdiff-{os.getpid()}-", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {str(path)!r}: {_reason(exc)}; choose another location or fix the "
                          "folder's permissions") from None
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


def _reason(exc: OSError) -> str:
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return f"{exc.strerror or exc}{where}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or unknown: keep its file
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed writers of ``path`` left beside it (see the module's
    docstring); a temporary of a process that still runs is kept. Returns the removed files."""
    path = Path(path)
    ours = re.compile(re.escape(f".{path.name}.tsdiff-") + r"(\d+)-[A-Za-z0-9_]+\.tmp")
    legacy = re.compile(re.escape(f".{path.name}.") + r"[A-Za-z0-9_]{8}\.tmp")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = ours.fullmatch(entry.name)
        try:
            stale = (m is not None and not _pid_alive(int(m.group(1)))) or (
                m is None and legacy.fullmatch(entry.name) is not None
                and now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_TMP_AGE_S)
            if stale and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether the paths name the same file: equal once resolved (``..``, symlinks), or, when both
    exist, the same inode (hard links, a case-insensitive file system)."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_writable(path: str | os.PathLike, role: str = "output") -> Path:
    """Refuse, before any work, an output that could not be written: a directory, a path under a
    file, a read-only file, or a folder (the nearest existing one; missing folders are created
    when writing) where no file can be created (tried with a probe file, removed at once).

    Raises:
        ConfigError: naming ``role``, the path, the problem and the fix.
    """
    p = Path(path).expanduser()
    if str(path) == "":
        raise ConfigError(f"{role}: the file name is empty; give a file to write")
    if p.is_dir():
        raise ConfigError(f"{role} {str(path)!r} is a directory; give a file name inside it, "
                          f"e.g. {str(p / ('model.pt' if role == '--save-model' else 'output' + p.suffix))!r}")
    folder = p.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{role} {str(path)!r} cannot be written: {str(folder)!r} is a file, not a folder; "
                          "choose another output path")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{role} {str(path)!r} is read-only; make it writable (chmod u+w) or choose another "
                          "output file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".tsdiff-probe-", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{role} {str(path)!r} cannot be written: the folder {str(folder)!r} is not writable "
                          f"({exc.strerror or exc}); choose another folder or fix its permissions") from None
    return p


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
