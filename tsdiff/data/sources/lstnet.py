"""LSTNet text files (exchange rate, electricity, traffic, solar) and the
GluonTS ``exchange_rate_nips`` split.

Format (Lai et al. 2018, github laiguokun/multivariate-time-series-data): one row
per time step, one comma-separated column per series, no header, no timestamps;
optionally gzip-compressed. The time index is implied by the dataset's documented
start and frequency (:data:`LSTNET_CALENDARS`, the values GluonTS uses).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from tsdiff.data.series import Series
from tsdiff.data.sources.base import DataFile, DatasetSpec, checksums, locate_files
from tsdiff.data.splits import ForecastSplit
from tsdiff.errors import ConfigError, DataError
from tsdiff.data.forecasting import forecasting_protocol
from tsdiff.data.protocol import DATASETS, Protocol

#: name -> (start, pandas frequency) of each LSTNet file (as in GluonTS's LSTNet recipes).
LSTNET_CALENDARS: dict[str, tuple[str, str]] = {
    "exchange_rate": ("1990-01-01", "B"),
    "electricity": ("2012-01-01", "h"),
    "traffic": ("2015-01-01", "h"),
    "solar": ("2006-01-01", "10min"),
}

SPEC = DatasetSpec(
    name="exchange_rate",
    folder="exchange_rate",
    files=(DataFile("exchange_rate.txt.gz", "6a4fbb561dcdee43f071a83badbeec9223a335552278348656738b556f1c2e9d"),),
    source="https://github.com/laiguokun/multivariate-time-series-data (exchange_rate/exchange_rate.txt.gz)",
    licence="as published with LSTNet",
    description="daily exchange rates of 8 currencies, 7588 business days from 1990-01-01",
    card="exchange_rate.md",
)


def read_lstnet_text(
    path: str | os.PathLike,
    name: str | None = None,
    start: str | None = None,
    freq: str | None = None,
    expected_shape: tuple[int, int] | None = None,
) -> Series:
    """Read an LSTNet text file (``.txt`` or ``.txt.gz``) as a Series ``[T, N, 1]``.

    Args:
        name: a key of :data:`LSTNET_CALENDARS` that supplies ``start``/``freq``;
            explicit ``start``/``freq`` override it.
        expected_shape: ``(T, N)`` the file must have (a check against truncation).
    """
    cal = LSTNET_CALENDARS.get(name or "", (None, None))
    start, freq = start or cal[0], freq or cal[1]
    if start is None or freq is None:
        raise ConfigError(
            f"LSTNet files carry no timestamps: give start= and freq=, or name= one of {sorted(LSTNET_CALENDARS)}"
        )
    try:
        df = pd.read_csv(path, header=None, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: not an LSTNet text file of comma-separated numbers ({exc})") from None
    if expected_shape is not None and df.shape != tuple(expected_shape):
        raise DataError(f"{path}: expected {expected_shape[0]} rows x {expected_shape[1]} series, got {df.shape}")
    index = pd.date_range(start=start, periods=len(df), freq=freq, name="date")
    return Series(
        values=df.to_numpy()[:, :, None],
        time_index=index,
        node_names=[str(i) for i in range(df.shape[1])],
        channel_names=["value"],
        attrs={"dataset": name or os.path.basename(str(path)), "freq": freq},
    )


def load_exchange_rate(data_dir=None) -> Series:
    """The LSTNet exchange-rate file: Series ``[7588, 8, 1]``, business days from 1990-01-01.

    ``series.attrs["checksums"]`` holds the SHA-256 of the file.
    """
    paths = locate_files(SPEC, data_dir)
    sums = checksums(SPEC, paths)
    series = read_lstnet_text(paths["exchange_rate.txt.gz"], "exchange_rate", expected_shape=(7588, 8))
    series.attrs["checksums"] = sums
    return series


def exchange_rate_nips_split(series: Series, prediction_length: int = 30, rolling_evaluations: int = 5) -> ForecastSplit:
    """GluonTS's ``exchange_rate_nips`` split of the exchange-rate series.

    GluonTS takes the step at ``int(0.8 * T)`` as the last training step, so
    training is the first ``int(0.8 * T) + 1`` = 6071 days; test window i predicts
    steps ``[6071 + 30 i, 6071 + 30 (i + 1))`` from everything before it (5 windows).

    Args:
        series: the exchange-rate Series ``[7588, 8, 1]`` (or any LSTNet series).
    Returns:
        a :class:`ForecastSplit` with ``train_end = 6071`` and 5 test cutoffs.
    """
    T = series.shape[0]
    train_end = int(T * 0.8) + 1
    cutoffs = train_end + prediction_length * np.arange(rolling_evaluations)
    if cutoffs[-1] + prediction_length > T:
        raise DataError(
            f"{rolling_evaluations} test windows of {prediction_length} steps after step {train_end} "
            f"need {cutoffs[-1] + prediction_length} steps, the series has {T}"
        )
    return ForecastSplit(series, train_end=train_end, prediction_length=prediction_length, test_cutoffs=cutoffs)


@DATASETS.register("exchange_rate")
def exchange_rate_protocol(data_dir=None, context: int = 30, prediction_length: int = 30,
                           rolling_evaluations: int = 5, valid_windows: int = 5, train_stride: int = 1) -> Protocol:
    """Exchange-rate forecasting with GluonTS's ``exchange_rate_nips`` split (PROTOCOLS.md, 3).

    The 5 test windows forecast 30 business days each, from ``context`` days before
    their cutoff. The last ``valid_windows`` horizons of the 6071 training days are held
    out for model selection. Metrics (CRPS, CRPS-sum) in data units.
    """
    series = load_exchange_rate(data_dir)
    split = exchange_rate_nips_split(series, prediction_length, rolling_evaluations)
    return forecasting_protocol(
        f"exchange_rate-nips-c{context}-h{prediction_length}", split, context, valid_windows=valid_windows,
        train_stride=train_stride, checksums=series.attrs.get("checksums", {}), meta={"units": "exchange rate"},
    )
