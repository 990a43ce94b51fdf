"""pandas / numpy -> :class:`Series` and back.

- :func:`from_wide_dataframe`: DatetimeIndex x columns (one column per series).
- :func:`from_long_dataframe`: rows of (item id, timestamp, value columns).
- :func:`from_numpy`: ``[T]``, ``[T, N]`` or ``[T, N, C]`` arrays with a start and frequency.
- :func:`to_wide_dataframe`: the inverse of :func:`from_wide_dataframe`.

Every entry point validates the time index with :func:`check_time_index`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.series import Series
from tsdiff.errors import DataError
from tsdiff.validation import as_float64, check_columns, frame_to_float


def check_time_index(index, freq: str | None = None, where: str = "data") -> tuple[pd.DatetimeIndex, str]:
    """Check that timestamps are unique, sorted and regularly spaced.

    Args:
        freq: the expected pandas frequency; default: inferred from the index.
    Returns:
        ``(index, freq)`` with ``index.freq`` set.
    Raises:
        DataError: duplicates, unsorted or irregular timestamps (the message names
            the first offending timestamps and how to fix them).
    """
    try:
        idx = pd.DatetimeIndex(index)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: the index must hold timestamps ({exc})") from None
    if len(idx) == 0:
        raise DataError(f"{where} has no rows (no timestamps); pass data with at least one time step")
    if idx.hasnans:
        raise DataError(f"{where}: the time index has missing timestamps (NaT); drop those rows")
    dup = idx[idx.duplicated()]
    if len(dup):
        raise DataError(
            f"{where}: {len(dup)} duplicate timestamp(s), first {dup[0]}; aggregate them "
            "(e.g. df.groupby(level=0).mean()) or drop duplicates"
        )
    if not idx.is_monotonic_increasing:
        bad = int(np.flatnonzero(np.diff(idx.asi8) < 0)[0])
        raise DataError(f"{where}: timestamps are not sorted ({idx[bad]} comes before {idx[bad + 1]}); sort by time first")
    if len(idx) < 3 and freq is None:
        raise DataError(f"{where}: cannot infer the frequency of {len(idx)} timestamp(s); pass freq=")
    if freq is None:
        # the index's own frequency first: pandas infers 'QS-OCT' for a 'QS' (= 'QS-JAN') index
        freq = idx.freqstr if idx.freq is not None else pd.infer_freq(idx)
        if freq is None:
            steps = pd.Series(np.diff(idx.asi8)).value_counts()
            raise DataError(
                f"{where}: irregular timestamps ({len(steps)} different step sizes, e.g. "
                f"{pd.Timedelta(int(steps.index[0]))} and {pd.Timedelta(int(steps.index[-1]))}); "
                "resample to a regular frequency (df.resample(...).mean()) or pass freq= and reindex"
            )
    expected = pd.date_range(idx[0], periods=len(idx), freq=freq)
    if not expected.equals(idx.tz_localize(None) if idx.tz is not None and expected.tz is None else idx):
        missing = expected.difference(idx)
        raise DataError(
            f"{where}: timestamps do not follow frequency {freq!r}"
            + (f" (e.g. {missing[0]} is missing)" if len(missing) else "")
            + "; reindex to a regular grid with df.asfreq(freq) so gaps become NaN"
        )
    return pd.DatetimeIndex(pd.DatetimeIndex(idx, freq=None), freq=freq), freq  # an equivalent anchor may differ


def _non_numeric(df: pd.DataFrame, cols) -> list:
    """Columns of ``cols`` that do not hold numbers (object columns of numbers, None and pd.NA pass)."""
    bad = []
    for c in cols:
        s = df[c]
        if pd.api.types.is_numeric_dtype(s):
            continue
        if s.dtype == object:
            known = s[s.notna()]
            if pd.to_numeric(known, errors="coerce").notna().all():
                continue
        bad.append(c)
    return bad


def from_wide_dataframe(df: pd.DataFrame, freq: str | None = None, channel: str = "value", **attrs) -> Series:
    """Wide DataFrame (DatetimeIndex x columns) -> Series ``[T, N, 1]``.

    NaN cells are missing values. Column names become ``node_names`` (as strings;
    the original labels are kept in ``attrs["columns"]`` for the round trip).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError("DataFrame columns are a MultiIndex; flatten them (one column per series) first")
    if not df.columns.is_unique:
        dup = df.columns[df.columns.duplicated()][0]
        raise DataError(f"DataFrame has duplicate column {dup!r}; every series needs its own column")
    if df.shape[1] == 0:
        raise DataError("DataFrame has no columns; pass one numeric column per series")
    check_columns(df, "DataFrame")
    index, freq = check_time_index(df.index, freq, "DataFrame")
    bad = _non_numeric(df, df.columns)
    if bad:
        raise DataError(f"DataFrame column(s) {bad[:5]} are not numeric; convert or drop them")
    values = frame_to_float(df, "DataFrame").to_numpy(dtype=np.float64)[:, :, None]
    return Series(
        values, index, [str(c) for c in df.columns], [channel],
        attrs={"freq": freq, "columns": list(df.columns), "columns_name": df.columns.name,
               "index_name": df.index.name, "frame_attrs": dict(df.attrs), **attrs},
    )


