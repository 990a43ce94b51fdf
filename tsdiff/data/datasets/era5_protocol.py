"""ERA5 UK 2 m temperature protocols (PROTOCOLS.md, protocol 5; this project's own).

744 hourly fields of 33 x 49 cells (flattened to N = 1617 nodes, grid shape in
``series.spatial``), split chronologically 70/10/20. Metrics in Kelvin.

- ``era5``: forecasting 24 h from 24 h of history; validation and test windows every
  ``test_stride`` hours (default 24).
- ``era5_impute``: imputation windows of 24 h; in validation and test, random cells
  (``point_rate``, default 10%) and, in each evaluation window, ``patches`` square
  patches of ``patch`` x ``patch`` cells are hidden for the whole window.
"""

from __future__ import annotations

import numpy as np

from tsdiff.data.forecasting import chronological_forecasting_protocol
from tsdiff.data.protocol import DATASETS, Protocol, chronological_imputation_protocol
from tsdiff.data.datasets.era5 import load_era5
from tsdiff.errors import ConfigError


@DATASETS.register("era5")
def era5_forecasting(data_dir=None, context: int = 24, horizon: int = 24, test_stride: int = 24,
                     fractions=(0.7, 0.1, 0.2)) -> Protocol:
    """ERA5 forecasting, ``context`` -> ``horizon`` hours (see the module docstring)."""
    series = load_era5(data_dir)
    return chronological_forecasting_protocol(
        f"era5_uk_t2m-c{context}-h{horizon}-s{test_stride}", series, context, horizon, fractions=fractions,
        test_stride=test_stride, checksums=series.attrs.get("checksums", {}), meta={"units": "K"},
    )


def patch_mask(T: int, grid: tuple[int, int], starts, block: int, patches: int, patch: int,
               point_rate: float, seed: int) -> np.ndarray:
    """Hidden cells ``[T, H * W]``: random points plus square patches held over time blocks.

    Args:
        T: time steps; grid: ``(H, W)``; starts: first step of each block (e.g. the
        evaluation windows); block: steps a patch stays hidden; patches: patches per
        block; patch: patch side in cells; point_rate: probability that any cell is hidden.
    """
    H, W = grid
    if not 1 <= patch <= min(H, W):
        raise ConfigError(f"data.options.patch must be in 1..{min(H, W)}, got {patch}")
    rng = np.random.default_rng(seed)
    hidden = rng.random((T, H, W)) < point_rate
    for a in starts:
        for _ in range(patches):
            i, j = rng.integers(0, H - patch + 1), rng.integers(0, W - patch + 1)
            hidden[a : a + block, i : i + patch, j : j + patch] = True
    return hidden.reshape(T, H * W)


@DATASETS.register("era5_impute")
def era5_imputation(data_dir=None, window: int = 24, point_rate: float = 0.1, patches: int = 3, patch: int = 6,
                    seed: int = 0, fractions=(0.7, 0.1, 0.2)) -> Protocol:
    """ERA5 imputation with random cells and square patches hidden (see the module docstring)."""
    if not 0.0 <= point_rate < 1.0:
        raise ConfigError(f"data.options.point_rate must be in [0, 1), got {point_rate!r}")
    series = load_era5(data_dir)

    def held_out(splits: dict) -> np.ndarray:  # patches cover whole evaluation windows
        starts = np.concatenate([splits["val"].starts, splits["test"].starts])
        return patch_mask(series.shape[0], series.spatial.shape, starts, window, patches, patch, point_rate,
                          seed)[:, :, None]

    return chronological_imputation_protocol(
        f"era5_uk_t2m-impute-w{window}-p{point_rate}-{patches}x{patch}", series, window, held_out,
        fractions=fractions, checksums=series.attrs.get("checksums", {}), meta={"units": "K"},
    )
