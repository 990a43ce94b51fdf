"""Reading untrusted file formats safely: pickles and tar archives.

A pickle can run arbitrary code when loaded (its ``GLOBAL``/``REDUCE`` opcodes call
any importable function), and a tar archive can write outside the extraction folder
through absolute member names or ``..`` components. Dataset files come from the
internet, so tsdiff never trusts either:

- :func:`safe_load_pickle` only rebuilds plain containers (list, dict, tuple, str,
  numbers, set) and numpy arrays / dtypes / scalars; any other global is refused
  with :class:`~tsdiff.errors.DataError` *before* it is called.
- :func:`safe_tar_members` yields regular-file members after refusing absolute
  paths, ``..`` components, links and device files.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import PurePosixPath
from typing import Iterator

import numpy as np

from tsdiff.errors import DataError

# numpy's own reconstruction helpers: they build arrays from raw bytes, call no user code.
_NP_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_NP_SCALAR = np.float32(0).__reduce__()[0]
_NP_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # protocol-5 arrays: raw buffer + dtype + shape



def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``: protocol-2 pickles store bytes as latin-1 text."""
    if str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise DataError(f"pickle asks for codec {encoding!r}; only latin-1 byte strings are allowed")
    return text.encode("latin-1", errors)


#: (module, name) -> object a pickle may reference. Anything else is refused.
ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _NP_SCALAR,
    ("numpy._core.multiarray", "scalar"): _NP_SCALAR,
    ("numpy.core.numeric", "_frombuffer"): _NP_FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _NP_FROMBUFFER,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("collections", "OrderedDict"): dict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str, **kwargs) -> None:
        super().__init__(fh, **kwargs)
        self._source = source

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle hook
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._source}: the pickle references {module}.{name}, which tsdiff refuses to load "
                "(only plain containers and numpy arrays are allowed, because unpickling other "
                "objects can run code). Re-create the file from a trusted source, or convert it "
                "to .npz / .csv"
            ) from None

    def persistent_load(self, pid):
        raise DataError(f"{self._source}: the pickle uses persistent ids ({pid!r}); refused")


def safe_load_pickle(path: str | os.PathLike | bytes, encoding: str = "latin1"):
    """Load a pickle that may only contain containers, strings, numbers and numpy arrays.

    Args:
        path: a file path, or the pickle's bytes.
        encoding: how Python-2 ``str`` objects are decoded (DCRNN's files need latin-1).

    Raises:
        DataError: the pickle references any other global (e.g. ``os.system``), or is
            not a valid pickle.
    """
    if isinstance(path, (bytes, bytearray)):
        fh, source = io.BytesIO(path), "<bytes>"
    else:
        fh, source = open(path, "rb"), str(path)
    with fh:
        try:
            return _RestrictedUnpickler(fh, source, encoding=encoding).load()
        except DataError:
            raise
        except Exception as exc:  # truncated / not a pickle
            raise DataError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def check_member_name(name: str, archive: str = "<archive>") -> str:
    """Refuse archive member names that could escape the extraction folder."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{archive}: member {name!r} has an absolute path; refusing to read this archive")
    if ".." in p.parts:
        raise DataError(f"{archive}: member {name!r} contains '..'; refusing to read this archive")
    return name


def safe_tar_members(tar: tarfile.TarFile, archive: str = "<archive>") -> Iterator[tarfile.TarInfo]:
    """Yield the regular files of ``tar`` after checking every member's name and type.

    Raises:
        DataError: a member has an absolute path or ``..``, or is a link / device.
    """
    for member in tar:
        check_member_name(member.name, archive)
        if member.issym() or member.islnk():
            raise DataError(f"{archive}: member {member.name!r} is a link; refusing to read this archive")
        if member.isdev():
            raise DataError(f"{archive}: member {member.name!r} is a device file; refusing")
        if member.isfile():
            yield member
