"""Benchmark scripts run end to end on a tiny model (the real runs are recorded under benchmarks/)."""

import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture()
def tiny_model(tmp_path, data_dir):
    from tsdiff.cli import main

    cfg = os.path.join(ROOT, "configs/imputation/csdi_aqi36.yaml")
    args = ["model.layers=1", "model.channels=16", "model.heads=2", "model.ff_dim=16", "trainer.max_epochs=1",
            "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
            f"output.dir={tmp_path}/run", f"data.data_dir={data_dir}"]
    assert main(["fit", cfg, *args]) == 0
    return tmp_path / "run" / "model.pt"


def test_sampler_nfe_benchmark_writes_records_and_plot(tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "bench"
    argv = ["sampler_nfe.py", str(tiny_model), "--settings", "ddpm:4", "ddim:2", "heun:2", "dpm_solver_pp:2",
            "--n-samples", "2", "--limit-windows", "2", "--out", str(out), "--no-progress"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"), run_name="__main__")
    assert done.value.code == 0
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert sorted((r["sampler"], r["nfe"]) for r in records) == [("ddim", 2), ("ddpm", 4), ("dpm_solver_pp", 2), ("heun", 3)]
    assert all(np.isfinite(r["metrics"]["crps"]) for r in records)
    from matplotlib.image import imread

    img = imread(out / "crps_vs_nfe.png")
    assert img.shape[0] > 100 and img[..., :3].std() > 0.05  # a drawn figure, not a blank canvas
