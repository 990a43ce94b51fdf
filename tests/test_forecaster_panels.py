"""Forecaster on panels of independent, ragged series (mode="global"): real exchange rates cut
into series of different lengths and ends; each forecast starts after its own series' end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tsdiff
from tsdiff.errors import ConfigError, DataError, TsdiffError

TINY = {"layers": 1, "channels": 8, "heads": 2, "ff_dim": 8, "diffusion_embedding_dim": 16,
        "time_embedding_dim": 8, "feature_embedding_dim": 4}
H, CTX = 4, 8


def tiny(**kw) -> tsdiff.Forecaster:
    params = dict(prediction_length=H, context_length=CTX, max_steps=3, model_options=TINY, n_samples=6,
                  sampler="ddim", sampling_steps=3, verbose=False)
    params.update(kw)
    return tsdiff.Forecaster(**params)


@pytest.fixture(scope="module")
def rates(data_dir) -> pd.DataFrame:
    """The last 120 business days of the real exchange-rate file, one column per currency."""
    from tsdiff.data.adapters.frames import to_wide_dataframe
    from tsdiff.data.datasets.lstnet import load_exchange_rate

    df = to_wide_dataframe(load_exchange_rate(data_dir)).iloc[-120:]
    df.columns = [f"cur{c}" for c in df.columns]
    return df


#: (first, last + 1) rows of each currency's series: different starts, lengths and ends
SPANS = {"cur0": (0, 120), "cur1": (10, 95), "cur2": (30, 70), "cur3": (5, 110)}


@pytest.fixture(scope="module")
def long(rates) -> pd.DataFrame:
    """NeuralForecast's layout: unique_id / ds / y, each currency on its own span."""
    parts = [pd.DataFrame({"unique_id": c, "ds": rates.index[a:b], "y": rates[c].to_numpy()[a:b]})
             for c, (a, b) in SPANS.items()]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def fitted(long):
    before = long.copy()
    fc = tiny().fit(long, item_col="unique_id", time_col="ds")
    pd.testing.assert_frame_equal(long, before)  # the observed input is not modified
    return fc


def test_long_frame_is_global_and_each_forecast_starts_after_its_own_end(rates, long, fitted):
    assert fitted.mode_ == "global"
    before = long.copy()
    out = fitted.predict(long, item_col="unique_id", time_col="ds")
    pd.testing.assert_frame_equal(long, before)
    assert isinstance(out, tsdiff.PanelForecast) and out.items == list(SPANS)
    for c, (a, b) in SPANS.items():
        fc = out[c]
        assert fc.index[0] == rates.index[b - 1] + rates.index.freq  # the next business day after its end
        assert len(fc.index) == H and fc.samples.shape == (6, H, 1)
        assert np.isfinite(fc.samples).all()
        np.testing.assert_array_equal(fc.history.values[:, 0, 0], rates[c].to_numpy()[b - CTX:b])
    # predict() without data forecasts the training series, the same draws for the same seed
    again = fitted.predict()
    for c in SPANS:
        np.testing.assert_array_equal(again[c].samples, out[c].samples)
    with pytest.raises(KeyError, match="no series 'nope'"):
        out["nope"]


