"""Covariates from user data for the :class:`~tsdiff.api.Forecaster`: the covariate columns of a wide
DataFrame taken apart from its targets, the checks that name what is wrong, and the ``[1, L, K]``
block of a forecast (history and ``future_covariates`` over the horizon)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.api.inputs import long_times
from tsdiff.data.covariates import CovariateSpec
from tsdiff.errors import ConfigError, DataError


def check_names(covariates, future_covariates, calendar=True, centre_covariates: bool = True) -> tuple[list, list]:
    """The constructor's column lists, checked: lists of labels, no label in both (and ``calendar``
    a bool or a list of calendar feature names, ``centre_covariates`` a bool)."""
    check_calendar(calendar)
    if not isinstance(centre_covariates, bool):
        raise ConfigError(f"centre_covariates must be True or False, got {centre_covariates!r}")
    out = []
    for name, value in (("covariates", covariates), ("future_covariates", future_covariates)):
        if value is None:
            out.append([])
            continue
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list of column names, e.g. {name}=[{value!r}], got {value!r}")
        if len(set(value)) != len(value):
            raise ConfigError(f"{name} names a column twice: {list(value)}")
        out.append(list(value))
    both = [c for c in out[0] if c in out[1]]
    if both:
        raise ConfigError(f"column(s) {both} are in both covariates= (past-only) and future_covariates= (known in "
                          "the future); name each covariate once")
    return out[0], out[1]


def covariate_data(data, past: list, future: list, targets=None, *, freq=None, where: str = "fit",
                   trained: CovariateSpec | None = None):
    """``(target_data, past_frame, future_frame)`` of any input: a wide DataFrame's covariate columns
    (:func:`split_frame`), a GluonTS dataset's ``feat_dynamic_real`` / ``past_feat_dynamic_real``
    (:func:`~tsdiff.data.adapters.gluonts.covariate_frames`; GluonTS entries declare their own
    covariates), or ``(data, None, None)`` without covariates. ``trained``: at predict, the
    model's covariates, which the data must have."""
    from tsdiff.api.inputs import _is_gluonts

    if _is_gluonts(data):
        from tsdiff.data.adapters.gluonts import covariate_frames

        if trained is None:
            refuse_gluonts_names(past, future)
        entries = data.train if hasattr(data, "train") and hasattr(data, "metadata") else data
        past_df, future_df = covariate_frames(entries, freq or getattr(getattr(data, "metadata", None), "freq", None))
        if trained is not None:
            have = [] if past_df is None else list(past_df.columns)
            have += [] if future_df is None else list(future_df.columns)
            missing = [c for c in trained.columns if c not in have]
            if missing:
                raise DataError(f"covariate column(s) {missing[:4]} are not in the data passed to {where}: the model was "
                                "trained on GluonTS entries with these feat_dynamic_real / past_feat_dynamic_real rows; "
                                "give every entry the same fields")
            past_df = None if past_df is None else past_df[trained.past]
            future_df = None if future_df is None else future_df[trained.future]
        return data, past_df, future_df
    if isinstance(data, pd.DataFrame) and {ITEM, TIME} <= set(data.columns) and (past or future):
        check_long_columns(data, list(future) + list(past), where)
        past_df, future_df = long_to_wide(data, past), long_to_wide(data, future)
        if trained is not None:
            for frame, cols in ((past_df, trained.past), (future_df, trained.future)):
                lack = [c for c in cols if c not in frame.columns]
                if lack:
                    raise DataError(f"covariate column(s) {lack[:4]} (item:column) are not in the data passed to "
                                    f"{where}; pass the same items as in fit")
            past_df, future_df = past_df[trained.past], future_df[trained.future]
        return data.drop(columns=list(past) + list(future)), past_df, future_df
    if past or future or targets is not None:
        return split_frame(data, past, future, targets, where=where)
    return data, None, None


def refuse_gluonts_names(past: list, future: list) -> None:
    """Refuse covariate column names with a GluonTS dataset, whose entries declare their covariates."""
    if past or future:
        raise ConfigError("a GluonTS dataset declares its covariates itself (feat_dynamic_real, "
                          "past_feat_dynamic_real); leave covariates= / future_covariates= unset")


def refuse_unneeded_future() -> None:
    """The error for ``predict(future_covariates=...)`` on a model without known-future covariates."""
    raise DataError("this model was trained without known-future covariates; drop future_covariates=, or fit "
                    "a Forecaster(future_covariates=[...columns...]) on data with those columns")


def check_long_columns(data: pd.DataFrame, names: list, where: str) -> None:
    """Refuse a long DataFrame without the covariate columns ``names``."""
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise DataError(f"covariate column(s) {missing} are not in the long DataFrame passed to {where} (its "
                        f"columns: {list(data.columns)[:12]}); add them (a model trained with them reads them at "
                        "predict too), or leave them out of covariates= / future_covariates=")


#: The item and time columns of long DataFrames with covariates (to_series' defaults).
ITEM, TIME = "item_id", "timestamp"


