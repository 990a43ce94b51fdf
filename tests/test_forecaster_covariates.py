"""Covariates of the Forecaster (tsdiff.data.covariates, tsdiff.api.covariate_inputs): fit / predict
on real ETTh1 with past-only, known-future and calendar covariates, model files, backtests, the
errors that name the fix, and the plain model's unchanged path."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

import tsdiff
from tsdiff.data.covariates import CovariateSpec, calendar_features, calendar_names, covered_calendar
from tsdiff.errors import ConfigError, DataError
from tsdiff.models import Condition, build_model

TINY = dict(model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8}, max_steps=2, n_samples=2,
            sampling_steps=2, prediction_length=8, verbose=False)
PAST = ["HUFL", "HULL", "MUFL", "MULL", "LUFL"]


@pytest.fixture(scope="module")
def etth1(data_dir) -> pd.DataFrame:
    """The first 400 hours of ETTh1 (seven columns, OT last)."""
    from tsdiff.data.datasets.ett import load_etth1

    series = load_etth1(data_dir)
    values = series.values.reshape(series.shape[0], -1)[:400]
    names = series.channel_names if series.shape[1] == 1 else series.node_names
    return pd.DataFrame(values, index=series.time_index[:400], columns=[str(n) for n in names])


@pytest.fixture(scope="module")
def fitted(etth1):
    fc = tsdiff.Forecaster(covariates=PAST, future_covariates=["LULL"], **TINY)
    return fc.fit(etth1.iloc[:380])


def covariate_map_at(fc: tsdiff.Forecaster, scale: float = 0.05) -> tsdiff.Forecaster:
    """A copy of fitted ``fc`` whose network's covariate map holds fixed weights of size ``scale``
    (standard normal draws of a seeded generator, so every covariate channel has its own).

    Two training steps from the zero start (``Denoiser.enable_covariates``) leave the map near
    1e-5, so a covariate's change moves the samples by about float32 rounding, which shows on one
    CPU and not on another. With a fixed map, "a covariate reaches the network" checks the wiring
    from the input to the samples, whatever the CPU."""
    out = copy.deepcopy(fc)
    weight = out.module_.net.covariate_projection.weight
    with torch.no_grad():
        weight.copy_(scale * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    return out


def _future(etth1, scale=1.0):
    return etth1.iloc[380:388][["LULL"]] * scale


# --- exact maths ---------------------------------------------------------------------
def test_spec_scales_on_training_data_and_zeroes_past_over_horizon():
    index = pd.date_range("2021-01-01", periods=6, freq="h")
    past = pd.DataFrame({"p": [1.0, 3.0, np.nan, 3.0, 1.0, 3.0]}, index=index)
    future = pd.DataFrame({"f": [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]}, index=index)
    spec = CovariateSpec.fit(past, future, ["hour_of_day"])
    assert spec.mean == pytest.approx([5.0, 2.2]) and spec.width == 4
    rows = spec.rows(index, future.to_numpy(), past.to_numpy())
    assert rows[:, 0] == pytest.approx((future["f"].to_numpy() - 5.0) / np.std(future["f"].to_numpy()))
    assert rows[:, 1] == pytest.approx(np.arange(6) / 23.0 - 0.5)  # GluonTS hour_of_day
    assert np.isnan(rows[2, 2])  # unknown until a window fills it
    block = spec.window(rows, context=4)
    assert block.shape == (6, 4)
    assert block[2, 2] == 0.0  # a missing past value reads as the training mean
    assert (block[4:, 2] == 0).all() and (block[[0, 1, 3], 2] == rows[[0, 1, 3], 2]).all()
    assert block[:, 3].tolist() == [1, 1, 1, 1, 0, 0]
    assert CovariateSpec.from_state_dict(spec.state_dict()) == spec


def test_centred_past_columns_read_their_move_within_the_context():
    index = pd.date_range("2021-01-01", periods=6, freq="h")
    past = pd.DataFrame({"p": [1.0, 3.0, np.nan, 8.0, 1.0, 3.0]}, index=index)
    future = pd.DataFrame({"f": [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]}, index=index)
    spec = CovariateSpec.fit(past, future, [], centre_past=True)
    rows = spec.rows(index, future.to_numpy(), past.to_numpy())
    block = spec.window(rows, context=4)
    scaled = (np.array([1.0, 3.0, 8.0]) - spec.mean[1]) / spec.std[1]
    # the mean of the three known context values is taken off; the missing one reads as that mean
    assert block[[0, 1, 3], 1] == pytest.approx(scaled - scaled.mean(), abs=1e-6)
    assert block[2, 1] == 0.0 and (block[4:, 1] == 0).all() and block[:, 2].tolist() == [1, 1, 1, 1, 0, 0]
    assert (block[:, 0] == rows[:, 0]).all()  # known-future columns are not centred
    shifted = spec.window(rows + np.array([0.0, 5.0], np.float32), context=4)
    np.testing.assert_allclose(shifted[:, 1], block[:, 1], atol=1e-6)  # a level shift leaves the block alone
    assert CovariateSpec.from_state_dict(spec.state_dict()).centre_past
    assert not CovariateSpec.from_state_dict({k: v for k, v in spec.state_dict().items()
                                              if k != "centre_past"}).centre_past  # older model files
    unknown = spec.window(np.array([[0.0, np.nan]] * 6, np.float32), context=4)
    assert (unknown[:, 1] == 0).all()  # no known value in the context: nothing to centre on


def test_calendar_features_need_three_cycles_of_training_data():
    hourly = calendar_names("h")
    days = pd.date_range("2021-01-01", periods=20 * 24, freq="h")
    assert covered_calendar(hourly, days, "h") == ["hour_of_day"]
    assert covered_calendar(hourly, days[:3 * 24], "h") == ["hour_of_day"]  # three whole days
    assert covered_calendar(hourly, days[:3 * 24 - 1], "h") == []
    weeks = pd.date_range("2021-01-01", periods=21, freq="D")
    assert covered_calendar(calendar_names("D"), weeks, "D") == ["day_of_week"]
    years = pd.date_range("2018-01-01", "2020-12-31", freq="D")  # three years of days
    assert covered_calendar(calendar_names("D"), years, "D") == calendar_names("D")
    months = pd.date_range("2018-01-01", periods=36, freq="MS")
    assert covered_calendar(calendar_names("MS"), months, "MS") == []  # 35 months and a step of no fixed length
    assert covered_calendar(calendar_names("MS"), pd.date_range("2018-01-01", periods=38, freq="MS"), "MS") \
        == ["month_of_year"]
    assert covered_calendar(["a_feature_of_its_own"], days[:2], "h") == ["a_feature_of_its_own"]


def test_an_explicit_calendar_list_is_used_as_given(etth1):
    fc = tsdiff.Forecaster(calendar=["hour_of_day", "day_of_year"], **TINY).fit(etth1[["OT"]].iloc[:200])
    assert fc.covariate_spec_.calendar == ["hour_of_day", "day_of_year"]
    for bad, match in ((["hour"], "unknown feature"), (["hour_of_day", "hour_of_day"], "names a feature twice"),
                       ("hour_of_day", "a list of calendar feature names")):
        with pytest.raises(ConfigError, match=match):
            tsdiff.Forecaster(calendar=bad, **TINY).fit(etth1[["OT"]].iloc[:200])
    with pytest.raises(ConfigError, match="centre_covariates must be True or False"):
        tsdiff.Forecaster(centre_covariates="yes", **TINY).fit(etth1[["OT"]].iloc[:200])


def test_calendar_features_follow_the_frequency():
    assert calendar_names("h") == ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"]
    assert calendar_names(None) == []
    idx = pd.date_range("2021-01-04", periods=3, freq="D")  # a Monday
    assert calendar_features(idx, ["day_of_week"])[:, 0] == pytest.approx([-0.5, -0.5 + 1 / 6, -0.5 + 2 / 6])


def test_condition_repeat_and_slice_carry_covariates():
    cov = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    cond = Condition(values=torch.zeros(2, 3, 1, 1), cond_mask=torch.ones(2, 3, 1, 1, dtype=torch.bool),
                     covariates=cov)
    rep = cond.repeat(3)
    assert rep.covariates.shape == (6, 3, 4) and torch.equal(rep.covariates[2:4], cov)
    assert torch.equal(rep.slice(1, 2).covariates, cov[1:2])


def _spatial(kind):
    from tsdiff.data.spatial import GraphSpatial, GridSpatial

    if kind == "graph":
        return GraphSpatial(torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), torch.ones(4), 4)
    if kind == "grid":
        return GridSpatial(np.array([50.0, 49.75]), np.array([1.0, 1.25]))
    return None


WINDOW_FAMILIES = [
    ("csdi", {"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8}, None),
    ("sssd", {"layers": 1, "channels": 8}, None),
    ("graph_unet", {"hidden": 8, "channel_multipliers": [1], "blocks": 1}, "graph"),
    ("grid_unet", {"hidden": 8, "channel_multipliers": [1], "blocks": 1}, "grid")]


@pytest.mark.parametrize("name,options,spatial", WINDOW_FAMILIES)
def test_every_window_family_reads_covariates_through_one_projection(name, options, spatial):
    torch.manual_seed(0)
    net = build_model({"name": name, **options, "num_covariates": 3}, 4, 1)
    with torch.no_grad():  # the output layers start at zero: give every weight a value
        for p in net.parameters():
            p.normal_(0.0, 0.3)
    x = torch.randn(2, 8, 4, 1)
    cond = Condition(values=torch.randn(2, 8, 4, 1), cond_mask=torch.zeros(2, 8, 4, 1, dtype=torch.bool),
                     covariates=torch.zeros(2, 8, 3), spatial=_spatial(spatial))
    net.eval()
    a = net(x, torch.tensor([5, 5]), cond)
    cond.covariates = torch.ones(2, 8, 3)
    assert not torch.allclose(a, net(x, torch.tensor([5, 5]), cond))
    with pytest.raises(DataError, match="trained with 3 covariate channels"):
        net(x, torch.tensor([5, 5]), Condition(values=cond.values, cond_mask=cond.cond_mask, spatial=cond.spatial))


@pytest.mark.parametrize("name,options,spatial", WINDOW_FAMILIES)
def test_a_fresh_network_with_covariates_computes_what_it_computes_without(name, options, spatial):
    nets, draws = [], []
    for k in (0, 3):
        torch.manual_seed(0)
        nets.append(build_model({"name": name, **options, "num_covariates": k}, 4, 1))
        draws.append(torch.rand(5))  # the random stream after building is the same too
    plain, with_cov = nets
    assert torch.equal(draws[0], draws[1])
    assert not with_cov.covariate_projection.weight.any() and not with_cov.covariate_projection.bias.any()
    shared = dict(with_cov.named_parameters())
    for key, p in plain.named_parameters():
        assert torch.equal(p, shared[key]), key
    torch.manual_seed(1)
    with torch.no_grad():  # the output layers start at zero: give every shared weight the same value
        for p in plain.parameters():
            p.normal_(0.0, 0.3)
        for key, p in plain.named_parameters():
            shared[key].copy_(p)
    x = torch.randn(2, 8, 4, 1)
    cond = Condition(values=torch.randn(2, 8, 4, 1), cond_mask=torch.zeros(2, 8, 4, 1, dtype=torch.bool),
                     spatial=_spatial(spatial))
    plain.eval(), with_cov.eval()
    out = plain(x, torch.tensor([5, 5]), cond)
    cond.covariates = torch.randn(2, 8, 3)
    assert torch.equal(out, with_cov(x, torch.tensor([5, 5]), cond))


def test_families_without_a_covariate_input_refuse_them():
    with pytest.raises(ConfigError, match="cannot use covariates.*calendar=False"):
        build_model({"name": "timegrad", "num_covariates": 4}, 1, 1)
    plain = build_model({"name": "csdi", "layers": 1, "channels": 8, "heads": 1, "ff_dim": 8}, 1, 1)
    cond = Condition(values=torch.zeros(1, 4, 1, 1), cond_mask=torch.zeros(1, 4, 1, 1, dtype=torch.bool),
                     covariates=torch.zeros(1, 4, 2))
    with pytest.raises(DataError, match="built without covariates"):
        plain(torch.zeros(1, 4, 1, 1), torch.tensor([1]), cond)


# --- real data -------------------------------------------------------------------------
def test_fit_predict_with_covariates(fitted, etth1):
    spec = fitted.covariate_spec_
    # 380 hours: three days of week and more are not covered, only the hour of day is
    assert spec.past == PAST and spec.future == ["LULL"] and spec.calendar == ["hour_of_day"]
    assert fitted.signature_["columns"] == ["OT"]  # covariates are inputs, not targets
    assert fitted.module_.net.config()["num_covariates"] == 1 + 1 + 5 + 1
    fc = fitted.predict(etth1.iloc[:380], future_covariates=_future(etth1))
    assert fc.samples.shape == (2, 8, 1) and np.isfinite(fc.samples).all()
    assert fc.index[0] == etth1.index[380]


def test_known_future_covariates_reach_the_network(fitted, etth1):
    fitted = covariate_map_at(fitted)
    a = fitted.predict(etth1.iloc[:380], future_covariates=_future(etth1)).samples
    again = fitted.predict(etth1.iloc[:380], future_covariates=_future(etth1)).samples
    b = fitted.predict(etth1.iloc[:380], future_covariates=_future(etth1, 5.0)).samples
    # prediction is deterministic, so any change comes from the covariates
    assert np.array_equal(a, again) and not np.array_equal(a, b)


def test_past_covariates_reach_the_network(fitted, etth1):
    fitted = covariate_map_at(fitted)
    a = fitted.predict(etth1.iloc[:380], future_covariates=_future(etth1)).samples
    changed = etth1.iloc[:380].copy()
    changed[PAST] *= 3.0
    again = fitted.predict(etth1.iloc[:380], future_covariates=_future(etth1)).samples
    b = fitted.predict(changed, future_covariates=_future(etth1)).samples
    assert np.array_equal(a, again) and not np.array_equal(a, b)


def test_save_load_round_trip(fitted, etth1, tmp_path):
    fitted.save(tmp_path / "m.pt")
    loaded = tsdiff.Forecaster.load(tmp_path / "m.pt")
    assert loaded.covariate_spec_ == fitted.covariate_spec_
    assert loaded.get_params()["covariates"] == PAST and loaded.calendar is True
    a = fitted.predict(etth1.iloc[:380], future_covariates=_future(etth1)).samples
    assert np.array_equal(a, loaded.predict(etth1.iloc[:380], future_covariates=_future(etth1)).samples)


def test_backtest_with_covariates_scores_only_the_target(fitted, etth1):
    result = fitted.backtest(etth1, start=380, windows=2, stride=8, n_samples=2)
    assert result.metrics["series"].tolist() == ["OT", "OT"] and np.isfinite(result.metrics["crps"]).all()


def test_calendar_only_model_needs_no_future_frame(etth1):
    fc = tsdiff.Forecaster(**TINY).fit(etth1[["OT"]].iloc[:380])
    assert fc.covariate_spec_.calendar and not fc.covariate_spec_.columns
    assert fc.predict(etth1[["OT"]].iloc[:380]).samples.shape == (2, 8, 1)


def test_without_covariates_the_model_is_the_plain_one(etth1):
    """calendar=False and no covariates: no covariate input, and the same samples as a network
    built without the option (bit for bit against main's HEAD in the commit's one-off check)."""
    fc = tsdiff.Forecaster(calendar=False, random_state=3, **TINY).fit(etth1[["OT"]].iloc[:380])
    assert fc.covariate_spec_ is None and "covariates" not in fc.signature_
    assert "num_covariates" not in fc.module_.net.config()
    assert not any("covariate" in k for k in fc.module_.state_dict())
    a = fc.predict().samples
    again = tsdiff.Forecaster(calendar=False, random_state=3, **TINY).fit(etth1[["OT"]].iloc[:380]).predict().samples
    assert np.array_equal(a, again)


# --- bad input ---------------------------------------------------------------------------
def test_missing_covariate_column_at_fit(etth1):
    with pytest.raises(DataError, match=r"covariate column\(s\) \['rain'\] are not in the data passed to fit"):
        tsdiff.Forecaster(covariates=["rain"], **TINY).fit(etth1)


def test_missing_covariate_column_at_predict(fitted, etth1):
    with pytest.raises(DataError, match=r"\['HULL'\] are not in the data passed to predict"):
        fitted.predict(etth1.iloc[:380].drop(columns=["HULL"]), future_covariates=_future(etth1))


def test_nan_in_known_future_covariates(fitted, etth1):
    fut = _future(etth1)
    fut.iloc[3, 0] = np.nan
    with pytest.raises(DataError, match=f"'LULL' is missing \\(NaN\\) at {fut.index[3]}.*fill them"):
        fitted.predict(etth1.iloc[:380], future_covariates=fut)
    train = etth1.copy()
    train.iloc[10, train.columns.get_loc("LULL")] = np.nan
    with pytest.raises(DataError, match="'LULL' is missing"):
        tsdiff.Forecaster(future_covariates=["LULL"], **TINY).fit(train)


def test_future_covariates_must_cover_the_horizon(fitted, etth1):
    with pytest.raises(DataError, match=f"does not cover the forecast horizon.*first {etth1.index[386]}"):
        fitted.predict(etth1.iloc[:380], future_covariates=_future(etth1).iloc[:6])
    with pytest.raises(DataError, match="pass predict\\(..., future_covariates=frame\\)"):
        fitted.predict(etth1.iloc[:380])


def test_a_covariate_cannot_be_a_target(etth1, fitted):
    with pytest.raises(DataError, match=r"\['HUFL'\] are both forecast targets and covariates"):
        tsdiff.Forecaster(covariates=["HUFL"], **TINY).fit(etth1, targets=["OT", "HUFL"])
    with pytest.raises(ConfigError, match="in both covariates= .* and future_covariates="):
        tsdiff.Forecaster(covariates=["HUFL"], future_covariates=["HUFL"], **TINY).fit(etth1)
    with pytest.raises(DataError, match=r"future_covariates has column\(s\) \['OT'\], which are forecast targets"):
        fitted.predict(etth1.iloc[:380], future_covariates=etth1.iloc[380:388][["LULL", "OT"]])


def test_future_covariates_for_a_model_without_them(etth1):
    for calendar in (False, True):
        fc = tsdiff.Forecaster(calendar=calendar, **TINY).fit(etth1[["OT"]].iloc[:380])
        with pytest.raises(DataError, match="trained without known-future covariates"):
            fc.predict(future_covariates=_future(etth1))


def test_covariates_need_a_wide_frame(etth1):
    with pytest.raises(DataError, match="covariates are read from a wide DataFrame"):
        tsdiff.Forecaster(covariates=["HUFL"], **TINY).fit(etth1.to_numpy())


def test_timegrad_forecaster_with_calendar_names_the_fix(etth1):
    with pytest.raises(ConfigError, match="timegrad' cannot use covariates"):
        tsdiff.Forecaster(model="timegrad", **{**TINY, "model_options": None}).fit(etth1[["OT"]].iloc[:380])


# --- long frames and GluonTS datasets --------------------------------------------------------
def _long(etth1, rows):
    """Two items on the same hours: ETTh1's first and second 200 rows, with OT, HUFL and LULL."""
    parts = [pd.DataFrame({"item_id": item, "timestamp": etth1.index[:rows], **{c: etth1[c].to_numpy()[off:off + rows]
                                                                                 for c in ("OT", "HUFL", "LULL")}})
             for item, off in (("a", 0), ("b", 200))]
    return pd.concat(parts, ignore_index=True)


