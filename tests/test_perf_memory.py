"""Sampling memory is bounded by the chunk size, not by the number of windows.

The fast test counts the rows of every network pass during a real evaluation (exact);
the integration test measures peak RSS of 100-sample evaluations of PhysioNet's test
set in fresh processes (benchmarks/perf/sampling_memory.py)."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _tiny_module(protocol):
    from tsdiff.config import load_config
    from tsdiff.training.module import DiffusionModule

    cfg = load_config(str(ROOT / "configs/imputation/csdi_aqi36.yaml"),
                      ["model.layers=1", "model.channels=8", "model.heads=2", "model.ff_dim=8",
                       "model.diffusion_embedding_dim=8", "model.time_embedding_dim=8", "model.feature_embedding_dim=4"])
    torch.manual_seed(0)
    return DiffusionModule(cfg["model"], cfg["process"], cfg["optim"], "mix", protocol.signature,
                           protocol.scaler.state_dict(), cfg)


@pytest.mark.parametrize("windows", [2, 4])
def test_every_network_pass_holds_at_most_chunk_size_paths(aqi36, windows):
    from tsdiff.training.evaluate import evaluate

    module = _tiny_module(aqi36)
    sizes = []
    forward = module.net.forward

    def spy(x, t, cond):
        sizes.append(x.shape[0])
        return forward(x, t, cond)

    module.net.forward = spy
    res = evaluate(module, aqi36, "test", n_samples=100, sampler="ddim", steps=1, batch_size=2, chunk_size=64,
                   seed=0, limit_windows=windows, progress=False)
    # each loader batch of 2 windows holds 200 (window, sample) pairs: passes of 64, 64, 64, 8
    assert sizes == [64, 64, 64, 8] * (windows // 2)
    assert res["n_windows"] == windows and math.isfinite(res["metrics"]["crps"])


def _memory_script():
    spec = importlib.util.spec_from_file_location("sampling_memory", ROOT / "benchmarks/perf/sampling_memory.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.integration
def test_peak_memory_of_physionet_sampling_grows_with_chunk_size_not_with_windows(data_dir, monkeypatch):
    # glibc's adaptive mmap threshold keeps freed buffers of a few MB in the heap, so the peak of
    # a longer loop drifts by tens of MB without anything being held (in one process, the tensor
    # count and RSS after 16, 64 and 256 windows stay the same); a fixed threshold hands buffers
    # above 64 KB back at once, so the peak measures what the loop holds at a time
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    mod = _memory_script()
    args = mod.main.__globals__["argparse"].Namespace(
        config=str(ROOT / "configs/imputation/csdi_physionet.yaml"), set=mod.SMALL, data_dir=str(data_dir),
        threads=1, sampler="ddim", steps=1, n_samples=100, batch_size=16)
    small = mod.run_setting(args, 16, 32)
    many = mod.run_setting(args, 64, 32)
    big_chunk = mod.run_setting(args, 16, 1024)
    MiB = 2**20
    assert many["windows"] == 64 and many["test_windows"] == 800
    # 4x the windows: the peak stays within a few MiB (allocator noise), far below what 4x would need
    assert many["peak_rss_growth_bytes"] <= small["peak_rss_growth_bytes"] + 16 * MiB, (small, many)
    # 32x the chunk: the peak grows by far more than that noise (passes of 1024 and 576 paths instead of 32)
    assert big_chunk["peak_rss_growth_bytes"] >= small["peak_rss_growth_bytes"] + 64 * MiB, (small, big_chunk)
