"""Imputation read and written window by window: ``Imputer.imputed_blocks`` and ``tsdiff impute``
on netCDF grids (real ERA5 pieces) give exactly the in-memory result while reading only
windows and writing block by block; a failed run leaves no output file."""

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from tsdiff.cli import main
from tsdiff.quantiles import sample_quantile

TINY = "model_options={layers: 1, channels: 8, heads: 2, ff_dim: 8, diffusion_embedding_dim: 16, " \
       "time_embedding_dim: 8, feature_embedding_dim: 4}"
FAST = ["max_steps=3", "n_samples=3", "sampling_steps=2", "window=12", "batch_size=2", TINY]
PACKED = {"dtype": "int16", "scale_factor": 0.002, "add_offset": 270.0, "_FillValue": -32767, "zlib": True}


def _era5_piece(data_dir, tmp_path, steps=60, packed=True):
    """60 hourly steps of 5 x 6 ERA5 cells, 20% hidden except steps 20-43 (two windows without gaps)."""
    with xr.open_dataset(data_dir / "era5" / "era5_t2m_uk_2019-03.nc") as ds:
        piece = ds.isel(time=slice(0, steps), latitude=slice(0, 5), longitude=slice(0, 6)).load()
    hide = np.random.default_rng(0).random(piece["t2m"].shape) < 0.2
    hide[20:44] = False
    piece["t2m"] = piece["t2m"].where(~hide)
    path = tmp_path / "grid.nc"
    piece.to_netcdf(path, encoding={"t2m": PACKED} if packed else None)
    return path, hide


def test_imputed_blocks_cover_the_series_and_equal_sample(tmp_path):
    from tsdiff.api import Imputer
    from tsdiff.data.lazy import ArraySource
    from tsdiff.errors import DataError

    rng = np.random.default_rng(1)
    X = np.cumsum(rng.normal(size=(100, 4)), axis=0)
    X[rng.random(X.shape) < 0.15] = np.nan
    X[30:60] = np.nan_to_num(X[30:60], nan=0.25)  # windows 36..59 have no gap: copied, not sampled
    imp = Imputer(window=12, max_steps=3, batch_size=2, n_samples=3, sampling_steps=2,
                  model_options={"layers": 1, "channels": 8, "heads": 2}).fit(X)
    whole = imp.sample(X)
    np.save(tmp_path / "x.npy", X[:, :, None])
    source = ArraySource(np.load(tmp_path / "x.npy", mmap_mode="r"))
    blocks = list(imp.imputed_blocks(source))
    assert [b[0] for b in blocks] == sorted(b[0] for b in blocks) and blocks[0][0] == 0
    assert all(a + v.shape[0] == nxt for (a, v, _), (nxt, _, _) in zip(blocks, blocks[1:]))
    assert blocks[-1][0] + blocks[-1][1].shape[0] == 100
    draws = np.concatenate([d for _, _, d in blocks], axis=1)[..., 0]
    assert draws.shape == (3, 100, 4)
    assert np.array_equal(draws, whole)  # the same noise, whatever reads the windows
    values = np.concatenate([v for _, v, _ in blocks])[..., 0]
    assert np.array_equal(values, X, equal_nan=True)
    obs = ~np.isnan(X)
    assert (draws[:, obs] == X[obs]).all() and not np.isnan(draws).any()
    assert imp.transform(X[:50]).shape == (50, 4)
    with pytest.raises(DataError, match=r"3 series x 1 channel\(s\) but the imputer was fitted on 4 x 1"):
        next(imp.imputed_blocks(ArraySource(np.zeros((20, 3)))))


