"""Dynamic covariates of a global Forecaster (mode="global"): real ETTh1 cut into three ragged
series (different starts and ends) as a long frame; the oil temperature OT is the target, five
load variables are past-only covariates and LULL is a known-future one (read per item on the
item's own time axis, as in :mod:`tsdiff.api.panel_covariates`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tsdiff
from tsdiff.data.covariates import calendar_features, calendar_names
from tsdiff.errors import ConfigError, DataError

H, CTX = 4, 8
PAST = ["HUFL", "HULL", "MUFL", "MULL", "LUFL"]
FUTURE = ["LULL"]
#: (first, last + 1) hourly rows of each item: different starts, lengths and ends
SPANS = {"a": (0, 150), "b": (30, 200), "c": (70, 170)}
SITE = {"a": "north", "b": "south", "c": "north"}
WHERE = {"item_col": "item", "time_col": "timestamp"}
TINY = {"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8}


def tiny(**kw) -> tsdiff.Forecaster:
    params = dict(prediction_length=H, context_length=CTX, model_options=TINY, max_steps=2, n_samples=2,
                  sampling_steps=2, verbose=False, device="cpu", covariates=PAST, future_covariates=FUTURE,
                  static_covariates=["site"], mode="global")
    params.update(kw)
    return tsdiff.Forecaster(**params)


@pytest.fixture(scope="module")
def ett(data_dir) -> pd.DataFrame:
    """The first 220 hours of ETTh1, one column per variable."""
    from tsdiff.data.datasets.ett import load_etth1

    s = load_etth1(data_dir)
    return pd.DataFrame(s.values[:220, 0, :], index=s.time_index[:220], columns=s.channel_names)


def item_rows(ett, name: str, a: int, b: int, columns=None) -> pd.DataFrame:
    part = ett.iloc[a:b][columns or list(ett.columns)]
    return part.assign(item=name, timestamp=part.index, site=SITE[name]).reset_index(drop=True)


@pytest.fixture(scope="module")
def long(ett) -> pd.DataFrame:
    return pd.concat([item_rows(ett, c, a, b) for c, (a, b) in SPANS.items()], ignore_index=True)


@pytest.fixture(scope="module")
def future(ett) -> pd.DataFrame:
    """LULL of the H + 3 hours after each item's end (more rows than needed: the rest is ignored)."""
    return pd.concat([item_rows(ett, c, b, b + H + 3, FUTURE).drop(columns="site") for c, (_, b) in SPANS.items()],
                     ignore_index=True)


@pytest.fixture(scope="module")
def fitted(long):
    before = long.copy()
    fc = tiny().fit(long, **WHERE)
    pd.testing.assert_frame_equal(long, before)
    return fc


def scaled(spec, values: np.ndarray, column: str) -> np.ndarray:
    j = spec.columns.index(column)  # mean / std are in the order future + past
    return (values - spec.mean[j]) / spec.std[j]


def test_fit_and_predict_give_one_forecast_per_series_after_its_own_end(fitted, long, future, ett):
    spec = fitted.covariate_spec_
    assert fitted.mode_ == "global" and spec.past == PAST and spec.future == FUTURE
    # the series span days, not three weeks: of the hourly features only the hour of day is covered
    assert spec.calendar == calendar_names("h")[:1] and fitted.signature_["columns"] == ["OT"]
    assert spec.centre_past  # the default, centre_covariates=True
    # [future | calendar | past | past_known | static (north, south, unknown)]
    assert spec.width == 1 + len(spec.calendar) + 5 + 1 + 3 == fitted.module_.hparams["model"]["num_covariates"]
    # standardised over every training series' own steps
    steps = pd.concat([ett.iloc[a:b] for a, b in SPANS.values()])
    np.testing.assert_allclose(spec.mean, steps[FUTURE + PAST].mean().to_numpy())
    np.testing.assert_allclose(spec.std, steps[FUTURE + PAST].std(ddof=0).to_numpy())
    out = fitted.predict(long, future_covariates=future, **WHERE)
    assert out.items == list(SPANS)
    for c, (a, b) in SPANS.items():
        fc = out[c]
        assert fc.index[0] == ett.index[b - 1] + pd.Timedelta(hours=1) and len(fc.index) == H
        assert fc.samples.shape == (2, H, 1) and np.isfinite(fc.samples).all()
        np.testing.assert_array_equal(fc.history.values[:, 0, 0], ett["OT"].to_numpy()[b - CTX:b])
    again = fitted.predict(future_covariates=future, **WHERE)  # the training series keep their covariates
    for c in SPANS:
        np.testing.assert_array_equal(again[c].samples, out[c].samples)


