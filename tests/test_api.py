"""tsdiff.Forecaster / Forecast on real data: DataFrames (wide, long), xarray grids, GluonTS
datasets, graphs; summaries and conversions; save / load; refusal of mismatched data."""

import numpy as np
import pandas as pd
import pytest

import tsdiff
from tsdiff.errors import ConfigError, DataError, TsdiffError, UnknownNameError

TINY = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
            feature_embedding_dim=4)


def tiny_forecaster(**kw):
    params = dict(prediction_length=5, context_length=10, max_steps=3, model_options=TINY, n_samples=8,
                  sampler="ddim", sampling_steps=3, verbose=False)
    params.update(kw)
    return tsdiff.Forecaster(**params)


@pytest.fixture(scope="module")
def rates(data_dir):
    """The last 150 business days of the real exchange-rate file, one column per currency."""
    from tsdiff.data.adapters.frames import to_wide_dataframe
    from tsdiff.data.datasets.lstnet import load_exchange_rate

    df = to_wide_dataframe(load_exchange_rate(data_dir)).iloc[-150:]
    df.columns = [f"cur{c}" for c in df.columns]
    return df


@pytest.fixture(scope="module")
def fitted(rates):
    return tiny_forecaster().fit(rates)


def test_forecast_summaries_and_conversions(rates, fitted):
    fc = fitted.predict()
    assert fc.samples.shape == (8, 5, 8) and fc.samples_full.shape == (8, 5, 8, 1)
    assert np.isfinite(fc.samples).all()
    assert fc.index[0] == rates.index[-1] + pd.offsets.BDay(1) and len(fc.index) == 5
    assert fc.mean.shape == fc.median.shape == (5, 8)
    np.testing.assert_allclose(fc.mean, fc.samples.mean(axis=0))
    # quantiles are GluonTS' nearest rank (tsdiff.quantiles) = numpy's method="nearest"; S = 8 is even
    np.testing.assert_array_equal(fc.median, np.quantile(fc.samples, 0.5, axis=0, method="nearest"))
    assert fc.quantile([0.1, 0.9]).shape == (2, 5, 8)
    lo, hi = fc.interval(0.8)
    np.testing.assert_array_equal(lo, np.quantile(fc.samples, 0.1, axis=0, method="nearest"))
    assert np.all(lo <= hi)
    df = fc.to_pandas()
    assert df.index.equals(fc.index) and df.shape == (5, 8 * 4)
    assert list(df.columns.get_level_values("stat")[:4]) == ["mean", "0.1", "0.5", "0.9"]
    np.testing.assert_array_equal(df[("cur2", "0.9")], np.quantile(fc.samples[:, :, 2], 0.9, axis=0, method="nearest"))
    da = fc.to_xarray()
    assert da.dims == ("sample", "date", "series") and list(da["series"].values) == list(rates.columns)
    assert np.array_equal(da.values, fc.samples)
    glu = fc.to_gluonts()
    assert len(glu) == 8 and glu[3].item_id == "cur3" and glu[3].samples.shape == (8, 5)
    assert glu[0].start_date == pd.Period(fc.index[0], freq="B")
    # the forecast starts from the observed context: same seed, same samples
    np.testing.assert_array_equal(fitted.predict().samples, fc.samples)
    assert not np.array_equal(fitted.predict(random_state=1).samples, fc.samples)


def test_long_frame_gluonts_and_numpy_inputs(rates):
    long = rates.reset_index().melt(id_vars="date", var_name="item_id", value_name="value") \
        .rename(columns={"date": "timestamp"})
    fc = tiny_forecaster().fit(long).predict()
    assert fc.samples.shape == (8, 5, 8) and fc.columns == list(rates.columns)
    from gluonts.dataset.common import ListDataset

    ds = ListDataset([{"start": pd.Period(rates.index[0], "B"), "target": rates[c].to_numpy(), "item_id": c}
                      for c in rates.columns], freq="B")
    fc2 = tiny_forecaster().fit(ds).predict()
    assert fc2.samples.shape == (8, 5, 8) and fc2.to_gluonts()[1].item_id == "cur1"


