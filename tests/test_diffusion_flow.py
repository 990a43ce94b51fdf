"""The flow-matching process (rectified flow) and the parametrisations wired into training."""

from __future__ import annotations

import math

import pytest
import torch

from tsdiff.diffusion import (
    FlowMatching,
    build_loss,
    build_process,
    convert_prediction,
    denoising_loss,
    process_from_config,
)
from tsdiff.errors import ConfigError, UnknownNameError

F64 = torch.float64


def test_straight_path_coefficients_and_sde_reading():
    p = FlowMatching()
    t = torch.tensor([1e-3, 0.25, 0.5, 0.9, 0.999], dtype=F64)
    a, s = p.marginal_coefficients(t)
    torch.testing.assert_close(a, 1 - t, rtol=0, atol=0)
    torch.testing.assert_close(s, t, rtol=0, atol=0)
    # d log a / dt = f and d s^2 / dt = 2 f s^2 + g^2 (central differences)
    tm = torch.tensor([0.05, 0.3, 0.6, 0.95], dtype=F64)
    h = 1e-6
    (a1, s1), (a0, s0) = p.marginal_coefficients(tm + h), p.marginal_coefficients(tm - h)
    f, g2 = p.sde_coefficients(tm)
    torch.testing.assert_close((a1.log() - a0.log()) / (2 * h), f, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close((s1**2 - s0**2) / (2 * h), 2 * f * tm**2 + g2, rtol=1e-6, atol=1e-6)
    # noise level t / (1 - t) and back
    torch.testing.assert_close(p.time_from_noise_level(p.noise_level(t)), t, rtol=1e-12, atol=1e-15)
    with pytest.raises(ConfigError, match="no SDE form at t = 1"):
        p.sde_coefficients(torch.tensor([1.0], dtype=F64))


def test_times_stay_inside_the_open_path():
    p = FlowMatching(eps=0.01, num_steps=5)
    assert p.time_range() == (0.99, 0.01, False)
    assert p.sampling_times().tolist() == pytest.approx([0.99, 0.745, 0.5, 0.255, 0.01], abs=1e-12)
    assert p.sampling_times(1).tolist() == [0.99]
    assert p.network_time(torch.tensor([0.5], dtype=F64)).tolist() == [499.5]
    g = torch.Generator().manual_seed(0)
    u = p.sample_train_time(20000, generator=g)
    assert float(u.min()) >= 0.01 and float(u.max()) <= 0.99
    assert abs(float(u.mean()) - 0.5) < 5 * 0.283 / math.sqrt(20000)
    ln = FlowMatching(train_time="logit_normal", logit_mean=1.0).sample_train_time(20000, generator=g)
    assert float(ln.min()) >= 1e-3 and float(ln.max()) <= 1 - 1e-3
    # the median of sigmoid(1 + z) is sigmoid(1)
    assert abs(float(ln.median()) - 1 / (1 + math.exp(-1.0))) < 0.01
    x = p.prior_sample((4000, 3), generator=g, dtype=F64)
    assert abs(float(x.std()) - 1) < 0.02


def test_config_round_trip_and_bad_options():
    p = build_process("flow", eps=0.002, num_steps=8, train_time="logit_normal", logit_std=0.5)
    cfg = p.config()
    assert cfg == {"name": "flow", "train_time": "logit_normal", "logit_mean": 0.0, "logit_std": 0.5,
                   "eps": 0.002, "num_steps": 8}
    q = process_from_config(cfg)
    assert isinstance(q, FlowMatching) and q.config() == cfg
    with pytest.raises(ConfigError, match=r"eps of the flow process must lie in \(0, 0.5\)"):
        FlowMatching(eps=0.5)
    with pytest.raises(UnknownNameError, match="unknown train_time 'normal'; valid names are: uniform, logit_normal"):
        FlowMatching(train_time="normal")
    with pytest.raises(ConfigError, match="logit_std must be a positive number"):
        FlowMatching(logit_std=0.0)
    with pytest.raises(ConfigError, match="logit_mean must be a finite number"):
        FlowMatching(logit_mean=float("nan"))


@pytest.mark.parametrize("process_name, prediction", [("flow", "velocity"), ("vp", "v"), ("ddpm", "x0")])
def test_matched_weighting_is_the_plain_mse_of_the_prediction(process_name, prediction):
    process = build_process(process_name)
    g = torch.Generator().manual_seed(0)
    x0, noise, guess = (torch.randn(5, 4, 2, 1, generator=g, dtype=F64) for _ in range(3))
    t = process.sample_train_time(5, generator=g)
    a, s = process.marginal_coefficients(t)
    x_t = process.sample_noisy(x0, t, noise)
    mask = torch.rand(5, 4, 2, 1, generator=g) > 0.3
    truth = convert_prediction(noise, "eps", prediction, x_t, a, s)
    want = ((guess - truth) ** 2)[mask].sum() / mask.sum()
    got = build_loss(prediction, weighting=None)(guess, noise, x_t, a, s, mask)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    # eps prediction, no weighting given: the masked eps MSE
    eps_loss = denoising_loss(guess, noise, x_t, a, s, mask, weighting=None)
    torch.testing.assert_close(eps_loss, ((guess - noise) ** 2)[mask].sum() / mask.sum())
