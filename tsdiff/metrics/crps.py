"""CRPS metrics: normalised quantile CRPS, CRPS-sum and the ensemble CRPS.

Normalised quantile CRPS (CSDI, Tashiro et al. 2021; PriSTI; TimeGrad, Rasul et al.
2021), identical to GluonTS ``Evaluator``'s ``mean_wQuantileLoss``::

    QL_q = 2 * sum_targets |(y - yhat_q) * (1{y <= yhat_q} - q)|     (pinball loss)
    CRPS = mean_q(QL_q) / sum_targets |y|

with ``yhat_q`` the empirical ``q``-quantile of the samples (see
:mod:`tsdiff.metrics.quantiles`) and sums over the entries where ``mask`` is True.
It is a ratio of sums over the whole evaluation set; use
:class:`~tsdiff.metrics.MetricAccumulator` to stream it over batches.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from tsdiff.errors import DataError
from tsdiff.metrics._common import ArrayLike, Prepared, prepare, resolve_sum_axes
from tsdiff.metrics.quantiles import (
    DEFAULT_QUANTILES,
    check_method,
    check_quantiles,
    quantiles_from_sorted,
)


def quantile_loss_sums(
    sorted_samples: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    quantiles: Sequence[float],
    method: str,
) -> np.ndarray:
    """Per-level ``QL_q = 2 * sum_mask |(y - yhat_q) * (1{y <= yhat_q} - q)|``, shape ``[Q]``."""
    out = np.zeros(len(quantiles), dtype=np.float64)
    zero = torch.zeros((), dtype=torch.float64, device=target.device)
    for i, q in enumerate(quantiles):  # one level at a time keeps memory at O(|shape|)
        yhat = quantiles_from_sorted(sorted_samples, (q,), method)[0]
        loss = torch.abs((target - yhat) * ((target <= yhat).to(torch.float64) - q))
        out[i] = 2.0 * float(torch.where(mask, loss, zero).sum())
    return out


def abs_target_sum(target: torch.Tensor, mask: torch.Tensor) -> float:
    """``sum_mask |y|`` (the CRPS normaliser)."""
    return float(torch.where(mask, target.abs(), torch.zeros_like(target)).sum())


def normalised_crps(
    ql_sums: np.ndarray, abs_sum: float, n_targets: int, what: str = "CRPS"
) -> float:
    """``mean_q(QL_q) / abs_sum``; raise :class:`DataError` if the normaliser is 0."""
    if abs_sum == 0.0:
        raise DataError(
            f"the normalised {what} is undefined: sum |y| over the {n_targets} target entries "
            "is 0 (every target value is zero), so it would divide by zero. Use "
            "ensemble_crps (unnormalised CRPS in data units), or evaluate in unscaled units"
        )
    return float(np.mean(ql_sums) / abs_sum)


def sum_over_axes(prep: Prepared, axes: tuple[int, ...]) -> Prepared:
    """Sum masked target and samples over target ``axes``; keep steps with a mask entry.

    Only entries inside the mask enter the sums (``prep.target`` is already 0 outside
    it); the reduced mask is True where at least one summed entry was.
    """
    zero = torch.zeros((), dtype=torch.float64, device=prep.samples.device)
    if axes:
        samples = torch.where(prep.mask, prep.samples, zero).sum(dim=tuple(a + 1 for a in axes))
        target = prep.target.sum(dim=axes)
        mask = prep.mask.sum(dim=axes) > 0
    else:
        samples, target, mask = prep.samples, prep.target, prep.mask
    return Prepared(samples, target, mask, int(mask.sum()))


def ensemble_crps_terms(sorted_samples: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-entry ensemble CRPS ``E|X - y| - 0.5 E|X - X'|`` from sorted samples.

    Uses ``0.5 E|X - X'| = sum_k k (S - k) (x_(k+1) - x_(k)) / S^2`` (``k = 1..S-1``,
    sorted), so it costs O(S log S) per entry instead of O(S^2); every term is >= 0,
    which keeps it exactly 0 for a constant ensemble.
    """
    n = sorted_samples.shape[0]
    k = torch.arange(1, n, dtype=torch.float64, device=sorted_samples.device)
    weights = (k * (n - k) / (n * n)).view((n - 1,) + (1,) * target.ndim)
    spread = (weights * (sorted_samples[1:] - sorted_samples[:-1])).sum(dim=0)
    return ((sorted_samples - target).abs().mean(dim=0) - spread).clamp_min(0.0)


def _sorted(samples: torch.Tensor) -> torch.Tensor:
    return torch.sort(samples, dim=0).values