def test_long_frame_covariates_per_item(etth1, tmp_path):
    hist = _long(etth1, 180)
    fc = tsdiff.Forecaster(covariates=["HUFL"], future_covariates=["LULL"], **TINY).fit(hist)
    spec = fc.covariate_spec_
    assert spec.past == ["a:HUFL", "b:HUFL"] and spec.future == ["a:LULL", "b:LULL"]
    assert fc.signature_["node_names"] == ["a", "b"] and fc.signature_["channel_names"] == ["OT"]
    fut = _long(etth1, 188)
    fut = fut[fut.timestamp >= etth1.index[180]][["item_id", "timestamp", "LULL"]]
    a = fc.predict(hist, future_covariates=fut).samples
    assert a.shape == (2, 8, 2)
    fc.save(tmp_path / "long.pt")
    assert np.array_equal(a, tsdiff.Forecaster.load(tmp_path / "long.pt").predict(hist, future_covariates=fut).samples)
    with pytest.raises(DataError, match=r"\['HUFL'\] are not in the long DataFrame passed to predict"):
        fc.predict(hist.drop(columns=["HUFL"]), future_covariates=fut)


def _entries(etth1, n_target, n_future, static=False):
    from gluonts.dataset.common import ListDataset

    entry = {"start": pd.Period(etth1.index[0], freq="h"), "item_id": "ot", "target": etth1["OT"].to_numpy()[:n_target],
             "feat_dynamic_real": etth1[["LULL"]].to_numpy().T[:, :n_future],
             "past_feat_dynamic_real": etth1[["HUFL", "HULL"]].to_numpy().T[:, :n_target]}
    if static:
        entry["feat_static_cat"] = [3]
    return ListDataset([entry], freq="h")


