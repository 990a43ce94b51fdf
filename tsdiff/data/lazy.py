"""Windows read on demand from a lazily opened source (e.g. a netCDF file larger than memory).

A :class:`~tsdiff.data.protocol.Protocol` whose ``series`` is such a source reads each
window when its :class:`~tsdiff.data.protocol.WindowDataset` item is asked for; the
``file`` dataset (:mod:`tsdiff.data.datasets.files`, ``data.dataset: file``) builds one
from a netCDF grid or a ``.npy`` array (:func:`~tsdiff.data.datasets.files.open_source`,
:class:`ArraySource`, :class:`NpyRows`), with held-out entries drawn per window
(:class:`HeldOutPoints`).

:class:`~tsdiff.data.protocol.WindowDataset` over such a protocol reads each window
(:func:`read_window`, :func:`scale_window`) only when an item is asked for, so only the
windows in use are ever in memory. :func:`fit_scaler_streaming` fits the per-location
scaler in one pass over time blocks, never holding the whole series.

A source is anything with ``shape -> (T, N, C)`` and ``window(start, length) ->
float [length, N, C]`` (NaN = missing), such as
:class:`~tsdiff.data.adapters.grid.GridSource` over a dask-backed ``xarray`` Dataset.

Resident memory is then a few windows plus the HDF5 chunk cache of each open netCDF
variable (64 MB by default with netCDF4, independent of the file size; lower it with
``netCDF4.set_chunk_cache`` if needed).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from tsdiff.data.scalers import StandardScaler
from tsdiff.data.series import Series
from tsdiff.errors import DataError

def check_window(start: int, length: int, T: int) -> None:
    """Refuse a window ``[start, start + length)`` that does not lie in ``T`` time steps (DataError)."""
    if start < 0 or length < 1 or start + length > T:
        raise DataError(f"window [{start}, {start + length}) outside the {T} time steps")


def read_series(source, start: int = 0, stop: int | None = None) -> Series:
    """Steps ``[start, stop)`` (default: all) of a lazily read source as a :class:`Series` in memory,
    with the source's names, time index, spatial metadata and attributes."""
    stop = source.shape[0] if stop is None else stop
    return Series(source.window(start, stop - start), source.time_index[start:stop], list(source.node_names),
                  list(source.channel_names), source.spatial, dict(source.attrs))


class ArraySource:
    """A ``[T, N, C]`` (or ``[T, N]``, ``[T]``) array read one time slice at a time.

    Works on anything sliced along its first axis without loading the rest: a numpy
    memory map (``np.load(path, mmap_mode="r")``, :func:`~tsdiff.data.datasets.files.open_source`
    on a ``.npy`` file), an ``h5py`` or ``zarr`` array, or an ordinary array. Integer and float
    arrays are accepted; NaN marks a missing value.

    Args:
        array: the data; time is the first axis.
        time_index: T timestamps (default: ``freq`` steps from ``start``).
        node_names / channel_names: N and C names (default ``"0".."N-1"`` / ``"c0"..``).
        spatial: graph or grid metadata of the N nodes, or None.
    """

    def __init__(self, array, time_index=None, node_names=None, channel_names=None, spatial=None,
                 start: str = "2000-01-01", freq: str = "h", attrs: dict | None = None) -> None:
        shape = tuple(int(n) for n in getattr(array, "shape", ()))
        if len(shape) not in (1, 2, 3):
            raise DataError(f"a lazily read array must be [T], [T, N] or [T, N, C], got shape {shape}")
        kind = np.dtype(array.dtype).kind
        if kind not in "iuf":
            raise DataError(f"array values must be real numbers (NaN = missing), got dtype {array.dtype}")
        self.array = array
        T, N, C = (*shape, 1, 1)[:3]
        if min(T, N, C) == 0:
            raise DataError(f"the array is empty (shape {shape})")
        self.shape = (T, N, C)
        self.time_index = (pd.DatetimeIndex(time_index) if time_index is not None
                           else pd.date_range(start, periods=T, freq=freq))
        self.node_names = list(node_names) if node_names is not None else [str(i) for i in range(N)]
        self.channel_names = list(channel_names) if channel_names is not None else [f"c{i}" for i in range(C)]
        for what, names, n in (("time_index", self.time_index, T), ("node_names", self.node_names, N),
                               ("channel_names", self.channel_names, C)):
            if len(names) != n:
                raise DataError(f"{what} has {len(names)} entries but the array has {n}")
        if not self.time_index.is_unique or not self.time_index.is_monotonic_increasing:
            raise DataError("time_index must be sorted and without duplicates")
        self.spatial = spatial
        self.attrs = {"freq": freq, **(attrs or {})}

    def window(self, start: int, length: int) -> np.ndarray:
        """Steps ``[start, start + length)`` as a new float64 array ``[length, N, C]``."""
        check_window(start, length, self.shape[0])
        out = np.array(self.array[start:start + length], dtype=np.float64)
        return out.reshape(length, *self.shape[1:])

    def to_series(self) -> Series:
        """Read everything into a :class:`Series` (for what needs the whole series in memory)."""
        return read_series(self)


