"""Impute a CSV in a scikit-learn pipeline: Beijing PM2.5 at 36 stations (AQI-36).

``pm25_missing.txt`` is a CSV with gaps (its publisher hid extra values that
``pm25_ground.txt`` still has). A ``Pipeline(tsdiff.Imputer, Ridge)`` predicts station
001001 from the other 35 stations, gaps and all; the imputer's fills are then scored on
the hidden values against the station-mean fill. Writes an imputation plot (PNG).

    python examples/impute_csv_pipeline.py           # ~5 min on 2 CPU cores
    python examples/impute_csv_pipeline.py --fast    # seconds (tiny model, for tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TINY, parse  # noqa: E402

import tsdiff  # noqa: E402
from tsdiff.plotting import plot_imputation  # noqa: E402


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    read = lambda name: pd.read_csv(args.data_dir / "aqi36" / name, index_col=0, parse_dates=True,  # noqa: E731
                                    date_format="%Y/%m/%d %H:%M:%S")
    with_gaps, ground = read("pm25_missing.txt"), read("pm25_ground.txt")
    rows = 240 if args.fast else 1440  # 10 days / 2 months of hourly rows
    with_gaps, ground = with_gaps.iloc[:rows], ground.iloc[:rows]
    settings = dict(max_steps=5, model_options=TINY, n_samples=3, sampling_steps=3) if args.fast else \
        dict(max_steps=400, n_samples=8)

    # 1. Imputer + Ridge: station 001001 from the others (the imputer keeps the rows in time order)
    X, y = with_gaps.drop(columns="001001"), with_gaps["001001"]
    train = np.arange(rows) < int(0.75 * rows)
    X = X.loc[:, X[train].notna().any()]  # a station with no value while training cannot be learned
    has_y = y.notna().to_numpy()
    pipe = make_pipeline(tsdiff.Imputer(window=24, **settings), Ridge(alpha=1.0))
    pipe.fit(X[train & has_y], y[train & has_y])
    test = ~train & has_y
    pred = pipe.predict(X[~train])[has_y[~train]]
    resid = y[test].to_numpy() - pred
    r2 = 1 - (resid ** 2).sum() / ((y[test] - y[test].mean()) ** 2).sum()
    twin = clone(pipe)  # same settings, unfitted
    assert twin.get_params()["imputer__window"] == 24

    # 2. the imputer on the whole table: fills vs. the hidden ground truth
    with_gaps, ground = with_gaps[X.columns], ground[X.columns]
    imputer = tsdiff.Imputer(window=24, **settings).set_output(transform="pandas")
    filled = imputer.fit_transform(with_gaps)
    hidden = with_gaps.isna().to_numpy() & ground.notna().to_numpy()
    mae = float(np.abs(filled.to_numpy()[hidden] - ground.to_numpy()[hidden]).mean())
    station_mean = with_gaps.mean().to_numpy()[None, :].repeat(rows, 0)
    mae_mean = float(np.abs(station_mean[hidden] - ground.to_numpy()[hidden]).mean())
    draws = imputer.sample(with_gaps, 8 if not args.fast else 3)  # multiple imputations [S, T, F]
    plot_imputation(with_gaps, draws, Path(args.out) / "aqi36_imputation.png", truth=ground.to_numpy())
    print(f"Ridge on imputed stations: R2 {r2:.3f} on {int(test.sum())} test hours")
    print(f"imputation MAE {mae:.2f} ug/m3 on {int(hidden.sum())} hidden values (station mean: {mae_mean:.2f})")
    return {"r2": float(r2), "mae": mae, "mae_station_mean": mae_mean, "filled": filled, "input": with_gaps,
            "draws": draws}


if __name__ == "__main__":
    main()