def test_gluonts_dynamic_fields_are_covariates(etth1):
    from tsdiff.gluonts import DiffusionEstimator

    fc = covariate_map_at(tsdiff.Forecaster(**TINY).fit(_entries(etth1, 380, 380)))
    spec = fc.covariate_spec_
    assert spec.future == ["ot:feat_dynamic_real:0"] and len(spec.past) == 2 and spec.calendar
    # feat_dynamic_real reaching 8 steps past the target gives the horizon's known-future values
    a = fc.predict(_entries(etth1, 380, 388)).samples
    assert a.shape == (2, 8, 1)
    changed = [dict(e) for e in _entries(etth1, 380, 388)]
    changed[0]["feat_dynamic_real"] = changed[0]["feat_dynamic_real"] * 4.0
    assert np.array_equal(a, fc.predict(_entries(etth1, 380, 388)).samples)  # deterministic, so:
    assert not np.array_equal(a, fc.predict(changed).samples)
    with pytest.raises(DataError, match="the entries' feat_dynamic_real does not cover the forecast horizon"):
        fc.predict(_entries(etth1, 380, 384))
    options = {k: v for k, v in TINY.items() if k != "prediction_length"}
    predictor = DiffusionEstimator(prediction_length=8, **options).train(_entries(etth1, 380, 380))
    (forecast,) = predictor.predict(_entries(etth1, 380, 388))
    assert forecast.samples.shape == (2, 8)


