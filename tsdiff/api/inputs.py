"""Input dispatch of the Python API: user data (DataFrames, xarray, GluonTS datasets, arrays,
Series) to the canonical :class:`~tsdiff.data.series.Series` ``[T, N, C]``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from tsdiff import validation as checks
from tsdiff.data.series import Series
from tsdiff.errors import DataError


def _is_xarray(obj) -> bool:
    mod = type(obj).__module__
    return mod.startswith("xarray.")


def _is_gluonts(obj) -> bool:
    if hasattr(obj, "train") and hasattr(obj, "metadata"):
        return True
    if isinstance(obj, (list, tuple)) and obj:  # ListDataset is a list of entry dicts
        return all(isinstance(e, dict) and "target" in e and "start" in e for e in obj)
    return type(obj).__module__.startswith("gluonts.")


def check_frame(df: pd.DataFrame, where: str = "data") -> None:
    """Refuse an empty DataFrame or non-numeric columns, naming the column and a bad value."""
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{where} is empty ({df.shape[0]} rows x {df.shape[1]} columns); pass at least one row "
                        "and one numeric column")
    checks.check_columns(df, where)  # unique labels of one kind
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            try:
                num = pd.to_numeric(s, errors="coerce")
            except TypeError:
                num = pd.Series(np.nan, index=s.index)
            bad = s[num.isna() & s.notna()]
            if not len(bad) and not pd.api.types.is_bool_dtype(s) and not isinstance(s.dtype, pd.DatetimeTZDtype) \
                    and not pd.api.types.is_datetime64_any_dtype(s):
                continue  # numbers stored as objects / strings convert exactly
            example = f" (e.g. {bad.iloc[0]!r} at row {bad.index[0]!r})" if len(bad) else ""
            raise DataError(
                f"{where}: column {col!r} is not numeric{example}; convert it with pd.to_numeric(..., "
                "errors='coerce') to turn bad entries into NaN (missing), or drop the column"
            )


def to_series(data, *, freq: str | None = None, graph=None, item_col: str = "item_id",
              time_col: str = "timestamp", variables: list[str] | None = None,
              lazy: bool = False) -> tuple[Series, Any]:
    """Convert user data to the canonical :class:`Series` ``[T, N, C]``.

    Accepted: a wide ``pd.DataFrame`` (DatetimeIndex x one column per series), a long
    DataFrame (columns ``item_col``, ``time_col`` and value columns), a ``pd.Series``,
    an ``xarray`` Dataset / DataArray on a (time, latitude, longitude) grid, a GluonTS
    dataset (or ``TrainDatasets``: its ``train`` part), a ``[T]`` / ``[T, N]`` / ``[T, N, C]``
    numpy array (with ``freq``), or a :class:`Series`. ``graph`` (a dense ``[N, N]``
    adjacency, a scipy sparse matrix or a :class:`~tsdiff.data.spatial.GraphSpatial`)
    becomes ``series.spatial``.

        lazy: with a dask-backed xarray object (``xr.open_dataset(path, chunks={})``),
            return its :class:`~tsdiff.data.adapters.grid.GridSource` as the series too,
            without reading any value (windows are read when used; not with ``graph``).
    Returns:
        ``(series, grid_source)``; ``grid_source`` is the
        :class:`~tsdiff.data.adapters.grid.GridSource` of xarray input (to rebuild
        xarray output with the original coordinates), else None.
    Raises:
        DataError: empty data, non-numeric columns, irregular timestamps, ...
    """
    from tsdiff.data.adapters import frames

    checks.check_freq(freq)
    checks.refuse_scipy_sparse(data)
    source = None
    if isinstance(data, Series):
        series = data
    elif isinstance(data, pd.Series):
        return to_series(data.to_frame(data.name if data.name is not None else "value"), freq=freq, graph=graph)
    elif isinstance(data, pd.DataFrame):
        if item_col in data.columns and time_col in data.columns:
            if data.shape[0] == 0:
                raise DataError("the long DataFrame is empty (0 rows)")
            check_frame(data.drop(columns=[item_col, time_col]), "long DataFrame")
            series = frames.from_long_dataframe(data, item_col, time_col, freq=freq)
        else:
            check_frame(data, "DataFrame")
            if not isinstance(data.index, pd.DatetimeIndex):
                raise DataError(
                    "a wide DataFrame needs a DatetimeIndex (one row per time step); set it with "
                    "df.set_index(pd.to_datetime(df['date'])), or pass a long frame with columns "
                    f"{item_col!r}, {time_col!r}"
                )
            series = frames.from_wide_dataframe(data, freq=freq)
    elif _is_xarray(data):
        from tsdiff.data.adapters.grid import GridSource

        if getattr(data, "sizes", None) is not None and any(v == 0 for v in data.sizes.values()):
            raise DataError(f"the xarray object is empty (sizes {dict(data.sizes)})")
        source = GridSource(data, variables)
        if lazy and graph is None and all(f.chunks is not None for f in source.fields):
            return source, source  # dask-backed: read nothing now
        series = source.to_series()
        series.attrs["freq"] = freq or (pd.infer_freq(series.time_index) if len(series.time_index) >= 3 else None)
    elif isinstance(data, np.ndarray):
        if data.size == 0:
            raise DataError(f"the array is empty (shape {data.shape})")
        series = frames.from_numpy(data, freq=freq or "h")
        if freq is None:  # the hourly steps stand for positions: no calendar to read from them
            series.attrs["placeholder_time"] = True
    elif _is_gluonts(data):
        from tsdiff.data.adapters.gluonts import from_gluonts

        series = from_gluonts(data.train if hasattr(data, "train") and hasattr(data, "metadata") else data, freq)
    else:
        raise DataError(
            f"cannot use data of type {type(data).__name__}; pass a pandas DataFrame (wide or long), an xarray "
            "Dataset/DataArray, a GluonTS dataset, a numpy array or a tsdiff Series"
        )
    if series.shape[0] == 0 or series.shape[1] == 0:
        raise DataError(f"the data is empty (shape [T, N, C] = {series.shape})")
    if graph is not None:
        series.spatial = _graph(graph, series)
    return series, source


def _last_steps(series, n: int) -> Series:
    """The last ``n`` steps as a :class:`Series` (read from a lazy source, or a view)."""
    from tsdiff.data.lazy import read_series

    T = series.shape[0]
    return series.slice_time(T - n, T) if isinstance(series, Series) else read_series(series, T - n)


#: how the trailing-row warnings end (:func:`warn_trailing_steps`, the global mode's per-item warning)
TRAILING_ROWS_FIX = ("the forecast starts after them. To forecast from the last observed value, drop those rows "
                     "(known future covariates go in predict(future_covariates=...))")


def trailing_empty_rows(values: np.ndarray) -> tuple[int, int]:
    """``(k, last)``: how many of the last rows of ``values [T, ...]`` hold no value (NaN only),
    and the index of the last row that holds one; ``k`` is 0 when the last row holds a value
    or no row does."""
    seen = np.flatnonzero(~np.isnan(values).reshape(len(values), -1).all(axis=1))
    if not len(seen):
        return 0, -1
    return len(values) - 1 - int(seen[-1]), int(seen[-1])


def warn_trailing_steps(history: Series) -> None:
    """Warn when the history's last steps hold no value of any series (e.g. rows kept for known
    future covariates): the forecast starts after the data's last row, not after its last value."""
    k, last = trailing_empty_rows(history.values)
    if k:
        warnings.warn(f"the data's last {k} row(s), after {history.time_index[last]}, hold no value of any "
                      f"series; they count as missing history and {TRAILING_ROWS_FIX}", UserWarning, stacklevel=3)


def _graph(graph, series: Series):
    from tsdiff.data.adapters.graph import from_dense, from_scipy
    from tsdiff.data.spatial import GraphSpatial

    n = series.shape[1]
    if isinstance(graph, GraphSpatial):
        graph.check_nodes(n)
        return graph
    if hasattr(graph, "tocoo"):
        return from_scipy(graph, list(series.node_names), num_nodes=n)
    return from_dense(np.asarray(graph), list(series.node_names), num_nodes=n)


def long_times(data: pd.DataFrame, time_col: str) -> pd.Series:
    """The timestamps of a long DataFrame's ``time_col`` (text in any pandas-readable form, mixed
    formats allowed), or a DataError naming the column."""
    try:
        return pd.to_datetime(data[time_col], format="mixed")
    except (TypeError, ValueError) as exc:
        raise DataError(f"long DataFrame: column {time_col!r} does not hold timestamps ({exc})") from None