def test_grid_forecast_to_xarray_keeps_coordinates(data_dir):
    import xarray as xr

    with xr.open_dataset(data_dir / "era5" / "era5_t2m_uk_2019-03.nc") as ds:
        piece = ds.isel(time=slice(0, 40), latitude=slice(0, 4), longitude=slice(0, 5)).load()
    fc = tiny_forecaster(prediction_length=4, context_length=6, n_samples=3).fit(piece).predict()
    out = fc.to_xarray()
    assert out["t2m"].dims == ("sample", "time", "latitude", "longitude")
    assert out["t2m"].shape == (3, 4, 4, 5)
    assert np.array_equal(out.latitude.values, piece.latitude.values)
    assert out.latitude.attrs == piece.latitude.attrs and out["t2m"].attrs == piece["t2m"].attrs
    assert out.time.values[0] == piece.time.values[-1] + np.timedelta64(1, "h")


def test_graph_data_goes_to_the_model(data_dir):
    """The METR-LA week with DCRNN's adjacency: the graph is kept with the model."""
    from tsdiff.data.datasets.metr_la import load_metr_la

    series = load_metr_la(data_dir)
    df = pd.DataFrame(series.values[:200, :12, 0], index=series.time_index[:200], columns=series.node_names[:12])
    adj = series.spatial.to_dense()[:12, :12]
    f = tiny_forecaster(prediction_length=3, context_length=6, n_samples=2).fit(df, graph=adj)
    assert f.module_.hparams["spatial"]["kind"] == "graph"
    assert f.module_.hparams["spatial"]["num_nodes"] == 12
    fc = f.predict()
    assert fc.samples.shape == (2, 3, 12)
    with pytest.raises(DataError, match="adjacency is 5x5 but there are 12 nodes"):
        tiny_forecaster().fit(df, graph=adj[:5, :5])
    with pytest.raises(DataError, match="differs from what the model was trained with"):
        f.predict(df, graph=np.ones((12, 12)))


def test_save_load_and_mismatched_data(tmp_path, rates, fitted):
    path = fitted.save(tmp_path / "fc.pt")
    again = tsdiff.Forecaster.load(path)
    assert again.get_params() == fitted.get_params()
    np.testing.assert_array_equal(again.predict(rates).samples, fitted.predict(rates).samples)
    with pytest.raises(DataError, match="holds no data"):
        again.predict()
    with pytest.raises(DataError, match="7 series/nodes but the model was trained on 8"):
        again.predict(rates.iloc[:, :7])
    renamed = rates.rename(columns={"cur0": "usd"})
    with pytest.raises(DataError, match=r"columns/series differ.*new: \['usd'\]"):
        again.predict(renamed)
    weekly = rates.copy()
    weekly.index = pd.date_range("2000-01-02", periods=len(rates), freq="W")
    with pytest.raises(DataError, match="frequency 'W-SUN' but the model was trained on 'B'"):
        again.predict(weekly)
    with pytest.raises(TsdiffError, match=r"holds a tsdiff Forecaster, not an Imputer; .*\(on the command line: "
                                          r"tsdiff forecast --model\)"):
        tsdiff.Imputer.load(path)


def test_bad_input_and_settings(rates):
    with pytest.raises(DataError, match="empty"):
        tiny_forecaster().fit(rates.iloc[:0])
    bad = rates.astype(object)
    bad.iloc[5, 2] = "1,23"
    with pytest.raises(DataError, match=r"column 'cur2' is not numeric \(e.g. '1,23'"):
        tiny_forecaster().fit(bad)
    with pytest.raises(DataError, match="needs context_length \\+ prediction_length = 10 \\+ 5 = 15"):
        tiny_forecaster().fit(rates.iloc[:12])
    with pytest.raises(DataError, match="DatetimeIndex"):
        tiny_forecaster().fit(rates.reset_index(drop=True))
    with pytest.raises(UnknownNameError, match="valid model names are"):
        tiny_forecaster(model="nope").fit(rates)
    with pytest.raises(ConfigError, match="prediction_length must be an integer >= 1"):
        tiny_forecaster(prediction_length=0).fit(rates)
    with pytest.raises(DataError, match="cannot use data of type list"):
        tiny_forecaster().fit([1, 2, 3])
    with pytest.raises(TsdiffError, match="not fitted"):
        tiny_forecaster().predict()


