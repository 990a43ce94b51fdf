"""Every registered sampler with every registered process, on Gaussian data.

For data ``x0 ~ N(MU, SIGMA)`` (dimension 4, non-diagonal covariance) the
optimal eps predictor is closed-form for any process ``x_t = a x0 + s eps``:
``E[eps | x_t] = s Sigma_t^{-1} (x_t - a MU)``, ``Sigma_t = a^2 SIGMA + s^2 I``
(``gaussian_eps_fn`` of ``test_diffusion``). Samples must then follow
``N(MU, SIGMA)`` up to the sampler's discretisation bias.

Deterministic samplers (heun, dpm_solver_pp, ddim) are affine maps of ``x_T``
with this denoiser, so their exact output moments are computed by running them
on ``0`` and the unit vectors: the bias is then known exactly, and Monte Carlo
samples are checked against it.

Tolerances (n = 20000): the mean of a coordinate has standard error
``sqrt(1.5 / n) <= 0.0087``; the sample covariance has rms relative Frobenius
error ``sqrt((tr S^2 + |S|_F^2) / n) / |S|_F = 1.3 %``. Mean: ``< 0.05`` (bias
``<= 0.025``, the VE prior ``N(0, 50^2)`` ignoring ``MU``, plus > 2.8 standard
errors). Covariance: ``< 0.10`` relative Frobenius for every pair (largest
measured 0.047 with Monte Carlo noise, ve + ancestral at 200 steps).
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.test_diffusion import MU, SIGMA, gaussian_eps_fn, rel_frobenius, sample_moments
from tsdiff.diffusion import (
    SAMPLERS,
    DiscreteDDPM,
    FlowMatching,
    SamplerOutput,
    SubVPSDE,
    VESDE,
    VPSDE,
    sample_pc,
)
from tsdiff.errors import ConfigError, UnknownNameError

F64 = torch.float64
N = 20000
PROCS = {"ddpm": DiscreteDDPM(), "vp": VPSDE(), "subvp": SubVPSDE(), "ve": VESDE(), "flow": FlowMatching()}
PRIOR_STD = {"ddpm": 1.0, "vp": 1.0, "subvp": 1.0, "ve": 50.0, "flow": 1.0}
DETERMINISTIC = {"heun", "dpm_solver_pp", "ddim"}

# (process, sampler, steps, exact covariance bias bound for deterministic samplers).
# DDPM has 50 steps, so every sampler uses all of them. SDE step counts are the
# smallest round numbers keeping the bias well under the tolerance: first-order
# stochastic samplers 100 (euler_maruyama, pc) or 200 (ancestral ddpm / ddim on a
# uniform t grid; ddim 100), second-order ODE solvers 50. Exact biases measured:
# heun 0.003-0.007, dpm_solver_pp 0.003-0.023, ddim 0.036-0.047 (SDEs, 100 steps).
CASES = [
    ("ddpm", "euler_maruyama", 50, None),
    ("ddpm", "pc", 50, None),
    ("ddpm", "heun", 50, 0.01),
    ("ddpm", "dpm_solver_pp", 50, 0.01),
    ("vp", "euler_maruyama", 100, None),
    ("vp", "pc", 100, None),
    ("vp", "heun", 50, 0.01),
    ("vp", "dpm_solver_pp", 50, 0.025),
    ("vp", "ddim", 100, 0.04),
    ("vp", "ddpm", 200, None),
    ("subvp", "euler_maruyama", 100, None),
    ("subvp", "pc", 100, None),
    ("subvp", "heun", 50, 0.01),
    ("subvp", "dpm_solver_pp", 50, 0.015),
    ("subvp", "ddim", 100, 0.045),
    ("subvp", "ddpm", 200, None),
    ("ve", "euler_maruyama", 100, None),
    ("ve", "pc", 100, None),
    ("ve", "heun", 50, 0.01),
    ("ve", "dpm_solver_pp", 50, 0.01),
    ("ve", "ddim", 100, 0.05),
    ("ve", "ddpm", 200, None),
    ("flow", "euler_maruyama", 100, None),
    ("flow", "pc", 100, None),
    ("flow", "heun", 50, 0.035),
    ("flow", "dpm_solver_pp", 50, 0.01),
    ("flow", "ddim", 100, 0.03),
    ("flow", "ddpm", 200, None),
]
EXPECTED_NFE = {"euler_maruyama": lambda s: s, "pc": lambda s: 2 * s, "heun": lambda s: 2 * s - 1,
                "dpm_solver_pp": lambda s: s, "ddim": lambda s: s, "ddpm": lambda s: s,
                "sde_dpm_solver_pp": lambda s: s}


def exact_affine_moments(proc_name, sampler, steps):
    """Exact output mean/cov of a deterministic sampler: x0 = M x_T + c, x_T ~ N(0, prior_std^2 I)."""
    p = PROCS[proc_name]
    basis = torch.cat([torch.zeros(1, 4, dtype=F64), torch.eye(4, dtype=F64)]).reshape(5, 2, 2)
    out = SAMPLERS.get(sampler)(gaussian_eps_fn(p, MU, SIGMA), basis, p, steps=steps).x0.reshape(5, 4)
    c = out[0]
    m = (out[1:] - c).T
    return c, PRIOR_STD[proc_name] ** 2 * m @ m.T


@pytest.mark.parametrize("proc_name, sampler, steps, max_bias", CASES,
                         ids=[f"{p}-{s}-{n}" for p, s, n, _ in CASES])
def test_gaussian_samples_match_distribution(proc_name, sampler, steps, max_bias):
    p = PROCS[proc_name]
    shape = (2, 2) if len(proc_name) % 2 else (2, 1, 2)  # [B, L, N] and [B, L, N, C]
    g = torch.Generator().manual_seed(1234)
    x_T = p.prior_sample((N, *shape), generator=g)
    out = SAMPLERS.get(sampler)(gaussian_eps_fn(p, MU, SIGMA), x_T, p, steps=steps, generator=g)
    assert isinstance(out, SamplerOutput)
    assert out.x0.shape == x_T.shape and out.x0.dtype == torch.float32
    assert out.nfe == EXPECTED_NFE[sampler](steps)
    mean, cov = sample_moments(out.x0)
    assert float((mean - MU).abs().max()) < 0.05
    assert rel_frobenius(cov, SIGMA, SIGMA) < 0.10
    if sampler in DETERMINISTIC:
        exact_mean, exact_cov = exact_affine_moments(proc_name, sampler, steps)
        assert float((exact_mean - MU).abs().max()) < 0.025  # prior mismatch only
        assert rel_frobenius(exact_cov, SIGMA, SIGMA) < max_bias
        assert float((mean - exact_mean).abs().max()) < 0.04  # 4.6 standard errors
        assert rel_frobenius(cov, exact_cov, SIGMA) < 0.05  # ~4 rms


@pytest.mark.parametrize("proc_name", ["ddpm", "vp", "subvp", "ve"])
def test_sde_dpm_solver_pp_at_eta_zero_is_dpm_solver_pp(proc_name):
    p = PROCS[proc_name]
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = p.prior_sample((64, 2, 2), generator=torch.Generator().manual_seed(0)).double()
    for spacing in ("uniform", "log_snr"):
        ode = SAMPLERS.get("dpm_solver_pp")(denoise, x_T, p, steps=8, spacing=spacing)
        sde = SAMPLERS.get("sde_dpm_solver_pp")(denoise, x_T, p, steps=8, spacing=spacing, eta=0.0,
                                                generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(sde.x0, ode.x0, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("proc_name", ["ddpm", "vp", "subvp", "ve"])
def test_sde_dpm_solver_pp_is_closer_than_ancestral_at_few_steps(proc_name):
    # Gaussian data, 10 steps uniform in log-SNR, n = 20000 (Monte Carlo covariance error
    # about 1.3% rms). Measured covariance bias: ancestral 0.55-0.59, the 2nd-order SDE
    # solver 0.08-0.10; at 40 steps the solver is within 0.04.
    p = PROCS[proc_name]
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    bias = {}
    for name, steps in (("ddpm", 10), ("sde_dpm_solver_pp", 10), ("sde_dpm_solver_pp", 40)):
        g = torch.Generator().manual_seed(7)
        x_T = p.prior_sample((N, 2, 2), generator=g)
        out = SAMPLERS.get(name)(denoise, x_T, p, steps=steps, spacing="log_snr", generator=g)
        mean, cov = sample_moments(out.x0)
        assert float((mean - MU).abs().max()) < 0.05
        bias[name, steps] = rel_frobenius(cov, SIGMA, SIGMA)
    assert bias["ddpm", 10] > 0.4
    assert bias["sde_dpm_solver_pp", 10] < 0.15
    assert bias["sde_dpm_solver_pp", 40] < 0.05


def test_sde_dpm_solver_pp_first_step_is_ancestral():
    # With two visited times the only stochastic step is first order: DDPM's posterior
    # mean and variance between them (same noise draw), then Tweedie at the last time.
    p = DiscreteDDPM()
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = p.prior_sample((16, 2, 2), generator=torch.Generator().manual_seed(0)).double()
    kw = dict(steps=2, spacing="log_snr")
    a = SAMPLERS.get("ddpm")(denoise, x_T, p, generator=torch.Generator().manual_seed(5), **kw)
    b = SAMPLERS.get("sde_dpm_solver_pp")(denoise, x_T, p, generator=torch.Generator().manual_seed(5), **kw)
    torch.testing.assert_close(b.x0, a.x0, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("eta", [-0.1, 1.5, "1", True, float("nan")])
@pytest.mark.parametrize("sampler", ["ddim", "sde_dpm_solver_pp"])
def test_eta_samplers_reject_bad_eta(sampler, eta):
    # One check for both samplers; a YAML ``eta: true`` is rejected, not read as 1.0.
    with pytest.raises(ConfigError, match=r"eta must be a number in \[0, 1\]"):
        SAMPLERS.get(sampler)(lambda x, t: x, torch.zeros(2, 3), VPSDE(), eta=eta)


@pytest.mark.parametrize("sampler", ["heun", "dpm_solver_pp"])
@pytest.mark.parametrize("proc_name", ["vp", "ve"])
def test_ode_solvers_converge(proc_name, sampler):
    # The exact covariance bias shrinks with the step count (discretisation, not a bug).
    biases = [rel_frobenius(exact_affine_moments(proc_name, sampler, s)[1], SIGMA, SIGMA) for s in (10, 20, 80)]
    assert biases[0] > biases[1] > biases[2]
    assert biases[2] < 0.01


def _heun_time_bias(steps: int) -> float:
    p = PROCS["flow"]
    basis = torch.cat([torch.zeros(1, 4, dtype=F64), torch.eye(4, dtype=F64)]).reshape(5, 2, 2)
    out = SAMPLERS.get("heun")(gaussian_eps_fn(p, MU, SIGMA), basis, p, steps=steps, variable="time").x0.reshape(5, 4)
    m = (out[1:] - out[0]).T
    assert float((out[0] - MU).abs().max()) < 2e-3  # the mean is carried almost exactly
    return rel_frobenius(m @ m.T, SIGMA, SIGMA)


def test_heun_in_time_solves_the_straight_flow_in_few_steps():
    # On the flow process, Heun in t (dx/dt = eps - x0) converges from 2 steps on, where Heun in
    # sigma = t / (1 - t) (from 999 down) is far off at 10 steps; measured: 0.87, 0.27, 0.10, 0.007.
    biases = [_heun_time_bias(s) for s in (2, 3, 4, 10)]
    assert biases[0] > biases[1] > biases[2] > biases[3]
    assert biases[2] < 0.15 and biases[3] < 0.01
    assert rel_frobenius(exact_affine_moments("flow", "heun", 10)[1], SIGMA, SIGMA) > 1.0


def test_heun_in_time_equals_its_formula_and_ddim_is_euler_in_time():
    p = PROCS["flow"]
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = p.prior_sample((6, 2, 2), generator=torch.Generator().manual_seed(3), dtype=F64)
    times = p.sampling_times(3).tolist()

    def velocity(x, t):
        tt = torch.full((x.shape[0],), t, dtype=F64)
        eps = denoise(x, tt)
        return eps - (x - t * eps) / (1 - t)

    x = x_T
    for t, t_next in zip(times, times[1:]):
        d = velocity(x, t)
        x_euler = x + (t_next - t) * d
        x = x + 0.5 * (t_next - t) * (d + velocity(x_euler, t_next))
    eps = denoise(x, torch.full((6,), times[-1], dtype=F64))
    want = (x - times[-1] * eps) / (1 - times[-1])
    got = SAMPLERS.get("heun")(denoise, x_T, p, steps=3, variable="time")
    assert got.nfe == 5
    torch.testing.assert_close(got.x0, want, rtol=1e-10, atol=1e-10)
    # ddim (eta 0) on the flow process is Euler on dx/dt = eps - x0 in t
    x = x_T
    for t, t_next in zip(times, times[1:]):
        x = x + (t_next - t) * velocity(x, t)
    eps = denoise(x, torch.full((6,), times[-1], dtype=F64))
    torch.testing.assert_close(SAMPLERS.get("ddim")(denoise, x_T, p, steps=3, eta=0.0).x0,
                               (x - times[-1] * eps) / (1 - times[-1]), rtol=1e-10, atol=1e-10)


def test_heun_variable_errors():
    with pytest.raises(ConfigError, match="heun's variable must be 'sigma' or 'time'; got 't'"):
        SAMPLERS.get("heun")(lambda x, t: x, torch.zeros(2, 3), VPSDE(), variable="t")
    with pytest.raises(ConfigError, match="needs a continuous-time process .* 'ddpm' has discrete steps"):
        SAMPLERS.get("heun")(lambda x, t: x, torch.zeros(2, 3), DiscreteDDPM(), variable="time")


# --------------------------------------------------------------------------
# determinism, NFE, callback, hook, errors
# --------------------------------------------------------------------------

SAMPLER_NAMES = ["euler_maruyama", "pc", "heun", "dpm_solver_pp", "ddim", "ddpm", "sde_dpm_solver_pp"]
STOCHASTIC = ["euler_maruyama", "pc", "ddpm", "sde_dpm_solver_pp"]


@pytest.mark.parametrize("proc_name", ["ddpm", "vp", "ve"])
@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_seeds_control_samples(sampler, proc_name):
    p = PROCS[proc_name]
    fn = SAMPLERS.get(sampler)
    denoise = gaussian_eps_fn(p, MU, SIGMA)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return fn(denoise, p.prior_sample((16, 2, 1, 2), generator=g), p, steps=10, generator=g)

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.x0, b.x0) and a.nfe == b.nfe
    assert not torch.allclose(a.x0, c.x0)
    if sampler in STOCHASTIC:  # different noise for the same x_T
        x_T = p.prior_sample((16, 2, 2), generator=torch.Generator().manual_seed(0))
        d = fn(denoise, x_T, p, steps=10, generator=torch.Generator().manual_seed(1))
        e = fn(denoise, x_T, p, steps=10, generator=torch.Generator().manual_seed(2))
        assert not torch.allclose(d.x0, e.x0)


@pytest.mark.parametrize("proc_name", ["ddpm", "subvp"])
@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_nfe_callback_and_hook(sampler, proc_name):
    p = PROCS[proc_name]
    calls, events, hooks = [], [], []

    def denoise(x, t):
        calls.append(t.clone())
        assert t.shape == (x.shape[0],)
        return torch.zeros_like(x)

    def hook(x, t_next):
        hooks.append(None if t_next is None else t_next.clone())
        return x

    steps = 7
    out = SAMPLERS.get(sampler)(denoise, torch.ones(3, 2, 2), p, steps=steps,
                                generator=torch.Generator().manual_seed(0),
                                callback=events.append, step_hook=hook)
    assert out.nfe == len(calls) == EXPECTED_NFE[sampler](steps)
    times = p.sampling_times(steps)
    assert [e["step"] for e in events] == list(range(steps))
    assert [float(e["t"][0]) for e in events] == times.tolist()
    assert {"step", "t", "x", "x0_pred", "eps_pred"} <= set(events[0])
    # hook: the start time, every time reached, then None (clean data)
    assert [float(h[0]) for h in hooks[:-1]] == times.tolist() and hooks[-1] is None
    assert all(c.dtype == times.dtype for c in calls)


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
@pytest.mark.parametrize("steps", [0, -1])
def test_sampler_rejects_bad_steps(sampler, steps):
    with pytest.raises(ConfigError, match=rf"steps must be an integer >= 1; got {steps}"):
        SAMPLERS.get(sampler)(lambda x, t: x, torch.zeros(2, 3), VPSDE(), steps=steps)
    with pytest.raises(ConfigError, match=rf"steps must be an integer in \[1, 50\].*got {steps}"):
        SAMPLERS.get(sampler)(lambda x, t: x, torch.zeros(2, 3), DiscreteDDPM(), steps=steps)


def test_pc_options_and_nfe():
    p = VESDE()
    out = sample_pc(lambda x, t: torch.zeros_like(x) + 0.1, torch.ones(2, 3), p, steps=5, n_corrector=3,
                    generator=torch.Generator().manual_seed(0))
    assert out.nfe == 5 * (1 + 3)
    with pytest.raises(ConfigError, match="n_corrector must be an integer >= 0; got -1"):
        sample_pc(lambda x, t: x, torch.zeros(2, 3), p, n_corrector=-1)
    with pytest.raises(ConfigError, match="snr must be a positive number; got 0"):
        sample_pc(lambda x, t: x, torch.zeros(2, 3), p, snr=0)


def test_single_step_samplers_denoise_once():
    # One visited time: every sampler returns x0_pred at t = 1 (Tweedie), one evaluation.
    p = VPSDE()
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = torch.randn(8, 2, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.ones(8, dtype=F64)
    a, s = (float(c[0]) for c in p.marginal_coefficients(t))
    want = (x_T - s * denoise(x_T, t)) / a
    for name in SAMPLER_NAMES:
        kw = {"n_corrector": 0} if name == "pc" else {}
        out = SAMPLERS.get(name)(denoise, x_T, p, steps=1, generator=torch.Generator().manual_seed(0), **kw)
        assert out.nfe == 1
        torch.testing.assert_close(out.x0, want, rtol=1e-10, atol=1e-10)


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown sampler 'dpm'; valid sampler names are: "
                       "ddim, ddpm, dpm_solver_pp, euler_maruyama, heun, pc, sde_dpm_solver_pp"):
        SAMPLERS.get("dpm")


def test_euler_maruyama_step_matches_formula():
    # One EM step by hand: x - (f x - g^2 score) dt + g sqrt(dt) z, then Tweedie at t = eps.
    p = VPSDE(eps=0.5)
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x = torch.randn(4, 2, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    out = SAMPLERS.get("euler_maruyama")(denoise, x, p, steps=2, generator=torch.Generator().manual_seed(3))
    z = torch.randn(4, 2, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    t1 = torch.ones(4, dtype=F64)
    beta = 20.0
    s1 = math.sqrt(1 - math.exp(-(0.1 + 0.5 * 19.9)))
    score = -denoise(x, t1) / s1
    x_half = x - (-0.5 * beta * x - beta * score) * 0.5 + math.sqrt(beta) * math.sqrt(0.5) * z
    t2 = torch.full((4,), 0.5, dtype=F64)
    a2, s2 = (float(c[0]) for c in p.marginal_coefficients(t2))
    want = (x_half - s2 * denoise(x_half, t2)) / a2
    torch.testing.assert_close(out.x0, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("proc_name", ["ddpm", "vp", "subvp", "ve"])
@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_samplers_are_rank_agnostic(sampler, proc_name):
    # The same draws on [B, L, N] and on [B, L, N, C] (a view with C = 1 split off N)
    # give the same numbers, so every moment test above holds for both layouts.
    p = PROCS[proc_name]
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = p.prior_sample((64, 2, 2), generator=torch.Generator().manual_seed(5))
    bln = SAMPLERS.get(sampler)(denoise, x_T, p, steps=8, generator=torch.Generator().manual_seed(6))
    blnc = SAMPLERS.get(sampler)(denoise, x_T.reshape(64, 2, 1, 2), p, steps=8,
                                 generator=torch.Generator().manual_seed(6))
    assert blnc.x0.shape == (64, 2, 1, 2) and bln.nfe == blnc.nfe
    torch.testing.assert_close(blnc.x0.reshape(64, 2, 2), bln.x0, rtol=1e-5, atol=1e-5)
