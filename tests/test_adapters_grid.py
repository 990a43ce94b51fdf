"""xarray grid adapter: CF axis detection, channels, NaN masks, laziness, round trips."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tsdiff.data.adapters.grid import GridSource, find_cf_axes, series_from_xarray
from tsdiff.errors import DataError


def _odd_names(T=6, H=3, W=4):
    """A grid whose axes are only recognisable by their CF attributes, dims in an unusual order."""
    rng = np.random.default_rng(0)
    t = pd.date_range("2020-01-01", periods=T, freq="6h")
    a = rng.normal(size=(H, T, W)).astype(np.float32)
    a[1, 2, 3] = np.nan
    ds = xr.Dataset(
        {
            "tas": (("y_c", "when", "x_c"), a, {"units": "K"}),
            "pr": (("y_c", "when", "x_c"), a * 2, {"units": "mm"}),
            "static": (("y_c", "x_c"), np.ones((H, W))),
        },
        coords={
            "when": ("when", t, {"axis": "T"}),
            "y_c": ("y_c", [50.0, 51.0, 52.0], {"units": "degrees_north"}),
            "x_c": ("x_c", np.arange(W) * 1.0, {"axis": "X"}),
        },
        attrs={"title": "odd"},
    )
    return ds


def test_cf_detection_channels_and_nan_mask():
    ds = _odd_names()
    assert find_cf_axes(ds) == ("when", "y_c", "x_c")
    g = GridSource(ds)
    assert g.variables == ["tas", "pr"]  # 'static' has no time axis
    s = g.to_series()
    assert s.shape == (6, 12, 2)
    assert int((~s.observed_mask).sum()) == 2 and np.isnan(s.values[2, 1 * 4 + 3]).all()
    np.testing.assert_array_equal(s.values[:, 4 + 2, 0], ds["tas"].values[1, :, 2])


def test_round_trip_keeps_coords_attrs_values():
    ds = _odd_names()
    g = GridSource(ds, ["tas", "pr"])
    back = g.to_xarray(g.to_series().values)
    xr.testing.assert_identical(back, ds[["tas", "pr"]])
    da = ds["tas"]
    s = series_from_xarray(da)
    assert s.shape == (6, 12, 1)
    xr.testing.assert_identical(GridSource(da).to_xarray(s.values)["tas"], da)


def test_grid_without_lat_lon_is_refused():
    ds = _odd_names().drop_vars("static")
    ds["y_c"].attrs = {}
    with pytest.raises(DataError, match="cannot recognise the lat dimension.*degrees_north"):
        GridSource(ds)
    ds = xr.Dataset({"v": (("time", "a", "b"), np.zeros((3, 2, 2)))}, coords={"time": pd.date_range("2020", periods=3)})
    with pytest.raises(DataError, match="lat and lon"):
        GridSource(ds)


def test_lazy_windows_on_large_file(tmp_path):
    """A ~240 MB netCDF; reading windows allocates a tiny fraction of it."""
    import netCDF4

    T, H, W = 2400, 100, 250
    path = tmp_path / "big.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("t", T)
        nc.createDimension("la", H)
        nc.createDimension("lo", W)
        tv = nc.createVariable("t", "f8", ("t",))
        tv.units, tv.calendar = "hours since 2000-01-01 00:00:00", "standard"
        tv[:] = np.arange(T)
        la = nc.createVariable("la", "f8", ("la",))
        la.standard_name = "latitude"
        la[:] = np.linspace(60, 35, H)
        lo = nc.createVariable("lo", "f8", ("lo",))
        lo.units = "degrees_east"
        lo[:] = np.linspace(-10, 30, W)
        v = nc.createVariable("temp", "f4", ("t", "la", "lo"), chunksizes=(24, H, W))
        block = np.arange(H * W, dtype=np.float32).reshape(H, W)
        for a in range(0, T, 240):
            v[a : a + 240] = block[None] + np.arange(a, a + 240, dtype=np.float32)[:, None, None]
    size = path.stat().st_size
    assert size > 200e6
    tracemalloc.start()
    try:
        with xr.open_dataset(path, chunks={"t": 24}) as ds:
            g = GridSource(ds)
            assert g.shape == (T, H * W, 1) and g.time_dim == "t"
            windows = [g.window(s, 24) for s in (0, 1000, 2376)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 10, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"
    assert windows[1].shape == (24, H * W, 1)
    assert windows[1][5, 7, 0] == 1005 + 7 and windows[2][-1, -1, 0] == 2399 + H * W - 1
    assert g.time_index[1000] == pd.Timestamp("2000-02-11 16:00")
