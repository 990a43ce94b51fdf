"""Device settings on a machine of any kind: the errors of settings that cannot be honoured, and
model files that asked for a GPU loading where there is none. (Training and sampling on CUDA:
tests/test_gpu.py, ``pytest -m gpu``.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import tsdiff.training.devices as devices
from tsdiff.errors import ConfigError
from tsdiff.training.devices import lightning_placement, resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(devices, "_cuda_count", lambda: 2)


def test_auto_and_cpu_resolve_to_the_cpu_without_cuda(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu", 2) == torch.device("cpu")  # CPU processes (DDP) sample on the CPU
    assert lightning_placement(torch.device("cpu")) == {"accelerator": "cpu", "devices": 1}


@pytest.mark.parametrize("acc", ["gpu", "cuda", "GPU", "cuda:0"])
def test_a_gpu_without_cuda_is_a_clear_error(no_cuda, acc):
    with pytest.raises(ConfigError, match="CUDA is not available.*accelerator='cpu' or 'auto'"):
        resolve_device(acc)


def test_gpu_indices_and_counts(two_gpus):
    assert resolve_device("gpu") == torch.device("cuda", 0)
    assert resolve_device("auto", 2) == torch.device("cuda", 0)
    assert resolve_device("gpu", [1]) == torch.device("cuda", 1)
    assert resolve_device("gpu", "1,") == torch.device("cuda", 1)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("gpu", -1) == torch.device("cuda", 0)
    assert lightning_placement(torch.device("cuda", 1)) == {"accelerator": "gpu", "devices": [1]}


@pytest.mark.parametrize("acc, devs, match", [
    ("gpu", 3, "devices=3 asks for more CUDA devices than this machine has \\(2\\)"),
    ("gpu", [0, 2], "device index 2, but this machine has 2"),
    ("cuda:5", 1, "device index 5"),
    ("gpu", 0, "devices must be >= 1"),
    ("gpu", True, "devices must be a count"),
    ("gpu", "two", "devices must be a count"),
    ("tpu", 1, "unknown accelerator 'tpu'; use one of auto, cpu, gpu, cuda"),
    ("cuda:x", 1, "not a device such as 'cuda:0'"),
    (3, 1, "accelerator must be one of"),
])
def test_settings_that_cannot_be_honoured(two_gpus, acc, devs, match):
    with pytest.raises(ConfigError, match=match):
        resolve_device(acc, devs)


def _frame(n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(size=(n, 2)), axis=0)
    values[rng.random(values.shape) < 0.1] = np.nan
    return pd.DataFrame(values, columns=["a", "b"], index=pd.date_range("2024-01-01", periods=n, freq="h"))


TINY = {"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8, "diffusion_embedding_dim": 8,
        "time_embedding_dim": 8, "feature_embedding_dim": 4}


def test_api_refuses_a_gpu_without_cuda_before_training(no_cuda, monkeypatch):
    import tsdiff.api as api

    monkeypatch.setattr(api.fitting, "_train", lambda *a, **k: pytest.fail("trained although the device is impossible"))
    with pytest.raises(ConfigError, match="CUDA is not available"):
        api.Imputer(device="gpu", model_options=TINY, max_steps=1).fit(_frame())
    with pytest.raises(ConfigError, match="CUDA is not available"):
        api.Forecaster(device="gpu", prediction_length=4, model_options=TINY, max_steps=1).fit(_frame())


@pytest.mark.parametrize("kind", ["Imputer", "Forecaster"])
def test_a_file_saved_for_the_gpu_loads_and_samples_on_a_machine_without_cuda(tmp_path, no_cuda, monkeypatch, kind):
    """A model trained on a GPU (its settings say device='gpu') must load on a CPU-only machine."""
    import tsdiff.api as api

    df = _frame()
    cls = getattr(api, kind)
    args = dict(model_options=TINY, max_steps=2, n_samples=2, sampling_steps=2, device="cpu", random_state=0)
    model = cls(**args, **({"prediction_length": 4} if kind == "Forecaster" else {})).fit(df)
    model.device = "gpu"  # as saved by a GPU run
    path = model.save(tmp_path / "m.pt")
    with pytest.warns(UserWarning, match="device='gpu'.*CUDA is not available here; it samples on the CPU"):
        loaded = cls.load(path)
    assert loaded.device == "cpu" and loaded.module_.device == torch.device("cpu")
    out = loaded.transform(df) if kind == "Imputer" else loaded.predict(df).samples
    assert np.isfinite(out).all()
    with pytest.raises(ConfigError, match="CUDA is not available"):
        cls.load(path, device="gpu")
    assert cls.load(path, device="cpu").device == "cpu"


def test_tsdiff_test_samples_where_the_config_says_and_refuses_an_impossible_gpu(tmp_path, data_dir, capsys,
                                                                                 monkeypatch):
    import json
    import os

    from tests.test_training import CLI_TINY
    from tsdiff.cli import main

    cfg = os.path.join(os.path.dirname(__file__), "..", "configs/imputation/csdi_aqi36.yaml")
    out = [f"output.dir={tmp_path}/run", f"output.records_dir={tmp_path}/records", f"data.data_dir={data_dir}"]
    assert main(["fit", cfg, *CLI_TINY, *out, "trainer.accelerator=cpu", "--test"]) == 0
    rec = json.loads(next((tmp_path / "records").glob("*.json")).read_text())
    assert rec["sample_device"] == "cpu"
    capsys.readouterr()
    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)
    for command in (["test", str(tmp_path / "run")], ["predict", str(tmp_path / "run"), "-o", str(tmp_path / "p.nc")]):
        assert main(command[:2] + ["trainer.accelerator=gpu"] + command[2:]) == 2
        err = capsys.readouterr().err
        assert "CUDA is not available" in err and "accelerator='cpu' or 'auto'" in err, err
    assert not (tmp_path / "p.nc").exists()