def to_wide_dataframe(series: Series, channel: int = 0) -> pd.DataFrame:
    """Series ``[T, N, C]`` -> wide DataFrame of one channel.

    Restores what :func:`from_wide_dataframe` kept: the original column labels and their
    name, the index name and frequency, and ``DataFrame.attrs``.
    """
    cols = series.attrs.get("columns")
    if cols is None or len(cols) != series.shape[1]:
        cols = list(series.node_names)
    index = pd.DatetimeIndex(series.time_index, name=series.attrs.get("index_name", series.time_index.name))
    freq = series.attrs.get("freq")
    if freq is not None and index.freq is None:
        try:
            index = pd.DatetimeIndex(index, freq=freq)
        except ValueError:  # values no longer on that frequency (e.g. a slice with gaps)
            pass
    out = pd.DataFrame(series.values[:, :, channel], index=index,
                       columns=pd.Index(cols, name=series.attrs.get("columns_name")))
    out.attrs.update(series.attrs.get("frame_attrs", {}))
    return out


def from_long_dataframe(
    df: pd.DataFrame,
    item_col: str = "item_id",
    time_col: str = "timestamp",
    value_cols: list[str] | None = None,
    freq: str | None = None,
) -> Series:
    """Long DataFrame (one row per item and timestamp) -> Series ``[T, N, C]``.

    Items become nodes, value columns become channels; the time axis is the union
    of all timestamps (regular with ``freq``), and (item, time) pairs without a row
    are NaN.

    Raises:
        DataError: missing columns, or an item with a repeated timestamp.
    """
    need = [item_col, time_col] + list(value_cols or [])
    absent = [c for c in need if c not in df.columns]
    if absent:
        raise DataError(f"long DataFrame lacks column(s) {absent}; it has {list(df.columns)}")
    value_cols = list(value_cols or [c for c in df.columns if c not in (item_col, time_col)])
    if not value_cols:
        raise DataError("long DataFrame has no value columns")
    bad = _non_numeric(df, value_cols)
    if bad:
        raise DataError(f"long DataFrame: value column(s) {bad[:5]} are not numeric; convert or drop them")
    df = frame_to_float(df, "long DataFrame", value_cols)
    try:
        times = pd.to_datetime(df[time_col], format="mixed")
    except (TypeError, ValueError) as exc:
        raise DataError(f"long DataFrame: column {time_col!r} does not hold timestamps ({exc})") from None
    dup = pd.DataFrame({"i": df[item_col], "t": times}).duplicated()
    if dup.any():
        row = df[dup.to_numpy()].iloc[0]
        raise DataError(
            f"item {row[item_col]!r} has duplicate timestamp {row[time_col]}; aggregate per (item, time) first"
        )
    all_times = pd.DatetimeIndex(np.unique(times.to_numpy()))
    if freq is not None or len(all_times) >= 3:
        freq = freq or pd.infer_freq(all_times)
        if freq is None:
            raise DataError("long DataFrame: irregular timestamps; pass freq= to put them on a regular grid")
        grid = pd.date_range(all_times[0], all_times[-1], freq=freq)
        off = all_times.difference(grid)
        if len(off):
            raise DataError(f"long DataFrame: timestamp {off[0]} is not on the {freq!r} grid")
    else:
        grid = all_times
    items = pd.unique(df[item_col])
    wide = df.assign(**{time_col: times}).pivot(index=time_col, columns=item_col, values=value_cols)
    wide = wide.reindex(index=grid)
    values = np.stack([wide[c].reindex(columns=items).to_numpy(dtype=np.float64) for c in value_cols], axis=-1)
    return Series(values, pd.DatetimeIndex(grid, name=time_col), [str(i) for i in items], value_cols,
                  attrs={"freq": freq, "items": list(items)})


