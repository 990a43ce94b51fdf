"""Tests of tsdiff.metrics: hand-computed values, properscoring, GluonTS, masks, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import properscoring as ps
import pytest
import torch
from scipy.stats import norm

from tsdiff.errors import DataError
from tsdiff.metrics import (
    DEFAULT_QUANTILES,
    MetricAccumulator,
    crps_sum,
    empirical_quantiles,
    ensemble_crps,
    mae,
    point_forecast,
    quantile_crps,
    rmse,
)

QS = np.asarray(DEFAULT_QUANTILES)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _random_problem(shape, n_samples=20, seed=0, p_missing=0.3):
    """Samples [S, *shape], target with NaN outside the mask, bool mask."""
    rng = _rng(seed)
    target = rng.normal(2.0, 1.0, size=shape)
    samples = target + rng.normal(0.3, 1.2, size=(n_samples,) + tuple(shape))
    mask = rng.random(shape) > p_missing
    mask.flat[0] = True
    target = np.where(mask, target, np.nan)
    return samples, target, mask


# ---------------------------------------------------------------- quantile levels


def test_default_quantiles_are_the_19_levels():
    assert np.array_equal(QS, np.arange(1, 20) / 20)
    assert len(DEFAULT_QUANTILES) == 19


@pytest.mark.parametrize("n_samples", [1, 2, 5, 10, 11, 50, 101])
def test_empirical_quantiles_match_numpy_methods(n_samples):
    x = _rng(n_samples).normal(size=(n_samples, 4, 3))
    # "nearest" is GluonTS' rule sorted[round_half_even((S - 1) q)] = numpy "nearest".
    assert np.array_equal(
        empirical_quantiles(x), np.quantile(x, QS, axis=0, method="nearest")
    )
    np.testing.assert_allclose(
        empirical_quantiles(x, method="linear"), np.quantile(x, QS, axis=0), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(point_forecast(x), np.median(x, axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(point_forecast(x, "mean"), x.mean(axis=0), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- hand-computed CRPS


def test_quantile_crps_hand_computed_three_samples():
    # y = 2, samples {1, 2, 3}, S - 1 = 2, nearest rank index round_half_even(2q):
    #   q = .05 .. .25 (5 levels; 2 * .25 = .5 rounds to 0) -> yhat = 1 < y:
    #       QL = 2 * |(2 - 1) * (0 - q)| = 2q,   sum = 2 * .75 = 1.5
    #   q = .30 .. .70 (9 levels)                -> yhat = 2 = y:  QL = 0
    #   q = .75 .. .95 (5 levels; 1.5 rounds to 2) -> yhat = 3 > y:
    #       QL = 2 * |(2 - 3) * (1 - q)| = 2(1 - q), sum = 2 * .75 = 1.5
    # CRPS = (3 / 19) / |2| = 3 / 38
    samples = np.array([[1.0], [2.0], [3.0]])
    assert quantile_crps(samples, np.array([2.0])) == pytest.approx(3 / 38, rel=1e-12)
    # Linear interpolation instead: yhat_q = 1 + 2q, so QL_q = 2q(1 - 2q) for q < .5,
    # 0 at q = .5 and the mirror image above: 2 * (.09+.16+.21+.24+.25+.24+.21+.16+.09)
    # = 2 * 1.65 = 3.3, CRPS = (3.3 / 19) / 2 = 3.3 / 38.
    got = quantile_crps(samples, np.array([2.0]), method="linear")
    assert got == pytest.approx(3.3 / 38, rel=1e-12)


def test_quantile_crps_hand_computed_five_samples_all_below():
    # y = 10, samples {0..4}, index round(4q): q=.05,.10 -> 0; .15-.35 -> 1; .40-.60 -> 2;
    # .65-.85 -> 3; .90,.95 -> 4. Every yhat < y, so QL_q = 2 q (10 - yhat):
    #   1.0 + 2.0 + (2.7 + 3.6 + 4.5 + 5.4 + 6.3) + (6.4 + 7.2 + 8.0 + 8.8 + 9.6)
    #   + (9.1 + 9.8 + 10.5 + 11.2 + 11.9) + (10.8 + 11.4) = 140.2
    # CRPS = (140.2 / 19) / 10
    samples = np.arange(5.0)[:, None]
    assert quantile_crps(samples, np.array([10.0])) == pytest.approx(140.2 / 190, rel=1e-12)


def test_quantile_crps_is_a_ratio_of_sums_over_targets():
    # Target A: y = 2, samples {1, 2, 3}: sum_q QL_q = 3 (previous test).
    # Target B: y = -4, samples all -1 > y: QL_q = 2 * 3 * (1 - q), sum_q = 6 * 9.5 = 57.
    # CRPS = ((3 + 57) / 19) / (|2| + |-4|) = 60 / 114, not the mean of per-target ratios.
    samples = np.array([[1.0, -1.0], [2.0, -1.0], [3.0, -1.0]])
    assert quantile_crps(samples, np.array([2.0, -4.0])) == pytest.approx(60 / 114, rel=1e-12)


def test_perfect_samples_give_zero():
    target = _rng(1).normal(size=(3, 4))
    samples = np.repeat(target[None], 7, axis=0)
    assert quantile_crps(samples, target) == 0.0
    assert crps_sum(samples, target, sum_axes=(1,)) == 0.0
    assert ensemble_crps(samples, target) == 0.0
    assert mae(samples, target) == 0.0 and rmse(samples, target) == 0.0


def test_ensemble_crps_hand_computed():
    # y = 2, samples {1, 2, 3}: E|X - y| = 2/3; E|X - X'| = 2 * (1 + 2 + 1) / 9 = 8/9
    # CRPS = 2/3 - 4/9 = 2/9.
    assert ensemble_crps(np.array([[1.0], [2.0], [3.0]]), np.array([2.0])) == pytest.approx(
        2 / 9, rel=1e-12
    )


# ---------------------------------------------------------------- properscoring


@pytest.mark.parametrize(
    "shape,n_samples", [((7,), 1), ((7,), 2), ((4, 5), 33), ((2, 6, 3), 100), ((2, 3, 4, 2), 17)]
)
def test_ensemble_crps_equals_properscoring(shape, n_samples):
    samples, target, mask = _random_problem(shape, n_samples, seed=n_samples)
    per_entry = ps.crps_ensemble(np.nan_to_num(target), np.moveaxis(samples, 0, -1))
    expected = per_entry[mask].mean()
    assert ensemble_crps(samples, target, mask) == pytest.approx(expected, rel=0, abs=1e-10)
    got_torch = ensemble_crps(torch.from_numpy(samples), torch.from_numpy(target), mask)
    assert got_torch == pytest.approx(expected, rel=0, abs=1e-10)


def test_quantile_crps_approximates_gaussian_crps():
    # Forecast N(mu, sigma) per entry, represented by 4000 samples; y ~ N(mu, sigma).
    # Unnormalised, quantile CRPS * sum|y| / n = mean_entries mean_q 2 * pinball_q.
    # The exact CRPS is 2 * integral_0^1 pinball_q dq; the 19-level average
    # discretises it with a known bias: for y drawn from the forecast,
    # E[2 pinball_q(y, F^-1(q))] = 2 sigma phi(z_q), so E[disc] / E[CRPS] =
    # (2/19) sum_q phi(z_q) * sqrt(pi) = 1.0482 (+4.8 %: 1/19 > the 0.05 step, and the
    # dropped tails). We compute the discretised value `disc` exactly from the true
    # Gaussian quantiles; what is left is Monte Carlo error of the empirical
    # quantiles, whose relative std over 20 seeds was 0.0011: tolerance 0.006 (~5 std).
    rng = _rng(2024)
    n, n_samples = 300, 4000
    mu = rng.uniform(5, 10, n)
    sigma = rng.uniform(0.5, 2, n)
    y = mu + sigma * rng.normal(size=n)
    samples = mu + sigma * rng.normal(size=(n_samples, n))

    ours = quantile_crps(samples, y) * np.abs(y).sum() / n
    gauss = ps.crps_gaussian(y, mu, sigma).mean()
    yq = mu + sigma * norm.ppf(QS)[:, None]
    disc = (2 * np.abs((y - yq) * ((y <= yq) - QS[:, None]))).mean()
    bias = disc / gauss - 1

    expected_ratio = (2 / 19) * norm.pdf(norm.ppf(QS)).sum() * np.sqrt(np.pi)
    assert expected_ratio == pytest.approx(1.0482, abs=1e-4)
    assert bias == pytest.approx(0.0482, abs=0.003)  # this y's realisation of the bias
    assert abs(ours - disc) / gauss < 0.006
    assert abs(ours / gauss - 1 - bias) < 0.006


# ---------------------------------------------------------------- GluonTS


def _periods(n):
    return pd.period_range("2021-01-01 00:00", periods=n, freq="h")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("n_samples", [11, 50])
def test_quantile_crps_equals_gluonts_mean_wquantileloss(n_samples):
    from gluonts.evaluation import Evaluator
    from gluonts.model.forecast import SampleForecast

    rng = _rng(n_samples)
    n_series, history, horizon = 4, 12, 6
    target = rng.gamma(2.0, 2.0, size=(n_series, horizon))
    samples = target + rng.normal(0.0, 2.0, size=(n_samples, n_series, horizon))
    mask = rng.random(target.shape) > 0.25
    target_nan = np.where(mask, target, np.nan)  # GluonTS masks NaN targets

    series, forecasts = [], []
    index = _periods(history + horizon)
    for b in range(n_series):
        values = np.concatenate([rng.gamma(2.0, 2.0, history), target_nan[b]])
        series.append(pd.Series(values, index=index))
        forecasts.append(
            SampleForecast(samples=samples[:, b, :], start_date=index[history], item_id=str(b))
        )
    evaluator = Evaluator(quantiles=DEFAULT_QUANTILES, num_workers=None)
    agg, _ = evaluator(iter(series), iter(forecasts), num_series=n_series)

    assert quantile_crps(samples, target_nan, mask) == pytest.approx(
        agg["mean_wQuantileLoss"], rel=0, abs=1e-6
    )
    assert quantile_crps(samples, target_nan, mask) == pytest.approx(
        agg["mean_wQuantileLoss"], rel=1e-12
    )


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("shape", [(3, 5, 4), (2, 5, 3, 2)])
def test_crps_sum_equals_gluonts_multivariate(shape):
    # Full mask only: with missing targets GluonTS still sums the forecast over every
    # dimension while pandas' sum skips NaN targets (an all-NaN step becomes 0, not
    # dropped), so target and forecast sums cover different entries there. Our CRPS-sum
    # sums only entries in the mask for both (tested in test_crps_sum_definition).
    from gluonts.evaluation import MultivariateEvaluator
    from gluonts.model.forecast import SampleForecast

    rng = _rng(len(shape))
    n_samples, history = 30, 8
    target = rng.gamma(2.0, 2.0, size=shape)
    samples = target + rng.normal(0.0, 1.5, size=(n_samples,) + shape)
    n_series, horizon = shape[:2]
    dims = int(np.prod(shape[2:]))

    series, forecasts = [], []
    index = _periods(history + horizon)
    for b in range(n_series):
        values = np.concatenate(
            [rng.gamma(2.0, 2.0, (history, dims)), target[b].reshape(horizon, dims)]
        )
        series.append(pd.DataFrame(values, index=index, columns=range(dims)))
        forecasts.append(
            SampleForecast(
                samples=samples[:, b].reshape(n_samples, horizon, dims),
                start_date=index[history],
                item_id=str(b),
            )
        )
    evaluator = MultivariateEvaluator(quantiles=DEFAULT_QUANTILES, target_agg_funcs={"sum": np.sum})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agg, _ = evaluator(iter(series), iter(forecasts), num_series=n_series)

    got = crps_sum(samples, target)  # default sum_axes: all axes after L
    assert got == pytest.approx(agg["m_sum_mean_wQuantileLoss"], rel=0, abs=1e-6)
    assert got == pytest.approx(agg["m_sum_mean_wQuantileLoss"], rel=1e-12)
    # The per-dimension aggregate is the plain quantile CRPS over all entries.
    assert quantile_crps(samples, target) == pytest.approx(agg["mean_wQuantileLoss"], rel=1e-12)


def test_crps_sum_definition_with_mask():
    samples, target, mask = _random_problem((3, 6, 4, 2), 15, seed=5, p_missing=0.5)
    mask[1, 2] = False  # a time step without mask entries is dropped
    s_sum = np.where(mask, samples, 0.0).sum(axis=(3, 4))
    y_sum = np.where(mask, target, 0.0).sum(axis=(2, 3))
    m_sum = mask.any(axis=(2, 3))
    assert not m_sum[1, 2]
    expected = quantile_crps(s_sum, np.where(m_sum, y_sum, np.nan), m_sum)
    assert crps_sum(samples, target, mask) == pytest.approx(expected, rel=1e-12)
    assert crps_sum(samples, target, mask, sum_axes=(-2, -1)) == pytest.approx(expected, rel=1e-12)
    # rank 3 default sums only the last axis; sum_axes=() is the plain CRPS
    s3, y3, m3 = samples[..., 0], target[..., 0], mask[..., 0]
    expected3 = quantile_crps(
        np.where(m3, s3, 0).sum(-1), np.where(m3, y3, 0).sum(-1), m3.any(-1)
    )
    assert crps_sum(s3, y3, m3) == pytest.approx(expected3, rel=1e-12)
    assert crps_sum(s3, y3, m3, sum_axes=()) == quantile_crps(s3, y3, m3)


# ---------------------------------------------------------------- point forecasts


def test_mae_rmse_median_and_mean():
    # target 0: samples {1, 2, 3, 10}, y = 4: median 2.5, mean 4
    # target 1: samples {0, 0, 0, 4},  y = 0: median 0,   mean 1
    samples = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [10.0, 4.0]])
    y = np.array([4.0, 0.0])
    assert mae(samples, y) == pytest.approx(0.75)  # (1.5 + 0) / 2
    assert rmse(samples, y) == pytest.approx(np.sqrt(1.125))  # sqrt((2.25 + 0) / 2)
    assert mae(samples, y, point="mean") == pytest.approx(0.5)  # (0 + 1) / 2
    assert rmse(samples, y, point="mean") == pytest.approx(np.sqrt(0.5))
    np.testing.assert_allclose(point_forecast(samples), [2.5, 0.0])
    np.testing.assert_allclose(point_forecast(samples, "mean"), [4.0, 1.0])
    acc = MetricAccumulator(point="mean")
    acc.update(samples, y)
    assert acc.compute()["mae"] == pytest.approx(0.5)


# ---------------------------------------------------------------- numpy / torch / masks


def _all_metrics(samples, target, mask):
    return [
        quantile_crps(samples, target, mask),
        quantile_crps(samples, target, mask, method="linear"),
        crps_sum(samples, target, mask),
        ensemble_crps(samples, target, mask),
        mae(samples, target, mask),
        rmse(samples, target, mask, point="mean"),
    ]


def test_numpy_and_torch_inputs_agree():
    samples, target, mask = _random_problem((2, 5, 3, 2), 12, seed=3)
    ref = _all_metrics(samples, target, mask)
    assert all(isinstance(v, float) for v in ref)
    as_torch = _all_metrics(*(torch.from_numpy(a) for a in (samples, target, mask)))
    assert as_torch == pytest.approx(ref, rel=1e-13)
    # float32 tensors and a 0/1 float mask: same numbers as the same float32 values in numpy
    s32, y32 = samples.astype(np.float32), target.astype(np.float32)
    mixed = _all_metrics(torch.from_numpy(s32), y32, torch.from_numpy(mask.astype(np.float32)))
    assert mixed == pytest.approx(_all_metrics(s32, y32, mask.astype(int)), rel=1e-13)
    q_t = empirical_quantiles(torch.from_numpy(samples))
    assert isinstance(q_t, torch.Tensor) and q_t.dtype == torch.float64
    assert np.array_equal(q_t.numpy(), empirical_quantiles(samples))


@pytest.mark.gpu
def test_cuda_tensors_agree():
    samples, target, mask = _random_problem((2, 5, 3), 12, seed=4)
    ref = _all_metrics(samples, target, mask)
    cuda = [torch.from_numpy(a).cuda() for a in (samples, target, mask)]
    assert _all_metrics(*cuda) == pytest.approx(ref, rel=1e-12)


def test_values_outside_the_mask_are_ignored():
    samples, target, mask = _random_problem((3, 6, 4), 10, seed=6, p_missing=0.4)
    ref = _all_metrics(samples, target, mask)
    rng = _rng(7)
    samples2 = np.where(mask, samples, rng.normal(50, 30, samples.shape))
    target2 = np.where(mask, target, rng.normal(-50, 30, target.shape))
    assert _all_metrics(samples2, target2, mask) == ref
    assert np.isnan(target[~mask]).all()  # NaN outside the mask is fine (ref above)
    # ...and the mask does matter: scoring everything changes the numbers
    assert quantile_crps(samples2, target2) != pytest.approx(ref[0], rel=1e-3)


def test_accumulator_equals_one_shot():
    samples, target, mask = _random_problem((10, 6, 3, 2), 16, seed=8)
    mask[4:6] = False  # a batch with no targets adds nothing
    acc = MetricAccumulator(crps_sum=True)
    acc_mean = MetricAccumulator(point="mean", method="linear")
    for lo, hi in [(0, 3), (3, 4), (4, 6), (6, 10)]:
        acc.update(samples[:, lo:hi], target[lo:hi], mask[lo:hi])
        acc_mean.update(torch.from_numpy(samples[:, lo:hi]), target[lo:hi], mask[lo:hi])
    out = acc.compute()
    assert out["n_targets"] == int(mask.sum())
    assert out["crps"] == pytest.approx(quantile_crps(samples, target, mask), rel=1e-12)
    assert out["crps_sum"] == pytest.approx(crps_sum(samples, target, mask), rel=1e-12)
    assert out["mae"] == pytest.approx(mae(samples, target, mask), rel=1e-12)
    assert out["rmse"] == pytest.approx(rmse(samples, target, mask), rel=1e-12)
    out_mean = acc_mean.compute()
    assert {"crps", "mae", "rmse", "n_targets", "mre", "energy_score", "coverage_90"} <= set(out_mean)
    assert out_mean["crps"] == pytest.approx(
        quantile_crps(samples, target, mask, method="linear"), rel=1e-12
    )
    assert out_mean["mae"] == pytest.approx(mae(samples, target, mask, point="mean"), rel=1e-12)
    assert out_mean["rmse"] == pytest.approx(rmse(samples, target, mask, point="mean"), rel=1e-12)
    # the mean of per-batch CRPS values is not the CRPS (why the accumulator exists)
    per_batch = [
        quantile_crps(samples[:, lo:hi], target[lo:hi], mask[lo:hi]) for lo, hi in [(0, 3), (6, 10)]
    ]
    assert np.mean(per_batch) != pytest.approx(out["crps"], rel=1e-6)
    acc.reset()
    with pytest.raises(DataError, match="no target entries were accumulated"):
        acc.compute()


# ---------------------------------------------------------------- bad input

ALL_FUNCS = [quantile_crps, crps_sum, ensemble_crps, mae, rmse]


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_shape_mismatch_raises(func):
    samples, target, mask = _random_problem((2, 4, 3), 5)
    with pytest.raises(DataError, match=r"samples shape \(5, 2, 4, 3\) does not match target"):
        func(samples, target[:, :3], mask[:, :3])
    with pytest.raises(DataError, match="no sample axis"):
        func(samples[0], target, mask)
    with pytest.raises(DataError, match="mask shape .* does not match target shape"):
        func(samples, target, mask[:, :3])


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_non_finite_samples_raise(func):
    samples, target, mask = _random_problem((2, 4, 3), 5)
    samples[0, 0, 0, 0] = samples[1, 1, 1, 1] = np.nan
    samples[2, 0, 1, 2] = -np.inf
    with pytest.raises(DataError, match="samples contain 2 NaN and 1 inf values"):
        func(samples, target, mask)


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_nan_target_inside_mask_raises(func):
    samples, target, mask = _random_problem((2, 4, 3), 5)
    mask[0, 0, 0] = True
    target[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="target has 1 NaN/inf values at entries where mask is"):
        func(samples, target, mask)


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_empty_mask_raises(func):
    samples, target, mask = _random_problem((2, 4, 3), 5)
    with pytest.raises(DataError, match="mask selects no target entries"):
        func(samples, target, np.zeros_like(mask))


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_zero_samples_raise(func):
    with pytest.raises(DataError, match="at least 1 sample"):
        func(np.zeros((0, 2, 4, 3)), np.ones((2, 4, 3)))


def test_zero_normaliser_raises_and_points_to_ensemble_crps():
    samples = _rng(9).normal(size=(8, 2, 3, 2))
    target = np.zeros((2, 3, 2))
    for func in (quantile_crps, crps_sum):
        with pytest.raises(DataError, match="normalised CRPS.* is undefined.*ensemble_crps"):
            func(samples, target)
    acc = MetricAccumulator()
    acc.update(samples, target)
    with pytest.raises(DataError, match="normalised CRPS is undefined"):
        acc.compute()
    assert ensemble_crps(samples, target) > 0  # the unnormalised CRPS is fine


def test_other_bad_input_raises():
    samples, target, mask = _random_problem((2, 4, 3), 5)
    with pytest.raises(DataError, match="mask must be bool, or numeric with only 0/1"):
        quantile_crps(samples, target, mask * 2.0)
    with pytest.raises(DataError, match="explicit sum_axes"):
        crps_sum(samples[..., 0], target[..., 0], mask[..., 0])
    with pytest.raises(DataError, match="out of range"):
        crps_sum(samples, target, mask, sum_axes=(3,))
    with pytest.raises(DataError, match="samples contain 1 NaN"):
        empirical_quantiles(np.array([[np.nan]]))
    acc = MetricAccumulator()
    with pytest.raises(DataError, match="does not match target"):
        acc.update(samples, target[:1], mask)
    with pytest.raises(ValueError, match="quantiles must be"):
        quantile_crps(samples, target, mask, quantiles=[0.5, 1.5])
    with pytest.raises(ValueError, match="point must be one of"):
        mae(samples, target, mask, point="mode")