def test_items_whose_last_rows_have_no_target_value_are_warned_about(rates, long, fitted):
    """A long frame's item spans its rows: trailing rows without a target value (e.g. future
    covariate rows) move its forecast origin, which is said, not silent; items that end on a
    value give no warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.predict(long, item_col="unique_id", time_col="ds")
    b = SPANS["cur2"][1]
    extra = pd.DataFrame({"unique_id": "cur2", "ds": rates.index[b:b + 3], "y": np.nan})
    padded = pd.concat([long, extra], ignore_index=True)
    with pytest.warns(UserWarning, match=r"predict: the last rows of item\(s\) 'cur2' \(3 row\(s\) after "
                                         + str(rates.index[b - 1].date())):
        out = fitted.predict(padded, item_col="unique_id", time_col="ds")
    assert out["cur2"].index[0] == rates.index[b + 2] + rates.index.freq  # as warned: after the rows


def test_joint_data_whose_last_rows_have_no_value_is_warned_about(rates):
    import warnings

    fc = tiny().fit(rates)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fc.predict(rates)
    later = pd.bdate_range(rates.index[-1], periods=3)[1:]
    padded = pd.concat([rates, pd.DataFrame(np.nan, index=later, columns=rates.columns)])
    padded.index.freq = rates.index.freq
    with pytest.warns(UserWarning, match=r"the data's last 2 row\(s\), after " + str(rates.index[-1].date())):
        out = fc.predict(padded)
    assert out.index[0] == later[-1] + rates.index.freq


def test_panel_summaries_match_forecast_and_to_pandas_is_long(fitted):
    out = fitted.predict()
    frame = out.to_pandas(quantiles=(0.1, 0.5))
    assert list(frame.columns) == ["item_id", "ds", "mean", "0.1", "0.5"]
    assert len(frame) == len(SPANS) * H
    assert list(pd.unique(frame["item_id"])) == list(SPANS)
    one = frame[frame["item_id"] == "cur2"]
    np.testing.assert_array_equal(one["ds"].to_numpy(), out["cur2"].index.to_numpy())
    np.testing.assert_array_equal(one["0.1"].to_numpy(), out["cur2"].quantile(0.1)[:, 0])
    np.testing.assert_array_equal(out.median["cur1"], out["cur1"].quantile(0.5))
    sorted_draws = np.sort(out["cur1"].samples, axis=0)
    np.testing.assert_array_equal(out.quantile(0.9)["cur1"], sorted_draws[round(5 * 0.9)])  # nearest rank
    np.testing.assert_allclose(out.mean["cur3"], out["cur3"].samples.mean(axis=0))
    assert list(out.to_pandas(item_col="series_id").columns)[0] == "series_id"


def test_to_gluonts_gives_one_sample_forecast_per_series_at_its_own_start(rates, fitted):
    out = fitted.predict()
    g = out.to_gluonts()
    assert [f.item_id for f in g] == list(SPANS)
    for f, (c, (a, b)) in zip(g, SPANS.items()):
        assert f.start_date.to_timestamp() == out[c].index[0]
        np.testing.assert_array_equal(f.quantile(0.3), out[c].quantile(0.3)[:, 0])


def test_joint_refuses_ragged_ends_and_names_global(long):
    with pytest.raises(DataError, match="end at different times.*mode='global'"):
        tiny(mode="joint").fit(long, item_col="unique_id", time_col="ds")
    with pytest.raises(ConfigError, match="mode must be one of"):
        tiny(mode="panel").fit(long, item_col="unique_id", time_col="ds")


def test_long_frame_with_one_span_stays_joint(rates):
    """A long frame whose items share one span keeps today's joint behaviour."""
    part = rates.iloc[-30:, :2]
    frame = part.reset_index().melt(id_vars="date", var_name="unique_id", value_name="y")
    fc = tiny().fit(frame, item_col="unique_id", time_col="date")
    assert fc.mode_ == "joint"
    out = fc.predict(frame, item_col="unique_id", time_col="date")
    assert isinstance(out, tsdiff.Forecast) and out.samples.shape == (6, H, 2)


def test_3d_array_panel_and_list_of_frames(rates):
    values = rates.to_numpy()
    X = np.stack([values[:40, 0:2], values[40:80, 2:4], values[80:120, 4:6]])  # [3, 40, 2]
    before = X.copy()
    fc = tiny().fit(X)
    np.testing.assert_array_equal(X, before)
    assert fc.mode_ == "global" and fc.signature_["num_nodes"] == 2
    out = fc.predict()
    assert out.items == [0, 1, 2] and out[1].samples.shape == (6, H, 2)
    frames = [rates.iloc[a:b, :3] for a, b in ((0, 50), (20, 120), (60, 90))]
    fl = tiny().fit(frames)
    assert fl.mode_ == "global"
    out = fl.predict(frames)
    for i, f in enumerate(frames):
        assert out[i].index[0] == f.index[-1] + rates.index.freq
        assert out[i].columns == ["cur0", "cur1", "cur2"]
    long = out.to_pandas()
    assert list(long.columns) == ["item_id", "date", "series", "mean", "0.1", "0.5", "0.9"]
    with pytest.raises(DataError, match="features"):
        fl.predict([f.iloc[:, :2] for f in frames])
    with pytest.raises(DataError, match="mode='global'"):
        tiny(mode="joint").fit(frames)


def test_gluonts_list_of_ragged_entries_is_global(rates):
    start = pd.Period(rates.index[0], freq="B")
    entries = [{"start": start + a, "target": rates[c].to_numpy()[a:b], "item_id": c} for c, (a, b) in SPANS.items()]
    fc = tiny().fit(entries)
    assert fc.mode_ == "global"
    out = fc.predict(entries)
    for c, (a, b) in SPANS.items():
        assert out[c].index[0] == rates.index[b - 1] + rates.index.freq


