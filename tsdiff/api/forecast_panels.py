"""Panels of independent series for the :class:`~tsdiff.api.Forecaster`: which mode the data gets,
the per-series training windows of a global model, and its per-series forecasts.

``mode="joint"`` reads the series of the data as the features (nodes) of one multivariate model:
they share one time axis and one end, and one forecast starts after it. ``mode="global"`` reads
them as independent samples of one model with the per-series features ``F``: every training
window lies inside one series, and each series is forecast from its own last ``context_length``
steps, starting one step after its own end (a :class:`~tsdiff.forecast.PanelForecast`).

``mode="auto"`` picks global for a 3-D array ``[n_series, L, F]``, a list of 2-D arrays /
DataFrames, and for a long frame or GluonTS dataset whose series are ragged (different ends or
lengths); joint otherwise (a wide frame, a 2-D array, an xarray grid, series that share one span).

The panel parsing of lists and 3-D arrays is :func:`tsdiff.api.panels.as_panel` (the Imputer's);
long frames and GluonTS datasets go through :func:`tsdiff.api.inputs.to_series` and are then cut
back to each series' own span. A global model's covariates (dynamic, calendar, static) are
:mod:`tsdiff.api.panel_covariates`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsdiff.api import panel_covariates
from tsdiff.api.inputs import TRAILING_ROWS_FIX, long_times, trailing_empty_rows
from tsdiff.api.panels import Panel, as_panel, training_windows
from tsdiff.errors import ConfigError, DataError
from tsdiff.validation import check_model_range

#: The values of ``Forecaster(mode=...)``.
MODES = ("auto", "joint", "global")


@dataclass
class SeriesPanel:
    """Independent series, each on its own time axis: float64 ``[L_i, F]`` values (NaN = missing)."""

    panel: Panel                    # the values, as the Imputer's panels hold them
    indexes: list[pd.DatetimeIndex]  # each series' own timestamps (positions for arrays without freq)
    items: list                     # one id per series
    features: list[str]             # the F per-series features
    freq: str | None
    placeholder_time: bool = False  # steps are positions (arrays without freq)
    named: bool = True              # features carry the data's column labels
    time_name: str | None = None
    static: pd.DataFrame | None = None  # the raw static covariates, one row per item (panel_covariates)
    dynamic: "panel_covariates.Dynamic | None" = None  # each series' dynamic covariates (panel_covariates)

    @property
    def ends(self) -> list[pd.Timestamp]:
        return [ix[-1] for ix in self.indexes]


def check_mode(mode) -> None:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")


def _is_long(data, item_col: str, time_col: str) -> bool:
    return isinstance(data, pd.DataFrame) and item_col in data.columns and time_col in data.columns


def _gluonts_entries(data) -> list | None:
    from tsdiff.api.inputs import _is_gluonts

    if isinstance(data, (np.ndarray, pd.DataFrame)) or not _is_gluonts(data):
        return None
    return list(data.train if hasattr(data, "train") and hasattr(data, "metadata") else data)


def _long_spans(data: pd.DataFrame, item_col: str, time_col: str) -> dict:
    """``{item: (first timestamp, last timestamp)}`` of a long frame's rows."""
    times = long_times(data, time_col)
    grouped = times.groupby(data[item_col].to_numpy(), sort=False)
    return {item: (lo, hi) for item, lo, hi in zip(grouped.min().index, grouped.min(), grouped.max())}


def _gluonts_spans(entries: list, freq: str | None) -> dict:
    from tsdiff.data.adapters.gluonts import _period

    spans = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "target" not in e or "start" not in e:
            raise DataError(f"dataset entry {i} has no 'target' or 'start' field")
        start = _period(e["start"], freq)
        spans[e.get("item_id", i)] = (start, start + (np.shape(e["target"])[-1] - 1))
    if len(spans) != len(entries):
        raise DataError("the dataset's entries repeat an item_id; give each series its own item_id")
    return spans


def _spans(data, freq, item_col, time_col) -> dict | None:
    """Each series' ``(first, last)`` step for long frames and GluonTS data, else None."""
    if _is_long(data, item_col, time_col):
        return _long_spans(data, item_col, time_col)
    entries = _gluonts_entries(data)
    return None if entries is None else _gluonts_spans(entries, freq)


