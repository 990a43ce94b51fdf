"""Panels: many independent samples of one set of features, for :class:`~tsdiff.api.Imputer`.

A panel is a 3-D array ``[n_samples, n_steps, n_features]`` (PyPOTS' layout: ICU stays, sensor
sessions) or a list of 2-D arrays / DataFrames with the same features and any lengths. The
samples are independent: the imputer trains on windows inside each sample and imputes each
sample from its own values only. Windows never cross from one sample into the next, and
neither does the prior's view beyond a window's edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsdiff import validation as checks
from tsdiff.errors import DataError


@dataclass
class Panel:
    """Validated samples: float64 ``[L_i, F]`` arrays (NaN = missing) and the features' names."""

    arrays: list[np.ndarray]
    columns: list | None
    stacked: bool  # given as one 3-D array: results come back as one

    @property
    def lengths(self) -> list[int]:
        return [int(a.shape[0]) for a in self.arrays]

    @property
    def n_features(self) -> int:
        return int(self.arrays[0].shape[1])

    def offsets(self, gap: int = 0) -> np.ndarray:
        """First row of each sample in :meth:`concatenated` with ``gap`` rows between samples."""
        steps = np.asarray(self.lengths, dtype=np.int64) + gap
        return np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(np.int64)

    def concatenated(self, gap: int = 0) -> np.ndarray:
        """``[T, F]``: the samples one after another, ``gap`` all-NaN rows between them."""
        if gap == 0:
            return np.concatenate(self.arrays, axis=0)
        sep = np.full((gap, self.n_features), np.nan)
        parts = [p for a in self.arrays for p in (a, sep)][:-1]
        return np.concatenate(parts, axis=0)

    def split(self, values: np.ndarray, axis: int = 0) -> list[np.ndarray]:
        """Cut an array along ``axis`` (steps of :meth:`concatenated` with no gap) back into samples."""
        return np.split(values, np.cumsum(self.lengths)[:-1], axis=axis)

    def result(self, parts: list[np.ndarray]):
        """Per-sample results (samples on ``axis`` 0 of each) as the input came: stacked into one
        array along a new sample axis for a 3-D input, a list otherwise."""
        return np.stack(parts) if self.stacked else parts


def _sample(values, i: int, where: str) -> tuple[np.ndarray, list | None]:
    from sklearn.utils import check_array

    label = f"{where}[{i}]"
    columns = None
    if isinstance(values, pd.DataFrame):
        from tsdiff.api.inputs import check_frame

        check_frame(values, label)
        checks.check_columns(values, label, allow_mixed=False)
        columns = list(values.columns)
        values = checks.frame_to_float(values, label)
    else:
        values = checks.as_float64(values, label)
    try:
        arr = check_array(values, dtype=np.float64, ensure_all_finite="allow-nan", ensure_min_samples=1)
    except ValueError as exc:
        raise checks.array_problem(values, exc, label) from None
    return arr, columns


def as_panel(X, where: str = "X") -> Panel | None:
    """The :class:`Panel` of ``X``, or None when ``X`` is not a panel (a 2-D table).

    Raises:
        DataError: an empty panel, a sample with no step, samples with different feature counts
            or different column labels, or values the imputer refuses in a table (infinite,
            non-numeric, not exactly representable as float64).
    """
    if isinstance(X, np.ndarray) and X.ndim == 3:
        if X.shape[0] == 0 or X.shape[1] == 0 or X.shape[2] == 0:
            raise DataError(f"{where} has shape {X.shape}; a panel [n_samples, n_steps, n_features] needs at least "
                            "one of each")
        samples, stacked = list(X), True
    elif isinstance(X, (list, tuple)) and X and all(
            isinstance(x, pd.DataFrame) or (isinstance(x, np.ndarray) and x.ndim == 2) for x in X):
        samples, stacked = list(X), False
    elif isinstance(X, (list, tuple)) and X and all(isinstance(x, np.ndarray) for x in X):
        dims = sorted({x.ndim for x in X})
        raise DataError(f"{where} is a list of arrays with {dims} dimensions; a panel is a list of 2-D "
                        "[n_steps, n_features] arrays or DataFrames, one per sample")
    else:
        return None
    arrays, columns = [], None
    for i, s in enumerate(samples):
        arr, cols = _sample(s, i, where)
        if arrays and arr.shape[1] != arrays[0].shape[1]:
            raise DataError(f"{where}[{i}] has {arr.shape[1]} features but {where}[0] has {arrays[0].shape[1]}; "
                            "every sample of a panel needs the same features")
        if i == 0:
            columns = cols
        elif (cols is None) != (columns is None) or (cols is not None and [str(c) for c in cols] != [
                str(c) for c in columns]):
            raise DataError(f"{where}[{i}] has columns {cols} but {where}[0] has {columns}; give every sample "
                            "the same columns in the same order")
        arrays.append(arr)
    return Panel(arrays, columns, stacked)


def training_windows(panel: Panel, window: int, gap: int, validation: float | None, stride: int = 1
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(train starts, held-out starts)`` of ``window``-step windows (every ``stride`` steps)
    inside the samples of the panel laid out with ``gap`` rows between samples. With ``validation`` the last
    ``ceil(validation * n)`` samples are held out whole (at least one sample stays for training)."""
    from tsdiff.data.windows import sliding_starts

    offsets = panel.offsets(gap)
    per = [sliding_starts(L, window, stride, offset=int(o)) for o, L in zip(offsets, panel.lengths)]
    n = len(per)
    n_val = 0
    if validation is not None:
        if n < 2:
            raise DataError("validation holds out whole samples of a panel, and this panel has one; "
                            "pass more samples or validation=None")
        n_val = min(max(int(np.ceil(validation * n)), 1), n - 1)
    train = np.concatenate(per[: n - n_val]) if n - n_val else np.zeros(0, dtype=np.int64)
    held = np.concatenate(per[n - n_val:]) if n_val else np.zeros(0, dtype=np.int64)
    return train.astype(np.int64), held.astype(np.int64)


class SampleRows:
    """Rows ``first .. first + n - 1`` of a source, as a source of its own (one panel sample)."""

    def __init__(self, source, first: int, n: int) -> None:
        self.source, self.first = source, first
        self.shape = (n,) + tuple(source.shape[1:])

    def window(self, start: int, length: int):
        return self.source.window(self.first + start, length)
