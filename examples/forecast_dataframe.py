"""Forecast a pandas DataFrame: the daily exchange rates of 8 currencies.

Holds out the last 30 business days, trains a tsdiff.Forecaster on the rest, and scores
the probabilistic forecast against what happened (CRPS, MAE), next to the naive
"last value" forecast. Writes the quantile table (CSV) and a fan chart (PNG).

    python examples/forecast_dataframe.py            # ~5 min on 2 CPU cores
    python examples/forecast_dataframe.py --fast     # seconds (tiny model, for tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TINY, exchange_rates, parse  # noqa: E402

import tsdiff  # noqa: E402
from tsdiff.metrics import mae, quantile_crps  # noqa: E402


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    raw = exchange_rates(args.data_dir)  # 7588 business days x 8 currencies
    H = 30
    history, future = raw.iloc[-(H + 1000):-H], raw.iloc[-H:]
    if args.fast:
        history = history.iloc[-200:]
        settings = dict(max_steps=5, model_options=TINY, n_samples=8, sampler="ddim", sampling_steps=5)
    else:
        settings = dict(max_steps=600, n_samples=50, sampler="ddim", sampling_steps=25)

    forecaster = tsdiff.Forecaster(prediction_length=H, context_length=60, verbose=not args.fast, **settings)
    forecaster.fit(history)
    forecast = forecaster.predict()

    truth = future.to_numpy()
    crps = quantile_crps(forecast.samples, truth)
    naive = np.repeat(history.to_numpy()[-1:], H, axis=0)
    result = {"crps": crps, "mae": mae(forecast.samples, truth), "naive_mae": float(np.abs(naive - truth).mean()),
              "table": forecast.to_pandas(quantiles=(0.05, 0.5, 0.95))}
    out = Path(args.out)
    result["table"].to_csv(out / "exchange_rate_forecast.csv")
    forecast.plot(out / "exchange_rate_fan.png", truth=truth)
    print(f"CRPS {crps:.4f}  MAE {result['mae']:.4f}  (last-value MAE {result['naive_mae']:.4f})")
    print(result["table"].iloc[:3, :4])
    return result


if __name__ == "__main__":
    main()