def test_sampler_options_and_chunk_size_reach_the_sampler(rates, fitted, monkeypatch, record_calls):
    calls = record_calls(fitted.module_, "sample")
    # predict's own options; the constructor's chunk size
    monkeypatch.setattr(fitted, "chunk_size", 3)
    fc = fitted.predict(sampler="ddpm", sampling_steps=4, sampler_options={"spacing": "log_snr"})
    assert (calls[-1]["sampler"], calls[-1]["steps"]) == ("ddpm", 4)
    assert calls[-1]["sampler_options"] == {"spacing": "log_snr"} and calls[-1]["chunk_size"] == 3
    assert np.isfinite(fc.samples).all()
    # the constructor's options apply when predict names no sampler, and not to another sampler
    monkeypatch.setattr(fitted, "sampler_options", {"eta": 0.5})
    fitted.predict()
    assert calls[-1]["sampler"] == "ddim" and calls[-1]["sampler_options"] == {"eta": 0.5}
    fitted.predict(sampler="ddim", sampling_steps=2)  # naming the constructor's sampler keeps its options
    assert calls[-1]["sampler_options"] == {"eta": 0.5} and calls[-1]["steps"] == 2
    fitted.predict(sampler="ddpm", sampling_steps=3)
    assert calls[-1]["sampler_options"] is None
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['bogus'\] for sampler 'ddim'"):
        fitted.predict(sampler_options={"bogus": 1}, sampler="ddim")
    with pytest.raises(ConfigError, match="sampler_options must be a dict"):
        fitted.predict(sampler_options="log_snr", sampler="ddpm")
    with pytest.raises(ConfigError, match="chunk_size must be an integer >= 1"):
        tiny_forecaster(chunk_size=0).fit(rates)
    monkeypatch.setattr("tsdiff.api.fitting._train", lambda *a, **k: pytest.fail("trained despite a bad sampler option"))
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['bogus'\] for sampler 'ddpm'"):
        tiny_forecaster(sampler="ddpm", sampler_options={"bogus": 1}).fit(rates)


def test_config_commands_refuse_an_api_model_file_clearly(tmp_path, fitted, capsys):
    from tsdiff.cli import main

    path = fitted.save(tmp_path / "fc.pt")
    for command in (["test", str(path)], ["predict", str(path), "-o", str(tmp_path / "p.csv")],
                    ["calibrate-variance", str(path)]):
        assert main(command) == 2
        assert "saved by tsdiff.Forecaster (the Python API), not by `tsdiff fit`" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_many_features_default_to_linear_attention(data_dir, monkeypatch):
    """From LINEAR_ATTENTION_FROM features on, the API's CSDI attends linearly (real ERA5 grid,
    1617 cells); any model option about the attention or the spatial mixing is kept as given."""
    import xarray as xr

    from tsdiff.api.building import LINEAR_ATTENTION_FROM, _model_config

    assert "attention" not in _model_config("csdi", None, LINEAR_ATTENTION_FROM - 1)
    assert _model_config("csdi", None, LINEAR_ATTENTION_FROM)["attention"] == "linear"
    for given in ({"attention": "softmax"}, {"spatial": "grid", "feature_attention": False}, {"feature_attention": True}):
        cfg = _model_config("csdi", given, 5000)
        assert cfg.get("attention", "softmax") == "softmax" and {k: cfg[k] for k in given} == given
    monkeypatch.setattr("tsdiff.api.fitting._train", lambda *a, **k: None)  # the built network is what matters
    with xr.open_dataset(f"{data_dir}/era5/era5_t2m_uk_2019-03.nc", chunks={}) as ds:
        fc = tsdiff.Forecaster(prediction_length=6, verbose=False).fit(ds)
    assert fc.module_.hparams["model"]["attention"] == "linear"
    assert all(layer.time_layer.attention == "linear" for layer in fc.module_.net.layers)
