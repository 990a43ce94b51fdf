"""Plots are real PNGs with content: fan charts, imputation plots, grid maps, CRPS-vs-NFE, leaderboard."""

import numpy as np
import pandas as pd
import pytest

from tsdiff import plotting
from tsdiff.api import Forecast
from tsdiff.data.series import Series
from tsdiff.errors import ConfigError, DataError


def assert_not_blank(path, min_colours=20):
    """A PNG file that decodes, is not one flat colour and has many distinct colours."""
    from matplotlib.image import imread

    img = imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    flat = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours = len(np.unique(flat.astype(np.int64) @ np.array([65536, 256, 1])))
    assert colours >= min_colours, colours
    assert flat.std() > 10
    assert (flat.min(axis=1) < 200).mean() > 0.01  # some ink, not a white page


@pytest.fixture(scope="module")
def real_week(data_dir):
    """Two days of four real METR-LA sensors (speeds in mph)."""
    df = pd.read_csv(data_dir / "metr_la" / "los_speed.csv").iloc[:576, :4]
    df.index = pd.date_range("2012-03-01", periods=576, freq="5min", name="time")
    return df


def test_fan_chart(tmp_path, real_week):
    hist = real_week.iloc[:48]
    future = real_week.iloc[48:60].to_numpy()
    rng = np.random.default_rng(0)
    samples = future[None, :, :, None] + rng.normal(0, 3, (50, 12, 4, 1))
    series = Series(hist.to_numpy()[:, :, None], hist.index, list(hist.columns), ["speed"])
    fc = Forecast(samples, real_week.index[48:60], list(hist.columns), ["speed"], freq="5min", history=series)
    fig = fc.plot(tmp_path / "fan.png", truth=future)
    assert len(fig.axes) == 4
    assert_not_blank(tmp_path / "fan.png")
    with pytest.raises(DataError, match="unknown series 'nope'"):
        fc.plot(series=["nope"])
    with pytest.raises(ConfigError, match="PNG"):
        fc.plot(tmp_path / "fan.jpg")


def test_imputation_plot(tmp_path, real_week):
    X = real_week.iloc[:200].copy()
    truth = X.to_numpy()
    rng = np.random.default_rng(1)
    hide = rng.random(X.shape) < 0.2
    X[hide] = np.nan
    samples = truth[None] + rng.normal(0, 2, (20,) + truth.shape)
    plotting.plot_imputation(X, samples, tmp_path / "imp.png", truth=truth)
    assert_not_blank(tmp_path / "imp.png")
    with pytest.raises(DataError, match="same T, F"):
        plotting.plot_imputation(X, samples[:, :10])


def test_grid_maps(tmp_path, data_dir):
    import xarray as xr

    with xr.open_dataset(data_dir / "era5" / "era5_t2m_uk_2019-03.nc") as ds:
        t2m = ds["t2m"].isel(time=slice(0, 4)).values.astype(np.float64)
        lat, lon = ds.latitude.values, ds.longitude.values
    samples = t2m + np.random.default_rng(2).normal(0, 1, t2m.shape)  # 4 "samples" of one field
    plotting.plot_grid_maps(samples, lat, lon, tmp_path / "map.png", title="t2m", units="K")
    assert_not_blank(tmp_path / "map.png", min_colours=100)
    with pytest.raises(DataError, match=r"\[S, 33, 49\]"):
        plotting.plot_grid_maps(samples[:, :5], lat, lon)


def test_crps_vs_nfe_and_leaderboard(tmp_path):
    pts = {"ddim": [(5, 0.31), (10, 0.27), (50, 0.22)], "dpm_solver_pp": [(5, 0.26), (10, 0.23)]}
    plotting.plot_crps_vs_nfe(pts, tmp_path / "nfe.png")
    assert_not_blank(tmp_path / "nfe.png")
    rows = [{"model": "csdi", "crps": 0.179}, {"model": "linear interpolation", "crps": 0.25},
            {"model": "station mean", "crps": 0.6}]
    plotting.plot_leaderboard(rows, tmp_path / "lb.png")
    assert_not_blank(tmp_path / "lb.png")
    with pytest.raises(DataError, match="no row has a 'mae' value"):
        plotting.plot_leaderboard(rows, metric="mae")
