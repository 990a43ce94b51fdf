"""The :class:`Forecast` object: sample paths of a forecast and their summaries.

Quantiles (``quantile``, ``median``, ``interval``, ``to_pandas``, ``plot``) follow tsdiff's
one definition, GluonTS' nearest rank (:mod:`tsdiff.quantiles`): ``forecast.quantile(q)``
equals ``forecast.to_gluonts()[n].quantile(q)`` and the quantiles of
:mod:`tsdiff.metrics` bit for bit, the median included when the sample count is even.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd

from tsdiff import validation as checks
from tsdiff.errors import ConfigError, DataError
from tsdiff.quantiles import sample_quantile

if TYPE_CHECKING:
    from tsdiff.data.series import Series


class Forecast:
    """Sample paths of a forecast and their summaries.

    Attributes:
        samples_full: float64 ``[S, H, N, C]`` sample paths in data units.
        index: ``pd.DatetimeIndex`` of the H future steps.
        node_names / channel_names: labels of the N and C axes.
        history: the observed context (a :class:`Series`), for plots.

    Quantiles are GluonTS' nearest-rank sample quantiles (:mod:`tsdiff.quantiles`): each is
    one of the S samples, and the median of an even number of samples is one of the two
    middle ones, not their mean.
    """

    def __init__(self, samples: np.ndarray, index: pd.DatetimeIndex, node_names: list, channel_names: list, *,
                 freq: str | None = None, columns: list | None = None, item_ids: list | None = None,
                 history: Series | None = None, grid=None, time_name: str | None = None) -> None:
        s = np.asarray(samples, dtype=np.float64)
        if s.ndim != 4:
            raise DataError(f"forecast samples must be [S, H, N, C], got shape {s.shape}")
        self.samples_full = s
        self.index = pd.DatetimeIndex(index)
        self.node_names, self.channel_names = list(node_names), list(channel_names)
        self.freq = freq
        self.columns = list(columns) if columns is not None and len(columns) == s.shape[2] else list(node_names)
        self.item_ids = item_ids
        self.history = history
        self.grid = grid
        self.time_name = time_name or self.index.name or "time"

    def _shape(self, a: np.ndarray) -> np.ndarray:
        return a[..., 0] if self.samples_full.shape[-1] == 1 else a

    @property
    def samples(self) -> np.ndarray:
        """``[S, H, N]`` (one channel) or ``[S, H, N, C]`` sample paths."""
        return self._shape(self.samples_full)

    @property
    def n_samples(self) -> int:
        return self.samples_full.shape[0]

    @property
    def prediction_length(self) -> int:
        return self.samples_full.shape[1]

    @property
    def mean(self) -> np.ndarray:
        """``[H, N(, C)]`` sample mean."""
        return self._shape(checks.finite_reduce(np.mean, self.samples_full, axis=0))

    @property
    def median(self) -> np.ndarray:
        """``[H, N(, C)]`` sample median: ``quantile(0.5)``, as GluonTS' ``SampleForecast.median``."""
        return self.quantile(0.5)

    def quantile(self, q) -> np.ndarray:
        """Sample quantile(s): ``[H, N(, C)]`` for a scalar ``q``, ``[Q, H, N(, C)]`` for a list.

        Nearest rank (:mod:`tsdiff.quantiles`): the sample ``round((S - 1) * q)`` in sorted
        order, exactly GluonTS' ``SampleForecast.quantile``.
        """
        checks.check_levels(q, "quantile levels")
        return self._shape(sample_quantile(self.samples_full, q, axis=0))

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central prediction interval ``(lower, upper)``, each ``[H, N(, C)]``, covering ``level``."""
        if not 0 < level < 1:
            raise ConfigError(f"interval level must be in (0, 1), got {level!r}")
        a = (1 - level) / 2
        return self.quantile(a), self.quantile(1 - a)

    def to_pandas(self, quantiles: Iterable[float] = (0.1, 0.5, 0.9)) -> pd.DataFrame:
        """Mean and quantile columns on the future index.

        Returns:
            DataFrame ``[H, N * (1 + Q)]`` (times C channels when C > 1) with MultiIndex
            columns ``(series, stat)`` (``(series, channel, stat)`` when C > 1); ``stat`` is
            ``"mean"`` or the quantile level as a string (``"0.1"``), the same values as
            :meth:`quantile`.
        """
        ql = [quantiles] if np.isscalar(quantiles) else list(quantiles)
        qs = checks.check_levels(ql, "to_pandas(quantiles=...)") if ql else []
        stats = {"mean": checks.finite_reduce(np.mean, self.samples_full, axis=0)}
        qv = sample_quantile(self.samples_full, qs, axis=0) if qs else []
        for q, v in zip(qs, qv):
            stats[str(q)] = v
        C = self.samples_full.shape[-1]
        cols, data = [], []
        for n, col in enumerate(self.columns):
            for c in range(C):
                for name, v in stats.items():
                    cols.append((col, name) if C == 1 else (col, self.channel_names[c], name))
                    data.append(v[:, n, c])
        names = ["series", "stat"] if C == 1 else ["series", "channel", "stat"]
        return pd.DataFrame(np.stack(data, axis=1), index=pd.DatetimeIndex(self.index, name=self.time_name),
                            columns=pd.MultiIndex.from_tuples(cols, names=names))

    def to_xarray(self):
        """Samples with a ``sample`` dimension and the original coordinates.

        Grid data: an ``xarray.Dataset`` with the source's variables, dims
        ``(sample, time, lat, lon)`` and its coordinate attributes. Other data: a
        ``DataArray`` ``[S, H, N]`` (or ``[S, H, N, C]``) with dims ``(sample, time,
        series(, channel))``.
        """
        import xarray as xr

        if self.grid is not None:
            parts = [self.grid.to_xarray(self.samples_full[s].astype(np.float64), time_index=self.index)
                     for s in range(self.n_samples)]
            return xr.concat(parts, dim="sample").assign_coords(sample=np.arange(self.n_samples))
        dims = ["sample", self.time_name, "series"] + (["channel"] if self.samples_full.shape[-1] > 1 else [])
        coords = {"sample": np.arange(self.n_samples), self.time_name: self.index, "series": self.columns}
        if len(dims) == 4:
            coords["channel"] = self.channel_names
        return xr.DataArray(self.samples, dims=dims, coords=coords, name="forecast")

    def to_gluonts(self, channel: int = 0) -> list:
        """One GluonTS ``SampleForecast`` per series (samples ``[S, H]``) of one channel.

        Its ``start_date`` is a ``pd.Period`` of the period frequency equivalent to the data's
        (:func:`tsdiff.data.periods.period_freq`: ``MS``/``BMS`` -> ``M``, ``QS`` -> ``Q-DEC``,
        ``YS`` -> ``Y-DEC``, ``B``, ``W-SUN``, ``h``, ``15min`` unchanged, ...), so each
        forecast timestamp lies in the matching period of the GluonTS forecast's index.
        """
        from tsdiff.data.adapters.gluonts import to_sample_forecasts

        freq = self.freq or pd.infer_freq(self.index)
        ids = self.item_ids if self.item_ids is not None else self.columns
        return to_sample_forecasts(self.samples_full[..., channel], self.index[0], freq, item_ids=ids)

    def plot(self, path: str | os.PathLike | None = None, *, series=None, levels=(0.5, 0.9), **kwargs):
        """Fan chart (median, central intervals, observed history); see :func:`tsdiff.plotting.plot_forecast`."""
        from tsdiff.plotting import plot_forecast

        return plot_forecast(self, path=path, series=series, levels=levels, **kwargs)

    def __repr__(self) -> str:
        S, H, N, C = self.samples_full.shape
        return (f"Forecast(samples={S}, prediction_length={H}, series={N}, channels={C}, "
                f"start={self.index[0]}, freq={self.freq!r})")


class PanelForecast:
    """Forecasts of independent series (a global :class:`~tsdiff.api.Forecaster`): one
    :class:`Forecast` per series, each on its own future index (one step after its own end).

    ``panel[item]`` is that series' :class:`Forecast`; ``mean``, ``median`` and ``quantile(q)``
    are ``{item: array}`` of the per-series values (the same nearest-rank quantiles).
    """

    def __init__(self, forecasts: dict) -> None:
        self.forecasts = dict(forecasts)

    @property
    def items(self) -> list:
        """The series' ids, in the data's order."""
        return list(self.forecasts)

    def __getitem__(self, item) -> Forecast:
        try:
            return self.forecasts[item]
        except KeyError:
            raise KeyError(f"no series {item!r} in this forecast; its items are {self.items[:5]}"
                           f"{' ...' if len(self.forecasts) > 5 else ''}") from None

    def __len__(self) -> int:
        return len(self.forecasts)

    def __iter__(self):
        return iter(self.forecasts.values())

    @property
    def mean(self) -> dict:
        """``{item: [H, F]}`` sample means (:attr:`Forecast.mean` of each series)."""
        return {k: f.mean for k, f in self.forecasts.items()}

    @property
    def median(self) -> dict:
        return {k: f.median for k, f in self.forecasts.items()}

    def quantile(self, q) -> dict:
        """``{item: Forecast.quantile(q)}``: nearest-rank sample quantiles (:mod:`tsdiff.quantiles`)."""
        return {k: f.quantile(q) for k, f in self.forecasts.items()}

    def to_pandas(self, quantiles: Iterable[float] = (0.1, 0.5, 0.9), item_col: str = "item_id") -> pd.DataFrame:
        """A long frame: one row per series x forecast step (x feature when series have several).

        Columns: ``item_col``, the time column (the data's time name, default ``"time"``), ``series``
        (the feature, only with several features), ``"mean"`` and the quantile levels as strings
        (``"0.1"``), the values of :meth:`Forecast.to_pandas`.
        """
        parts = []
        for item, f in self.forecasts.items():
            wide = f.to_pandas(quantiles)
            long = wide.stack(level="series", future_stack=True).reset_index()
            if len(f.columns) == 1:
                long = long.drop(columns="series")
            long.insert(0, item_col, item)
            long.columns.name = None
            parts.append(long.rename(columns={f.time_name: "time"}) if f.time_name != "time" else long)
        out = pd.concat(parts, ignore_index=True)
        names = {f.time_name for f in self.forecasts.values()}
        return out.rename(columns={"time": names.pop()}) if len(names) == 1 else out

    def to_gluonts(self, channel: int = 0) -> list:
        """GluonTS ``SampleForecast`` objects, series after series (:meth:`Forecast.to_gluonts`); a
        series with several features gives one per feature, ``item_id`` ``"<item>/<feature>"``."""
        return [g for f in self.forecasts.values() for g in f.to_gluonts(channel)]

    def __repr__(self) -> str:
        f = next(iter(self.forecasts.values()), None)
        return (f"PanelForecast(series={len(self)}, samples={f.n_samples if f else 0}, "
                f"prediction_length={f.prediction_length if f else 0})")
