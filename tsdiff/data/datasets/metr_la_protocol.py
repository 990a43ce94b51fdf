"""The METR-LA week protocols (PROTOCOLS.md, protocol 4; this project's own).

One real week of METR-LA speeds (2016 steps of 5 minutes, 207 sensors) with DCRNN's
graph, split chronologically 70/10/20.

- ``metr_la``: forecasting 12 steps (1 h) from 12 steps of history; validation and
  test windows every ``test_stride`` steps (default 12: non-overlapping horizons).
- ``metr_la_impute``: imputation windows of 24 steps; held out in validation and test
  (a) ``missing="point"``: 25% of values at random, or (b) ``missing="block"``:
  per-sensor outages of 1-4 h (12-48 steps) plus 5% random points (GRIN / PriSTI).
  The realised missing rate is recorded in the protocol's ``meta``.
"""

from __future__ import annotations

from tsdiff.data.eval_masks import EVAL_MASKS
from tsdiff.data.forecasting import chronological_forecasting_protocol
from tsdiff.data.protocol import DATASETS, Protocol, chronological_imputation_protocol
from tsdiff.data.datasets.metr_la import load_metr_la
from tsdiff.errors import ConfigError


@DATASETS.register("metr_la")
def metr_la_forecasting(data_dir=None, context: int = 12, horizon: int = 12, test_stride: int = 12,
                        fractions=(0.7, 0.1, 0.2)) -> Protocol:
    """METR-LA week forecasting, ``context`` -> ``horizon`` steps (see the module docstring)."""
    series = load_metr_la(data_dir)
    return chronological_forecasting_protocol(
        f"metr_la-week-c{context}-h{horizon}-s{test_stride}", series, context, horizon, fractions=fractions,
        test_stride=test_stride, checksums=series.attrs.get("checksums", {}), meta={"units": "mph"},
    )


@DATASETS.register("metr_la_impute")
def metr_la_imputation(data_dir=None, window: int = 24, missing: str = "point", seed: int = 0,
                       fractions=(0.7, 0.1, 0.2)) -> Protocol:
    """METR-LA week imputation with point or block missing values (see the module docstring)."""
    if missing not in ("point", "block"):
        raise ConfigError(f"data.options.missing must be 'point' or 'block', got {missing!r}")
    series = load_metr_la(data_dir)
    observed = series.observed_mask
    options = {"point": {"rate": 0.25}, "block": {"min_len": 12, "max_len": 48, "block_prob": 0.0015, "point_rate": 0.05}}
    held = EVAL_MASKS.get(missing)(observed, seed=seed, **options[missing])
    return chronological_imputation_protocol(
        f"metr_la-week-impute-{missing}-w{window}", series, window, held.target, fractions=fractions,
        checksums=series.attrs.get("checksums", {}), meta={"units": "mph", "missing": missing, "seed": seed},
    )
