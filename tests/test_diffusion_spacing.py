"""Placement of sampling times (``spacing``): uniform, quadratic, log-SNR and Karras.

Values are checked against formulas written here; the effect on accuracy is checked
with the exact output moments of the deterministic samplers on Gaussian data (see
``test_diffusion_samplers``): with the optimal denoiser they are affine in ``x_T``.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.test_diffusion import MU, SIGMA, gaussian_eps_fn, rel_frobenius, sample_moments
from tsdiff.diffusion import (
    SAMPLERS,
    SPACINGS,
    DiscreteDDPM,
    SubVPSDE,
    VESDE,
    VPSDE,
    build_from_config,
)
from tsdiff.errors import ConfigError, UnknownNameError

F64 = torch.float64
SPACING_NAMES = ["karras", "log_snr", "quadratic", "uniform"]
SAMPLER_NAMES = ["euler_maruyama", "pc", "heun", "dpm_solver_pp", "ddim", "ddpm"]


def test_spacing_registry_names():
    assert SPACINGS.names() == SPACING_NAMES


def test_ddpm_uniform_spacing_is_the_default():
    p = DiscreteDDPM()
    for steps in (1, 2, 7, 20, 50):
        assert torch.equal(p.sampling_times(steps, "uniform"), p.sampling_times(steps))
        assert p.sampling_times(steps, "uniform").tolist() == (
            [round(49 - 49 * i / (steps - 1)) for i in range(steps)] if steps > 1 else [49])


def test_ddpm_quadratic_spacing_values():
    # DDIM's quadratic skip: round((T - 1) (1 - i / (S - 1))^2), denser near clean data.
    p = DiscreteDDPM()
    assert p.sampling_times(10, "quadratic").tolist() == [49, 39, 30, 22, 15, 10, 5, 2, 1, 0]
    want = [round(49 * (1 - i / 9) ** 2) for i in range(10)]
    assert p.sampling_times(10, "quadratic").tolist() == want


def test_ddpm_log_snr_positions_round_trip():
    p = DiscreteDDPM()
    steps = torch.arange(50)
    pos = p.continuous_time_from_log_snr(p.log_snr(steps))
    assert pos.dtype == F64
    torch.testing.assert_close(pos, steps.to(F64), rtol=0, atol=1e-9)
    # Between two steps the position interpolates the log-SNR linearly.
    lam = 0.25 * p.log_snr(torch.tensor([10])) + 0.75 * p.log_snr(torch.tensor([11]))
    assert float(p.continuous_time_from_log_snr(lam)) == pytest.approx(10.75, abs=1e-12)
    with pytest.raises(ConfigError, match="outside the range"):
        p.continuous_time_from_log_snr(torch.tensor([20.0]))


@pytest.mark.parametrize("steps", [5, 10])
def test_ddpm_log_snr_spacing_takes_nearest_steps(steps):
    p = DiscreteDDPM()
    lam = torch.linspace(float(p.log_snr(torch.tensor([49]))), float(p.log_snr(torch.tensor([0]))), steps,
                         dtype=F64)
    want = p.continuous_time_from_log_snr(lam).round().long()
    assert len(set(want.tolist())) == steps  # no collisions at these counts, so nothing is moved
    assert torch.equal(p.sampling_times(steps, "log_snr"), want)
    assert p.sampling_times(5, "log_snr").tolist() == [49, 40, 23, 5, 0]


@pytest.mark.parametrize("spacing", SPACING_NAMES)
@pytest.mark.parametrize("num_steps", [7, 50])
def test_ddpm_spacings_give_distinct_steps(spacing, num_steps):
    # Crowded spacings (log-SNR and Karras pile up near t = 0) are pushed apart, never merged.
    p = DiscreteDDPM(num_steps=num_steps)
    for steps in range(1, num_steps + 1):
        times = p.sampling_times(steps, spacing)
        assert times.dtype == torch.long and len(times) == steps
        assert int(times[0]) == num_steps - 1
        if steps > 1:
            assert int(times[-1]) == 0 and bool((times[:-1] > times[1:]).all())
    assert p.sampling_times(num_steps, spacing).tolist() == list(range(num_steps - 1, -1, -1))


@pytest.mark.parametrize("process", [VPSDE(), SubVPSDE(), VESDE()], ids=["vp", "subvp", "ve"])
def test_continuous_log_snr_spacing_is_uniform_in_lambda(process):
    times = process.sampling_times(8, "log_snr")
    assert times.dtype == F64 and times[0] == 1.0 and times[-1] == process.eps
    ends = process.log_snr(torch.tensor([1.0, process.eps], dtype=F64))
    want = torch.linspace(float(ends[0]), float(ends[1]), 8, dtype=F64)
    torch.testing.assert_close(process.log_snr(times), want, rtol=0, atol=1e-9)


def test_ve_log_snr_spacing_equals_uniform():
    # log sigma is affine in t for VE: uniform times already are uniform in log-SNR.
    p = VESDE()
    torch.testing.assert_close(p.sampling_times(12, "log_snr"), p.sampling_times(12), rtol=0, atol=1e-12)


def test_quadratic_and_karras_spacing_values():
    p = VPSDE()
    u = torch.linspace(1, 0, 6, dtype=F64)
    torch.testing.assert_close(p.sampling_times(6, "quadratic"), p.eps + (1 - p.eps) * u**2)
    times = p.sampling_times(6, "karras")
    root = p.noise_level(times) ** (1 / 7)  # Karras et al. eq. 5: sigma^(1/rho) evenly spaced
    torch.testing.assert_close(root.diff(), torch.full((5,), float(root[1] - root[0]), dtype=F64), rtol=1e-9,
                               atol=0)
    assert times[0] == 1.0 and times[-1] == p.eps


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
@pytest.mark.parametrize("process", [DiscreteDDPM(), VPSDE()], ids=["ddpm", "vp"])
def test_samplers_visit_the_spaced_times(sampler, process):
    seen = []
    fn = build_from_config("sampler", {"name": sampler, "steps": 6, "spacing": "log_snr"})
    fn(lambda x, t: torch.zeros_like(x), torch.ones(2, 3), process, generator=torch.Generator().manual_seed(0),
       callback=lambda e: seen.append(float(e["t"][0])))
    assert seen == process.sampling_times(6, "log_snr").tolist()


def test_unknown_spacing_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown spacing 'logsnr'; valid spacing names are: "
                       "karras, log_snr, quadratic, uniform"):
        SAMPLERS.get("dpm_solver_pp")(lambda x, t: x, torch.zeros(2, 3), DiscreteDDPM(), steps=5, spacing="logsnr")
    with pytest.raises(UnknownNameError, match="valid spacing names are"):
        VPSDE().sampling_times(5, "cosine")


def exact_moments(process, sampler, steps, spacing):
    """Exact output mean / covariance of a deterministic sampler, x_T ~ N(0, I)."""
    basis = torch.cat([torch.zeros(1, 4, dtype=F64), torch.eye(4, dtype=F64)]).reshape(5, 2, 2)
    out = SAMPLERS.get(sampler)(gaussian_eps_fn(process, MU, SIGMA), basis, process, steps=steps,
                                spacing=spacing).x0.reshape(5, 4)
    m = (out[1:] - out[0]).T
    return out[0], m @ m.T


# Exact covariance biases |Cov - SIGMA|_F / |SIGMA|_F of DPM-Solver++(2M) (computed
# with exact_moments, rounded): log-SNR spacing is what makes few steps usable.
@pytest.mark.parametrize("process, steps, uniform_bias, log_snr_bias", [
    (DiscreteDDPM(), 5, 0.236, 0.137),
    (DiscreteDDPM(), 10, 0.151, 0.078),
    (VPSDE(), 10, 0.538, 0.078),
    (SubVPSDE(), 10, 0.990, 0.090),
], ids=["ddpm-5", "ddpm-10", "vp-10", "subvp-10"])
def test_log_snr_spacing_reduces_dpm_solver_bias(process, steps, uniform_bias, log_snr_bias):
    biases = {}
    for spacing in ("uniform", "log_snr"):
        mean, cov = exact_moments(process, "dpm_solver_pp", steps, spacing)
        assert float((mean - MU).abs().max()) < 0.015  # prior mismatch only
        biases[spacing] = rel_frobenius(cov, SIGMA, SIGMA)
    assert biases["uniform"] == pytest.approx(uniform_bias, abs=0.001)
    assert biases["log_snr"] == pytest.approx(log_snr_bias, abs=0.001)


@pytest.mark.parametrize("shape", [(2, 2), (2, 1, 2)], ids=["BLN", "BLNC"])
def test_dpm_solver_log_snr_samples_match_distribution(shape):
    # CSDI's process, 10 evaluations: Monte Carlo samples against the exact moments and the data.
    p = DiscreteDDPM()
    n = 20000
    g = torch.Generator().manual_seed(11)
    out = SAMPLERS.get("dpm_solver_pp")(gaussian_eps_fn(p, MU, SIGMA), p.prior_sample((n, *shape), generator=g), p,
                                        steps=10, spacing="log_snr")
    assert out.nfe == 10 and out.x0.shape == (n, *shape)
    mean, cov = sample_moments(out.x0)
    exact_mean, exact_cov = exact_moments(p, "dpm_solver_pp", 10, "log_snr")
    # n = 20000: mean standard error <= 0.011, covariance rms error 1.3 % (test_diffusion_samplers).
    assert float((mean - exact_mean).abs().max()) < 0.05
    assert rel_frobenius(cov, exact_cov, SIGMA) < 0.05
    assert float((mean - MU).abs().max()) < 0.05
    assert rel_frobenius(cov, SIGMA, SIGMA) < 0.078 + 0.05


def test_ddim_quadratic_spacing_runs_with_its_own_bias():
    # Quadratic skip is selectable for DDIM; on this Gaussian its exact bias (0.369 at
    # 10 steps) is larger than uniform's (0.288): a choice for the user, not a default.
    p = DiscreteDDPM()
    quad = rel_frobenius(exact_moments(p, "ddim", 10, "quadratic")[1], SIGMA, SIGMA)
    uni = rel_frobenius(exact_moments(p, "ddim", 10, "uniform")[1], SIGMA, SIGMA)
    assert quad == pytest.approx(0.369, abs=0.001) and uni == pytest.approx(0.288, abs=0.001)
    assert math.isfinite(quad)


# --- explicit times (spacing given as the list of times, e.g. tuned by benchmarks/tune_times.py)

@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
@pytest.mark.parametrize("process, times", [(DiscreteDDPM(), [49, 42, 36, 22, 7, 3]),
                                            (VPSDE(), [1.0, 0.6, 0.2, 0.05, 0.01]),
                                            (DiscreteDDPM(), [42, 36, 22, 11, 0]),  # starts below T - 1
                                            (VPSDE(), [0.8, 0.3, 0.01])],
                         ids=["ddpm", "vp", "ddpm-start-42", "vp-start-0.8"])
def test_samplers_visit_explicit_times(sampler, process, times):
    seen = []
    fn = build_from_config("sampler", {"name": sampler, "spacing": times})
    out = fn(lambda x, t: torch.zeros_like(x), torch.ones(2, 3), process, generator=torch.Generator().manual_seed(0),
             callback=lambda e: seen.append(float(e["t"][0])))
    assert seen == [float(t) for t in times]
    n = len(times)
    assert out.nfe == {"pc": 2 * n, "heun": 2 * n - 1}.get(sampler, n)  # pc: one corrector step by default


def test_explicit_times_equal_to_a_named_spacing_give_identical_samples():
    # ancestral sampling with the list a named spacing produces is the same computation
    p = DiscreteDDPM()
    names = p.sampling_times(7, "log_snr").tolist()
    x_T = p.prior_sample((8, 4), generator=torch.Generator().manual_seed(1), dtype=F64)
    eps_fn = gaussian_eps_fn(p, MU, SIGMA)
    runs = [SAMPLERS.get("ddpm")(eps_fn, x_T, p, steps=7, spacing=spacing, generator=torch.Generator().manual_seed(2))
            for spacing in ("log_snr", names)]
    assert runs[0].nfe == runs[1].nfe == 7
    assert torch.equal(runs[0].x0, runs[1].x0)
    other = SAMPLERS.get("ddpm")(eps_fn, x_T, p, spacing=[49] + names[1:-1] + [1],
                                 generator=torch.Generator().manual_seed(2))
    assert not torch.equal(other.x0, runs[0].x0)  # the list is what is visited


def test_explicit_times_schedule_and_input_left_alone():
    p = DiscreteDDPM()
    given = [49, 42, 36, 22, 7, 3]
    sched = p.sampling_schedule(None, given)
    assert sched.times.dtype == torch.long and sched.times.tolist() == given and given == [49, 42, 36, 22, 7, 3]
    scale, std = p.marginal_coefficients(torch.tensor(given))
    torch.testing.assert_close(sched.scales, torch.cat([scale, torch.ones(1, dtype=F64)]))
    torch.testing.assert_close(sched.stds, torch.cat([std, torch.zeros(1, dtype=F64)]))
    assert p.sampling_schedule(6, tuple(given)).times.tolist() == given  # steps may restate the length
    assert VPSDE().sampling_schedule(None, torch.tensor([1.0, 0.5])).times.dtype == F64


@pytest.mark.parametrize("process, times, match", [
    (DiscreteDDPM(), [], "empty"),
    (DiscreteDDPM(), [49, 49, 0], "strictly decreasing"),
    (DiscreteDDPM(), [10, 20], "strictly decreasing"),
    (DiscreteDDPM(), [50, 0], r"outside the process's range \[0, 49\]"),
    (DiscreteDDPM(), [49, -1], "outside"),
    (DiscreteDDPM(), [49, 2.5], "whole numbers"),
    (DiscreteDDPM(), [49, float("nan")], "finite numbers"),
    (DiscreteDDPM(), [True, 0], "finite numbers"),
    (DiscreteDDPM(), 5, "sequence of numbers"),
    (VPSDE(), [1.0, 1e-4], r"outside the process's range \[0.001, 1\]"),
    (VESDE(), [1.5, 0.5], "outside"),
])
def test_bad_explicit_times_are_refused(process, times, match):
    with pytest.raises(ConfigError, match=match):
        process.sampling_schedule(None, times)


def test_steps_must_agree_with_explicit_times():
    with pytest.raises(ConfigError, match="steps=5 but the explicit sampling times list 2"):
        SAMPLERS.get("ddpm")(lambda x, t: x, torch.zeros(2, 3), DiscreteDDPM(), steps=5, spacing=[49, 0])
