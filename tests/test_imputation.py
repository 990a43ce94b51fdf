"""``Imputer.impute`` and its :class:`~tsdiff.imputation.Imputation` on real AQI-36 rows: the
summaries equal ``transform`` / ``quantiles`` / ``std`` on the same draws, labels are the input's."""

import numpy as np
import pandas as pd
import pytest

from tsdiff.api import Imputation, Imputer
from tsdiff.errors import ConfigError, DataError
from tsdiff.quantiles import sample_quantile

TINY = {"layers": 1, "channels": 8, "heads": 2, "ff_dim": 8, "diffusion_embedding_dim": 16, "time_embedding_dim": 8,
        "feature_embedding_dim": 4}


@pytest.fixture(scope="module")
def fitted(data_dir):
    X = pd.read_csv(data_dir / "aqi36" / "pm25_missing.txt", index_col=0, parse_dates=True).iloc[:240, :6]
    imp = Imputer(window=12, max_steps=3, n_samples=5, sampling_steps=2, model_options=TINY).fit(X)
    return imp, X


def test_imputation_summaries_equal_the_imputer_methods(fitted):
    imp, X = fitted
    res = imp.impute(X)
    assert isinstance(res, Imputation) and res.n_samples == 5 and res.samples.shape == (5, 240, 6)
    missing = X.isna().to_numpy()
    assert missing.any() and np.array_equal(res.missing, missing)
    assert np.array_equal(res.filled, imp.transform(X))  # the same draws, the same point summary
    assert np.array_equal(res.samples, imp.sample(X))
    q = imp.quantiles(X, q=(0.1, 0.9))
    assert np.array_equal(res.quantile([0.1, 0.9]), q)
    lo, hi = res.interval(0.8)
    assert np.array_equal(lo, q[0]) and np.array_equal(hi, q[1])
    assert np.array_equal(res.median, sample_quantile(res.samples, 0.5, axis=0))
    assert np.array_equal(res.std, imp.std(X)) and (res.std[~missing] == 0).all()
    obs = X.to_numpy()[~missing]
    assert np.array_equal(res.filled[~missing], obs) and np.array_equal(res.mean[~missing], obs)


def test_imputation_frames_keep_the_labels(fitted):
    imp, X = fitted
    res = imp.impute(X, n_samples=3)
    frame = res.to_pandas(quantiles=[0.05, 0.95])
    assert frame.index.equals(X.index)
    assert list(frame.columns.levels[0]) == sorted(str(c) for c in X.columns)
    col = str(X.columns[0])
    assert list(frame[col].columns) == ["value", "missing", "std", "0.05", "0.95"]
    assert np.array_equal(frame[col]["value"].to_numpy(), res.filled[:, 0])
    assert np.array_equal(frame[col]["missing"].to_numpy(), X.iloc[:, 0].isna().to_numpy())
    ds = res.to_xarray()
    assert ds["samples"].dims == ("sample", "time", "feature") and ds.sizes["sample"] == 3
    assert np.array_equal(ds["filled"].values, res.filled) and list(ds["feature"].values) == [str(c) for c in X.columns]
    assert np.array_equal(ds["time"].values, X.index.values)
    # an array: rows labelled by position
    plain = imp.impute(X.to_numpy(), n_samples=2)
    assert plain.index.equals(pd.RangeIndex(240)) and not np.isnan(plain.filled).any()


def test_imputation_bad_input_is_clear(fitted):
    imp, X = fitted
    res = imp.impute(X, n_samples=2)
    with pytest.raises(ConfigError, match="interval level must be in"):
        res.interval(1.5)
    with pytest.raises(ConfigError, match="quantile levels"):
        res.quantile(2.0)
    with pytest.raises(DataError, match="impute takes one table"):
        imp.impute(np.stack([X.to_numpy()] * 2))
    with pytest.raises(DataError, match="must be \\[S, T, F\\]"):
        Imputation(np.zeros((2, 3)), np.zeros((2, 3), dtype=bool))
    with pytest.raises(DataError, match="missing must be"):
        Imputation(np.zeros((2, 3, 4)), np.zeros((3, 3), dtype=bool))
