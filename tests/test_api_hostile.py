"""Hostile input that must give a correct answer: observed cells back bit for bit, finite gaps.

The refusals (bad settings, labels, precision, scipy sparse, ...) are rows of
tests/test_bad_input_matrix.py; here are the inputs that are accepted: values up to the
float64 maximum, numpy masked arrays, pandas sparse / nullable / object columns with
``pd.NA``, integers float64 holds exactly, and model files (checksums, damaged files).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import tsdiff.api as api
from tsdiff.data.scalers import MeanAbsScaler, MinMaxScaler, StandardScaler
from tsdiff.errors import ConfigError, DataError, TsdiffError

FMAX = np.finfo(np.float64).max
TINY = dict(window=8, max_steps=2, n_samples=3, sampling_steps=2, device="cpu")
FTINY = dict(prediction_length=2, context_length=4, max_steps=2, n_samples=3, sampling_steps=2, verbose=False,
             device="cpu")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _x(seed=0, T=30, F=3):
    return np.random.default_rng(seed).normal(size=(T, F))


def _frame(values, columns=None):
    return pd.DataFrame(values, index=pd.date_range("2024-01-01", periods=len(values), freq="h"),
                        columns=columns or [f"s{i}" for i in range(values.shape[1])])


def _assert_imputed(out, X):
    X = np.asarray(X, dtype=np.float64)
    known = ~np.isnan(X)
    assert np.array_equal(np.asarray(out)[known], X[known])  # bit for bit
    assert np.isfinite(np.asarray(out)).all()


# --------------------------------------------------------------------------- 1. huge values
@pytest.mark.parametrize("cls", [StandardScaler, MinMaxScaler, MeanAbsScaler])
def test_scalers_stay_finite_up_to_the_float64_maximum(cls):
    v = np.clip(_x(), -1, 1)[:, :, None] * FMAX
    v[0, 0], v[1, 0], v[2, 1] = FMAX, -FMAX, np.nan
    sc = cls().fit(v)
    assert np.isfinite(sc.mean).all() and np.isfinite(sc.std).all() and (sc.std > 0).all()
    z = sc.transform(v)
    assert np.isfinite(z[~np.isnan(v)]).all()
    back = sc.inverse_transform(np.array([[[50.0], [-50.0], [0.0]]]))  # far out: saturates, never inf
    assert np.isfinite(back).all()
    assert np.isfinite(sc.inverse_transform(torch.tensor([[[50.0], [-50.0], [0.0]]], dtype=torch.float64))).all()


def test_scaler_is_unchanged_on_ordinary_values():
    v = _x()[:, :, None] * 1e6
    v[3, 1] = np.nan
    count = (~np.isnan(v)).sum(0)
    mean = np.nansum(v, 0) / count
    std = np.sqrt(np.nansum((v - mean) ** 2, 0) / (count - 1))
    sc = StandardScaler().fit(v)
    assert np.array_equal(sc.mean, mean) and np.array_equal(sc.std, std)
    assert np.array_equal(sc.transform(v), (v - mean) / std, equal_nan=True)


def test_streaming_scaler_handles_huge_values():
    from tsdiff.data.lazy import ArraySource, fit_scaler_streaming

    v = np.clip(_x(), -1, 1)[:, :, None] * FMAX
    sc = fit_scaler_streaming(ArraySource(v), np.arange(0, 23), 8, block=5)
    assert np.isfinite(sc.mean).all() and np.isfinite(sc.std).all()
    ref = StandardScaler().fit(v / 2**600)
    np.testing.assert_allclose(sc.mean / 2**600, ref.mean, rtol=1e-9)


@pytest.mark.parametrize("point", ["median", "mean"])
def test_imputer_huge_values_give_finite_gaps(point):
    X = np.clip(_x(), -1, 1) * FMAX
    X[0, 0], X[1, 0], X[5, 1], X[7, 0] = FMAX, -FMAX, np.nan, np.nan
    imp = api.Imputer(point=point, **TINY)
    _assert_imputed(imp.fit_transform(X), X)
    assert np.isfinite(imp.quantiles(X)).all() and np.isfinite(imp.std(X)).all()


def test_forecaster_huge_values_give_finite_forecasts():
    X = _x() * 1e300
    fc = api.Forecaster(**FTINY).fit(_frame(X)).predict()
    assert np.isfinite(fc.samples).all() and np.isfinite(fc.mean).all()
    assert np.isfinite(fc.to_pandas().to_numpy()).all() and np.isfinite(fc.quantile([0.1, 0.9])).all()


def test_a_never_observed_grid_cell_is_named_by_its_coordinates():
    """A grid cell without any value is named by latitude / longitude, not by its position label."""
    import xarray as xr

    v = _x(T=24, F=6).reshape(24, 2, 3)
    v[:, 1, 2] = np.nan
    ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), v)},
                    coords={"time": pd.date_range("2024-01-01", periods=24, freq="h"),
                            "latitude": ("latitude", [50.5, 51.25], {"units": "degrees_north"}),
                            "longitude": ("longitude", [0.0, 0.25, 0.5], {"units": "degrees_east"})})
    for model in (api.Imputer(**TINY), api.Forecaster(**FTINY)):
        with pytest.raises(DataError, match=r"the cell at latitude=51.25, longitude=0.5 has no observed value of "
                                            r"'t2m' \(all NaN\); select a region without it"):
            model.fit(ds)


def test_a_never_observed_series_is_treated_alike_by_imputer_and_forecaster():
    """Issue 30 #5: fit refuses a series with no value (the same DataError for both); a fitted model
    fills / forecasts it with finite values, the other series' observed values kept bit for bit."""
    X = _x()
    empty = X.copy()
    empty[:, 1] = np.nan
    for model in (api.Imputer(**TINY), api.Forecaster(**FTINY)):
        with pytest.raises(DataError, match=r"'s1' has no observed value \(all NaN\); drop that column"):
            model.fit(_frame(empty))
    _assert_imputed(api.Imputer(**TINY).fit(_frame(X)).transform(_frame(empty)), empty)
    fc = api.Forecaster(**FTINY).fit(_frame(X)).predict(_frame(empty))
    assert np.isfinite(fc.samples).all() and np.isfinite(fc.to_pandas().to_numpy()).all()


