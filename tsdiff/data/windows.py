"""Window start positions for training and evaluation."""

from __future__ import annotations

import numpy as np

from tsdiff.errors import DataError


def sliding_starts(length: int, window: int, stride: int = 1, offset: int = 0) -> np.ndarray:
    """Starts of all windows of ``window`` steps in a segment of ``length`` steps.

    Returns positions ``offset, offset + stride, ...`` (every window fits entirely).
    """
    if window < 1 or stride < 1:
        raise DataError(f"window ({window}) and stride ({stride}) must be >= 1")
    if length < window:
        return np.zeros(0, dtype=np.int64)
    return offset + np.arange(0, length - window + 1, stride, dtype=np.int64)


def covering_starts(length: int, window: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows that cover a segment, each step scored exactly once.

    The segment is cut into consecutive windows; if ``length`` is not a multiple of
    ``window``, one last window is aligned with the segment's end, and its first
    ``score_from`` steps (already covered by the previous window) are not scored.
    A segment shorter than ``window`` yields no window.

    Returns:
        ``(starts, score_from)``, both int arrays of the same length.
    """
    if window < 1:
        raise DataError(f"window must be >= 1, got {window}")
    if length < window:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_full = length // window
    starts = list(range(0, n_full * window, window))
    score_from = [0] * n_full
    remainder = length - n_full * window
    if remainder:
        starts.append(length - window)
        score_from.append(window - remainder)
    return offset + np.asarray(starts, dtype=np.int64), np.asarray(score_from, dtype=np.int64)


def contiguous_segments(labels: np.ndarray) -> list[tuple[int, int, object]]:
    """Split a label per time step (e.g. the month) into runs ``(start, stop, label)``."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    bounds = np.concatenate([[0], change, [labels.size]])
    return [(int(a), int(b), labels[a]) for a, b in zip(bounds[:-1], bounds[1:])]
