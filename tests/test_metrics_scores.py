"""Tests of tsdiff.metrics.scores: hand-computed cases, GluonTS / properscoring cross-checks,
masks, numpy vs torch, the streaming accumulator, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import properscoring as ps
import pytest
import torch

from tsdiff.errors import ConfigError, DataError
from tsdiff.metrics import (
    DEFAULT_QUANTILES,
    MetricAccumulator,
    energy_score,
    ensemble_crps,
    interval_coverage,
    mae,
    mre,
    pit_histogram,
    qice,
    quantile_crps,
    quantile_loss,
)


def _problem(shape=(6, 5, 3, 2), n_samples=25, seed=0, p_missing=0.3):
    rng = np.random.default_rng(seed)
    target = rng.normal(3.0, 1.0, size=shape)
    samples = target + rng.normal(0.2, 1.0, size=(n_samples,) + shape)
    mask = rng.random(shape) > p_missing
    mask.flat[0] = True
    return samples, np.where(mask, target, np.nan), mask


# ---------------------------------------------------------------- hand-computed cases

def test_hand_computed_small_case():
    # one window, two entries, four samples
    samples = np.array([[[1.0, 10.0]], [[2.0, 12.0]], [[3.0, 14.0]], [[4.0, 16.0]]])  # [S=4, B=1, D=2]
    target = np.array([[2.5, 11.0]])
    # median = mean of middle two: 2.5 and 13 -> |err| = 0, 2 ; sum|y| = 13.5
    assert mre(samples, target) == pytest.approx(2.0 / 13.5, rel=1e-15)
    assert mae(samples, target) == pytest.approx(1.0, rel=1e-15)
    # nearest-rank quantiles, S=4: q=0.25 -> round(0.75)=1 -> x_(1); q=0.75 -> round(2.25)=2 -> x_(2)
    cov = interval_coverage(samples, target, levels=(0.5,))
    assert cov == {0.5: 0.5}  # [2, 3] holds 2.5; [12, 14] does not hold 11
    # quantile loss at q=0.5: yhat = x_(round(1.5)=2) = 3 and 14
    ql = quantile_loss(samples, target, quantiles=(0.5,), normalise=False)
    assert ql[0.5] == pytest.approx(2 * (0.5 * 0.5 + 0.5 * 3.0), rel=1e-15)
    # PIT mid-ranks: 2.5 -> 2/4 = 0.5; 11 -> 1/4 = 0.25 ; bins of width 0.25
    hist = pit_histogram(samples, target, bins=4)
    np.testing.assert_array_equal(hist, [0.0, 0.5, 0.5, 0.0])
    assert qice(samples, target, bins=4) == pytest.approx(np.mean([0.25, 0.25, 0.25, 0.25]))
    # energy score by hand: E||X - y|| - 0.5 E||X - X'|| over 4 samples in R^2
    x = samples[:, 0]
    y = target[0]
    first = np.mean([np.linalg.norm(xi - y) for xi in x])
    second = np.mean([[np.linalg.norm(xi - xj) for xj in x] for xi in x])
    assert energy_score(samples, target) == pytest.approx(first - 0.5 * second, rel=1e-13)


def test_point_forecast_scores():
    """A one-sample ensemble: CRPS = MRE, ensemble CRPS = MAE, ES = mean error norm per window."""
    samples, target, mask = _problem(n_samples=1)
    assert quantile_crps(samples, target, mask) == pytest.approx(mre(samples, target, mask), rel=1e-12)
    assert ensemble_crps(samples, target, mask) == pytest.approx(mae(samples, target, mask), rel=1e-12)
    err = np.where(mask, samples[0] - np.nan_to_num(target), 0.0).reshape(len(mask), -1)
    assert energy_score(samples, target, mask) == pytest.approx(np.linalg.norm(err, axis=1).mean(), rel=1e-12)
    assert interval_coverage(samples, target, mask) == {0.5: 0.0, 0.9: 0.0}
    # PIT of a point forecast is 0 (target below) or 1 (above): the outer bins only
    below = float(np.mean(target[mask] < samples[0][mask]))
    np.testing.assert_allclose(pit_histogram(samples, target, mask, bins=4), [below, 0, 0, 1 - below])


def test_energy_score_one_entry_per_window_is_properscoring_crps():
    rng = np.random.default_rng(3)
    target = rng.normal(size=(40,))
    samples = rng.normal(size=(30, 40)) * 1.5 + 0.3
    ref = ps.crps_ensemble(target, samples.T).mean()
    assert energy_score(samples[:, :, None], target[:, None]) == pytest.approx(ref, rel=1e-12)
    # ...and windows with one scored entry of several give the same
    wide = np.concatenate([target[:, None], np.full((40, 2), np.nan)], axis=1)
    wide_s = np.concatenate([samples[:, :, None], rng.normal(size=(30, 40, 2))], axis=2)
    m = np.zeros((40, 3), dtype=bool)
    m[:, 0] = True
    assert energy_score(wide_s, wide, m) == pytest.approx(ref, rel=1e-12)


def test_energy_score_skips_empty_windows_and_is_proper_direction():
    samples, target, mask = _problem(seed=4)
    mask[2] = False
    kept = [b for b in range(len(mask)) if b != 2]
    per_window = [energy_score(samples[:, b : b + 1], target[b : b + 1], mask[b : b + 1]) for b in kept]
    assert energy_score(samples, target, mask) == pytest.approx(np.mean(per_window), rel=1e-12)
    # a sharper, unbiased ensemble scores better than a biased one
    good = np.nan_to_num(target)[None] + np.random.default_rng(0).normal(0, 0.3, samples.shape)
    assert energy_score(good, target, mask) < energy_score(good + 2.0, target, mask)


# ---------------------------------------------------------------- GluonTS cross-checks

def _gluonts_metrics(samples, target_nan, quantiles):
    from gluonts.evaluation import Evaluator
    from gluonts.model.forecast import SampleForecast

    n_series, horizon = target_nan.shape
    history = 5
    index = pd.period_range("2020-01-01", periods=history + horizon, freq="D")
    rng = np.random.default_rng(0)
    series, forecasts = [], []
    for b in range(n_series):
        values = np.concatenate([rng.gamma(2.0, 2.0, history), target_nan[b]])
        series.append(pd.Series(values, index=index))
        forecasts.append(SampleForecast(samples=samples[:, b, :], start_date=index[history], item_id=str(b)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agg, _ = Evaluator(quantiles=quantiles, num_workers=None)(iter(series), iter(forecasts), num_series=n_series)
    return agg


@pytest.mark.parametrize("n_samples", [7, 50])
def test_quantile_loss_and_coverage_equal_gluonts(n_samples):
    rng = np.random.default_rng(n_samples)
    target = rng.gamma(2.0, 2.0, size=(5, 8))
    samples = target + rng.normal(0.0, 2.0, size=(n_samples, 5, 8))
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    agg = _gluonts_metrics(samples, target, qs)
    ql = quantile_loss(samples, target, quantiles=qs)
    ql_raw = quantile_loss(samples, target, quantiles=qs, normalise=False)
    for q in qs:
        assert ql[q] == pytest.approx(agg[f"wQuantileLoss[{q}]"], rel=1e-12)
        assert ql_raw[q] == pytest.approx(agg[f"QuantileLoss[{q}]"], rel=1e-12)
    cov = interval_coverage(samples, target, levels=(0.5, 0.9))
    # continuous data, no ties: central coverage = Coverage[upper] - Coverage[lower]
    assert cov[0.9] == pytest.approx(agg["Coverage[0.95]"] - agg["Coverage[0.05]"], abs=1e-12)
    assert cov[0.5] == pytest.approx(agg["Coverage[0.75]"] - agg["Coverage[0.25]"], abs=1e-12)
    assert np.mean(list(quantile_loss(samples, target).values())) == pytest.approx(
        quantile_crps(samples, target), rel=1e-12)


def test_coverage_is_calibrated_for_matching_distribution():
    rng = np.random.default_rng(11)
    target = rng.normal(size=(2000,))
    samples = rng.normal(size=(200, 2000))
    cov = interval_coverage(samples, target, method="linear")
    assert cov[0.5] == pytest.approx(0.5, abs=0.04)
    assert cov[0.9] == pytest.approx(0.9, abs=0.03)
    assert qice(samples, target) < 0.02
    assert qice(samples * 0.2, target) > 0.08  # overconfident: mass in the outer bins


@pytest.mark.parametrize("n_samples", [1, 2, 8, 12, 16, 33])
def test_calibrated_coverage_is_the_coverage_of_a_calibrated_ensemble(n_samples):
    from tsdiff.metrics import calibrated_coverage

    # many independent problems whose samples and target share one distribution: the
    # empirical nearest-rank coverage converges to the closed form (binomial sd < 0.0016)
    rng = np.random.default_rng(n_samples)
    target = rng.standard_exponential(size=(100_000,))
    samples = rng.standard_exponential(size=(n_samples, 100_000))
    expected = calibrated_coverage(n_samples, 0.9)
    assert interval_coverage(samples, target, levels=(0.9,))[0.9] == pytest.approx(expected, abs=0.006)
    if n_samples > 1:
        assert expected < 0.9  # a finite ensemble's nearest-rank interval under-covers


def test_calibrated_coverage_values_and_errors():
    from tsdiff.metrics import calibrated_coverage

    assert calibrated_coverage(8) == pytest.approx(7 / 9)
    assert calibrated_coverage(16) == pytest.approx(13 / 17)
    assert calibrated_coverage(100) == pytest.approx(89 / 101)
    assert calibrated_coverage(1) == 0.0
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ConfigError, match="n_samples"):
            calibrated_coverage(bad)
    with pytest.raises(ConfigError, match="levels"):
        calibrated_coverage(8, 1.5)


# ---------------------------------------------------------------- torch, masks, accumulator

def test_numpy_and_torch_agree_and_mask_matters():
    samples, target, mask = _problem(seed=5)
    funcs = [
        lambda s, y, m: mre(s, y, m),
        lambda s, y, m: energy_score(s, y, m),
        lambda s, y, m: interval_coverage(s, y, m)[0.9],
        lambda s, y, m: quantile_loss(s, y, m)[0.05],
        lambda s, y, m: qice(s, y, m),
    ]
    for f in funcs:
        a = f(samples, target, mask)
        b = f(torch.from_numpy(samples), torch.from_numpy(target), torch.from_numpy(mask))
        assert a == pytest.approx(b, rel=1e-12)
    full = np.nan_to_num(target, nan=100.0)
    assert mre(samples, full) != pytest.approx(mre(samples, target, mask), rel=1e-3)


def test_accumulator_extended_equals_one_shot():
    samples, target, mask = _problem((10, 6, 4, 1), 20, seed=8)
    acc = MetricAccumulator(crps_sum=True)
    for lo, hi in [(0, 3), (3, 4), (4, 10)]:
        acc.update(samples[:, lo:hi], target[lo:hi], mask[lo:hi])
    out = acc.compute()
    assert out["mre"] == pytest.approx(mre(samples, target, mask), rel=1e-12)
    assert out["ensemble_crps"] == pytest.approx(ensemble_crps(samples, target, mask), rel=1e-12)
    assert out["energy_score"] == pytest.approx(energy_score(samples, target, mask), rel=1e-12)
    cov = interval_coverage(samples, target, mask)
    assert (out["coverage_50"], out["coverage_90"]) == pytest.approx((cov[0.5], cov[0.9]), rel=1e-12)
    ql = quantile_loss(samples, target, mask)
    assert out["quantile_loss"] == pytest.approx({f"{q:g}": v for q, v in ql.items()}, rel=1e-12)
    assert out["qice"] == pytest.approx(qice(samples, target, mask), rel=1e-12)
    np.testing.assert_allclose(out["pit_histogram"], pit_histogram(samples, target, mask), rtol=1e-12)
    assert len(out["quantile_loss"]) == len(DEFAULT_QUANTILES)
    basic = MetricAccumulator(extended=False)
    basic.update(samples, target, mask)
    assert set(basic.compute()) == {"crps", "mae", "rmse", "n_targets"}


# ---------------------------------------------------------------- bad input

def test_zero_normaliser_errors_and_unnormalised_scores_defined():
    samples = np.random.default_rng(0).normal(size=(5, 3, 4))
    target = np.zeros((3, 4))
    with pytest.raises(DataError, match="sum \\|y\\|.*is 0"):
        mre(samples, target)
    with pytest.raises(DataError, match="is 0"):
        quantile_loss(samples, target)
    # unnormalised scores stay defined on all-zero targets
    assert quantile_loss(samples, target, normalise=False)[0.5] > 0
    assert energy_score(samples, target) > 0
    assert 0.0 <= interval_coverage(samples, target)[0.9] <= 1.0
    # zero entries among non-zero ones are fine
    t2 = target.copy()
    t2[0, 0] = 2.0
    assert np.isfinite(mre(samples, t2))
    acc = MetricAccumulator()
    acc.update(samples, target)
    with pytest.raises(DataError, match="is 0"):
        acc.compute()


@pytest.mark.parametrize("f", [mre, energy_score, interval_coverage, quantile_loss, pit_histogram, qice])
def test_bad_input_errors(f):
    samples, target, mask = _problem(seed=2)
    bad = samples.copy()
    bad[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="samples contain 1 NaN"):
        f(bad, target, mask)
    with pytest.raises(DataError, match="mask selects no target entries"):
        f(samples, target, np.zeros_like(mask))
    with pytest.raises(DataError, match="does not match target shape"):
        f(samples[:, :2], target, mask)
    with pytest.raises(DataError, match="NaN/inf values at entries where mask is True"):
        f(samples, target, None)  # NaN targets must be masked out


def test_bad_options():
    samples, target, mask = _problem(seed=2)
    with pytest.raises(ConfigError, match="coverage levels must be in \\(0, 1\\)"):
        interval_coverage(samples, target, mask, levels=(1.2,))
    with pytest.raises(ConfigError, match="bins must be an integer"):
        pit_histogram(samples, target, mask, bins=0)
    with pytest.raises(ConfigError, match="point must be one of"):
        mre(samples, target, mask, point="mode")


@pytest.mark.gpu
def test_scores_on_cuda_tensors_agree():
    samples, target, mask = _problem(seed=6)
    cuda = [torch.from_numpy(a).cuda() for a in (samples, target, mask)]
    assert energy_score(*cuda) == pytest.approx(energy_score(samples, target, mask), rel=1e-12)
    assert interval_coverage(*cuda) == interval_coverage(samples, target, mask)
    assert qice(*cuda) == pytest.approx(qice(samples, target, mask), rel=1e-12)
    acc = MetricAccumulator(crps_sum=True)
    acc.update(*cuda)
    assert acc.compute()["energy_score"] == pytest.approx(energy_score(samples, target, mask), rel=1e-12)


def test_qice_from_histogram_values_and_bad_input():
    from tsdiff.metrics.scores import qice_from_histogram

    assert qice_from_histogram([0.25, 0.25, 0.25, 0.25]) == 0.0
    assert qice_from_histogram([1.0, 0.0, 0.0, 0.0]) == pytest.approx(2 * 3 / 16)  # worst case 2 (M-1)/M^2
    for bad in ([], [[0.5, 0.5]], [0.5, np.nan]):
        with pytest.raises(DataError, match="PIT histogram must be a non-empty 1-D array"):
            qice_from_histogram(bad)
