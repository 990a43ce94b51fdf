"""``tsdiff.Imputer`` with its defaults against linear interpolation and MICE on real tables with holes.

For each table (AQI-36's ground-truth PM2.5, ETTh1, the exchange rates), holes are made in
the observed entries of one part of the table, two kinds separately:

- ``point``: 20% of the observed entries, uniformly at random;
- ``block``: runs of 12 to 48 consecutive steps per column, until 15% of the column's
  observed entries are hidden.

Each method fills the holed part, and the MAE on the hidden entries (data units) is
recorded, with the imputer's fit and transform times. ``--part tune`` uses the first 60% of
the rows (defaults are chosen there) and ``--part report`` the last 40% (the figures the
accuracy targets are checked on); the two never share a row.

    python benchmarks/accuracy/imputer_tables.py --part tune --set prior=interpolation max_steps=600
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "records" / "accuracy"
TABLES = ("aqi36", "etth1", "exchange_rate")
HOLES = ("point", "block")


def load_table(name: str, data_dir: str | None) -> pd.DataFrame:
    """The table ``[T, F]`` (DatetimeIndex, one column per series), NaN where it has no value."""
    if name == "aqi36":
        from tsdiff.data.datasets.aqi36 import load_aqi36

        series = load_aqi36(data_dir)[0]  # the ground-truth table (its own 13% missing stay missing)
    elif name == "etth1":
        from tsdiff.data.datasets.ett import load_etth1

        series = load_etth1(data_dir)
    else:
        from tsdiff.data.datasets.lstnet import load_exchange_rate

        series = load_exchange_rate(data_dir)
    values = series.values.reshape(series.shape[0], -1)
    return pd.DataFrame(values, index=series.time_index, columns=[str(n) for n in series.node_names][: values.shape[1]]
                        if values.shape[1] == len(series.node_names) else None)


def make_holes(values: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """Bool ``[T, F]``: observed entries to hide."""
    rng = np.random.default_rng(seed)
    observed = ~np.isnan(values)
    if kind == "point":
        return observed & (rng.random(values.shape) < 0.2)
    hide = np.zeros(values.shape, dtype=bool)
    T = values.shape[0]
    for f in range(values.shape[1]):
        want = int(0.15 * observed[:, f].sum())
        while (hide[:, f] & observed[:, f]).sum() < want:
            length = int(rng.integers(12, 49))
            start = int(rng.integers(0, max(1, T - length)))
            hide[start: start + length, f] = True
    return hide & observed


def linear_interpolation(frame: pd.DataFrame) -> np.ndarray:
    filled = frame.interpolate(method="linear", limit_direction="both", axis=0)
    return filled.fillna(frame.mean()).to_numpy()


def mice(frame: pd.DataFrame, seed: int) -> np.ndarray:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    return IterativeImputer(max_iter=10, random_state=seed).fit_transform(frame.to_numpy())


def parse_settings(texts: list[str]) -> dict:
    """Estimator arguments from ``key=value`` texts (YAML values; ``a.b=v`` sets one option of ``a``)."""
    from tsdiff.config import parse_override

    settings: dict = {}
    for text in texts:
        keys, value = parse_override(text)
        settings[keys[0]] = value if len(keys) == 1 else {**settings.get(keys[0], {}), keys[1]: value}
    return settings


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
        part = table.iloc[: int(0.6 * T)] if args.part == "tune" else table.iloc[int(0.6 * T):]
        for kind in args.holes:
            truth = part.to_numpy()
            hide = make_holes(truth, kind, args.seed)
            holed = part.mask(hide)
            scores: dict = {}
            t0 = time.perf_counter()
            scores["linear_interpolation"] = {"mae": float(np.abs(linear_interpolation(holed)[hide] - truth[hide]).mean())}
            t1 = time.perf_counter()
            scores["mice"] = {"mae": float(np.abs(mice(holed, args.seed)[hide] - truth[hide]).mean()),
                              "seconds": round(time.perf_counter() - t1, 1)}
            imp = tsdiff.Imputer(random_state=args.seed, **settings)
            t2 = time.perf_counter()
            imp.fit(holed)
            t3 = time.perf_counter()
            filled = imp.transform(holed)
            t4 = time.perf_counter()
            assert np.array_equal(filled[~np.isnan(holed.to_numpy())], holed.to_numpy()[~np.isnan(holed.to_numpy())])
            scores["tsdiff"] = {"mae": float(np.abs(filled[hide] - truth[hide]).mean()),
                                "fit_seconds": round(t3 - t2, 1), "transform_seconds": round(t4 - t3, 1)}
            best = min(scores[k]["mae"] for k in ("linear_interpolation", "mice"))
            ratio = scores["tsdiff"]["mae"] / best
            line = {"table": name, "holes": kind, "part": args.part, "rows": len(part), "hidden": int(hide.sum()),
                    **{k: round(v["mae"], 4) for k, v in scores.items()}, "tsdiff_over_best_baseline": round(ratio, 3),
                    "fit_s": scores["tsdiff"]["fit_seconds"], "transform_s": scores["tsdiff"]["transform_seconds"]}
            print(json.dumps(line), flush=True)
            rec = make_record(
                task=f"{name}_table_imputation", protocol=f"imputer-tables-{kind}-{args.part}", model="tsdiff.Imputer",
                sampler=imp.sampler, nfe=imp.sampling_steps or 0, n_samples=imp.n_samples, seed=args.seed,
                metrics={"mae": scores["tsdiff"]["mae"], "baselines": scores, "tsdiff_over_best_baseline": ratio},
                train_seconds=t3 - t2, sample_seconds=t4 - t3, config={"imputer": imp.get_params(), "set": args.set},
                dataset_checksums={},
                extra={"benchmark": "imputer_tables", "rows": len(part), "hidden": int(hide.sum()),
                       "holes": kind, "part": args.part, "linear_seconds": round(t1 - t0, 2),
                       "torch_threads": args.threads},
            )
            if args.out:
                label = "_".join(t.replace("=", "-").replace(".", "-") for t in args.set) or "defaults"
                write_record(rec, Path(args.out), f"{name}_{kind}_{args.part}_{label}_seed{args.seed}")
            records.append(line)
    return records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="+", default=list(TABLES), choices=TABLES)
    p.add_argument("--holes", nargs="+", default=list(HOLES), choices=HOLES)
    p.add_argument("--part", default="tune", choices=["tune", "report"])
    p.add_argument("--set", nargs="*", default=[], help="Imputer arguments key=value (YAML values)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--data-dir", default=os.environ.get("TSDIFF_DATA"))
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