def rows_between(data: pd.DataFrame, first, last, columns: list | None = None) -> pd.DataFrame:
    """The rows of a wide or long DataFrame with timestamps in ``[first, last]`` (None: open), and
    only ``columns`` (with a long frame's item and time columns) if given."""
    if {ITEM, TIME} <= set(data.columns):
        times = long_times(data, TIME)
        keep = np.ones(len(data), dtype=bool)
        keep &= True if first is None else (times >= first).to_numpy()
        keep &= True if last is None else (times <= last).to_numpy()
        out = data[keep]
        return out if columns is None else out[[ITEM, TIME, *columns]]
    out = data.loc[first:last]
    return out if columns is None else out[list(columns)]


def long_to_wide(frame: pd.DataFrame, names: list) -> pd.DataFrame:
    """A long DataFrame's columns ``names`` as a wide frame: one column ``"<item>:<name>"`` per item
    and name, on its timestamps (covariates are read per item, and every item's are shared)."""
    times = long_times(frame, TIME)
    wide = frame.assign(**{TIME: times}).pivot(index=TIME, columns=ITEM, values=list(names))
    wide.columns = [f"{item}:{name}" for name, item in wide.columns]
    return wide.astype(np.float64)


def split_frame(data, past: list, future: list, targets=None, where: str = "fit"):
    """``(target_frame, past_frame, future_frame)`` of a wide DataFrame: the covariate columns
    taken out, the targets the other columns (or ``targets``).

    Raises:
        DataError: data that is not a wide DataFrame, a covariate column missing, a covariate
            that is also a target, or no target left.
    """
    names = list(future) + list(past)
    if not isinstance(data, pd.DataFrame) or not isinstance(data.index, pd.DatetimeIndex):
        raise DataError(f"covariates are read from a wide DataFrame (a DatetimeIndex, one column per target and per "
                        f"covariate); {where} got {type(data).__name__}{'' if not isinstance(data, pd.DataFrame) else ' without a DatetimeIndex'}."
                        " Pass the frame with the covariate columns, or a Forecaster without covariates")
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise DataError(f"covariate column(s) {missing} are not in the data passed to {where} (its columns: "
                        f"{list(data.columns)[:12]}); add them, or leave them out of covariates= / future_covariates=")
    if targets is not None:
        both = [c for c in names if c in targets]
        if both:
            raise DataError(f"column(s) {both} are both forecast targets and covariates; a column is one or the other: "
                            "drop it from targets= or from covariates= / future_covariates=")
        absent = [c for c in targets if c not in data.columns]
        if absent:
            raise DataError(f"target column(s) {absent} are not in the data passed to {where}")
        target_cols = list(targets)
    else:
        target_cols = [c for c in data.columns if c not in names]
    if not target_cols:
        raise DataError(f"every column of the data is a covariate ({names}); keep at least one target column")
    return data[target_cols], data[list(past)], data[list(future)]


def check_known(frame: pd.DataFrame, where: str) -> None:
    """Refuse NaN in known-future covariates, naming the column and the first missing timestamp."""
    bad = frame.isna()
    if bad.to_numpy().any():
        col = bad.any(axis=0).idxmax()
        when = frame.index[bad[col].to_numpy()][0]
        raise DataError(f"known-future covariate {col!r} is missing (NaN) at {when} in {where}; known-future "
                        "covariates must have a value at every step: fill them (e.g. frame.ffill()), or pass the "
                        "column as a past-only covariate (covariates=)")


def future_rows(future_covariates, spec: CovariateSpec, future_index: pd.DatetimeIndex, targets,
                source: str = "future_covariates") -> np.ndarray:
    """``[H, Kf]`` known-future covariates of the horizon ``future_index`` from the ``future_covariates``
    frame (its rows at those timestamps; other rows are ignored).

    Raises:
        DataError: no frame where the model needs one, a column missing, a target column in it, a
            horizon step it does not cover, or NaN over the horizon.
    """
    H = len(future_index)
    if not spec.future:
        if future_covariates is not None and source == "future_covariates":
            refuse_unneeded_future()
        return np.zeros((H, 0))
    if future_covariates is None:
        raise DataError(f"this model was trained with known-future covariates {spec.future}: pass "
                        f"predict(..., future_covariates=frame) with those columns over the {H} forecast steps "
                        f"{future_index[0]} .. {future_index[-1]}")
    if isinstance(future_covariates, pd.DataFrame) and {ITEM, TIME} <= set(future_covariates.columns):
        raw = [c for c in future_covariates.columns if c not in (ITEM, TIME)]
        future_covariates = long_to_wide(future_covariates, raw)
    if not isinstance(future_covariates, pd.DataFrame) or not isinstance(future_covariates.index, pd.DatetimeIndex):
        raise DataError("future_covariates must be a DataFrame with a DatetimeIndex covering the forecast steps, got "
                        f"{type(future_covariates).__name__}")
    clash = [c for c in future_covariates.columns if c in list(targets)]
    if clash:
        raise DataError(f"future_covariates has column(s) {clash}, which are forecast targets; pass only the "
                        f"known-future covariates {spec.future}")
    missing = [c for c in spec.future if c not in future_covariates.columns]
    if missing:
        raise DataError(f"future_covariates lacks column(s) {missing}; the model was trained with known-future "
                        f"covariates {spec.future}")
    uncovered = future_index.difference(future_covariates.index)
    if len(uncovered):
        raise DataError(f"{source} does not cover the forecast horizon: {len(uncovered)} of its {H} steps "
                        f"are missing, the first {uncovered[0]} (the horizon is {future_index[0]} .. "
                        f"{future_index[-1]}); pass rows for every forecast step")
    frame = future_covariates.loc[future_index, spec.future]
    check_known(frame, source)
    return frame.to_numpy(np.float64)


