"""Empirical quantiles of a sample ensemble.

Two methods are supported; both index the samples sorted along the sample axis,
``x_(0) <= ... <= x_(S-1)``, at the virtual position ``v = (S - 1) * q``:

- ``"nearest"`` (default): ``x_(round(v))`` with round-half-to-even, tsdiff's one quantile
  definition (:mod:`tsdiff.quantiles`, also used by ``Forecast`` and ``Imputer``). This is exactly
  GluonTS' ``SampleForecast.quantile`` (``sorted[int(np.round((S - 1) * q))]``), and
  equals ``np.quantile(..., method="nearest")`` and
  ``torch.quantile(..., interpolation="nearest")``. It makes :func:`quantile_crps`
  equal GluonTS ``Evaluator``'s ``mean_wQuantileLoss`` (TimeGrad and most GluonTS-based
  papers).
- ``"linear"``: linear interpolation between ``x_(floor(v))`` and ``x_(ceil(v))``;
  numpy's and ``torch.quantile``'s default, used by CSDI/PriSTI's ``calc_quantile_CRPS``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from tsdiff.errors import ConfigError
from tsdiff.metrics._common import ArrayLike, check_samples, like_input, pick_device, to_float64
from tsdiff.quantiles import nearest_rank_index

#: The 19 quantile levels 0.05, 0.10, ..., 0.95 of the normalised quantile CRPS.
DEFAULT_QUANTILES: tuple[float, ...] = tuple(float(q) for q in np.arange(1, 20) / 20)

QUANTILE_METHODS = ("nearest", "linear")


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    """Validate quantile levels: a non-empty 1-D sequence of numbers in [0, 1]."""
    qs = np.asarray(quantiles, dtype=np.float64)
    if qs.ndim != 1 or qs.size == 0 or not np.all((qs >= 0) & (qs <= 1)):
        raise ConfigError(
            f"quantiles must be a non-empty 1-D sequence of levels in [0, 1], got {quantiles!r}"
        )
    return tuple(float(q) for q in qs)


def check_method(method: str) -> str:
    """Validate the empirical quantile method name."""
    if method not in QUANTILE_METHODS:
        raise ConfigError(f"quantile method must be one of {QUANTILE_METHODS}, got {method!r}")
    return method


def quantiles_from_sorted(
    sorted_samples: torch.Tensor, quantiles: Sequence[float], method: str
) -> torch.Tensor:
    """Quantiles ``[Q, *shape]`` of samples ``[S, *shape]`` already sorted along axis 0."""
    n = sorted_samples.shape[0]
    device = sorted_samples.device
    if method == "nearest":
        # tsdiff's one quantile definition (= GluonTS): round((n - 1) * q), half to even.
        idx = [nearest_rank_index(n, q) for q in quantiles]
        return sorted_samples.index_select(0, torch.tensor(idx, device=device))
    virtual = [(n - 1) * q for q in quantiles]
    lo = [int(np.floor(v)) for v in virtual]
    hi = [min(i + 1, n - 1) for i in lo]
    shape = (len(quantiles),) + (1,) * (sorted_samples.ndim - 1)
    t = torch.tensor([v - i for v, i in zip(virtual, lo)], dtype=torch.float64, device=device)
    t = t.view(shape)
    a = sorted_samples.index_select(0, torch.tensor(lo, device=device))
    b = sorted_samples.index_select(0, torch.tensor(hi, device=device))
    diff = b - a
    # numpy's lerp: interpolate from the nearer end for accuracy.
    return torch.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def empirical_quantiles(
    samples: ArrayLike, quantiles: Sequence[float] = DEFAULT_QUANTILES, method: str = "nearest"
) -> ArrayLike:
    """Empirical quantiles of a sample ensemble along the sample axis.

    See the module docstring for the two methods (``"nearest"`` = GluonTS).

    Args:
        samples: ``[S, *shape]`` finite samples (numpy array or torch tensor), ``S >= 1``.
        quantiles: levels in [0, 1], default :data:`DEFAULT_QUANTILES`.
        method: ``"nearest"`` (GluonTS) or ``"linear"`` (numpy/torch default).

    Returns:
        ``[Q, *shape]`` float64 quantiles: a numpy array, or a torch tensor (on the
        input's device) for torch input.
    """
    qs = check_quantiles(quantiles)
    check_method(method)
    s = to_float64(samples, "samples", pick_device(samples))
    check_samples(s)
    return like_input(quantiles_from_sorted(torch.sort(s, dim=0).values, qs, method), samples)
