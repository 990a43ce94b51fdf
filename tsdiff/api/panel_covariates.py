"""Covariates of a global :class:`~tsdiff.api.Forecaster` (``mode="global"``): each series' own
dynamic covariates and calendar features, and per-series static covariates.

Every window of a global model lies inside one series, so each series' covariates fill the
``[B, L, K]`` block of :attr:`tsdiff.models.Condition.covariates` of its windows: a window's block
is ``[future | calendar | past | past_known | static]`` per step
(:class:`~tsdiff.data.covariates.CovariateSpec`): the series' known-future and past-only
covariates on its own time axis, the calendar features of its own timestamps
(:func:`~tsdiff.data.covariates.calendar_features`) and its static row repeated over the window.

Dynamic covariates (:class:`Dynamic`) come from

- a long DataFrame: the columns named in ``covariates=`` (past-only) and ``future_covariates=``
  (known-future), read per item on the item's own timestamps; they are not forecast. At predict
  the data gives the context's values and ``predict(future_covariates=...)``, a long frame with
  the item and time columns, the known-future values of the ``prediction_length`` steps after
  each series' end;
- a GluonTS dataset: each entry's ``past_feat_dynamic_real`` (past-only) and
  ``feat_dynamic_real`` (known-future; at predict it may reach ``prediction_length`` steps past
  the target, giving the horizon's values), one covariate per row (``feat_dynamic_real:0``, ...).

A forecast window covers a series' last ``context_length`` steps (unknown before its start) and
the ``prediction_length`` steps after its end.

Static covariates (``Forecaster(static_covariates=[...])``) come from

- a long DataFrame: columns that are constant within each item (the item and time columns as in
  ``fit``); they are taken out of the value columns;
- a GluonTS dataset: ``static_covariates=["feat_static_cat", "feat_static_real"]`` (either or
  both) reads each entry's fields, one covariate per element (``feat_static_cat_0``, ...);
  ``feat_static_cat`` values are categorical.

Other inputs (a wide frame, a list of frames, a 3-D array) have no place for static or dynamic
covariates: a DataError that says to pass a long frame.

A static column is real when its dtype is numeric (not bool, not ``category``), standardised with
the training items' mean and standard deviation (NaN is an error); otherwise it is categorical,
one-hot encoded over the training levels plus an "unknown" level, which values unseen in training
(and missing values) map to at predict. The encoding is kept in the model file
(:attr:`CovariateSpec.static <tsdiff.data.covariates.CovariateSpec>`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tsdiff.api.covariate_inputs import (calendar_columns, check_known, forecast_block, future_rows,
                                         refuse_unneeded_future)
from tsdiff.api.inputs import long_times
from tsdiff.api.panels import Panel
from tsdiff.data.covariates import CovariateSpec, static_channels
from tsdiff.errors import ConfigError, DataError

#: The GluonTS fields ``static_covariates`` may name.
GLUONTS_FIELDS = ("feat_static_cat", "feat_static_real")


def check_static_names(static, covariates=None, future_covariates=None) -> list:
    """The constructor's ``static_covariates``, checked: a list of labels, none twice, none also a dynamic covariate."""
    if static is None:
        return []
    if isinstance(static, (str, bytes)) or not isinstance(static, (list, tuple)):
        raise ConfigError(f"static_covariates must be a list of column names, e.g. static_covariates=[{static!r}], "
                          f"got {static!r}")
    if len(set(static)) != len(static):
        raise ConfigError(f"static_covariates names a column twice: {list(static)}")
    both = [c for c in static if c in list(covariates or []) + list(future_covariates or [])]
    if both:
        raise ConfigError(f"column(s) {both} are both static and dynamic covariates; name each covariate once")
    return list(static)