def forecast_block(spec: CovariateSpec, history: pd.DataFrame, history_index: pd.DatetimeIndex,
                   future: np.ndarray, future_index: pd.DatetimeIndex, *, first=None,
                   where: str = "the history passed to predict") -> np.ndarray:
    """``[1, ctx + H, K]`` covariates of one forecast: the covariate columns of the ``ctx`` steps
    ``history_index`` from ``history`` (the data's covariate columns; absent steps are missing),
    then ``future`` ``[H, Kf]`` over ``future_index``. Known-future covariates must have a value
    at every history step from ``first`` on (None: all; a global model's short series is padded
    with unknown steps before its first one)."""
    hist = history.reindex(history_index)
    check_known(hist.loc[first:, spec.future], where)
    index = history_index.append(future_index)
    fut = np.concatenate([hist[spec.future].to_numpy(np.float64), future], axis=0)
    past = np.concatenate([hist[spec.past].to_numpy(np.float64),
                           np.full((len(future_index), len(spec.past)), np.nan)], axis=0)
    return spec.window(spec.rows(index, fut, past), len(history_index))[None]


def check_calendar(calendar) -> None:
    """``calendar`` is True, False or a list of distinct calendar feature names."""
    from tsdiff.data.covariates import calendar_choices

    if isinstance(calendar, bool):
        return
    choices = calendar_choices()
    if not isinstance(calendar, (list, tuple)) or not all(isinstance(n, str) for n in calendar):
        raise ConfigError(f"calendar must be True, False or a list of calendar feature names (of {choices}), "
                          f"got {calendar!r}")
    unknown = [n for n in calendar if n not in choices]
    if unknown or len(set(calendar)) != len(calendar):
        raise ConfigError(f"calendar={list(calendar)!r} " + (f"names unknown feature(s) {unknown}" if unknown else
                                                             "names a feature twice") + f"; choose from {choices}")


def calendar_columns(freq, calendar, index=None, stacklevel: int = 3) -> list[str]:
    """The calendar features of a model: a list ``calendar`` as given; with ``calendar=True``,
    those of ``freq`` (:func:`~tsdiff.data.covariates.calendar_names`) whose period the training
    steps ``index`` cover at least three times (:func:`~tsdiff.data.covariates.covered_calendar`);
    ``[]`` for False, and with a UserWarning for a frequency GluonTS has none for."""
    import warnings

    from tsdiff.data.covariates import calendar_names, covered_calendar

    if not isinstance(calendar, bool):
        return list(calendar)
    if not calendar:
        return []
    try:
        names = calendar_names(freq)
    except (RuntimeError, ValueError, KeyError):
        warnings.warn(f"GluonTS has no calendar features for frequency {freq!r}: the model gets none (pass "
                      "calendar=False to say so)", UserWarning, stacklevel=stacklevel)
        return []
    return names if index is None else covered_calendar(names, index, freq)


def fit_covariates(past: pd.DataFrame | None, future: pd.DataFrame | None, index: pd.DatetimeIndex, freq,
                   calendar, centre: bool = True) -> tuple[CovariateSpec | None, np.ndarray | None]:
    """The covariate spec of a training set and its ``[T, K']`` scaled rows
    (:meth:`CovariateSpec.rows`), or ``(None, None)`` without covariates and calendar features.
    ``centre``: past-only columns centred per window (:class:`CovariateSpec`'s ``centre_past``).

    With ``calendar=True``, a frequency GluonTS has no calendar features for (``BMS``, ``ms``, ...)
    gives none, with a UserWarning; so does data without a frequency. A calendar feature whose
    period the training steps cover fewer than three times is left out (:func:`calendar_columns`).

    Raises:
        DataError: NaN in known-future covariates, a covariate without any value.
    """
    names = calendar_columns(freq, calendar, index, stacklevel=4)
    empty = pd.DataFrame(index=index)
    past = empty if past is None else past.reindex(index)
    future = empty if future is None else future.reindex(index)
    if not names and not past.shape[1] and not future.shape[1]:
        return None, None
    check_known(future, "the training data")
    spec = CovariateSpec.fit(past, future, names, centre_past=centre)
    return spec, spec.rows(index, future.to_numpy(np.float64), past.to_numpy(np.float64))
