"""The GPU reproduction script (benchmarks/gpu/run.sh) run end to end on the CPU with tiny
settings, so that it cannot rot between the rare tasks that have a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_tiny(tmp_path, data_dir, stages=None) -> tuple[dict, Path]:
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OUT": str(out), "GPU_WORK": str(work), "PYTHON": sys.executable,
           "TSDIFF_DATA": str(data_dir)}
    env.pop("TSDIFF_WHEELS", None)
    # the budget only caps the run (stages that would start with under a minute left are left
    # out): generous, so a loaded CI machine runs every stage as a quiet one does
    cmd = [str(ROOT / "benchmarks" / "gpu" / "run.sh"), "--tiny", "--device", "cpu", "--budget-s", "1500"]
    if stages:
        cmd += ["--stages", *stages]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "run.log").read_text().strip()
    return summary["stages"], out


def _check_training_stage(st: dict) -> None:
    assert st["fit_exit"] == 0 and st["test_exit"] == 0, st
    assert st["fit"]["epochs"] == 1 and st["fit"]["global_steps"] == 2 and len(st["model_sha256"]) == 64
    assert st["ddpm50"]["n_windows"] == 2 and st["ddpm50"]["sample_device"] == "cpu"
    assert st["learning_curve"] and "val_loss" in st["learning_curve"][0]
    fast = st["fast"]
    assert fast["val_exit"] == fast["test_exit"] == 0 and fast["chosen_on_val"]["setting"] == "ddim2"
    assert fast["test"]["ddim2"]["nfe"] == 2


def test_gpu_script_runs_its_stages_tiny_on_the_cpu(tmp_path, data_dir):
    """Every stage but the PhysioNet training (the same code path as AQI-36's on other data,
    run by the integration test below), so the default suite stays within its time."""
    stages, out = _run_tiny(tmp_path, data_dir, ["env", "gpu_tests", "aqi36", "throughput", "profile"])
    assert set(stages) == {"env", "gpu_tests", "aqi36", "throughput", "profile"}
    assert stages["profile"]["exit"] == 0 and stages["profile"]["sample_paths_per_pass"] == 2
    assert stages["profile"]["sample_top"] and stages["profile"]["train_top"]
    # tests/test_gpu.py: 6 tests plus one per registered model
    from tsdiff.models import MODELS

    n_gpu_tests = 6 + len(MODELS)
    assert stages["gpu_tests"]["exit"] == 0 and f"{n_gpu_tests} tests collected" in stages["gpu_tests"]["result"]
    _check_training_stage(stages["aqi36"])
    tp = stages["throughput"]["aqi36_fp32"]
    assert tp["exit"] == 0 and tp["train"]["ratio"] > 0 and tp["sample"]["tsdiff"] > 0
    assert tp["fast_sample"]["unit"] == "window_samples_per_s"
    with tarfile.open(out / "gpu_run.tar.gz") as tar:
        names = tar.getnames()
    assert "gpu_run/summary.json" in names and any(n.endswith("/model.pt") for n in names)
    assert not any("/checkpoints" in n for n in names)


@pytest.mark.integration
def test_gpu_script_runs_every_stage_tiny_on_the_cpu(tmp_path, data_dir):
    stages, _ = _run_tiny(tmp_path, data_dir)
    assert set(stages) == {"env", "gpu_tests", "aqi36", "throughput", "profile", "physionet"}
    for key in ("aqi36", "physionet"):
        _check_training_stage(stages[key])


def test_gpu_script_plans_epochs_from_a_timing_run(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
    try:
        import reproduce
    finally:
        sys.path.pop(0)
    prior = {"stages": {"aqi36": {"seconds_per_epoch": 3.0}, "physionet": {"seconds_per_epoch": 2.0},
                        "throughput": {"aqi36_fp32": {"train": {"tsdiff": 100.0}},
                                       "aqi36_bf16": {"train": {"tsdiff": 130.0}}}}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(prior))

    class Args:
        plan_from, train_precision = path, "32-true"
        train_minutes = {"aqi36": 3.0, "physionet": 1.0}
        aqi_epochs = physio_epochs = 0

    args = Args()
    decided = reproduce.plan(args)
    assert args.aqi_epochs == int(180 * 0.92 // 3.0) and args.physio_epochs == int(60 * 0.92 // 2.0)
    assert args.train_precision == "bf16-mixed" and decided["bf16_over_fp32_train"] == 1.3
    prior["stages"]["throughput"]["aqi36_bf16"]["train"]["tsdiff"] = 110.0
    path.write_text(json.dumps(prior))
    args = Args()
    reproduce.plan(args)
    assert args.train_precision == "32-true"
