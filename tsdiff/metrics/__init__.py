"""Probabilistic forecast metrics: masked, for numpy arrays and torch tensors.

Conventions: ``samples`` is ``[S, *shape]`` (sample axis first), ``target`` and
``mask`` are ``shape`` (any rank, e.g. ``[B, L, N, C]``); only entries where ``mask``
is True are scored, so ``target`` may hold NaN elsewhere. Inputs may be numpy arrays
or torch tensors on any device; everything is computed in float64 and aggregate
metrics are returned as Python floats. Bad input raises
:class:`~tsdiff.errors.DataError`.

- :func:`quantile_crps`: normalised 19-quantile CRPS (CSDI / GluonTS
  ``mean_wQuantileLoss``).
- :func:`crps_sum`: the same on sums over the spatial/feature axes.
- :func:`ensemble_crps`: ``E|X - y| - 0.5 E|X - X'|`` in data units (properscoring).
- :func:`mae`, :func:`rmse`: errors of the sample median (or mean).
- :func:`quantile_loss` (per level), :func:`mre`, :func:`interval_coverage`,
  :func:`energy_score`, :func:`pit_histogram`, :func:`qice`: see
  :mod:`tsdiff.metrics.scores`.
- :class:`MetricAccumulator`: the above streamed over batches (ratio of sums).
"""

from tsdiff.metrics.accumulate import MetricAccumulator
from tsdiff.metrics.crps import crps_sum, ensemble_crps, quantile_crps
from tsdiff.metrics.point import mae, point_forecast, rmse
from tsdiff.metrics.quantiles import DEFAULT_QUANTILES, empirical_quantiles
from tsdiff.metrics.scores import (
    DEFAULT_COVERAGE_LEVELS,
    calibrated_coverage,
    energy_score,
    interval_coverage,
    mre,
    pit_histogram,
    qice,
    quantile_loss,
)

__all__ = [
    "DEFAULT_COVERAGE_LEVELS",
    "DEFAULT_QUANTILES",
    "calibrated_coverage",
    "energy_score",
    "interval_coverage",
    "mre",
    "pit_histogram",
    "qice",
    "quantile_loss",
    "MetricAccumulator",
    "crps_sum",
    "empirical_quantiles",
    "ensemble_crps",
    "mae",
    "point_forecast",
    "quantile_crps",
    "rmse",
]