@dataclass
class StaticEncoding:
    """How static covariates become a model's static channels (real: standardised; categorical: one-hot)."""

    names: list = field(default_factory=list)  # as given to static_covariates=
    real: list = field(default_factory=list)
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)
    categorical: dict = field(default_factory=dict)  # column -> training levels (str)

    @staticmethod
    def is_real(column: pd.Series) -> bool:
        return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column) and \
            not isinstance(column.dtype, pd.CategoricalDtype)

    @classmethod
    def fit(cls, names: list, table: pd.DataFrame) -> "StaticEncoding":
        """The encoding of the training items' ``table`` (one row per item, one column per static covariate)."""
        out = cls(names=list(names))
        for col in table.columns:
            if cls.is_real(table[col]):
                values = _real(table[col], col)
                out.real.append(col)
                out.mean.append(float(values.mean()))
                std = float(values.std())
                out.std.append(std if std > 0 else 1.0)
            else:
                out.categorical[col] = sorted({str(v) for v in table[col] if not pd.isna(v)})
        return out

    @property
    def columns(self) -> list[str]:
        """The static channels' names (:func:`~tsdiff.data.covariates.static_channels`)."""
        return static_channels(self.state_dict())

    def state_dict(self) -> dict:
        return {"names": list(self.names), "real": list(self.real), "mean": list(self.mean), "std": list(self.std),
                "categorical": {c: list(v) for c, v in self.categorical.items()}}

    @classmethod
    def from_state_dict(cls, state: dict) -> "StaticEncoding":
        return cls(**state)

    def encode(self, table: pd.DataFrame) -> np.ndarray:
        """``[n_items, width]`` float32 static channels of ``table``'s rows.

        Raises:
            DataError: a static column missing, NaN (or a non-number) in a real static.
        """
        missing = [c for c in list(self.real) + list(self.categorical) if c not in table.columns]
        if missing:
            raise DataError(f"static covariate column(s) {missing} are not in the data passed to predict; the model "
                            "was trained with them: give every series its value")
        parts = [((_real(table[c], c) - m) / s).to_numpy(np.float64)[:, None]
                 for c, m, s in zip(self.real, self.mean, self.std)]
        for c, levels in self.categorical.items():
            where = {v: j for j, v in enumerate(levels)}
            codes = [len(levels) if pd.isna(v) else where.get(str(v), len(levels)) for v in table[c]]
            parts.append(np.eye(len(levels) + 1)[codes].reshape(len(table), len(levels) + 1))
        return np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((len(table), 0), np.float32)


def _real(column: pd.Series, name) -> pd.Series:
    try:
        values = column.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"static covariate {name!r} was real-valued in training but holds non-numbers "
                        f"({column.iloc[0]!r}, ...)") from None
    if values.isna().any():
        raise DataError(f"static covariate {name!r} is missing (NaN) for item {values.index[values.isna()][0]!r}; "
                        "a real static covariate needs a value for every series")
    return values


def long_statics(data: pd.DataFrame, names: list, item_col: str) -> pd.DataFrame:
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise DataError(f"static covariate column(s) {missing} are not in the long DataFrame (its columns: "
                        f"{list(data.columns)[:12]}); every series needs its value of each static covariate (at fit, "
                        "leave a column out of static_covariates= to drop it)")
    groups = data.groupby(item_col, sort=False)
    for c in names:
        varies = groups[c].nunique(dropna=False) > 1
        if varies.any():
            item = varies.index[varies.to_numpy()][0]
            values = pd.unique(data.loc[data[item_col] == item, c])[:3]
            raise DataError(f"static covariate {c!r} is not constant within item {item!r} (values {list(values)}); "
                            "a static covariate has one value per series: pass a time-varying column as a "
                            "covariate, or fix its values")
    return groups.head(1).set_index(item_col)[list(names)]


