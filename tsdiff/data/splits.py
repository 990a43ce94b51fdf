"""Splits and forecasting windows.

- :func:`chronological_split`: contiguous train/val/test blocks of the time axis.
- :func:`entity_split`: a seeded split of entities (patients, stations) by id.
- :func:`forecast_starts` / :func:`rolling_cutoffs`: window positions for
  forecasting (``context`` steps followed by ``horizon`` steps).
- :class:`ForecastSplit`: a series, where training ends, and the test cutoffs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsdiff.data.series import Series
from tsdiff.errors import ConfigError, DataError


def _check_fractions(fractions) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or f.size < 1 or (f < 0).any() or abs(f.sum() - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    return f


def split_sizes(n: int, fractions) -> list[int]:
    """Sizes of consecutive blocks: ``floor(n * f)`` for all but the last, which takes the rest."""
    f = _check_fractions(fractions)
    sizes = [int(np.floor(n * x + 1e-9)) for x in f[:-1]]
    sizes.append(n - sum(sizes))
    return sizes


def chronological_split(
    length: int, fractions=(0.7, 0.1, 0.2), names=("train", "val", "test"), min_length: int = 1
) -> dict[str, tuple[int, int]]:
    """Contiguous blocks ``{name: (start, stop)}`` of the time axis, in order.

    Raises:
        DataError: a block would be shorter than ``min_length`` (e.g. one window).
    """
    if len(names) != len(fractions):
        raise ConfigError(f"{len(names)} split names for {len(fractions)} fractions")
    bounds = np.cumsum([0] + split_sizes(length, fractions))
    out = {n: (int(a), int(b)) for n, a, b in zip(names, bounds[:-1], bounds[1:])}
    short = {n: b - a for n, (a, b) in out.items() if b - a < min_length}
    if short:
        raise DataError(
            f"a series of {length} steps split {list(fractions)} gives block(s) {short} shorter than "
            f"{min_length} steps (one window); use a longer series, other fractions or a shorter window"
        )
    return out


def entity_split(ids, fractions=(0.7, 0.1, 0.2), names=("train", "val", "test"), seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random split of entities: ``{name: positions into ids}`` (sorted).

    The same ``ids`` and ``seed`` always give the same split (numpy PCG64).
    """
    n = len(ids)
    if len(names) != len(fractions):
        raise ConfigError(f"{len(names)} split names for {len(fractions)} fractions")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + split_sizes(n, fractions))
    return {name: np.sort(perm[a:b]) for name, a, b in zip(names, bounds[:-1], bounds[1:])}


def forecast_starts(length: int, context: int, horizon: int, stride: int = 1, offset: int = 0) -> np.ndarray:
    """Starts of forecasting windows (``context + horizon`` steps) inside a block.

    Window k covers ``[s_k, s_k + context + horizon)``; the forecast part starts at
    ``s_k + context``.

    Raises:
        DataError: the block is shorter than one window.
    """
    if context < 0 or horizon < 1 or stride < 1:
        raise ConfigError(f"need context >= 0, horizon >= 1, stride >= 1; got {context}, {horizon}, {stride}")
    size = context + horizon
    if length < size:
        raise DataError(
            f"the series has {length} steps, shorter than one window of context {context} + horizon {horizon}; "
            "use a shorter context/horizon or more data"
        )
    return offset + np.arange(0, length - size + 1, stride, dtype=np.int64)


def rolling_cutoffs(first: int, num_windows: int, horizon: int, stride: int | None = None) -> np.ndarray:
    """Cutoffs of rolling evaluation: window k forecasts ``[c_k, c_k + horizon)``, ``c_k = first + k * stride``.

    ``stride`` defaults to ``horizon`` (non-overlapping test windows).
    """
    stride = horizon if stride is None else stride
    if num_windows < 1 or horizon < 1 or stride < 1:
        raise ConfigError("num_windows, horizon and stride must be >= 1")
    return first + stride * np.arange(num_windows, dtype=np.int64)


@dataclass
class ForecastSplit:
    """A forecasting benchmark split.

    Attributes:
        series: the full series ``[T, N, C]``.
        train_end: training uses steps ``[0, train_end)``.
        prediction_length: H.
        test_cutoffs: ``[K]``; test window k predicts ``[c_k, c_k + H)`` given ``[0, c_k)``.
        val_end: optional end of a validation block ``[train_end, val_end)``.
    """

    series: Series
    train_end: int
    prediction_length: int
    test_cutoffs: np.ndarray
    val_end: int | None = None

    def __post_init__(self) -> None:
        T = self.series.shape[0]
        self.test_cutoffs = np.asarray(self.test_cutoffs, dtype=np.int64)
        if not 0 < self.train_end <= T:
            raise DataError(f"train_end {self.train_end} outside the series (T={T})")
        if len(self.test_cutoffs) and (self.test_cutoffs[-1] + self.prediction_length > T):
            raise DataError(f"the last test window ends after the series (T={T})")

    @property
    def train(self) -> Series:
        """Training part ``[train_end, N, C]``."""
        return self.series.slice_time(0, self.train_end)

    def test_windows(self, context_length: int | None = None) -> list[tuple[Series, Series]]:
        """``(context, target)`` per test window; context = ``[c - context_length, c)`` (default: all)."""
        out = []
        for c in self.test_cutoffs:
            a = 0 if context_length is None else max(0, int(c) - context_length)
            out.append((self.series.slice_time(a, int(c)), self.series.slice_time(int(c), int(c) + self.prediction_length)))
        return out
