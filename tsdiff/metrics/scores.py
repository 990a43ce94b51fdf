"""More scores of a sample ensemble: per-level quantile loss, MRE, interval coverage,
energy score and a calibration summary (PIT histogram and QICE).

Same conventions as the other metrics (:mod:`tsdiff.metrics`): ``samples`` is
``[S, *shape]``, ``target`` and ``mask`` are ``shape``; only mask entries are scored;
inputs may be numpy or torch; bad input raises :class:`~tsdiff.errors.DataError`.

Definitions (PROTOCOLS.md):

- per-level quantile loss ``wQL_q = 2 * sum |(y - yhat_q)(1{y <= yhat_q} - q)| / sum |y|``
  (GluonTS ``wQuantileLoss[q]``; ``normalise=False`` gives ``QuantileLoss[q]``);
  their mean over the 19 levels is the normalised CRPS;
- MRE ``= sum |y - yhat| / sum |y|`` with ``yhat`` the sample median or mean (CSDI);
- central interval coverage at level ``c``: fraction of targets with
  ``yhat_{(1-c)/2} <= y <= yhat_{(1+c)/2}`` (empirical sample quantiles);
- energy score per window ``ES = E||X - y|| - 0.5 E||X - X'||`` over the window's
  mask entries (Gneiting & Raftery 2007), averaged over windows; with one scored
  entry per window it is the ensemble CRPS (``properscoring.crps_ensemble``);
- PIT of a target: ``(#{x < y} + 0.5 #{x = y}) / S`` (mid-rank, so ties with a point
  forecast land at 0.5), histogrammed in ``M`` equal bins of [0, 1]; QICE (Han et al.
  2022, CARD) ``= mean_m |r_m - 1/M|`` with ``r_m`` the bin frequencies. A calibrated
  forecast gives a flat histogram and QICE near 0.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from tsdiff.errors import ConfigError, DataError
from tsdiff.metrics._common import ArrayLike, Prepared, check_point, prepare
from tsdiff.metrics.crps import abs_target_sum, quantile_loss_sums
from tsdiff.metrics.point import error_sums
from tsdiff.metrics.quantiles import (
    DEFAULT_QUANTILES,
    check_method,
    check_quantiles,
    quantiles_from_sorted,
)

#: Central interval levels reported by default (50% and 90%).
DEFAULT_COVERAGE_LEVELS: tuple[float, ...] = (0.5, 0.9)


def _sorted(samples: torch.Tensor) -> torch.Tensor:
    return torch.sort(samples, dim=0).values


def nonzero_normaliser(abs_sum: float, what: str) -> float:
    """``abs_sum`` unless it is 0 (all scored targets are 0), which is an error."""
    if abs_sum == 0.0:
        raise DataError(
            f"{what} is normalised by sum |y| over the scored targets, which is 0 (every scored "
            "target value is 0), so it is undefined; report an unnormalised score instead "
            "(ensemble_crps, mae, energy_score, or normalise=False)"
        )
    return abs_sum


def quantile_loss(
    samples: ArrayLike,
    target: ArrayLike,
    mask: Optional[Any] = None,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    method: str = "nearest",
    normalise: bool = True,
) -> dict[float, float]:
    """Per-level quantile (pinball) loss of the empirical sample quantiles.

    Args:
        samples: ``[S, *shape]`` forecast samples, sample axis first.
        target: ``shape`` ground truth; may hold NaN where ``mask`` is False.
        mask: ``shape`` bool (or 0/1); ``None`` = all entries.
        quantiles: levels, default 0.05, ..., 0.95.
        method: ``"nearest"`` (GluonTS, default) or ``"linear"``.
        normalise: divide by ``sum |y|`` (GluonTS ``wQuantileLoss[q]``, default) or
            not (``QuantileLoss[q]``, data units).

    Returns:
        ``{q: loss}`` as Python floats; with ``normalise`` their mean is
        :func:`~tsdiff.metrics.quantile_crps`.

    Raises:
        DataError: bad input, or (``normalise``) all scored targets are 0.
    """
    qs, method = check_quantiles(quantiles), check_method(method)
    prep = prepare(samples, target, mask)
    sums = quantile_loss_sums(_sorted(prep.samples), prep.target, prep.mask, qs, method)
    if normalise:
        sums = sums / nonzero_normaliser(abs_target_sum(prep.target, prep.mask), "the quantile loss")
    return {q: float(v) for q, v in zip(qs, sums)}


def mre(
    samples: ArrayLike, target: ArrayLike, mask: Optional[Any] = None, *, point: str = "median"
) -> float:
    """Mean relative error ``sum |y - yhat| / sum |y|`` of the point forecast (CSDI).

    Args:
        samples: ``[S, *shape]``; target, mask: ``shape``.
        point: ``"median"`` (default) or ``"mean"`` of the samples.

    Raises:
        DataError: bad input, or all scored targets are 0 (normaliser 0).
    """
    check_point(point)
    prep = prepare(samples, target, mask)
    abs_err, _ = error_sums(_sorted(prep.samples), prep.target, prep.mask, point)
    return abs_err / nonzero_normaliser(abs_target_sum(prep.target, prep.mask), "MRE")


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Validate central interval levels: numbers in (0, 1)."""
    out = tuple(float(c) for c in np.atleast_1d(np.asarray(levels, dtype=np.float64)))
    if not out or not all(0.0 < c < 1.0 for c in out):
        raise ConfigError(f"coverage levels must be in (0, 1), e.g. (0.5, 0.9); got {levels!r}")
    return out


