"""The accuracy benchmark scripts run end to end on real tables and write readable records (tiny
settings; the figures themselves come from full runs, see benchmarks/records/accuracy/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy"))

TINY_MODEL = "model_options={layers: 1, channels: 8, heads: 1, ff_dim: 8}"


def test_forecaster_tables_scores_rolling_origins_against_the_baselines(data_dir, tmp_path):
    import forecaster_tables as ft
    from imputer_tables import load_table

    ft.main(["--tables", "exchange_rate", "--part", "report", "--max-origins", "2", "--threads", "1",
             "--data-dir", str(data_dir), "--out", str(tmp_path),
             "--set", "max_steps=2", "n_samples=4", "sampling_steps=2", "prior=seasonal", TINY_MODEL])
    (path,) = tmp_path.glob("exchange_rate_forecast_report_*.json")
    assert path.name.startswith("exchange_rate_forecast_report_2origins_")  # not the default 40 origins
    rec = json.loads(path.read_text())
    base = rec["metrics"]["baselines"]
    # the persistence baseline recomputed here from the table: the last value before each origin
    table = load_table("exchange_rate", str(data_dir))
    errors = [np.abs(table.iloc[o - 1].to_numpy() - table.iloc[o:o + 24].to_numpy()).mean()
              for o in rec["origins"]]
    assert rec["origins"][0] == int(0.8 * len(table))
    assert np.isclose(base["naive_mae"], np.mean(errors), rtol=1e-12)
    assert np.isfinite(rec["metrics"]["crps"]) and rec["metrics"]["crps"] > 0


def test_forecaster_covariates_scores_ot_with_and_without_covariates(data_dir, tmp_path):
    import forecaster_covariates as fcov

    for variant in ("covariates", "plain"):
        fcov.main(["--variant", variant, "--max-origins", "2", "--n-samples", "2", "--max-steps", "2",
                   "--data-dir", str(data_dir), "--out", str(tmp_path), "--set", "sampling_steps=2", TINY_MODEL])
    # a record scored on other than the default 40 origins says how many in its name
    with_cov = json.loads((tmp_path / "etth1_ot_report_2origins_covariates_seed0.json").read_text())
    plain = json.loads((tmp_path / "etth1_ot_report_2origins_plain_seed0.json").read_text())
    assert with_cov["config"]["forecaster"]["covariates"] == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]
    assert with_cov["config"]["forecaster"]["calendar"] and not plain["config"]["forecaster"]["calendar"]
    assert with_cov["origins"] == plain["origins"] and with_cov["origins"][0] == with_cov["train_rows"]
    for rec in (with_cov, plain):
        assert len(rec["metrics"]["crps_per_origin"]) == 2 and np.isfinite(rec["metrics"]["crps"])
    assert with_cov["metrics"]["seasonal_naive_mae"] == plain["metrics"]["seasonal_naive_mae"] > 0
    fcov.main(["--variant", "plain", "--part", "tune-late", "--max-origins", "1", "--n-samples", "2", "--max-steps",
               "2", "--data-dir", str(data_dir), "--out", str(tmp_path), "--set", "sampling_steps=2", TINY_MODEL])
    late = json.loads((tmp_path / "etth1_ot_tune-late_1origins_plain_seed0.json").read_text())
    assert late["origins"] == [late["train_rows"]] == [int(0.68 * len(fcov.load_etth1_frame(data_dir)))]


def test_covariates_linear_check_fits_every_feature_set_on_training_rows_only(data_dir, tmp_path):
    import covariates_linear_check as lc
    from forecaster_covariates import load_etth1_frame

    rec = lc.main(["--part", "tune", "--max-origins", "3", "--max-train", "300", "--data-dir", str(data_dir),
                   "--out", str(tmp_path)])
    assert json.loads((tmp_path / "etth1_ot_tune_3origins_linear_check.json").read_text())["metrics"] == rec["metrics"]
    assert set(rec["metrics"]["mae"]) == set(lc.FEATURE_SETS)
    assert all(np.isfinite(v) and v > 0 for v in rec["metrics"]["mae"].values())
    # the feature rows: OT's context less its last day's mean, then 6 loads x 48 h, then 24 + 7 + 7 calendar
    table = load_etth1_frame(str(data_dir))
    ot = table["OT"].to_numpy()
    f, level = lc.window_features(ot, np.zeros((len(ot), 6)), table.index, 500, "ot+loads+calendar")
    assert level == ot[476:500].mean() and np.array_equal(f[:96], ot[404:500] - level)
    assert f.shape == (96 + 6 * 48 + 24 + 7 + 7,) and f[96 + 288 + table.index[500].hour] == 1
    # rows after the scored windows are not read (nor, through the loads' scaling, by the fit)
    lo = int(0.48 * len(table))
    changed = table.copy()
    changed.iloc[lo + 200:] += 100.0
    for kind in ("ot", "ot+loads"):
        assert lc.score(changed, lo, lo + 72, kind, 3, 300) == lc.score(table, lo, lo + 72, kind, 3, 300)


def test_imputer_tables_keeps_observed_values_and_scores_the_holes(data_dir, tmp_path):
    import imputer_tables as it

    it.main(["--tables", "exchange_rate", "--holes", "block", "--part", "report", "--threads", "1",
             "--data-dir", str(data_dir), "--out", str(tmp_path),
             "--set", "max_steps=2", "n_samples=2", "sampling_steps=2", TINY_MODEL])
    (path,) = tmp_path.glob("exchange_rate_block_report_*.json")
    rec = json.loads(path.read_text())
    base = rec["metrics"]["baselines"]
    assert base["linear_interpolation"]["mae"] > 0 and base["mice"]["mae"] > 0
    assert np.isclose(rec["metrics"]["tsdiff_over_best_baseline"],
                      rec["metrics"]["mae"] / min(base["linear_interpolation"]["mae"], base["mice"]["mae"]))


def test_covariates_compare_pairs_the_committed_records_by_seed_and_origin(tmp_path):
    import covariates_compare as cc
    from forecaster_tables import OUT

    result = cc.compare(OUT, "report", 145, [0, 1, 2])
    for row in result["seeds"]:
        for variant in ("covariates", "plain"):
            rec = json.loads((OUT / cc.record_name("report", 145, variant, row["seed"])).read_text())
            assert np.isclose(row[variant], rec["metrics"]["crps"], rtol=1e-12, atol=0)
        assert np.isclose(row["difference"], row["covariates"] - row["plain"], rtol=0, atol=1e-12)
        assert row["covariates_win"] + row["plain_win"] <= 145
    assert np.isclose(result["difference"], result["covariates"] - result["plain"], rtol=0, atol=1e-12)
    lo, hi = result["interval_95"]
    assert lo < result["difference"] < hi
    for variant in ("covariates", "plain"):  # 145 origins under a 40-origin name
        (tmp_path / cc.record_name("report", 40, variant, 0)).write_text(
            (OUT / cc.record_name("report", 145, variant, 0)).read_text())
    with pytest.raises(ValueError, match="expected 40"):
        cc.compare(tmp_path, "report", 40, [0])


def test_block_bootstrap_resamples_whole_blocks():
    from covariates_compare import block_bootstrap

    series = np.arange(10.0)
    assert np.array_equal(block_bootstrap(series, block=10, resamples=3), np.full(3, series.mean()))
    assert np.array_equal(block_bootstrap(np.full(9, 2.5), block=4, resamples=5), np.full(5, 2.5))
    means = block_bootstrap(series, block=1, resamples=2000, seed=1)
    assert means.min() >= 0 and means.max() <= 9 and abs(means.mean() - 4.5) < 0.1