def test_gluonts_static_fields_are_named_as_unused(etth1):
    with pytest.warns(UserWarning, match="feat_static_cat.*not used"):
        tsdiff.Forecaster(**TINY).fit(_entries(etth1, 380, 380, static=True))


def test_a_frequency_without_calendar_features_warns_and_trains_without(etth1):
    monthly = pd.DataFrame({"OT": etth1["OT"].to_numpy()[:40]}, index=pd.date_range("2000-01-03", periods=40,
                                                                                      freq="BMS"))
    with pytest.warns(UserWarning, match="no calendar features for frequency 'BMS'"):
        fc = tsdiff.Forecaster(**TINY).fit(monthly)
    assert fc.covariate_spec_ is None
    with pytest.raises(ConfigError, match="calendar must be True, False or a list of calendar feature names"):
        tsdiff.Forecaster(calendar="yes", **TINY).fit(monthly)


def test_backtest_of_a_long_frame_with_covariates(etth1):
    data = _long(etth1, 200)
    fc = tsdiff.Forecaster(covariates=["HUFL"], future_covariates=["LULL"], **TINY)
    fc.fit(data[data.timestamp < etth1.index[184]])
    result = fc.backtest(data, windows=2, n_samples=2)
    assert result.metrics["series"].tolist() == ["a", "b", "a", "b"]
    assert result.cutoffs.tolist() == [184, 192] and np.isfinite(result.metrics["crps"]).all()
    direct = fc.predict(data[data.timestamp < etth1.index[192]],
                        future_covariates=data[data.timestamp >= etth1.index[192]][["item_id", "timestamp", "LULL"]])
    np.testing.assert_array_equal(result.forecasts[1].samples, direct.samples)


def test_backtest_refit_fits_clones_with_the_covariates(etth1):
    base = tsdiff.Forecaster(covariates=PAST, future_covariates=["LULL"], **TINY)
    from tsdiff.backtest import backtest

    result = backtest(base, etth1.iloc[:300], windows=2, stride=8, refit=True, n_samples=2)
    assert base.module_ is None and result.cutoffs.tolist() == [284, 292]
    by_hand = tsdiff.Forecaster(covariates=PAST, future_covariates=["LULL"], **TINY).fit(etth1.iloc[:284])
    np.testing.assert_array_equal(result.forecasts[0].samples,
                                  by_hand.predict(etth1.iloc[:284], future_covariates=etth1.iloc[284:292][["LULL"]]).samples)


def test_an_array_without_freq_gets_no_calendar_features(etth1):
    """A numpy array's steps are positions (the hourly timestamps stand in for them): calendar
    features read from them would be made up, so there are none; with freq= there are."""
    values = etth1[["OT"]].to_numpy()[:400]
    assert tsdiff.Forecaster(**TINY).fit(values).covariate_spec_ is None
    assert tsdiff.Forecaster(freq="h", **TINY).fit(values).covariate_spec_.calendar