def coverage_counts(
    sorted_samples: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
    levels: Sequence[float], method: str,
) -> np.ndarray:
    """Number of mask entries inside each central interval, shape ``[len(levels)]``."""
    out = np.zeros(len(levels), dtype=np.float64)
    for i, c in enumerate(levels):
        lo, hi = quantiles_from_sorted(sorted_samples, ((1 - c) / 2, (1 + c) / 2), method)
        inside = (lo <= target) & (target <= hi) & mask
        out[i] = float(inside.sum())
    return out


def interval_coverage(
    samples: ArrayLike,
    target: ArrayLike,
    mask: Optional[Any] = None,
    *,
    levels: Sequence[float] = DEFAULT_COVERAGE_LEVELS,
    method: str = "nearest",
) -> dict[float, float]:
    """Empirical coverage of the central prediction intervals.

    The interval at level ``c`` is ``[yhat_{(1-c)/2}, yhat_{(1+c)/2}]`` of the
    empirical sample quantiles (``method`` as in :func:`~tsdiff.metrics.quantile_crps`),
    closed at both ends. For continuous targets (no ties) the 90% value equals
    GluonTS's ``Coverage[0.95] - Coverage[0.05]``. A point forecast (``S = 1``) covers
    only exact hits.

    Args:
        samples: ``[S, *shape]``; target, mask: ``shape``.
        levels: central interval levels in (0, 1), default ``(0.5, 0.9)``.

    Returns:
        ``{c: fraction of scored targets inside}``.
    """
    cs, method = check_levels(levels), check_method(method)
    prep = prepare(samples, target, mask)
    counts = coverage_counts(_sorted(prep.samples), prep.target, prep.mask, cs, method)
    return {c: float(v) / prep.n_targets for c, v in zip(cs, counts)}


def calibrated_coverage(n_samples: int, level: float = 0.9) -> float:
    """Expected coverage of the central ``level`` interval for a perfectly calibrated
    ``n_samples``-sample forecaster: samples and target drawn independently from one
    continuous distribution, quantiles by tsdiff's nearest rank.

    The interval is ``[x_(lo), x_(hi)]`` with ``lo, hi`` the nearest-rank indices of
    ``(1 -+ level) / 2``, and a new draw falls between two order statistics of ``n``
    draws with probability ``(hi - lo) / (n + 1)``, whatever the distribution. With few
    samples this is well below ``level``: 0.778 for 8 samples, 0.692 for 12, 0.765 for
    16, 0.818 for 32, 0.881 for 100 at ``level=0.9``. Reported coverage is to be read
    against this figure, not against ``level``.
    """
    from tsdiff.quantiles import nearest_rank_index

    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ConfigError(f"n_samples must be an integer >= 1; got {n_samples!r}")
    (c,) = check_levels((level,))
    n = int(n_samples)
    lo, hi = nearest_rank_index(n, (1 - c) / 2), nearest_rank_index(n, (1 + c) / 2)
    return (hi - lo) / (n + 1)


