"""Rolling-origin evaluation (backtesting) of a :class:`~tsdiff.api.Forecaster`.

A backtest cuts the data at several origins, forecasts the ``horizon`` steps after each cut-off
from the data up to it, and scores each forecast against what happened, with the project's
metrics (:mod:`tsdiff.metrics`, nearest-rank quantiles)::

    fc = tsdiff.Forecaster(prediction_length=24).fit(df.iloc[:-200])
    result = backtest(fc, df, windows=8)          # the last 8 origins, one horizon apart
    result.metrics                                # one row per window x series
    result.summary()                              # each metric's mean over windows and series

Cut-offs. Window ``k`` (``0 .. windows - 1``) conditions on the first ``c_k`` steps of the data
and is scored on steps ``c_k .. c_k + horizon - 1``. By default the last window ends at the end
of the data, ``c_(windows-1) = T - horizon``, and the cut-offs are ``stride`` steps apart
(default ``stride = horizon``: the scored spans tile the end of the data). ``start`` fixes the
first cut-off instead. The ``cutoff`` column is the timestamp of the last conditioning step
(``index[c_k - 1]``), as in sktime and NeuralForecast.

Without ``refit`` the forecaster must already be fitted and only predicts; fit it on data that
ends before the first cut-off, or the scores see the training data. With ``refit=True`` each
window fits a fresh ``sklearn.base.clone`` of the forecaster on its own history.

Covariates. The data up to a cut-off gives the context's covariates; a model with known-future
covariates gets the data's values of them after the cut-off (``predict(future_covariates=...)``).
A global model with known-future covariates is evaluated at each cut-off on the series whose
data reach ``prediction_length`` steps past it (the others have no values over the horizon).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from tsdiff.errors import ConfigError, DataError, TsdiffError
from tsdiff.metrics import ensemble_crps, interval_coverage, mae, mre, quantile_crps, rmse

MetricFn = Callable[..., float]


def _coverage(level: float) -> MetricFn:
    def coverage(samples, target, mask=None) -> float:
        return interval_coverage(samples, target, mask, levels=(level,))[level]

    coverage.__name__ = f"coverage_{round(level * 100)}"
    return coverage


#: Metrics known by name: ``fn(samples [S, *shape], target shape, mask shape) -> float``.
#: ``crps`` is the ensemble CRPS in data units (:func:`~tsdiff.metrics.ensemble_crps`), ``wql`` the
#: normalised 19-quantile CRPS (GluonTS ``mean_wQuantileLoss``), ``mae`` / ``rmse`` / ``mre`` those of
#: the sample median, ``coverage_50`` / ``coverage_90`` the central interval coverage.
METRICS: dict[str, MetricFn] = {
    "crps": ensemble_crps,
    "wql": quantile_crps,
    "mae": mae,
    "rmse": rmse,
    "mre": mre,
    "coverage_50": _coverage(0.5),
    "coverage_90": _coverage(0.9),
}
#: Metrics of :func:`backtest` by default: defined for any observed target (no ``sum |y|`` normaliser).
DEFAULT_METRICS: tuple[str, ...] = ("crps", "mae", "rmse", "coverage_90")

MetricsArg = Union[str, MetricFn, Sequence[Union[str, MetricFn]], Mapping[str, Union[str, MetricFn]]]


def resolve_metrics(metrics: MetricsArg) -> dict[str, MetricFn]:
    """``{column: fn}`` from metric names (:data:`METRICS`), callables (named by ``__name__``) or a dict."""
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    items = list(metrics.items()) if isinstance(metrics, Mapping) else [
        (m if isinstance(m, str) else getattr(m, "__name__", None), m) for m in metrics]
    out: dict[str, MetricFn] = {}
    for name, fn in items:
        if isinstance(fn, str):
            if fn not in METRICS:
                raise ConfigError(f"unknown metric {fn!r}; known metrics are {sorted(METRICS)}, or pass a "
                                  "function fn(samples, target, mask) -> float")
            fn = METRICS[fn]
        if not callable(fn) or not isinstance(name, str) or not name:
            raise ConfigError(f"a metric must be a name from {sorted(METRICS)} or a named function "
                              f"fn(samples, target, mask) -> float; got {fn!r}")
        if name in out:
            raise ConfigError(f"metric {name!r} is given twice; pass a dict {{column: metric}} to name them")
        out[name] = fn
    if not out:
        raise ConfigError(f"no metrics to compute; pass names from {sorted(METRICS)}")
    return out


def _positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")


def _start_position(start, index: pd.DatetimeIndex) -> int:
    """Steps of history of the first window: ``start`` itself (an int), or those up to a timestamp."""
    T = len(index)
    if isinstance(start, numbers.Integral) and not isinstance(start, bool):
        if not 1 <= start <= T:
            raise ConfigError(f"start={start} must be between 1 and the data's {T} steps (the first window's "
                              "history is data[:start])")
        return int(start)
    try:
        n = int(index.searchsorted(pd.Timestamp(start), side="right"))  # steps at or before the cut-off
    except (TypeError, ValueError) as exc:  # not a time, or a time zone the index lacks (or the reverse)
        raise ConfigError(f"start must be a step count or a timestamp comparable with the data's index, got "
                          f"{start!r} ({exc})") from None
    if n == 0:
        raise ConfigError(f"start={start!r} is before the data's first timestamp {index[0]}")
    return n


def cutoff_positions(T: int, *, windows: int | None, stride: int, horizon: int, min_history: int,
                     start: int | None = None) -> np.ndarray:
    """History lengths ``c_k`` of the windows (see the module docstring).

    Args:
        T: steps of the data.
        windows: number of windows; None: as many as fit (from ``start``, else from ``min_history``).
        stride: steps between consecutive cut-offs.
        horizon: steps scored after each cut-off.
        min_history: fewest steps of history a window may have (the model's context, plus its
            training window with refits).
        start: history length of the first window (default: the last window ends at ``T``).

    Raises:
        DataError: the data cannot hold the windows (too few steps, or windows past the end).
    """
    last = T - horizon  # latest cut-off whose scored span lies inside the data
    if last < min_history:
        raise DataError(f"the data has {T} steps, too few for one backtest window: {min_history} steps of history "
                        f"plus horizon {horizon}")
    if windows is None:
        first = min_history if start is None else start
        windows = max(0, (last - first) // stride + 1)
    elif start is None:
        first = last - stride * (windows - 1)
    else:
        first = start
    positions = first + stride * np.arange(windows, dtype=np.int64)
    if start is not None and (windows == 0 or positions[-1] > last):
        end = positions[-1] + horizon if windows else first + horizon
        raise DataError(f"the backtest windows from start (history {first} steps) every {stride} steps run past the "
                        f"end of the data: the last one needs {end} steps, the data has {T}; use fewer windows, a "
                        "smaller stride or an earlier start")
    if first < min_history:
        need = min_history + stride * (windows - 1) + horizon
        raise DataError(f"{windows} backtest windows every {stride} steps with horizon {horizon} need at least {need} "
                        f"steps ({min_history} of history before the first cut-off), the data has {T}; use fewer "
                        "windows or a smaller stride" + (", or a later start" if start is not None else ""))
    return positions


@dataclass
class BacktestResult:
    """What :func:`backtest` returns.

    Attributes:
        metrics: tidy DataFrame, one row per window x series (x channel): ``window``, ``cutoff``
            (last conditioning timestamp), ``series`` (``channel`` when the data has several),
            ``observed`` (scored targets) and one column per metric (NaN with no observed target).
            With ``per_series=False`` one row per window, ``series`` None.
        forecasts: the :class:`~tsdiff.forecast.Forecast` of each window, in window order.
        cutoffs: history length ``c_k`` of each window (``data[:c_k]`` was its history).
        horizon, stride: as used.
    """

    metrics: pd.DataFrame
    forecasts: list
    cutoffs: np.ndarray
    horizon: int
    stride: int
    metric_names: list = field(default_factory=list)

    def summary(self, by: str | None = None):
        """Mean of each metric over the rows with an observed target.

        Args:
            by: None (a ``pd.Series`` over all windows and series), ``"series"`` or ``"window"``
                (a DataFrame, one row per series / window).
        """
        if by not in (None, "series", "window"):
            raise ConfigError(f"summary(by=...) takes None, 'series' or 'window', got {by!r}")
        frame = self.metrics[self.metrics["observed"] > 0]
        if by is None:
            return frame[self.metric_names].mean()
        keys = [by] + (["channel"] if by == "series" and "channel" in frame else [])
        return frame.groupby(keys, sort=False, dropna=False)[self.metric_names].mean()


def _score(metrics: dict[str, MetricFn], samples: np.ndarray, target: np.ndarray) -> dict:
    mask = ~np.isnan(target)
    n = int(mask.sum())
    row = {"observed": n}
    for name, fn in metrics.items():
        row[name] = float(fn(samples, target, mask)) if n else float("nan")
    return row


def _model_lengths(forecaster, refit: bool) -> tuple[int, int]:
    """``(context, prediction_length)`` the forecasts will have."""
    sig = getattr(forecaster, "signature_", None)
    if not refit and sig is not None:
        return int(sig["context"]), int(sig["window"] - sig["context"])
    return int(forecaster.context), int(forecaster.prediction_length)


def backtest(forecaster, data, *, windows: int | None = 5, stride: int | None = None, horizon: int | None = None,
             start=None, metrics: MetricsArg = DEFAULT_METRICS, refit: bool = False, n_samples: int | None = None,
             random_state: int | None = None, per_series: bool = True, **data_options) -> BacktestResult:
    """Rolling-origin evaluation of ``forecaster`` on ``data`` (see the module docstring).

    Args:
        forecaster: a :class:`~tsdiff.api.Forecaster`; fitted unless ``refit``.
        data: what :meth:`Forecaster.fit` accepts (DataFrame, xarray, GluonTS dataset, array, Series),
            with the series the forecaster was trained on.
        windows: number of cut-offs (default 5); None: as many as the data holds.
        stride: steps between cut-offs (default: ``horizon``).
        horizon: steps scored after each cut-off, at most the forecaster's ``prediction_length``
            (default: all of them); the first ``horizon`` forecast steps are scored.
        start: the first window's cut-off, as its number of history steps (``data[:start]``) or as a
            timestamp (its last history step); default: the windows end at the end of the data.
        metrics: names from :data:`METRICS`, functions ``fn(samples, target, mask) -> float`` (column
            = ``__name__``), or a dict ``{column: name or function}``; default
            :data:`DEFAULT_METRICS`.
        refit: fit a ``sklearn.base.clone`` of the forecaster on each window's history first.
        n_samples: sample paths per forecast (default: the forecaster's).
        random_state: seed of each window's sampling (default: the forecaster's); every window
            uses the same one, as repeated ``predict`` calls do.
        per_series: one row per window x series (default), or one per window scoring all series
            together (the metric over the window's ``[S, horizon, N, C]`` samples).
        data_options: passed to :func:`~tsdiff.api.to_series` (``item_col``, ``time_col``, ...).

    Returns:
        :class:`BacktestResult`: the metrics frame, the forecasts and the cut-offs.

    Raises:
        TsdiffError: ``refit=False`` with an unfitted forecaster, or a global model (``mode="global"``)
            on data other than a DataFrame.
        ConfigError: bad ``windows`` / ``stride`` / ``horizon`` / ``start`` / ``metrics``.
        DataError: too few steps for the windows, or data the forecaster was not trained on.
    """
    from tsdiff.api.covariate_inputs import check_names, covariate_data, rows_between
    from tsdiff.api.inputs import to_series

    _positive_int("windows", windows, allow_none=True)
    _positive_int("stride", stride, allow_none=True)
    _positive_int("horizon", horizon, allow_none=True)
    if not isinstance(refit, bool):
        raise ConfigError(f"refit must be True or False, got {refit!r}")
    if not refit and getattr(forecaster, "module_", None) is None:
        raise TsdiffError("backtest(refit=False) needs a fitted forecaster: fit it first (on data before the first "
                          "cut-off), or pass refit=True to fit a clone on each window's history")
    is_global = (getattr(forecaster, "mode_", None) if not refit else getattr(forecaster, "mode", None)) == "global"
    if is_global and not isinstance(data, pd.DataFrame):
        raise TsdiffError("backtest of a global model (mode='global') cuts the data at each cut-off's time: pass a "
                          "DataFrame, wide (a DatetimeIndex, one series per column) or long (item_col / time_col)")
    scorers = resolve_metrics(metrics)
    context, length = _model_lengths(forecaster, refit)
    horizon = length if horizon is None else int(horizon)
    if horizon > length:
        raise ConfigError(f"horizon={horizon} is longer than the forecaster's prediction_length={length}; "
                          f"use horizon <= {length} or a forecaster with prediction_length={horizon}")
    stride = horizon if stride is None else int(stride)
    past, future = check_names(getattr(forecaster, "covariates", None), getattr(forecaster, "future_covariates", None))
    targets = data
    if (past or future) and not is_global:  # the covariate columns are inputs, not scored series
        trained = None if refit else (getattr(forecaster, "signature_", None) or {}).get("columns")
        targets = covariate_data(data, past, future, trained, where="backtest")[0]
    inputs = list(getattr(forecaster, "static_covariates", None) or []) + (past + future if is_global else [])
    inputs = [c for c in inputs if c in getattr(targets, "columns", [])]
    series, _ = to_series(targets.drop(columns=inputs) if inputs else targets, freq=getattr(forecaster, "freq", None),
                          **data_options)  # a global model's covariates (a long frame's columns) are no targets
    T, N, C = series.shape
    first = None if start is None else _start_position(start, series.time_index)
    min_history = context + (length if refit else 0)
    positions = cutoff_positions(T, windows=windows, stride=stride, horizon=horizon, min_history=min_history,
                                 start=first)
    if is_global:
        rows, forecasts = _global_windows(forecaster, data, series.time_index, positions, horizon, scorers, refit,
                                          n_samples, random_state, per_series, data_options, (past, future), length)
        return BacktestResult(pd.DataFrame(rows), forecasts, positions, horizon, stride, list(scorers))
    rows, forecasts = [], []
    for k, c in enumerate(int(p) for p in positions):
        history, known = series.slice_time(0, c), None
        if past or future:  # the data's rows up to the cut-off, and the known-future columns after it
            history = rows_between(data, None, series.time_index[c - 1])
            known = rows_between(data, series.time_index[c], None, future) if future else None
        model = forecaster
        if refit:
            from sklearn.base import clone

            model = clone(forecaster).fit(history)
        extra = {} if known is None else {"future_covariates": known}
        forecast = model.predict(history, n_samples=n_samples, random_state=random_state, **extra)
        forecasts.append(forecast)
        samples = forecast.samples_full[:, :horizon]  # [S, h, N, C]
        truth = series.values[c: c + horizon]  # [h, N, C]
        head = {"window": k, "cutoff": series.time_index[c - 1]}
        if not per_series:
            rows.append({**head, "series": None, **_score(scorers, samples, truth)})
            continue
        for n in range(N):
            for ch in range(C):
                label = {"series": forecast.columns[n]}
                if C > 1:
                    label["channel"] = forecast.channel_names[ch]
                rows.append({**head, **label, **_score(scorers, samples[:, :, n, ch], truth[:, n, ch])})
    return BacktestResult(pd.DataFrame(rows), forecasts, positions, horizon, stride, list(scorers))


def _cut_at(data: pd.DataFrame, cutoff, time_col: str) -> pd.DataFrame:
    """The rows of ``data`` up to ``cutoff`` (a wide frame: its index; a long one: ``time_col``);
    columns of a wide frame without an observed value by then are left out (not started yet)."""
    if time_col in data.columns:
        from tsdiff.api.inputs import long_times

        return data[(long_times(data, time_col) <= cutoff).to_numpy()]
    rows = data[data.index <= cutoff]
    return rows.loc[:, rows.notna().any()]


def _covered(history: pd.DataFrame, full, cutoff, length: int, item_col: str) -> pd.DataFrame:
    """The rows of ``history`` (a long frame) of the series of ``full`` (the panel of all the data)
    that reach ``length`` steps past ``cutoff``: the others have no known-future covariates over the
    whole horizon (and little or nothing to score).

    Raises:
        DataError: no series reaches that far.
    """
    need = cutoff + length * pd.tseries.frequencies.to_offset(full.freq)
    items = [item for item, end in zip(full.items, full.ends) if end >= need]
    if not items:
        raise DataError(f"no series has known-future covariates over the {length} steps after the cut-off {cutoff} "
                        "(the model needs them over its whole prediction_length); choose cut-offs (windows=, start=) "
                        f"that leave {length} steps of data after them")
    return history[history[item_col].isin(items).to_numpy()]


def _global_windows(forecaster, data, time_index, positions, horizon, scorers, refit, n_samples, random_state,
                    per_series, data_options, covariates, length):
    """Rolling origins of a global model: at each cut-off every series that has started is
    forecast from its own last observed step (``predict`` on the rows up to the cut-off, which
    give the past covariates; the known-future ones of the horizon come from all of ``data``) and
    scored on its own next ``horizon`` steps. ``covariates``: the forecaster's ``(past, future)``
    covariate columns; with known-future ones, only the series whose data reach ``length``
    (the prediction length) steps past a cut-off are forecast there (:func:`_covered`)."""
    from tsdiff.api import forecast_panels, panel_covariates

    where = {k: data_options[k] for k in ("item_col", "time_col") if k in data_options}
    static = panel_covariates.check_static_names(getattr(forecaster, "static_covariates", None))
    past, future = covariates
    full = forecast_panels.read_panel(data, static, past=past, future=future, freq=getattr(forecaster, "freq", None),
                                      where="backtest", **where)
    known = {} if not future else {"future_covariates": data[[where.get("item_col", "item_id"),
                                                              where.get("time_col", "timestamp"), *future]]}
    truth_of = {item: pd.DataFrame(a, index=ix) for item, ix, a in zip(full.items, full.indexes, full.panel.arrays)}
    rows, forecasts = [], []
    for k, c in enumerate(int(p) for p in positions):
        cutoff = time_index[c - 1]
        history = _cut_at(data, cutoff, where.get("time_col", "timestamp"))
        if future:
            history = _covered(history, full, cutoff, length, where.get("item_col", "item_id"))
        model = forecaster
        if refit:
            from sklearn.base import clone

            model = clone(forecaster).fit(history, **where)
        panel = model.predict(history, n_samples=n_samples, random_state=random_state, **known, **where)
        forecasts.append(panel)
        head = {"window": k, "cutoff": cutoff}
        pooled_s, pooled_t = [], []
        for item in panel.items:
            fc = panel[item]
            samples = fc.samples_full[:, :horizon, :, 0]  # [S, h, F]
            truth = truth_of[item].reindex(fc.index[:horizon]).to_numpy(dtype=np.float64)  # [h, F]
            if not per_series:
                pooled_s.append(samples)
                pooled_t.append(truth)
                continue
            for f, feature in enumerate(fc.node_names):
                label = {"series": item} if len(fc.node_names) == 1 else {"series": item, "channel": feature}
                rows.append({**head, **label, **_score(scorers, samples[:, :, f], truth[:, f])})
        if not per_series:
            rows.append({**head, "series": None, **_score(scorers, np.concatenate(pooled_s, axis=2),
                                                          np.concatenate(pooled_t, axis=1))})
    return rows, forecasts
