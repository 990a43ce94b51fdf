"""The canonical Series container: NaN is data, everything else malformed is a clear DataError."""

import numpy as np
import pandas as pd
import pytest

from tsdiff.data import Series
from tsdiff.errors import DataError


def _make(values, index=None, nodes=None, channels=None):
    values = np.asarray(values)
    T = values.shape[0]
    index = pd.date_range("2020-01-01", periods=T, freq="h") if index is None else index
    n = values.shape[1] if values.ndim > 1 else 1
    c = values.shape[2] if values.ndim > 2 else 1
    return Series(values, index, nodes or [f"s{i}" for i in range(n)], channels or [f"c{i}" for i in range(c)])


def test_nan_is_missing_data_not_an_error():
    v = np.arange(24, dtype=float).reshape(4, 3, 2)
    v[1, 2, 0] = np.nan
    v[:, 0, 1] = np.nan  # a fully missing series is still data
    s = _make(v)
    assert s.observed_mask.sum() == 24 - 1 - 4
    assert s.missing_rate() == pytest.approx(5 / 24)
    assert np.array_equal(np.isnan(s.values), np.isnan(v))  # nothing the user gave is changed


@pytest.mark.parametrize("values, fragment", [
    (np.zeros((4, 3)), r"must have shape \[T, N, C\] \(3 dimensions\), got shape \(4, 3\)"),
    (np.zeros((4, 3, 2, 1)), r"3 dimensions"),
    (np.array([[[1.0]], [[np.inf]]]), r"contains 1 infinite value"),
    (np.array([[[-np.inf]], [[np.inf]]]), r"contains 2 infinite value"),
    (np.zeros((2, 1, 1), dtype=int), r"must be a float array, got dtype int64"),
    (np.array([[["a"]], [["b"]]]), r"must be a float array"),
])
def test_malformed_values(values, fragment):
    index = pd.date_range("2020-01-01", periods=values.shape[0], freq="h")
    n = values.shape[1] if values.ndim > 1 else 1
    c = values.shape[2] if values.ndim > 2 else 1
    with pytest.raises(DataError, match=fragment):
        Series(values, index, [f"s{i}" for i in range(n)], [f"c{i}" for i in range(c)])


def test_malformed_metadata():
    v = np.zeros((3, 2, 1))
    with pytest.raises(DataError, match="time_index has 2 entries but values has T=3"):
        _make(v, index=pd.date_range("2020", periods=2, freq="h"))
    with pytest.raises(DataError, match="node_names has 3 entries but values has N=2"):
        _make(v, nodes=["a", "b", "c"])
    with pytest.raises(DataError, match="duplicate timestamps"):
        _make(v, index=pd.DatetimeIndex(["2020-01-01", "2020-01-01", "2020-01-02"]))
    with pytest.raises(DataError, match="not sorted"):
        _make(v, index=pd.DatetimeIndex(["2020-01-02", "2020-01-01", "2020-01-03"]))