def resolve_mode(mode: str, data, *, freq=None, item_col: str = "item_id", time_col: str = "timestamp") -> str:
    """``"joint"`` or ``"global"`` for ``data`` under ``mode`` (see the module docstring).

    Raises:
        DataError: ``mode="joint"`` with series that end at different times, or with a list of series.
    """
    check_mode(mode)
    listed = (isinstance(data, np.ndarray) and data.ndim == 3 and mode != "joint") or (
        isinstance(data, (list, tuple)) and as_panel(data, "data") is not None)
    spans = None if listed else _spans(data, freq, item_col, time_col)
    ends = sorted({str(hi) for _, hi in (spans or {}).values()})
    if mode == "joint":
        if len(ends) > 1:
            raise DataError(f"the series end at different times ({', '.join(ends[:3])}{', ...' if len(ends) > 3 else ''}"
                            "); mode='joint' forecasts all series together from one end, so each series would not "
                            "start its forecast after its own end. Use mode='global' (independent series, each "
                            "forecast from its own end) or cut the series to a common end")
        if listed:
            raise DataError("a list of series is a panel of independent series; use mode='global' (or 'auto'), "
                            "or join them into one wide DataFrame for mode='joint'")
        return "joint"
    if mode == "global" or listed:
        return "global"
    starts = {str(lo) for lo, _ in (spans or {}).values()}
    return "global" if len(ends) > 1 or len(starts) > 1 else "joint"


def _placeholder(n: int, freq: str | None) -> pd.DatetimeIndex:
    return pd.date_range("2000-01-01", periods=n, freq=freq or "h")


def _listed(data, freq) -> SeriesPanel:
    """A 3-D array or a list of 2-D arrays / DataFrames (:func:`~tsdiff.api.panels.as_panel`)."""
    from tsdiff.data.adapters.frames import check_time_index

    panel = as_panel(data, "data")
    indexes, freqs = [], set()
    for i, (x, a) in enumerate(zip(data, panel.arrays)):
        if isinstance(x, pd.DataFrame) and isinstance(x.index, pd.DatetimeIndex):
            index, f = check_time_index(x.index, freq, where=f"data[{i}]")
            indexes.append(index)
            freqs.add(pd.tseries.frequencies.to_offset(f))
        else:
            indexes.append(_placeholder(a.shape[0], freq))
    if len(freqs) > 1:
        raise DataError(f"the frames have different frequencies {sorted(map(str, freqs))}; resample them to one")
    timed = bool(freqs) or freq is not None
    f = freq or (next(iter(freqs)).freqstr if freqs else "h")
    features = [str(c) for c in panel.columns] if panel.columns is not None else [
        f"x{j}" for j in range(panel.n_features)]
    return SeriesPanel(panel, indexes, list(range(len(panel.arrays))), features, f, placeholder_time=not timed,
                       named=panel.columns is not None, time_name=indexes[0].name)


def _cut(series, spans: list[tuple[int, int]], items: list, named: bool) -> SeriesPanel:
    """Series ``[T, N, C]`` on a union time axis -> node ``n`` on rows ``spans[n]`` with its ``C`` features."""
    arrays = [np.array(series.values[a:b, n, :]) for n, (a, b) in enumerate(spans)]
    indexes = [series.time_index[a:b] for a, b in spans]
    features = [str(c) for c in series.channel_names]
    return SeriesPanel(Panel(arrays, features, stacked=False), indexes, items, features,
                       series.attrs.get("freq"), named=named, time_name=series.time_index.name)


def to_panel(data, *, freq=None, item_col: str = "item_id", time_col: str = "timestamp") -> SeriesPanel:
    """The independent series of ``data``, each on its own time axis.

    A wide DataFrame or 2-D array gives one univariate series per column (its span: first to
    last observed value); a long frame one series per item (its rows' span) with the value
    columns as features; a GluonTS dataset one series per entry (``start`` to the target's end).
    """
    from tsdiff.api.inputs import to_series

    if isinstance(data, (np.ndarray, list, tuple)) and as_panel(data, "data") is not None:
        return _listed(data, freq)
    spans = _spans(data, freq, item_col, time_col)
    series, source = to_series(data, freq=freq, item_col=item_col, time_col=time_col)
    if source is not None or series.spatial is not None:
        raise DataError("mode='global' reads independent series; an xarray grid or a graph is one joint sample, "
                        "use mode='joint'")
    index = series.time_index
    if spans is not None:
        items = list(spans)
        where = {k: i for i, k in enumerate(index)}
        rows = [(where[pd.Timestamp(lo.to_timestamp() if isinstance(lo, pd.Period) else lo)],
                 where[pd.Timestamp(hi.to_timestamp() if isinstance(hi, pd.Period) else hi)] + 1)
                for lo, hi in spans.values()]
        return _cut(series, rows, items, named=_is_long(data, item_col, time_col))
    if series.shape[2] != 1:
        raise DataError(f"mode='global' on data with {series.shape[2]} channels per series; pass a list of "
                        "[L, F] frames or a 3-D array [n_series, L, F] instead")
    # a wide table: each column a univariate series over its observed span
    rows = []
    for n, name in enumerate(series.node_names):
        seen = np.flatnonzero(~np.isnan(series.values[:, n, 0]))
        if not len(seen):
            raise DataError(f"series {name!r} has no observed value (all NaN); drop that column")
        rows.append((int(seen[0]), int(seen[-1]) + 1))
    out = _cut(series, rows, list(series.attrs.get("columns", series.node_names)), named=False)
    out.placeholder_time = bool(series.attrs.get("placeholder_time"))
    return out