def test_save_load_keeps_mode_and_forecasts(fitted, long, tmp_path):
    path = fitted.save(tmp_path / "global.pt")
    back = tsdiff.Forecaster.load(path)
    assert back.mode == "auto" and back.mode_ == "global"
    with pytest.raises(DataError, match="holds no data"):
        back.predict()
    a = fitted.predict(long, item_col="unique_id", time_col="ds", random_state=3)
    b = back.predict(long, item_col="unique_id", time_col="ds", random_state=3)
    for c in SPANS:
        np.testing.assert_array_equal(a[c].samples, b[c].samples)


def test_old_files_without_mode_load_as_joint(rates, tmp_path):
    import torch

    from tsdiff.training.checkpoint import _checksum

    fc = tiny().fit(rates.iloc[-30:, :2])
    path = fc.save(tmp_path / "joint.pt")
    blob = torch.load(path, weights_only=True)
    del blob["extra"]["api"]["params"]["mode"]  # as files written before mode= existed
    del blob["extra"]["api"]["signature"]["mode"]
    blob["checksum"] = _checksum(blob)
    torch.save(blob, path)
    back = tsdiff.Forecaster.load(path)
    assert back.mode == "joint" and back.mode_ == "joint"


def test_global_predict_names_values_far_outside_the_training_data(long, fitted):
    huge = long.assign(y=long["y"] * 1e30)
    with pytest.raises(DataError, match="too far outside the data the model was trained on"):
        fitted.predict(huge, item_col="unique_id", time_col="ds")


def test_global_names_missing_covariates_and_refuses_a_backtest_without_a_frame(long, fitted):
    with pytest.raises(DataError, match=r"\['x'\] are not in the long DataFrame passed to fit"):
        tiny(covariates=["x"]).fit(long, item_col="unique_id", time_col="ds")
    arrays = [long[long.unique_id == c]["y"].to_numpy()[:, None] for c in SPANS]
    with pytest.raises(TsdiffError, match="global model .* pass a DataFrame"):
        fitted.backtest(arrays)


def test_global_backtest_scores_each_series_on_its_own_next_steps(rates, long, fitted):
    from tsdiff.backtest import backtest
    from tsdiff.metrics import ensemble_crps

    before = long.copy()
    res = backtest(fitted, long, windows=3, stride=H, item_col="unique_id", time_col="ds", random_state=0)
    pd.testing.assert_frame_equal(long, before)
    assert list(res.cutoffs) == [120 - 3 * H, 120 - 2 * H, 120 - H]
    for k, (cut, panel) in enumerate(zip(res.cutoffs, res.forecasts)):
        cutoff = rates.index[cut - 1]
        # every series that has started by the cut-off, each from its own last step up to it
        started = [c for c, (a, b) in SPANS.items() if a < cut]
        assert panel.items == started
        for c in started:
            a, b = SPANS[c]
            own_end = rates.index[min(b, cut) - 1]
            fc = panel[c]
            assert fc.index[0] == rates.index[rates.index.get_loc(own_end) + 1] and own_end <= cutoff
            truth = rates[c].iloc[a:b].reindex(fc.index).to_numpy()  # NaN past the series' own end
            row = res.metrics[(res.metrics.window == k) & (res.metrics.series == c)].iloc[0]
            mask = ~np.isnan(truth)
            assert row.observed == mask.sum()
            if mask.any():
                want = ensemble_crps(fc.samples_full[:, :, 0, 0], truth, mask)
                assert row.crps == pytest.approx(want, rel=1e-12)
            else:
                assert np.isnan(row.crps)
    # cur2 ended at row 70: forecast from there at every cut-off, never scored (no truth after it)
    assert res.metrics[res.metrics.series == "cur2"].observed.eq(0).all()
    pooled = backtest(fitted, long, windows=3, stride=H, item_col="unique_id", time_col="ds", random_state=0,
                      per_series=False)
    assert len(pooled.metrics) == 3 and (pooled.metrics.observed > 0).all()


