"""The API in the Python ecosystem: scikit-learn parameters of Forecaster, set_output of the
Imputer's summaries, one quantile definition (Forecast = metrics = GluonTS), GluonTS periods of
every pandas frequency, and the deprecated argument names."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import tsdiff
from tsdiff.api import Forecast, Forecaster, Imputer
from tsdiff.errors import ConfigError, DataError, TsdiffError
from tsdiff.metrics import empirical_quantiles, quantile_crps
from tsdiff.quantiles import nearest_rank_index, sample_quantile

TINY = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
            feature_embedding_dim=4)


def tiny_forecaster(**kw):
    params = dict(prediction_length=3, context_length=6, max_steps=2, model_options=TINY, n_samples=4,
                  sampler="ddim", sampling_steps=2, verbose=False)
    params.update(kw)
    return Forecaster(**params)


def _frame(freq: str, periods: int = 30, columns=("a", "b"), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2015-01-01", periods=periods, freq=freq, name="date")
    return pd.DataFrame(rng.normal(10.0, 2.0, (periods, len(columns))).cumsum(axis=0), index=index,
                        columns=list(columns))


@pytest.fixture(scope="module")
def monthly_fitted():
    """A tiny forecaster trained (2 steps) on month-start data."""
    return tiny_forecaster().fit(_frame("MS"))


# --------------------------------------------------------------------------- 1. scikit-learn params
def test_forecaster_get_params_set_params_and_clone_round_trip():
    f = tiny_forecaster(sampler_options={"eta": 0.5}, random_state=3)
    params = f.get_params(deep=True)
    assert params == f.get_params(deep=False)  # no nested estimators
    assert params["sampler_options"] == {"eta": 0.5} and params["verbose"] is False and params["progress"] is None
    assert set(params) == {"model", "prediction_length", "context_length", "model_options", "process", "max_steps",
                           "max_time", "validation", "early_stopping", "trainer_kwargs", "batch_size", "lr", "train_stride",
                           "n_samples",
                           "sampler", "sampling_steps",
                           "sampler_options", "chunk_size", "freq", "prior", "random_state", "verbose", "device",
                           "progress", "covariates", "future_covariates", "calendar", "centre_covariates",
                           "static_covariates", "mode"}
    twin = clone(f)
    assert type(twin) is Forecaster and twin is not f and twin.get_params() == params
    assert twin.model_options is not f.model_options  # clone copies the values
    assert Forecaster(**params).get_params() == params
    # set_params: returns the estimator, changes only what it names, round trips through clone
    assert f.set_params(n_samples=7, sampling_steps=3, prior="last_value") is f
    assert (f.n_samples, f.sampling_steps, f.prior) == (7, 3, "last_value")
    assert {k: v for k, v in f.get_params().items() if k not in ("n_samples", "sampling_steps", "prior")} == \
        {k: v for k, v in params.items() if k not in ("n_samples", "sampling_steps", "prior")}
    assert clone(f).get_params() == f.get_params()
    f.set_params(**params)
    assert f.get_params() == params
    assert "Forecaster(" in repr(f)


def test_forecaster_set_params_refuses_an_unknown_name_clearly():
    f = tiny_forecaster()
    with pytest.raises(ConfigError, match=r"Invalid parameter 'n_sample' for estimator Forecaster \(did you "
                                          r"mean 'n_samples'\?\); valid parameters are: batch_size, .*, n_samples, "
                                          r".*, verbose"):
        f.set_params(n_sample=3)
    with pytest.raises(ValueError, match="Invalid parameter 'bogus'"):  # a ValueError, as scikit-learn's
        f.set_params(n_samples=5, bogus=1)
    assert f.n_samples == 4  # nothing was set


def test_clone_of_a_fitted_forecaster_is_unfitted_and_refits_identically(monthly_fitted):
    twin = clone(monthly_fitted)
    assert twin.module_ is None and twin.get_params() == monthly_fitted.get_params()
    with pytest.raises(TsdiffError, match="not fitted"):
        twin.predict()
    twin.fit(_frame("MS"))
    np.testing.assert_array_equal(twin.predict().samples, monthly_fitted.predict().samples)


# --------------------------------------------------------------------------- 2. Imputer set_output
@pytest.fixture(scope="module")
def gappy():
    X = _frame("h", periods=48, columns=("s1", "s2", "s3"), seed=1)
    rng = np.random.default_rng(2)
    return X.mask(rng.random(X.shape) < 0.2)


@pytest.fixture(scope="module")
def fitted_imputer(gappy):
    return Imputer(window=12, max_steps=2, n_samples=4, sampling_steps=2, model_options=TINY).fit(gappy)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")  # the numpy input, on purpose
def test_imputer_quantiles_and_std_honour_set_output(gappy, fitted_imputer):
    imp = fitted_imputer
    try:
        _check_set_output(imp, gappy)
    finally:
        imp.set_output(transform="default")


def _check_set_output(imp, gappy):
    import sklearn

    with sklearn.config_context(transform_output="pandas"):  # the global scikit-learn setting
        assert isinstance(imp.quantiles(gappy, [0.5])[0], pd.DataFrame)
        assert isinstance(imp.std(gappy), pd.DataFrame)
    plain = imp.quantiles(gappy, [0.1, 0.5, 0.9])
    sd = imp.std(gappy)
    assert isinstance(plain, np.ndarray) and plain.shape == (3, 48, 3) and isinstance(sd, np.ndarray)

    imp.set_output(transform="pandas")
    frames = imp.quantiles(gappy, [0.1, 0.5, 0.9])
    assert isinstance(frames, list) and len(frames) == 3
    filled = imp.transform(gappy)
    for k, df in enumerate(frames):
        assert isinstance(df, pd.DataFrame)
        assert df.index.equals(gappy.index) and list(df.columns) == list(gappy.columns)  # as transform's
        assert df.index.equals(filled.index) and list(df.columns) == list(filled.columns)
        np.testing.assert_array_equal(df.to_numpy(), plain[k])
    lo, med, hi = frames  # unpacks like the array
    obs = gappy.notna().to_numpy()
    assert np.array_equal(med.to_numpy()[obs], gappy.to_numpy()[obs])  # observed: the value itself
    sd_df = imp.std(gappy)
    assert isinstance(sd_df, pd.DataFrame) and sd_df.index.equals(gappy.index)
    np.testing.assert_array_equal(sd_df.to_numpy(), sd)
    # a numpy input: the feature names and a RangeIndex, as transform gives
    arr_frames = imp.quantiles(gappy.to_numpy(), [0.5])
    assert list(arr_frames[0].columns) == list(imp.get_feature_names_out())
    imp.set_output(transform="default")
    assert isinstance(imp.quantiles(gappy, [0.5]), np.ndarray)


# --------------------------------------------------------------------------- 3. one quantile definition
LEVELS = [0.0, 0.05, 0.1, 0.25, 0.3, 0.5, 0.7, 0.75, 0.9, 0.95, 1.0]


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("S", [20, 6, 4, 7, 1])
def test_forecast_metrics_and_gluonts_quantiles_agree_exactly(S):
    rng = np.random.default_rng(S)
    H, N = 5, 3
    samples = rng.gamma(2.0, 20.0, size=(S, H, N, 1))
    index = pd.date_range("2020-01-01", periods=H, freq="D")
    fc = Forecast(samples, index, ["a", "b", "c"], ["value"], freq="D")
    glu = fc.to_gluonts()
    ours = fc.quantile(LEVELS)  # [Q, H, N]
    metrics = empirical_quantiles(fc.samples, LEVELS)  # the metrics' (default method "nearest")
    np.testing.assert_array_equal(ours, metrics)
    np.testing.assert_array_equal(ours, sample_quantile(fc.samples, LEVELS))
    np.testing.assert_array_equal(ours, np.quantile(fc.samples, LEVELS, axis=0, method="nearest"))
    table = fc.to_pandas(LEVELS)
    for n, name in enumerate(fc.columns):
        assert np.array_equal(fc.median[:, n], glu[n].median)  # the median, even S included
        for k, q in enumerate(LEVELS):
            np.testing.assert_array_equal(ours[k][:, n], glu[n].quantile(q))
            np.testing.assert_array_equal(fc.quantile(q)[:, n], glu[n].quantile(q))
            np.testing.assert_array_equal(table[(name, str(q))].to_numpy(), glu[n].quantile(q))
    lo, hi = fc.interval(0.9)
    np.testing.assert_array_equal(lo[:, 0], glu[0].quantile(0.05))
    np.testing.assert_array_equal(hi[:, 0], glu[0].quantile(0.95))
    # every quantile is one of the samples: the rank round((S - 1) q), half to even
    ordered = np.sort(fc.samples, axis=0)
    for q in LEVELS:
        np.testing.assert_array_equal(fc.quantile(q), ordered[nearest_rank_index(S, q)])


def test_even_sample_count_median_is_the_gluonts_middle_sample_not_the_mean():
    # 20 samples: round(9.5) = 10, the upper middle; 6 samples: round(2.5) = 2, the lower middle
    for S, rank in ((20, 10), (6, 2), (4, 2), (2, 0)):
        values = np.arange(S, dtype=float)[::-1] * 3.0  # unsorted on purpose
        fc = Forecast(values.reshape(S, 1, 1, 1), pd.date_range("2020-01-01", periods=1, freq="D"), ["x"], ["v"])
        assert fc.median[0, 0] == 3.0 * rank != np.median(values)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_gluonts_evaluator_on_to_gluonts_equals_tsdiff_metrics():
    from gluonts.evaluation import Evaluator

    from tsdiff.metrics import DEFAULT_QUANTILES

    rng = np.random.default_rng(0)
    S, H, N, hist = 20, 6, 3, 10
    index = pd.date_range("2020-01-01", periods=hist + H, freq="MS")
    truth = rng.gamma(2.0, 5.0, size=(hist + H, N))
    samples = truth[hist:][None, :, :, None] + rng.normal(0.0, 3.0, size=(S, H, N, 1))
    fc = Forecast(samples, index[hist:], ["a", "b", "c"], ["v"], freq="MS")
    glu = fc.to_gluonts()
    periods = pd.period_range(glu[0].start_date - hist, periods=hist + H)
    series = [pd.Series(truth[:, n], index=periods) for n in range(N)]
    agg, _ = Evaluator(quantiles=DEFAULT_QUANTILES, num_workers=None)(iter(series), iter(glu), num_series=N)
    target = truth[hist:]
    assert quantile_crps(fc.samples, target) == pytest.approx(agg["mean_wQuantileLoss"], rel=1e-12)
    # GluonTS' MAE uses its median, the same samples as Forecast.median
    assert np.abs(fc.median - target).mean() == pytest.approx(agg["abs_error"] / target.size, rel=1e-12)


def test_imputer_summaries_use_the_same_definition_and_median_fill_is_textbook(gappy, fitted_imputer):
    X = gappy
    draws = fitted_imputer.sample(X)  # 4 draws (even)
    q = fitted_imputer.quantiles(X, [0.05, 0.5, 0.95])
    np.testing.assert_array_equal(q, empirical_quantiles(draws, [0.05, 0.5, 0.95]))
    # point="median": the textbook median of the draws (mean of the two middle ones); observed untouched
    filled = fitted_imputer.transform(X)
    gaps = X.isna().to_numpy()
    np.testing.assert_array_equal(filled[gaps], np.median(draws, axis=0)[gaps])
    assert filled[~gaps].tobytes() == X.to_numpy()[~gaps].tobytes()


# --------------------------------------------------------------------------- 4. GluonTS periods
FREQS = {"MS": "M", "ME": "M", "2MS": "2M", "QS": "Q-DEC", "QS-FEB": "Q-JAN", "QE": "Q-DEC", "YS": "Y-DEC",
         "YS-APR": "Y-MAR", "YE": "Y-DEC", "B": "B", "BMS": "M", "BME": "M", "BQS": "Q-DEC", "BQE": "Q-DEC",
         "BYS": "Y-DEC", "CBMS": "M", "W-SUN": "W-SUN", "W-WED": "W-WED", "D": "D", "h": "h", "3h": "3h",
         "min": "min", "15min": "15min", "s": "s"}


@pytest.mark.filterwarnings("ignore::FutureWarning")  # pandas deprecates business-day periods
@pytest.mark.parametrize("freq", list(FREQS))
def test_to_gluonts_works_for_every_calendar_and_business_frequency(freq):
    H = 7
    index = pd.date_range("2021-01-04", periods=H, freq=freq)
    samples = np.random.default_rng(0).normal(size=(5, H, 2, 1))
    for given in (freq, None):  # the data's frequency, or inferred from the index
        fc = Forecast(samples, index, ["a", "b"], ["v"], freq=given)
        glu = fc.to_gluonts()
        assert [g.item_id for g in glu] == ["a", "b"]
        start = glu[0].start_date
        assert isinstance(start, pd.Period)
        if given is not None:  # (inferred, QS may read QS-OCT -> Q-SEP: the same quarters)
            assert start.freqstr == FREQS[freq]
        periods = glu[0].index
        assert len(periods) == H
        for t, p in zip(index, periods):  # every forecast step lies in its GluonTS period
            assert p.start_time <= t <= p.end_time, (freq, t, p)
        np.testing.assert_array_equal(glu[1].samples, samples[:, :, 1, 0])


def test_deprecated_as_alias_and_frequencies_without_periods():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        index = pd.date_range("2021-01-01", periods=3, freq="AS")
    fc = Forecast(np.zeros((2, 3, 1, 1)), index, ["a"], ["v"], freq="AS")
    assert fc.to_gluonts()[0].start_date == pd.Period("2021", freq="Y-DEC")
    fc = Forecast(np.zeros((2, 3, 1, 1)), pd.date_range("2021-01-01", periods=3, freq="SMS"), ["a"], ["v"],
                  freq="SMS")
    with pytest.raises(DataError, match="'SMS-15' has no pandas period equivalent"):
        fc.to_gluonts()


def test_trained_forecaster_on_month_start_data_converts_to_gluonts(monthly_fitted):
    fc = monthly_fitted.predict()
    assert fc.freq == "MS" and fc.index[0] == pd.Timestamp("2017-07-01")
    glu = fc.to_gluonts()
    assert len(glu) == 2 and glu[0].start_date == pd.Period("2017-07", freq="M")
    assert list(glu[0].index) == list(pd.period_range("2017-07", periods=3, freq="M"))
    np.testing.assert_array_equal(glu[1].quantile(0.5), fc.median[:, 1])


# --------------------------------------------------------------------------- 5. naming
def test_forecaster_progress_is_a_deprecated_alias_of_verbose(monkeypatch):
    seen = []
    monkeypatch.setattr("tsdiff.api.fitting._train", lambda *a, **k: seen.append(k["progress"]))
    old = Forecaster(prediction_length=3, context_length=6, model_options=TINY, progress=False)  # no warning yet
    assert old.progress is False and old.verbose is True  # stored unchanged (scikit-learn)
    assert clone(old).get_params() == old.get_params()
    with pytest.warns(FutureWarning, match=r"Forecaster: progress= is deprecated.*use verbose="):
        old.fit(_frame("MS"))
    assert seen == [False]  # the alias wins over verbose's default
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the new name does not warn
        Forecaster(prediction_length=3, context_length=6, model_options=TINY, verbose=False).fit(_frame("MS"))
    assert seen == [False, False]


def test_predict_steps_and_progress_are_deprecated_aliases(monthly_fitted, record_calls, monkeypatch):
    calls = record_calls(monthly_fitted.module_, "sample")
    bars = []
    from tsdiff.api import sampling

    real = sampling.sample_windows
    monkeypatch.setattr(sampling, "sample_windows", lambda *a, **k: bars.append(k["progress"]) or real(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        new = monthly_fitted.predict(sampling_steps=3, verbose=True)
    assert calls[-1]["steps"] == 3 and bars[-1] is True
    with pytest.warns(FutureWarning, match=r"Forecaster.predict: steps= is deprecated.*use sampling_steps="):
        old = monthly_fitted.predict(steps=3)
    assert calls[-1]["steps"] == 3
    np.testing.assert_array_equal(old.samples, new.samples)
    with pytest.warns(FutureWarning, match=r"Forecaster.predict: progress= is deprecated.*use verbose="):
        monthly_fitted.predict(progress=True)
    assert bars[-1] is True
    with pytest.raises(ConfigError, match="steps= is the deprecated name of sampling_steps="):
        monthly_fitted.predict(steps=2, sampling_steps=3)


def test_a_file_saved_with_progress_loads_as_verbose(tmp_path, monthly_fitted, monkeypatch):
    from tsdiff.api import persistence

    real = persistence._api_params

    def old_params(obj):  # what files saved before the rename hold
        p = real(obj)
        p["progress"] = p.pop("verbose")
        return p

    monkeypatch.setattr(persistence, "_api_params", old_params)
    path = monthly_fitted.save(tmp_path / "old.pt")
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        again = Forecaster.load(path)
    assert again.verbose is False and again.progress is None
    np.testing.assert_array_equal(again.predict(_frame("MS")).samples, monthly_fitted.predict().samples)


def test_forecast_is_importable_from_its_own_module_and_the_package():
    import tsdiff.forecast

    assert tsdiff.Forecast is tsdiff.api.Forecast is tsdiff.forecast.Forecast