def read_panel(data, names: list, *, past=(), future=(), freq=None, item_col: str = "item_id",
               time_col: str = "timestamp", where: str = "fit"):
    """The :class:`SeriesPanel` of ``data`` with its raw static covariates ``names`` (a table
    indexed by the panel's items) in ``panel.static`` and its dynamic covariates in
    ``panel.dynamic`` (:mod:`tsdiff.api.panel_covariates` reads both): a long frame's columns
    ``past`` / ``future``, or a GluonTS dataset's own fields (``past`` / ``future`` unused)."""
    from tsdiff.api.covariate_inputs import check_long_columns

    table = None
    long, entries = _is_long(data, item_col, time_col), _gluonts_entries(data)
    if names:
        if long:
            table = panel_covariates.long_statics(data, names, item_col)
            data = data.drop(columns=list(names))
        elif entries is not None:
            table = panel_covariates.gluonts_statics(entries, names)
        else:
            panel_covariates.refuse_other_inputs(data, f"static covariates {names} (constant within each item)",
                                                 item_col)
    dynamic = list(future) + list(past)
    if dynamic and long:
        check_long_columns(data, dynamic, where)
    elif dynamic and entries is None:
        panel_covariates.refuse_other_inputs(data, f"dynamic covariates {dynamic}", item_col)
    panel = to_panel(data, freq=freq, item_col=item_col, time_col=time_col)
    if dynamic and long:
        panel.panel, panel.features, panel.dynamic = panel_covariates.long_dynamics(panel, past, future)
    elif entries is not None:
        panel.dynamic = panel_covariates.gluonts_dynamics(entries, freq or panel.freq)
    if table is not None:
        panel.static = table.loc[list(panel.items)]
    if long:
        _warn_trailing_rows(panel, where)
    return panel


def _warn_trailing_rows(panel: SeriesPanel, where: str) -> None:
    """Warn about long-frame items whose last rows hold no target value (e.g. covariate rows for
    the future): an item's series spans its rows, so its forecast starts after them."""
    late = []
    for item, arr, index in zip(panel.items, panel.panel.arrays, panel.indexes):
        k, last = trailing_empty_rows(arr)
        if k:
            late.append(f"{item!r} ({k} row(s) after {index[last]})")
    if late:
        shown = ", ".join(late[:3]) + (f" and {len(late) - 3} more" if len(late) > 3 else "")
        warnings.warn(f"{where}: the last rows of item(s) {shown} have no target value; each series spans its "
                      f"rows, so those rows count as missing history and {TRAILING_ROWS_FIX}", UserWarning,
                      stacklevel=3)


def fit_global(est, data, device, *, item_col: str = "item_id", time_col: str = "timestamp") -> None:
    """Train ``est`` (a Forecaster) on windows inside each series of ``data``, with their dynamic
    covariates, calendar features and static covariates (:mod:`tsdiff.api.panel_covariates`).

    The series are laid end to end with ``context + horizon`` all-NaN rows between them, so no
    window (nor the prior's view past its edges) reaches from one series into the next.
    """
    from tsdiff.api.fitting import _spread
    from tsdiff.data.forecasting import build_forecasting_protocol
    from tsdiff.data.series import Series

    from tsdiff.api.covariate_inputs import check_names, refuse_gluonts_names

    past, future = check_names(est.covariates, est.future_covariates)
    if _gluonts_entries(data) is not None:
        refuse_gluonts_names(past, future)
    panel = read_panel(data, panel_covariates.check_static_names(est.static_covariates), past=past, future=future,
                       freq=est.freq, item_col=item_col, time_col=time_col)
    ctx, H = est.context, est.prediction_length
    window = ctx + H
    empty = np.isnan(panel.panel.concatenated()).all(axis=0)
    if empty.any():
        raise DataError(f"feature {panel.features[int(np.argmax(empty))]!r} has no observed value in any series "
                        "(all NaN); drop it")
    starts, held = training_windows(panel.panel, window, window, est.validation, stride=est.train_stride)
    if not len(starts):
        raise DataError(f"no series has context_length + prediction_length = {ctx} + {H} = {window} steps to "
                        f"train on (the longest has {max(panel.panel.lengths)}); use shorter lengths or more data")
    values = panel.panel.concatenated(gap=window)
    series = Series(values[:, :, None], _placeholder(values.shape[0], None), panel.features, ["value"])
    last = starts[-1:]
    protocol = build_forecasting_protocol("api-forecaster-global", series, ctx, H, starts,
                                          _spread(held) if est.validation is not None else last, last)
    signature = {**protocol.signature, "freq": panel.freq, "columns": list(panel.features), "spatial": None,
                 "grid_shape": None, "mode": "global", "named": panel.named,
                 "placeholder_time": panel.placeholder_time}
    spec = panel_covariates.fit_spec(est, panel)
    rows = None if spec is None else panel_covariates.training_rows(spec, panel, window)
    est._train_protocol(protocol, signature, panel.freq, device, spec=spec, rows=rows)
    est.panel_ = panel


