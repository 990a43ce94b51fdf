"""Slow end-to-end runs (``make test-integration``): the demo job on the real data."""

import json
import os

import numpy as np
import pytest

from tsdiff.cli import main

pytestmark = pytest.mark.integration

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_demo_job_beats_simple_baselines(tmp_path, data_dir):
    """`make demo`'s config, end to end on all 82 test windows.

    A short CPU training must already beat the station-mean (MAE 54.0) and
    KNN / MICE (~30) baselines of this protocol; linear interpolation (14.7) is the bar
    a well-trained model clears.
    """
    cfg = os.path.join(ROOT, "configs/imputation/csdi_aqi36_demo.yaml")
    out = [f"output.dir={tmp_path}/run", f"output.records_dir={tmp_path}/records", f"data.data_dir={data_dir}",
           "trainer.enable_progress_bar=false"]
    assert main(["fit", cfg, *out, "--test"]) == 0
    (record,) = (tmp_path / "records").glob("*.json")
    rec = json.loads(record.read_text())
    m = rec["metrics"]
    assert m["n_targets"] == 20434
    assert all(np.isfinite(m[k]) for k in ("crps", "mae", "rmse"))
    assert m["mae"] < 30.0, m
    assert m["crps"] < 0.35, m
