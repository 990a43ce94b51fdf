"""``tsdiff.Forecaster`` on ETTh1's ``OT`` with and without covariates, rolling origins.

Three variants, each fitted on the first 80% of the rows and scored on rolling origins one horizon
(24 steps) apart in the last 20% (no setting was chosen on these rows): the first 40 origins
(``--max-origins``, default 40), or all 145 the span holds (``--max-origins 1000``; records named
``..._145origins_...``). ``--part tune`` and ``--part tune-late`` fit on the first 48% / 68% and
score in rows 48-60% / 68-80%, the validation spans. Each fit trains for 6,000
optimiser steps (``max_steps``; about 2 minutes at one thread on a 2-core machine), a budget that
does not depend on the machine's speed; ``--max-time`` trains for a time instead (the
learning-rate schedule then follows the time budget):

- ``covariates``: ``OT`` is the only target; the six load columns (HUFL, HULL, MUFL, MULL, LUFL,
  LULL) are past-only covariates and the hourly calendar features are on (``calendar=True``: those
  the training rows cover three times) with the Forecaster's defaults (each load centred on its
  context mean, ``centre_covariates=True``);
- ``plain``: ``OT`` alone, ``calendar=False`` (the model without covariate input);
- ``joint``: all seven columns as targets of one joint model (``calendar=False``), only ``OT``
  scored: the loads enter as series the network attends to and forecasts, not as covariates.

The score is the CRPS of the samples (``tsdiff.metrics.ensemble_crps``, data units) averaged over
origins and steps, from :func:`tsdiff.backtest.backtest` with ``start`` at the span's start;
seasonal naive's MAE (season 24) is given for scale.

    OMP_NUM_THREADS=1 python benchmarks/accuracy/forecaster_covariates.py --variant covariates --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecaster_tables import SPANS, add_run_arguments, fit_and_backtest, origins_label, season_of  # noqa: E402
from imputer_tables import parse_settings  # noqa: E402

TARGET = "OT"
VARIANTS = {
    "covariates": lambda cols: {"covariates": [c for c in cols if c != TARGET], "calendar": True},
    "plain": lambda cols: {"calendar": False},
    "joint": lambda cols: {"calendar": False},
}


def record_stem(part: str, label: str, variant: str, seed: int) -> str:
    """A record's file name without ``.json``; ``label``: :func:`forecaster_tables.origins_label`."""
    return f"etth1_ot_{part}{label}_{variant}_seed{seed}"


def load_etth1_frame(data_dir) -> "pd.DataFrame":
    """ETTh1 as a wide DataFrame: DatetimeIndex x its seven columns (HUFL ... OT)."""
    import pandas as pd

    from tsdiff.data.datasets.ett import load_etth1

    series = load_etth1(data_dir)
    values = series.values.reshape(series.shape[0], -1)
    names = series.channel_names if series.shape[1] == 1 else series.node_names
    return pd.DataFrame(values, index=series.time_index, columns=[str(n) for n in names])


def run(args) -> dict:
    import torch

    import tsdiff
    from tsdiff.bench.records import make_record, write_record

    torch.set_num_threads(args.threads)
    table = load_etth1_frame(args.data_dir)
    settings = {**VARIANTS[args.variant](list(table.columns)), **parse_settings(args.set)}
    data = table if settings.get("covariates") or args.variant == "joint" else table[[TARGET]]
    T = len(table)
    lo, hi = (int(f * T) for f in SPANS[args.part])
    fc = tsdiff.Forecaster(random_state=args.seed, verbose=False, max_time=args.max_time, max_steps=args.max_steps,
                           n_samples=args.n_samples, **settings)
    H = fc.prediction_length
    season = season_of(table.index)
    joint = args.variant == "joint"
    origins, result, t0, t1 = fit_and_backtest(fc, data, lo, hi, args.max_origins, args.seed, per_series=joint)
    t2 = time.perf_counter()
    scored = result.metrics[result.metrics["series"] == TARGET] if joint else result.metrics
    crps = float(scored["crps"].mean())
    target = table[TARGET]
    snaive = float(np.mean([np.abs(target.iloc[o - season: o].to_numpy()[np.arange(H) % season]
                                   - target.iloc[o: o + H].to_numpy()).mean() for o in origins]))
    line = {"variant": args.variant, "seed": args.seed, "origins": len(origins), "horizon": H,
            "crps": round(crps, 5), "seasonal_naive_mae": round(snaive, 5),
            "train_steps": fc.training_["n_steps"], "fit_s": round(t1 - t0, 1), "predict_s": round(t2 - t1, 1)}
    print(json.dumps(line), flush=True)
    rec = make_record(
        task="etth1_ot_forecasting", protocol=f"forecaster-covariates-{args.part}", model="tsdiff.Forecaster",
        sampler=fc.sampler, nfe=fc.sampling_steps or 0, n_samples=fc.n_samples, seed=args.seed,
        metrics={"crps": crps, "seasonal_naive_mae": snaive, "crps_per_origin": scored["crps"].tolist()},
        train_seconds=t1 - t0, sample_seconds=t2 - t1, config={"forecaster": fc.get_params(), "variant": args.variant,
                                                            "set": args.set},
        dataset_checksums={},
        extra={"benchmark": "forecaster_covariates", "part": args.part, "origins": origins, "train_rows": lo,
               "train_steps": fc.training_["n_steps"], "torch_threads": args.threads},
    )
    if args.out:
        label = origins_label(args.max_origins, len(origins))
        write_record(rec, Path(args.out), record_stem(args.part, label, args.variant, args.seed))
    return line


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--part", choices=sorted(SPANS), default="report")
    parser.add_argument("--max-time", default=None, type=lambda v: None if v.lower() == "none" else v,
                        help="training time budget of each fit, e.g. 2min (default none: --max-steps ends it, "
                             "whatever the machine's speed); give a large --max-steps with it")
    parser.add_argument("--max-steps", type=int, default=6000, help="optimiser steps of each fit")
    parser.add_argument("--n-samples", type=int, default=50)
    parser.add_argument("--set", nargs="*", default=[], help="further Forecaster arguments as key=value (YAML values)")
    add_run_arguments(parser, threads=1)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
