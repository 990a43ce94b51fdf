"""Point forecasts of a sample ensemble and their MAE / RMSE.

The point forecast is the sample median (default) or the sample mean. The median is
the textbook one (``np.median``: mean of the two middle samples when ``S`` is even).
For odd ``S`` it equals GluonTS' median (``quantile(0.5)``, nearest rank) and
``torch.median`` (CSDI), which both pick one of the two middle samples for even ``S``.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from tsdiff.metrics._common import (
    ArrayLike,
    check_point,
    check_samples,
    like_input,
    pick_device,
    prepare,
    to_float64,
)
from tsdiff.metrics.quantiles import quantiles_from_sorted


def point_from_sorted(sorted_samples: torch.Tensor, point: str) -> torch.Tensor:
    """Median (linear 0.5-quantile) or mean of samples ``[S, *shape]`` sorted on axis 0."""
    if point == "mean":
        return sorted_samples.mean(dim=0)
    return quantiles_from_sorted(sorted_samples, (0.5,), "linear")[0]


def error_sums(
    sorted_samples: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, point: str
) -> tuple[float, float]:
    """``(sum_mask |y - yhat|, sum_mask (y - yhat)^2)`` for the point forecast ``yhat``."""
    err = torch.where(mask, target - point_from_sorted(sorted_samples, point), 0.0)
    return float(err.abs().sum()), float((err * err).sum())


def point_forecast(samples: ArrayLike, point: str = "median") -> ArrayLike:
    """Point forecast of a sample ensemble: sample median or mean along the sample axis.

    Args:
        samples: ``[S, *shape]`` finite samples (numpy array or torch tensor), ``S >= 1``.
        point: ``"median"`` (``np.median`` convention, default) or ``"mean"``.

    Returns:
        ``shape`` float64 point forecast: numpy array, or torch tensor for torch input.
    """
    check_point(point)
    s = to_float64(samples, "samples", pick_device(samples))
    check_samples(s)
    return like_input(point_from_sorted(torch.sort(s, dim=0).values, point), samples)


def mae(
    samples: ArrayLike, target: ArrayLike, mask: Optional[Any] = None, *, point: str = "median"
) -> float:
    """Mean absolute error of the point forecast over the masked target entries.

    Args:
        samples: ``[S, *shape]`` forecast samples, sample axis first.
        target: ``shape`` ground truth; may hold NaN where ``mask`` is False.
        mask: ``shape`` bool (or 0/1); ``None`` = all entries.
        point: ``"median"`` (default) or ``"mean"`` of the samples.

    Returns:
        ``mean_mask |y - yhat|`` as a Python float.
    """
    check_point(point)
    prep = prepare(samples, target, mask)
    abs_sum, _ = error_sums(torch.sort(prep.samples, dim=0).values, prep.target, prep.mask, point)
    return abs_sum / prep.n_targets


def rmse(
    samples: ArrayLike, target: ArrayLike, mask: Optional[Any] = None, *, point: str = "median"
) -> float:
    """Root mean squared error of the point forecast over the masked target entries.

    Args:
        samples: ``[S, *shape]`` forecast samples, sample axis first.
        target: ``shape`` ground truth; may hold NaN where ``mask`` is False.
        mask: ``shape`` bool (or 0/1); ``None`` = all entries.
        point: ``"median"`` (default) or ``"mean"`` of the samples.

    Returns:
        ``sqrt(mean_mask (y - yhat)^2)`` as a Python float.
    """
    check_point(point)
    prep = prepare(samples, target, mask)
    _, sq_sum = error_sums(torch.sort(prep.samples, dim=0).values, prep.target, prep.mask, point)
    return (sq_sum / prep.n_targets) ** 0.5
