"""ETTh1: hourly Electricity Transformer Temperature (Zhou et al. 2021, Informer).

The file ``ETTh1.csv`` has a ``date`` column and 7 variables (HUFL, HULL, MUFL,
MULL, LUFL, LULL, OT), 17420 hourly rows from 2016-07-01 00:00. The standard split
(Informer's ``Dataset_ETT_hour``) uses 12/4/4 months of 30 days: train
``[0, 8640)``, validation ``[8640, 11520)``, test ``[11520, 14400)``; the remaining
rows are unused. Validation / test windows may take their context from the block
before them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.series import Series
from tsdiff.data.sources.base import DataFile, DatasetSpec, checksums, locate_files
from tsdiff.data.splits import ForecastSplit, rolling_cutoffs
from tsdiff.errors import DataError

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
