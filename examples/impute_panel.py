"""Panel imputation: PhysioNet 2012 ICU stays as independent samples ``[n, 48, 35]``.

Each stay is imputed from its own values only. 10% of the observed values of the last 400
stays are hidden and scored (MAE in the variables' units, and on z-scores as CSDI reports),
next to per-stay linear interpolation along time. ``--fast``: seconds, for tests.

    python examples/impute_panel.py            # a few minutes on 2 CPU cores
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TINY, parse  # noqa: E402

import tsdiff  # noqa: E402
from tsdiff.data.datasets.physionet import load_physionet2012  # noqa: E402


def interpolate_stays(stays: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Linear interpolation along time within each stay; a variable never seen in a stay gets ``fallback``."""
    out = stays.copy()
    t = np.arange(stays.shape[1])
    for s in out:
        for j in range(s.shape[1]):
            known = ~np.isnan(s[:, j])
            s[:, j] = np.interp(t, t[known], s[known, j]) if known.any() else fallback[j]
    return out


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    stays = load_physionet2012(args.data_dir).values            # [4000, 48, 35], about 80% missing
    n_train, n_test = (200, 40) if args.fast else (3200, 400)
    train, test = stays[:n_train], stays[-n_test:]
    rng = np.random.default_rng(0)
    observed = np.argwhere(~np.isnan(test))
    hide = observed[rng.choice(len(observed), len(observed) // 10, replace=False)]
    masked = test.copy()
    masked[tuple(hide.T)] = np.nan

    options = dict(max_steps=4, n_samples=2, sampling_steps=2, model_options=TINY) if args.fast \
        else dict(max_time="3min", max_steps=2000)
    imputer = tsdiff.Imputer(random_state=0, **options).fit(train)
    filled = imputer.transform(masked)                           # [n_test, 48, 35], observed values kept
    truth = test[tuple(hide.T)]
    std = np.nanstd(train.reshape(-1, 35), axis=0)[hide[:, 2]]
    linear = interpolate_stays(masked, np.nanmean(train.reshape(-1, 35), axis=0))
    keep = ~np.isnan(masked)
    result = {
        "n_hidden": int(len(truth)),
        "observed_identical": bool(np.array_equal(filled[keep], masked[keep])),
        "mae": float(np.abs(filled[tuple(hide.T)] - truth).mean()),
        "mae_z": float((np.abs(filled[tuple(hide.T)] - truth) / std).mean()),
        "linear_mae_z": float((np.abs(linear[tuple(hide.T)] - truth) / std).mean()),
    }
    print(f"hidden values: {len(truth)}; MAE on z-scores: tsdiff {result['mae_z']:.3f}, "
          f"linear interpolation {result['linear_mae_z']:.3f}")
    return result


if __name__ == "__main__":
    main()