class NpyRows:
    """The rows (first axis) of a ``.npy`` file, read with positioned reads on demand.

    Like ``np.load(path, mmap_mode="r")`` but without mapping the file: the pages read
    are the operating system's file cache, not this process's resident memory, so a scan
    over a file larger than memory (the scaler's pass) leaves the process small.
    Fortran-ordered arrays are read through a memory map instead.
    """

    def __init__(self, path) -> None:
        self.path = str(path)
        mm = np.load(self.path, mmap_mode="r", allow_pickle=False)
        self.shape, self.dtype, self.offset = tuple(mm.shape), mm.dtype, int(mm.offset)
        self.fortran = mm.ndim > 1 and not mm.flags.c_contiguous
        del mm
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("NpyRows reads contiguous row ranges only (a slice with step 1)")
        a, b, _ = rows.indices(self.shape[0])
        b = max(a, b)
        if self.fortran:
            return np.array(np.load(self.path, mmap_mode="r", allow_pickle=False)[a:b])
        n = (b - a) * self.row_bytes
        with open(self.path, "rb", buffering=0) as fh:
            data = os.pread(fh.fileno(), n, self.offset + a * self.row_bytes)
        if len(data) != n:
            raise DataError(f"{self.path}: file ends before row {b} (truncated .npy file?)")
        return np.frombuffer(data, dtype=self.dtype).reshape((b - a, *self.shape[1:]))


def read_window(source, start: int, length: int) -> np.ndarray:
    """``source.window(start, length)`` as float64, refusing infinite values with the position."""
    v = np.asarray(source.window(start, length), dtype=np.float64)
    bad = np.isinf(v)
    if bad.any():
        t, n, c = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"the data holds an infinite value at step {start + t}, node {n}, channel {c} "
                        f"({int(bad.sum())} in steps {start}..{start + length - 1}); replace it with NaN "
                        "(missing) or a finite number")
    return v


def scale_window(v: np.ndarray, scaler: StandardScaler) -> tuple[np.ndarray, np.ndarray]:
    """``(x, observed)``: float32 ``(v - mean) / std`` with 0 where ``v`` is NaN, and the bool mask.

    Works in place on ``v`` (one window in memory); the same numbers as scaling the whole
    series with ``scaler.transform`` and cutting the window out.
    """
    observed = ~np.isnan(v)
    scaler._check(v)
    if np.abs(scaler.mean).max(initial=0.0) > 2.0**1000 or scaler.std.max(initial=0.0) > 2.0**1000:
        v[...] = scaler.transform(v)  # values near the float64 limit: the overflow-safe path
    else:
        np.subtract(v, scaler.mean, out=v)
        np.divide(v, scaler.std, out=v)
    v[~observed] = 0.0
    return v.astype(np.float32), observed


