"""AQI-36: hourly PM2.5 at 36 Beijing stations (the CSDI / PriSTI / GRIN benchmark).

Protocol (PROTOCOLS.md, protocol 1; CSDI, Tashiro et al. 2021, Sec. 5.1):
test months 3, 6, 9, 12; validation month(s) from the rest (default: month 2);
training on the remaining months. Windows of 36 hours never cross a month boundary;
training windows slide by one hour, validation/test windows do not overlap, so each
held-out value is scored exactly once. Held-out (evaluation) entries are those present
in ``pm25_ground.txt`` and NaN in ``pm25_missing.txt``. Scaling uses per-station
mean/std of the observed training values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.protocol import DATASETS, Protocol, SplitWindows, fit_scaler_on_windows
from tsdiff.data.series import Series
from tsdiff.data.datasets.base import DataFile, DatasetSpec, checksums, locate_files
from tsdiff.data.windows import contiguous_segments, covering_starts, sliding_starts
from tsdiff.errors import ConfigError, DataError

SPEC = DatasetSpec(
    name="aqi36",
    folder="aqi36",
    files=(
        DataFile("pm25_ground.txt", "8f77b738ae4c50621705a308e606e6229564ad7ad20358986bd6031355f0ab5f"),
        DataFile("pm25_missing.txt", "3f991eab5bbc5e644e61360e6b71ce45179c86cf650b3bb9a53771d8f9953fe3"),
        DataFile("pm25_latlng.txt", "a7423dafe4ecdec5ba04b4b6b047a53df1b9c04aed0a2957f1c698761715d7c1"),
    ),
    source=(
        "Microsoft Research STMVL release, https://www.microsoft.com/en-us/research/publication/"
        "st-mvl-filling-missing-values-in-geo-sensory-time-series-data/ "
        "(STMVL-Release.zip, folder Code/STMVL/SampleData/)"
    ),
    licence="research use (STMVL release)",
    description="Beijing PM2.5, 36 stations, hourly, 2014-05-01 01:00 to 2015-04-30 23:00",
    card="aqi36.md",
)

PROTOCOL_ID = "aqi36-csdi"


def _read_table(path, name: str) -> pd.DataFrame:
    df = pd.read_csv(path, index_col=0)
    try:
        df.index = pd.to_datetime(df.index, format="%Y/%m/%d %H:%M:%S")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: first column must hold timestamps like 2014/05/01 01:00:00 ({exc})") from None
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise DataError(f"{path}: non-numeric values in column(s) {bad[:5]}; {name} must hold numbers or empty cells")
    return df.astype(np.float64)


def load_aqi36(data_dir=None) -> tuple[Series, np.ndarray, dict]:
    """Read AQI-36.

    Returns:
        ``(series, eval_mask, checksums)``: the ground-truth series ``[8759, 36, 1]``
        (NaN = missing), the bool ``[8759, 36, 1]`` mask of evaluation entries, and
        the SHA-256 of each file.
    """
    paths = locate_files(SPEC, data_dir)
    sums = checksums(SPEC, paths)
    ground = _read_table(paths["pm25_ground.txt"], "pm25_ground.txt")
    missing = _read_table(paths["pm25_missing.txt"], "pm25_missing.txt")
    if not ground.index.equals(missing.index) or list(ground.columns) != list(missing.columns):
        raise DataError("pm25_ground.txt and pm25_missing.txt must have the same timestamps and stations")
    values = ground.to_numpy()[:, :, None]
    if np.isinf(values).any():
        raise DataError("pm25_ground.txt contains infinite values")
    eval_mask = (ground.notna() & missing.isna()).to_numpy()[:, :, None]
    latlng = pd.read_csv(paths["pm25_latlng.txt"], dtype={"sensor_id": str})
    series = Series(
        values=values,
        time_index=pd.DatetimeIndex(ground.index, name="datetime"),
        node_names=[str(c) for c in ground.columns],
        channel_names=["pm25"],
        attrs={
            "units": "ug/m3",
            "dataset": "aqi36",
            "latitude": latlng["latitude"].tolist(),
            "longitude": latlng["longitude"].tolist(),
        },
    )
    return series, eval_mask, sums


@DATASETS.register("aqi36")
def aqi36_protocol(
    data_dir=None,
    window: int = 36,
    test_months: tuple[int, ...] | list[int] = (3, 6, 9, 12),
    valid_months: tuple[int, ...] | list[int] = (2,),
    train_stride: int = 1,
) -> Protocol:
    """The AQI-36 imputation protocol (CSDI / PriSTI), see the module docstring."""
    if not isinstance(window, int) or window < 1:
        raise ConfigError(f"data.options.window must be an integer >= 1, got {window!r}")
    test_months, valid_months = [int(m) for m in test_months], [int(m) for m in valid_months]
    if set(test_months) & set(valid_months):
        raise ConfigError(f"test_months {test_months} and valid_months {valid_months} overlap")
    bad = [m for m in test_months + valid_months if not 1 <= m <= 12]
    if bad:
        raise ConfigError(f"months must be in 1..12, got {bad}")
    series, eval_mask, sums = load_aqi36(data_dir)
    months = series.time_index.month.to_numpy()
    train, val, val_from, test, test_from = [], [], [], [], []
    for a, b, month in contiguous_segments(months):
        if month in test_months:
            s, f = covering_starts(b - a, window, offset=a)
            test.append(s)
            test_from.append(f)
        elif month in valid_months:
            s, f = covering_starts(b - a, window, offset=a)
            val.append(s)
            val_from.append(f)
        else:
            train.append(sliding_starts(b - a, window, train_stride, offset=a))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)  # noqa: E731
    splits = {
        "train": SplitWindows(cat(train)),
        "val": SplitWindows(cat(val), cat(val_from)),
        "test": SplitWindows(cat(test), cat(test_from)),
    }
    if len(splits["train"]) == 0:
        raise ConfigError("the AQI-36 protocol left no training windows; check test_months/valid_months/window")
    scaler = fit_scaler_on_windows(series, splits["train"].starts, window)
    return Protocol(
        id=PROTOCOL_ID,
        series=series,
        eval_mask=eval_mask,
        window=window,
        splits=splits,
        scaler=scaler,
        checksums=sums,
        meta={"test_months": test_months, "valid_months": valid_months, "units": "ug/m3"},
    )
