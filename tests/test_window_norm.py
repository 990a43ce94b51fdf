"""Per-window normalisation (``prior.window_norm``): exact statistics, the process space, affine
equivariance of the samples, observed values bit for bit, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_properties import make_module
from tsdiff.diffusion.window_norm import MIN_SCALE, window_stats
from tsdiff.errors import ConfigError


def test_window_stats_are_the_mean_and_spread_of_the_conditioning_values_only():
    x = torch.tensor([[1.0, 3.0, 100.0, 5.0], [2.0, 2.0, 2.0, -7.0], [4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    cond = torch.tensor([[True, True, False, True], [True, True, True, False], [True, False, False, False],
                         [False] * 4])
    loc, scale = window_stats(x.view(4, 4, 1, 1), cond.view(4, 4, 1, 1))
    # window 0: 1, 3, 5 (100 is a target); 1: a flat context; 2: one value; 3: none
    np.testing.assert_allclose(loc.flatten().numpy(), [3.0, 2.0, 4.0, 0.0])
    np.testing.assert_allclose(scale.flatten().numpy(), [np.sqrt(8 / 3), MIN_SCALE, 1.0, 1.0], rtol=1e-6)
    assert loc.shape == scale.shape == (4, 1, 1, 1)


def _forecast_batch(B=6, L=12, N=2, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.cumsum(rng.normal(size=(B, L, N, 1)), axis=1).astype(np.float32))
    cond = torch.zeros(x.shape, dtype=torch.bool)
    cond[:, : L // 2] = True
    return x, cond


@pytest.mark.parametrize("prior", [{"name": "none", "window_norm": True},
                                   {"name": "seasonal", "season": 3, "window_norm": True}])
def test_the_network_sees_each_window_normalised_and_the_process_space_inverts_exactly(prior):
    module = make_module("csdi", 2, 1, 12, prior=prior)
    assert module.window_norm
    x, cond_mask = _forecast_batch()
    cond = module.condition(x, cond_mask, None)
    loc, scale = window_stats(x, cond_mask)
    seen = cond.for_network()
    torch.testing.assert_close(seen.values, (x - loc) / scale)
    ctx = seen.values[:, :6]  # the context of every window and series: mean 0, spread 1
    torch.testing.assert_close(ctx.mean(dim=1), torch.zeros(6, 2, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(ctx.std(dim=1, unbiased=False), torch.ones(6, 2, 1), atol=1e-5, rtol=0)
    z = module.to_process_space(x, cond)
    expected = (x - loc) / scale if cond.prior is None else (x - cond.prior) / scale / module.residual_scale
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(module.from_process_space(z, cond), x, atol=1e-5, rtol=0)
    seen_in_loss = []
    hook = module.net.register_forward_hook(lambda net, args, out: seen_in_loss.append(args[2].values))
    loss = module.diffusion_loss({"x": x, "observed_mask": torch.ones_like(cond_mask), "cond_mask": cond_mask},
                                 generator=torch.Generator().manual_seed(0))
    hook.remove()
    assert torch.isfinite(loss)
    torch.testing.assert_close(seen_in_loss[0], seen.values)


def test_samples_move_with_an_affine_change_of_each_window_and_keep_observed_values():
    """a * x + b (per window and series, a > 0) gives a * samples + b: the network sees the same
    normalised window, so only the mapping back differs."""
    module = make_module("csdi", 2, 1, 12, prior={"name": "seasonal", "season": 3, "window_norm": True}).eval()
    x, cond_mask = _forecast_batch()
    a = torch.tensor([0.5, 3.0]).view(1, 1, 2, 1) * torch.linspace(1, 2, 6).view(6, 1, 1, 1)
    b = torch.tensor([-4.0, 10.0]).view(1, 1, 2, 1)
    outs = []
    for values in (x, a * x + b):
        s, _ = module.sample(values, cond_mask, n_samples=3, sampler="ddim", steps=4,
                             generator=torch.Generator().manual_seed(0))
        assert torch.equal(s[:, cond_mask], values[cond_mask].expand(3, -1))  # observed bit for bit
        outs.append(s)
    torch.testing.assert_close(outs[1], a * outs[0] + b, atol=1e-4, rtol=1e-4)


def test_the_residual_scale_is_estimated_in_each_windows_units():
    module = make_module("csdi", 2, 1, 12, prior={"name": "seasonal", "season": 3, "window_norm": True})
    plain = make_module("csdi", 2, 1, 12, prior={"name": "seasonal", "season": 3})
    x, cond_mask = _forecast_batch(B=32)
    data = [{"x": x[i], "observed_mask": torch.ones_like(cond_mask[i]), "cond_mask": cond_mask[i]} for i in range(32)]
    r = x - plain.condition(x, cond_mask, None).prior
    target = ~cond_mask
    expect_plain = float((r[target].double() ** 2).mean().sqrt())
    expect_norm = float(((r / window_stats(x, cond_mask)[1])[target].double() ** 2).mean().sqrt())
    assert plain.estimate_prior_scale(data, n_windows=32) == pytest.approx(expect_plain, rel=1e-6)
    assert module.estimate_prior_scale(data, n_windows=32) == pytest.approx(expect_norm, rel=1e-6)


def test_forecaster_with_window_norm_on_real_exchange_rates_keeps_the_history_and_saves(data_dir, tmp_path):
    import tsdiff

    frame = pd.read_csv(data_dir / "exchange_rate" / "exchange_rate.txt.gz", header=None).iloc[:300, :3]
    frame.index = pd.bdate_range("1990-01-01", periods=len(frame))
    frame.columns = ["a", "b", "c"]
    fc = tsdiff.Forecaster(prediction_length=5, context_length=20, max_steps=3, n_samples=4, sampling_steps=3,
                           sampler="ddim", verbose=False, prior={"name": "seasonal", "window_norm": True})
    fc.fit(frame)
    assert fc.module_.window_norm
    forecast = fc.predict()
    assert np.isfinite(forecast.samples).all() and forecast.samples.shape == (4, 5, 3)
    again = tsdiff.Forecaster.load(fc.save(tmp_path / "fc.pt"))
    assert again.module_.window_norm
    np.testing.assert_array_equal(again.predict(frame).samples, forecast.samples)


@pytest.mark.parametrize("prior, match", [
    ({"name": "seasonal", "window_norm": "yes"}, "prior.window_norm must be true or false"),
    ({"name": "auto", "candidates": [{"name": "last_value", "window_norm": True}]}, "a candidate takes no window_norm"),
])
def test_bad_window_norm_options_are_clear_errors(prior, match):
    import tsdiff

    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 2)),
                         index=pd.date_range("2024-01-01", periods=60, freq="h"))
    with pytest.raises(ConfigError, match=match):
        tsdiff.Forecaster(prediction_length=3, context_length=6, prior=prior).fit(frame)


def test_window_norm_needs_a_whole_window_network():
    with pytest.raises(ConfigError, match="window_norm needs a network that denoises whole windows"):
        make_module("timegrad", 2, 1, 12, prior={"name": "none", "window_norm": True})