class HeldOutPoints:
    """Held-out entries for imputation, drawn step by step so any window is made on demand.

    Step ``t >= first`` hides each of its ``[N, C]`` entries with probability ``rate``, from
    a generator seeded with ``(seed, t)``: the mask of a window never depends on which other
    windows were read, and no ``[T, N, C]`` array is ever built. Steps before ``first``
    (the training block) hide nothing.
    """

    def __init__(self, shape: tuple[int, int, int], rate: float, seed: int, first: int = 0) -> None:
        if not 0.0 <= rate < 1.0:
            raise DataError(f"the held-out rate must be in [0, 1), got {rate!r}")
        self.shape, self.rate, self.seed, self.first = tuple(shape), float(rate), int(seed), int(first)

    def window(self, start: int, length: int) -> np.ndarray:
        """bool ``[length, N, C]``: the held-out entries of steps ``[start, start + length)``."""
        out = np.zeros((length, *self.shape[1:]), dtype=bool)
        for t in range(max(start, self.first), start + length):
            out[t - start] = np.random.default_rng((self.seed, t)).random(self.shape[1:]) < self.rate
        return out


def _covered_runs(starts, window: int, T: int) -> list[tuple[int, int]]:
    """Merged ``[a, b)`` time ranges covered by windows starting at ``starts``."""
    runs: list[list[int]] = []
    for s in sorted(int(s) for s in starts):
        if s < 0 or s + window > T:
            raise DataError(f"window [{s}, {s + window}) outside the {T} time steps")
        if runs and s <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], s + window)
        else:
            runs.append([s, s + window])
    return [(a, b) for a, b in runs]


def fit_scaler_streaming(source, starts, window: int, block: int = 256, return_counts: bool = False):
    """Per-location mean / std of the observed values covered by the windows, in one pass.

    Reads the covered time range ``block`` steps at a time and merges block statistics
    (Chan et al.'s pairwise update), so memory stays at one block ``[block, N, C]``. The
    result equals :meth:`StandardScaler.fit` on the covered values (up to rounding).

    Returns:
        the scaler, or with ``return_counts`` ``(scaler, count)``: the number of observed
        values per location ``[N, C]`` in the same pass.
    """
    T, N, C = source.shape
    if block < 1:
        raise DataError(f"block must be >= 1, got {block}")
    runs = _covered_runs(starts, window, T)

    def one_pass(factor):
        count = np.zeros((N, C))
        mean = np.zeros((N, C))
        m2 = np.zeros((N, C))
        for a, b in runs:
            for s in range(a, b, block):
                v = read_window(source, s, min(block, b - s))
                if factor is not None:
                    v = v * factor
                obs = ~np.isnan(v)
                n_b = obs.sum(axis=0)
                if not n_b.any():
                    continue
                with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                    mean_b = np.where(n_b > 0, np.nansum(v, axis=0) / np.maximum(n_b, 1), 0.0)
                    m2_b = np.nansum((v - mean_b) ** 2, axis=0)
                    total = count + n_b
                    delta = mean_b - mean
                    safe = np.maximum(total, 1)
                    mean = mean + delta * n_b / safe
                    m2 = m2 + m2_b + delta ** 2 * count * n_b / safe
                count = total
        return count, mean, m2

    count, mean, m2 = one_pass(None)
    factor = None
    overflow = ~(np.isfinite(mean) & np.isfinite(m2))
    if overflow.any():  # values beyond ~1e154: a second pass on values scaled down by 2**-600 there
        factor = np.where(overflow, 2.0**-600, 1.0)
        count, mean, m2 = one_pass(factor)
    scaler = StandardScaler()
    var = np.where(count > 1, m2 / np.maximum(count - 1, 1), 1.0)
    std = np.sqrt(var)
    if factor is not None:
        with np.errstate(over="ignore"):
            mean = mean / factor
            std = np.where(std > 0, np.minimum(std / factor, np.finfo(np.float64).max / 8), 0.0)
    scaler.mean = np.where(count > 0, mean, 0.0)
    scaler.std = np.where(std > 0, std, 1.0)
    if not (np.isfinite(scaler.mean).all() and np.isfinite(scaler.std).all()):
        raise DataError("the scaler's statistics overflow on this data (values near the float64 limit); rescale "
                        "the data (e.g. divide by a power of ten) first")
    return (scaler, count.astype(np.int64)) if return_counts else scaler

