"""Do ETTh1's loads and calendar carry information about ``OT`` 24 h ahead? A linear check.

The same spans and origins as ``forecaster_covariates.py`` (fitted on the rows before the span,
scored from origins one horizon apart in it, the first 40 or, with ``--max-origins 1000``, all
of them; records named by the count then), with ridge regressions instead of a
diffusion model, so the question is asked of the data, not of one network. Every fit predicts
the 24 next values of ``OT`` less the mean of its last 24, from features of the window before the
origin; each of these feature sets:

- ``ot``: the last 96 hours of ``OT`` less the same mean;
- ``ot+calendar``: and the hour of the origin (one-hot), the share of each weekday among the 24
  forecast hours and the weekday of the last context hour (one-hot);
- ``ot+loads``: and the six loads' last 48 hours, standardised on the training rows and centred
  on their mean over the 96-hour context (as ``centre_covariates=True`` does);
- ``ot+loads+calendar``: both.

The ridge penalty is chosen by leave-one-out on the training windows (scikit-learn's
``RidgeCV``, 13 values from 0.01 to 10^4); the score is the forecast's MAE in data units (a point
forecast's CRPS), averaged over origins and steps. Fits take seconds.

    python benchmarks/accuracy/covariates_linear_check.py --part report
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecaster_covariates import TARGET, load_etth1_frame  # noqa: E402
from forecaster_tables import SPANS, add_run_arguments, origins_label, rolling_origins  # noqa: E402

H, CONTEXT, LOAD_STEPS = 24, 96, 48
FEATURE_SETS = ("ot", "ot+calendar", "ot+loads", "ot+loads+calendar")


def window_features(ot, loads, index, origin: int, kind: str) -> tuple[np.ndarray, float]:
    """The features of the window ending before ``origin`` and its level (mean of the last 24 hours)."""
    context = ot[origin - CONTEXT: origin]
    level = float(context[-H:].mean())
    parts = [context - level]
    if "loads" in kind:
        past = loads[origin - CONTEXT: origin]
        parts.append((past - past.mean(0))[-LOAD_STEPS:].ravel())
    if "calendar" in kind:
        horizon = index[origin: origin + H]
        parts += [np.eye(24)[index[origin].hour], np.eye(7)[horizon.dayofweek].mean(0),
                  np.eye(7)[index[origin - 1].dayofweek]]
    return np.concatenate(parts), level


def score(table, lo: int, hi: int, kind: str, max_origins: int, max_train: int | None) -> tuple[float, float]:
    """MAE of the ridge forecast of ``kind`` from origins in rows ``lo .. hi``, fitted on rows before
    ``lo``; and the chosen penalty."""
    from sklearn.linear_model import RidgeCV

    ot = table[TARGET].to_numpy(np.float64)
    raw = table.drop(columns=TARGET).to_numpy(np.float64)
    loads = (raw - raw[:lo].mean(0)) / raw[:lo].std(0)
    train = np.arange(CONTEXT, lo - H + 1)
    if max_train:
        train = train[-max_train:]
    X, Y = [], []
    for o in train:
        f, level = window_features(ot, loads, table.index, o, kind)
        X.append(f)
        Y.append(ot[o: o + H] - level)
    model = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(np.array(X), np.array(Y))
    errors = []
    for o in rolling_origins(lo, hi, H, max_origins):
        f, level = window_features(ot, loads, table.index, o, kind)
        errors.append(np.abs(model.predict(f[None])[0] + level - ot[o: o + H]).mean())
    return float(np.mean(errors)), float(model.alpha_)


def run(args) -> dict:
    from tsdiff.bench.records import make_record, write_record

    table = load_etth1_frame(args.data_dir)
    T = len(table)
    lo, hi = (int(f * T) for f in SPANS[args.part])
    t0 = time.perf_counter()
    mae, alpha = {}, {}
    for kind in FEATURE_SETS:
        mae[kind], alpha[kind] = score(table, lo, hi, kind, args.max_origins, args.max_train)
        print(f"{args.part} {kind:<18} MAE {mae[kind]:.4f} (ridge penalty {alpha[kind]:g})", flush=True)
    rec = make_record(
        task="etth1_ot_forecasting", protocol=f"covariates-linear-check-{args.part}", model="sklearn.RidgeCV",
        sampler="none", nfe=0, n_samples=1, seed=0, metrics={"mae": mae, "ridge_alpha": alpha},
        train_seconds=time.perf_counter() - t0, sample_seconds=0.0,
        config={"context": CONTEXT, "load_steps": LOAD_STEPS, "horizon": H, "max_train": args.max_train},
        dataset_checksums={}, extra={"benchmark": "covariates_linear_check", "part": args.part, "train_rows": lo})
    if args.out:
        label = origins_label(args.max_origins, len(rolling_origins(lo, hi, H, args.max_origins)))
        write_record(rec, Path(args.out), f"etth1_ot_{args.part}{label}_linear_check")
    return rec


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=sorted(SPANS), default="report")
    parser.add_argument("--max-train", type=int, default=None, help="fit on the last this many training windows")
    add_run_arguments(parser, threads=1)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
