"""Static covariates and calendar features of a global Forecaster (mode="global"), on real exchange
rates cut into ragged series (as tests/test_forecaster_panels.py), each with a region and a size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tsdiff
from tsdiff.api.panel_covariates import StaticEncoding
from tsdiff.data.covariates import calendar_names
from tsdiff.errors import ConfigError, DataError
from tests.test_forecaster_covariates import covariate_map_at
from tests.test_forecaster_panels import CTX, SPANS, H, rates, tiny  # noqa: F401 (rates: the fixture)

REGION = {"cur0": "north", "cur1": "south", "cur2": "north", "cur3": "south"}
SIZE = {"cur0": 1.0, "cur1": 4.0, "cur2": 2.0, "cur3": 8.0}
WHERE = {"item_col": "unique_id", "time_col": "ds"}


def item(rates, name, column, a, b, region, size) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": name, "ds": rates.index[a:b], "y": rates[column].to_numpy()[a:b],
                         "region": region, "size": size})


@pytest.fixture(scope="module")
def long(rates) -> pd.DataFrame:
    return pd.concat([item(rates, c, c, a, b, REGION[c], SIZE[c]) for c, (a, b) in SPANS.items()],
                     ignore_index=True)


@pytest.fixture(scope="module")
def fitted(long):
    before = long.copy()
    fc = tiny(static_covariates=["region", "size"]).fit(long, **WHERE)
    pd.testing.assert_frame_equal(long, before)
    return fc


def test_static_and_calendar_columns_make_the_covariate_block(fitted, long):
    assert fitted.mode_ == "global"
    spec = fitted.covariate_spec_
    # day of week / month; the series span under three years, so day of year is left out
    assert spec.calendar == ["day_of_week", "day_of_month"] == calendar_names("B")[:2]
    enc = StaticEncoding.from_state_dict(spec.static)
    assert enc.real == ["size"] and enc.categorical == {"region": ["north", "south"]}
    assert enc.columns == ["size", "region=north", "region=south", "region=<unknown>"]
    assert enc.mean == [pytest.approx(3.75)] and enc.std == [pytest.approx(np.std([1, 4, 2, 8], ddof=1))]
    assert spec.width == 2 + 4 == fitted.module_.hparams["model"]["num_covariates"]
    out = fitted.predict(long, **WHERE)
    assert out.items == list(SPANS)
    for c, (a, b) in SPANS.items():
        assert out[c].samples.shape == (6, H, 1) and np.isfinite(out[c].samples).all()
    again = fitted.predict()  # the training series keep their statics
    for c in SPANS:
        np.testing.assert_array_equal(again[c].samples, out[c].samples)


def test_the_forecast_block_holds_each_series_calendar_and_statics(fitted, long):
    from tsdiff.api import forecast_panels, panel_covariates
    from tsdiff.data.covariates import calendar_features

    panel = forecast_panels.read_panel(long, ["region", "size"], **WHERE)
    block = panel_covariates.forecast_covariates(fitted.covariate_spec_, panel, CTX, H, "B")
    assert block.shape == (4, CTX + H, 6)
    for i, (c, index) in enumerate(zip(panel.items, panel.indexes)):
        times = index[-CTX:].append(pd.bdate_range(index[-1], periods=H + 1)[1:])
        np.testing.assert_allclose(block[i, :, :2], calendar_features(times, calendar_names("B")[:2]), rtol=1e-6)
        size = (SIZE[c] - 3.75) / np.std([1, 4, 2, 8], ddof=1)
        onehot = [1.0, 0.0, 0.0] if REGION[c] == "north" else [0.0, 1.0, 0.0]
        np.testing.assert_allclose(block[i, :, 2:], np.tile([size, *onehot], (CTX + H, 1)), rtol=1e-6)
    assert isinstance(panel, forecast_panels.SeriesPanel) and list(panel.features) == ["y"]


def test_statics_reach_the_network_and_unseen_categories_map_to_unknown(fitted, rates):
    fitted = covariate_map_at(fitted)
    hist = lambda region, size=4.0: item(rates, "new", "cur1", 60, 100, region, size)  # an item never trained on
    north = fitted.predict(hist("north"), random_state=5, **WHERE)["new"].samples
    south = fitted.predict(hist("south"), random_state=5, **WHERE)["new"].samples
    np.testing.assert_array_equal(north, fitted.predict(hist("north"), random_state=5, **WHERE)["new"].samples)
    assert not np.array_equal(north, south)  # same history and seed, another region: another forecast
    assert not np.array_equal(north, fitted.predict(hist("north", 8.0), random_state=5, **WHERE)["new"].samples)
    east = fitted.predict(hist("east"), random_state=5, **WHERE)["new"].samples
    assert np.isfinite(east).all() and not np.array_equal(east, north) and not np.array_equal(east, south)
    enc = StaticEncoding.from_state_dict(fitted.covariate_spec_.static)
    codes = enc.encode(pd.DataFrame({"region": ["east", "north", None], "size": [1.0, 2.0, 3.0]}))
    np.testing.assert_array_equal(codes[:, 1:], [[0, 0, 1], [1, 0, 0], [0, 0, 1]])


def test_static_errors_name_the_item_and_column(fitted, long, rates):
    varying = long.copy()
    varying.loc[varying.index[varying.unique_id == "cur1"][:3], "region"] = "north"
    with pytest.raises(DataError, match="'region' is not constant within item 'cur1'"):
        tiny(static_covariates=["region"]).fit(varying, **WHERE)
    with pytest.raises(DataError, match=r"\['kind'\] are not in the long DataFrame"):
        tiny(static_covariates=["kind"]).fit(long, **WHERE)
    with pytest.raises(DataError, match=r"\['size'\] are not in the long DataFrame"):
        fitted.predict(long.drop(columns="size"), **WHERE)
    holes = long.copy()
    holes.loc[holes.unique_id == "cur2", "size"] = np.nan
    with pytest.raises(DataError, match="'size' is missing \\(NaN\\) for item 'cur2'"):
        fitted.predict(holes, **WHERE)
    with pytest.raises(DataError, match="long DataFrame .* or a GluonTS dataset"):
        tiny(static_covariates=["region"]).fit([rates.iloc[:40, :2], rates.iloc[40:, :2]])
    with pytest.raises(ConfigError, match="mode='global'"):
        tiny(static_covariates=["region"], mode="joint").fit(long, **WHERE)
    with pytest.raises(ConfigError, match="both static and dynamic covariates"):
        tiny(covariates=["size"], static_covariates=["size"]).fit(long, **WHERE)
    with pytest.raises(ConfigError, match="static_covariates must be a list"):
        tiny(static_covariates="region").fit(long, **WHERE)


def test_save_load_keeps_the_encoding_and_the_draws(fitted, long, tmp_path):
    back = tsdiff.Forecaster.load(fitted.save(tmp_path / "static.pt"))
    assert back.static_covariates == ["region", "size"]
    assert back.covariate_spec_ == fitted.covariate_spec_
    a = fitted.predict(long, random_state=2, **WHERE)
    b = back.predict(long, random_state=2, **WHERE)
    for c in SPANS:
        np.testing.assert_array_equal(a[c].samples, b[c].samples)


def test_calendar_is_on_by_default_in_global_mode_and_switchable(long, rates):
    plain = long.drop(columns=["region", "size"])
    on = tiny(max_steps=1).fit(plain, **WHERE)
    assert on.mode_ == "global" and on.covariate_spec_.calendar == calendar_names("B")[:2]
    assert on.module_.hparams["model"]["num_covariates"] == 2
    off = tiny(max_steps=1, calendar=False).fit(plain, **WHERE)
    assert off.covariate_spec_ is None
    static_only = tiny(max_steps=1, calendar=False, static_covariates=["region"]).fit(long, **WHERE)
    assert static_only.covariate_spec_.calendar == [] and static_only.covariate_spec_.width == 3
    positions = tiny(max_steps=1).fit(np.stack([rates.to_numpy()[:40, :2], rates.to_numpy()[40:80, :2]]))
    assert positions.mode_ == "global" and positions.covariate_spec_ is None  # no time axis: no calendar


def test_auto_with_statics_on_aligned_items_is_global(rates):
    aligned = pd.concat([item(rates, c, c, 80, 120, REGION[c], SIZE[c]) for c in SPANS], ignore_index=True)
    fc = tiny(max_steps=1, static_covariates=["region"]).fit(aligned, **WHERE)
    assert fc.mode_ == "global" and isinstance(fc.predict(), tsdiff.PanelForecast)


def test_gluonts_feat_static_fields(rates):
    start = pd.Period(rates.index[0], freq="B")
    entries = [{"start": start + a, "target": rates[c].to_numpy()[a:b], "item_id": c,
                "feat_static_cat": [i % 2], "feat_static_real": [SIZE[c]]} for i, (c, (a, b)) in enumerate(SPANS.items())]
    fc = tiny(max_steps=1, static_covariates=["feat_static_cat", "feat_static_real"]).fit(entries)
    enc = StaticEncoding.from_state_dict(fc.covariate_spec_.static)
    assert enc.real == ["feat_static_real_0"] and enc.categorical == {"feat_static_cat_0": ["0", "1"]}
    out = fc.predict(entries)
    assert out.items == list(SPANS) and np.isfinite(out["cur2"].samples).all()
    with pytest.raises(DataError, match="has no 'feat_static_real' field"):
        fc.predict([{k: v for k, v in e.items() if k != "feat_static_real"} for e in entries])


def test_global_backtest_with_static_covariates(fitted, long):
    res = fitted.backtest(long, windows=2, stride=H, random_state=0, **WHERE)
    assert set(res.metrics.series) == set(SPANS) and len(res.forecasts) == 2
    assert np.isfinite(res.metrics.crps[res.metrics.observed > 0]).all()


def test_static_encoding_kinds_and_fit_errors():
    table = pd.DataFrame({"n": [1, 2, 3], "b": [True, False, True], "k": pd.Categorical([10, 20, 10]),
                          "s": ["x", "y", None]}, index=["i0", "i1", "i2"])
    enc = StaticEncoding.fit(list(table.columns), table)
    assert enc.real == ["n"] and enc.categorical == {"b": ["False", "True"], "k": ["10", "20"], "s": ["x", "y"]}
    codes = enc.encode(table)
    assert codes.shape == (3, 1 + 3 + 3 + 3) and codes.dtype == np.float32
    np.testing.assert_allclose(codes[:, 0], [-1, 0, 1])
    np.testing.assert_array_equal(codes[:, 7:], [[1, 0, 0], [0, 1, 0], [0, 0, 1]])  # a missing category: unknown
    with pytest.raises(DataError, match="'n' is missing \\(NaN\\) for item 'i1'"):
        StaticEncoding.fit(["n"], pd.DataFrame({"n": [1.0, np.nan]}, index=["i0", "i1"]))
    with pytest.raises(DataError, match="'n' was real-valued in training but holds non-numbers"):
        enc.encode(table.assign(n=["a", "b", "c"]))


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
def test_gluonts_estimator_passes_static_covariates(rates):
    from tsdiff.gluonts import DiffusionEstimator

    start = pd.Period(rates.index[0], freq="B")
    entries = [{"start": start + a, "target": rates[c].to_numpy()[a:b], "item_id": c, "feat_static_cat": [i % 2]}
               for i, (c, (a, b)) in enumerate(SPANS.items())]
    predictor = DiffusionEstimator(prediction_length=H, context_length=CTX, max_steps=1, n_samples=3, sampling_steps=2,
                                   verbose=False, static_covariates=["feat_static_cat"]).train(entries)
    assert predictor.forecaster.covariate_spec_.static["categorical"] == {"feat_static_cat_0": ["0", "1"]}
    assert [f.samples.shape for f in predictor.predict(entries)] == [(3, H)] * len(SPANS)