def quantile_crps(
    samples: ArrayLike,
    target: ArrayLike,
    mask: Optional[Any] = None,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    method: str = "nearest",
) -> float:
    """Normalised quantile CRPS of a sample ensemble (CSDI / GluonTS ``mean_wQuantileLoss``).

    ``mean_q 2 * sum |(y - yhat_q)(1{y <= yhat_q} - q)| / sum |y|`` over the masked
    entries (module docstring). With the defaults it equals GluonTS
    ``Evaluator(quantiles=DEFAULT_QUANTILES)``'s ``mean_wQuantileLoss``.

    Args:
        samples: ``[S, *shape]`` forecast samples, sample axis first (numpy or torch).
        target: ``shape`` ground truth; may hold NaN where ``mask`` is False.
        mask: ``shape`` bool (or 0/1), True = evaluate this entry; ``None`` = all.
        quantiles: quantile levels, default 0.05, 0.10, ..., 0.95.
        method: empirical quantile method, ``"nearest"`` (GluonTS, default) or
            ``"linear"`` (``torch.quantile`` default, as in CSDI's code).

    Returns:
        The normalised CRPS as a Python float.

    Raises:
        DataError: bad shapes/values (see :func:`tsdiff.metrics._common.prepare`), or
            ``sum |y| == 0`` over the masked entries.
    """
    qs, method = check_quantiles(quantiles), check_method(method)
    prep = prepare(samples, target, mask)
    sums = quantile_loss_sums(_sorted(prep.samples), prep.target, prep.mask, qs, method)
    return normalised_crps(sums, abs_target_sum(prep.target, prep.mask), prep.n_targets)


def crps_sum(
    samples: ArrayLike,
    target: ArrayLike,
    mask: Optional[Any] = None,
    *,
    sum_axes: Optional[Sequence[int]] = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    method: str = "nearest",
) -> float:
    """Normalised quantile CRPS of the sum over the spatial/feature axes (CRPS-sum).

    Target and every sample are summed over ``sum_axes`` at each remaining position
    (time step), using only entries where ``mask`` is True; positions without any mask
    entry are dropped. Then :func:`quantile_crps` is applied. For a full mask it equals
    GluonTS ``MultivariateEvaluator(target_agg_funcs={"sum": np.sum})``'s
    ``m_sum_mean_wQuantileLoss`` (TimeGrad, CSDI).

    Args:
        samples: ``[S, *shape]`` forecast samples, sample axis first.
        target: ``shape`` ground truth; may hold NaN where ``mask`` is False.
        mask: ``shape`` bool (or 0/1); ``None`` = all entries.
        sum_axes: axes of ``target`` (not ``samples``) to sum over. Default ``None``:
            every axis after the time axis of a ``[B, L, N, C]`` layout, i.e.
            ``(2, 3)`` for rank 4 and ``(2,)`` for rank 3 ``[B, L, N]``; targets of
            rank < 3 need it explicitly. ``()`` sums nothing (= :func:`quantile_crps`).
        quantiles: quantile levels, default 0.05, ..., 0.95.
        method: ``"nearest"`` (GluonTS, default) or ``"linear"``.

    Returns:
        The normalised CRPS-sum as a Python float.

    Raises:
        DataError: bad input, bad ``sum_axes``, or a zero normaliser.
    """
    qs, method = check_quantiles(quantiles), check_method(method)
    prep = prepare(samples, target, mask)
    red = sum_over_axes(prep, resolve_sum_axes(sum_axes, prep.target.ndim))
    sums = quantile_loss_sums(_sorted(red.samples), red.target, red.mask, qs, method)
    return normalised_crps(sums, abs_target_sum(red.target, red.mask), red.n_targets, "CRPS-sum")


def ensemble_crps(samples: ArrayLike, target: ArrayLike, mask: Optional[Any] = None) -> float:
    """Ensemble CRPS ``E|X - y| - 0.5 E|X - X'|`` in data units, averaged over targets.

    The (non-fair) CRPS of the empirical distribution of the samples (Gneiting &
    Raftery 2007); equals ``properscoring.crps_ensemble``. Computed in O(S log S) per
    entry from sorted samples. Not normalised, so it is defined when all targets are 0.

    Args:
        samples: ``[S, *shape]`` forecast samples, sample axis first.
        target: ``shape`` ground truth; may hold NaN where ``mask`` is False.
        mask: ``shape`` bool (or 0/1); ``None`` = all entries.

    Returns:
        Mean CRPS over the masked entries, as a Python float.
    """
    prep = prepare(samples, target, mask)
    terms = ensemble_crps_terms(_sorted(prep.samples), prep.target)
    return float(torch.where(prep.mask, terms, torch.zeros_like(terms)).sum()) / prep.n_targets
