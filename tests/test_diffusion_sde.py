"""Tests of the continuous-time SDEs, noise-level conversions, parametrisations, losses and builders.

Closed forms are recomputed here from Song et al. 2021 (App. B) with ``math``,
independently of the library code.
"""

from __future__ import annotations

import functools
import math
import re

import pytest
import torch

from tsdiff.diffusion import (
    LOSS_WEIGHTINGS,
    PREDICTIONS,
    PROCESSES,
    DiscreteDDPM,
    FlowMatching,
    SubVPSDE,
    VESDE,
    VPSDE,
    available,
    build_conditioning,
    build_from_config,
    build_loss,
    build_process,
    build_sampler,
    convert_prediction,
    denoising_loss,
    masked_eps_loss,
    process_from_config,
    sample_dpm_solver_pp,
    sample_pc,
    to_eps,
    to_score,
)
from tsdiff.errors import ConfigError, DataError, UnknownNameError

F64 = torch.float64
SDES = [VPSDE(), SubVPSDE(), VESDE()]
IDS = ["vp", "subvp", "ve"]
ALL = [DiscreteDDPM(), *SDES, FlowMatching()]
ALL_IDS = ["ddpm", *IDS, "flow"]


def closed_form(name, t):
    """(scale, std, f, g^2) at time t from Song et al. 2021, eqs. 9-12 (default parameters)."""
    big_b = 0.1 * t + 0.5 * (20 - 0.1) * t * t
    beta = 0.1 + t * (20 - 0.1)
    if name == "vp":
        return math.exp(-big_b / 2), math.sqrt(1 - math.exp(-big_b)), -beta / 2, beta
    if name == "subvp":
        return math.exp(-big_b / 2), 1 - math.exp(-big_b), -beta / 2, beta * (1 - math.exp(-2 * big_b))
    sigma = 0.01 * (50 / 0.01) ** t
    return 1.0, sigma, 0.0, sigma**2 * 2 * math.log(50 / 0.01)


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------


def test_registry_names():
    assert PROCESSES.names() == ["ddpm", "flow", "subvp", "ve", "vp"]
    assert available()["process"] == ["ddpm", "flow", "subvp", "ve", "vp"]


