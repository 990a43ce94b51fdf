"""Covariates of a global :class:`~tsdiff.api.Forecaster` (``mode="global"``): per-series static
covariates and each series' own calendar features.

Every window of a global model lies inside one series, so a per-series constant fits the
``[B, L, K]`` block of :attr:`tsdiff.models.Condition.covariates`: a window's block is
``[calendar | static]`` per step, the calendar features from the series' own timestamps
(:func:`~tsdiff.data.covariates.calendar_features`) and the static row repeated over the window.

Static covariates (``Forecaster(static_covariates=[...])``) come from

- a long DataFrame: columns that are constant within each item (the item and time columns as in
  ``fit``); they are taken out of the value columns;
- a GluonTS dataset: ``static_covariates=["feat_static_cat", "feat_static_real"]`` (either or
  both) reads each entry's fields, one covariate per element (``feat_static_cat_0``, ...);
  ``feat_static_cat`` values are categorical.

Other inputs (a wide frame, a list of frames, a 3-D array) have no place for them: a DataError.

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

from tsdiff.data.covariates import CovariateSpec, calendar_features, static_channels
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


def fit_spec(est, panel) -> CovariateSpec | None:
    """The covariates of a global model on ``panel``: the frequency's calendar features (unless
    ``calendar=False`` or the steps are positions) and the static covariates; None without any."""
    from tsdiff.api.covariate_inputs import calendar_columns

    names = calendar_columns(panel.freq, est.calendar and not panel.placeholder_time, stacklevel=5)
    static = {} if panel.static is None else StaticEncoding.fit(check_static_names(est.static_covariates),
                                                                panel.static).state_dict()
    if not names and not static:
        return None
    return CovariateSpec(calendar=names, static=static)


def _static_rows(spec: CovariateSpec, panel) -> np.ndarray:
    if not spec.static:
        return np.zeros((len(panel.items), 0), np.float32)
    return StaticEncoding.from_state_dict(spec.static).encode(panel.static)


def _series_rows(spec: CovariateSpec, index: pd.DatetimeIndex, static: np.ndarray) -> np.ndarray:
    """``[len(index), K]``: the calendar features of ``index``, then the static row on every step."""
    cal = calendar_features(index, spec.calendar)
    return np.concatenate([cal, np.broadcast_to(static, (len(index), len(static)))], axis=1).astype(np.float32)


def training_rows(spec: CovariateSpec, panel, gap: int) -> np.ndarray:
    """``[T, K]`` covariate rows of the panel laid out with ``gap`` rows between series (zeros there;
    no window reaches them)."""
    static = _static_rows(spec, panel)
    offsets = panel.panel.offsets(gap)
    rows = np.zeros((int(offsets[-1]) + panel.panel.lengths[-1], spec.width), np.float32)
    for i, (o, index) in enumerate(zip(offsets, panel.indexes)):
        rows[o: o + len(index)] = _series_rows(spec, index, static[i])
    return rows


def forecast_covariates(spec: CovariateSpec | None, panel, ctx: int, H: int, freq) -> np.ndarray | None:
    """``[n_series, ctx + H, K]`` covariates of each series' forecast window (its last ``ctx`` steps
    and the ``H`` after its end), or None for a model without covariates."""
    if spec is None:
        return None
    if spec.static and panel.static is None:
        raise DataError(f"this model was trained with static covariates {spec.static.get('names')}: pass the "
                        "series with them (a long DataFrame's columns, or the GluonTS entries' fields)")
    static = _static_rows(spec, panel)
    blocks = [_series_rows(spec, pd.date_range(pd.date_range(end=index[-1], periods=ctx, freq=freq)[0],
                                               periods=ctx + H, freq=freq), static[i])
              for i, index in enumerate(panel.indexes)]
    return np.stack(blocks)
