"""Windows read on demand from a lazily opened source (e.g. a netCDF file larger than memory).

:class:`LazyWindowDataset` gives the same items as the training windows of
:class:`~tsdiff.data.protocol.WindowDataset` (``x``, ``observed_mask``, ``timepoints``,
``start``), but reads each window from its source only when asked, so only the
windows in use are ever in memory. :func:`fit_scaler_streaming` fits the
per-location scaler in one pass over time blocks, never holding the whole series.

A source is anything with ``shape -> (T, N, C)`` and ``window(start, length) ->
float [length, N, C]`` (NaN = missing), such as
:class:`~tsdiff.data.adapters.grid.GridSource` over a dask-backed ``xarray`` Dataset.

Resident memory is then a few windows plus the HDF5 chunk cache of each open netCDF
variable (64 MB by default with netCDF4, independent of the file size; lower it with
``netCDF4.set_chunk_cache`` if needed).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from tsdiff.data.scalers import StandardScaler
from tsdiff.errors import DataError


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


def fit_scaler_streaming(source, starts, window: int, block: int = 256) -> StandardScaler:
    """Per-location mean / std of the observed values covered by the windows, in one pass.

    Reads the covered time range ``block`` steps at a time and merges block statistics
    (Chan et al.'s pairwise update), so memory stays at one block ``[block, N, C]``. The
    result equals :meth:`StandardScaler.fit` on the covered values (up to rounding).
    """
    T, N, C = source.shape
    if block < 1:
        raise DataError(f"block must be >= 1, got {block}")
    count = np.zeros((N, C))
    mean = np.zeros((N, C))
    m2 = np.zeros((N, C))
    for a, b in _covered_runs(starts, window, T):
        for s in range(a, b, block):
            v = source.window(s, min(block, b - s))
            obs = ~np.isnan(v)
            n_b = obs.sum(axis=0)
            if not n_b.any():
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_b = np.where(n_b > 0, np.nansum(v, axis=0) / np.maximum(n_b, 1), 0.0)
                m2_b = np.nansum((v - mean_b) ** 2, axis=0)
            total = count + n_b
            delta = mean_b - mean
            safe = np.maximum(total, 1)
            mean = mean + delta * n_b / safe
            m2 = m2 + m2_b + delta ** 2 * count * n_b / safe
            count = total
    scaler = StandardScaler()
    var = np.where(count > 1, m2 / np.maximum(count - 1, 1), 1.0)
    std = np.sqrt(var)
    scaler.mean = np.where(count > 0, mean, 0.0)
    scaler.std = np.where(std > 0, std, 1.0)
    return scaler


class LazyWindowDataset(Dataset):
    """Windows of ``window`` steps starting at ``starts``, read from ``source`` on access.

    Each item (all ``[L, N, C]`` unless noted): ``x`` float32 scaled values, 0 where
    missing; ``observed_mask`` bool; ``timepoints`` ``[L]`` float 0..L-1; ``start`` int.

    Args:
        source: ``shape`` + ``window(start, length)`` (see the module docstring).
        starts: window start positions.
        scaler: a fitted scaler of :mod:`tsdiff.data.scalers` (``(x - mean) / std``), e.g.
            from :func:`fit_scaler_streaming`.
    """

    def __init__(self, source, starts, window: int, scaler: StandardScaler) -> None:
        T = source.shape[0]
        self.starts = np.asarray(starts, dtype=np.int64)
        if window < 1:
            raise DataError(f"window must be >= 1, got {window}")
        if len(self.starts) and (self.starts.min() < 0 or self.starts.max() + window > T):
            raise DataError(f"window starts must lie in 0..{T - window} for windows of {window} in {T} steps")
        self.source, self.L, self.scaler = source, window, scaler
        self.timepoints = torch.arange(window, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict:
        s = int(self.starts[i])
        v = np.asarray(self.source.window(s, self.L), dtype=np.float64)
        observed = ~np.isnan(v)
        self.scaler._check(v)
        np.subtract(v, self.scaler.mean, out=v)  # (v - mean) / std in place: one window in memory
        np.divide(v, self.scaler.std, out=v)
        v[~observed] = 0.0
        return {"x": torch.from_numpy(v.astype(np.float32)), "observed_mask": torch.from_numpy(observed),
                "timepoints": self.timepoints, "start": s}
