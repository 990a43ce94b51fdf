"""tsdiff.Imputer as a scikit-learn estimator: the library's estimator checks, Pipeline,
ColumnTransformer and clone on real AQI-36 data, multiple imputations, exactness."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import estimator_checks_generator

from tsdiff import Imputer
from tsdiff.api import SKLEARN_EXPECTED_FAILED_CHECKS
from tsdiff.errors import DataError

TINY = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
            feature_embedding_dim=4)
SMALL = dict(layers=1, channels=16, heads=2, ff_dim=16, diffusion_embedding_dim=32, time_embedding_dim=16,
             feature_embedding_dim=8)


def tiny_imputer(**kw):
    params = dict(window=12, max_steps=3, n_samples=3, sampling_steps=3, model_options=TINY)
    params.update(kw)
    return Imputer(**params)


# The checks that exercise fitting, transforming, pickling, cloning and input validation
# run in the default suite; the whole list runs under the integration marker.
FAST_CHECKS = {
    "check_transformer_general", "check_estimators_pickle", "check_fit_idempotent", "check_n_features_in_after_fitting",
    "check_estimators_empty_data_messages", "check_fit2d_predict1d", "check_methods_subset_invariance",
    "check_fit2d_1sample", "check_fit2d_1feature", "check_transformers_unfitted", "check_set_params",
    "check_get_params_invariance", "check_no_attributes_set_in_init", "check_estimators_overwrite_params",
    "check_dict_unchanged", "check_estimator_cloneable", "check_parameters_default_constructible",
    "check_fit_check_is_fitted", "check_transformer_preserve_dtypes",
}


def _check_params():
    out = []
    for est, check in estimator_checks_generator(tiny_imputer(), legacy=True,
                                                 expected_failed_checks=SKLEARN_EXPECTED_FAILED_CHECKS):
        name = getattr(check, "func", check).__name__
        kw = getattr(check, "keywords", {}) or {}
        ident = name + ("(" + ",".join(f"{k}={v}" for k, v in kw.items()) + ")" if kw else "")
        marks = [] if name in FAST_CHECKS else [pytest.mark.integration]
        out.append(pytest.param(est, check, id=ident, marks=marks))
    return out


@pytest.mark.parametrize("estimator, check", _check_params())
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("name", ["check_dataframe_column_names_consistency", "check_set_output_transform"])
def test_sklearn_checks_outside_the_generated_list(name):
    """Checks scikit-learn runs only for some estimators; all apply to a transformer that takes DataFrames."""
    import sklearn.utils.estimator_checks as checks

    getattr(checks, name)("Imputer", tiny_imputer())


def test_fast_subset_is_really_run():
    ids = [p.id for p in _check_params() if not p.marks]
    names = {i.split("(")[0] for i in ids}
    assert names == FAST_CHECKS, FAST_CHECKS - names  # a renamed check would silently drop out otherwise


# --------------------------------------------------------------------------- real data: AQI-36
@pytest.fixture(scope="module")
def aqi_month(data_dir):
    """May 2014 of AQI-36 (720 hourly rows x 36 stations): the ground truth and the
    CSDI evaluation input (ground truth with the evaluation entries hidden)."""
    read = lambda name: pd.read_csv(data_dir / "aqi36" / name, index_col=0, parse_dates=True,  # noqa: E731
                                    date_format="%Y/%m/%d %H:%M:%S").iloc[:720]
    return read("pm25_ground.txt"), read("pm25_missing.txt")


@pytest.fixture(scope="module")
def fitted_aqi(aqi_month):
    """A briefly trained imputer (seconds): checks of the contract, not of accuracy."""
    _, missing = aqi_month
    return Imputer(window=24, max_steps=4, n_samples=3, sampling_steps=3, model_options=TINY).fit(missing.iloc[:240])


def test_imputer_on_real_aqi36_fills_every_gap_and_keeps_observed_values_bit_for_bit(aqi_month, fitted_aqi):
    _, missing = aqi_month
    X = missing.iloc[:240]
    out = fitted_aqi.transform(X)
    arr = X.to_numpy()
    obs = ~np.isnan(arr)
    assert (~obs).sum() > 500
    assert out.shape == arr.shape and out.dtype == np.float64
    assert np.isfinite(out).all()
    assert out[obs].tobytes() == arr[obs].tobytes()  # bit for bit
    assert np.array_equal(fitted_aqi.transform(X), out)  # same seed, same imputations


@pytest.mark.integration
def test_imputations_on_real_aqi36_beat_linear_interpolation(aqi_month):
    """A month of AQI-36, a few hundred training steps: MAE on CSDI's evaluation entries below
    that of linear interpolation along time (pandas, both directions, edges filled) and well
    below the station mean."""
    ground, missing = aqi_month
    imp = Imputer(window=24, max_steps=400, n_samples=8, model_options=SMALL, random_state=0).fit(missing)
    out = imp.transform(missing)
    X = missing.to_numpy()
    target = np.isnan(X) & ground.notna().to_numpy()  # hidden entries with ground truth
    assert target.sum() > 1000
    truth = ground.to_numpy()[target]
    mae = np.abs(out[target] - truth).mean()
    mae_mean = np.abs(np.broadcast_to(np.nanmean(X, axis=0), X.shape)[target] - truth).mean()
    linear = missing.reset_index(drop=True).interpolate(limit_direction="both").to_numpy()
    mae_linear = np.abs(linear[target] - truth).mean()
    assert mae < mae_linear and mae < 0.8 * mae_mean, (mae, mae_linear, mae_mean)


def test_multiple_imputations_quantiles_and_uncertainty(aqi_month, fitted_aqi):
    _, missing = aqi_month
    X = missing.iloc[:96]
    draws = fitted_aqi.sample(X, 5)
    arr = X.to_numpy()
    obs = ~np.isnan(arr)
    assert draws.shape == (5, 96, 36)
    for d in draws:
        assert np.array_equal(d[obs], arr[obs])
    assert (draws[:, ~obs].std(axis=0) > 0).mean() > 0.95  # imputations differ between draws
    q = fitted_aqi.quantiles(X, [0.05, 0.5, 0.95], n_samples=5)
    assert q.shape == (3, 96, 36)
    assert np.all(q[0] <= q[1]) and np.all(q[1] <= q[2])
    assert np.array_equal(q[1][obs], arr[obs])
    sd = fitted_aqi.std(X, n_samples=5)
    assert np.all(sd[obs] == 0) and np.all(sd[~obs] > 0)
    # same seed, same draws
    assert np.array_equal(fitted_aqi.sample(X, 5), draws)


def _aqi_regression(missing, n_train):
    """Predict station 001001 from the 35 other stations (with their gaps)."""
    y = missing["001001"]
    X = missing.drop(columns="001001")
    return X.iloc[:n_train], y.iloc[:n_train], X.iloc[n_train:], y.iloc[n_train:]


def _r2(y, pred):
    y = np.asarray(y)
    keep = ~np.isnan(y)
    return 1 - ((y[keep] - pred[keep]) ** 2).sum() / ((y[keep] - y[keep].mean()) ** 2).sum()


def test_pipeline_imputer_ridge_on_real_aqi36_and_clone(aqi_month):
    _, missing = aqi_month
    X_train, y_train, X_test, y_test = _aqi_regression(missing.iloc[:300], 240)
    pipe = Pipeline([("impute", Imputer(window=24, max_steps=4, n_samples=2, sampling_steps=3, model_options=TINY)),
                     ("ridge", Ridge(alpha=1.0))])
    k = y_train.notna().to_numpy()
    pipe.fit(X_train[k], y_train[k])  # the imputer sees the rows in time order
    pred = pipe.predict(X_test)
    assert pred.shape == (60,) and np.isfinite(pred).all()
    # observed entries pass through the pipeline's imputer unchanged
    Z = pipe.named_steps["impute"].transform(X_test)
    obs = X_test.notna().to_numpy()
    assert (~obs).any() and np.array_equal(Z[obs], X_test.to_numpy()[obs])
    assert np.isfinite(Z).all()
    # clone: same settings, unfitted; refitting gives the same model (seeded)
    twin = clone(pipe)
    assert twin.named_steps["impute"].get_params() == pipe.named_steps["impute"].get_params()
    assert not hasattr(twin.named_steps["impute"], "module_")
    twin.fit(X_train[k], y_train[k])
    np.testing.assert_array_equal(twin.predict(X_test), pred)


@pytest.mark.integration
def test_pipeline_imputer_ridge_predicts_real_aqi36_well(aqi_month):
    _, missing = aqi_month
    X_train, y_train, X_test, y_test = _aqi_regression(missing, 480)
    k = y_train.notna().to_numpy()
    pipe = Pipeline([("impute", Imputer(window=24, max_steps=300, n_samples=8, model_options=SMALL)),
                     ("ridge", Ridge(alpha=1.0))]).fit(X_train[k], y_train[k])
    r2 = _r2(y_test, pipe.predict(X_test))
    # the same pipeline with linear interpolation along time in place of the imputer
    # (a station with no value in a span gets its training mean)
    fill = lambda Z: Z.reset_index(drop=True).interpolate(limit_direction="both").fillna(X_train.mean())  # noqa: E731
    ridge = Ridge(alpha=1.0).fit(fill(X_train)[k], y_train[k])
    r2_linear = _r2(y_test, ridge.predict(fill(X_test)))
    assert r2 > 0.8 and r2 >= r2_linear, (r2, r2_linear)


def test_column_transformer_and_pandas_output(aqi_month):
    _, missing = aqi_month
    X = missing.iloc[:120, :6]
    ct = ColumnTransformer([("imp", tiny_imputer(), ["001001", "001002", "001003"]),
                            ("keep", "passthrough", ["001004", "001005", "001006"])])
    out = ct.fit_transform(X)
    assert out.shape == (120, 6)
    assert not np.isnan(out[:, :3]).any()
    np.testing.assert_array_equal(out[:, 3:], X.iloc[:, 3:].to_numpy())  # passthrough keeps NaN
    imp = tiny_imputer().set_output(transform="pandas")
    df = imp.fit_transform(X)
    assert isinstance(df, pd.DataFrame)
    assert df.index.equals(X.index) and list(df.columns) == list(X.columns)
    obs = X.notna().to_numpy()
    assert np.array_equal(df.to_numpy()[obs], X.to_numpy()[obs])


def test_bad_input_is_refused_clearly(aqi_month):
    _, missing = aqi_month
    X = missing.iloc[:48, :4]
    imp = tiny_imputer().fit(X)
    with pytest.raises(DataError, match="feature names"):
        imp.transform(missing.iloc[:48, 1:5])  # other columns
    with pytest.raises(DataError, match="4 features"):
        imp.transform(missing.iloc[:48, :3].to_numpy())
    daily = X.copy()
    daily.index = pd.date_range("2014-05-01", periods=48, freq="D")
    with pytest.raises(DataError, match="frequency 'D'.*'h'"):
        imp.transform(daily)
    bad = X.astype(object)
    bad.iloc[3, 1] = "n/a?"
    with pytest.raises(DataError, match=r"column '001002' is not numeric \(e.g. 'n/a\?'"):
        tiny_imputer().fit(bad)
    inf = X.copy()
    inf.iloc[2, 2] = np.inf  # NaN is missing data, infinity is an error
    with pytest.raises(DataError, match="infinity"):
        tiny_imputer().fit(inf)
    with pytest.raises(DataError, match="empty"):
        tiny_imputer().fit(X.iloc[:0])
    allnan = X.copy()
    allnan["001003"] = np.nan
    with pytest.raises(DataError, match="'001003' has no observed value"):
        tiny_imputer().fit(allnan)
    with pytest.raises(Exception, match="window must be an integer >= 1"):
        tiny_imputer(window=0).fit(X)


def test_save_load_round_trip_and_wrong_data(tmp_path, aqi_month):
    _, missing = aqi_month
    X = missing.iloc[:60, :5]
    imp = tiny_imputer().fit(X)
    path = imp.save(tmp_path / "imp.pt")
    again = Imputer.load(path)
    assert again.get_params() == imp.get_params()
    np.testing.assert_array_equal(again.transform(X), imp.transform(X))
    with pytest.raises(DataError, match="feature names"):
        again.transform(missing.iloc[:60, 1:6])
    with pytest.raises(DataError, match="5 features"):
        again.transform(np.zeros((10, 4)))


def test_imputer_passes_sampler_options_and_chunk_size(aqi_month, fitted_aqi, monkeypatch, record_calls):
    from tsdiff.errors import ConfigError

    _, missing = aqi_month
    calls = record_calls(fitted_aqi.module_, "sample")
    monkeypatch.setattr(fitted_aqi, "sampler_options", {"eta": 0.5})
    monkeypatch.setattr(fitted_aqi, "chunk_size", 5)
    X = missing.iloc[:240]
    out = fitted_aqi.transform(X)
    assert calls and all(c["sampler_options"] == {"eta": 0.5} and c["chunk_size"] == 5 for c in calls)
    obs = ~np.isnan(X.to_numpy())
    assert out[obs].tobytes() == X.to_numpy()[obs].tobytes()
    monkeypatch.setattr(fitted_aqi, "sampler_options", {"bogus": 1})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['bogus'\] for sampler 'ddim'"):
        fitted_aqi.transform(X)
    with pytest.raises(ConfigError, match="sampler_options must be a dict"):
        tiny_imputer(sampler_options=["eta"]).fit(X)
    # refused before any training
    monkeypatch.setattr("tsdiff.api.fitting._train", lambda *a, **k: pytest.fail("trained despite a bad sampler option"))
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['bogus'\] for sampler 'ddim'"):
        tiny_imputer(sampler_options={"bogus": 1}).fit(X)
