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


def open_grid(path: str | os.PathLike, lazy: bool = False):
    """Open a netCDF grid: fully into memory (the file is closed afterwards), or with ``lazy``
    as a dask-backed dataset that reads only what is asked for (close it when done)."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {str(path)!r} does not exist")
    try:
        if lazy:
            from tsdiff.data.adapters.grid import open_lazy_dataset

            return open_lazy_dataset(path)
        with xr.open_dataset(path) as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable netCDF file ({exc})") from None


#: encoding keys of the input's variables that written grids keep
GRID_ENCODING_KEYS = ("dtype", "_FillValue", "scale_factor", "add_offset", "units", "calendar", "zlib", "complevel",
                      "shuffle")
#: encoding keys that turn decoded values into the stored ones (packing and fill value)
_VALUE_ENCODING_KEYS = ("dtype", "_FillValue", "missing_value", "scale_factor", "add_offset")


def grid_encoding(ds, template) -> dict:
    """netCDF encodings for writing ``ds``: the template's dtype, fill value, packing, time units and
    compression of each variable it shares with the template."""
    encoding = {}
    for name in list(ds.data_vars) + list(ds.coords):
        if name in template.variables:
            enc = {k: v for k, v in template[name].encoding.items() if k in GRID_ENCODING_KEYS}
            if name in ds.coords and ("units" in ds[name].attrs or "calendar" in ds[name].attrs):
                enc = {k: v for k, v in enc.items() if k not in ("units", "calendar")}
            encoding[name] = enc
    return encoding


class GridWriter:
    """Write a netCDF grid laid out like a :class:`~tsdiff.data.adapters.grid.GridSource`'s file, a
    block of time steps at a time, so a grid larger than memory can be written.

    Entering lays the file out: the source's coordinates and attributes, and with
    ``keep_encoding`` its variables' encodings (dtype, fill value, packing, compression);
    values start missing. :meth:`write` then stores steps ``[start, start + rows)``, encoded
    as xarray would encode the whole array. The file appears under ``path`` only when the
    ``with`` block ends without an error (an error leaves no partial file).

    Args:
        path: the netCDF file to write.
        source: the input grid (its template dataset, dims, variables and coordinates).
        stats: names along a leading ``stat`` dimension (e.g. uncertainty summaries), or None.
        keep_encoding: write with the input's encodings (else the decoded dtype, no packing).
    """

    def __init__(self, path: str | os.PathLike, source, stats: list[str] | None = None,
                 keep_encoding: bool = True) -> None:
        self.path, self.source, self.stats, self.keep_encoding = Path(path), source, stats, keep_encoding
        self._atomic = None
        self._file = None

    def _layout(self):
        import dask.array as da
        import xarray as xr

        T, N, C = self.source.shape
        step = max(1, min(T, (16 << 20) // (8 * N * C)))
        empty = self.source.to_xarray(da.full((T, N, C), np.nan, chunks=(step, N, C)))
        if not self.stats:
            return empty
        return xr.concat([empty] * len(self.stats), dim="stat").assign_coords(stat=list(self.stats))

    def __enter__(self) -> "GridWriter":
        import dask
        import h5netcdf
        import xarray as xr

        from tsdiff.io import atomic_path

        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            ds = self._layout()
            encoding = grid_encoding(ds, self.source.template) if self.keep_encoding else {}
            with dask.config.set(scheduler="synchronous"):
                ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
            with xr.open_dataset(tmp, engine="h5netcdf") as back:
                self._encodings = {v: {k: e for k, e in back[v].encoding.items() if k in _VALUE_ENCODING_KEYS}
                                   for v in self.source.variables}
                self._dims = {v: back[v].dims for v in self.source.variables}
            self._file = h5netcdf.File(tmp, "r+")
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def write(self, start: int, values: np.ndarray) -> None:
        """Store ``values`` ``[rows, N, C]`` (``[len(stats), rows, N, C]`` with stats) at steps
        ``[start, start + rows)``; NaN is written as missing."""
        import xarray as xr

        src = self.source
        H, W = src.spatial.shape
        v = np.asarray(values)
        lead = (len(self.stats),) if self.stats else ()
        rows = v.shape[len(lead)] if v.ndim == len(lead) + 3 else -1
        if v.shape != lead + (rows, H * W, len(src.variables)) or start < 0 or start + rows > src.shape[0]:
            raise DataError(f"a block of steps [{start}, {start} + rows) must be {list(lead)} + [rows, {H * W}, "
                            f"{len(src.variables)}] inside the {src.shape[0]} steps, got shape {v.shape}")
        dims = (("stat",) if self.stats else ()) + tuple(src.spatial.dims)
        for c, name in enumerate(src.variables):
            block = v[..., c].reshape(lead + (rows, H, W)).astype(src.template[name].dtype, copy=False)
            var = xr.Variable(dims, block, encoding=dict(self._encodings[name])).transpose(*self._dims[name])
            stored = xr.conventions.encode_cf_variable(var, name=name)
            index = tuple(slice(start, start + rows) if d == src.time_dim else slice(None) for d in var.dims)
            self._file.variables[name][index] = np.asarray(stored.values)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            atomic.__exit__(exc_type, exc, tb)  # renames into place, or removes on an error


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
