"""The PhysioNet 2012 imputation protocol of CSDI (PROTOCOLS.md, protocol 2).

Each ICU stay is one window of 48 hourly steps x 35 variables. Patients are split
70/10/20 into train/val/test with a fixed seed. In every validation and test stay, a
fraction ``missing_ratio`` (10%, 50% or 90%) of the observed values is held out at
random with a fixed seed and scored. Values are z-scored per variable with statistics
of the observed training values, and metrics are computed on that normalised scale
(as CSDI reports them). The stays are laid end to end on one relative hourly time axis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.protocol import DATASETS, Protocol, SplitWindows, fit_scaler_on_windows
from tsdiff.data.series import Series
from tsdiff.data.datasets.physionet import NUM_HOURS, load_physionet2012
from tsdiff.errors import ConfigError


def hold_out_per_window(observed: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """In each window ``[W, L, N]`` hide ``int(ratio * n_observed)`` observed entries at random.

    Returns:
        bool ``[W, L, N]``, a subset of ``observed``. Window w uses a generator seeded
        by ``(seed, w)``, so the mask of a stay does not depend on the other stays.
    """
    out = np.zeros_like(observed, dtype=bool)
    for w in range(observed.shape[0]):
        idx = np.flatnonzero(observed[w])
        k = int(len(idx) * ratio)
        if k:
            rng = np.random.default_rng([seed, w])
            out[w].flat[rng.choice(idx, size=k, replace=False)] = True
    return out


@DATASETS.register("physionet2012")
def physionet_protocol(
    data_dir=None,
    missing_ratio: float = 0.1,
    seed: int = 1,
    split_seed: int = 0,
    fractions: tuple[float, float, float] | list[float] = (0.7, 0.1, 0.2),
) -> Protocol:
    """PhysioNet 2012 imputation (see the module docstring).

    Args:
        missing_ratio: fraction of observed values held out in val/test stays, in (0, 1).
        seed: seed of the held-out entries.
        split_seed: seed of the patient split.
        fractions: train/val/test fractions of patients.
    """
    if not isinstance(missing_ratio, (int, float)) or not 0.0 < missing_ratio < 1.0:
        raise ConfigError(f"data.options.missing_ratio must be in (0, 1), e.g. 0.1, 0.5 or 0.9; got {missing_ratio!r}")
    data = load_physionet2012(data_dir)
    S, L, N = data.values.shape
    parts = data.split(tuple(fractions), seed=split_seed)
    observed = ~np.isnan(data.values)
    held_out = np.zeros_like(observed)
    for split in ("val", "test"):
        idx = parts[split]
        held_out[idx] = hold_out_per_window(observed[idx], missing_ratio, seed + (0 if split == "test" else 10_000))
    index = pd.date_range("1970-01-01", periods=S * L, freq="h", name="hours_since_first_admission")
    series = Series(
        values=data.values.reshape(S * L, N, 1),
        time_index=index,
        node_names=list(data.variables),
        channel_names=["value"],
        attrs={"dataset": "physionet2012", "record_ids": data.record_ids.tolist(),
               "note": "stays laid end to end; each window is one stay of 48 hours"},
    )
    starts = {k: np.sort(v).astype(np.int64) * L for k, v in parts.items()}
    splits = {
        "train": SplitWindows(starts["train"]),
        "val": SplitWindows(starts["val"], np.zeros(len(starts["val"]), dtype=np.int64)),
        "test": SplitWindows(starts["test"], np.zeros(len(starts["test"]), dtype=np.int64)),
    }
    return Protocol(
        id=f"physionet2012-csdi-{round(missing_ratio * 100)}pct",
        series=series,
        eval_mask=held_out.reshape(S * L, N, 1),
        window=NUM_HOURS,
        splits=splits,
        scaler=fit_scaler_on_windows(series, starts["train"], L),
        checksums=data.attrs.get("checksums", {}),
        meta={"missing_ratio": missing_ratio, "seed": seed, "split_seed": split_seed, "units": "z-score"},
        metric_space="scaled",
        sample_length=L,
    )
