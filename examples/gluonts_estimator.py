"""A tsdiff model as a GluonTS estimator: train, make_evaluation_predictions, Evaluator, serialize.

The 8 daily exchange rates become a GluonTS dataset (one entry per currency, ``pd.Period``
starts). ``tsdiff.gluonts.DiffusionEstimator`` trains on it; GluonTS' own tools then forecast the
last 20 business days and score them. ``Evaluator``'s ``mean_wQuantileLoss`` is tsdiff's
normalised CRPS (:func:`tsdiff.metrics.quantile_crps`) on the same samples, printed side by side.
The predictor is serialized, loaded back with ``Predictor.deserialize`` and gives the same
forecasts.

    python examples/gluonts_estimator.py            # ~8 min on 2 CPU cores
    python examples/gluonts_estimator.py --fast     # seconds (tiny model, for tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TINY, exchange_rates, parse  # noqa: E402

from gluonts.evaluation import Evaluator, make_evaluation_predictions  # noqa: E402
from gluonts.model.predictor import Predictor  # noqa: E402

from tsdiff.gluonts import DiffusionEstimator  # noqa: E402
from tsdiff.metrics import DEFAULT_QUANTILES, quantile_crps  # noqa: E402


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    full = exchange_rates(args.data_dir).to_numpy()  # 7588 business days x 8 currencies
    H = 20
    if args.fast:
        raw, samples = full[-200:], 9
        settings = dict(max_steps=5, model_options=TINY, sampler="ddim", sampling_steps=5)
    else:
        raw, samples = full[-1020:], 31
        settings = dict(max_steps=200, sampler="ddim", sampling_steps=10)
    start = pd.Period("1990-01-01", freq="B") + (len(full) - len(raw))  # business days from 1990-01-01
    # GluonTS datasets are iterables of entries; float64 targets keep GluonTS' sums in float64
    test = [{"start": start, "target": raw[:, n], "item_id": f"currency_{n}"} for n in range(raw.shape[1])]
    train = [{**entry, "target": entry["target"][:-H]} for entry in test]

    estimator = DiffusionEstimator(prediction_length=H, context_length=40, verbose=not args.fast, **settings)
    predictor = estimator.train(train)
    forecast_it, ts_it = make_evaluation_predictions(test, predictor, num_samples=samples)
    forecasts, truths = list(forecast_it), list(ts_it)
    agg, per_item = Evaluator(quantiles=DEFAULT_QUANTILES, num_workers=None)(iter(truths), iter(forecasts))

    stacked = np.stack([f.samples for f in forecasts], axis=-1)  # [S, H, N]
    target = np.stack([t.to_numpy()[-H:, 0] for t in truths], axis=-1)
    ours = quantile_crps(stacked, target)

    folder = Path(args.out) / "gluonts_predictor"
    folder.mkdir(parents=True, exist_ok=True)
    predictor.serialize(folder)
    again = list(Predictor.deserialize(folder).predict(train, num_samples=samples))
    same = all(np.array_equal(a.samples, b.samples) for a, b in zip(forecasts, again))
    coverage = agg["Coverage[0.95]"] - agg["Coverage[0.05]"]
    first = forecasts[0]
    print(f"first forecast: {first.item_id} from {first.start_date}, samples {first.samples.shape}")
    print(f"GluonTS mean_wQuantileLoss {agg['mean_wQuantileLoss']:.6f}  tsdiff quantile_crps {ours:.6f}  "
          f"MSE {agg['MSE']:.3g}  90% coverage {coverage:.2f}")
    print(f"serialized to {folder}; deserialized predictor gives the same samples: {same}")
    return {"agg": agg, "per_item": per_item, "tsdiff_crps": ours, "same_after_load": same, "forecasts": forecasts}


if __name__ == "__main__":
    main()
