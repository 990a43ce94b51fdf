"""``tsdiff.Forecaster`` with its defaults against persistence and seasonal naive, rolling origins.

For each table (ETTh1, the exchange rates; every column is a target), the Forecaster is fitted
on a training span and forecasts ``prediction_length`` steps (its default, 24) from rolling
origins spaced one horizon apart in the evaluation span after it:

- ``--part tune``: trains on the first 48% of the rows, evaluates in rows 48%-60% (defaults
  are chosen here);
- ``--part tune-late``: trains on the first 68% of the rows, evaluates in rows 68%-80%, a second
  validation span, later in time (a choice should hold on both validation spans);
- ``--part report``: trains on the first 80% of the rows, evaluates in the last 20% (the
  figures the accuracy targets are checked on). No tune origin reaches a report row.

Each origin's history is everything before it (the model reads its last ``context_length``
steps); the rolling origins are a :func:`tsdiff.backtest.backtest` with ``start`` at the span's start. The score is the CRPS of the samples (``tsdiff.metrics.ensemble_crps``, data units)
averaged over origins, series and steps; a point forecast's CRPS is its MAE, so the baselines'
figures are their MAE. Seasonal naive repeats the last season (GluonTS's seasonality of the
frequency: 24 steps for hourly data, 5 for business days).

    python benchmarks/accuracy/forecaster_tables.py --part tune --set prior=last_value
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from imputer_tables import load_table, parse_settings  # noqa: E402

OUT = ROOT / "benchmarks" / "records" / "accuracy"
TABLES = ("etth1", "exchange_rate")
SPANS = {"tune": (0.48, 0.60), "tune-late": (0.68, 0.80), "report": (0.80, 1.00)}
#: origins scored by default (``--max-origins``): the first of a span's rolling origins
MAX_ORIGINS = 40


def rolling_origins(lo: int, hi: int, horizon: int, max_origins: int) -> list[int]:
    """The first ``max_origins`` origins one ``horizon`` apart from row ``lo`` whose horizon ends
    by row ``hi``."""
    return list(range(lo, hi - horizon + 1, horizon))[:max_origins]


def origins_label(max_origins: int, origins: int) -> str:
    """The part of a record's name that gives its origin count: none for the default cap
    (:data:`MAX_ORIGINS`), else ``_<origins>origins``."""
    return "" if max_origins == MAX_ORIGINS else f"_{origins}origins"


def season_of(index) -> int:
    """Steps per season of a DatetimeIndex: GluonTS's seasonality of its frequency (24 for hourly
    data, 5 for business days), the season the Forecaster's default prior takes."""
    import pandas as pd
    from gluonts.time_feature import get_seasonality

    return int(get_seasonality(pd.infer_freq(index)))


def fit_and_backtest(fc, data, lo: int, hi: int, max_origins: int, seed: int, per_series: bool = False):
    """Fit ``fc`` on ``data``'s rows before ``lo`` and backtest it from rolling origins one horizon
    apart in rows ``lo .. hi``: one CRPS per origin over all series (:func:`tsdiff.backtest.backtest`
    with ``per_series=False``; ``per_series=True``: one per origin and series). Returns ``(origins,
    result, fit start, fit end)`` (perf_counter times)."""
    from tsdiff.backtest import backtest
    from tsdiff.metrics.crps import ensemble_crps

    H = fc.prediction_length
    origins = rolling_origins(lo, hi, H, max_origins)
    t0 = time.perf_counter()
    fc.fit(data.iloc[:lo])
    t1 = time.perf_counter()
    result = backtest(fc, data, start=lo, windows=len(origins), stride=H, metrics={"crps": ensemble_crps},
                      random_state=seed, per_series=per_series)
    return origins, result, t0, t1


def run(args) -> list[dict]:
    import torch

    import tsdiff
    from tsdiff.bench.records import make_record, write_record

    settings = parse_settings(args.set)
    torch.set_num_threads(args.threads)
    records = []
    for name in args.tables:
        table = load_table(name, args.data_dir)
        T = len(table)
        lo, hi = (int(f * T) for f in SPANS[args.part])
        fc = tsdiff.Forecaster(random_state=args.seed, verbose=False, **settings)
        H = fc.prediction_length
        season = season_of(table.index)
        origins, result, t0, t1 = fit_and_backtest(fc, table, lo, hi, args.max_origins, args.seed)
        crps, naive, snaive = result.metrics["crps"].tolist(), [], []
        for origin in origins:
            truth = table.iloc[origin: origin + H].to_numpy()
            last = table.iloc[:origin].ffill().to_numpy()
            naive.append(float(np.abs(last[-1] - truth).mean()))
            reps = -(-H // season)
            snaive.append(float(np.abs(np.tile(last[-season:], (reps, 1))[:H] - truth).mean()))
        t2 = time.perf_counter()
        scores = {"tsdiff_crps": float(np.mean(crps)), "naive_mae": float(np.mean(naive)),
                  "seasonal_naive_mae": float(np.mean(snaive))}
        line = {"table": name, "part": args.part, "origins": len(origins), "horizon": H, "season": season,
                **{k: round(v, 5) for k, v in scores.items()},
                "tsdiff_over_seasonal_naive": round(scores["tsdiff_crps"] / scores["seasonal_naive_mae"], 3),
                "tsdiff_over_best_baseline": round(scores["tsdiff_crps"] / min(scores["naive_mae"],
                                                                                scores["seasonal_naive_mae"]), 3),
                "fit_s": round(t1 - t0, 1), "predict_s": round(t2 - t1, 1)}
        print(json.dumps(line), flush=True)
        rec = make_record(
            task=f"{name}_table_forecasting", protocol=f"forecaster-tables-{args.part}", model="tsdiff.Forecaster",
            sampler=fc.sampler, nfe=fc.sampling_steps or 0, n_samples=fc.n_samples, seed=args.seed,
            metrics={"crps": scores["tsdiff_crps"], "baselines": scores,
                     "tsdiff_over_seasonal_naive": line["tsdiff_over_seasonal_naive"]},
            train_seconds=t1 - t0, sample_seconds=t2 - t1, config={"forecaster": fc.get_params(), "set": args.set},
            dataset_checksums={},
            extra={"benchmark": "forecaster_tables", "part": args.part, "origins": origins, "season": season,
                   "train_rows": lo, "torch_threads": args.threads},
        )
        if args.out:
            label = "_".join(t.replace("=", "-").replace(".", "-") for t in args.set) or "defaults"
            span = f"{args.part}{origins_label(args.max_origins, len(origins))}"
            write_record(rec, Path(args.out), f"{name}_forecast_{span}_{label}_seed{args.seed}")
        records.append(line)
    return records


def add_run_arguments(parser: argparse.ArgumentParser, threads: int) -> None:
    """The options every rolling-origin benchmark of the Forecaster takes: seed, origins, threads,
    data and records folders."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-origins", type=int, default=MAX_ORIGINS,
                        help=f"score the first this many origins of the span (default {MAX_ORIGINS}; 1000: all)")
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(OUT), help="records folder ('' for none)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=sorted(SPANS), default="tune")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES))
    parser.add_argument("--set", nargs="*", default=[], help="Forecaster arguments as key=value (YAML values)")
    add_run_arguments(parser, threads=2)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
