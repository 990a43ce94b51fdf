"""Checksum-verified downloads and safe archive extraction for dataset files.

A dataset file is only ever visible under its final name when it is complete and has
the published SHA-256:

- :func:`download` streams into ``<name>.part`` next to the destination, hashing on
  the way; a size or checksum mismatch deletes the part file and raises. Only a
  verified file is renamed into place (``os.replace``, atomic on one file system).
  A ``.part`` left by a killed download is never read: the next attempt starts over.
- :func:`fetch_missing` downloads the missing files of a
  :class:`~tsdiff.data.datasets.base.DatasetSpec` from known URLs, refusing files
  without a published checksum.
- :func:`extract_archive` unpacks tar / zip archives after refusing members with
  absolute paths, ``..`` components, links or device files
  (:mod:`tsdiff.data.safe_io`), and never writes outside the target folder.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Mapping

from tsdiff.data.safe_io import check_member_name, safe_tar_members
from tsdiff.errors import DataError, DatasetNotFoundError

#: URL schemes :func:`download` accepts.
SCHEMES = ("https", "http", "file")
PART_SUFFIX = ".part"


def _is_sha256(text) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str,
    *,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    opener: Callable = urllib.request.urlopen,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``; only a complete file with checksum ``sha256`` appears there.

    Args:
        url: ``https://``, ``http://`` or ``file://`` address.
        dest: final path of the file.
        sha256: expected SHA-256 (64 hex digits) of the complete file.
        timeout: seconds before a stalled connection fails.
        opener: ``urlopen``-like callable (tests and proxies).
        progress: called with the bytes received so far after every chunk.
    Returns:
        ``dest``. If ``dest`` already exists with the right checksum nothing is downloaded.
    Raises:
        DataError: a malformed checksum or URL scheme; an existing
            ``dest`` with another checksum (it is never overwritten); a download whose
            size or checksum does not match (the partial file is deleted).
        DatasetNotFoundError: the URL cannot be fetched (network error, HTTP error).
    """
    from tsdiff.data.datasets.base import sha256_file

    dest = Path(dest)
    if not _is_sha256(sha256):
        raise DataError(f"download of {dest.name}: expected a SHA-256 of 64 hex digits, got {sha256!r}; "
                        "tsdiff never downloads a file it cannot verify")
    sha256 = sha256.lower()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in SCHEMES:
        raise DataError(f"download of {dest.name}: unsupported URL {url!r}; use one of {', '.join(SCHEMES)}")
    if dest.exists():
        got = sha256_file(dest)
        if got == sha256:
            return dest
        raise DataError(
            f"{dest} exists but has SHA-256 {got}, not the expected {sha256}; it is not overwritten. "
            "Delete it to download it again, or check where it came from"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)
    digest, received = hashlib.sha256(), 0
    try:
        try:
            response = opener(url, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DatasetNotFoundError(
                f"could not download {url} ({type(exc).__name__}: {exc}); download it by hand and put it at {dest}"
            ) from None
        with response, open(part, "wb") as fh:  # "wb" truncates a stale part file
            length = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
            while True:
                try:
                    block = response.read(chunk_size)
                except OSError as exc:
                    raise DatasetNotFoundError(f"download of {url} broke off after {received} bytes ({exc}); "
                                               "try again") from None
                if not block:
                    break
                fh.write(block)
                digest.update(block)
                received += len(block)
                if progress is not None:
                    progress(received)
            fh.flush()
            os.fsync(fh.fileno())
        if length is not None and int(length) != received:
            raise DataError(f"download of {url} is incomplete: {received} of {int(length)} bytes received; try again")
        got = digest.hexdigest()
        if got != sha256:
            raise DataError(
                f"download of {url} has SHA-256 {got}, not the expected {sha256}: the file is corrupt or was "
                "changed by its publisher; it was deleted and not used"
            )
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dest


def fetch_missing(spec, root: str | os.PathLike | None, urls: Mapping[str, str], **kwargs) -> dict[str, Path]:
    """Download the files of ``spec`` that are missing from the data directory.

    Args:
        spec: a :class:`~tsdiff.data.datasets.base.DatasetSpec`.
        root: the data directory (as ``data.data_dir``; None: ``TSDIFF_DATA`` or the cache).
        urls: file name -> URL for the files that can be downloaded.
        kwargs: passed to :func:`download`.
    Returns:
        file name -> path of every file of ``spec`` (as :func:`locate_files`).
    Raises:
        DataError: a file to download has no published checksum.
        DatasetNotFoundError: a missing file has no URL (from ``locate_files``).
    """
    from tsdiff.data.paths import data_dir
    from tsdiff.data.datasets.base import locate_files

    base, _ = data_dir(root)
    folder = base / spec.folder
    for f in spec.files:
        path = folder / f.name
        if path.is_file() or f.name not in urls:
            continue
        if not _is_sha256(f.sha256):
            raise DataError(f"dataset {spec.name!r}: {f.name} has no published SHA-256, so it is not downloaded; "
                            f"get it from {spec.source}")
        download(urls[f.name], path, f.sha256, **kwargs)
    return locate_files(spec, root)


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Unpack a tar (any compression) or zip archive into ``dest``, refusing unsafe members.

    Every member is checked before anything is written: absolute paths, ``..``
    components, symbolic / hard links and device files make the whole archive
    refused. Regular files are written through :func:`os.open` with ``O_EXCL`` so an
    existing file (or a link planted in ``dest``) is never followed or overwritten.

    Returns:
        the paths of the extracted files.
    Raises:
        DataError: an unsafe member, an unreadable archive, or an existing target file.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    out: list[Path] = []

    def target(name: str) -> Path:
        path = (root / check_member_name(name, str(archive))).resolve()
        if root != path and root not in path.parents:
            raise DataError(f"{archive}: member {name!r} would be written outside {dest}; refusing")
        return path

    def write(name: str, data_source) -> None:
        path = target(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.resolve() != path.parent or path.is_symlink():
            raise DataError(f"{archive}: member {name!r} goes through a link inside {dest}; refusing")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            raise DataError(f"{archive}: {path} already exists; extract into an empty folder") from None
        with os.fdopen(fd, "wb") as fh, data_source() as src:
            while block := src.read(1 << 20):
                fh.write(block)
        out.append(path)

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:  # check all first: nothing is written from a refused archive
                target(info.filename)
                mode = (info.external_attr >> 16) & 0o170000
                if mode in (0o120000, 0o020000, 0o060000):  # symlink, char / block device
                    raise DataError(f"{archive}: member {info.filename!r} is a link or device; refusing")
            for info in infos:
                if not info.is_dir():
                    write(info.filename, lambda info=info: zf.open(info))
        return out
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = list(safe_tar_members(tar, str(archive)))  # raises on unsafe members
            for member in members:
                target(member.name)
            for member in members:
                write(member.name, lambda member=member: tar.extractfile(member))
    except tarfile.TarError as exc:
        raise DataError(f"{archive}: not a readable tar or zip archive ({exc})") from None
    return out
