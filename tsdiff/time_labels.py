"""The first column of a user's CSV table: timestamps, a step counter, or plain row labels.

Rules (``tsdiff impute`` / ``tsdiff forecast``):

- Numbers (``0, 1, 2`` or epoch seconds ``1700000000``) are a step counter, never nanoseconds
  since 1970; ``time_unit`` (``s``, ``ms``, ``us``, ``ns``, ``m``, ``h``, ``D``) reads them as
  epoch times instead.
- ``dd/mm/yyyy`` versus ``mm/dd/yyyy`` (also with ``-`` or ``.``): read month-first unless
  ``dayfirst``; a date that only works the other way round, or a column where both ways work
  and give different dates, is an error that says which option to pass.
- Timestamps with UTC offsets are read as instants, also when the offset changes (daylight
  saving time, ``+01:00`` then ``+02:00``); mixing timestamps with and without an offset is an error.
- ``date_format`` (a ``strftime`` format such as ``%d.%m.%Y %H:%M``) reads exactly that format.
- Anything else is a plain row label (imputation only needs the row order).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsdiff.errors import ConfigError, DataError

TIME_UNITS = ("D", "h", "m", "s", "ms", "us", "ns")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DMY = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})((?:[ T].*)?)")
_OFFSET = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$")


@dataclass
class TimeAxis:
    """``index``: DatetimeIndex (kind ``"datetime"``, tz-aware for labels with offsets), numeric
    Index (``"steps"``) or the labels (``"labels"``, with ``reason`` why they are not times).
    ``tz``: the offset to show new timestamps in (that of the last label), or None."""

    index: pd.Index
    kind: str
    reason: str | None = None
    tz: object = None


def _at(labels, lines, i) -> str:
    return f"{labels[i]!r} (line {lines[i]})" if lines is not None else repr(labels[i])


def parse_time_labels(labels: list[str], where: str, *, name=None, lines: list[int] | None = None,
                      dayfirst: bool = False, date_format: str | None = None, time_unit: str | None = None,
                      strict: bool = False) -> TimeAxis:
    """Read a table's first column (see the module's docstring).

    Args:
        labels: the cells' texts (unquoted, stripped); ``lines``: their line numbers, for messages.
        strict: raise on dates read ambiguously or inconsistently (forecasting needs the times);
            otherwise such a column is returned as plain labels.
    Raises:
        ConfigError: ``time_unit`` / ``date_format`` that do not fit the column.
        DataError: (``strict``, or with an explicit option) dates that cannot be read as asked.
    """
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise ConfigError(f"--time-unit must be one of {', '.join(TIME_UNITS)}, got {time_unit!r}")
    empty = [i for i, x in enumerate(labels) if not x]
    if empty:
        if date_format or time_unit:
            raise DataError(f"{where}: the row on line {lines[empty[0]] if lines else '?'} has no time label; "
                            "fill it in or remove the row")
        return TimeAxis(pd.Index(labels, name=name), "labels",
                        f"the row on line {lines[empty[0]] if lines else '?'} has no time label")
    if date_format is not None:
        return _with_format(labels, where, name, lines, date_format)
    if labels and all(_NUMBER.fullmatch(x) for x in labels):
        values = pd.to_numeric(pd.Series(labels))
        if time_unit is None:
            return TimeAxis(pd.Index(values.to_numpy(), name=name), "steps")
        try:
            index = pd.DatetimeIndex(pd.to_datetime(values.to_numpy(), unit=time_unit), name=name)
        except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
            raise DataError(f"{where}: the first column read as epoch times in unit {time_unit!r} is out of range "
                            f"({exc}); check --time-unit") from None
        return TimeAxis(index, "datetime")
    if time_unit is not None:
        bad = next(i for i, x in enumerate(labels) if not _NUMBER.fullmatch(x))
        raise ConfigError(f"--time-unit reads a numeric first column as epoch times, but {where} has "
                          f"{_at(labels, lines, bad)}; drop --time-unit (dates are read as they are)")
    matches = [_DMY.fullmatch(x) for x in labels]
    if labels and all(matches):
        try:
            labels = _day_month(labels, matches, where, lines, dayfirst)
        except DataError as exc:
            if strict or dayfirst:
                raise
            return TimeAxis(pd.Index(labels, name=name), "labels", str(exc))
    return _generic(labels, where, name, lines)


def _day_month(labels, matches, where, lines, dayfirst):
    """``dd/mm/yyyy`` or ``mm/dd/yyyy`` labels rewritten as ``yyyy-mm-dd``, the order checked."""
    a = np.array([int(m.group(1)) for m in matches])
    b = np.array([int(m.group(3)) for m in matches])
    if dayfirst:
        if (b > 12).any():
            i = int(np.argmax(b > 12))
            raise DataError(f"{where}: --dayfirst reads dd/mm/yyyy but {_at(labels, lines, i)} has month {b[i]}; "
                            "drop --dayfirst (the dates are mm/dd/yyyy) or give --date-format")
        day, month = a, b
    elif (a > 12).any():
        i = int(np.argmax(a > 12))
        if (b > 12).any():
            raise DataError(f"{where}: the dates mix day-first and month-first ({_at(labels, lines, i)}); "
                            "write them in one order, or give --date-format")
        raise DataError(f"{where}: dates are read month-first (mm/dd/yyyy) but {_at(labels, lines, i)} has month "
                        f"{a[i]}; if they are day-first (dd/mm/yyyy) pass --dayfirst, or give the format with "
                        "--date-format (e.g. '%d/%m/%Y')")
    elif not (b > 12).any() and (a != b).any():
        i = int(np.argmax(a != b))
        raise DataError(f"{where}: the dates are ambiguous: {_at(labels, lines, i)} is month {a[i]} day {b[i]} "
                        f"read month-first but day {a[i]} of month {b[i]} read day-first; pass --dayfirst for "
                        "dd/mm/yyyy, or --date-format '%m/%d/%Y' for mm/dd/yyyy")
    else:
        month, day = a, b
    out = []
    for m, d, mo in zip(matches, day, month):
        year = m.group(4)
        if len(year) == 2:
            year = ("20" if int(year) < 69 else "19") + year  # as strptime's %y
        out.append(f"{year}-{mo:02d}-{d:02d}{m.group(5)}")
    return out


def _first_bad(labels, parse) -> int:
    for i, x in enumerate(labels):
        try:
            parse(x)
        except (ValueError, TypeError, OverflowError):
            return i
    return 0


def _with_format(labels, where, name, lines, fmt) -> TimeAxis:
    def parse(values, utc=False):
        return pd.to_datetime(values, format=fmt, utc=utc)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            index = parse(labels)
    except FutureWarning:
        return _aware(labels, where, name, lines, parse)
    except (ValueError, TypeError, OverflowError):
        i = _first_bad(labels, lambda x: parse([x]))
        raise DataError(f"{where}: {_at(labels, lines, i)} does not match --date-format {fmt!r}; "
                        "fix the format (strftime codes such as %d/%m/%Y %H:%M)") from None
    return _finish(index, labels, name)


def _generic(labels, where, name, lines) -> TimeAxis:
    def parse(values, utc=False):
        return pd.to_datetime(values, format="mixed", utc=utc)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            index = parse(labels)
        if not isinstance(index, pd.DatetimeIndex):
            raise TypeError("not one kind of timestamp")
    except FutureWarning:  # offsets change (daylight saving time): read as instants
        return _aware(labels, where, name, lines, parse)
    except (ValueError, TypeError, OverflowError) as exc:
        if "tz-aware" in str(exc) or "tz-naive" in str(exc) or "utc=True" in str(exc):
            return _aware(labels, where, name, lines, parse)
        i = _first_bad(labels, lambda x: parse([x]))
        return TimeAxis(pd.Index(labels, name=name), "labels", f"{_at(labels, lines, i)} is not a timestamp")
    return _finish(index, labels, name)


def _aware(labels, where, name, lines, parse) -> TimeAxis:
    """Timestamps with UTC offsets that change: all must carry one (else the naive ones would be UTC)."""
    has = [bool(_OFFSET.search(x)) for x in labels]
    if not all(has):
        i = has.index(False)
        j = has.index(True)
        raise DataError(f"{where}: {_at(labels, lines, j)} has a UTC offset but {_at(labels, lines, i)} has none; "
                        "give every timestamp its offset, or none")
    try:
        index = parse(labels, utc=True)
        tz = parse(labels[-1:]).tz  # new times are shown with the last label's offset
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{where}: cannot read the timestamps with UTC offsets ({exc})") from None
    return _finish(index, labels, name, tz)


def _finish(index, labels, name, tz=None) -> TimeAxis:
    index = pd.DatetimeIndex(index, name=name)
    return TimeAxis(index, "datetime", tz=tz if tz is not None else index.tz)
