"""PhysioNet 2012 through the public API as a panel, against the ``physionet2012`` protocol run.

Both sides train the same network (the estimators' CPU preset, ``tsdiff.api.building``), with
the same process, prior, training mask, learning rate, batch size, optimiser steps and seed,
on the protocol's training stays, and are scored on the same held-out 10% of the observed
values of the first ``--limit`` test stays, with the same metric code (z-scores, as CSDI):

- ``api``: ``tsdiff.Imputer`` fitted on the training stays as an array ``[n, 48, 35]``; the test
  stays, with their held-out values removed, are given to ``Imputer.sample`` as a panel.
- ``protocol``: the same settings as a config (``tsdiff fit`` / ``tsdiff test``).

    python benchmarks/accuracy/panel_physionet.py --max-steps 1000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "records" / "accuracy"


def protocol_stays(protocol, split: str, limit: int | None):
    """``(values [n, 48, 35] in data units, held-out mask [n, 48, 35])`` of a split's stays."""
    starts = protocol.splits[split].starts[:limit]
    L = protocol.window
    values = protocol.series.values[:, :, 0]
    held = protocol.eval_mask[:, :, 0]
    return np.stack([values[s: s + L] for s in starts]), np.stack([held[s: s + L] for s in starts])


def score(samples: np.ndarray, truth: np.ndarray, held: np.ndarray, scaler) -> dict:
    """Metrics of ``samples`` ``[S, n, L, F]`` on the held-out entries, on z-scores."""
    from tsdiff.metrics import MetricAccumulator

    def z(v):
        return scaler.transform(v[..., None])[..., 0]

    acc = MetricAccumulator()
    acc.update(np.stack([z(s) for s in samples]), np.nan_to_num(z(truth)), held)
    return {k: float(v) for k, v in acc.compute().items() if k in ("crps", "mae", "rmse")}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-samples", type=int, default=16)
    p.add_argument("--limit", type=int, default=160, help="test stays scored (the first ones)")
    p.add_argument("--data-dir", default=os.environ.get("TSDIFF_DATA"))
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)

    import tsdiff
    from tsdiff.api.building import DEFAULT_PROCESS, SMALL_MODEL_OPTIONS
    from tsdiff.config import load_config
    from tsdiff.data.protocol import build_protocol
    from tsdiff.experiment import fit, test

    protocol = build_protocol("physionet2012", args.data_dir, {"missing_ratio": 0.1})
    train, _ = protocol_stays(protocol, "train", None)
    truth, held = protocol_stays(protocol, "test", args.limit)
    masked = np.where(held, np.nan, truth)
    imp_settings = dict(max_steps=args.max_steps, batch_size=16, lr=1e-3, train_mask="random", n_samples=args.n_samples,
                        sampler="ddim", sampling_steps=10, prior="cross_series")

    t0 = time.perf_counter()
    imputer = tsdiff.Imputer(random_state=args.seed, **imp_settings).fit(train)
    t1 = time.perf_counter()
    draws = imputer.sample(masked, args.n_samples)              # [S, n, 48, 35]
    t2 = time.perf_counter()
    api = {**score(draws, truth, held, protocol.scaler), "train_seconds": t1 - t0, "sample_seconds": t2 - t1}
    observed = ~np.isnan(masked)
    assert all(np.array_equal(d[observed], masked[observed]) for d in draws)

    config = {
        "name": "physionet_api_preset", "task": "imputation", "seed": args.seed,
        "data": {"dataset": "physionet2012", "batch_size": 16, "train_mask": "random",
                 "options": {"missing_ratio": 0.1}},
        "model": {"name": "csdi", **SMALL_MODEL_OPTIONS["csdi"]},
        "process": dict(DEFAULT_PROCESS), "prior": {"name": "cross_series"},
        "optim": {"lr": 1e-3},
        "trainer": {"max_steps": args.max_steps, "max_epochs": -1, "limit_val_batches": 0,
                    "enable_progress_bar": False},
        "eval": {"split": "test", "n_samples": args.n_samples, "sampler": "ddim", "steps": 10,
                 "limit_windows": args.limit},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config))
        cfg = load_config(str(path), [f"output.dir={tmp}/run", f"output.records_dir={tmp}/records"])
        t0 = time.perf_counter()
        run = fit(cfg)
        t1 = time.perf_counter()
        record, _ = test(run, progress=False)
        t2 = time.perf_counter()
    proto = {k: float(record["metrics"][k]) for k in ("crps", "mae", "rmse")}
    proto.update(train_seconds=t1 - t0, sample_seconds=t2 - t1)
    ratio = {k: api[k] / proto[k] for k in ("crps", "mae")}
    result = {"benchmark": "panel_physionet", "seed": args.seed, "max_steps": args.max_steps,
              "n_samples": args.n_samples, "test_stays": int(len(truth)), "held_out_values": int(held.sum()),
              "settings": imp_settings, "api": api, "protocol": proto, "api_over_protocol": ratio,
              "within_5pct": bool(all(abs(r - 1) <= 0.05 for r in ratio.values()))}
    from tsdiff.bench.records import git_commit, hardware

    result.update(hardware=hardware(), commit=git_commit())
    out = Path(args.out) / f"physionet_panel_api_vs_protocol_steps{args.max_steps}_seed{args.seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("api", "protocol", "api_over_protocol", "within_5pct")}, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
