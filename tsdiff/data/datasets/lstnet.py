"""LSTNet text files (exchange rate, electricity, traffic, solar) and GluonTS's splits of them.

Format (Lai et al. 2018, github laiguokun/multivariate-time-series-data): one row
per time step, one comma-separated column per series, no header, no timestamps;
optionally gzip-compressed. The time index is implied by the dataset's documented
start and frequency (:data:`LSTNET_CALENDARS`, the values GluonTS uses).

Only the exchange-rate file is small enough to mirror; electricity (26304 x 321,
hourly), traffic (17544 x 862, hourly) and solar (52560 x 137, 10 minutes, summed to
8760 hours as GluonTS does) are read from the same format when a user puts them in
the data directory. Every set uses GluonTS's LSTNet recipe
(``gluonts.dataset.repository._lstnet``): the step at ``int(0.8 * T)`` is the last
training step, then ``rolling_evaluations`` test windows of ``prediction_length``
steps follow (:func:`lstnet_rolling_split`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsdiff.data.series import Series
from tsdiff.data.datasets.base import DataFile, DatasetSpec, checksums, locate_files
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


def lstnet_rolling_split(series: Series, prediction_length: int, rolling_evaluations: int) -> ForecastSplit:
    """GluonTS's split of an LSTNet series: ``int(0.8 * T) + 1`` training steps, then
    ``rolling_evaluations`` test windows of ``prediction_length`` steps.

    Test window i predicts steps ``[train_end + i * H, train_end + (i + 1) * H)`` from
    everything before it.

    Raises:
        DataError: the test windows do not fit in the series.
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
    return lstnet_rolling_split(series, prediction_length, rolling_evaluations)


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


LSTNET_ROOT = "https://github.com/laiguokun/multivariate-time-series-data"


@dataclass(frozen=True)
class LstnetInfo:
    """One large LSTNet file: its spec, shape, GluonTS horizon / rolling windows, aggregation."""

    spec: DatasetSpec
    shape: tuple[int, int]
    prediction_length: int
    rolling_evaluations: int
    agg_freq: str | None = None


#: The large LSTNet sets (not mirrored; same format as the exchange-rate file).
LSTNET_LARGE: dict[str, LstnetInfo] = {
    "electricity": LstnetInfo(DatasetSpec(
        "electricity", "electricity", (DataFile("electricity.txt.gz"),),
        f"{LSTNET_ROOT} (electricity/electricity.txt.gz); original: UCI ElectricityLoadDiagrams20112014",
        "as published with LSTNet; original UCI data CC BY 4.0",
        "electricity use of 321 clients, 26304 hourly steps from 2012-01-01 (kWh)", "electricity.md",
    ), (26304, 321), 24, 7),
    "traffic": LstnetInfo(DatasetSpec(
        "traffic", "traffic", (DataFile("traffic.txt.gz"),),
        f"{LSTNET_ROOT} (traffic/traffic.txt.gz); original: Caltrans PeMS via UCI PEMS-SF",
        "as published with LSTNet; original Caltrans PeMS data",
        "road occupancy rates of 862 San Francisco Bay sensors, 17544 hourly steps from 2015-01-01",
        "traffic.md",
    ), (17544, 862), 24, 7),
    "solar": LstnetInfo(DatasetSpec(
        "solar", "solar", (DataFile("solar_AL.txt.gz"),),
        f"{LSTNET_ROOT} (solar-energy/solar_AL.txt.gz); original: NREL Solar Power Data for Integration Studies",
        "as published with LSTNet; original NREL data",
        "solar power of 137 Alabama plants, 52560 steps of 10 min in 2006 (MW), summed to 8760 hours",
        "solar.md",
    ), (52560, 137), 24, 7, "1h"),
}


def aggregate(series: Series, freq: str) -> Series:
    """Sum a Series ``[T, N, C]`` into periods of ``freq`` (labelled by their start).

    A period whose values are all missing stays NaN (the LSTNet files have none).
    """
    flat = pd.DataFrame(series.values.reshape(series.shape[0], -1), index=series.time_index)
    out = flat.resample(freq, closed="left", label="left").sum(min_count=1)
    _, N, C = series.shape
    attrs = {**series.attrs, "freq": freq, "aggregated_from": series.attrs.get("freq")}
    return Series(out.to_numpy().reshape(len(out), N, C), pd.DatetimeIndex(out.index, name=series.time_index.name),
                  list(series.node_names), list(series.channel_names), series.spatial, attrs)


def load_lstnet(name: str, data_dir=None, check_shape: bool = True) -> Series:
    """A large LSTNet set (``electricity``, ``traffic`` or ``solar``) as Series ``[T, N, 1]``.

    Solar is summed from 10 minutes to hours, as GluonTS does. ``attrs["checksums"]``
    holds the SHA-256 of the file (no published checksum exists to compare with).

    Args:
        check_shape: refuse a file whose shape differs from the published one.
    """
    if name not in LSTNET_LARGE:
        raise ConfigError(f"unknown LSTNet dataset {name!r}; valid: {', '.join(LSTNET_LARGE)}")
    info = LSTNET_LARGE[name]
    paths = locate_files(info.spec, data_dir)
    sums = checksums(info.spec, paths)
    series = read_lstnet_text(paths[info.spec.files[0].name], name,
                              expected_shape=info.shape if check_shape else None)
    if info.agg_freq:
        series = aggregate(series, info.agg_freq)
    series.attrs["checksums"] = sums
    return series


def _lstnet_protocol(name: str):
    info = LSTNET_LARGE[name]

    def protocol(data_dir=None, context: int = info.prediction_length,
                 prediction_length: int = info.prediction_length,
                 rolling_evaluations: int = info.rolling_evaluations,
                 valid_windows: int = info.rolling_evaluations, train_stride: int = 1) -> Protocol:
        series = load_lstnet(name, data_dir)
        split = lstnet_rolling_split(series, prediction_length, rolling_evaluations)
        return forecasting_protocol(
            f"{name}-gluonts-c{context}-h{prediction_length}", split, context, valid_windows=valid_windows,
            train_stride=train_stride, checksums=series.attrs.get("checksums", {}),
        )

    protocol.__name__ = f"{name}_protocol"
    protocol.__doc__ = (
        f"{name} forecasting with GluonTS's LSTNet split: {info.rolling_evaluations} rolling test windows of "
        f"{info.prediction_length} steps after the first 80% (see the module docstring)."
    )
    return protocol


for _name in LSTNET_LARGE:
    DATASETS.add(_name, _lstnet_protocol(_name))
