"""Users' files for ``tsdiff impute`` / ``tsdiff forecast``: CSV tables and netCDF grids.

Imputed CSV files keep the input's bytes: the header, the index column and every
observed cell are written with their original text (quotes, spaces), with the input's
separator, line endings, comment lines, encoding and byte-order mark
(:mod:`tsdiff.csv_dialect`); only missing cells get a value (``repr`` of the float,
which reads back to the same float). The first column is read by
:mod:`tsdiff.time_labels` (timestamps, step numbers or plain labels). Imputed netCDF
files keep the coordinates, attributes and encoding of the input; observed values are
copied, never recomputed.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tsdiff.csv_dialect import (InputWarning, Record, cell_spans, decode, quote_cell, record_texts, sniff_delimiter,
                                split_records)
from tsdiff.errors import ConfigError, DataError
from tsdiff.time_labels import TimeAxis, parse_time_labels

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


#: cell texts read as missing (pandas' default NA strings)
NA_TEXTS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                      "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


@dataclass
class CsvTable:
    """A CSV table as read by :func:`read_csv_table`.

    ``frame``: float64 ``[T, F]`` (NaN = missing) on ``axis.index``; ``labels``: the first
    column's texts; ``rows``: the data records (:class:`~tsdiff.csv_dialect.Record`) of ``text``,
    which, with ``encoding``, ``bom`` and ``delimiter``, lets :func:`write_imputed_csv` copy the file.
    """

    path: Path
    frame: pd.DataFrame
    axis: TimeAxis
    labels: list[str]
    text: str
    encoding: str
    bom: bytes
    delimiter: str
    records: list[Record]
    rows: list[Record]
    ignored: set = field(default_factory=set)
    #: the decimal mark of the numbers: "." or "," (European CSVs, ``--decimal ,``)
    decimal: str = "."

    def number(self, value: float) -> str:
        """``value`` as this table writes numbers (shortest round-trip text, its decimal mark)."""
        text = repr(float(value))
        return text.replace(".", ",") if self.decimal == "," else text

    @property
    def lineterminator(self) -> str:
        ends = [self.text[r.end: r.stop] for r in self.records if r.stop > r.end]
        return max(set(ends), key=ends.count) if ends else "\n"

    def encode(self, text: str) -> bytes:
        return self.bom + text.encode(self.encoding)


def _beyond_float64(text: str) -> bool:
    """A number written out (``1e400``) that float64 cannot hold (Python reads it as inf)."""
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+|[+-]?\d{309,}(\.\d*)?", text):
        return False
    return math.isinf(float(text))


def _unique(names: list[str]) -> list[str]:
    """Column names as pandas makes them: an empty one is ``Unnamed: i``, repeats get ``.1``, ``.2``."""
    seen: set[str] = set()
    out = []
    for i, name in enumerate(names):
        name = name or f"Unnamed: {i + 1}"
        new, k = name, 0
        while new in seen:
            k += 1
            new = f"{name}.{k}"
        seen.add(new)
        out.append(new)
    return out


_LABEL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|\d{1,4}([-/.])\d{1,2}\3\d{1,4}([ T].*)?")


def _is_number(x: str) -> bool:
    try:
        float(x)
    except ValueError:
        return False
    return "_" not in x


def _looks_like_data(cells: list[str]) -> bool:
    """A row whose first cell is a number or a date and whose other cells are numbers (at least
    one) or missing: a row of values, not a header or a comment."""
    values = cells[1:]
    return (bool(_LABEL.fullmatch(cells[0])) and all(x in NA_TEXTS or _is_number(x) for x in values)
            and any(x not in NA_TEXTS for x in values))


def _warn_hidden_data(text: str, records: list[Record], header: Record, names: list[str], delimiter: str,
                      where: str) -> None:
    """Warn about rows of values that are read as something else: a header that looks like data
    (a file without a header line, or whose header starts with '#'), and '#' lines after the
    header that look like rows (a time label starting with '#'). Both are copied unchanged."""
    width = len(names)
    if _looks_like_data(names):
        before = [r for r in records if r.skipped and r.stop <= header.start and text[r.start: r.end].strip()]
        commented = before and len(text[before[-1].start: before[-1].end].split(delimiter)) == width
        hint = (f" (line {before[-1].line} starts with '#' and so is a comment line: if it is the header, remove "
                "the '#')") if commented else " (the first line must name the columns: add a header line such as " \
            "'time,a,b')"
        shown = text[header.start: header.end][:60]
        warnings.warn(f"{where}: the header, line {header.line}, looks like a row of values ({shown!r}){hint}; it is "
                      "read as the column names, copied unchanged and not imputed", InputWarning, stacklevel=3)
    hidden = []
    for r in records:
        raw = text[r.start: r.end].strip()
        if r.skipped and r.start > header.start and raw.startswith("#"):
            cells = [x.strip() for x in raw[1:].split(delimiter)]
            if len(cells) == width and _looks_like_data(cells):
                hidden.append(r.line)
    if hidden:
        warnings.warn(f"{where}: line(s) {', '.join(map(str, hidden[:5]))}{', ...' if len(hidden) > 5 else ''} "
                      "start with '#' and so are comment lines, although they look like rows of values; they are "
                      "copied unchanged and not imputed. Quote such a time label (\"#5\") to read the row",
                      InputWarning, stacklevel=3)


def read_csv_table(path: str | os.PathLike, *, encoding: str | None = None, sep: str | None = None,
                   dayfirst: bool = False, date_format: str | None = None, time_unit: str | None = None,
                   strict_time: bool = False, decimal: str | None = None) -> CsvTable:
    """Read a CSV table: first column = time (or any row label), the rest numeric.

    The encoding, separator, quoting, line endings and ``#`` comment lines are detected
    (:mod:`tsdiff.csv_dialect`), the first column is read by
    :func:`~tsdiff.time_labels.parse_time_labels` (``dayfirst``, ``date_format``,
    ``time_unit``, ``strict_time``). Rows of separators only (``,,,``) are ignored with an
    :class:`~tsdiff.csv_dialect.InputWarning`; so is a header, or a ``#`` comment line, that
    looks like a row of values (a file without a header, a commented-out header, a time label
    starting with ``#``) warned about. ``decimal=","`` reads numbers written with a decimal
    comma (``1,5``; the separator must then be another character), and the outputs keep it.

    Raises:
        DataError: no data rows, a non-numeric column or an infinite value (naming the column, the
            value and its line), ragged rows, undecodable text, unreadable dates (with
            ``strict_time`` or an explicit option).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {str(path)!r} does not exist" if not path.is_dir() else
                        f"input {str(path)!r} is a directory; give a CSV file")
    where = str(path)
    text, enc, bom, note = decode(path.read_bytes(), where, encoding)
    if note:
        warnings.warn(note, InputWarning, stacklevel=2)
    if decimal not in (None, ".", ","):
        raise ConfigError(f"decimal must be '.' or ',', got {decimal!r}")
    decimal = decimal or "."
    delimiter = sniff_delimiter(text, where, sep)
    if decimal == "," and delimiter == ",":
        raise DataError(f"{where}: with decimal commas the separator cannot be ',' too (separator read: ','); "
                        "pass --sep ';' (or tab) if the file uses another one")
    records = split_records(text, delimiter, where)
    table = [r for r in records if not r.skipped]
    texts = {id(r): record_texts(text, r, delimiter) for r in table}
    if len(table) < 2 or len(texts[id(table[0])]) < 2:
        shown = "tab" if delimiter == "\t" else repr(delimiter)
        raise DataError(f"{where}: the table is empty; expected a header and at least one row of "
                        f"'time,series1,series2,...' (separator read: {shown}; pass --sep if it is another)")
    header, width = table[0], len(texts[id(table[0])])
    ignored = {id(r) for r in table[1:] if not any(texts[id(r)])}
    rows = [r for r in table[1:] if id(r) not in ignored]
    if ignored:
        lines = [r.line for r in table[1:] if id(r) in ignored]
        warnings.warn(f"{where}: ignored {len(lines)} row(s) of separators only (line(s) "
                      f"{', '.join(map(str, lines[:5]))}{', ...' if len(lines) > 5 else ''}); they are left out "
                      "of the output", InputWarning, stacklevel=2)
    if not rows:
        raise DataError(f"{where}: the table is empty; expected a header and at least one row of values")
    for r in rows:
        if len(texts[id(r)]) != width:
            hint = (f" (the header, line {header.line}, is a row of separators only: write the column names there, "
                    "or delete it)") if not any(texts[id(header)]) else ""
            raise DataError(f"{where}: line {r.line} has {len(texts[id(r)])} cells but the header has {width}{hint}; "
                            "every row needs a time label and one cell per column (empty cells are missing)")
    names = texts[id(header)]
    _warn_hidden_data(text, records, header, names, delimiter, where)
    columns = _unique(names[1:])
    renamed = [f"{n!r} -> {c!r}" if n else f"(empty) -> {c!r}" for n, c in zip(names[1:], columns) if n != c]
    if renamed:
        warnings.warn(f"{where}: the header repeats or leaves out column names; tsdiff calls them "
                      f"{', '.join(renamed[:5])}{', ...' if len(renamed) > 5 else ''} (in a forecast's columns and a "
                      "saved model; an imputed CSV keeps the header as it is)", InputWarning, stacklevel=2)
    labels = [texts[id(r)][0] for r in rows]
    by_column = list(zip(*(texts[id(r)][1:] for r in rows)))
    values = np.empty((len(rows), len(columns)), dtype=np.float64)
    for f, col in enumerate(columns):
        cells = pd.Series(by_column[f], dtype=object)
        na = cells.isin(NA_TEXTS).to_numpy()
        if decimal == ",":
            cells = cells.str.replace(",", ".", regex=False)
        num = pd.to_numeric(cells.where(~na), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(np.isnan(num) & ~na | cells.str.contains("_", regex=False).to_numpy())
        if len(bad):
            value = by_column[f][bad[0]]
            number = value.strip().strip('"')
            if _beyond_float64(number.replace(",", ".") if decimal == "," else number):
                raise DataError(f"{where}: column {col!r} holds a number beyond the float64 range (about 1.8e308), "
                                f"{value!r} at line {rows[bad[0]].line}; tsdiff computes in float64: change the unit "
                                "or scale the column")
            hint = (" (a decimal comma? pass --decimal ',')" if decimal == "." and re.fullmatch(r"[+-]?\d+,\d+", value)
                    else "")
            raise DataError(f"{where}: column {col!r} is not numeric (e.g. {value!r} at line {rows[bad[0]].line})"
                            f"{hint}; leave missing cells empty (or NaN / NA), or drop the column")
        inf = np.flatnonzero(np.isinf(num))
        if len(inf):
            raise DataError(f"{where}: column {col!r} holds {len(inf)} infinite value(s) (e.g. "
                            f"{by_column[f][inf[0]]!r} at line {rows[inf[0]].line}); tsdiff needs finite numbers: "
                            "write the value, or leave the cell empty if it is missing")
        values[:, f] = num
    axis = parse_time_labels(labels, where, name=names[0] or None, lines=[r.line for r in rows], dayfirst=dayfirst,
                             date_format=date_format, time_unit=time_unit, strict=strict_time)
    frame = pd.DataFrame(values, index=axis.index, columns=columns)
    from tsdiff.api import check_frame

    check_frame(frame, where)
    return CsvTable(path, frame, axis, labels, text, enc, bom, delimiter, records, rows, ignored, decimal)


def write_imputed_csv(path: str | os.PathLike, table: CsvTable, filled: np.ndarray, missing: np.ndarray) -> Path:
    """Write the input's text with only the missing cells replaced by ``repr(value)``.

    Everything else (header, labels, observed cells with their quotes and spaces, comment and
    blank lines, line endings, byte-order mark, encoding) is copied byte for byte; rows of
    separators only are left out.

    Args:
        filled: float ``[T, F]``; only entries under ``missing`` (bool ``[T, F]``) are used.
    """
    from tsdiff.io import atomic_write

    text = table.text
    new = {id(r): t for t, r in enumerate(table.rows)}
    parts, pos = [], 0
    for r in table.records:
        if r.skipped or id(r) not in new and id(r) not in table.ignored:
            continue  # kept as is
        parts.append(text[pos: r.start])
        pos = r.stop
        if id(r) in table.ignored:
            continue
        t, a = new[id(r)], r.start
        gaps = np.flatnonzero(missing[t])
        spans = cell_spans(text, r, table.delimiter) if len(gaps) else []
        for f in gaps:
            s, e = spans[f + 1]
            parts += [text[a:s], table.number(filled[t, f])]
            a = e
        parts.append(text[a: r.stop])
    parts.append(text[pos:])
    data = table.encode("".join(parts))
    return atomic_write(path, lambda fh: fh.write(data))


def write_table_like(path: str | os.PathLike, table: CsvTable, frame: pd.DataFrame) -> Path:
    """Write a new table (e.g. imputation uncertainty) in ``table``'s dialect: its separator,
    line ending, encoding and byte-order mark."""
    from tsdiff.io import atomic_write

    eol, d = table.lineterminator, table.delimiter
    lines = [d.join(quote_cell(str(c), d) for c in frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append(d.join(quote_cell(v if isinstance(v, str) else table.number(v), d) for v in row))
    data = table.encode(eol.join(lines) + eol)
    return atomic_write(path, lambda fh: fh.write(data))


def open_grid(path: str | os.PathLike, lazy: bool = False):
    """Open a netCDF grid: fully into memory (the file is closed afterwards), or with ``lazy``
    as a dask-backed dataset that reads only what is asked for (close it when done)."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {str(path)!r} does not exist")
    try:
        _check_exact_grid(path)
        if lazy:
            from tsdiff.data.adapters.grid import open_lazy_dataset

            return open_lazy_dataset(path)
        with xr.open_dataset(path) as ds:
            return ds.load()
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable netCDF file ({exc})") from None


def _check_exact_grid(path: Path) -> None:
    """Refuse 64-bit integer variables holding values float64 cannot hold exactly (above 2**53):
    xarray reads them as float64, so an imputed grid would write back changed observed values.
    Read a block of time steps at a time (the fill value is not a value)."""
    import xarray as xr

    from tsdiff.validation import check_exact

    with xr.open_dataset(path, mask_and_scale=False, decode_times=False, decode_timedelta=False) as raw:
        for name, var in raw.data_vars.items():
            if var.dtype.kind not in "iu" or var.dtype.itemsize < 8 or var.ndim == 0:
                continue
            fill = [var.attrs[k] for k in ("_FillValue", "missing_value") if k in var.attrs]
            step = max(1, (16 << 20) // max(1, 8 * var[0].size))
            for a in range(0, var.shape[0], step):
                block = np.asarray(var[a: a + step].values)
                check_exact(block[~np.isin(block, fill)] if fill else block, f"{path}: variable {name!r}")


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


def write_forecast(forecast, path: str | os.PathLike, quantiles=(0.05, 0.1, 0.5, 0.9, 0.95), *, index=None,
                   like: CsvTable | None = None) -> Path:
    """A :class:`~tsdiff.api.Forecast` as CSV (mean + quantile columns ``series:stat``) or netCDF (samples).

    Args:
        index: labels of the future rows instead of ``forecast.index`` (e.g. step numbers).
        like: the input table; a CSV is written in its dialect (separator, line ending, encoding).
    """
    from tsdiff.io import atomic_write

    kind = file_kind(path, "output")
    if kind == "csv":
        df = forecast.to_pandas(quantiles)
        df.columns = [":".join(str(p) for p in c) for c in df.columns]
        if index is not None:
            df.index = pd.Index(index, name=df.index.name)
        if like is not None:
            return write_table_like(path, like, df.reset_index().astype({df.index.name or "index": str}))
        text = df.to_csv(float_format=None)
        return atomic_write(path, lambda fh: fh.write(text), mode="w")
    obj = forecast.to_xarray()
    if index is not None:
        obj = obj.assign_coords({forecast.time_name: list(index)})
    data = obj.to_netcdf()
    return atomic_write(path, lambda fh: fh.write(bytes(data)))
