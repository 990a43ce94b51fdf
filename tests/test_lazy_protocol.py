"""``data.dataset: file``: protocols on a user's netCDF / .npy file, read window by window.

Every window of a lazily read protocol must equal the window of the same protocol held in
memory (``Protocol.in_memory``), bit for bit; building the protocol reads only the
training block, and a window item reads only its own steps.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tsdiff.data.datasets.files as files
from tsdiff.cli import main
from tsdiff.data import build_protocol
from tsdiff.data.lazy import ArraySource, HeldOutPoints, NpyRows
from tsdiff.data.protocol import fit_scaler_on_windows
from tsdiff.data.scalers import StandardScaler
from tsdiff.data.datasets.era5 import SPEC as ERA5_SPEC, load_era5
from tsdiff.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def era5_path(data_dir):
    return Path(data_dir) / ERA5_SPEC.folder / "era5_t2m_uk_2019-03.nc"


def _same_items(lazy, eager, split, every=1):
    a, b = lazy.dataset(split), eager.dataset(split)
    assert len(a) == len(b) > 0
    for i in range(0, len(a), every):
        x, y = a[i], b[i]
        assert x.keys() == y.keys()
        for k, v in x.items():
            if isinstance(v, torch.Tensor):
                assert v.dtype == y[k].dtype and v.shape == y[k].shape, (split, i, k)
                assert torch.equal(torch.nan_to_num(v, nan=-1e30), torch.nan_to_num(y[k], nan=-1e30)), (split, i, k)
            else:
                assert v == y[k], (split, i, k)


class _Counting:
    """Wraps a source and records every window read."""

    def __init__(self, source):
        self.source, self.reads = source, []

    def __getattr__(self, name):
        return getattr(self.source, name)

    def window(self, start, length):
        self.reads.append((start, length))
        return self.source.window(start, length)


def test_real_era5_file_read_lazily_equals_in_memory(era5_path, monkeypatch):
    """The ERA5 netCDF through ``data.dataset: file``: the same windows as in memory, and only
    the training block is read to build the protocol, one window per item afterwards."""
    opened = []
    real_open = files.open_source

    def counting_open(*args, **kwargs):
        opened.append(_Counting(real_open(*args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr(files, "open_source", counting_open)
    p = build_protocol("file", options={"path": str(era5_path), "window": 24, "point_rate": 0.1, "seed": 3})
    src = opened[0]
    train_end = p.meta["blocks"]["train"][1]
    assert p.is_lazy and src.shape == (744, 33 * 49, 1) and train_end == 520
    assert max(a + n for a, n in src.reads) == train_end and all(n <= 256 for _, n in src.reads)  # scaler pass
    assert p.checksums == {era5_path.name: ERA5_SPEC.files[0].sha256}
    assert p.id == "file:era5_t2m_uk_2019-03.nc-impute-w24-p0.1-s3"
    src.reads.clear()
    test = p.dataset("test")
    item = test[2]
    start = int(p.splits["test"].starts[2])
    assert src.reads == [(start - 24, 72)]  # one read on access: the window and one window each side (anchors)

    eager = load_era5()
    ref = StandardScaler().fit(eager.values[:train_end])
    np.testing.assert_allclose(p.scaler.mean, ref.mean, rtol=1e-12)
    np.testing.assert_allclose(p.scaler.std, ref.std, rtol=1e-9)
    s = int(item["start"])
    np.testing.assert_array_equal(item["y"].numpy(), eager.values[s:s + 24])  # data units, exactly

    mem = p.in_memory()
    assert not mem.is_lazy and mem.scaler is p.scaler and mem.splits is p.splits
    assert not mem.eval_mask[:train_end].any()
    rate = mem.eval_mask[train_end:].mean()
    n = mem.eval_mask[train_end:].size
    assert abs(rate - 0.1) < 4 * np.sqrt(0.09 / n)
    for split, every in (("train", 50), ("val", 1), ("test", 1)):
        _same_items(p, mem, split, every)
    held = test[0]["score_mask"]
    assert held.any() and torch.equal(held, test[0]["observed_mask"] & ~test[0]["cond_mask"])


def test_lazy_netcdf_windows_in_dataloader_worker_processes(era5_path):
    """Forked DataLoader workers read the same windows (a dask thread pool inherited through
    fork used to deadlock them)."""
    from torch.utils.data import DataLoader

    p = build_protocol("file", options={"path": str(era5_path), "window": 24, "checksum": False})
    p.dataset("val")[0]  # the parent has read through dask before the workers fork
    ref = [b["y"] for b in DataLoader(p.dataset("val"), batch_size=2)]
    got = [b["y"] for b in DataLoader(p.dataset("val"), batch_size=2, num_workers=2, timeout=60)]
    assert len(ref) == len(got) > 1 and all(torch.equal(a, b) for a, b in zip(ref, got))


def test_npy_forecasting_with_missing_values_equals_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 3.0, size=(400, 6, 2))
    values[rng.random(values.shape) < 0.15] = np.nan
    path = tmp_path / "sensors.npy"
    np.save(path, values)
    p = build_protocol("file", options={"path": str(path), "task": "forecasting", "context": 12, "horizon": 6,
                                        "freq": "15min"})
    assert p.is_lazy and p.context == 12 and p.window == 18 and p.id == "file:sensors.npy-c12-h6-s6"
    assert p.series.time_index[1] - p.series.time_index[0] == np.timedelta64(15, "m")
    mem = p.in_memory()
    np.testing.assert_array_equal(mem.series.values, values)
    for split in ("train", "val", "test"):
        _same_items(p, mem, split, every=7 if split == "train" else 1)
    item = p.dataset("test")[0]
    assert not item["cond_mask"][12:].any() and torch.equal(item["cond_mask"][:12], item["observed_mask"][:12])
    # the scaler equals the in-memory fit on the training windows up to rounding
    ref = fit_scaler_on_windows(mem.series, p.splits["train"].starts, 18)
    np.testing.assert_allclose(p.scaler.mean, ref.mean, rtol=1e-12)
    np.testing.assert_allclose(p.scaler.std, ref.std, rtol=1e-12)


def test_npy_rows_read_exact_ranges(tmp_path):
    a = np.arange(5 * 3 * 2, dtype=np.int16).reshape(5, 3, 2)
    np.save(tmp_path / "c.npy", a)
    np.save(tmp_path / "f.npy", np.asfortranarray(a))
    for name in ("c.npy", "f.npy"):
        rows = NpyRows(tmp_path / name)
        assert rows.shape == (5, 3, 2) and rows.dtype == np.int16 and len(rows) == 5
        np.testing.assert_array_equal(rows[1:4], a[1:4])
        np.testing.assert_array_equal(ArraySource(rows).window(2, 3), a[2:5].astype(np.float64))
    with pytest.raises(TypeError, match="contiguous row ranges"):
        NpyRows(tmp_path / "c.npy")[::2]
    (tmp_path / "cut.npy").write_bytes((tmp_path / "c.npy").read_bytes()[:-4])
    with pytest.raises((DataError, ValueError)):
        NpyRows(tmp_path / "cut.npy")[0:5]


def test_held_out_points_do_not_depend_on_the_windows_read():
    m = HeldOutPoints((100, 4, 2), 0.3, seed=5, first=40)
    whole = m.window(0, 100)
    assert not whole[:40].any() and whole[40:].any()
    np.testing.assert_array_equal(m.window(37, 20), whole[37:57])
    assert not np.array_equal(HeldOutPoints((100, 4, 2), 0.3, seed=6, first=40).window(0, 100), whole)


def test_file_dataset_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs data.options.path"):
        build_protocol("file")
    with pytest.raises(DataError, match=r"missing\.nc does not exist"):
        build_protocol("file", options={"path": str(tmp_path / "missing.nc")})
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"not \.csv.*np\.save"):
        build_protocol("file", options={"path": str(tmp_path / "table.csv")})
    np.save(tmp_path / "x.npy", np.zeros((200, 3)))
    with pytest.raises(ConfigError, match="needs data.options.context and data.options.horizon"):
        build_protocol("file", options={"path": str(tmp_path / "x.npy"), "task": "forecasting", "context": 5})
    with pytest.raises(ConfigError, match="task must be one of imputation, forecasting"):
        build_protocol("file", options={"path": str(tmp_path / "x.npy"), "task": "forecast"})
    with pytest.raises(ConfigError, match="point_rate must be in"):
        build_protocol("file", options={"path": str(tmp_path / "x.npy"), "point_rate": 1.5})
    np.save(tmp_path / "one.npy", np.arange(100.0))  # a single series [T]
    one = build_protocol("file", options={"path": str(tmp_path / "one.npy"), "window": 5})
    assert one.series.shape == (100, 1, 1) and one.dataset("test")[0]["y"].shape == (5, 1, 1)
    with pytest.raises(DataError, match="a .npy array has none"):
        build_protocol("file", options={"path": str(tmp_path / "x.npy"), "variables": ["t2m"]})
    np.save(tmp_path / "s.npy", np.array([["a", "b"]] * 30))
    with pytest.raises(DataError, match="real numbers"):
        build_protocol("file", options={"path": str(tmp_path / "s.npy")})
    bad = np.zeros((200, 3))
    bad[190, 2] = np.inf  # in the test block: found when that window is read
    np.save(tmp_path / "inf.npy", bad)
    p = build_protocol("file", options={"path": str(tmp_path / "inf.npy"), "window": 10})
    ds = p.dataset("test")
    last = len(ds) - 1
    with pytest.raises(DataError, match="infinite value at step 190, node 2, channel 0"):
        ds[last]
    with pytest.raises(DataError, match="reads its data lazily.*in_memory"):
        p.series_tensors


def test_relative_path_found_in_the_data_directory(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    np.save(tmp_path / "mine" / "x.npy", np.ones((100, 2)))
    monkeypatch.chdir(ROOT)
    p = build_protocol("file", data_dir=str(tmp_path), options={"path": "mine/x.npy", "window": 5, "checksum": False})
    assert p.meta["path"] == str(tmp_path / "mine" / "x.npy") and p.checksums == {}


def test_cli_fit_and_test_on_a_netcdf_file(era5_path, tmp_path, capsys, monkeypatch):
    """``tsdiff fit`` + ``--test`` on the real ERA5 file through ``data.dataset: file``, given by a
    relative path; the model keeps the absolute path, so ``tsdiff test`` runs from elsewhere."""
    from tsdiff.training.checkpoint import load_model

    cfg = str(ROOT / "configs/imputation/csdi_era5.yaml")
    monkeypatch.chdir(era5_path.parent)
    args = ["data.dataset=file", f"data.options={{path: {era5_path.name}, window: 12, point_rate: 0.2}}",
            "model.layers=1", "model.channels=8", "model.heads=2", "model.ff_dim=8", "data.batch_size=2",
            "trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
            "eval.limit_windows=1", "eval.n_samples=2", "eval.sampler=ddim", "eval.steps=2",
            f"output.dir={tmp_path / 'run'}", f"output.records_dir={tmp_path / 'rec'}"]
    assert main(["fit", cfg, *args, "--test"]) == 0
    rec = json.loads(next((tmp_path / "rec").glob("*.json")).read_text())
    assert rec["protocol"].startswith("file:era5_t2m_uk_2019-03.nc-impute-w12-p0.2-s0")
    assert rec["dataset_checksums"] == {era5_path.name: ERA5_SPEC.files[0].sha256}
    assert np.isfinite(rec["metrics"]["crps"]) and rec["metrics"]["n_targets"] > 0
    module, _ = load_model(tmp_path / "run" / "model.pt")
    assert module.hparams["config"]["data"]["options"]["path"] == str(era5_path.resolve())
    monkeypatch.chdir(tmp_path)
    assert main(["test", str(tmp_path / "run"), f"output.records_dir={tmp_path / 'rec2'}"]) == 0
    again = json.loads(next((tmp_path / "rec2").glob("*.json")).read_text())
    assert again["metrics"]["crps"] == rec["metrics"]["crps"]  # same windows, samples and seed
    capsys.readouterr()
    assert main(["datasets", "list"]) == 0
    assert re.search(r"^file: .*netCDF grid or \.npy array.*data\.options\.path", capsys.readouterr().out, re.M)


def _write_npy(path, T: int, N: int) -> None:
    """``[T, N]`` float32 holding ``t + n``, written in slices (never whole in memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(T, N))
    for a in range(0, T, 20_000):
        b = min(a + 20_000, T)
        out[a:b] = np.arange(a, b, dtype=np.float32)[:, None] + np.arange(N, dtype=np.float32)
    out.flush()
    del out


