"""Backtest a forecaster on the daily exchange rates: rolling origins, per-window and per-series scores.

Trains a tsdiff.Forecaster on the business days before the first cut-off, then
``tsdiff.backtest.backtest`` forecasts the 20 days after each of the last 5 cut-offs (20 days
apart) from the data up to it and scores them with the project's metrics (CRPS in data units,
MAE and RMSE of the median, 90% interval coverage), next to the last-value forecast's MAE on the
same windows. Writes the tidy metrics table (CSV).

    python examples/backtest.py            # ~8 min on 2 CPU cores
    python examples/backtest.py --fast     # seconds (tiny model, for tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TINY, exchange_rates, parse  # noqa: E402

import tsdiff  # noqa: E402
from tsdiff.backtest import backtest  # noqa: E402


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    raw = exchange_rates(args.data_dir)  # 7588 business days x 8 currencies
    H, windows = 20, 5
    if args.fast:
        data, windows = raw.iloc[-160:], 2
        settings = dict(max_steps=5, model_options=TINY, n_samples=8, sampler="ddim", sampling_steps=5)
    else:
        data = raw.iloc[-(1000 + windows * H):]
        settings = dict(max_steps=200, n_samples=30, sampler="ddim", sampling_steps=10)
    first_cutoff = len(data) - windows * H  # the last `windows` origins, one horizon apart

    forecaster = tsdiff.Forecaster(prediction_length=H, context_length=40, verbose=not args.fast, **settings)
    forecaster.fit(data.iloc[:first_cutoff])  # nothing the backtest scores is seen in training
    result = backtest(forecaster, data, windows=windows)

    values = data.to_numpy()
    naive = [np.abs(values[c - 1] - values[c: c + H]).mean() for c in result.cutoffs]
    out = Path(args.out)
    result.metrics.to_csv(out / "exchange_rate_backtest.csv", index=False)
    summary = result.summary()
    print(result.summary("window").round(4))
    print(f"over {windows} windows x {data.shape[1]} series: CRPS {summary['crps']:.4f}  MAE {summary['mae']:.4f}  "
          f"coverage(90%) {summary['coverage_90']:.2f}  (last-value MAE {np.mean(naive):.4f})")
    return {"result": result, "summary": summary, "naive_mae": float(np.mean(naive))}


if __name__ == "__main__":
    main()