def _window_reshape(prep: Prepared) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Samples ``[S, B, D]``, target ``[B, D]``, mask ``[B, D]``; axis 0 of target = windows."""
    if prep.target.ndim < 1:
        raise DataError("energy_score needs a target with a window axis first, e.g. [B, L, N, C]")
    s, b = prep.samples.shape[0], prep.target.shape[0]
    m = prep.mask.reshape(b, -1)
    x = torch.where(m[None], prep.samples.reshape(s, b, -1), 0.0)
    return x, prep.target.reshape(b, -1), m


def energy_score_terms(prep: Prepared) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy score of each window with at least one mask entry: ``(scores [B'], keep [B])``."""
    x, y, m = _window_reshape(prep)
    keep = m.any(dim=1)
    x, y = x[:, keep], y[keep]
    xb = x.transpose(0, 1)  # [B', S, D]
    n = xb.shape[1]
    to_target = (xb - y[:, None, :]).norm(dim=-1).mean(dim=1)  # [B']
    # E||X - X'|| over all ordered pairs, window by window (memory S*S); exact
    # differences, not the |a|^2 + |b|^2 - 2ab expansion that loses precision.
    spread = torch.stack([
        torch.cdist(w[None], w[None], compute_mode="donot_use_mm_for_euclid_dist")[0].sum()
        for w in xb
    ]) if len(xb) else torch.zeros_like(to_target)
    return to_target - 0.5 * spread / (n * n), keep


def energy_score(samples: ArrayLike, target: ArrayLike, mask: Optional[Any] = None) -> float:
    """Energy score of the sample ensemble, per window, averaged over windows.

    ``ES_b = mean_i ||X_i - y|| - 1/(2 S^2) sum_{i,j} ||X_i - X_j||`` where the vectors
    hold the mask entries of window ``b`` (axis 0 of ``target``); windows without mask
    entries are left out. In data units, not normalised; lower is better. The same
    (non-fair) ensemble convention as :func:`~tsdiff.metrics.ensemble_crps`, which it
    equals when every window has exactly one scored entry.

    Args:
        samples: ``[S, B, ...]`` forecast samples.
        target: ``[B, ...]`` ground truth; may hold NaN where ``mask`` is False.
        mask: ``[B, ...]`` bool (or 0/1); ``None`` = all entries.

    Returns:
        Mean energy score over windows with at least one scored entry.
    """
    prep = prepare(samples, target, mask)
    scores, _ = energy_score_terms(prep)
    return float(scores.mean())


def check_bins(bins: int) -> int:
    if not isinstance(bins, (int, np.integer)) or isinstance(bins, bool) or bins < 1:
        raise ConfigError(f"bins must be an integer >= 1, got {bins!r}")
    return int(bins)


def pit_counts(samples: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, bins: int) -> np.ndarray:
    """Counts ``[bins]`` of the mid-rank PIT values of the mask entries."""
    below = (samples < target[None]).sum(dim=0).to(torch.float64)
    equal = (samples == target[None]).sum(dim=0).to(torch.float64)
    pit = (below + 0.5 * equal) / samples.shape[0]
    idx = torch.clamp((pit[mask] * bins).floor().long(), max=bins - 1)
    return torch.bincount(idx, minlength=bins).cpu().numpy().astype(np.float64)


def pit_histogram(
    samples: ArrayLike, target: ArrayLike, mask: Optional[Any] = None, *, bins: int = 10
) -> np.ndarray:
    """Frequencies of the PIT values in ``bins`` equal bins of [0, 1] (sum 1).

    PIT of a target ``y`` = ``(#{x < y} + 0.5 #{x = y}) / S`` over its samples; bin
    ``m`` holds ``m/M <= PIT < (m+1)/M`` (PIT = 1 in the last bin).

    Returns:
        float64 numpy array ``[bins]``.
    """
    bins = check_bins(bins)
    prep = prepare(samples, target, mask)
    return pit_counts(prep.samples, prep.target, prep.mask, bins) / prep.n_targets


def qice(samples: ArrayLike, target: ArrayLike, mask: Optional[Any] = None, *, bins: int = 10) -> float:
    """Quantile interval coverage error ``mean_m |r_m - 1/M|`` of the PIT histogram.

    0 for a perfectly calibrated ensemble; ``2 (M - 1) / M^2`` at worst (every target in
    one bin; 0.18 for ``M = 10``).
    """
    return qice_from_histogram(pit_histogram(samples, target, mask, bins=bins))


def qice_from_histogram(freq: Sequence[float]) -> float:
    """QICE ``mean_m |r_m - 1/M|`` of PIT bin frequencies ``r`` (summing to 1), e.g. from
    :func:`pit_histogram` or a merge of several histograms weighted by their target counts."""
    freq = np.asarray(freq, dtype=np.float64)
    if freq.ndim != 1 or freq.size == 0 or not np.isfinite(freq).all():
        raise DataError(f"a PIT histogram must be a non-empty 1-D array of finite frequencies; got shape "
                        f"{freq.shape} with values {freq.ravel()[:5].tolist()}")
    return float(np.abs(freq - 1.0 / len(freq)).mean())
