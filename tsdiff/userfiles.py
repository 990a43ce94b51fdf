"""Users' files for ``tsdiff impute`` / ``tsdiff forecast``: CSV tables and netCDF grids.

Imputed CSV files keep the input's bytes: the header, the index column and every
observed cell are written with their original text, and only missing cells get a
value (``repr`` of the float, which reads back to the same float). Imputed netCDF
files keep the coordinates, attributes and encoding of the input; observed values are
copied, never recomputed.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tsdiff.errors import ConfigError, DataError

TABLE_EXTENSIONS = (".csv",)
GRID_EXTENSIONS = (".nc", ".nc4", ".netcdf")


def file_kind(path: str | os.PathLike, role: str = "input") -> str:
    """``"csv"`` or ``"netcdf"`` from the extension; anything else is a ConfigError naming the valid ones."""
    suffix = Path(path).suffix.lower()
    if suffix in TABLE_EXTENSIONS:
        return "csv"
    if suffix in GRID_EXTENSIONS:
        return "netcdf"
    raise ConfigError(f"unknown {role} file extension {suffix or '(none)'!r} of {str(path)!r}; use .csv (a table: "
                      f"first column time, one column per series) or .nc (a netCDF grid)")


def _sniff_lineterminator(text: str) -> str:
    return "\r\n" if "\r\n" in text[:10000] else "\n"


def read_csv_table(path: str | os.PathLike) -> tuple[pd.DataFrame, list[list[str]], str]:
    """Read a CSV table: first column = index (timestamps if they parse), the rest numeric.

    Returns:
        ``(frame, rows, lineterminator)``: the float64 DataFrame (NaN = missing), the raw
        text rows (header first, blank lines dropped) and the file's line ending.
    Raises:
        DataError: no data rows, a non-numeric column (naming it and a bad value), ragged rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {str(path)!r} does not exist")
    text = path.read_text()
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise DataError(f"{path}: the table is empty; expected a header and at least one row of "
                        "'time,series1,series2,...'")
    width = len(rows[0])
    ragged = [i for i, r in enumerate(rows) if len(r) != width]
    if ragged:
        raise DataError(f"{path}: row {ragged[0] + 1} has {len(rows[ragged[0]])} cells but the header has {width}")
    df = pd.read_csv(io.StringIO(text), index_col=0)
    if len(df) != len(rows) - 1:
        raise DataError(f"{path}: could not align the table's rows ({len(df)} parsed, {len(rows) - 1} in the file)")
    from tsdiff.api import check_frame

    check_frame(df, str(path))
    try:
        index = pd.DatetimeIndex(pd.to_datetime(df.index, format="mixed"))
        df.index = index.rename(df.index.name)
    except (TypeError, ValueError):
        pass  # a plain row label: rows are still taken as consecutive steps
    return df.astype(np.float64), rows, _sniff_lineterminator(text)


def write_imputed_csv(path: str | os.PathLike, rows: list[list[str]], filled: np.ndarray, missing: np.ndarray,
                      lineterminator: str = "\n") -> Path:
    """Write the input's text rows with the missing cells replaced by ``repr(value)``.

    Args:
        rows: raw text rows (header + T data rows of 1 + F cells).
        filled: float ``[T, F]``; only entries under ``missing`` are used.
        missing: bool ``[T, F]``.
    """
    from tsdiff.io import atomic_write

    out = [list(rows[0])]
    for t, row in enumerate(rows[1:]):
        new = list(row)
        for f in np.flatnonzero(missing[t]):
            new[f + 1] = repr(float(filled[t, f]))
        out.append(new)

    def write(fh):
        w = csv.writer(fh, lineterminator=lineterminator)
        w.writerows(out)

    return atomic_write(path, write, mode="w")


def open_grid(path: str | os.PathLike):
    """Open a netCDF grid fully into memory (the file is closed afterwards)."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {str(path)!r} does not exist")
    try:
        with xr.open_dataset(path) as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable netCDF file ({exc})") from None


def write_grid(ds, template, path: str | os.PathLike) -> Path:
    """Write ``ds`` as netCDF with the template's variable encodings (dtype, fill value, packing)."""
    from tsdiff.io import atomic_write

    keep = ("dtype", "_FillValue", "scale_factor", "add_offset", "units", "calendar", "zlib", "complevel", "shuffle")
    encoding = {}
    for name in list(ds.data_vars) + list(ds.coords):
        if name in template.variables:
            enc = {k: v for k, v in template[name].encoding.items() if k in keep}
            if name in ds.coords and ("units" in ds[name].attrs or "calendar" in ds[name].attrs):
                enc = {k: v for k, v in enc.items() if k not in ("units", "calendar")}
            encoding[name] = enc
    data = ds.to_netcdf(encoding=encoding)
    return atomic_write(path, lambda fh: fh.write(bytes(data)))


def write_forecast(forecast, path: str | os.PathLike, quantiles=(0.05, 0.1, 0.5, 0.9, 0.95)) -> Path:
    """A :class:`~tsdiff.api.Forecast` as CSV (mean + quantile columns ``series:stat``) or netCDF (samples)."""
    from tsdiff.io import atomic_write

    kind = file_kind(path, "output")
    if kind == "csv":
        df = forecast.to_pandas(quantiles)
        df.columns = [":".join(str(p) for p in c) for c in df.columns]
        text = df.to_csv(float_format=None)
        return atomic_write(path, lambda fh: fh.write(text), mode="w")
    obj = forecast.to_xarray()
    data = obj.to_netcdf()
    return atomic_write(path, lambda fh: fh.write(bytes(data)))