def test_grid_impute_streams_and_equals_the_in_memory_result(data_dir, tmp_path, monkeypatch):
    from tsdiff.api import Imputer
    from tsdiff.data.adapters.grid import GridSource
    from tsdiff.userfiles import grid_encoding

    src, hide = _era5_piece(data_dir, tmp_path)
    a, ua, model = tmp_path / "a.nc", tmp_path / "ua.nc", tmp_path / "m.pt"
    assert main(["impute", str(src), *FAST, "-o", str(a), "--uncertainty", str(ua), "--save-model", str(model)]) == 0
    # with a saved model: only windows of the grid are read
    reads = []
    window = GridSource.window
    monkeypatch.setattr(GridSource, "window", lambda self, s, n: reads.append((s, n)) or window(self, s, n))
    b, ub = tmp_path / "b.nc", tmp_path / "ub.nc"
    assert main(["impute", str(src), "-o", str(b), "--uncertainty", str(ub), "--model", str(model)]) == 0
    assert reads and max(n for _, n in reads) <= 12 and sum(n for _, n in reads) <= 2 * 60
    monkeypatch.undo()

    # the reference: the whole grid in memory, imputed at once
    imp = Imputer.load(model)
    with xr.open_dataset(src) as ds:
        template = ds.load()
    source = GridSource(template)
    values = source.to_series().values
    draws = imp._sample_series(values, imp.n_samples)
    missing = np.isnan(values)
    filled = np.where(missing, np.median(draws, axis=0), values)
    ref = source.to_xarray(filled)
    ref.to_netcdf(tmp_path / "ref.nc", encoding=grid_encoding(ref, template))
    with xr.open_dataset(tmp_path / "ref.nc", decode_cf=False) as r, xr.open_dataset(b, decode_cf=False) as o, \
            xr.open_dataset(src, decode_cf=False) as i, xr.open_dataset(a, decode_cf=False) as o_a:
        assert o["t2m"].dtype == np.int16 and float(o["t2m"].attrs["scale_factor"]) == pytest.approx(0.002)
        assert np.array_equal(o["t2m"].values, r["t2m"].values)  # stored integers, bit for bit
        assert np.array_equal(o["t2m"].values, o_a["t2m"].values)  # trained in the same run: same output
        assert np.array_equal(o["t2m"].values[~hide], i["t2m"].values[~hide])  # observed: the input's integers
        assert (o["t2m"].values != -32767).all()
    with xr.open_dataset(src) as i, xr.open_dataset(b) as o:
        assert o.attrs == i.attrs and list(o.coords) == list(i.coords)
        for c in ("time", "latitude", "longitude"):
            assert np.array_equal(o[c].values, i[c].values) and o[c].attrs == i[c].attrs
    stats = [draws.mean(0), draws.std(0), *sample_quantile(draws, [0.05, 0.95], axis=0)]  # tsdiff's one definition
    with xr.open_dataset(ub) as u:
        assert list(u["stat"].values) == ["mean", "std", "q0.05", "q0.95"]
        for k, s in enumerate(stats):
            want = source.to_xarray(np.where(missing, s, np.nan))["t2m"].values
            assert np.array_equal(u["t2m"].isel(stat=k).values, want, equal_nan=True)


def test_grid_impute_trains_from_the_file_when_the_grid_is_large(data_dir, tmp_path, monkeypatch):
    import tsdiff.api.grids as grids
    from tsdiff.data.adapters.grid import GridSource

    src, hide = _era5_piece(data_dir, tmp_path, packed=False)
    eager = tmp_path / "eager.nc"
    assert main(["impute", str(src), *FAST, "-o", str(eager)]) == 0
    monkeypatch.setattr(grids, "GRID_IN_MEMORY_BYTES", 0)

    def no_full_read(self):
        raise AssertionError("the whole grid was read")

    monkeypatch.setattr(GridSource, "to_series", no_full_read)
    lazy = tmp_path / "lazy.nc"
    assert main(["impute", str(src), *FAST, "-o", str(lazy)]) == 0
    with xr.open_dataset(eager) as e, xr.open_dataset(lazy) as z, xr.open_dataset(src) as i:
        ve, vz, vi = e["t2m"].values, z["t2m"].values, i["t2m"].values
        assert not np.isnan(vz).any()
        assert vz[~hide].tobytes() == vi[~hide].tobytes()
        # the streamed scaler equals the in-memory one up to rounding
        np.testing.assert_allclose(vz[hide], ve[hide], rtol=0, atol=1e-3)


def test_a_failed_grid_impute_leaves_no_file(data_dir, tmp_path, monkeypatch, capsys):
    from tsdiff.api import Imputer
    from tsdiff.errors import DataError
    from tsdiff.userfiles import GridWriter

    src, _ = _era5_piece(data_dir, tmp_path, steps=36, packed=False)
    model = tmp_path / "m.pt"
    assert main(["impute", str(src), *FAST, "-o", str(tmp_path / "ok.nc"), "--save-model", str(model)]) == 0
    blocks = Imputer.imputed_blocks

    def fail_after_one(self, source, n_samples=None):
        it = blocks(self, source, n_samples)
        yield next(it)
        raise DataError("the disk is full (simulated)")

    monkeypatch.setattr(Imputer, "imputed_blocks", fail_after_one)
    out = tmp_path / "out.nc"
    old = tmp_path / "kept.nc"
    old.write_bytes(b"an earlier result")
    capsys.readouterr()
    assert main(["impute", str(src), "-o", str(out), "--uncertainty", str(old), "--model", str(model)]) == 2
    assert "the disk is full (simulated)" in capsys.readouterr().err
    assert not out.exists() and old.read_bytes() == b"an earlier result"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a block of the wrong shape is refused with the expected one
    from tsdiff.data.adapters.grid import GridSource

    with xr.open_dataset(src) as ds:
        source = GridSource(ds.load())
    with pytest.raises(DataError, match=r"\[rows, 30, 1\] inside the 36 steps"):
        with GridWriter(tmp_path / "w.nc", source) as w:
            w.write(30, np.zeros((12, 30, 1)))
    assert not (tmp_path / "w.nc").exists()


