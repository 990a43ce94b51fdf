"""Pandas frequencies -> the equivalent period frequency (GluonTS indexes forecasts by ``pd.Period``).

Many offsets have no period alias: ``pd.Period(ts, freq="MS")`` raises ``MS is not
supported as period frequency``, and so do ``ME``, ``QS``, ``YS``, ``BMS``, ``BQS``,
... A period stands for a whole span (a month, a quarter), so an offset anchored at the
start, at the end or at a business day of that span maps to the same period frequency:

============================================  ==========================
offset (any multiple ``n``)                   period frequency
============================================  ==========================
``MS``, ``ME``, ``BMS``, ``BME``, ``CBMS``,   ``M``
``CBME``
``QS-<m>``, ``BQS-<m>`` (quarters from m)     ``Q-<month before m>``
``QE-<m>``, ``BQE-<m>`` (quarters to m)       ``Q-<m>``
``YS-<m>``/``AS-<m>``, ``BYS-<m>``            ``Y-<month before m>``
``YE-<m>``, ``BYE-<m>``                       ``Y-<m>``
``W-<day>`` (``W`` = ``W-SUN``)               ``W-<day>``
``B``; ``C`` with no holidays, Mon-Fri        ``B``
``D``, ``h``, ``min``, ``s``, ``ms``, ...     the same
============================================  ==========================

Every timestamp of a ``pd.date_range(start, periods=H, freq=f)`` then lies in the
matching period of ``pd.period_range(pd.Period(start, period_freq(f)), periods=H)``.
Offsets no period can represent (semi-month ``SMS``/``SME``, week of month ``WOM``,
business hours ``bh``, custom holiday calendars, ``Easter``, 52-53 week years) raise a
:class:`~tsdiff.errors.DataError`.
"""

from __future__ import annotations

import warnings

import pandas as pd
from pandas.tseries import offsets as po

from tsdiff.errors import DataError

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_MONTHLY = tuple(getattr(po, name) for name in ("MonthBegin", "MonthEnd", "BusinessMonthBegin", "BusinessMonthEnd",
                                                "CustomBusinessMonthBegin", "CustomBusinessMonthEnd")
                 if hasattr(po, name))


def _to_offset(freq) -> pd.DateOffset:
    try:
        with warnings.catch_warnings():  # a deprecated alias ('AS', 'H') still names its offset
            warnings.simplefilter("ignore", FutureWarning)
            return pd.tseries.frequencies.to_offset(freq)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{freq!r} is not a pandas frequency ({exc})") from None


def period_freq(freq) -> str:
    """The period frequency equivalent to the pandas frequency ``freq`` (alias or offset); see the module."""
    if freq is None:
        raise DataError("the frequency of the data is unknown (irregular timestamps?); pass freq= when you "
                        "build the forecaster or the data")
    off = _to_offset(freq)
    n = off.n
    if n < 1:
        raise DataError(f"frequency {freq!r} goes backwards; GluonTS periods need a positive step")
    if isinstance(off, po.Tick):  # D, h, min, s, ms, us, ns: already period frequencies
        return off.freqstr
    if isinstance(off, _MONTHLY):
        base = "M"
    elif isinstance(off, (po.QuarterBegin, po.BQuarterBegin)):
        base = f"Q-{_MONTHS[(off.startingMonth - 2) % 12]}"
    elif isinstance(off, (po.QuarterEnd, po.BQuarterEnd)):
        base = f"Q-{_MONTHS[(off.startingMonth - 1) % 12]}"
    elif isinstance(off, (po.YearBegin, po.BYearBegin)):
        base = f"Y-{_MONTHS[(off.month - 2) % 12]}"
    elif isinstance(off, (po.YearEnd, po.BYearEnd)):
        base = f"Y-{_MONTHS[(off.month - 1) % 12]}"
    elif isinstance(off, po.Week):
        base = f"W-{_DAYS[6 if off.weekday is None else off.weekday]}"
    elif isinstance(off, po.BusinessDay) and not isinstance(off, po.CustomBusinessDay) and not off.offset:
        base = "B"
    elif isinstance(off, po.CustomBusinessDay) and not off.offset and not len(off.holidays) \
            and off.weekmask == "Mon Tue Wed Thu Fri":
        base = "B"
    else:
        raise DataError(f"frequency {getattr(off, 'freqstr', freq)!r} has no pandas period equivalent, so it "
                        "cannot index a GluonTS forecast; resample the data to a calendar frequency "
                        "(e.g. 'D', 'W-SUN', 'MS', 'h') first")
    return base if n == 1 else f"{n}{base}"


def to_period(timestamp, freq) -> pd.Period:
    """``timestamp`` as a ``pd.Period`` of :func:`period_freq` ``(freq)`` (GluonTS' ``start``)."""
    pf = period_freq(freq)
    with warnings.catch_warnings():  # pandas 2.x deprecates business-day periods; GluonTS still uses them
        warnings.filterwarnings("ignore", message=".*Period with BDay freq.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*PeriodDtype\\[B\\].*", category=FutureWarning)
        return pd.Period(timestamp, freq=pf)


def steps_between(origin, timestamp, freq) -> int:
    """How many steps of ``freq`` lead from ``origin`` to ``timestamp`` (negative before it): the
    position of ``timestamp`` in a series of that frequency starting at ``origin``."""
    origin, timestamp = pd.Timestamp(origin), pd.Timestamp(timestamp)
    if timestamp >= origin:
        return len(pd.date_range(origin, timestamp, freq=freq)) - 1
    return -(len(pd.date_range(timestamp, origin, freq=freq)) - 1)