def predict_panel(est, data, *, item_col: str = "item_id", time_col: str = "timestamp") -> SeriesPanel:
    """The series ``est.predict(data)`` forecasts (the training series for None), with the model's
    static and dynamic covariates, checked against the training data (:func:`check_panel`)."""
    if data is None:
        if est.panel_ is None:
            raise DataError("this Forecaster was loaded from a file and holds no data; pass predict(data)")
        return est.panel_
    spec = est.covariate_spec_
    static = [] if spec is None else spec.static.get("names", [])
    past, future = ([], []) if spec is None else (spec.past, spec.future)
    panel = read_panel(data, static, past=past, future=future, freq=est.freq, item_col=item_col,
                       time_col=time_col, where="predict")
    check_panel(est, panel)
    return panel


def check_panel(est, panel: SeriesPanel) -> None:
    """Refuse series whose features or frequency differ from the training data's."""
    sig = est.signature_
    if len(panel.features) != sig["num_nodes"]:
        raise DataError(f"the series have {len(panel.features)} features but the model was trained on "
                        f"{sig['num_nodes']} ({sig.get('columns')}); pass series with the same features as in fit")
    if panel.named and sig.get("named") and list(panel.features) != [str(c) for c in sig["columns"]]:
        raise DataError(f"the series' features {panel.features} differ from the trained {sig['columns']}; pass the "
                        "same columns in the same order as in fit")
    if not panel.placeholder_time and not sig.get("placeholder_time") and sig.get("freq") and panel.freq and \
            pd.tseries.frequencies.to_offset(panel.freq) != pd.tseries.frequencies.to_offset(sig["freq"]):
        raise DataError(f"the data has frequency {panel.freq!r} but the model was trained on {sig['freq']!r} data; "
                        "resample it or train a new model")


def predict_global(est, panel: SeriesPanel, sample, future_covariates=None, *, item_col: str = "item_id",
                   time_col: str = "timestamp") -> "PanelForecast":
    """Forecast every series of ``panel`` from its own last ``context_length`` steps.

    ``sample(raw, cond, covariates)`` draws ``[S, B, L, N, C]`` for windows ``raw`` ``[B, L, N, C]``
    (``covariates``: their ``[B, L, K]`` block, or None); a series shorter than the context is
    padded with missing steps at its start. ``future_covariates``: a long frame (``item_col`` /
    ``time_col``) with the known-future covariates of each series' horizon
    (:func:`~tsdiff.api.panel_covariates.forecast_covariates`).
    """
    from tsdiff.data.series import Series
    from tsdiff.forecast import Forecast, PanelForecast

    sig = est.signature_
    ctx, H = sig["context"], sig["window"] - sig["context"]
    F = len(panel.features)
    raw = np.full((len(panel.items), ctx + H, F, 1), np.nan)
    for i, a in enumerate(panel.panel.arrays):
        tail = a[-ctx:]
        raw[i, ctx - len(tail): ctx, :, 0] = tail
        if np.isnan(tail).all():
            raise DataError(f"series {panel.items[i]!r} has no observed value in its last {ctx} steps; forecasting "
                            "needs history")
    # values far outside the training data overflow the float32 network: say so, not "diverged"
    check_model_range(est.module_.scaler, raw[:, :ctx].reshape(-1, F, 1), "the data", columns=panel.features)
    freq = sig.get("freq") or panel.freq
    block = panel_covariates.forecast_covariates(est.covariate_spec_, panel, ctx, H, freq, future_covariates,
                                                 item_col=item_col, time_col=time_col)
    samples = sample(raw, ~np.isnan(raw), block)  # [S, n, ctx + H, F, 1]
    out = {}
    for i, (item, index, a) in enumerate(zip(panel.items, panel.indexes, panel.panel.arrays)):
        future = pd.date_range(index[-1], periods=H + 1, freq=freq)[1:]
        future.name = index.name
        tail = -min(ctx, len(a))
        history = Series(np.array(a[tail:, :, None]), index[tail:], panel.features, ["value"])
        ids = [item] if F == 1 else [f"{item}/{f}" for f in panel.features]
        out[item] = Forecast(samples[:, i, ctx:], future, panel.features, ["value"], freq=freq,
                             columns=panel.features, item_ids=ids, history=history, time_name=index.name)
    return PanelForecast(out)
