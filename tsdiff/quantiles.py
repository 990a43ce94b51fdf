"""The one definition of a sample quantile in tsdiff: GluonTS' nearest rank.

For ``S`` samples sorted along the sample axis, ``x_(0) <= ... <= x_(S-1)``, the
``q``-quantile is the sample ``x_(k)`` with ``k = round((S - 1) * q)``, rounding half to
even (Python's / numpy's ``round``). This is, to the bit, what GluonTS'
``SampleForecast.quantile`` computes (``sorted[int(np.round((S - 1) * q))]``), so its
``Evaluator`` figures equal tsdiff's, and what ``np.quantile(..., method="nearest")``
returns. Every quantile tsdiff reports uses :func:`sample_quantile` or
:func:`nearest_rank_index`: :class:`~tsdiff.api.Forecast` (``quantile``, ``median``,
``interval``, ``to_pandas``, ``plot``), :meth:`~tsdiff.api.Imputer.quantiles`, the
``tsdiff`` command's uncertainty tables, and the metrics' default ``method="nearest"``
(:func:`tsdiff.metrics.empirical_quantiles`, :func:`~tsdiff.metrics.quantile_crps`).

Consequences worth knowing:

- a quantile is always one of the samples (no interpolation);
- the median (``q = 0.5``) with an even ``S`` is one of the two middle samples, not their
  mean: the upper one when ``(S - 1) / 2`` rounds up (``S = 20``: ``x_(10)``), the lower
  one when it rounds down (``S = 6``: ``x_(2)``), exactly as GluonTS.

Point estimates are a separate notion: ``Imputer(point="median")`` fills a gap with the
textbook median of its draws (``np.median``: the mean of the two middle draws for even
``S``), the same point as :func:`tsdiff.metrics.point_forecast` and the ``point="median"``
of :func:`~tsdiff.metrics.mae` / :func:`~tsdiff.metrics.rmse`. For odd ``S`` both medians
are the same sample.
"""

from __future__ import annotations

import numpy as np

from tsdiff.errors import ConfigError, DataError

#: Name of tsdiff's quantile definition (``np.quantile``'s ``method`` with the same result).
QUANTILE_METHOD = "nearest"


def nearest_rank_index(n: int, q: float) -> int:
    """Index ``k`` of the ``q``-quantile among ``n`` sorted samples: ``round((n - 1) * q)``, half to even.

    The arithmetic (a float64 product, numpy's round) is GluonTS' ``SampleForecast.quantile``.
    """
    return int(np.round((n - 1) * float(q)))


def _levels(q) -> np.ndarray:
    try:
        qs = np.asarray(q, dtype=np.float64)
    except (TypeError, ValueError):
        qs = None
    if qs is None or np.asarray(q).dtype == bool or np.isnan(qs).any() or np.any((qs < 0) | (qs > 1)):
        raise ConfigError(f"quantile levels must be numbers in [0, 1] such as [0.1, 0.5, 0.9], got {q!r}")
    return qs


def sample_quantile(samples, q, axis: int = 0) -> np.ndarray:
    """Sample quantile(s) of ``samples`` along ``axis`` (see the module docstring for the definition).

    Args:
        samples: array of samples (float64 after conversion); ``axis`` indexes the samples.
        q: a level in [0, 1], or an array of levels.
        axis: the sample axis.

    Returns:
        float64 array: the sample axis removed for a scalar ``q``; for an array of levels,
        their axes first, then the remaining axes of ``samples`` (as ``np.quantile``).
        Each value is one of the samples, bit for bit.
    """
    a = np.asarray(samples, dtype=np.float64)
    qs = _levels(q)
    if a.ndim == 0:
        raise DataError("samples must have a sample axis")
    axis = axis % a.ndim
    n = a.shape[axis]
    if n < 1:
        raise DataError("no samples to take a quantile of (the sample axis is empty)")
    idx = [nearest_rank_index(n, v) for v in qs.reshape(-1)]
    part = np.partition(a, sorted(set(idx)), axis=axis)  # those ranks at their sorted positions
    out = np.moveaxis(np.take(part, idx, axis=axis), axis, 0)
    return out.reshape(qs.shape + out.shape[1:])


def sample_median(samples, axis: int = 0) -> np.ndarray:
    """``sample_quantile(samples, 0.5, axis)``: the GluonTS median (one of the samples)."""
    return sample_quantile(samples, 0.5, axis)


#: The point summaries of samples, by name (``Imputer(point=...)``, the ``tsdiff impute`` fills).
POINT_SUMMARIES = {"median": np.median, "mean": np.mean}


def point_summary(samples, kind: str = "median", axis: int = 0) -> np.ndarray:
    """The point summary ``kind`` of ``samples`` along ``axis``: ``"median"``, the textbook median
    (``np.median``: the mean of the two middle samples for an even count, unlike
    :func:`sample_median`), or ``"mean"``. Float64; finite wherever the samples are (no
    overflow near the float64 maximum, :func:`tsdiff.validation.finite_reduce`).

    Raises:
        ConfigError: an unknown ``kind``, naming the valid ones.
    """
    from tsdiff.validation import finite_reduce

    if kind not in POINT_SUMMARIES:
        raise ConfigError(f"point must be one of {sorted(POINT_SUMMARIES)}, got {kind!r}")
    return finite_reduce(POINT_SUMMARIES[kind], samples, axis=axis)
