"""Training and sampling on CUDA (``pytest -m gpu`` on a machine with an NVIDIA GPU).

Deselected by default. Asked for on a machine without CUDA they fail (they never skip):
a GPU run that silently tested the CPU would prove nothing. ``benchmarks/gpu/run.sh``
runs them first.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from tests.test_properties import make_module, registered_models
from tests.test_training import CLI_TINY, OPTIM, PROCESS, SMALL_MODEL
from tsdiff.training import DiffusionModule

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def cuda():
    if not torch.cuda.is_available():
        pytest.fail("pytest -m gpu needs a CUDA device and torch.cuda.is_available() is False here")
    # exact CPU / GPU comparisons: no TF32 in float32 matrix products
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield torch.device("cuda", 0)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _trained(aqi36, steps: int = 30) -> DiffusionModule:
    """A small CSDI trained a few steps on real AQI-36 windows (on the CPU)."""
    torch.manual_seed(0)
    module = DiffusionModule(model=SMALL_MODEL, process=PROCESS, optim=OPTIM, train_mask="mix",
                             signature=aqi36.signature, scaler=aqi36.scaler.state_dict(), config={"seed": 0})
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    loader = DataLoader(Subset(aqi36.dataset("train"), range(0, 3200, 10)), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    for _, batch in zip(range(steps), loader):
        opt.zero_grad()
        module.diffusion_loss(batch).backward()
        opt.step()
    return module.eval()


def _test_windows(aqi36, n: int = 2):
    batch = next(iter(DataLoader(Subset(aqi36.dataset("test"), range(n)), batch_size=n)))
    return batch["x"], batch["cond_mask"], batch["timepoints"]


def _copy(module: DiffusionModule, device) -> DiffusionModule:
    clone = DiffusionModule(**module.hparams)
    clone.load_state_dict(module.state_dict())
    return clone.to(device).eval()


def test_deterministic_sampling_on_cuda_equals_the_cpu(aqi36, cuda, monkeypatch):
    """DDIM with eta=0 from the same starting noise: the GPU's samples equal the CPU's up to
    float32 rounding, and come from the GPU."""
    cpu_module = _trained(aqi36)
    gpu_module = _copy(cpu_module, cuda)
    x, cm, tp = _test_windows(aqi36)
    start = torch.randn((2 * 4,) + tuple(x.shape[1:]), generator=torch.Generator().manual_seed(5))
    outs = {}
    for module, dev in ((cpu_module, torch.device("cpu")), (gpu_module, cuda)):
        monkeypatch.setattr(module.process, "prior_sample",
                            lambda shape, generator=None, device=None, dtype=None: start.to(device, dtype))
        samples, nfe = module.sample(x.to(dev), cm.to(dev), tp.to(dev), n_samples=4, sampler="ddim", steps=10,
                                     generator=torch.Generator(device=dev).manual_seed(0))
        assert samples.device.type == dev.type and nfe == 10
        outs[dev.type] = samples.cpu()
    assert torch.equal(outs["cuda"][:, cm], outs["cpu"][:, cm])  # observed values exact on both
    torch.testing.assert_close(outs["cuda"], outs["cpu"], atol=2e-4, rtol=1e-4)


def test_ancestral_sampling_on_cuda_matches_the_cpu_in_distribution(aqi36, cuda):
    """50-step DDPM: per-entry means and spreads of 400 draws agree between devices within
    sampling error (different noise streams, same model)."""
    cpu_module = _trained(aqi36)
    gpu_module = _copy(cpu_module, cuda)
    x, cm, tp = _test_windows(aqi36, 1)
    draws = {}
    for module, dev in ((cpu_module, torch.device("cpu")), (gpu_module, cuda)):
        s, _ = module.sample(x.to(dev), cm.to(dev), tp.to(dev), n_samples=400, sampler="ddpm",
                             generator=torch.Generator(device=dev).manual_seed(1), chunk_size=400)
        draws[dev.type] = s[:, ~cm].double().cpu()  # [400, targets]
    a, b = draws["cpu"], draws["cuda"]
    se = torch.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
    z = ((a.mean(0) - b.mean(0)) / se).abs()
    assert float(z.mean()) < 1.2 and float((z > 4).float().mean()) < 0.01  # |z| ~ half-normal, mean 0.8
    ratio = b.std(0).mean() / a.std(0).mean()
    assert 0.95 < float(ratio) < 1.05


def test_forecaster_and_imputer_train_and_sample_on_cuda(data_dir, cuda, record_calls, tmp_path):
    import pandas as pd

    import tsdiff
    frame = pd.read_csv(data_dir / "exchange_rate" / "exchange_rate.txt.gz", header=None).iloc[:400, :3]
    frame.index = pd.bdate_range("1990-01-01", periods=len(frame))
    calls = record_calls(DiffusionModule, "sample")
    fc = tsdiff.Forecaster(prediction_length=8, max_steps=20, n_samples=8, device="gpu", verbose=False)
    fc.fit(frame)
    assert next(fc.module_.parameters()).device.type == "cuda"
    forecast = fc.predict()
    assert forecast.samples.shape[:2] == (8, 8) and np.isfinite(forecast.samples).all()
    holes = frame.copy()
    holes.iloc[50:60, 0] = np.nan
    holes.iloc[::7, 1] = np.nan
    imp = tsdiff.Imputer(window=24, max_steps=20, device="gpu").fit(holes)
    assert next(imp.module_.parameters()).device.type == "cuda"
    filled = imp.transform(holes)
    observed = ~np.isnan(holes.to_numpy())
    assert np.array_equal(filled[observed], holes.to_numpy()[observed]) and np.isfinite(filled).all()
    assert len(calls) >= 2
    # a model trained on the GPU loads and samples on the CPU
    path = fc.save(tmp_path / "fc.pt")
    on_cpu = tsdiff.Forecaster.load(path, device="cpu")
    assert next(on_cpu.module_.parameters()).device.type == "cpu"
    assert np.isfinite(on_cpu.predict(frame).samples).all()


def test_sample_inputs_are_on_cuda(aqi36, cuda, monkeypatch):
    """Every network call of a sampling pass runs on the GPU."""
    module = _copy(_trained(aqi36, steps=2), cuda)
    seen = []
    forward = module.net.forward

    def spy(x_t, level, cond):
        seen.append((x_t.device.type, cond.values.device.type))
        return forward(x_t, level, cond)

    monkeypatch.setattr(module.net, "forward", spy)
    x, cm, tp = _test_windows(aqi36)
    module.sample(x.to(cuda), cm.to(cuda), tp.to(cuda), n_samples=2, sampler="ddpm", steps=5,
                  generator=torch.Generator(device=cuda).manual_seed(0))
    assert seen and set(seen) == {("cuda", "cuda")}


def test_trainer_predict_samples_on_cuda_and_leaves_the_module_there(aqi36, cuda):
    """predict_batches (Trainer.predict) moves CPU batches to the module's GPU, samples there,
    hands the writer CUDA samples, and leaves the module on the GPU (Lightning's teardown moves
    it to the CPU)."""
    from tsdiff.training.prediction import predict_batches

    module = _copy(_trained(aqi36, steps=2), cuda)
    loader = DataLoader(Subset(aqi36.dataset("test"), range(3)), batch_size=2)
    seen = []
    predict_batches(module, loader, lambda s, b: seen.append((s.device.type, b["x"].device.type, s.shape[1])),
                    settings={"n_samples": 2, "sampler": "ddim", "steps": 3}, seed=0)
    assert seen == [("cuda", "cuda", 2), ("cuda", "cuda", 1)]
    assert next(module.parameters()).device == cuda


def test_tsdiff_fit_and_test_train_and_sample_on_cuda(tmp_path, data_dir, cuda):
    from tsdiff.cli import main

    cfg = os.path.join(os.path.dirname(__file__), "..", "configs/imputation/csdi_aqi36.yaml")
    out = [f"output.dir={tmp_path}/run", f"output.records_dir={tmp_path}/records", f"data.data_dir={data_dir}"]
    assert main(["fit", cfg, *CLI_TINY, *out, "trainer.accelerator=gpu", "--test"]) == 0
    rec = json.loads(next((tmp_path / "records").glob("*.json")).read_text())
    assert rec["sample_device"] == "cuda:0" and rec["hardware"]["cuda"] and rec["hardware"]["gpu"]
    assert all(np.isfinite(rec["metrics"][k]) for k in ("crps", "mae"))
    # sampled on the CPU when asked to be
    assert main(["test", str(tmp_path / "run"), "trainer.accelerator=cpu", "output.records_dir=" +
                 str(tmp_path / "cpu"), "--no-progress"]) == 0
    assert json.loads(next((tmp_path / "cpu").glob("*.json")).read_text())["sample_device"] == "cpu"


@pytest.mark.parametrize("name", registered_models())
def test_bf16_autocast_training_and_sampling_on_cuda(name, cuda):
    from tests.test_numerics import _batch

    batch, L_, N, C = _batch(name, "90%")
    batch = {k: v.to(cuda) for k, v in batch.items()}
    module = make_module(name, N, C, L_, seed=2).to(cuda)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    for step in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = module.diffusion_loss(batch, generator=torch.Generator(device=cuda).manual_seed(step))
        assert torch.isfinite(loss) and loss.device.type == "cuda"
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)
        opt.step()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        samples, _ = module.sample(batch["x"], batch.get("cond_mask", batch["observed_mask"]), batch["timepoints"],
                                   n_samples=2, sampler="ddim", steps=2,
                                   generator=torch.Generator(device=cuda).manual_seed(0))
    assert samples.device.type == "cuda" and torch.isfinite(samples).all()