def gluonts_statics(entries: list, names: list) -> pd.DataFrame:
    bad = [n for n in names if n not in GLUONTS_FIELDS]
    if bad:
        raise DataError(f"a GluonTS dataset's static covariates are its fields {list(GLUONTS_FIELDS)}; "
                        f"static_covariates names {bad}")
    rows = {}
    for i, e in enumerate(entries):
        row = {}
        for name in names:
            if name not in e:
                raise DataError(f"dataset entry {i} (item {e.get('item_id', i)!r}) has no {name!r} field; the "
                                f"static covariates {names} need it in every entry")
            for j, v in enumerate(np.atleast_1d(np.asarray(e[name]))):
                row[f"{name}_{j}"] = str(v) if name == "feat_static_cat" else float(v)
        rows[e.get("item_id", i)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    cats = [c for c in table.columns if c.startswith("feat_static_cat")]
    return table.astype({c: object for c in cats})


@dataclass
class Dynamic:
    """Each series' dynamic covariates as read from the data (:func:`long_dynamics`,
    :func:`gluonts_dynamics`)."""

    past: list  # names of the past-only covariates
    future: list  # names of the known-future covariates
    frames: list  # per series: a DataFrame of the columns future + past on timestamps
    horizon: bool = False  # the frames' known-future columns reach past the series' ends (GluonTS)


def refuse_other_inputs(data, what: str, item_col: str) -> None:
    """The error for covariates ``what`` given with data that is neither a long frame nor GluonTS."""
    raise DataError(f"{what} of a global model are read from a long DataFrame (an {item_col!r} column, a time column "
                    "and one column per covariate) or a GluonTS dataset (its entries' fields); got "
                    f"{type(data).__name__}. Pass the series as a long frame with those columns")


def long_dynamics(panel, past: list, future: list) -> tuple[Panel, list, Dynamic]:
    """Split the covariate columns off a long frame's panel, whose features hold them: ``(the
    target values' Panel, the target features, Dynamic)``, all on the series' own time axes."""
    names = [str(c) for c in list(future) + list(past)]
    at = [panel.features.index(c) for c in names]
    keep = [j for j, f in enumerate(panel.features) if f not in names]
    if not keep:
        raise DataError(f"every value column of the long DataFrame is a covariate ({names}); keep at least one "
                        "target column")
    frames = [pd.DataFrame(a[:, at], index=index, columns=list(future) + list(past))
              for a, index in zip(panel.panel.arrays, panel.indexes)]
    features = [panel.features[j] for j in keep]
    targets = Panel([np.array(a[:, keep]) for a in panel.panel.arrays], features, stacked=False)
    return targets, features, Dynamic(list(past), list(future), frames)


def gluonts_dynamics(entries: list, freq) -> Dynamic | None:
    """The entries' ``past_feat_dynamic_real`` / ``feat_dynamic_real`` per series, or None
    without either (:func:`~tsdiff.data.adapters.gluonts.entry_covariates`)."""
    from tsdiff.data.adapters.gluonts import entry_covariates

    kinds = entry_covariates(entries, freq)
    if kinds["past"] is None and kinds["future"] is None:
        return None
    names = {}
    for kind, frames in kinds.items():
        names[kind] = [] if frames is None else list(frames[0].columns)
        for i, frame in enumerate(frames or []):
            if list(frame.columns) != names[kind]:
                raise DataError(f"dataset entry {i} has {frame.shape[1]} rows of its {kind} dynamic covariates, entry 0 "
                                f"{len(names[kind])}; give every entry the same covariates")
    frames = [pd.concat([f[i] for f in (kinds["future"], kinds["past"]) if f is not None], axis=1)
              for i in range(len(entries))]
    return Dynamic(names["past"], names["future"], frames, horizon=True)


def fit_spec(est, panel) -> CovariateSpec | None:
    """The covariates of a global model on ``panel``: its dynamic covariates (standardised over
    all training series' steps), the frequency's calendar features (unless ``calendar=False`` or
    the steps are positions) and the static covariates; None without any."""
    span = pd.DatetimeIndex([min(i[0] for i in panel.indexes if len(i)), max(i[-1] for i in panel.indexes if len(i))])
    names = calendar_columns(panel.freq, est.calendar if not panel.placeholder_time else False, span, stacklevel=5)
    static = {} if panel.static is None else StaticEncoding.fit(check_static_names(est.static_covariates),
                                                                panel.static).state_dict()
    if not names and not static and panel.dynamic is None:
        return None
    spec = CovariateSpec(calendar=names) if panel.dynamic is None else \
        _fit_dynamic(panel, names, est.centre_covariates)
    spec.static = static
    return spec


def _fit_dynamic(panel, calendar: list, centre: bool) -> CovariateSpec:
    """The spec of ``panel``'s dynamic covariates over every series' own steps (known-future
    ones must have a value at each)."""
    dyn = panel.dynamic
    frames = [f.reindex(index) for f, index in zip(dyn.frames, panel.indexes)]
    for item, frame in zip(panel.items, frames):
        check_known(frame[dyn.future], f"the training data of item {item!r}")
    steps = pd.concat(frames, ignore_index=True)
    return CovariateSpec.fit(steps[dyn.past], steps[dyn.future], calendar, centre_past=centre)


def _static_rows(spec: CovariateSpec, panel) -> np.ndarray:
    if not spec.static:
        return np.zeros((len(panel.items), 0), np.float32)
    return StaticEncoding.from_state_dict(spec.static).encode(panel.static)


def _with_static(rows: np.ndarray, static: np.ndarray) -> np.ndarray:
    """``rows`` ``[T, K']`` with the static row appended on every step."""
    return np.concatenate([rows, np.broadcast_to(static, (len(rows), len(static)))], axis=1).astype(np.float32)


def _covariate_frames(spec: CovariateSpec, panel) -> list[pd.DataFrame]:
    """Each series' frame of the model's dynamic covariates (empty frames without them).

    Raises:
        DataError: a covariate the model was trained with is not in the data.
    """
    if not spec.columns:
        return [pd.DataFrame(index=index) for index in panel.indexes]
    have = [] if panel.dynamic is None else panel.dynamic.past + panel.dynamic.future
    missing = [c for c in spec.columns if c not in have]
    if missing:
        raise DataError(f"covariate(s) {missing} of the model are not in the data passed to predict; the model was "
                        "trained with them: give every series the same covariates (a long frame's columns, or the "
                        "GluonTS entries' feat_dynamic_real / past_feat_dynamic_real)")
    return [f[spec.columns] for f in panel.dynamic.frames]


def training_rows(spec: CovariateSpec, panel, gap: int) -> np.ndarray:
    """``[T, K - 1 or K]`` covariate rows of the panel laid out with ``gap`` rows between series (zeros
    there; no window reaches them): each series' :meth:`~CovariateSpec.rows` of its own steps, then its
    static row (:meth:`CovariateSpec.window` cuts each window's block from them)."""
    static = _static_rows(spec, panel)
    frames = _covariate_frames(spec, panel)
    offsets = panel.panel.offsets(gap)
    rows = np.zeros((int(offsets[-1]) + panel.panel.lengths[-1], spec.width - (1 if spec.past else 0)), np.float32)
    for i, (o, index) in enumerate(zip(offsets, panel.indexes)):
        frame = frames[i].reindex(index)
        rows[o: o + len(index)] = _with_static(spec.rows(index, frame[spec.future].to_numpy(np.float64),
                                                         frame[spec.past].to_numpy(np.float64)), static[i])
    return rows


def _horizon_frames(spec: CovariateSpec, panel, future_covariates, frames: list, item_col: str,
                    time_col: str) -> list[tuple]:
    """Per series, ``(frame, source)``: where its horizon's known-future covariates are looked up
    (``future_covariates``' rows of the item, else a GluonTS entry's ``feat_dynamic_real``)."""
    if not spec.future:
        if future_covariates is not None:
            refuse_unneeded_future()
        return [(None, "")] * len(panel.items)
    if future_covariates is not None:
        groups = _long_items(future_covariates, item_col, time_col)
        none = pd.DataFrame(columns=spec.future, index=pd.DatetimeIndex([]), dtype=np.float64)
        return [(groups.get(item, none), f"future_covariates for item {item!r}") for item in panel.items]
    if panel.dynamic is not None and panel.dynamic.horizon:
        return [(f, f"the feat_dynamic_real of item {item!r}") for f, item in zip(frames, panel.items)]
    raise DataError(f"this global model was trained with known-future covariates {spec.future}: pass "
                    f"predict(..., future_covariates=frame), a long DataFrame with the columns {item_col!r}, "
                    f"{time_col!r} and {spec.future} on the prediction_length steps after each series' end")


def _long_items(frame, item_col: str, time_col: str) -> dict:
    """``{item: its rows of the long ``frame`` on their timestamps}`` (the item column dropped)."""
    if not isinstance(frame, pd.DataFrame) or item_col not in frame.columns or time_col not in frame.columns:
        raise DataError(f"a global model's future_covariates is a long DataFrame with the columns {item_col!r}, "
                        f"{time_col!r} and the known-future covariates (item_col / time_col as in predict); got "
                        f"{type(frame).__name__}" + (f" with columns {list(frame.columns)[:8]}"
                                                     if isinstance(frame, pd.DataFrame) else ""))
    timed = frame.drop(columns=[time_col]).set_index(pd.DatetimeIndex(long_times(frame, time_col)))
    return {item: rows.drop(columns=[item_col]) for item, rows in timed.groupby(item_col, sort=False)}


def forecast_covariates(spec: CovariateSpec | None, panel, ctx: int, H: int, freq, future_covariates=None, *,
                        item_col: str = "item_id", time_col: str = "timestamp") -> np.ndarray | None:
    """``[n_series, ctx + H, K]`` covariates of each series' forecast window (its last ``ctx`` steps,
    unknown before its start, and the ``H`` after its end), or None for a model without covariates.

    The context's covariates come from ``panel`` (the data passed to predict); the horizon's
    known-future ones from ``future_covariates`` (a long frame) or the GluonTS entries.

    Raises:
        DataError: a covariate missing, known-future covariates absent or missing (NaN, or no row)
            at a step, ``future_covariates`` for a model without known-future covariates.
    """
    if spec is None:
        if future_covariates is not None:
            refuse_unneeded_future()
        return None
    if spec.static and panel.static is None:
        raise DataError(f"this model was trained with static covariates {spec.static.get('names')}: pass the "
                        "series with them (a long DataFrame's columns, or the GluonTS entries' fields)")
    static = _static_rows(spec, panel)
    frames = _covariate_frames(spec, panel)
    horizons = _horizon_frames(spec, panel, future_covariates, frames, item_col, time_col)
    blocks = []
    for i, (item, index) in enumerate(zip(panel.items, panel.indexes)):
        history_index = pd.date_range(end=index[-1], periods=ctx, freq=freq)
        future_index = pd.date_range(index[-1], periods=H + 1, freq=freq)[1:]
        horizon, source = horizons[i]
        known = future_rows(horizon, spec, future_index, panel.features, source or "future_covariates")
        block = forecast_block(spec, frames[i], history_index, known, future_index, first=index[0],
                               where=f"the history of item {item!r}")
        blocks.append(_with_static(block[0], static[i]))
    return np.stack(blocks)