@pytest.mark.integration
def test_grid_impute_memory_does_not_follow_the_file(tmp_path):
    """A 400 MB grid is imputed with the peak resident memory of its first 240 steps (same windows
    sampled): reading and writing it adds at most 64 MB."""
    import dask.array as da
    import pandas as pd

    side, T = 32, 400 * 10**6 // (4 * 32 * 32)
    t = da.arange(T, chunks=4096, dtype=np.float32)[:, None, None]
    values = t + da.arange(side * side, dtype=np.float32).reshape(1, side, side)
    steps = da.arange(T, chunks=4096)[:, None, None]
    gaps = (steps < 240) & ((steps + da.arange(side * side).reshape(1, side, side)) % 7 == 0)  # first 240 steps
    values = da.where(gaps, np.nan, values)
    coords = {"time": pd.date_range("2000-01-01", periods=T, freq="h"),
              "lat": ("lat", np.linspace(60, 40, side), {"units": "degrees_north"}),
              "lon": ("lon", np.linspace(-10, 10, side), {"units": "degrees_east"})}
    big = tmp_path / "big.nc"
    xr.Dataset({"x": (("time", "lat", "lon"), values)}, coords=coords).to_netcdf(
        big, encoding={"x": {"chunksizes": (48, side, side)}})
    with xr.open_dataset(big) as ds:
        ds.isel(time=slice(0, 240)).load().to_netcdf(tmp_path / "small.nc")
    model = tmp_path / "m.pt"
    assert main(["impute", str(tmp_path / "small.nc"), "window=48", "max_steps=2", "n_samples=2",
                 "sampling_steps=1", "chunk_size=8", TINY, "-o", str(tmp_path / "s.nc"),
                 "--save-model", str(model)]) == 0

    def peak_growth(grid, out):
        """``tsdiff impute grid --model`` in a fresh process: growth of its peak RSS (VmHWM, not
        ru_maxrss, which Linux carries over from this large parent into the child)."""
        code = ("import json, re, torch, xarray, h5netcdf, dask.array, lightning, tsdiff.api, tsdiff.training.module\n"
                "from tsdiff.cli import main\n"
                "def peak():\n"
                "    return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024\n"
                "before = peak()\n"
                f"rc = main(['impute', {str(grid)!r}, '-o', {str(out)!r}, '--model', {str(model)!r}])\n"
                "print(json.dumps([rc, peak() - before]))\n")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        rc, growth = json.loads(res.stdout.strip().splitlines()[-1])
        assert rc == 0
        return growth

    # the same 5 windows with gaps are sampled in both: only the reading and writing differ
    small_growth = peak_growth(tmp_path / "small.nc", tmp_path / "small_out.nc")
    growth = peak_growth(big, tmp_path / "out.nc")
    print(f"tsdiff impute: peak RSS growth {small_growth / 1e6:.1f} MB on 240 steps "
          f"({(tmp_path / 'small.nc').stat().st_size / 1e6:.1f} MB), {growth / 1e6:.1f} MB on {T} steps "
          f"({big.stat().st_size / 1e6:.0f} MB)")
    assert big.stat().st_size > 399e6
    assert growth - small_growth < 64e6, f"{big.stat().st_size / 1e6:.0f} MB grid: peak RSS grew by " \
        f"{growth / 1e6:.0f} MB, against {small_growth / 1e6:.0f} MB for its first 240 steps"
    with xr.open_dataset(big) as i, xr.open_dataset(tmp_path / "out.nc") as o:
        tail = slice(T - 1000, T)
        assert np.array_equal(o["x"].isel(time=tail).values, i["x"].isel(time=tail).values)
        head = o["x"].isel(time=slice(0, 240)).values
        assert not np.isnan(head).any()
