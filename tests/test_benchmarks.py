"""Benchmark scripts run end to end on a tiny model (the real runs are recorded under benchmarks/)."""

import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch

from tsdiff.bench.records import eval_label, setting_label

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


def test_sampler_nfe_benchmark_writes_records_and_plot(tiny_model, tmp_path, monkeypatch, capsys):
    import hashlib

    out = tmp_path / "bench"
    argv = ["sampler_nfe.py", str(tiny_model), "--settings", "ddpm:4", "ddim:2", "heun:2",
            "dpm_solver_pp:2:spacing=log_snr", "--n-samples", "2", "--limit-windows", "2", "--out", str(out),
            "--no-progress"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"), run_name="__main__")
    assert done.value.code == 0
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert sorted((r["sampler"], r["nfe"]) for r in records) == [("ddim", 2), ("ddpm", 4), ("dpm_solver_pp", 2), ("heun", 3)]
    assert all(np.isfinite(r["metrics"]["crps"]) for r in records)
    sha = hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    for r in records:
        assert r["model_sha256"] == sha and r["n_windows"] == 2 and r["n_test_windows"] > 2
        assert r["subset"].startswith(f"first 2 of {r['n_test_windows']} test windows")
        assert 0 < r["sample_cpu_seconds"] and r["torch_threads"] >= 1
    dpm = [r for r in records if r["sampler"] == "dpm_solver_pp"][0]
    assert dpm["sampler_options"] == {"spacing": "log_snr"} and dpm["setting"] == "dpm_solver_pp2_spacing-log_snr"
    assert dpm["config"]["eval"]["sampler_options"] == {}  # the saved training config is not rewritten
    assert (out / "csdi_aqi36_dpm_solver_pp2_spacing-log_snr_s2_seed0.json").exists()
    from matplotlib.image import imread

    img = imread(out / "crps_vs_nfe.png")
    assert img.shape[0] > 100 and img[..., :3].std() > 0.05  # a drawn figure, not a blank canvas
    table = capsys.readouterr().out
    assert "| dpm_solver_pp2_spacing-log_snr | 2 |" in table and "| heun2 | 3 |" in table

    # --plot-only redraws from the records alone
    (out / "crps_vs_nfe.png").unlink()
    monkeypatch.setattr(sys, "argv", ["sampler_nfe.py", "--plot-only", "--out", str(out)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"), run_name="__main__")
    assert done.value.code == 0 and (out / "crps_vs_nfe.png").stat().st_size > 1000

    # the same two windows sampled as two shards, then merged: same targets, one record
    sharded = tmp_path / "sharded"
    for windows in ("0:1", "1:2"):
        monkeypatch.setattr(sys, "argv", ["sampler_nfe.py", str(tiny_model), "--settings", "ddim:2", "--n-samples",
                                          "2", "--windows", windows, "--out", str(sharded), "--no-progress"])
        with pytest.raises(SystemExit):
            runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"), run_name="__main__")
    assert len(list((sharded / "shards").glob("*.json"))) == 2 and not list(sharded.glob("*.json"))
    monkeypatch.setattr(sys, "argv", ["sampler_nfe.py", "--merge", "--out", str(sharded)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"), run_name="__main__")
    assert done.value.code == 0
    [merged] = [json.loads(p.read_text()) for p in sharded.glob("*.json")]
    direct = [r for r in records if r["sampler"] == "ddim"][0]
    assert merged["n_windows"] == 2 and merged["metrics"]["n_targets"] == direct["metrics"]["n_targets"]
    assert np.isfinite(merged["metrics"]["crps"]) and [s["windows"] for s in merged["shards"]] == [[0, 1], [1, 2]]


@pytest.mark.parametrize("text, want", [
    ("ddim:10", ("ddim", 10, {})),
    ("dpm_solver_pp:5:spacing=log_snr", ("dpm_solver_pp", 5, {"spacing": "log_snr"})),
    ("ddim:10:eta=0.5,spacing=quadratic", ("ddim", 10, {"eta": 0.5, "spacing": "quadratic"})),
])
def test_sampler_nfe_settings_parse(text, want):
    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"))
    assert mod["parse_setting"](text) == want


@pytest.mark.parametrize("text", ["ddim", "ddim:0", "ddim:x", "ddim:5:eta"])
def test_sampler_nfe_settings_reject_bad_text(text):
    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"))
    with pytest.raises(SystemExit, match="must look like"):
        mod["parse_setting"](text)


def test_sampler_nfe_merges_window_shards_exactly(tmp_path):
    # CRPS = mean_q(sum QL_q) / sum|y| per shard, so the merged value is the sum|y|-weighted mean.
    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"))
    out = tmp_path / "bench"
    (out / "shards").mkdir(parents=True)
    base = {"benchmark": "sampler_nfe", "config": {"name": "m"}, "setting": "ddpm50", "sampler": "ddpm", "steps": 50,
            "sampler_options": {}, "n_samples": 8, "seed": 42, "model_sha256": "ab", "nfe": 50, "n_test_windows": 10,
            "protocol": "p"}
    ql = [(6.0, 40.0, 10, 30.0, 500.0), (2.0, 10.0, 5, 5.0, 100.0)]  # (mean QL sum, abs err, n, sq err, sum|y|)
    for i, (q, ae, n, se, a) in enumerate(ql):
        rec = dict(base, metrics={"crps": q / a, "mae": ae / n, "rmse": (se / n) ** 0.5, "n_targets": n},
                   sample_seconds=10.0 + i, shard={"start": 2 * i, "stop": 2 * i + 2, "abs_target_sum": a})
        (out / "shards" / f"s{i}.json").write_text(json.dumps(rec))
    [path] = mod["merge_shards"](out)
    merged = json.loads(path.read_text())
    assert merged["metrics"]["crps"] == pytest.approx(8.0 / 600.0, rel=1e-12)
    assert merged["metrics"]["mae"] == pytest.approx(50.0 / 15, rel=1e-12)
    assert merged["metrics"]["rmse"] == pytest.approx((35.0 / 15) ** 0.5, rel=1e-12)
    assert merged["metrics"]["n_targets"] == 15 and merged["n_windows"] == 4 and merged["sample_seconds"] == 21.0
    assert "shard" not in merged and len(merged["shards"]) == 2 and merged["subset"].startswith("first 4 of 10")
    assert mod["load_records"](out) == [merged]
    # a gap between shards is refused
    bad = json.loads((out / "shards" / "s1.json").read_text())
    bad["shard"]["start"] = 3
    (out / "shards" / "s1.json").write_text(json.dumps(bad))
    with pytest.raises(SystemExit, match="do not tile windows from 0"):
        mod["merge_shards"](out)


def test_throughput_benchmark_times_both_libraries_and_the_fast_sampler(tmp_path, data_dir, monkeypatch, capsys):
    pytest.importorskip("pypots", reason="PyPOTS is an optional peer: pip install tsdiff[peers]")
    argv = ["throughput.py", "--config", os.path.join(ROOT, "configs/imputation/csdi_aqi36.yaml"), "--data-dir",
            str(data_dir), "--set", "model.layers=1", "model.channels=8", "model.heads=2",
            "process.num_steps=4", "--batch-size", "2", "--train-steps", "1", "--repeats", "1",
            "--sample-windows", "1", "--n-samples", "2", "--fast", "ddpm:2:spacing=log_snr", "--no-memory-pass",
            "--check-samples", "--out", str(tmp_path), "--stem", "tp"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(os.path.join(ROOT, "benchmarks/perf/throughput.py"), run_name="__main__")
    assert done.value.code == 0
    rec = json.loads((tmp_path / "tp.json").read_text())
    res = rec["metrics"]
    assert set(res) >= {"train", "sample", "fast_sample"} and res["sample_check"].startswith("tsdiff conditioning")
    for phase in ("train", "sample", "fast_sample"):
        r = res[phase]
        assert r["ratio_tsdiff_over_pypots"] > 0 and len(r["tsdiff"]["seconds"]) == len(r["pypots"]["seconds"]) == 1
    assert res["sample"]["work_items"] == res["fast_sample"]["work_items"] == 2
    assert rec["settings"]["fast_sampler"] == {"sampler": "ddpm", "steps": 2, "options": {"spacing": "log_snr"}}
    assert rec["settings"]["nfe"] == 4 and rec["parameters"]["tsdiff"] > 0


def test_throughput_fast_phase_needs_a_sampler_setting(capsys):
    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/perf/throughput.py"))
    with pytest.raises(SystemExit):
        mod["parse_args"](["--config", "c.yaml", "--phases", "fast_sample"])
    assert "phase fast_sample needs --fast SAMPLER:STEPS" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="must look like SAMPLER:STEPS"):
        mod["parse_args"](["--config", "c.yaml", "--fast", "ddpm"])
    args = mod["parse_args"](["--config", "c.yaml", "--phases", "sample", "--fast", "ddim:4:eta=0.5"])
    assert args.phases == ["sample", "fast_sample"] and args.fast_setting == ("ddim", 4, {"eta": 0.5})


def test_sampler_nfe_merge_recovers_every_metric_of_the_union():
    # Shards scored separately, then merged, must equal one accumulator over all windows,
    # for every metric the evaluation reports (coverage, PIT / QICE, energy score, ...).
    from tsdiff.metrics import MetricAccumulator

    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"))
    rng = np.random.default_rng(3)
    samples = rng.gamma(2.0, 3.0, size=(6, 7, 5, 4))  # [S, windows, L, K]
    target = rng.gamma(2.0, 3.0, size=(7, 5, 4))
    mask = rng.random((7, 5, 4)) < 0.4
    target[~mask & (rng.random((7, 5, 4)) < 0.5)] = np.nan  # missing ground truth off the mask
    whole = MetricAccumulator()
    whole.update(samples, target, mask)
    parts, sums, windows = [], [], []
    for lo, hi in ((0, 3), (3, 4), (4, 7)):
        acc = MetricAccumulator()
        acc.update(samples[:, lo:hi], target[lo:hi], mask[lo:hi])
        parts.append(acc.compute())
        sums.append(float(np.abs(target[lo:hi][mask[lo:hi]]).sum()))
        windows.append(hi - lo)
    merged, want = mod["merge_metrics"](parts, sums, windows), whole.compute()
    assert set(merged) == set(want) and len(want) >= 12
    for key, value in want.items():
        if isinstance(value, dict):
            assert merged[key].keys() == value.keys()
            assert list(merged[key].values()) == pytest.approx(list(value.values()), rel=1e-12)
        else:
            assert merged[key] == pytest.approx(value, rel=1e-12), key
    # a part without the extended metrics leaves them out of the merge instead of guessing
    plain = [{k: m[k] for k in ("crps", "mae", "rmse", "n_targets")} for m in parts[:1]] + parts[1:]
    assert set(mod["merge_metrics"](plain, sums, windows)) == {"crps", "mae", "rmse", "n_targets"}


def test_sampler_nfe_settings_parse_a_list_of_times():
    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"))
    name, steps, options = mod["parse_setting"]("ddpm:6:spacing=49/42/36/22/7/0")
    assert (name, steps, options) == ("ddpm", 6, {"spacing": [49, 42, 36, 22, 7, 0]})
    assert setting_label(name, steps, options) == "ddpm6_spacing-49-42-36-22-7-0"


def test_record_labels_tell_every_sample_changing_setting_apart():
    from tsdiff.config import DEFAULTS

    assert setting_label("ddpm", 5, {"variance": "analytic", "eps_sq_norm": [0.5] * 50, "spacing": [42, 36, 0]}) \
        == "ddpm5_spacing-42-36-0_variance-analytic"
    assert setting_label("ddim", "", {"eta": 0.5, "spacing": "a b/c"}) == "ddim_eta-0.5_spacing-a-b-c"
    ev = dict(DEFAULTS["eval"])
    assert eval_label(ev) == "ddpm"  # the default settings keep the plain name of earlier records
    ev.update(sampler="ddpm", steps=8, sampler_options={"spacing": "log_snr"}, eta=None, conditioning="inpainting",
              conditioning_options={"resample": 2}, precision="bf16-mixed", chunk_size=16, limit_windows=4)
    assert eval_label(ev) == "ddpm8_spacing-log_snr_inpainting_resample-2_bf16_chunk16_w4"
    labels = {eval_label({**DEFAULTS["eval"], key: value}) for key, value in
              [("steps", 10), ("eta", 0.5), ("sampler_options", {"spacing": "log_snr"}), ("conditioning", "guidance"),
               ("precision", "bf16-mixed"), ("chunk_size", 8), ("limit_windows", 3), ("sampler", "ddim")]}
    assert len(labels) == 8 and "ddpm" not in labels


def test_tune_times_search_finds_the_minimum_of_a_separable_objective():
    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/tune_times.py"))
    assert mod["neighbours"]((49, 40, 39), 2) == [(49, 42, 39), (49, 40, 37)]  # 38 and 41 would collide
    # every neighbour keeps the first time, is strictly decreasing and >= 0
    for c in mod["neighbours"]((49, 40, 20, 1), 4):
        assert c[0] == 49 and all(a > b for a, b in zip(c, c[1:])) and c[-1] >= 0
    assert sorted(mod["neighbours"]((49, 40, 20, 1), 4)) == [(49, 36, 20, 1), (49, 40, 16, 1), (49, 40, 20, 5),
                                                             (49, 40, 24, 1), (49, 44, 20, 1)]
    target = (49, 31, 12, 3)
    calls = []

    def evaluate_many(cands):
        calls.append(len(cands))
        return [float(sum((a - b) ** 2 for a, b in zip(c, target))) for c in cands]

    best, value, log = mod["search"]((49, 40, 20, 0), [4, 2, 1], evaluate_many)
    assert best == target and value == 0.0
    assert log[0] == {"times": [49, 40, 20, 0], "crps": 154.0}
    assert len({tuple(e["times"]) for e in log}) == len(log)  # no schedule scored twice
    # with a free first time the search also moves the start down, never above first_max
    assert sorted(mod["neighbours"]((49, 40, 1), 4, first_max=49)) == [(45, 40, 1), (49, 36, 1), (49, 40, 5),
                                                                       (49, 44, 1)]
    assert (53, 40, 1) not in mod["neighbours"]((49, 40, 1), 4, first_max=52)
    assert (51, 40, 1) in mod["neighbours"]((49, 40, 1), 2, first_max=52)
    best, value, _ = mod["search"]((49, 40, 20, 0), [4, 2, 1], evaluate_many, first_max=49)
    assert best == (49, 31, 12, 3) and value == 0.0
    target = (42, 31, 12, 3)
    best, value, log = mod["search"]((49, 40, 20, 0), [4, 2, 1], evaluate_many, first_max=49)
    assert best == target and value == 0.0
    assert all(e["times"][0] <= 49 for e in log)


def test_tune_times_end_to_end_record_is_reproducible(tiny_model, tmp_path, monkeypatch, capsys):
    from tsdiff.data import build_protocol
    from tsdiff.training.checkpoint import load_model
    from tsdiff.training.evaluate import evaluate

    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/tune_times.py"))
    out = tmp_path / "tuned"
    mod["main"]([str(tiny_model), "--steps", "3", "--windows", "0:2", "--n-samples", "2", "--deltas", "8",
                 "--out", str(out)])
    [path] = out.glob("tune_times_ddpm3.json")
    rec = json.loads(path.read_text())
    start, best = rec["start_times"], rec["best_times"]
    assert start == [49, 23, 0] and len(best) == 3 and best[0] == 49 and rec["nfe"] == 3
    assert rec["best_crps"] <= rec["start_crps"] == rec["evaluations"][0]["crps"]
    assert rec["metrics"]["crps"] == rec["best_crps"] == min(e["crps"] for e in rec["evaluations"])
    # the best schedule scores the same again through the library's own evaluation
    module, _ = load_model(tiny_model)
    assert rec["free_first"] is False
    abar = float(module.process.marginal_coefficients(torch.tensor([best[0]]))[0][0]) ** 2
    assert 0 < rec["prior_signal_fraction"] == pytest.approx(abar, rel=1e-9)
    cfg = module.hparams["config"]
    protocol = build_protocol(cfg["data"]["dataset"], cfg["data"]["data_dir"], cfg["data"]["options"])
    slice_ = runpy.run_path(os.path.join(ROOT, "benchmarks/sampler_nfe.py"))["WindowSlice"](protocol, 0, 2)
    again = evaluate(module, slice_, "val", n_samples=2, sampler_options={"spacing": best}, seed=42, progress=False)
    assert again["metrics"]["crps"] == rec["best_crps"]
    for bad, match in ((["--split", "test"], "tune on val"), (["--windows", "0:100000"], "runs past"),
                       (["--start", "40/20/0"], "--free-first"), (["--start", "49/20/20"], "strictly decreasing"),
                       (["--n-samples", "1"], "must be >= 2"), (["--start", "49/2.5/0"], "--start must be whole"),
                       (["--deltas", "4,x"], "--deltas must be whole"), (["--deltas", "4,0"], ">= 1")):
        with pytest.raises((SystemExit, Exception), match=match):
            mod["main"]([str(tiny_model), "--steps", "3", "--out", str(out), *bad])


def test_attention_kernels_benchmark_variants_agree_with_the_fused_kernel(tmp_path, capsys):
    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/perf/attention_kernels.py"))
    assert mod["main"](["--shapes", "small:6:12", "odd:3:7", "--heads", "2", "--head-width", "4", "--repeats", "1",
                        "--threads", "1", "--out", str(tmp_path), "--stem", "ak"]) == 0
    rec = json.loads((tmp_path / "ak.json").read_text())
    rows = rec["metrics"]["rows"]
    assert [(r["shape"], r["sequences"], r["length"]) for r in rows] == [("small", 6, 12), ("odd", 3, 7)]
    for r in rows:
        assert r["sdpa_float32_max_abs_error"] == 0.0
        assert r["explicit_float32_max_abs_error"] < 1e-5 and r["explicit_noshift_float32_max_abs_error"] < 1e-5
        assert 0 < r["sdpa_bfloat16_max_abs_error"] < 0.1  # bf16 rounds, but computes the same thing
        assert all(r[f"{k}_ms"] > 0 for k in ("sdpa_float32", "explicit_noshift_float32", "qkv_linear_bfloat16"))
    # chunking: sequences split across several chunks give the same result
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 5, 2, 9, 4).unbind(0)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    for fn in (mod["explicit"], mod["explicit_noshift"]):
        torch.testing.assert_close(fn(q, k, v, chunk_elems=2 * 81), ref, atol=1e-5, rtol=1e-5)
    # the shift-free form refuses scores it cannot exponentiate safely instead of returning inf / nan
    with pytest.raises(FloatingPointError, match="too large"):
        mod["explicit_noshift"](q * 100, k * 100, v)
    for bad, msg in ((["--shapes", "x:1"], "NAME:SEQUENCES:LENGTH"), (["--shapes", "x:0:4"], "at least 1"),
                     (["--repeats", "0"], "--repeats must be at least 1")):
        with pytest.raises(SystemExit):
            mod["main"](bad + ["--out", str(tmp_path)])
        assert msg in capsys.readouterr().err


def test_s4_throughput_benchmark_times_three_equal_convolutions(tmp_path):
    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/perf/s4_throughput.py"))
    assert mod["main"](["--lengths", "8", "20", "--channels", "4", "--state-size", "4", "--batch-size", "2",
                        "--repeats", "1", "--calls", "1", "--threads", "1", "--out", str(tmp_path), "--stem", "s4"]) == 0
    rows = json.loads((tmp_path / "s4.json").read_text())["metrics"]["rows"]
    assert [r["L"] for r in rows] == [8, 20]
    for r in rows:
        assert all(r[f"{m}_{w}_seconds"] > 0 for m in ("train", "sample") for w in ("tsdiff", "naive", "fft_only"))


def test_scaling_length_benchmark_measures_and_stops_families(tmp_path):
    mod = runpy.run_path(os.path.join(ROOT, "benchmarks/perf/scaling_length.py"))
    argv = ["--families", "sssd", "--lengths", "8", "16", "--features", "2", "--layers", "1", "--channels", "8",
            "--state-size", "4", "--repeats", "1", "--threads", "1", "--out", str(tmp_path)]
    assert mod["main"](argv + ["--stem", "stop", "--max-seconds", "1e-9"]) == 0  # every step is beyond the bound
    res = json.loads((tmp_path / "stop.json").read_text())["metrics"]
    assert [r["L"] for r in res["rows"]] == [8] and res["stopped"]["sssd"].startswith("after L=8")
    import argparse

    for fam in ("sssd", "csdi_linear"):  # one measurement in this process (what each child runs)
        row = mod["child"](argparse.Namespace(family=fam, length="12", features=2, batch_size=2, layers=1, channels=8,
                                              state_size=4, repeats=1, threads=1))
        assert row["L"] == 12 and row["train_step_seconds"] > 0 and row["parameters"] > 0
    assert mod["_predict"]([{"L": 10, "x": 1.0}, {"L": 20, "x": 8.0}], 40, "x") == pytest.approx(32.0)  # capped at L^2