def _protocol_peak_growth(path, small) -> tuple[int, float]:
    """Growth of the peak resident memory (VmHWM) of a fresh process that builds the file
    protocol on ``path`` and reads 21 batches of every split, after the same steps on ``small``
    (so that the code and libraries are resident before the measurement), and the scaler's mean
    of column 7."""
    code = f"""
import re
from torch.utils.data import DataLoader
from tsdiff.data import build_protocol
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
def read(path):
    p = build_protocol("file", options={{"path": path, "window": 48, "checksum": False}})
    total = 0.0
    for split in ("train", "val", "test"):
        for i, batch in enumerate(DataLoader(p.dataset(split), batch_size=16, shuffle=split == "train")):
            total += float(batch["x"].sum())
            if i == 20:
                break
    return p
read({str(small)!r})
before = hwm()
p = read({str(path)!r})
print(hwm() - before, p.scaler.mean[7, 0])
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    growth, mean7 = res.stdout.split()[-2:]
    return int(growth), float(mean7)


@pytest.mark.integration
def test_lazy_file_protocol_memory_does_not_grow_with_the_file(tmp_path):
    """Building a protocol on a .npy of 200 MB and of 400 MB and reading batches of every split
    grows the peak resident memory by the same fixed amount (the streaming scaler's blocks and a
    few batches), far below the file: it does not grow with the file (fresh processes, VmHWM)."""
    N = 500
    small = tmp_path / "small.npy"
    np.save(small, np.arange(2_000 * N, dtype=np.float32).reshape(2_000, N))
    growth = {}
    for T in (100_000, 200_000):
        path = tmp_path / f"big{T}.npy"
        _write_npy(path, T, N)
        growth[T], mean7 = _protocol_peak_growth(path, small)
        train_end = int(T * 0.7)  # steps 0..train_end-1 hold t + n
        assert mean7 == pytest.approx((train_end - 1) / 2 + 7, rel=1e-9)
        size = path.stat().st_size
        print(f"{size / 1e6:.0f} MB file: peak RSS growth {growth[T] / 1e6:.1f} MB")
        assert growth[T] < size / 4, f"peak RSS grew {growth[T] / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"
        path.unlink()
    # twice the file, not twice the memory: at most 8 MB (page-level noise) more
    assert growth[200_000] < growth[100_000] + 8e6, growth


def test_forecaster_on_dask_backed_xarray_never_loads_it_whole(era5_path, monkeypatch):
    """``Forecaster.fit`` / ``predict`` on a lazily opened grid (real ERA5, a 5 x 6 corner): no
    whole-series read, and the same forecasts as from the loaded data (up to the streaming
    scaler's rounding)."""
    import xarray as xr

    import tsdiff
    from tsdiff.data.adapters.grid import GridSource

    corner = dict(latitude=slice(0, 5), longitude=slice(0, 6))
    kw = dict(prediction_length=6, context_length=12, max_steps=3, batch_size=4, random_state=0, n_samples=3,
              sampling_steps=5, verbose=False)
    with xr.open_dataset(era5_path) as ds:
        loaded = ds.isel(**corner).load()
    eager = tsdiff.Forecaster(**kw).fit(loaded)
    expected = eager.predict()

    def whole(self):
        raise AssertionError("the lazily opened grid was read whole")

    monkeypatch.setattr(GridSource, "to_series", whole)
    with xr.open_dataset(era5_path, chunks={}) as ds:
        lazy_ds = ds.isel(**corner)
        lazy = tsdiff.Forecaster(**kw).fit(lazy_ds)
        assert isinstance(lazy.series_, GridSource)
        got = lazy.predict()
        np.testing.assert_allclose(got.samples, expected.samples, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(got.history.values, loaded["t2m"].values[-12:].reshape(12, 30, 1))
        earlier = lazy.predict(lazy_ds.isel(time=slice(0, 500)))  # history from the lazy object itself
        assert earlier.index[0] == loaded.time.values[500] and earlier.samples.shape == (3, 6, 30)
        assert list(got.to_xarray().data_vars) == ["t2m"]


def test_bench_baselines_on_lazily_read_files(era5_path, tmp_path):
    """A suite task on ``dataset: file`` takes its kind from the ``task`` option, and the baselines
    (which need the whole series) run on the protocol loaded by ``in_memory``."""
    from tsdiff.bench.suite import TaskSpec, task_kind

    assert task_kind(TaskSpec("a", "file")) == "imputation"
    assert task_kind(TaskSpec("b", "file", {"task": "forecasting"})) == "forecasting"
    assert task_kind(TaskSpec("c", "era5")) == "forecasting" and task_kind(TaskSpec("d", "era5_impute")) == "imputation"
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""name: lazy_files
description: baselines on a file read lazily
seeds: [0]
n_samples: 4
metrics: [crps, mae]
tasks:
  imp: {{dataset: file, options: {{path: {era5_path}, window: 24}}, limit_windows: 2}}
  fc: {{dataset: file, options: {{path: {era5_path}, task: forecasting, context: 24, horizon: 24}}, limit_windows: 2}}
entries:
  - {{baseline: linear_interpolation, tasks: [imp]}}
  - {{baseline: persistence, tasks: [fc]}}
""")
    assert main(["bench", "run", str(suite), "--out", str(tmp_path / "rec")]) == 0
    imp = json.loads((tmp_path / "rec" / "imp" / "linear_interpolation__seed0.json").read_text())
    fc = json.loads((tmp_path / "rec" / "fc" / "persistence__seed0.json").read_text())
    assert imp["protocol"].startswith("file:era5_t2m_uk_2019-03.nc-impute-w24") and imp["metrics"]["mae"] > 0
    assert fc["protocol"].startswith("file:era5_t2m_uk_2019-03.nc-c24-h24") and fc["metrics"]["mae"] > 0