def to_long_dataframe(series: Series, item_col: str = "item_id", time_col: str = "timestamp", dropna: bool = True) -> pd.DataFrame:
    """Series -> long DataFrame (inverse of :func:`from_long_dataframe`; NaN rows dropped by default)."""
    T, N, C = series.shape
    items = series.attrs.get("items") or list(series.node_names)
    out = pd.DataFrame({
        item_col: np.tile(np.asarray(items, dtype=object), T),
        time_col: np.repeat(series.time_index.to_numpy(), N),
    })
    for c, name in enumerate(series.channel_names):
        out[name] = series.values[:, :, c].reshape(-1)
    if dropna:
        out = out.dropna(subset=list(series.channel_names), how="all")
    return out.reset_index(drop=True)


def from_numpy(values, start="2000-01-01", freq: str = "h", node_names=None, channel_names=None) -> Series:
    """``[T]``, ``[T, N]`` or ``[T, N, C]`` array (NaN = missing) -> Series with a regular index."""
    raw = as_float64(values, "the array")  # masked entries -> NaN; refuses values float64 cannot hold exactly
    try:
        if raw.dtype.kind not in "biufO":  # strings, complex, datetimes are not values
            raise TypeError(raw.dtype)
        v = raw.astype(np.float64, copy=False)
    except (TypeError, ValueError):
        raise DataError(f"values must be numeric (real numbers, NaN = missing), got an array of dtype {raw.dtype}") \
            from None
    if v.ndim == 1:
        v = v[:, None, None]
    elif v.ndim == 2:
        v = v[:, :, None]
    elif v.ndim != 3:
        raise DataError(f"expected a [T], [T, N] or [T, N, C] array, got shape {v.shape}")
    T, N, C = v.shape
    index = pd.date_range(start, periods=T, freq=freq)
    return Series(
        v, index,
        list(node_names) if node_names is not None else [str(i) for i in range(N)],
        list(channel_names) if channel_names is not None else [f"c{i}" for i in range(C)],
        attrs={"freq": freq},
    )


def check_usable(series: Series, window: int = 1, all_nan: str = "error") -> Series:
    """Refuse a series that cannot give one window, or has a node with no observed value.

    Args:
        all_nan: ``"error"`` (default) raises on an all-NaN node / channel; ``"keep"``
            allows it (the scalers give it mean 0, scale 1, and it never contributes
            conditioning values or scores).
    """
    T = series.shape[0]
    if T < window:
        raise DataError(f"the series has {T} steps, shorter than one window of {window}; use a shorter window")
    if series.shape[0] and np.isnan(series.values).all():
        raise DataError("the series has no observed value at all (all NaN)")
    empty = np.isnan(series.values).all(axis=0)
    if all_nan == "error" and empty.any():
        n, c = np.argwhere(empty)[0]
        raise DataError(
            f"node {series.node_names[n]!r} channel {series.channel_names[c]!r} is all NaN "
            f"({int(empty.sum())} node/channel pair(s) in total); drop it, or pass all_nan='keep'"
        )
    return series
