"""Benchmark harness: suite validation, baselines on the protocol's own windows, resumable
runs (including a killed and restarted `tsdiff bench run`), and the leaderboard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tsdiff.bench.baselines import BASELINES, Predictor
from tsdiff.bench.report import group_records, load_records, render_leaderboard
from tsdiff.bench.runner import evaluate_predictor, record_is_valid, run_suite
from tsdiff.bench.suite import load_suite, parse_suite
from tsdiff.cli import main
from tsdiff.data.protocol import build_protocol
from tsdiff.errors import ConfigError, DataError, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def aqi(data_dir):
    return build_protocol("aqi36", data_dir)


@pytest.fixture(scope="module")
def exchange(data_dir):
    return build_protocol("exchange_rate", data_dir)


def _suite(**changes) -> dict:
    raw = {
        "name": "t",
        "seeds": [0, 1],
        "metrics": ["crps", "mae"],
        "tasks": {"aqi": {"dataset": "aqi36", "limit_windows": 3},
                  "fx": {"dataset": "exchange_rate", "limit_windows": 2}},
        "entries": [{"baseline": "mean", "tasks": ["aqi", "fx"]},
                    {"baseline": "linear_interpolation", "tasks": ["aqi"]},
                    {"baseline": "climatology", "tasks": ["fx"], "options": {"season_length": 5}}],
    }
    raw.update(changes)
    return raw


# ---------------------------------------------------------------- suite validation

def test_suite_grid_and_shipped_suites_validate():
    suite = parse_suite(_suite())
    # deterministic baselines run once, whatever the seeds
    assert [r.run_id for r in suite.runs()] == ["t/aqi/mean/seed0", "t/fx/mean/seed0", "t/aqi/linear_interpolation/seed0",
                                                "t/fx/climatology/seed0"]
    knn = parse_suite(_suite(entries=[{"baseline": "knn", "tasks": ["aqi"]}]))
    assert [r.seed for r in knn.runs()] == [0, 1]
    for name in ("smoke", "cpu", "paper"):
        s = load_suite(ROOT / "benchmarks" / "suites" / f"{name}.yaml")
        assert s.name == name and s.runs()


@pytest.mark.parametrize("change, error, match", [
    ({"entries": [{"baseline": "magic"}]}, UnknownNameError, "unknown baseline 'magic'; valid baseline names are: .*knn"),
    ({"tasks": {"a": {"dataset": "nope"}}}, UnknownNameError, "unknown dataset 'nope'; valid dataset names are: .*aqi36"),
    ({"metrics": ["crps", "accuracy"]}, UnknownNameError, "unknown metric 'accuracy'; valid metrics are: crps, crps_sum"),
    ({"entries": [{"baseline": "mean", "tasks": ["zzz"]}]}, UnknownNameError, "unknown task 'zzz'; tasks of this suite are: aqi, fx"),
    ({"entries": [{"model": str(ROOT / "configs/imputation/csdi_aqi36_demo.yaml"), "overrides": ["model.name=unet9"]}]},
     UnknownNameError, "unknown model 'unet9'; valid model names are: .*csdi"),
    ({"entries": [{"baseline": "persistence", "tasks": ["aqi"]}]}, ConfigError, "applies to forecasting tasks, but task 'aqi'"),
    ({"entries": [{"baseline": "knn", "options": {"k": 3}}]}, ConfigError, "unknown option.*n_neighbors"),
    ({"entry": []}, ConfigError, "unknown key\\(s\\) 'entry' \\(did you mean 'entries'\\?\\)"),
    ({"tasks": {"a": {"dataset": "aqi36", "options": {"windw": 3}}}}, ConfigError, "windw"),
])
def test_suite_validation_errors(change, error, match):
    with pytest.raises(error, match=match):
        parse_suite(_suite(**change))


def test_optional_model_entries_are_skipped_not_errors(tmp_path, data_dir):
    raw = _suite(entries=[{"name": "future", "model": "configs/forecasting/not_written_yet.yaml", "optional": True},
                          {"name": "future2", "model": str(ROOT / "configs/imputation/csdi_aqi36_demo.yaml"),
                           "overrides": ["model.name=graph_unet_v9"], "optional": True, "tasks": ["aqi"]}])
    suite = parse_suite(raw)
    logs = []
    summary = run_suite(suite, tmp_path, data_dir=data_dir, log=logs.append)
    assert summary["done"] == [] and len(summary["optional_skipped"]) == 2 * 2 + 2
    assert any("does not exist yet" in line for line in logs)
    assert any("'graph_unet_v9' is not registered" in line for line in logs)


# ---------------------------------------------------------------- baselines on the protocol's windows

def test_predictors_see_only_conditioning_values(aqi, exchange):
    seen = {}

    def spy(values, cond_mask, starts):
        seen.setdefault("n", 0)
        seen["n"] += 1
        assert np.array_equal(~np.isnan(values), cond_mask)  # nothing else is visible
        return np.zeros((1,) + values.shape)

    for protocol in (aqi, exchange):
        res = evaluate_predictor(Predictor(spy), protocol, limit_windows=20)
        ds = protocol.dataset("test")
        n = sum(int(ds[i]["score_mask"].sum()) for i in range(min(20, len(ds))))
        assert res["metrics"]["n_targets"] == n
    assert seen["n"] >= 3


def test_oracle_scores_zero(aqi):
    def oracle_for(protocol):
        full = np.nan_to_num(protocol.series.values)  # NaN only where there is no target

        def predict(values, cond_mask, starts):
            return np.stack([full[s : s + protocol.window] for s in starts])[None]
        return Predictor(predict)

    m = evaluate_predictor(oracle_for(aqi), aqi, limit_windows=10)["metrics"]
    assert m["crps"] == 0.0 and m["mae"] == 0.0 and m["energy_score"] == 0.0


def test_cheap_baselines_on_real_aqi36_match_published_ranges(aqi):
    """Protocol 1 sanity (GRIN's table: station mean ~53.5, linear ~14.5, KNN ~30.2, MICE ~30.4 MAE)."""
    out = {}
    for name in ("mean", "linear_interpolation"):
        pred = BASELINES.get(name).factory(aqi, seed=0)
        out[name] = evaluate_predictor(pred, aqi)["metrics"]
    assert out["mean"]["mae"] == pytest.approx(54.0069, abs=1e-3)
    assert out["linear_interpolation"]["mae"] == pytest.approx(15.3376, abs=1e-3)
    assert out["mean"]["n_targets"] == out["linear_interpolation"]["n_targets"] == 20434
    # point forecasts: CRPS = MRE and ensemble CRPS = MAE (documented)
    for m in out.values():
        assert m["crps"] == pytest.approx(m["mre"], rel=1e-12)
        assert m["ensemble_crps"] == pytest.approx(m["mae"], rel=1e-12)


def test_forecasting_baselines(exchange):
    persistence = evaluate_predictor(BASELINES.get("persistence").factory(exchange, seed=0), exchange)["metrics"]
    naive = evaluate_predictor(BASELINES.get("seasonal_naive").factory(exchange, seed=0), exchange)["metrics"]
    # GluonTS' seasonal naive with season 1 is persistence (GluonTS works in float32)
    assert naive["crps"] == pytest.approx(persistence["crps"], rel=1e-6)
    assert persistence["crps_sum"] > 0
    clim = BASELINES.get("climatology").factory(exchange, seed=0, season_length=5, max_samples=50)
    assert clim.n_samples == 50
    m = evaluate_predictor(clim, exchange)["metrics"]
    assert 0 < m["coverage_90"] <= 1 and m["crps"] < m["mre"]  # a spread ensemble beats its own median


# ---------------------------------------------------------------- runs, resumability, report

def _write_suite(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_reduced_smoke_suite_runs_resumes_and_reports(tmp_path, data_dir, capsys):
    """The default-suite version of benchmarks/suites/smoke.yaml: a few windows, cheap entries, a tiny CSDI."""
    smoke = yaml.safe_load((ROOT / "benchmarks/suites/smoke.yaml").read_text())
    csdi = next(e for e in smoke["entries"] if e.get("name") == "csdi_tiny")
    csdi["model"] = str(ROOT / csdi["model"])
    csdi["overrides"] = csdi["overrides"] + ["trainer.max_steps=3", "trainer.limit_val_batches=1"]
    raw = _suite(name="smoke_reduced", entries=_suite()["entries"] + [dict(csdi, tasks=["aqi"], n_samples=2, steps=2)])
    path = _write_suite(tmp_path, raw)
    out, runs = tmp_path / "records", tmp_path / "runs"
    args = ["bench", "run", str(path), "--out", str(out), "--data-dir", str(data_dir), "--runs-dir", str(runs)]
    assert main(args) == 0
    recs = sorted(out.rglob("*.json"))
    assert len(recs) == 5
    rec = json.loads((out / "aqi" / "csdi_tiny__seed0.json").read_text())
    assert rec["protocol"] == "aqi36-csdi@first3of82windows" and rec["sampler"] == "ddpm" and rec["nfe"] == 2
    assert rec["bench"]["kind"] == "model" and rec["peak_memory"]["peak_rss_mb"] > 0
    base = json.loads((out / "fx" / "climatology__seed0.json").read_text())
    for key in ("protocol", "dataset_checksums", "packages", "git_commit", "hardware", "peak_memory", "seed"):
        assert base[key] is not None
    assert base["dataset_checksums"] and base["packages"]["gluonts"]
    mtimes = {p: p.stat().st_mtime_ns for p in recs}
    capsys.readouterr()
    assert main(args) == 0  # everything done: nothing is redone
    assert "done 0, already done 5" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in recs} == mtimes
    # a corrupt record is not "done": it is redone
    (out / "aqi" / "mean__seed0.json").write_text('{"bench": ')
    assert main(args) == 0
    assert record_is_valid(out / "aqi" / "mean__seed0.json", parse_suite(raw).runs()[0])

    board = tmp_path / "LEADERBOARD.md"
    assert main(["bench", "report", "--records", str(out), "--out", str(board)]) == 0
    text = board.read_text()
    assert "## smoke_reduced / aqi" in text and "`aqi36-csdi@first3of82windows`" in text
    assert "ddpm / 2" in text and "**" in text
    for link in ("aqi/mean__seed0.json", "fx/climatology__seed0.json", "leaderboard/smoke_reduced__aqi.png"):
        assert f"({'records/' if link.endswith('json') else ''}{link})" in text
        assert (board.parent / ("records/" + link if link.endswith("json") else link)).is_file()


def test_changed_settings_are_rerun(tmp_path, data_dir):
    raw = _suite(entries=[{"baseline": "knn", "tasks": ["aqi"], "seeds": [0], "options": {"max_train_rows": 100}}])
    logs = []
    assert run_suite(parse_suite(raw), tmp_path, data_dir=data_dir, log=logs.append)["done"] == ["t/aqi/knn/seed0"]
    assert run_suite(parse_suite(raw), tmp_path, data_dir=data_dir, log=logs.append)["skipped"] == ["t/aqi/knn/seed0"]
    raw["entries"][0]["options"]["max_train_rows"] = 150  # the suite changed: the old record is not this run's
    assert run_suite(parse_suite(raw), tmp_path, data_dir=data_dir, log=logs.append)["done"] == ["t/aqi/knn/seed0"]
    assert any("from other settings: running it again" in line for line in logs)
    rec = json.loads((tmp_path / "aqi" / "knn__seed0.json").read_text())
    assert rec["bench"]["settings"]["entry_options"] == {"max_train_rows": 150}
    assert rec["bench"]["baseline_info"] == {"train_rows": 150}


def test_run_filters_by_seed_and_rejects_unknown_names(tmp_path, data_dir):
    raw = _suite(entries=[{"baseline": "knn", "tasks": ["aqi"], "seeds": [0, 1, 2], "options": {"max_train_rows": 100}}])
    suite = parse_suite(raw)
    logs = []
    res = run_suite(suite, tmp_path, data_dir=data_dir, seeds=[1, 5], dry_run=True, log=logs.append)
    assert logs[0].endswith("1 runs -> " + str(tmp_path)) and "t/aqi/knn/seed1: to run" in logs[1]
    assert res["done"] == [] and not list(tmp_path.rglob("*.json"))
    with pytest.raises(ConfigError, match=r"no entry named 'knnn'; its entry names are: knn"):
        run_suite(suite, tmp_path, data_dir=data_dir, entries=["knnn"])
    with pytest.raises(ConfigError, match=r"no task named 'aqi36'; its task names are: "):
        run_suite(suite, tmp_path, data_dir=data_dir, tasks=["aqi36"])


def test_report_refuses_mixed_protocols_and_handles_missing_matplotlib(tmp_path, monkeypatch, capsys):
    def rec(entry, protocol, seed, crps):
        return {"task": "a", "protocol": protocol, "model": entry, "sampler": "none", "nfe": 0, "n_samples": 1,
                "seed": seed, "metrics": {"crps": crps, "mae": 2 * crps}, "train_seconds": 1.0,
                "sample_seconds": 0.5, "bench": {"suite": "s", "task": "a", "entry": entry, "kind": "baseline",
                                                 "dataset": "aqi36", "run_id": f"s/a/{entry}/seed{seed}"}}
    d = tmp_path / "r"
    d.mkdir()
    for i, (e, s, c) in enumerate([("x", 0, 1.0), ("x", 1, 3.0), ("y", 0, 1.5)]):
        (d / f"{i}.json").write_text(json.dumps(rec(e, "p1", s, c)))
    (d / "other.json").write_text(json.dumps({"task": "not a bench record"}))
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    logs = []
    board = render_leaderboard(d, tmp_path / "L.md", log=logs.append)
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert any("matplotlib is not installed: skipping the PNG plots" in line for line in logs)
    text = board.read_text()
    assert "| x | baseline | 0,1 | 2 ± 1.414 | 4 ± 2.828 |" in text  # mean ± sample std
    assert "| y | baseline | 0 | **1.5** | **3** |" in text
    assert "1 other JSON files" in text and "![" not in text
    (d / "3.json").write_text(json.dumps(rec("z", "p2", 0, 1.0)))
    with pytest.raises(DataError, match="records of different protocols cannot be compared under one task"):
        group_records(load_records(d)[0])
    assert main(["bench", "report", "--records", str(d), "--out", str(tmp_path / "L2.md")]) == 2
    assert "different protocols" in capsys.readouterr().err


@pytest.mark.integration  # two subprocess starts (imports of torch, lightning, gluonts): ~20 s idle, minutes loaded
def test_killed_bench_run_resumes_without_redoing_or_partial_records(tmp_path, data_dir):
    raw = _suite(name="killme", throttle_seconds=1.5,
                 entries=[{"baseline": "knn", "tasks": ["aqi"], "seeds": [0, 1, 2, 3],
                           "options": {"max_train_rows": 200}}])
    path = _write_suite(tmp_path, raw)
    out = tmp_path / "records"
    cmd = [sys.executable, "-m", "tsdiff.cli", "bench", "run", str(path), "--out", str(out), "--data-dir", str(data_dir)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.rglob("*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sorted(out.rglob("*.json"))
    assert 1 <= len(first) < 4, "the run must be killed mid-grid"
    runs = {r.record_path(out): r for r in parse_suite(raw).runs()}
    assert all(record_is_valid(p, runs[p]) for p in first)  # no partial record
    before = {p: p.read_bytes() for p in first}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"already done {len(first)}" in res.stdout
    assert sorted(out.rglob("*.json")) == sorted(runs)
    assert all(p.read_bytes() == b for p, b in before.items())  # finished runs not redone
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_report_shows_the_coverage_a_calibrated_ensemble_of_each_entry_reaches(tmp_path):
    def rec(entry, n_samples, coverage, crps):
        return {"task": "a", "protocol": "p", "model": entry, "sampler": "ddpm", "nfe": 10, "n_samples": n_samples,
                "seed": 0, "metrics": {"crps": crps, "coverage_90": coverage}, "train_seconds": 1.0,
                "sample_seconds": 0.5, "bench": {"suite": "s", "task": "a", "entry": entry, "kind": "model",
                                                 "dataset": "aqi36", "run_id": f"s/a/{entry}/seed0"}}
    d = tmp_path / "r"
    d.mkdir()
    for e, n, c, crps in [("eight", 8, 0.7, 1.0), ("hundred", 100, 0.85, 0.5), ("point", 1, 0.0, 2.0)]:
        (d / f"{e}.json").write_text(json.dumps(rec(e, n, c, crps)))
    text = render_leaderboard(d, tmp_path / "L.md", plots=False, log=lambda _: None).read_text()
    assert "| coverage_90 if calibrated |" in text
    # 8 samples: nearest-rank 5% / 95% are the 1st and 8th order statistics: 7 / 9 of draws fall between
    assert "| eight | model | 0 | 1 | 0.7 | 0.7778 | ddpm / 10 | 8 |" in text
    assert "| hundred | model | 0 | **0.5** | **0.85** | 0.8812 | ddpm / 10 | 100 |" in text
    assert "| point | model | 0 | 2 | 0 | - | ddpm / 10 | 1 |" in text


def test_report_headline_sets_the_best_model_against_the_best_baseline(tmp_path):
    def rec(entry, kind, seed, crps, mae, n_samples=20, coverage=0.8):
        return {"task": "a", "protocol": "p", "model": entry, "sampler": "ddpm", "nfe": 10, "n_samples": n_samples,
                "seed": seed, "metrics": {"crps": crps, "mae": mae, "coverage_90": coverage}, "train_seconds": 1.0,
                "sample_seconds": 0.5, "bench": {"suite": "s", "task": "a", "entry": entry, "kind": kind,
                                                 "dataset": "aqi36", "run_id": f"s/a/{entry}/seed{seed}"}}
    d = tmp_path / "r"
    d.mkdir()
    rows = [("good", "model", 0, 0.4, 9.0), ("good", "model", 1, 0.6, 11.0), ("bad", "model", 0, 0.9, 8.0),
            ("linear_interpolation", "baseline", 0, 0.55, 10.5), ("mice", "baseline", 0, 0.7, 12.0)]
    for e, k, seed, crps, mae in rows:
        (d / f"{e}{seed}.json").write_text(json.dumps(rec(e, k, seed, crps, mae)))
    text = render_leaderboard(d, tmp_path / "L.md", plots=False, log=lambda _: None).read_text()
    head = text[text.index("## Headline"): text.index("## s / a")]
    # the best model by mean CRPS over its seeds (0.5), against the best baseline (0.55); its MAE
    # (10.0) against linear interpolation's (10.5); 20 samples reach 0.81 when calibrated
    assert "| s / a | good (2) | 0.5 | linear_interpolation | 0.55 | 0.91 ✓ | 10 (10.5) ✓ | 0.8 (0.8095) |" in head
