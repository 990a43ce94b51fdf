"""Covariates of a forecasting model: which columns it reads, how they are scaled, and the
``[L, K]`` block each window hands the network in :attr:`tsdiff.models.Condition.covariates`.

Three kinds of dynamic covariates, all real-valued:

- known-future (``future``): known over the horizon too (prices, planned events);
- calendar: functions of the timestamps from the frequency (GluonTS's
  :func:`~gluonts.time_feature.time_features_from_frequency_str`: hour of day, day of week, ...,
  each in ``[-0.5, 0.5]``), known-future by construction;
- past-only (``past``): known up to the forecast origin only.

A window's block is ``[future | calendar | past | past_known | static]``: known-future and past
columns standardised with the training data's mean and standard deviation (calendar features are
already in ``[-0.5, 0.5]``), past columns set to 0 over the horizon (and where missing),
``past_known`` 1 on the context steps, 0 on the horizon (present only with past columns), and the
per-series static channels (global models only, constant over each window).

With ``centre_past`` (the Forecaster's ``centre_covariates=True``, its default) each past column
is also centred on its mean over the window's context: the network reads how a past-only
covariate moved within the window, not its level, which drifts between the training period and
the forecast (a missing value then reads as the context mean).

Calendar features whose period the training data covers fewer than :data:`MIN_CYCLES` times
(day of year with under three years of data) are left out by :func:`covered_calendar`: seen in
one or two cycles, such a feature only tells the dates of the training period apart, and a model
learns those dates' values instead of a season.

A joint model shares its covariates between all its series and has no static channels. A global
model (``Forecaster(mode="global")``, :mod:`tsdiff.api.panel_covariates`) reads each series' own
dynamic covariates on its own time axis, the calendar features of its own timestamps and its
static covariates (``static``); the mean and standard deviation are over all training series.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from tsdiff.errors import DataError


def static_channels(static: dict) -> list[str]:
    """The static channels of an encoding (``{"real": [...], "categorical": {col: levels}}``, as
    :class:`~tsdiff.api.panel_covariates.StaticEncoding` keeps it): the real columns, then
    ``"col=level"`` for every training level of a categorical column and ``"col=<unknown>"``."""
    categorical = static.get("categorical", {})
    return list(static.get("real", [])) + [f"{c}={v}" for c, levels in categorical.items()
                                           for v in [*levels, "<unknown>"]]


def calendar_names(freq) -> list[str]:
    """Names of the calendar features of a pandas frequency (GluonTS's choice for it), or ``[]``
    without a frequency."""
    if freq is None:
        return []
    from gluonts.time_feature import time_features_from_frequency_str

    return [fn.__name__ for fn in time_features_from_frequency_str(str(freq))]


MIN_CYCLES = 3
"""Fewest whole periods of a calendar feature the training data must cover for the feature to be used."""

CALENDAR_PERIODS = {"second_of_minute": "1min", "minute_of_hour": "1h", "hour_of_day": "1D", "day_of_week": "7D",
                    "day_of_month": "30.4375D", "day_of_year": "365.25D", "week_of_year": "365.25D",
                    "month_of_year": "365.25D"}
"""Period of each GluonTS calendar feature (the mean length, for months and years)."""


def calendar_choices() -> list[str]:
    """Names a ``calendar=[...]`` list may hold: GluonTS's calendar features."""
    return list(CALENDAR_PERIODS)


def covered_calendar(names: list[str], index: pd.DatetimeIndex, step=None) -> list[str]:
    """The ``names`` whose period the training span covers at least :data:`MIN_CYCLES` times: from
    the first step of ``index`` to the end of its last (one ``step``, a pandas frequency, where it
    has a fixed length). Names without a known period are kept."""
    if not names or not len(index):
        return list(names)
    span = pd.Timestamp(index[-1]) - pd.Timestamp(index[0])
    try:
        span += pd.Timedelta(pd.tseries.frequencies.to_offset(step)) if step is not None else pd.Timedelta(0)
    except (ValueError, TypeError):  # months, years: no fixed length, and one step hardly counts
        pass
    return [n for n in names if n not in CALENDAR_PERIODS or span >= MIN_CYCLES * pd.Timedelta(CALENDAR_PERIODS[n])]


def calendar_features(index: pd.DatetimeIndex, names: list[str]) -> np.ndarray:
    """``[T, len(names)]`` float64 calendar features of ``index`` (names from :func:`calendar_names`)."""
    import gluonts.time_feature as tf

    if not names:
        return np.zeros((len(index), 0))
    return np.stack([np.asarray(getattr(tf, name)(pd.DatetimeIndex(index)), dtype=np.float64) for name in names],
                    axis=1)


@dataclass
class CovariateSpec:
    """The covariates a model was trained with, and their scaling (kept in model files).

    Attributes:
        past: labels of the past-only columns.
        future: labels of the known-future columns.
        calendar: names of the calendar features (:func:`calendar_names`).
        mean, std: per standardised column, in the order ``future + past``.
        static: the per-series static covariates' encoding (``{"real": [...], "mean": [...], "std":
            [...], "categorical": {name: [levels]}}``; :class:`tsdiff.api.panel_covariates.StaticEncoding`),
            empty without them.
        centre_past: centre each past column on its mean over a window's context (:meth:`window`);
            False in model files saved before the option existed.
    """

    past: list = field(default_factory=list)
    future: list = field(default_factory=list)
    calendar: list = field(default_factory=list)
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)
    static: dict = field(default_factory=dict)
    centre_past: bool = False

    @property
    def static_width(self) -> int:
        """The static channels' count (:func:`static_channels`)."""
        return len(static_channels(self.static))

    @property
    def width(self) -> int:
        """K, the channels of a window's block."""
        return len(self.future) + len(self.calendar) + len(self.past) + (1 if self.past else 0) + self.static_width

    @property
    def columns(self) -> list:
        """The data columns read as covariates (known-future first)."""
        return list(self.future) + list(self.past)

    def state_dict(self) -> dict:
        return {"past": list(self.past), "future": list(self.future), "calendar": list(self.calendar),
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std], "static": dict(self.static),
                "centre_past": bool(self.centre_past)}

    @classmethod
    def from_state_dict(cls, state: dict | None) -> "CovariateSpec | None":
        return None if not state else cls(**state)

    @classmethod
    def fit(cls, past: pd.DataFrame, future: pd.DataFrame, calendar: list[str],
            centre_past: bool = False) -> "CovariateSpec":
        """Standardisation of the ``future`` and ``past`` columns on their observed training values
        (a constant column gets standard deviation 1)."""
        values = np.concatenate([future.to_numpy(np.float64), past.to_numpy(np.float64)], axis=1)
        for j, col in enumerate(list(future.columns) + list(past.columns)):
            if np.isnan(values[:, j]).all():
                raise DataError(f"covariate column {col!r} has no value in the training data (all NaN); drop it "
                                "from covariates= / future_covariates=")
        mean = np.nanmean(values, axis=0) if values.shape[1] else np.zeros(0)
        std = np.nanstd(values, axis=0) if values.shape[1] else np.zeros(0)
        std = np.where(std > 0, std, 1.0)
        return cls(list(past.columns), list(future.columns), list(calendar), mean.tolist(), std.tolist(),
                   centre_past=bool(centre_past and past.shape[1]))

    def rows(self, index: pd.DatetimeIndex, future: np.ndarray, past: np.ndarray) -> np.ndarray:
        """``[T, Kf + Kc + Kp]`` float32 ``[future | calendar | past]`` scaled covariates of the steps
        ``index``: ``future [T, Kf]`` and ``past [T, Kp]`` in data units (NaN = unknown, still NaN
        after scaling: :meth:`window` fills it); the calendar features come from ``index``. Without
        the ``past_known`` channel (see :meth:`window`) and the static channels
        (:mod:`tsdiff.api.panel_covariates`)."""
        raw = np.concatenate([np.asarray(future, np.float64).reshape(len(index), -1),
                              np.asarray(past, np.float64).reshape(len(index), -1)], axis=1)
        scaled = (raw - np.asarray(self.mean)) / np.asarray(self.std)
        kf = len(self.future)
        cal = calendar_features(index, self.calendar)
        return np.concatenate([scaled[:, :kf], cal, scaled[:, kf:]], axis=1).astype(np.float32)

    def window(self, rows: np.ndarray, context: int) -> np.ndarray:
        """A window's ``[L, K]`` block from its ``rows`` ``[L, K - 1]`` (:meth:`rows`, then the static
        channels of a global model): with ``centre_past``, the past columns less their mean over
        the known context steps; unknown values 0; the past columns zeroed from step ``context``
        on, and the ``past_known`` channel inserted right after them (with past columns)."""
        rows = np.array(rows, dtype=np.float32)
        if not self.past:
            return np.nan_to_num(rows, nan=0.0)
        first = len(self.future) + len(self.calendar)
        end = first + len(self.past)
        if self.centre_past:
            past = rows[:context, first:end]
            known = ~np.isnan(past)
            mean = np.where(known, past, 0.0).sum(0) / np.maximum(known.sum(0), 1)
            rows[:, first:end] -= mean.astype(np.float32)
        rows = np.nan_to_num(rows, nan=0.0)
        rows[context:, first:end] = 0.0
        known = (np.arange(len(rows)) < context).astype(np.float32)[:, None]
        return np.concatenate([rows[:, :end], known, rows[:, end:]], axis=1)


class CovariateWindows(Dataset):
    """A forecasting :class:`~tsdiff.data.protocol.WindowDataset` whose items also carry
    ``covariates`` ``[L, K]`` (:meth:`CovariateSpec.window`) cut from ``rows`` ``[T, K']``."""

    def __init__(self, windows: Dataset, rows: np.ndarray, spec: CovariateSpec, context: int) -> None:
        self.windows, self.rows, self.spec, self.context = windows, rows, spec, context
        self.L = windows.L

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        item = self.windows[i]
        s = int(item["start"])
        item["covariates"] = torch.from_numpy(self.spec.window(self.rows[s: s + self.L], self.context))
        return item