def test_global_backtest_on_a_wide_frame_with_refit(rates):
    wide = rates.iloc[:60, :3].copy()
    wide.iloc[:20, 1] = np.nan  # starts later
    res = tiny(mode="global", max_steps=2).backtest(wide, windows=2, refit=True, random_state=0)
    assert set(res.metrics.series) == set(wide.columns) and len(res.metrics) == 2 * 3
    assert res.metrics.observed.eq(H).all() and np.isfinite(res.metrics.crps).all()


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
def test_gluonts_estimator_on_ragged_entries_forecasts_each_from_its_own_end(rates, tmp_path):
    from tsdiff.gluonts import DiffusionEstimator, DiffusionPredictor

    start = pd.Period(rates.index[0], freq="B")
    entries = [{"start": start + a, "target": rates[c].to_numpy()[a:b], "item_id": c} for c, (a, b) in SPANS.items()]
    predictor = DiffusionEstimator(prediction_length=H, context_length=CTX, max_steps=3, model_options=TINY,
                                   n_samples=5, sampling_steps=2, verbose=False).train(entries)
    assert predictor.forecaster.mode_ == "global"
    out = list(predictor.predict(entries[::-1]))  # any order, any subset: each entry on its own
    assert [f.item_id for f in out] == list(SPANS)[::-1]
    for f, e in zip(out, entries[::-1]):
        assert f.start_date == e["start"] + len(e["target"]) and f.samples.shape == (5, H)
    predictor.serialize(tmp_path / "p")
    again = list(DiffusionPredictor.deserialize(tmp_path / "p").predict(entries[::-1]))
    for a, b in zip(out, again):
        np.testing.assert_array_equal(a.samples, b.samples)


def test_global_wide_frame_reads_each_column_over_its_observed_span(rates):
    """mode="global" on a wide frame: one univariate series per column, from its first to its last
    observed value; a series shorter than the context is forecast from what it has."""
    wide = rates.iloc[:, :3].copy()
    wide.iloc[100:, 1] = np.nan  # cur1 ends 20 days early
    wide.iloc[:115, 2] = np.nan  # cur2 holds only its last 5 days (< context_length)
    before = wide.copy()
    fc = tiny(mode="global").fit(wide)
    pd.testing.assert_frame_equal(wide, before)
    assert fc.mode_ == "global" and fc.signature_["num_nodes"] == 1
    out = fc.predict(wide)
    assert out.items == ["cur0", "cur1", "cur2"]
    assert out["cur1"].index[0] == rates.index[99] + rates.index.freq
    assert out["cur0"].index[0] == out["cur2"].index[0] == rates.index[-1] + rates.index.freq
    assert len(out["cur2"].history.time_index) == 5 and np.isfinite(out["cur2"].samples).all()
    with pytest.raises(DataError, match="takes no graph"):
        fc.predict(wide, graph=np.eye(1))


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
def test_gluonts_estimator_on_ragged_entries_with_dynamic_features(rates):
    """GluonTS' convention: feat_dynamic_real covers the target and, at predict, the horizon after
    it; make_evaluation_predictions cuts the target and keeps the features whole."""
    from gluonts.evaluation import make_evaluation_predictions

    from tsdiff.gluonts import DiffusionEstimator

    start = pd.Period(rates.index[0], freq="B")
    other = rates.columns[-1]  # another currency: a known-future feature of each series (real values)

    def entries(extra: int):
        return [{"start": start + a, "target": rates[c].to_numpy()[a:b - extra], "item_id": c,
                 "feat_dynamic_real": rates[other].to_numpy()[a:b][None],
                 "past_feat_dynamic_real": rates[c].to_numpy()[a:b - extra][None] ** 2}
                for c, (a, b) in SPANS.items()]

    predictor = DiffusionEstimator(prediction_length=H, context_length=CTX, max_steps=2, model_options=TINY,
                                   n_samples=4, sampling_steps=2, verbose=False).train(entries(H))
    spec = predictor.forecaster.covariate_spec_
    assert predictor.forecaster.mode_ == "global" and spec.future == ["feat_dynamic_real:0"]
    assert spec.past == ["past_feat_dynamic_real:0"]
    forecasts, truths = make_evaluation_predictions(entries(0), predictor, num_samples=4)
    forecasts = list(forecasts)
    assert len(forecasts) == len(SPANS) and all(np.isfinite(f.samples).all() for f in forecasts)
    for f, e in zip(forecasts, entries(H)):
        assert f.start_date == e["start"] + len(e["target"])
    short = entries(H)  # the features stop at the target's end: nothing for the horizon
    for e in short:
        e["feat_dynamic_real"] = e["feat_dynamic_real"][:, :len(e["target"])]
    with pytest.raises(DataError, match="feat_dynamic_real"):
        list(predictor.predict(short))