def expected_block(spec, ett, a: int, b: int, site: str) -> np.ndarray:
    """What the network should see for a series on rows [a, b): its last CTX steps and H after."""
    rows = ett.iloc[b - CTX: b + H]
    lull = scaled(spec, rows["LULL"].to_numpy(), "LULL")[:, None]
    past = np.stack([scaled(spec, rows[c].to_numpy(), c) for c in PAST], axis=1)
    past -= past[:CTX].mean(axis=0)  # centred on the context's mean
    past[CTX:] = 0.0  # unknown over the horizon
    known = (np.arange(CTX + H) < CTX).astype(float)[:, None]
    static = np.tile([1.0, 0.0, 0.0] if site == "north" else [0.0, 1.0, 0.0], (CTX + H, 1))
    return np.concatenate([lull, calendar_features(rows.index, spec.calendar), past, known, static], axis=1)


def test_the_network_sees_each_series_covariate_block(fitted, long, future, ett, monkeypatch):
    spec = fitted.covariate_spec_
    net = fitted.module_.net
    seen = []
    forward = net.forward

    def spy(x, t, cond):
        seen.append(cond.covariates.detach().cpu().numpy().copy())
        return forward(x, t, cond)

    monkeypatch.setattr(net, "forward", spy)
    fitted.predict(long, future_covariates=future, **WHERE)
    windows = np.concatenate(seen, axis=0)  # [B x samples x passes, CTX + H, K]
    assert windows.shape[1:] == (CTX + H, spec.width)
    for c, (a, b) in SPANS.items():
        want = expected_block(spec, ett, a, b, SITE[c])
        assert any(np.allclose(w, want, atol=1e-5) for w in windows), c


def test_training_windows_zero_past_columns_over_the_horizon(fitted, long, ett):
    from tsdiff.api import forecast_panels, panel_covariates

    spec = fitted.covariate_spec_
    panel = forecast_panels.read_panel(long, ["site"], past=PAST, future=FUTURE, **WHERE)
    assert panel.features == ["OT"] and panel.dynamic.past == PAST
    gap = CTX + H
    rows = panel_covariates.training_rows(spec, panel, gap)
    assert rows.shape == (sum(b - a for a, b in SPANS.values()) + 2 * gap, spec.width - 1)
    offsets = panel.panel.offsets(gap)
    for (c, (a, b)), o in zip(SPANS.items(), offsets):
        start = 20  # a window from the series' 20th step: rows [a + 20, a + 20 + CTX + H) of ETTh1
        block = spec.window(rows[o + start: o + start + CTX + H], CTX)
        want = expected_block(spec, ett, a, a + start + CTX, SITE[c])
        np.testing.assert_allclose(block, want, atol=1e-5)


def test_a_short_series_is_padded_with_unknown_steps(fitted, ett):
    from tsdiff.api import forecast_panels, panel_covariates

    short = item_rows(ett, "c", 160, 165)  # 5 hours, fewer than the context
    future = item_rows(ett, "c", 165, 165 + H, FUTURE)
    fc = fitted.predict(short, future_covariates=future, **WHERE)
    assert np.isfinite(fc["c"].samples).all()
    panel = forecast_panels.read_panel(short, ["site"], past=PAST, future=FUTURE, **WHERE)
    spec = fitted.covariate_spec_
    block = panel_covariates.forecast_covariates(spec, panel, CTX, H, "h", future, **WHERE)[0]
    pad = CTX - 5
    k = len(spec.calendar)
    np.testing.assert_array_equal(block[:pad, 0], 0.0)  # LULL unknown before the series' start
    np.testing.assert_array_equal(block[:pad, 1 + k: 6 + k], 0.0)
    np.testing.assert_allclose(block[pad:, 0], scaled(spec, ett["LULL"].to_numpy()[160:165 + H], "LULL"),
                               atol=1e-5)


def test_errors_say_what_is_wrong_and_how_to_fix_it(fitted, long, future, ett):
    with pytest.raises(DataError, match=r"\['HUFL'\] are not in the long DataFrame passed to predict"):
        fitted.predict(long.drop(columns="HUFL"), future_covariates=future, **WHERE)
    with pytest.raises(DataError, match=r"trained with known-future covariates \['LULL'\]: pass .*future_covariates"):
        fitted.predict(long, **WHERE)
    holes = future.copy()
    b_end = ett.index[SPANS["b"][1] - 1]
    holes.loc[(holes.item == "b") & (holes.timestamp == b_end + pd.Timedelta(hours=2)), "LULL"] = np.nan
    when = b_end + pd.Timedelta(hours=2)
    with pytest.raises(DataError, match=f"'LULL' is missing \\(NaN\\) at {when} in future_covariates for item 'b'"):
        fitted.predict(long, future_covariates=holes, **WHERE)
    c_end = ett.index[SPANS["c"][1] - 1]
    gap = future[~((future.item == "c") & (future.timestamp == c_end + pd.Timedelta(hours=3)))]
    with pytest.raises(DataError, match=f"future_covariates for item 'c' does not cover the forecast horizon: 1 of "
                                        f"its {H} steps are missing, the first {c_end + pd.Timedelta(hours=3)}"):
        fitted.predict(long, future_covariates=gap, **WHERE)
    with pytest.raises(DataError, match="lacks column"):
        fitted.predict(long, future_covariates=future.drop(columns="LULL"), **WHERE)
    with pytest.raises(DataError, match="future_covariates is a long DataFrame with the columns 'item'"):
        fitted.predict(long, future_covariates=future.drop(columns="item"), **WHERE)
    with pytest.raises(DataError, match="trained without known-future covariates"):
        tiny(future_covariates=None, max_steps=1).fit(long, **WHERE).predict(future_covariates=future, **WHERE)
    with pytest.raises(DataError, match=r"\['nope'\] are not in the long DataFrame passed to fit"):
        tiny(covariates=["nope"]).fit(long, **WHERE)