@pytest.mark.parametrize("process", SDES, ids=IDS)
def test_marginal_and_sde_coefficients_closed_form(process):
    t = torch.tensor([0.0, 1e-3, 0.25, 0.5, 0.9, 1.0], dtype=F64)
    scale, std = process.marginal_coefficients(t)
    f, g2 = process.sde_coefficients(t)
    assert scale.dtype == std.dtype == f.dtype == g2.dtype == F64
    want = torch.tensor([closed_form(process.name, v) for v in t.tolist()], dtype=F64)
    torch.testing.assert_close(torch.stack([scale, std, f, g2], 1), want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(process.diffusion(t), g2.sqrt())


@pytest.mark.parametrize("process", SDES, ids=IDS)
def test_sde_coefficients_generate_the_marginals(process):
    # d log scale / dt = f and d std^2 / dt = 2 f std^2 + g^2 (central differences).
    t = torch.tensor([0.05, 0.3, 0.6, 0.95], dtype=F64)
    h = 1e-6
    (a1, s1), (a0, s0) = process.marginal_coefficients(t + h), process.marginal_coefficients(t - h)
    _, std = process.marginal_coefficients(t)
    f, g2 = process.sde_coefficients(t)
    torch.testing.assert_close((a1.log() - a0.log()) / (2 * h), f, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close((s1**2 - s0**2) / (2 * h), 2 * f * std**2 + g2, rtol=1e-6, atol=1e-6)


def test_ddpm_sde_reading_matches_its_chain():
    p = DiscreteDDPM()
    t = torch.arange(50)
    f, g2 = p.sde_coefficients(t)
    # exp(2 f) = 1 - beta_t: scale ratio of one step; g^2 = -log(1 - beta_t).
    torch.testing.assert_close(torch.exp(2 * f), 1 - p.betas, rtol=1e-12, atol=0)
    torch.testing.assert_close(g2, -torch.log(1 - p.betas), rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.exp(-torch.cumsum(g2, 0)), p.alpha_bars, rtol=1e-10, atol=0)


@pytest.mark.parametrize("process", ALL, ids=ALL_IDS)
def test_reverse_and_probability_flow_drift(process):
    x = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    score = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    t = process.sampling_times(3)
    f, g2 = (c[:, None, None] for c in process.sde_coefficients(t))
    torch.testing.assert_close(process.drift(x, t), f * x)
    torch.testing.assert_close(process.reverse_drift(x, t, score), f * x - g2 * score)
    torch.testing.assert_close(process.reverse_drift(x, t, score, probability_flow=True), f * x - 0.5 * g2 * score)


@pytest.mark.parametrize("process", SDES, ids=IDS)
def test_time_noise_level_round_trips(process):
    t = torch.tensor([0.0, 1e-3, 0.01, 0.2, 0.5, 0.77, 1.0], dtype=F64)
    sigma = process.noise_level(t)
    scale, std = process.marginal_coefficients(t)
    torch.testing.assert_close(sigma, std / scale, rtol=1e-14, atol=0)
    torch.testing.assert_close(process.time_from_noise_level(sigma), t, rtol=1e-9, atol=1e-12)
    lam = process.log_snr(t[1:])
    torch.testing.assert_close(lam, torch.log(scale[1:] ** 2 / std[1:] ** 2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(process.time_from_log_snr(lam), t[1:], rtol=1e-9, atol=1e-12)
    # and noise level -> t -> noise level
    levels = torch.logspace(math.log10(float(sigma[1])), math.log10(float(sigma[-1])), 9, dtype=F64)
    torch.testing.assert_close(process.noise_level(process.time_from_noise_level(levels)), levels, rtol=1e-9, atol=0)


def test_ddpm_noise_level_round_trip_is_exact():
    p = DiscreteDDPM()
    t = torch.arange(50)
    back = p.time_from_noise_level(p.noise_level(t))
    assert back.dtype == torch.long and torch.equal(back, t)
    assert torch.equal(p.time_from_log_snr(p.log_snr(t)), t)


@pytest.mark.parametrize("process, bad", [
    (VPSDE(), 200.0), (SubVPSDE(), 1e3), (VESDE(), 0.001), (VESDE(), 60.0), (VPSDE(), -1.0),
    (DiscreteDDPM(), 1e-3), (DiscreteDDPM(), 1e6),
])
def test_noise_level_out_of_range(process, bad):
    with pytest.raises(ConfigError, match=rf"noise level sigma={re.escape(f'{bad:g}')} is outside the range \[.*\] "
                       rf"covered by the {process.name} process \(log-SNR in"):
        process.time_from_noise_level(torch.tensor([1.0, bad], dtype=F64))


@pytest.mark.parametrize("process", SDES, ids=IDS)
def test_time_validation(process):
    with pytest.raises(ConfigError, match=rf"times of the '{process.name}' process must lie in \[0, 1\]; got values in \[0.5, 1.5\]"):
        process.marginal(torch.zeros(2, 3), torch.tensor([0.5, 1.5]))
    with pytest.raises(ConfigError, match="expects float times"):
        process.network_time(torch.tensor([0, 1]))
    with pytest.raises(DataError, match=r"t must have shape \[B\] = \[2\]"):
        process.marginal(torch.zeros(2, 3), torch.tensor([0.5]))


@pytest.mark.parametrize("process", SDES, ids=IDS)
def test_sample_noisy_statistics_match_marginal(process):
    n = 20000
    g = torch.Generator().manual_seed(0)
    base = torch.tensor([[1.5, -2.0], [0.5, 3.0]])
    for time in (0.01, 0.5, 1.0):
        x0 = base.expand(n, 2, 2)
        t = torch.full((n,), time, dtype=F64)
        xt = process.sample_noisy(x0, t, torch.randn(x0.shape, generator=g))
        a, s, _, _ = closed_form(process.name, time)
        # 5 standard errors (s / sqrt(n) for the mean, s / sqrt(2n) for the std).
        assert float((xt.mean(0) - a * base).abs().max()) < 5 * s / math.sqrt(n)
        assert float((xt.std(0) - s).abs().max()) < 5 * s / math.sqrt(2 * n)


def test_priors():
    g = torch.Generator().manual_seed(0)
    for process, std in ((VPSDE(), 1.0), (SubVPSDE(), 1.0), (VESDE(), 50.0), (VESDE(sigma_max=7.0), 7.0)):
        x = process.prior_sample((20000, 2, 1, 2), generator=g, dtype=F64)
        assert x.shape == (20000, 2, 1, 2) and x.dtype == F64
        assert abs(float(x.std()) / std - 1) < 5 / math.sqrt(2 * 80000)
    a = VESDE().prior_sample((4, 3), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, 50 * torch.randn(4, 3, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("process", SDES, ids=IDS)
def test_sampling_train_and_network_times(process):
    t = process.sampling_times(5)
    assert t.dtype == F64 and t.tolist() == pytest.approx([1.0, 0.75025, 0.5005, 0.25075, 0.001], abs=1e-12)
    assert process.sampling_times(1).tolist() == [1.0]
    assert len(process.sampling_times()) == 1000
    for steps in (0, -2, 2.5, True):
        with pytest.raises(ConfigError, match=rf"steps must be an integer >= 1; got {steps!r}"):
            process.sampling_times(steps)
    tr = process.sample_train_time(20000, generator=torch.Generator().manual_seed(0))
    assert tr.shape == (20000,) and float(tr.min()) >= 1e-3 and float(tr.max()) <= 1.0
    assert abs(float(tr.mean()) - (1 + 1e-3) / 2) < 5 * 0.2887 / math.sqrt(20000)
    nt = process.network_time(torch.tensor([1e-3, 0.5, 1.0], dtype=F64))
    assert nt.dtype == torch.float32 and nt.tolist() == pytest.approx([0.999, 499.5, 999.0])


def test_ve_sampling_sigmas_are_geometric():
    p = VESDE()
    sig = p.noise_level(p.sampling_times(11))
    ratios = sig[:-1] / sig[1:]
    torch.testing.assert_close(ratios, torch.full((10,), float(ratios[0]), dtype=F64), rtol=1e-12, atol=0)
    assert float(sig[0]) == pytest.approx(50.0) and float(sig[-1]) == pytest.approx(0.01 * 5000**1e-3)


@pytest.mark.parametrize("name, kwargs", [
    ("vp", dict(beta_min=0.2, beta_max=10.0, eps=1e-4, num_steps=100)),
    ("subvp", {}),
    ("ve", dict(sigma_min=0.02, sigma_max=20.0)),
])
def test_sde_config_round_trip(name, kwargs):
    p = build_process(name, **kwargs)
    cfg = p.config()
    assert cfg["name"] == name and all(cfg[k] == v for k, v in kwargs.items())
    q = process_from_config(cfg)
    assert type(q) is type(p) and q.config() == cfg
    assert build_from_config("process", cfg).config() == cfg
    t = torch.tensor([0.3, 0.9], dtype=F64)
    torch.testing.assert_close(torch.stack(q.marginal_coefficients(t)), torch.stack(p.marginal_coefficients(t)))


@pytest.mark.parametrize("call, match", [
    (lambda: VPSDE(beta_min=-1.0), "beta_min must be a positive number; got -1.0"),
    (lambda: VPSDE(beta_min=5.0, beta_max=1.0), "beta_max must be >= beta_min"),
    (lambda: VESDE(sigma_min=1.0, sigma_max=1.0), "sigma_max must be > sigma_min"),
    (lambda: SubVPSDE(eps=0.0), r"eps must lie in the open interval \(0, 1\); got 0.0"),
    (lambda: VESDE(num_steps=0), "num_steps must be an integer >= 1; got 0"),
    (lambda: build_process("ve", beta_max=3), r"unknown option\(s\) \['beta_max'\] for process 've'; "
                                              "valid options are: sigma_min, sigma_max, eps, num_steps"),
])
def test_sde_constructor_validates(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


# --------------------------------------------------------------------------
# parametrisations
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 5, 3), (6, 5, 3, 2)], ids=["BLN", "BLNC"])
@pytest.mark.parametrize("process", ALL, ids=ALL_IDS)
def test_prediction_conversions_are_exact(process, shape):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=g, dtype=F64)
    eps = torch.randn(shape, generator=g, dtype=F64)
    t = process.sampling_times(6)
    a, s = process.marginal_coefficients(t)
    x_t = process.sample_noisy(x0, t, eps)
    ab, sb = a.reshape(-1, *[1] * (len(shape) - 1)), s.reshape(-1, *[1] * (len(shape) - 1))
    truth = {"eps": eps, "x0": x0, "v": ab * eps - sb * x0, "velocity": eps - x0, "score": -eps / sb}
    for source in PREDICTIONS:
        for target in PREDICTIONS:
            got = convert_prediction(truth[source], source, target, x_t, a, s)
            # float64; x0 from eps divides by scale (down to 6.6e-3 for VP at t=1).
            torch.testing.assert_close(got, truth[target], rtol=1e-9, atol=1e-9)


def test_unknown_prediction_lists_valid_names():
    x = torch.zeros(2, 3)
    with pytest.raises(UnknownNameError, match="unknown prediction 'noise'; valid prediction names are: eps, score, v, velocity, x0"):
        convert_prediction(x, "noise", "eps", x, torch.ones(2), torch.ones(2))
    with pytest.raises(UnknownNameError, match="valid prediction names"):
        to_eps(lambda x, t: x, VPSDE(), "flux")


def _gaussian_eps(process):
    mu = torch.tensor([0.5, -1.0, 1.0, 0.2], dtype=F64)
    sigma = torch.tensor([[1.0, 0.3, 0.0, 0.1], [0.3, 1.5, -0.2, 0.0], [0.0, -0.2, 0.8, 0.2], [0.1, 0.0, 0.2, 1.2]], dtype=F64)

    def eps_fn(x, t):
        a, s = (c[:, None] for c in process.marginal_coefficients(t))
        flat = x.reshape(x.shape[0], -1)
        cov = a[:, :, None] ** 2 * sigma + s[:, :, None] ** 2 * torch.eye(4, dtype=F64)
        return (s * torch.linalg.solve(cov, flat - a * mu)).reshape(x.shape)

    return eps_fn


@pytest.mark.parametrize("prediction", ["x0", "v", "score"])
def test_adapters_drive_samplers_from_any_parametrisation(prediction):
    process = VPSDE()
    eps_fn = _gaussian_eps(process)

    def net(x, t):  # the same optimal denoiser, parametrised as `prediction`
        a, s = process.marginal_coefficients(t)
        return convert_prediction(eps_fn(x, t), "eps", prediction, x, a, s)

    x_T = torch.randn(64, 2, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.full((64,), 0.4, dtype=F64)
    torch.testing.assert_close(to_eps(net, process, prediction)(x_T, t), eps_fn(x_T, t))
    s = process.marginal_coefficients(t)[1][:, None, None]
    torch.testing.assert_close(to_score(net, process, prediction)(x_T, t), -eps_fn(x_T, t) / s)
    want = sample_dpm_solver_pp(eps_fn, x_T, process, steps=20)
    got = sample_dpm_solver_pp(to_eps(net, process, prediction), x_T, process, steps=20)
    torch.testing.assert_close(got.x0, want.x0, rtol=1e-8, atol=1e-8)
    assert to_eps(eps_fn, process, "eps") is eps_fn


# --------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------


def test_denoising_loss_reduces_to_masked_eps_loss():
    g = torch.Generator().manual_seed(0)
    pred, noise, x_t = (torch.randn(4, 3, 2, generator=g) for _ in range(3))
    mask = torch.rand(4, 3, 2, generator=g) > 0.5
    a, s = VPSDE().marginal_coefficients(torch.tensor([0.1, 0.4, 0.7, 1.0], dtype=F64))
    got = denoising_loss(pred, noise, x_t, a, s, mask)
    torch.testing.assert_close(got, masked_eps_loss(pred, noise, mask))


def test_denoising_loss_weightings_values():
    # Two samples with SNR = a^2 / s^2 = 16 and 1: weights eps 1|1, x0 1/16|1,
    # min_snr(5) 5/16|1, max_snr 1|1.
    a = torch.tensor([0.8, 1.0], dtype=F64)
    s = torch.tensor([0.2, 1.0], dtype=F64)
    noise = torch.zeros(2, 2, 1, dtype=F64)
    pred = torch.tensor([[[1.0], [2.0]], [[3.0], [0.0]]], dtype=F64)  # eps errors
    mask = torch.tensor([[[1], [1]], [[1], [0]]])
    x_t = torch.zeros(2, 2, 1, dtype=F64)
    sq = [5.0, 9.0]  # per-sample masked squared eps error; 3 target entries
    for name, w in {"eps": (1, 1), "x0": (1 / 16, 1), "min_snr": (5 / 16, 1), "max_snr": (1, 1)}.items():
        want = (w[0] * sq[0] + w[1] * sq[1]) / 3
        assert denoising_loss(pred, noise, x_t, a, s, mask, weighting=name).item() == pytest.approx(want, rel=1e-12)
    assert denoising_loss(pred, noise, x_t, a, s, mask, weighting="min_snr", gamma=0.5).item() == pytest.approx(
        (0.5 / 16 * 5 + 0.5 * 9) / 3, rel=1e-12)
    assert LOSS_WEIGHTINGS.names() == ["eps", "max_snr", "min_snr", "v", "velocity", "x0"]
    # v: ((a^2 + s^2) / a)^2 = (0.68 / 0.8)^2 | 4; velocity: ((a + s) / a)^2 = 1.5625 | 4
    for name, w in {"v": ((0.68 / 0.8) ** 2, 4), "velocity": (1.5625, 4)}.items():
        want = (w[0] * sq[0] + w[1] * sq[1]) / 3
        assert denoising_loss(pred, noise, x_t, a, s, mask, weighting=name).item() == pytest.approx(want, rel=1e-12)


def test_x0_loss_in_any_parametrisation():
    # x0 weighting of any parametrisation = plain masked MSE of the implied x0.
    process = VESDE()
    g = torch.Generator().manual_seed(0)
    x0, noise, x0_pred = (torch.randn(3, 4, 2, generator=g, dtype=F64) for _ in range(3))
    t = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    a, s = process.marginal_coefficients(t)
    x_t = process.sample_noisy(x0, t, noise)
    mask = torch.ones(3, 4, 2)
    want = ((x0_pred - x0) ** 2).mean()
    for kind in ("x0", "eps", "v", "score"):
        pred = convert_prediction(x0_pred, "x0", kind, x_t, a, s)
        got = denoising_loss(pred, noise, x_t, a, s, mask, parametrization=kind, weighting="x0")
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------
# builders from config
# --------------------------------------------------------------------------


def test_builders():
    assert available() == {
        "process": ["ddpm", "flow", "subvp", "ve", "vp"],
        "sampler": ["ddim", "ddpm", "dpm_solver_pp", "euler_maruyama", "heun", "pc", "sde_dpm_solver_pp"],
        "conditioning": ["conditional", "guidance", "inpainting"],
        "parametrization": ["eps", "score", "v", "velocity", "x0"],
        "loss_weighting": ["eps", "max_snr", "min_snr", "v", "velocity", "x0"],
        "schedule": ["cosine", "linear", "quadratic"],
        "spacing": ["karras", "log_snr", "quadratic", "uniform"],
    }
    fn = build_from_config("sampler", {"name": "pc", "steps": 10, "snr": 0.1, "n_corrector": 2})
    assert isinstance(fn, functools.partial) and fn.func is sample_pc
    assert fn.keywords == {"steps": 10, "snr": 0.1, "n_corrector": 2}
    out = fn(lambda x, t: torch.zeros_like(x), torch.ones(2, 3), VESDE(), generator=torch.Generator().manual_seed(0))
    assert out.nfe == 30
    loss = build_from_config("loss", {"weighting": "min_snr", "gamma": 2.0})
    assert loss.keywords == {"parametrization": "eps", "weighting": "min_snr", "gamma": 2.0}
    assert build_conditioning("guidance", scale=2.0).keywords == {"scale": 2.0}


@pytest.mark.parametrize("call, error, match", [
    (lambda: build_sampler("pc", eta=1.0), ConfigError,
     r"unknown option\(s\) \['eta'\] for sampler 'pc'; valid options are: steps, spacing, n_corrector, snr"),
    (lambda: build_sampler("euler"), UnknownNameError,
     "unknown sampler 'euler'; valid sampler names are: ddim, ddpm, dpm_solver_pp, euler_maruyama, heun, pc"),
    (lambda: build_conditioning("repaint"), UnknownNameError,
     "valid conditioning names are: conditional, guidance, inpainting"),
    (lambda: build_conditioning("inpainting", scale=1.0), ConfigError, r"unknown option\(s\) \['scale'\]"),
    (lambda: build_loss(weighting="snr"), UnknownNameError,
     "unknown loss weighting 'snr'; valid loss weighting names are: eps, max_snr, min_snr, v, velocity, x0"),
    (lambda: build_loss(gamma=0), ConfigError, "gamma must be a positive number"),
    (lambda: build_from_config("sampler", {"steps": 3}), ConfigError, "sampler config needs a 'name' key; valid names are: ddim"),
    (lambda: build_from_config("model", {"name": "x"}), ConfigError, "unknown component kind 'model'"),
    (lambda: build_from_config("loss", {"weight": "x0"}), ConfigError, r"unknown option\(s\) \['weight'\] for loss"),
    (lambda: build_from_config("process", {"name": "vpsde"}), UnknownNameError, "valid process names are: ddpm, flow, subvp, ve, vp"),
])
def test_builder_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("name", ["ddpm", "vp", "subvp", "ve", "flow"])
def test_training_step_pieces_compose(name):
    # The path of training/module.py: train times -> noisy data -> network time -> loss.
    process = build_process(name)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, 3, 1, generator=g)
    t = process.sample_train_time(8, generator=g)
    noise = torch.randn(x.shape, generator=g)
    x_t = process.sample_noisy(x, t, noise)
    nt = process.network_time(t)
    assert x_t.dtype == torch.float32 and nt.dtype == torch.float32 and nt.shape == (8,)
    weight = torch.ones(1, requires_grad=True)
    pred = weight * x_t * nt[:, None, None, None] / 1000
    a, s = process.marginal_coefficients(t)
    loss = denoising_loss(pred, noise, x_t, a, s, torch.ones_like(x), weighting="min_snr")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(weight.grad).all()
