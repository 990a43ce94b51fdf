"""ETTh1: hourly Electricity Transformer Temperature (Zhou et al. 2021, Informer).

The file ``ETTh1.csv`` has a ``date`` column and 7 variables (HUFL, HULL, MUFL,
MULL, LUFL, LULL, OT), 17420 hourly rows from 2016-07-01 00:00. The standard split
(Informer's ``Dataset_ETT_hour``) uses 12/4/4 months of 30 days: train
``[0, 8640)``, validation ``[8640, 11520)``, test ``[11520, 14400)``; the remaining
rows are unused. Validation / test windows may take their context from the block
before them.

Protocol ``etth1`` (PROTOCOLS.md, protocol 6): context 96, horizon 24; training windows
inside the training block; test windows at every step of the test block (2857);
validation windows every ``val_stride`` steps. Values are z-scored per variable with
training statistics, and metrics are on that scale (``metric_space="scaled"``, as
Informer and its successors report MSE / MAE), unless ``metric_space="data"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.forecasting import build_forecasting_protocol
from tsdiff.data.protocol import DATASETS, Protocol
from tsdiff.data.series import Series
from tsdiff.data.datasets.base import DataFile, DatasetSpec, checksums, locate_files
from tsdiff.data.splits import ForecastSplit, forecast_starts, rolling_cutoffs
from tsdiff.errors import ConfigError, DataError

SPEC = DatasetSpec(
    name="etth1",
    folder="ett",
    files=(DataFile("ETTh1.csv", "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"),),
    source="https://github.com/zhouhaoyi/ETDataset (ETT-small/ETTh1.csv)",
    licence="CC BY-ND 4.0 (read unmodified)",
    description="ETTh1, 17420 hourly rows x 7 variables, 2016-07-01 .. 2018-06-26",
    card="etth1.md",
)

#: Informer's borders in hours: 12 months train, 4 validation, 4 test (30-day months).
ETT_HOUR_BORDERS = (0, 12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24)


def read_ett_csv(path) -> Series:
    """Read an ETT csv (``date`` + variables) as Series ``[T, 1, C]`` (one transformer, C variables)."""
    df = pd.read_csv(path)
    if "date" not in df.columns:
        raise DataError(f"{path}: ETT files need a 'date' column, found {list(df.columns)[:5]}")
    index = pd.DatetimeIndex(pd.to_datetime(df.pop("date")), name="date")
    values = df.to_numpy(dtype=np.float64)
    return Series(values[:, None, :], index, ["ETTh1"], list(df.columns), attrs={"dataset": "etth1", "freq": "h"})


def load_etth1(data_dir=None) -> Series:
    """ETTh1 as Series ``[17420, 1, 7]`` (channels HUFL..OT); checksums in ``attrs``."""
    paths = locate_files(SPEC, data_dir)
    sums = checksums(SPEC, paths)
    series = read_ett_csv(paths["ETTh1.csv"])
    series.attrs["checksums"] = sums
    return series


def etth1_split(series: Series, horizon: int = 24, stride: int = 1) -> ForecastSplit:
    """The 12/4/4-month split with rolling test windows over ``[11520, 14400)``.

    Returns:
        ForecastSplit with ``train_end = 8640``, ``val_end = 11520`` and cutoffs
        ``11520, 11520 + stride, ...`` for every window of ``horizon`` steps inside the
        test block (2857 windows for horizon 24, stride 1).
    """
    _, train_end, val_end, test_end = ETT_HOUR_BORDERS
    if series.shape[0] < test_end:
        raise DataError(f"ETTh1 split needs {test_end} steps, the series has {series.shape[0]}")
    n = (test_end - val_end - horizon) // stride + 1
    return ForecastSplit(series, train_end, horizon, rolling_cutoffs(val_end, n, horizon, stride), val_end=val_end)


@DATASETS.register("etth1")
def etth1_protocol(data_dir=None, context: int = 96, horizon: int = 24, test_stride: int = 1, val_stride: int = 24,
                   metric_space: str = "scaled") -> Protocol:
    """ETTh1 forecasting on the 12/4/4-month split (PROTOCOLS.md, protocol 6; see the module docstring).

    Window k of a split covers ``[c_k - context, c_k + horizon)`` and scores the horizon.
    """
    for key, val in dict(context=context, horizon=horizon, test_stride=test_stride, val_stride=val_stride).items():
        if not isinstance(val, int) or val < 1:
            raise ConfigError(f"data.options.{key} must be an integer >= 1, got {val!r}")
    if metric_space not in ("scaled", "data"):
        raise ConfigError(f"data.options.metric_space must be 'scaled' or 'data', got {metric_space!r}")
    series = load_etth1(data_dir)
    _, train_end, val_end, test_end = ETT_HOUR_BORDERS
    if context > train_end - horizon:
        raise ConfigError(f"context {context} + horizon {horizon} do not fit in the {train_end} training hours")
    test = etth1_split(series, horizon, test_stride).test_cutoffs
    val = np.arange(train_end, val_end - horizon + 1, val_stride, dtype=np.int64)
    protocol = build_forecasting_protocol(
        f"etth1-informer-c{context}-h{horizon}-s{test_stride}", series, context, horizon,
        forecast_starts(train_end, context, horizon), val - context, test - context,
        checksums=series.attrs.get("checksums", {}),
        meta={"borders": list(ETT_HOUR_BORDERS), "test_stride": test_stride, "val_stride": val_stride},
    )
    protocol.metric_space = metric_space
    return protocol
