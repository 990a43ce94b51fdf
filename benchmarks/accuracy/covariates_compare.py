"""Covariates against plain on ETTh1 ``OT``: the paired comparison of ``forecaster_covariates.py``'s records.

Reads the ``covariates`` and ``plain`` records of one part and origin count for each seed and
prints, per seed, both CRPS, their difference (covariates less plain; negative: the covariates
forecast better) and the origins each variant wins; then the mean over seeds, and a 95% interval
for the mean difference from a moving-block bootstrap of the per-origin differences averaged over
the seeds (blocks of 7 consecutive origins, a week, since neighbouring origins' errors are
correlated; 5,000 resamples, a fixed generator). Reads records only; nothing is fitted.

    python benchmarks/accuracy/covariates_compare.py --part report --origins 145
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecaster_covariates import record_stem  # noqa: E402
from forecaster_tables import MAX_ORIGINS, OUT, SPANS, origins_label  # noqa: E402

BLOCK, RESAMPLES = 7, 5000


def record_name(part: str, origins: int, variant: str, seed: int) -> str:
    """The file name ``forecaster_covariates.py`` gives a record of ``origins`` origins (a run with
    the default cap scores :data:`MAX_ORIGINS`; any other count comes from another cap)."""
    return record_stem(part, origins_label(origins, origins), variant, seed) + ".json"


def block_bootstrap(diff: np.ndarray, block: int = BLOCK, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of ``resamples`` moving-block resamples of the series ``diff`` (each as long as it)."""
    n = len(diff)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(resamples, -(-n // block)))
    idx = (starts[:, :, None] + np.arange(block)).reshape(resamples, -1)[:, :n]
    return diff[idx].mean(axis=1)


def compare(folder: Path, part: str, origins: int, seeds) -> dict:
    """Per-seed and mean CRPS of both variants, and the bootstrap interval of the mean difference."""
    rows, diffs = [], []
    for seed in seeds:
        per = {v: np.asarray(json.loads((folder / record_name(part, origins, v, seed)).read_text())
                             ["metrics"]["crps_per_origin"]) for v in ("covariates", "plain")}
        if not len(per["covariates"]) == len(per["plain"]) == origins:
            raise ValueError(f"seed {seed}: the records hold {len(per['covariates'])} and {len(per['plain'])} "
                             f"origins, expected {origins}")
        diff = per["covariates"] - per["plain"]
        rows.append({"seed": seed, "covariates": per["covariates"].mean(), "plain": per["plain"].mean(),
                     "difference": diff.mean(), "covariates_win": int((diff < 0).sum()),
                     "plain_win": int((diff > 0).sum())})
        diffs.append(diff)
    mean_diff = np.mean(diffs, axis=0)
    boot = block_bootstrap(mean_diff)
    return {"part": part, "origins": origins, "seeds": rows,
            "covariates": float(np.mean([r["covariates"] for r in rows])),
            "plain": float(np.mean([r["plain"] for r in rows])), "difference": float(mean_diff.mean()),
            "interval_95": [float(v) for v in np.percentile(boot, [2.5, 97.5])]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=sorted(SPANS), default="report")
    parser.add_argument("--origins", type=int, default=MAX_ORIGINS,
                        help=f"origins per record ({MAX_ORIGINS}, or all the span holds)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--records", default=str(OUT), help="records folder")
    args = parser.parse_args(argv)
    result = compare(Path(args.records), args.part, args.origins, args.seeds)
    for r in result["seeds"]:
        print(f"seed {r['seed']}: covariates {r['covariates']:.4f}  plain {r['plain']:.4f}  difference "
              f"{r['difference']:+.4f}  origins won {r['covariates_win']} / {r['plain_win']}")
    lo, hi = result["interval_95"]
    print(f"mean: covariates {result['covariates']:.4f}  plain {result['plain']:.4f}  difference "
          f"{result['difference']:+.4f} ({result['difference'] / result['plain']:+.1%}), 95% interval "
          f"[{lo:+.4f}, {hi:+.4f}]")
    return result


if __name__ == "__main__":
    main()
