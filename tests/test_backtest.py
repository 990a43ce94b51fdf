"""Rolling-origin backtests (tsdiff.backtest): exact cut-offs, metrics recomputed by hand from the
same samples, the refit path and the errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tsdiff
from tsdiff.backtest import METRICS, backtest, cutoff_positions
from tsdiff.errors import ConfigError, DataError, TsdiffError

TINY = dict(prediction_length=4, context_length=8, max_steps=2, n_samples=7, sampling_steps=2, verbose=False,
            model_options=dict(layers=1, channels=8, heads=1, ff_dim=8), random_state=3)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(60, 2)).cumsum(axis=0) + 20.0
    return pd.DataFrame(values, index=pd.date_range("2021-01-01", periods=60, freq="D"), columns=["a", "b"])


@pytest.fixture(scope="module")
def fitted(frame):
    return tsdiff.Forecaster(**TINY).fit(frame.iloc[:40])


def test_cutoffs_default_to_the_last_windows_a_stride_apart_ending_at_the_end():
    assert cutoff_positions(60, windows=3, stride=4, horizon=4, min_history=8).tolist() == [48, 52, 56]
    assert cutoff_positions(60, windows=3, stride=2, horizon=3, min_history=8).tolist() == [53, 55, 57]
    assert cutoff_positions(60, windows=2, stride=5, horizon=4, min_history=8, start=20).tolist() == [20, 25]
    # None: as many windows as fit, from start or from the shortest history
    assert cutoff_positions(20, windows=None, stride=4, horizon=4, min_history=8).tolist() == [8, 12, 16]
    assert cutoff_positions(20, windows=None, stride=3, horizon=4, min_history=8, start=10).tolist() == [10, 13, 16]


def _crps_by_hand(samples: np.ndarray, y: np.ndarray) -> float:
    """E|X - y| - 0.5 E|X - X'| per entry (all pairs), averaged: samples [S, h], y [h]."""
    first = np.abs(samples - y).mean(axis=0)
    pairs = np.abs(samples[:, None] - samples[None, :]).mean(axis=(0, 1))
    return float((first - 0.5 * pairs).mean())


def _coverage_by_hand(samples: np.ndarray, y: np.ndarray, level: float) -> float:
    ordered = np.sort(samples, axis=0)
    S = len(ordered)
    lo, hi = ordered[int(np.round((S - 1) * (1 - level) / 2))], ordered[int(np.round((S - 1) * (1 + level) / 2))]
    return float(((lo <= y) & (y <= hi)).mean())


def test_windows_forecasts_and_metrics_equal_those_computed_by_hand(frame, fitted):
    result = backtest(fitted, frame, windows=3, stride=2, horizon=3, random_state=5)
    assert result.cutoffs.tolist() == [53, 55, 57]
    m = result.metrics
    assert list(m.columns) == ["window", "cutoff", "series", "observed", "crps", "mae", "rmse", "coverage_90"]
    assert m["window"].tolist() == [0, 0, 1, 1, 2, 2] and m["series"].tolist() == ["a", "b"] * 3
    assert list(m["cutoff"]) == [frame.index[c - 1] for c in (53, 53, 55, 55, 57, 57)]
    assert (m["observed"] == 3).all()
    for k, c in enumerate(result.cutoffs):
        forecast = result.forecasts[k]
        assert forecast.index[0] == frame.index[c]  # the forecast starts right after the cut-off
        direct = fitted.predict(frame.iloc[:c], random_state=5)  # the same call a user would make
        np.testing.assert_array_equal(forecast.samples, direct.samples)
        for n, col in enumerate(frame.columns):
            s, y = forecast.samples[:, :3, n], frame[col].to_numpy()[c: c + 3]
            row = m[(m["window"] == k) & (m["series"] == col)].iloc[0]
            assert row["crps"] == pytest.approx(_crps_by_hand(s, y), rel=1e-12)
            assert row["mae"] == pytest.approx(np.abs(np.median(s, axis=0) - y).mean(), rel=1e-12)
            assert row["rmse"] == pytest.approx(np.sqrt(((np.median(s, axis=0) - y) ** 2).mean()), rel=1e-12)
            assert row["coverage_90"] == _coverage_by_hand(s, y, 0.9)
    assert result.summary()["crps"] == pytest.approx(m["crps"].mean(), rel=1e-12)
    by_series = result.summary("series")
    assert by_series.loc["b", "mae"] == pytest.approx(m.loc[m["series"] == "b", "mae"].mean(), rel=1e-12)
    assert list(result.summary("window").index) == [0, 1, 2]