def test_forecaster_predict_names_values_far_outside_its_training_data():
    """Issue 30 #2: a model trained on values of about 1 forecasting data x 1e30 overflowed float32
    and said 'training diverged ... lower lr'; now the values are named (as Imputer.transform does)."""
    fc = api.Forecaster(**FTINY).fit(_frame(_x()))
    with pytest.raises(DataError, match=r"the data: \d+ observed value\(s\) lie too far outside the data the model "
                                        r"was trained on, e\.g\. .* in column 's0'"):
        fc.predict(_frame(_x() * 1e30))
    assert np.isfinite(fc.predict(_frame(_x() * 1e3)).samples).all()  # far, but within float32's reach


def test_non_finite_samples_are_an_error_never_output(monkeypatch):
    imp = api.Imputer(**TINY).fit(_x())
    real = imp.module_.sample

    def broken(*args, **kwargs):
        s, extra = real(*args, **kwargs)
        return s * float("nan"), extra

    monkeypatch.setattr(imp.module_, "sample", broken)
    X = _x(1)
    X[3, 1] = np.nan
    with pytest.raises(ConfigError, match="training diverged.*lower lr"):
        imp.transform(X)
    from tsdiff.validation import check_finite_gaps

    with pytest.raises(DataError, match="NaN/inf value"):
        check_finite_gaps(np.array([1.0, np.inf]))


# --------------------------------------------------------------------------- 3. masked arrays
def test_masked_arrays_mean_missing_in_every_path():
    X = _x()
    M = np.ma.masked_array(X.copy(), mask=np.zeros(X.shape, dtype=bool))
    M[3, 0] = -999.0
    M[3, 0] = np.ma.masked
    M[10, 2] = -999.0
    M[10, 2] = np.ma.masked
    imp = api.Imputer(**TINY)
    out = imp.fit_transform(M)
    assert isinstance(out, np.ma.MaskedArray) and not out.mask.any()
    expected = X.copy()
    expected[3, 0] = expected[10, 2] = np.nan
    _assert_imputed(out.data, expected)
    assert abs(out[3, 0]) < 100 and abs(out[10, 2]) < 100  # not the sentinel
    draws = imp.sample(M, 2)
    known = ~np.isnan(expected)
    assert np.array_equal(draws[:, known], np.broadcast_to(X[known], (2, int(known.sum()))))
    # Forecaster: numpy masked input, and a Series built from one
    fc = api.Forecaster(**FTINY).fit(M)
    assert np.isnan(fc.series_.values[3, 0, 0]) and np.isnan(fc.series_.values[10, 2, 0])
    s = api.Series(M[:, :, None], pd.date_range("2024", periods=30, freq="h"), ["a", "b", "c"], ["v"])
    assert np.isnan(s.values[3, 0, 0]) and s.values[0, 0, 0] == X[0, 0]


# --------------------------------------------------------------------------- 4. pandas storage kinds
def test_object_columns_with_pd_na_and_nullable_columns_are_missing_values():
    X = _x()
    O = _frame(X, columns=list("abc")).astype(object)
    O.iloc[3, 0] = pd.NA
    O.iloc[4, 1] = None
    expected = X.copy()
    expected[3, 0] = expected[4, 1] = np.nan
    imp = api.Imputer(**TINY)
    _assert_imputed(imp.fit_transform(O), expected)
    assert list(imp.feature_names_in_) == ["a", "b", "c"]
    fc = api.Forecaster(**FTINY).fit(O)
    assert np.isnan(fc.series_.values[3, 0, 0]) and np.array_equal(fc.series_.values[5, :, 0], X[5])
    N = _frame(np.arange(90).reshape(30, 3)).astype("Int64")
    N.iloc[2, 1] = pd.NA
    out = api.Imputer(**TINY).fit_transform(N)
    assert np.isfinite(out).all() and np.array_equal(np.delete(out.ravel(), 7), np.delete(np.arange(90.0), 7))


