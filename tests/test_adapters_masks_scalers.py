"""Evaluation masks (seeded, realised rates), splits/windows, scalers."""

from __future__ import annotations

import numpy as np
import pytest

from tsdiff.data.eval_masks import EVAL_MASKS, block_mask, historical_mask, horizon_mask, mixture_mask, point_mask
from tsdiff.data.scalers import MeanAbsScaler, MinMaxScaler, StandardScaler, scaler_from_state_dict
from tsdiff.data.splits import chronological_split, entity_split, forecast_starts, rolling_cutoffs
from tsdiff.errors import ConfigError, UnknownNameError


@pytest.fixture
def observed():
    rng = np.random.default_rng(1)
    return rng.random((400, 20, 2)) > 0.1


def test_point_mask_rate_and_seed(observed):
    m = point_mask(observed, 0.25, seed=3)
    assert not (m.target & ~observed).any()
    assert m.missing_rate == pytest.approx(m.target.sum() / observed.sum())
    assert abs(m.missing_rate - 0.25) < 0.01
    assert np.array_equal(m.target, point_mask(observed, 0.25, seed=3).target)
    assert not np.array_equal(m.target, point_mask(observed, 0.25, seed=4).target)


def test_block_mask_lengths(observed):
    full = np.ones((400, 20, 1), dtype=bool)
    m = block_mask(full, 12, 48, block_prob=0.01, point_rate=0.0, seed=0)
    runs = []
    for n in range(20):
        x = np.concatenate([[0], m.target[:, n, 0].astype(int), [0]])
        d = np.diff(x)
        ends, begins = np.flatnonzero(d == -1), np.flatnonzero(d == 1)
        runs += [e - b for b, e in zip(begins, ends) if e < 400]  # outages cut by the series end are shorter
    assert min(runs) >= 12 and 0 < m.missing_rate < 0.5
    mix = mixture_mask(observed, [("block", {"min_len": 12, "max_len": 48}), ("point", {"rate": 0.05})], seed=0)
    assert mix.missing_rate >= 0.05 - 0.01


def test_historical_and_horizon(observed):
    h = historical_mask(observed, shift=7)
    assert np.array_equal(h.target, observed & ~np.roll(observed, 7, axis=0))
    f = horizon_mask(observed, 24)
    assert f.target[-24:].sum() == observed[-24:].sum() and not f.target[:-24].any()
    assert f.missing_rate == pytest.approx(observed[-24:].sum() / observed.sum())
    with pytest.raises(UnknownNameError, match="point"):
        EVAL_MASKS.get("pointy")


def test_windows_and_splits():
    assert chronological_split(100) == {"train": (0, 70), "val": (70, 80), "test": (80, 100)}
    s = forecast_starts(50, context=24, horizon=12, stride=5, offset=100)
    assert s[0] == 100 and s[-1] + 36 <= 150 and np.all(np.diff(s) == 5)
    assert rolling_cutoffs(6071, 5, 30).tolist() == [6071, 6101, 6131, 6161, 6191]
    e = entity_split(np.arange(10), seed=0)
    assert sorted(np.concatenate(list(e.values())).tolist()) == list(range(10))
    assert [len(v) for v in e.values()] == [7, 1, 2]
    with pytest.raises(ConfigError, match="sum to 1"):
        chronological_split(10, (0.5, 0.2), names=("a", "b"))


@pytest.mark.parametrize("cls", [StandardScaler, MinMaxScaler, MeanAbsScaler])
def test_scalers_fit_on_observed_and_invert(cls):
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(50, 4, 2))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 3, 1] = np.nan  # all-NaN location: documented loc 0, scale 1
    sc = cls().fit(x[:40])
    y = sc.transform(x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
    np.testing.assert_allclose(sc.inverse_transform(y), x, rtol=0, atol=1e-12)
    assert sc.mean[3, 1] == 0 and sc.std[3, 1] == 1
    again = scaler_from_state_dict(sc.state_dict())
    assert type(again) is cls
    np.testing.assert_array_equal(again.transform(x), y)


def test_scaler_values():
    x = np.array([[[1.0]], [[3.0]], [[np.nan]], [[5.0]]])
    assert MinMaxScaler().fit(x).transform(x)[:, 0, 0][[0, 3]].tolist() == [0.0, 1.0]
    assert MeanAbsScaler().fit(-x).std[0, 0] == pytest.approx(3.0)
    s = StandardScaler().fit(x)
    assert s.mean[0, 0] == 3.0 and s.std[0, 0] == pytest.approx(2.0)


def test_block_training_mask():
    import torch

    from tsdiff.data.masking import TRAIN_MASKS, block_train_mask, missing_rate

    assert TRAIN_MASKS.get("block") is block_train_mask
    g = torch.Generator().manual_seed(0)
    observed = torch.rand(64, 36, 10, 2, generator=g) > 0.1
    cond = block_train_mask(observed, torch.Generator().manual_seed(1))
    assert cond.shape == observed.shape and not (cond & ~observed).any()
    assert torch.equal(cond, block_train_mask(observed, torch.Generator().manual_seed(1)))
    hidden = (~cond).float()
    # outages: series hidden for a contiguous run of 9..18 steps (ceil(36/4)..ceil(36/2)) on top of points
    full = block_train_mask(torch.ones(400, 36, 5, 1, dtype=torch.bool), torch.Generator().manual_seed(2), point_max=0.0)
    runs = []
    for series in (~full).permute(0, 2, 3, 1).reshape(-1, 36).int():
        if series.any():
            edges = torch.diff(torch.cat([torch.zeros(1, dtype=torch.int32), series, torch.zeros(1, dtype=torch.int32)]))
            (starts,), (ends,) = torch.nonzero(edges == 1, as_tuple=True), torch.nonzero(edges == -1, as_tuple=True)
            runs += (ends - starts).tolist()
            assert len(starts) == 1  # one outage per failing series
    assert min(runs) == 9 and max(runs) == 18
    failing = len(runs) / (400 * 5)
    assert 0.12 < failing < 0.18  # failure_prob 0.15
    rate = missing_rate(observed, cond)
    assert 0.05 < rate < 0.25 and hidden.mean() > 0