def test_start_as_steps_or_timestamp_and_one_row_per_window(frame, fitted):
    by_steps = backtest(fitted, frame, windows=2, start=44, metrics=["wql", "crps"], per_series=False)
    by_time = backtest(fitted, frame, windows=2, start=frame.index[43], metrics={"wql": "wql", "crps": "crps"},
                       per_series=False)
    assert by_steps.cutoffs.tolist() == by_time.cutoffs.tolist() == [44, 48]
    pd.testing.assert_frame_equal(by_steps.metrics, by_time.metrics)
    # the method is the function
    pd.testing.assert_frame_equal(fitted.backtest(frame, windows=2, start=44, metrics=["wql", "crps"],
                                                  per_series=False).metrics, by_steps.metrics)
    m = by_steps.metrics
    assert m["series"].isna().all() and (m["observed"] == 8).all()
    # scored on all series of the window at once
    f = by_steps.forecasts[1]
    assert m["wql"].iloc[1] == METRICS["wql"](f.samples, frame.to_numpy()[48:52])


def test_missing_targets_are_left_out_and_a_window_with_none_scores_nan(frame, fitted):
    gappy = frame.copy()
    gappy.iloc[57, 0] = np.nan
    gappy.iloc[52:56, 1] = np.nan
    m = backtest(fitted, gappy, windows=2).metrics  # cut-offs 52 and 56
    assert m["observed"].tolist() == [4, 0, 3, 4]
    assert m.iloc[1][["crps", "mae", "rmse", "coverage_90"]].isna().all()
    assert np.isfinite(m.iloc[2]["crps"])


def test_refit_fits_a_clone_on_each_window_history(frame):
    base = tsdiff.Forecaster(**TINY)
    result = backtest(base, frame, windows=2, stride=6, refit=True)
    assert base.module_ is None  # the forecaster passed in stays as it was
    assert result.cutoffs.tolist() == [50, 56]
    assert len(result.forecasts) == 2 and result.forecasts[0].index[0] == frame.index[50]
    by_hand = tsdiff.Forecaster(**TINY).fit(frame.iloc[:50]).predict(frame.iloc[:50])
    np.testing.assert_array_equal(result.forecasts[0].samples, by_hand.samples)


def test_bad_settings_and_too_little_data_are_clear_errors(frame, fitted):
    with pytest.raises(TsdiffError, match="needs a fitted forecaster"):
        backtest(tsdiff.Forecaster(**TINY), frame)
    for kwargs, match in (({"windows": 0}, "windows must be a positive integer"),
                          ({"windows": True}, "windows must be"),
                          ({"stride": -2}, "stride must be"),
                          ({"horizon": 5}, "longer than the forecaster's prediction_length=4"),
                          ({"refit": "yes"}, "refit must be"),
                          ({"metrics": ["crps", "nope"]}, "unknown metric 'nope'"),
                          ({"metrics": []}, "no metrics"),
                          ({"start": 0}, "start=0 must be between 1"),
                          ({"start": "2019-01-01"}, "before the data's first timestamp"),
                          ({"start": "soon"}, "start must be a step count or a timestamp"),
                          ({"start": pd.Timestamp("2021-02-01", tz="UTC")}, "comparable with the data's index")):
        with pytest.raises(ConfigError, match=match):
            backtest(fitted, frame, **kwargs)
    with pytest.raises(DataError, match="need at least 56 steps .8 of history"):
        backtest(fitted, frame.iloc[:30], windows=12)
    with pytest.raises(DataError, match="run past the end of the data"):
        backtest(fitted, frame, windows=3, start=50)
    with pytest.raises(DataError, match="too few for one backtest window"):
        backtest(fitted, frame.iloc[:10])
    # a refit needs a whole training window (context + prediction_length) before the first cut-off
    with pytest.raises(DataError, match="need at least 24 steps .12 of history"):
        backtest(tsdiff.Forecaster(**TINY), frame.iloc[:20], windows=3, refit=True)
    with pytest.raises(ConfigError, match="summary"):
        backtest(fitted, frame, windows=1).summary("item")


def test_backtest_example_runs_on_the_exchange_rates(data_dir, tmp_path):
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "backtest.py"
    res = runpy.run_path(str(example), run_name="example")["main"](
        ["--fast", "--out", str(tmp_path), "--data-dir", str(data_dir)])
    table = pd.read_csv(tmp_path / "exchange_rate_backtest.csv")
    assert len(table) == 2 * 8 and list(table["window"].unique()) == [0, 1]
    assert res["result"].cutoffs.tolist() == [120, 140]  # 160 rows, horizon 20: the last two origins
    assert np.isfinite(table[["crps", "mae", "rmse", "coverage_90"]].to_numpy()).all() and res["naive_mae"] > 0
