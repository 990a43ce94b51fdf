"""Streaming accumulation of the metrics over evaluation batches.

The normalised CRPS is a ratio of sums over the whole evaluation set, not a mean of
per-batch values, so the evaluation loop keeps float64 running sums and divides once.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from tsdiff.errors import DataError
from tsdiff.metrics._common import ArrayLike, check_point, prepare, resolve_sum_axes
from tsdiff.metrics.crps import (
    abs_target_sum,
    ensemble_crps_terms,
    normalised_crps,
    quantile_loss_sums,
    sum_over_axes,
)
from tsdiff.metrics.point import error_sums
from tsdiff.metrics.quantiles import DEFAULT_QUANTILES, check_method, check_quantiles
from tsdiff.metrics.scores import (
    DEFAULT_COVERAGE_LEVELS,
    check_bins,
    check_levels,
    coverage_counts,
    energy_score_terms,
    pit_counts,
    qice_from_histogram,
)


class MetricAccumulator:
    """Running sums of CRPS / MAE / RMSE over batches; :meth:`compute` divides once.

    ``update`` over several batches followed by ``compute`` equals the one-shot
    :func:`quantile_crps`, :func:`mae`, :func:`rmse` (and :func:`crps_sum`) on the
    concatenated batches, up to float64 rounding; with ``extended`` (default) also
    :func:`mre`, :func:`ensemble_crps`, :func:`energy_score` (axis 0 of each batch =
    windows), :func:`interval_coverage`, :func:`quantile_loss` and :func:`qice` with
    the PIT histogram.

    Args:
        quantiles: quantile levels of the CRPS, default 0.05, ..., 0.95.
        point: point forecast for MAE/RMSE, ``"median"`` (default) or ``"mean"``.
        method: empirical quantile method, ``"nearest"`` (GluonTS, default) or
            ``"linear"``.
        crps_sum: also accumulate CRPS-sum (reported as ``"crps_sum"``).
        sum_axes: target axes summed for CRPS-sum; default as in :func:`crps_sum`.
        extended: also accumulate the scores of :mod:`tsdiff.metrics.scores` (keys
            ``mre``, ``ensemble_crps``, ``energy_score``, ``coverage_50`` /
            ``coverage_90``, ``quantile_loss`` ({level: wQL}), ``qice``,
            ``pit_histogram``).
        coverage_levels: central interval levels for ``coverage_<100 c>``.
        pit_bins: bins of the PIT histogram / QICE.
    """

    def __init__(
        self,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        point: str = "median",
        *,
        method: str = "nearest",
        crps_sum: bool = False,
        sum_axes: Optional[Sequence[int]] = None,
        extended: bool = True,
        coverage_levels: Sequence[float] = DEFAULT_COVERAGE_LEVELS,
        pit_bins: int = 10,
    ) -> None:
        self.extended = bool(extended)
        self.coverage_levels = check_levels(coverage_levels)
        self.pit_bins = check_bins(pit_bins)
        self.quantiles = check_quantiles(quantiles)
        self.point = check_point(point)
        self.method = check_method(method)
        self.crps_sum = bool(crps_sum)
        self.sum_axes = sum_axes
        self.reset()

    def reset(self) -> None:
        """Forget all accumulated batches."""
        self._ql = np.zeros(len(self.quantiles), dtype=np.float64)
        self._abs_target = 0.0
        self._abs_err = 0.0
        self._sq_err = 0.0
        self._n = 0
        self._ql_sum = np.zeros(len(self.quantiles), dtype=np.float64)
        self._abs_target_sum = 0.0
        self._n_sum = 0
        self._ens_crps = 0.0
        self._energy = 0.0
        self._n_windows = 0
        self._covered = np.zeros(len(self.coverage_levels), dtype=np.float64)
        self._pit = np.zeros(self.pit_bins, dtype=np.float64)

    def update(self, samples: ArrayLike, target: ArrayLike, mask: Optional[Any] = None) -> None:
        """Add one batch.

        Args:
            samples: ``[S, *shape]`` forecast samples, sample axis first.
            target: ``shape`` ground truth; may hold NaN where ``mask`` is False.
            mask: ``shape`` bool (or 0/1); ``None`` = all entries. A batch without
                mask entries is allowed and adds nothing.

        Raises:
            DataError: shape mismatch, non-finite samples, NaN target inside the mask.
        """
        prep = prepare(samples, target, mask, allow_empty=True)
        if prep.n_targets == 0:
            return
        ordered = torch.sort(prep.samples, dim=0).values
        self._ql += quantile_loss_sums(ordered, prep.target, prep.mask, self.quantiles, self.method)
        self._abs_target += abs_target_sum(prep.target, prep.mask)
        abs_err, sq_err = error_sums(ordered, prep.target, prep.mask, self.point)
        self._abs_err += abs_err
        self._sq_err += sq_err
        self._n += prep.n_targets
        if self.extended:
            terms = ensemble_crps_terms(ordered, prep.target)
            self._ens_crps += float(torch.where(prep.mask, terms, torch.zeros_like(terms)).sum())
            es, _ = energy_score_terms(prep)
            self._energy += float(es.sum())
            self._n_windows += int(es.numel())
            self._covered += coverage_counts(
                ordered, prep.target, prep.mask, self.coverage_levels, self.method
            )
            self._pit += pit_counts(prep.samples, prep.target, prep.mask, self.pit_bins)
        if self.crps_sum:
            red = sum_over_axes(prep, resolve_sum_axes(self.sum_axes, prep.target.ndim))
            ordered_sum = torch.sort(red.samples, dim=0).values
            self._ql_sum += quantile_loss_sums(
                ordered_sum, red.target, red.mask, self.quantiles, self.method
            )
            self._abs_target_sum += abs_target_sum(red.target, red.mask)
            self._n_sum += red.n_targets

    def compute(self) -> dict:
        """Metrics over everything accumulated so far.

        Returns:
            ``{"crps": float, "mae": float, "rmse": float, "n_targets": int}``, plus
            ``"crps_sum": float`` if constructed with ``crps_sum=True``.

        Raises:
            DataError: no target entries accumulated, or ``sum |y| == 0``.
        """
        if self._n == 0:
            raise DataError(
                "no target entries were accumulated: call update() with at least one batch "
                "whose mask has a True entry before compute()"
            )
        out = {
            "crps": normalised_crps(self._ql, self._abs_target, self._n),
            "mae": self._abs_err / self._n,
            "rmse": (self._sq_err / self._n) ** 0.5,
            "n_targets": int(self._n),
        }
        if self.extended:
            norm = self._abs_target if self._abs_target > 0 else float("nan")
            freq = self._pit / self._n
            out.update({
                "mre": self._abs_err / norm,
                "ensemble_crps": self._ens_crps / self._n,
                "energy_score": self._energy / self._n_windows,
                **{f"coverage_{round(100 * c)}": float(k) / self._n
                   for c, k in zip(self.coverage_levels, self._covered)},
                "quantile_loss": {f"{q:g}": float(v) / norm for q, v in zip(self.quantiles, self._ql)},
                "qice": qice_from_histogram(freq),
                "pit_histogram": [float(f) for f in freq],
            })
        if self.crps_sum:
            out["crps_sum"] = normalised_crps(
                self._ql_sum, self._abs_target_sum, self._n_sum, "CRPS-sum"
            )
        return out
