"""xarray grid adapter: CF axis detection, channels, NaN masks, laziness, round trips."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch
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


def _write_nc(path, T, H, W, chunk_t, nan_cells=()):
    """A CF netCDF with axes named so that only their attributes identify them; value = cell + step."""
    import netCDF4

    with netCDF4.Dataset(path, "w") as nc:
        nc.title = "tsdiff laziness test"
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
        v = nc.createVariable("temp", "f4", ("t", "la", "lo"), chunksizes=(chunk_t, H, W))
        v.units = "K"
        block = np.arange(H * W, dtype=np.float32).reshape(H, W)
        for i, j in nan_cells:
            block[i, j] = np.nan  # e.g. sea cells of a land-only field
        step = max(chunk_t, 240)
        for a in range(0, T, step):
            n = min(step, T - a)
            v[a : a + n] = block[None] + np.arange(a, a + n, dtype=np.float32)[:, None, None]


class _Counting:
    """A source wrapper that records which windows are read."""

    def __init__(self, source):
        self.source, self.reads = source, []
        self.shape = source.shape

    def window(self, start, length):
        self.reads.append((start, length))
        return self.source.window(start, length)


def lazy_windows(source, starts, window, scaler):
    """Training windows of ``window`` steps at ``starts`` read from ``source`` on access: the
    protocol's own WindowDataset over a lazy series (a forecasting protocol, so a window reads
    only its own steps)."""
    from tsdiff.data.protocol import Protocol, SplitWindows, WindowDataset

    split = SplitWindows(np.asarray(starts, dtype=np.int64))
    protocol = Protocol(id="lazy", series=source, eval_mask=None, window=window,
                        splits={"train": split, "val": split, "test": split}, scaler=scaler, context=window - 1)
    return WindowDataset(protocol, "train")


def test_lazy_window_dataset_reads_only_requested_windows(tmp_path):
    from tsdiff.data.lazy import fit_scaler_streaming
    from tsdiff.data.scalers import StandardScaler
    from tsdiff.data.windows import sliding_starts

    import dask.array as da

    path = tmp_path / "small.nc"
    _write_nc(path, T=96, H=4, W=5, chunk_t=12, nan_cells=[(1, 2)])
    with xr.open_dataset(path, chunks={"t": 12}) as ds:
        g = GridSource(ds)
        assert isinstance(g.fields[0].data, da.Array) and g.fields[0].chunks[0][0] == 12  # nothing read yet
        starts = sliding_starts(60, 24, stride=6)
        counted = _Counting(g)
        scaler = fit_scaler_streaming(counted, starts, 24, block=16)
        assert max(a + n for a, n in counted.reads) == 60 and all(n <= 16 for _, n in counted.reads)
        eager = g.to_series()
        ref = StandardScaler().fit(eager.values[:60])
        np.testing.assert_allclose(scaler.mean, ref.mean, rtol=1e-12)
        np.testing.assert_allclose(scaler.std, ref.std, rtol=1e-12)
        assert scaler.mean[1 * 5 + 2, 0] == 0 and scaler.std[1 * 5 + 2, 0] == 1  # the all-NaN cell
        counted.reads.clear()
        windows = lazy_windows(counted, starts, 24, scaler)
        assert counted.reads == [] and len(windows) == len(starts)
        item = windows[3]
        assert counted.reads == [(18, 24)]  # one window read, on access
        assert set(item) == {"x", "observed_mask", "timepoints", "start", "cond_mask"} and item["start"] == 18
        assert item["x"].shape == (24, 20, 1) and item["x"].dtype == torch.float32
        assert not item["observed_mask"][:, 7].any() and item["observed_mask"].sum() == 24 * 19
        expected = np.nan_to_num(scaler.transform(eager.values[18:42]), nan=0.0)
        np.testing.assert_allclose(item["x"].numpy(), expected, rtol=1e-6)
        with pytest.raises(DataError, match=r"window \[80, 104\) outside the 96 time steps"):
            lazy_windows(g, [80], 24, scaler)[0]


def test_lazily_opened_file_round_trip(tmp_path):
    """netCDF -> tsdiff -> xarray keeps coordinates, attributes, NaN cells and every value."""
    path = tmp_path / "rt.nc"
    _write_nc(path, T=30, H=3, W=4, chunk_t=10, nan_cells=[(0, 0), (2, 3)])
    with xr.open_dataset(path, chunks={"t": 10}) as ds:
        g = GridSource(ds)
        s = g.to_series()
        assert s.missing_rate() == pytest.approx(2 / 12)
        back = g.to_xarray(s.values)
        xr.testing.assert_identical(back, ds.load())
        assert back.attrs["title"] == "tsdiff laziness test" and back["temp"].attrs["units"] == "K"
        xr.testing.assert_identical(g.to_xarray(g.window(7, 5), start=7), ds.isel(t=slice(7, 12)).load())
    from tsdiff.data.adapters.grid import open_grid

    opened = open_grid(path)
    assert opened.fields[0].chunks[0] == (10, 10, 10) and opened.shape == (30, 12, 1)  # the file's chunks, lazy
    np.testing.assert_array_equal(opened.window(3, 4), s.values[3:7])
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    with pytest.raises(DataError, match="cannot open as a gridded dataset"):
        open_grid(bad)


def test_lazy_grids_open_through_h5netcdf_and_netcdf3_still_opens(tmp_path, monkeypatch):
    """netCDF-4 files are read through h5netcdf (h5py's 1 MiB chunk cache per variable, not
    netCDF-C's 64 MiB); a netCDF-3 file, which h5netcdf cannot read, opens with the default engine."""
    from tsdiff.data.adapters.grid import open_grid

    path = tmp_path / "g4.nc"
    _write_nc(path, T=30, H=3, W=4, chunk_t=10, nan_cells=[(0, 0)])
    with xr.open_dataset(path) as ds:
        ds.load().to_netcdf(tmp_path / "g3.nc", format="NETCDF3_64BIT", engine="scipy")
    engines = []
    real = xr.open_dataset
    monkeypatch.setattr(xr, "open_dataset", lambda p, **kw: engines.append(kw.get("engine")) or real(p, **kw))
    g4, g3 = open_grid(path), open_grid(tmp_path / "g3.nc")
    assert engines == ["h5netcdf", None]
    assert g4.shape == g3.shape == (30, 12, 1)
    np.testing.assert_array_equal(g4.window(0, 30), g3.window(0, 30))
    assert np.isnan(g4.window(0, 30)[:, 0]).all()


@pytest.fixture(scope="module")
def big_nc(tmp_path_factory):
    """A ~240 MB netCDF (2400 hourly fields of 100 x 250 cells, float32, chunks of 24 steps)."""
    path = tmp_path_factory.mktemp("bignc") / "big.nc"
    _write_nc(path, T=2400, H=100, W=250, chunk_t=24)
    assert path.stat().st_size > 200e6
    return path


def test_lazy_windows_on_large_file(big_nc):
    """Building training windows over a ~240 MB netCDF allocates a small fraction of it."""
    from tsdiff.data.lazy import fit_scaler_streaming
    from tsdiff.data.windows import sliding_starts

    T, H, W = 2400, 100, 250
    size = big_nc.stat().st_size
    tracemalloc.start()
    try:
        with xr.open_dataset(big_nc, chunks={"t": 24}) as ds:
            g = GridSource(ds)
            assert g.shape == (T, H * W, 1) and g.time_dim == "t"
            starts = sliding_starts(480, 48, stride=1)  # a training block of 20 days
            scaler = fit_scaler_streaming(g, starts, 48, block=24)  # reads 480 of the 2400 fields
            windows = lazy_windows(g, starts, 48, scaler)
            seen = {}  # keep a few numbers of each window, not the windows
            for i in (0, 300, len(windows) - 1):
                item = windows[i]
                seen[i] = (item["start"], tuple(item["x"].shape), item["x"][0, 7, 0].item())
            for s in (0, 1000, 2376):
                w = g.window(s, 24)
                seen[("direct", s)] = (w.shape, w[5, 7, 0], w[-1, -1, 0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    window_bytes = 48 * H * W * 8  # one training window in float64 (9.6 MB)
    # memory is bounded by a few windows (read + scaled copy + dask chunks), not by the file
    assert peak < 4 * window_bytes and peak < size / 6, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"
    assert seen[("direct", 1000)] == ((24, H * W, 1), 1005 + 7, 1023 + H * W - 1)
    assert seen[("direct", 2376)][2] == 2399 + H * W - 1
    assert g.time_index[1000] == pd.Timestamp("2000-02-11 16:00")
    # cell n at step t holds n + t: over steps 0..479 the mean is n + 239.5 and the std that of 0..479
    np.testing.assert_allclose(scaler.mean[[0, 777], 0], [239.5, 777 + 239.5], rtol=1e-9)
    np.testing.assert_allclose(scaler.std[:, 0], np.arange(480).std(ddof=1), rtol=1e-6)
    assert seen[300][:2] == (300, (48, H * W, 1)) and seen[len(windows) - 1][0] == 432
    assert seen[300][2] == pytest.approx((307 - scaler.mean[7, 0]) / scaler.std[7, 0], rel=1e-6)


@pytest.mark.integration
def test_lazy_windows_peak_rss_in_fresh_process(big_nc):
    """The same in a fresh process, measured as growth of the peak resident memory (VmHWM).

    Resident memory also holds netCDF's HDF5 chunk cache (64 MB per variable by default,
    bounded whatever the file size); it is set to 4 MB here so the windows dominate.
    """
    import subprocess
    import sys

    code = f"""
import re, dask, netCDF4, numpy as np, xarray as xr, torch
netCDF4.set_chunk_cache(4 * 2**20)
dask.config.set(scheduler="synchronous")
from tsdiff.data.adapters.grid import GridSource
from tsdiff.data.lazy import fit_scaler_streaming
from tests.test_adapters_grid import lazy_windows
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
ds = xr.open_dataset({str(big_nc)!r}, chunks={{"t": 24}})
g = GridSource(ds)
before = hwm()
starts = np.arange(0, 1680 - 48 + 1)
scaler = fit_scaler_streaming(g, starts, 48, block=24)
w = lazy_windows(g, starts, 48, scaler)
total = sum(float(w[i]["x"].sum()) for i in range(0, len(w), 97))
print(hwm() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    growth = int(out.stdout.strip().splitlines()[-1])
    size = big_nc.stat().st_size
    assert growth < size / 5, f"peak RSS grew {growth / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"
