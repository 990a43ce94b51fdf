"""Dataset specifications: which files a source needs, where they come from, checksums."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tsdiff.data.paths import ENV_VAR, data_dir
from tsdiff.errors import DatasetNotFoundError


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset and the SHA-256 of the published version.

    ``sha256`` is None where no published checksum is known (large files that are not
    mirrored); such files are still found and hashed, but never reported as changed.
    """

    name: str
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is made of and where a user gets it.

    ``folder`` is the sub-folder of the data directory that holds ``files``.
    ``source`` tells a person exactly where the files come from (URL and the path
    inside an archive, if any); ``licence`` is the publisher's licence.
    """

    name: str
    folder: str
    files: tuple[DataFile, ...]
    source: str
    licence: str
    description: str = ""
    card: str = ""  # file name of the human-readable card under datasets/
    extra: dict = field(default_factory=dict)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def locate_files(spec: DatasetSpec, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Find the files of ``spec`` in the data directory.

    Returns:
        A mapping file name -> path.

    Raises:
        DatasetNotFoundError: naming the missing files, their source, and the folder
            to put them in (and how to point tsdiff at another data directory).
    """
    base, origin = data_dir(root)
    folder = base / spec.folder
    paths = {f.name: folder / f.name for f in spec.files}
    missing = [name for name, p in paths.items() if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {spec.name!r}: missing file(s) {', '.join(missing)} in {folder} "
            f"(data directory {base}, {origin}). These files are not downloaded "
            f"automatically. Get them from: {spec.source} (licence: {spec.licence}). "
            f"Put them in {folder}/, or set {ENV_VAR} (or data.data_dir in the config) "
            f"to a directory that has a {spec.folder}/ folder with them."
        )
    return paths


def checksums(spec: DatasetSpec, paths: dict[str, Path]) -> dict[str, str]:
    """SHA-256 of each file; warns when a file differs from the published version."""
    out = {}
    for f in spec.files:
        digest = sha256_file(paths[f.name])
        out[f.name] = digest
        if f.sha256 is not None and digest != f.sha256:
            warnings.warn(
                f"dataset {spec.name!r}: {paths[f.name]} has SHA-256 {digest}, not the published "
                f"{f.sha256}; results will not be comparable with published numbers",
                stacklevel=2,
            )
    return out


@dataclass(frozen=True)
class FileStatus:
    """Result of checking one file of a dataset (``tsdiff datasets verify``).

    ``status`` is ``"ok"`` (checksum matches), ``"unknown"`` (present, no published
    checksum to compare), ``"mismatch"`` (present, different checksum) or ``"missing"``.
    """

    name: str
    path: Path
    status: str
    sha256: str | None = None
    expected: str | None = None


def verify_files(spec: DatasetSpec, root: str | os.PathLike | None = None) -> list[FileStatus]:
    """Find and hash every file of ``spec`` in the data directory, without raising.

    Returns:
        one :class:`FileStatus` per file of ``spec``, in the spec's order.
    """
    base, _ = data_dir(root)
    out = []
    for f in spec.files:
        path = base / spec.folder / f.name
        if not path.is_file():
            out.append(FileStatus(f.name, path, "missing", None, f.sha256))
            continue
        digest = sha256_file(path)
        status = "unknown" if f.sha256 is None else ("ok" if digest == f.sha256 else "mismatch")
        out.append(FileStatus(f.name, path, status, digest, f.sha256))
    return out
