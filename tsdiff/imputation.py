"""The result of :meth:`tsdiff.Imputer.impute`: multiple imputations of a table and their summaries.

The counterpart of :class:`tsdiff.forecast.Forecast` for imputation. Every summary comes from
:mod:`tsdiff.quantiles` (nearest-rank quantiles, the median/mean point), so it equals what
``Imputer.transform`` / ``quantiles`` / ``std`` give on the same draws.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from tsdiff import validation as checks
from tsdiff.errors import ConfigError, DataError
from tsdiff.quantiles import POINT_SUMMARIES, point_summary, sample_quantile


class Imputation:
    """Draws of the missing entries of a table ``[T, F]``.

    Attributes:
        samples: float64 ``[S, T, F]``; every draw equals the input on its observed entries.
        missing: bool ``[T, F]``, the entries that were missing (NaN) in the input.
        index: the rows' labels (the DataFrame's index, or 0..T-1).
        columns: the features' labels.
        point: ``"median"`` or ``"mean"``, the point summary of :attr:`filled`.
    """

    def __init__(self, samples: np.ndarray, missing: np.ndarray, *, index=None, columns=None,
                 point: str = "median") -> None:
        s = np.asarray(samples, dtype=np.float64)
        if s.ndim != 3:
            raise DataError(f"imputation samples must be [S, T, F], got shape {s.shape}")
        m = np.asarray(missing, dtype=bool)
        if m.shape != s.shape[1:]:
            raise DataError(f"missing must be [T, F] = {list(s.shape[1:])}, got {list(m.shape)}")
        if point not in POINT_SUMMARIES:
            raise ConfigError(f"point must be one of {sorted(POINT_SUMMARIES)}, got {point!r}")
        self.samples, self.missing, self.point = s, m, point
        self.index = pd.RangeIndex(s.shape[1]) if index is None else pd.Index(index)
        self.columns = [f"x{i}" for i in range(s.shape[2])] if columns is None else list(columns)

    @property
    def n_samples(self) -> int:
        return self.samples.shape[0]

    @property
    def filled(self) -> np.ndarray:
        """``[T, F]``: the input with each missing entry replaced by the draws' point summary."""
        observed = self.samples[0]
        if not self.missing.any():
            return observed.copy()
        return np.where(self.missing, point_summary(self.samples, self.point), observed)

    @property
    def mean(self) -> np.ndarray:
        """``[T, F]`` mean of the draws (the observed value on observed entries)."""
        return checks.finite_reduce(np.mean, self.samples, axis=0)

    @property
    def median(self) -> np.ndarray:
        """``[T, F]`` nearest-rank median of the draws: ``quantile(0.5)``."""
        return self.quantile(0.5)

    @property
    def std(self) -> np.ndarray:
        """``[T, F]`` standard deviation of the draws (0 on observed entries)."""
        return checks.finite_reduce(np.std, self.samples, axis=0)

    def quantile(self, q) -> np.ndarray:
        """Nearest-rank quantile(s) of the draws: ``[T, F]`` for a scalar, ``[Q, T, F]`` for a list."""
        checks.check_levels(q, "quantile levels")
        return sample_quantile(self.samples, q, axis=0)

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central interval ``(lower, upper)``, each ``[T, F]``, holding ``level`` of the draws."""
        if not 0 < level < 1:
            raise ConfigError(f"interval level must be in (0, 1), got {level!r}")
        a = (1 - level) / 2
        return self.quantile(a), self.quantile(1 - a)

    def to_pandas(self, quantiles: Iterable[float] = (0.05, 0.95)) -> pd.DataFrame:
        """The filled table with its uncertainty: columns ``(feature, stat)`` with ``stat``
        ``"value"`` (:attr:`filled`), ``"missing"`` (bool), ``"std"`` and each quantile level as a
        string (``"0.05"``), on the input's index."""
        ql = [quantiles] if np.isscalar(quantiles) else list(quantiles)
        qs = checks.check_levels(ql, "to_pandas(quantiles=...)") if ql else []
        stats = {"value": self.filled, "missing": self.missing, "std": self.std}
        for q, v in zip(qs, sample_quantile(self.samples, qs, axis=0) if qs else []):
            stats[str(q)] = v
        data = {(col, name): v[:, f] for f, col in enumerate(self.columns) for name, v in stats.items()}
        frame = pd.DataFrame(data, index=self.index)
        frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["feature", "stat"])
        return frame

    def to_xarray(self):
        """An ``xarray.Dataset``: ``samples`` ``(sample, time, feature)``, ``filled`` and
        ``missing`` ``(time, feature)``, with the input's labels as coordinates."""
        import xarray as xr

        coords = {"time": np.asarray(self.index), "feature": list(self.columns)}
        return xr.Dataset({
            "samples": (("sample", "time", "feature"), self.samples),
            "filled": (("time", "feature"), self.filled),
            "missing": (("time", "feature"), self.missing),
        }, coords={**coords, "sample": np.arange(self.n_samples)})

    def __repr__(self) -> str:
        S, T, F = self.samples.shape
        return f"Imputation(samples={S}, steps={T}, features={F}, missing={int(self.missing.sum())})"
