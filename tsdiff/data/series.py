"""The canonical in-memory layout every adapter produces.

``values`` is ``[T, N, C]`` (time, spatial axis: series / nodes / grid cells,
channels) with NaN where no value exists; ``observed_mask`` marks entries that
have a value. Spatial structure (a graph, a grid) is metadata in ``spatial``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.errors import DataError
from tsdiff.validation import as_float64


@dataclass
class Series:
    """A (multivariate / spatial) time series in canonical layout.

    Attributes:
        values: float array ``[T, N, C]``; NaN marks a missing value (so do the masked entries
            of a numpy masked array). float128 values must be exactly float64 numbers.
        time_index: ``pd.DatetimeIndex`` of length T (sorted, unique).
        node_names: N names of the spatial axis (series, sensors, cells).
        channel_names: C names of the channels.
        spatial: ``None`` or spatial metadata (graph / grid).
        attrs: free-form metadata (units, source, ...).
    """

    values: np.ndarray
    time_index: pd.DatetimeIndex
    node_names: list[str]
    channel_names: list[str]
    spatial: Any = None
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.values, np.ma.MaskedArray):  # masked entries are missing values
            self.values = as_float64(self.values, "Series.values")
        v = np.asarray(self.values)
        if v.ndim != 3:
            raise DataError(
                f"Series.values must have shape [T, N, C] (3 dimensions), got shape {v.shape}; "
                "reshape a [T, N] array with values[..., None]"
            )
        if not np.issubdtype(v.dtype, np.floating):
            raise DataError(f"Series.values must be a float array, got dtype {v.dtype}")
        if v.dtype.itemsize > 8:  # float128: kept only if every value is a float64 number
            v = as_float64(v, "Series.values").astype(np.float64)
        n_inf = int(np.isinf(v).sum())
        if n_inf:
            raise DataError(
                f"Series.values contains {n_inf} infinite value(s); replace them with NaN "
                "(missing) or finite numbers"
            )
        T, N, C = v.shape
        if len(self.time_index) != T:
            raise DataError(f"time_index has {len(self.time_index)} entries but values has T={T} steps")
        if len(self.node_names) != N:
            raise DataError(f"node_names has {len(self.node_names)} entries but values has N={N}")
        if len(self.channel_names) != C:
            raise DataError(f"channel_names has {len(self.channel_names)} entries but values has C={C}")
        if not self.time_index.is_unique:
            raise DataError("time_index has duplicate timestamps; aggregate or drop them first")
        if not self.time_index.is_monotonic_increasing:
            raise DataError("time_index is not sorted; sort the data by time first")
        self.values = v

    @property
    def observed_mask(self) -> np.ndarray:
        """Boolean ``[T, N, C]``: True where a value exists."""
        return ~np.isnan(self.values)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values.shape  # type: ignore[return-value]

    def missing_rate(self) -> float:
        return float(np.isnan(self.values).mean())

    def slice_time(self, start: int | None = None, stop: int | None = None) -> "Series":
        """Steps ``[start, stop)`` as a new Series (values are a view, metadata shared)."""
        sl = slice(start, stop)
        return Series(
            self.values[sl], self.time_index[sl], list(self.node_names), list(self.channel_names),
            self.spatial, dict(self.attrs),
        )