@pytest.mark.parametrize("fill", [np.nan, 0.0])
def test_pandas_sparse_columns_are_densified_with_their_fill_value(fill):
    X = _x()
    X[::4, 1] = fill
    S = _frame(X).astype(pd.SparseDtype(float, fill))
    out = api.Imputer(**TINY).fit_transform(S)
    _assert_imputed(out, X)
    fc = api.Forecaster(**FTINY).fit(S)
    assert np.array_equal(fc.series_.values[:, :, 0], X, equal_nan=True)


def test_mixed_type_labels_work_for_the_forecaster():
    fc = api.Forecaster(**FTINY).fit(_frame(_x(), columns=[0, "a", "b"]))
    assert list(fc.predict().to_pandas().columns.get_level_values(0).unique()) == [0, "a", "b"]


# --------------------------------------------------------------------------- 6. precision
def test_numpy_integer_settings_are_integers():
    """n_samples=np.int64(3) was refused deep in sampling ('n_samples must be an integer >= 1, got np.int64(3)')."""
    settings = {k: np.int64(v) for k, v in TINY.items() if isinstance(v, int)}
    X = _x()
    X[3, 1] = np.nan
    _assert_imputed(api.Imputer(**{**TINY, **settings, "batch_size": np.int64(4)}).fit_transform(X), X)
    fsettings = {k: np.int64(v) for k, v in FTINY.items() if isinstance(v, int) and not isinstance(v, bool)}
    fc = api.Forecaster(**{**FTINY, **fsettings}).fit(_frame(X))
    assert np.isfinite(fc.predict(n_samples=np.int32(2)).samples).all()


def test_integers_float64_holds_exactly_are_kept():
    X = (np.arange(90, dtype=np.int64).reshape(30, 3) * 2**20 + 2**60)  # beyond 2**53, still exact in float64
    out = api.Imputer(**TINY).fit_transform(X)
    assert np.array_equal(out.astype(np.int64), X)
    L = _x().astype(np.longdouble)  # float128 holding float64 numbers: accepted, unchanged
    L[2, 2] = np.nan
    _assert_imputed(api.Imputer(**TINY).fit_transform(L), L.astype(np.float64))


# --------------------------------------------------------------------------- 5. model files
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "imp.pt"
    api.Imputer(**TINY).fit(_x()).save(path)
    return path


def _payload(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_model_files_store_a_checksum_that_is_verified(saved, tmp_path):
    payload = _payload(saved)
    assert payload["checksum"]["algorithm"] == "sha256" and len(payload["checksum"]["weights"]) == 64
    X = _x(1)
    X[4, 2] = np.nan
    api.Imputer.load(saved).transform(X)  # intact: loads
    # a flipped bit in one weight's bytes
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.numel() > 4)
    flipped = dict(payload, state_dict=dict(payload["state_dict"]))
    w = flipped["state_dict"][name].clone()
    w.view(torch.int32).reshape(-1)[3] ^= 1 << 20
    flipped["state_dict"][name] = w
    torch.save(flipped, tmp_path / "flip.pt")
    with pytest.raises(TsdiffError, match="is corrupted: the checksum of its weights does not match"):
        api.Imputer.load(tmp_path / "flip.pt")
    # a changed setting (the scaler's mean)
    changed = dict(payload, hparams=dict(payload["hparams"]))
    changed["hparams"]["scaler"] = dict(changed["hparams"]["scaler"], mean=[[5.0]] * 3)
    torch.save(changed, tmp_path / "settings.pt")
    with pytest.raises(TsdiffError, match="checksum of its settings does not match"):
        api.Imputer.load(tmp_path / "settings.pt")


def test_bit_flip_in_the_file_bytes_is_refused(saved, tmp_path):
    import zipfile

    with zipfile.ZipFile(saved) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(saved.read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size // 2] ^= 0x08
    (tmp_path / "bytes.pt").write_bytes(bytes(raw))
    with pytest.raises(TsdiffError, match="corrupted"):
        api.Imputer.load(tmp_path / "bytes.pt")


def test_legacy_incomplete_and_misshapen_files(saved, tmp_path):
    from tsdiff.training.checkpoint import load_model

    legacy = {k: v for k, v in _payload(saved).items() if k != "checksum"}  # written before checksums
    torch.save(legacy, tmp_path / "legacy.pt")
    assert isinstance(api.Imputer.load(tmp_path / "legacy.pt"), api.Imputer)
    torch.save({k: v for k, v in legacy.items() if k != "state_dict"}, tmp_path / "nostate.pt")
    with pytest.raises(TsdiffError, match="incomplete tsdiff model file: it has no state_dict"):
        load_model(tmp_path / "nostate.pt")
    name = next(iter(legacy["state_dict"]))
    bad = dict(legacy, state_dict={**legacy["state_dict"], name: torch.zeros(7, 3)})
    torch.save(bad, tmp_path / "shape.pt")
    with pytest.raises(TsdiffError, match=rf"weight '{name}' has shape \[7, 3\] where the model needs"):
        load_model(tmp_path / "shape.pt")
    with pytest.raises(TsdiffError, match="is a directory, not a model file"):
        api.Imputer.load(tmp_path)