def test_other_inputs_with_dynamic_covariates_are_refused(ett):
    wide = ett.iloc[:120]
    with pytest.raises(DataError, match="dynamic covariates .* long DataFrame .* Pass the series as a long frame"):
        tiny(static_covariates=None).fit(wide)
    with pytest.raises(DataError, match="Pass the series as a long frame"):
        tiny(static_covariates=None).fit([ett.iloc[:60], ett.iloc[60:140]])
    with pytest.raises(DataError, match="Pass the series as a long frame"):
        tiny(static_covariates=None).fit(np.stack([ett.to_numpy()[:60], ett.to_numpy()[60:120]]))


def test_known_future_nan_in_training_names_the_item(long):
    holes = long.copy()
    holes.loc[holes.index[holes.item == "b"][5], "LULL"] = np.nan
    with pytest.raises(DataError, match="'LULL' is missing \\(NaN\\) .* in the training data of item 'b'"):
        tiny().fit(holes, **WHERE)


def gluonts_entries(ett, horizon: int = 0):
    from gluonts.dataset.common import ListDataset

    start = pd.Period(ett.index[0], freq="h")
    return ListDataset([{"start": start + a, "target": ett["OT"].to_numpy()[a:b], "item_id": c,
                         "feat_dynamic_real": ett[FUTURE].to_numpy().T[:, a:b + horizon],
                         "past_feat_dynamic_real": ett[["HUFL", "MUFL"]].to_numpy().T[:, a:b]}
                        for c, (a, b) in SPANS.items()], freq="h")


def test_gluonts_dynamic_fields_in_global_mode(ett):
    fc = tiny(covariates=None, future_covariates=None, static_covariates=None).fit(gluonts_entries(ett))
    spec = fc.covariate_spec_
    assert fc.mode_ == "global"
    assert spec.future == ["feat_dynamic_real:0"] and spec.past == ["past_feat_dynamic_real:0",
                                                                     "past_feat_dynamic_real:1"]
    out = fc.predict(gluonts_entries(ett, horizon=H), random_state=3)  # feat_dynamic_real reaches H steps on
    assert out.items == list(SPANS)
    for c, (a, b) in SPANS.items():
        assert out[c].index[0] == ett.index[b] and np.isfinite(out[c].samples).all()
    from tsdiff.api import forecast_panels, panel_covariates

    panel = forecast_panels.read_panel(gluonts_entries(ett, horizon=H), [], freq="h")
    block = panel_covariates.forecast_covariates(spec, panel, CTX, H, "h")
    a, b = SPANS["b"]
    want = (ett["LULL"].to_numpy()[b - CTX: b + H] - spec.mean[0]) / spec.std[0]
    np.testing.assert_allclose(block[1, :, 0], want, atol=1e-5)
    with pytest.raises(DataError, match="the feat_dynamic_real of item 'a' does not cover the forecast horizon"):
        fc.predict(gluonts_entries(ett))
    with pytest.raises(ConfigError, match="declares its covariates itself"):
        tiny(static_covariates=None).fit(gluonts_entries(ett))


def test_global_backtest_with_future_covariates(fitted, long, ett, monkeypatch):
    calls = []
    predict = fitted.predict

    def spy(data=None, **kw):
        calls.append(kw.get("future_covariates"))
        return predict(data, **kw)

    monkeypatch.setattr(fitted, "predict", spy)
    res = fitted.backtest(long, windows=2, stride=H, start=ett.index[120], random_state=0, **WHERE)
    assert set(res.metrics.series) == set(SPANS) and len(res.forecasts) == 2  # every series runs on
    assert np.isfinite(res.metrics.crps).all() and (res.metrics.observed == H).all()
    assert all(list(f.columns) == ["item", "timestamp", "LULL"] for f in calls)
    # at the data's end only 'b' has known-future values over the horizon: the others are left out
    late = fitted.backtest(long, windows=1, random_state=0, **WHERE)
    assert set(late.metrics.series) == {"b"}
    with pytest.raises(DataError, match="no series has known-future covariates over the 4 steps after the cut-off"):
        fitted.backtest(long, windows=1, horizon=1, random_state=0, **WHERE)


def test_save_load_predicts_identically(fitted, long, future, tmp_path):
    back = tsdiff.Forecaster.load(fitted.save(tmp_path / "dynamic.pt"))
    assert back.covariate_spec_ == fitted.covariate_spec_
    a = fitted.predict(long, future_covariates=future, random_state=2, **WHERE)
    b = back.predict(long, future_covariates=future, random_state=2, **WHERE)
    for c in SPANS:
        np.testing.assert_array_equal(a[c].samples, b[c].samples)
