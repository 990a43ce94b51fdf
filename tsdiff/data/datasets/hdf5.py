"""Reading DataFrames that pandas stored in HDF5 ``fixed`` format, with h5py only.

DCRNN's ``metr-la.h5`` and ``pems-bay.h5`` were written by ``DataFrame.to_hdf`` (format
``fixed``, through PyTables). pandas needs PyTables to read them back; tsdiff reads
the layout directly with h5py instead. A frame stored under key ``df`` is the group
``/df`` (attribute ``pandas_type = "frame"``) holding:

- ``axis0``: the column labels (fixed-width byte strings, attribute ``kind = "string"``,
  or integers, ``kind = "integer"``);
- ``axis1``: the row index; a DatetimeIndex is int64 nanoseconds since 1970
  (``kind = "datetime64"``);
- ``block{i}_items`` / ``block{i}_values``, i < ``nblocks``: each block's column labels
  and values. Values are stored transposed (attribute ``transposed``), i.e. as
  ``[rows, block columns]``.

Only frames with a plain (not multi-level) index and columns and numeric blocks are
supported; anything else is a :class:`~tsdiff.errors.DataError` that says so.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from tsdiff.errors import DataError


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def _labels(node, path: str) -> list:
    data = node[()]
    kind = _text(node.attrs.get("kind", ""))
    if data.dtype.kind == "S":
        return [v.decode("utf-8") for v in data]
    if data.dtype.kind in "iu" and kind in ("integer", ""):
        return [int(v) for v in data]
    if data.dtype.kind == "f" and kind in ("float", ""):
        return [float(v) for v in data]
    raise DataError(f"{path}: labels {node.name!r} of kind {kind!r} / dtype {data.dtype} are not supported")


def _index(node, path: str) -> pd.Index:
    kind = _text(node.attrs.get("kind", ""))
    if kind.startswith("datetime64"):
        unit = kind[len("datetime64["):-1] if "[" in kind else "ns"
        values = np.asarray(node[()], dtype=np.int64).astype(f"datetime64[{unit}]")
        index = pd.DatetimeIndex(values)
        tz = node.attrs.get("tz")
        if tz is not None and isinstance(tz, (bytes, str)) and _text(tz):
            index = index.tz_localize("UTC").tz_convert(_text(tz))
        return index
    return pd.Index(_labels(node, path))


def list_frames(path: str | os.PathLike) -> list[str]:
    """Keys of the pandas frames stored in an HDF5 file (e.g. ``["df"]``)."""
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Group)
                     and _text(obj.attrs.get("pandas_type", "")) == "frame" else None)
    return out


def read_pandas_hdf5(path: str | os.PathLike, key: str | None = None) -> pd.DataFrame:
    """Read one DataFrame stored by ``DataFrame.to_hdf(path, key, format="fixed")``.

    Args:
        key: the frame's key; default: the only frame in the file.
    Returns:
        the DataFrame (index and columns as stored; values float64 / the stored dtype).
    Raises:
        DataError: not an HDF5 file, no such frame, or a layout tsdiff does not read
            (multi-level axes, object blocks, ``format="table"`` stores).
    """
    import h5py

    path = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        if key is None:
            keys = []
            f.visititems(lambda name, obj: keys.append(name) if isinstance(obj, h5py.Group)
                         and "pandas_type" in obj.attrs else None)
            if len(keys) != 1:
                raise DataError(f"{path}: expected one pandas object, found {keys or 'none'}; pass key=")
            key = keys[0]
        key = key.strip("/")
        if key not in f or not isinstance(f[key], h5py.Group):
            raise DataError(f"{path}: no pandas object under key {key!r}")
        g = f[key]
        ptype = _text(g.attrs.get("pandas_type", ""))
        if ptype != "frame":
            hint = " (format='table' stores need PyTables; re-save with format='fixed')" if "table" in ptype else ""
            raise DataError(f"{path}:/{key} is a {ptype or 'non-pandas'} object, not a fixed-format DataFrame{hint}")
        for axis in ("axis0", "axis1"):
            variety = _text(g.attrs.get(f"{axis}_variety", "regular"))
            if variety != "regular" or axis not in g:
                raise DataError(f"{path}:/{key}: {axis} is {variety!r}; only plain (non-multi) axes are supported")
        columns = pd.Index(_labels(g["axis0"], path))
        index = _index(g["axis1"], path)
        nblocks = int(np.asarray(g.attrs.get("nblocks", 0)))
        if nblocks < 1:
            raise DataError(f"{path}:/{key}: the frame has no value blocks")
        values = np.full((len(index), len(columns)), np.nan)
        filled = np.zeros(len(columns), dtype=bool)
        for i in range(nblocks):
            node = g.get(f"block{i}_values")
            items = g.get(f"block{i}_items")
            if node is None or items is None or not isinstance(node, h5py.Dataset):
                raise DataError(f"{path}:/{key}: block {i} is missing or not an array (object columns?)")
            block = node[()]
            if block.dtype.kind not in "fiub":
                raise DataError(f"{path}:/{key}: block {i} has dtype {block.dtype}; only numeric columns are supported")
            if not bool(np.asarray(node.attrs.get("transposed", False))):
                block = block.T
            labels = _labels(items, path)
            if block.shape != (len(index), len(labels)):
                raise DataError(
                    f"{path}:/{key}: block {i} has shape {block.shape}, expected ({len(index)}, {len(labels)})"
                )
            pos = columns.get_indexer(pd.Index(labels))
            if (pos < 0).any():
                raise DataError(f"{path}:/{key}: block {i} names columns that are not in axis0")
            values[:, pos] = block
            filled[pos] = True
        if not filled.all():
            raise DataError(f"{path}:/{key}: {int((~filled).sum())} column(s) have no values")
    return pd.DataFrame(values, index=index, columns=columns)
