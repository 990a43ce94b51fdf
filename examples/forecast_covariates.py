"""Forecast ETTh1's oil temperature (OT) with covariates: past-only loads, a known-future column and calendar features.

The six load columns of ETTh1 become covariates instead of targets: five as past-only ones
(``covariates=``, read over the context only) and LULL, for illustration, as a known-future one
(``future_covariates=``: its values over the forecast horizon are passed to ``predict``). Hourly
calendar features (hour of day, day of week, ...; those whose period the training data covers
three times) are added from the timestamps (``calendar=True``, the default), and each past-only
load is centred on its context mean (``centre_covariates=True``, the default). The model is saved
and loaded, then a rolling-origin backtest scores it next to
the same Forecaster on OT alone without covariates. Writes the forecast's quantiles (CSV).

    python examples/forecast_covariates.py            # ~6 min on 2 CPU cores
    python examples/forecast_covariates.py --fast     # seconds (tiny model, for tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TINY, parse  # noqa: E402

import tsdiff  # noqa: E402


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    df = pd.read_csv(args.data_dir / "ett" / "ETTh1.csv", parse_dates=["date"], index_col="date")
    H, windows = 24, 3
    if args.fast:
        df = df.iloc[:600]
        settings = dict(max_steps=5, model_options=TINY, n_samples=4, sampling_steps=5, verbose=False)
    else:
        df = df.iloc[:6000]
        settings = dict(max_steps=100_000, max_time="2min", n_samples=50)
    train_end = len(df) - windows * H  # the backtest scores only rows after it

    forecaster = tsdiff.Forecaster(prediction_length=H, covariates=["HUFL", "HULL", "MUFL", "MULL", "LUFL"],
                                   future_covariates=["LULL"], **settings)
    forecaster.fit(df.iloc[:train_end])  # targets: the columns that are not covariates (OT)
    horizon = df.iloc[train_end: train_end + H]
    forecast = forecaster.predict(df.iloc[:train_end], future_covariates=horizon[["LULL"]])
    out = Path(args.out)
    forecast.to_pandas(quantiles=(0.1, 0.5, 0.9)).to_csv(out / "etth1_ot_covariates_forecast.csv")

    path = forecaster.save(out / "etth1_ot_covariates.pt")
    loaded = tsdiff.Forecaster.load(path)  # keeps the covariate columns, their scaling and the calendar

    with_cov = loaded.backtest(df, start=train_end, windows=windows).summary()
    plain = tsdiff.Forecaster(prediction_length=H, calendar=False, **settings).fit(df[["OT"]].iloc[:train_end])
    without = plain.backtest(df[["OT"]], start=train_end, windows=windows).summary()
    print(f"OT, {windows} origins x {H} h: CRPS with covariates {with_cov['crps']:.3f}, "
          f"OT alone {without['crps']:.3f}")
    return {"forecast": forecast, "loaded": loaded, "crps_covariates": float(with_cov["crps"]),
            "crps_plain": float(without["crps"])}


if __name__ == "__main__":
    main()
