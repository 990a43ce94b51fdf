"""Tests of tsdiff.diffusion: schedules, the DDPM process, parametrisations, losses, samplers.

The sampler tests use Gaussian data, for which the optimal noise predictor is
closed-form and the discrete samplers are affine maps plus Gaussian noise: the
exact distribution of their output can be computed by a small reference
recursion written from the papers' formulas (independently of the library
code). Monte Carlo samples are checked against those exact moments, and the
exact moments against the data distribution.
"""

from __future__ import annotations

import math

import pytest
import torch

from tsdiff.diffusion import (
    PROCESSES,
    SAMPLERS,
    SCHEDULES,
    DiscreteDDPM,
    ForwardProcess,
    SamplerOutput,
    append_dims,
    build_process,
    eps_to_x0,
    impose_observed,
    make_betas,
    masked_eps_loss,
    process_from_config,
    sample_ddim,
    sample_ddpm,
    x0_to_eps,
)
from tsdiff.errors import ConfigError, DataError, UnknownNameError

F64 = torch.float64


# --------------------------------------------------------------------------
# schedules
# --------------------------------------------------------------------------


def test_schedule_registry_names():
    assert SCHEDULES.names() == ["cosine", "linear", "quadratic"]


def test_linear_schedule_values():
    betas = make_betas("linear", 5, 0.1, 0.5)
    assert betas.dtype == F64 and betas.shape == (5,)
    torch.testing.assert_close(betas, torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=F64))


def test_quadratic_schedule_values():
    betas = make_betas("quadratic", 50, 1e-4, 0.5)
    assert betas.dtype == F64 and betas.shape == (50,)
    assert math.isclose(float(betas[0]), 1e-4, rel_tol=1e-12)
    assert math.isclose(float(betas[-1]), 0.5, rel_tol=1e-12)
    # Square roots linearly spaced (CSDI's "quad").
    roots = betas.sqrt()
    torch.testing.assert_close(roots.diff(), torch.full((49,), (0.5**0.5 - 0.01) / 49, dtype=F64))
    mid = (0.01 + 25 * (0.5**0.5 - 0.01) / 49) ** 2
    assert math.isclose(float(betas[25]), mid, rel_tol=1e-12)


def test_cosine_schedule_values():
    T = 100
    betas = make_betas("cosine", T, 1e-4, 0.5)
    assert betas.shape == (T,)
    assert bool(((betas > 0) & (betas < 1)).all())
    assert float(betas.max()) <= 0.999
    abar = torch.cumprod(1 - betas, 0)
    assert bool((abar.diff() < 0).all())

    def f(t):
        return math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2

    # Before clipping kicks in, abar_t = f(t + 1) / f(0) (Nichol & Dhariwal eq. 17).
    for t in (0, 10, 50, 90):
        assert math.isclose(float(abar[t]), f(t + 1) / f(0), rel_tol=1e-10)
    assert float(betas[-1]) == 0.999  # the raw last beta is 1: clipped


def test_cosine_ignores_beta_endpoints():
    torch.testing.assert_close(
        make_betas("cosine", 20, 1e-4, 0.5), make_betas("cosine", 20, 0.3, 0.4)
    )


@pytest.mark.parametrize("num_steps", [0, -3])
def test_schedule_rejects_too_few_steps(num_steps):
    with pytest.raises(ConfigError, match=rf"num_steps must be an integer >= 1; got {num_steps}"):
        make_betas("linear", num_steps, 1e-4, 0.02)


@pytest.mark.parametrize("num_steps", [2.5, "50", True])
def test_schedule_rejects_non_integer_steps(num_steps):
    with pytest.raises(ConfigError, match="num_steps must be an integer >= 1"):
        make_betas("linear", num_steps, 1e-4, 0.02)


@pytest.mark.parametrize(
    "start, end, bad",
    [(0.0, 0.5, "beta_start"), (-0.1, 0.5, "beta_start"), (1e-4, 1.0, "beta_end"),
     (1e-4, 1.5, "beta_end"), (float("nan"), 0.5, "beta_start")],
)
def test_schedule_rejects_betas_outside_unit_interval(start, end, bad):
    with pytest.raises(ConfigError, match=rf"{bad} must lie in the open interval \(0, 1\); got"):
        make_betas("quadratic", 10, start, end)


@pytest.mark.parametrize("schedule", ["linear", "quadratic"])
def test_schedule_rejects_decreasing_betas(schedule):
    with pytest.raises(ConfigError, match=r"beta_start <= beta_end; got beta_start=0.5 > beta_end=0.1"):
        make_betas(schedule, 10, 0.5, 0.1)


def test_unknown_schedule_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown beta schedule 'quad'.*cosine, linear, quadratic"):
        make_betas("quad", 10, 1e-4, 0.5)


# --------------------------------------------------------------------------
# process
# --------------------------------------------------------------------------


def test_ddpm_defaults_and_tables():
    p = DiscreteDDPM()
    assert (p.num_steps, p.schedule, p.beta_start, p.beta_end) == (50, "quadratic", 1e-4, 0.5)
    torch.testing.assert_close(p.betas, make_betas("quadratic", 50, 1e-4, 0.5))
    torch.testing.assert_close(p.alphas, 1 - p.betas)
    abar = torch.tensor([math.prod(1 - b for b in p.betas[: t + 1].tolist()) for t in range(50)], dtype=F64)
    torch.testing.assert_close(p.alpha_bars, abar, rtol=1e-12, atol=0)
    assert p.alpha_bars.dtype == F64
    assert isinstance(p, ForwardProcess)


def test_process_registry_and_build():
    assert "ddpm" in PROCESSES
    p = build_process("ddpm", num_steps=10, schedule="linear", beta_start=1e-3, beta_end=0.2)
    assert isinstance(p, DiscreteDDPM) and p.num_steps == 10
    with pytest.raises(UnknownNameError, match="unknown process 'vpsde'; valid process names are: ddpm, flow, subvp, ve, vp"):
        build_process("vpsde")


def test_config_round_trip():
    p = DiscreteDDPM(num_steps=30, schedule="cosine", beta_start=2e-4, beta_end=0.3)
    cfg = p.config()
    assert cfg == {"name": "ddpm", "num_steps": 30, "schedule": "cosine",
                   "beta_start": 2e-4, "beta_end": 0.3}
    for q in (DiscreteDDPM.from_config(cfg), process_from_config(cfg)):
        assert type(q) is DiscreteDDPM and q.config() == cfg
        assert torch.equal(q.betas, p.betas) and torch.equal(q.alpha_bars, p.alpha_bars)


def test_from_config_rejects_bad_keys():
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['steps'\] for process 'ddpm'; valid options are: num_steps"):
        DiscreteDDPM.from_config({"name": "ddpm", "steps": 10})
    with pytest.raises(ConfigError, match="config is for process 've'"):
        DiscreteDDPM.from_config({"name": "ve"})


def test_ddpm_constructor_validates():
    with pytest.raises(ConfigError, match="num_steps must be an integer >= 1"):
        DiscreteDDPM(num_steps=0)
    with pytest.raises(ConfigError, match=r"beta_end must lie in the open interval \(0, 1\)"):
        DiscreteDDPM(beta_end=2.0)


def test_marginal_and_sample_noisy_values():
    p = DiscreteDDPM()
    x0 = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 17, 49])
    mean, std = p.marginal(x0, t)
    abar = p.alpha_bars[t].float()
    assert mean.shape == x0.shape and std.shape == (3, 1, 1, 1)
    torch.testing.assert_close(mean, abar.sqrt()[:, None, None, None] * x0)
    torch.testing.assert_close(std.flatten(), (1 - abar).sqrt())
    torch.testing.assert_close(p.sample_noisy(x0, t, noise), mean + std * noise)


def test_sample_noisy_statistics_match_marginal():
    p = DiscreteDDPM()
    n = 20000
    g = torch.Generator().manual_seed(0)
    base = torch.tensor([[1.5, -2.0], [0.5, 3.0]])  # one x0 of shape [L=2, N=2]
    for step in (0, 10, 30, 49):
        x0 = base.expand(n, 2, 2)
        t = torch.full((n,), step)
        xt = p.sample_noisy(x0, t, torch.randn(x0.shape, generator=g))
        mean, std = p.marginal(x0[:1], t[:1])
        s = float(std)
        # Standard errors: s / sqrt(n) for the mean, s / sqrt(2n) for the std;
        # 5 of them keeps the check robust while still catching a wrong formula.
        assert (xt.mean(0) - mean[0]).abs().max() < 5 * s / math.sqrt(n)
        assert (xt.std(0) - s).abs().max() < 5 * s / math.sqrt(2 * n)


def test_timestep_validation():
    p = DiscreteDDPM()
    x0 = torch.zeros(2, 3)
    with pytest.raises(ConfigError, match=r"timesteps must lie in \{0, ..., 49\}.*got values in \[0, 50\]"):
        p.marginal(x0, torch.tensor([0, 50]))
    with pytest.raises(ConfigError, match=r"got values in \[-1, 3\]"):
        p.sample_noisy(x0, torch.tensor([-1, 3]), torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="expects integer timesteps"):
        p.marginal(x0, torch.tensor([0.0, 1.0]))
    with pytest.raises(DataError, match=r"t must have shape \[B\] = \[2\]"):
        p.marginal(x0, torch.tensor([0, 1, 2]))
    with pytest.raises(DataError, match="noise shape"):
        p.sample_noisy(x0, torch.tensor([0, 1]), torch.zeros(2, 4))


def test_train_time_prior_and_network_time():
    p = DiscreteDDPM(num_steps=7)
    t = p.sample_train_time(5000, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.shape == (5000,)
    assert set(t.tolist()) == set(range(7))
    t2 = p.sample_train_time(5000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(t, t2)
    nt = p.network_time(torch.tensor([0, 3, 6]))
    assert nt.dtype == torch.float32 and nt.tolist() == [0.0, 3.0, 6.0]
    x = p.prior_sample((4, 3, 2, 1), generator=torch.Generator().manual_seed(0), dtype=F64)
    assert x.shape == (4, 3, 2, 1) and x.dtype == F64
    assert torch.equal(x, torch.randn(4, 3, 2, 1, generator=torch.Generator().manual_seed(0), dtype=F64))


def test_sampling_times_spacing():
    p = DiscreteDDPM()
    assert p.sampling_times().tolist() == list(range(49, -1, -1))
    tau = p.sampling_times(20)
    assert tau.dtype == torch.long and len(tau) == 20
    assert tau[0] == 49 and tau[-1] == 0 and bool((tau.diff() < 0).all())
    assert tau.tolist() == [round(49 - 49 * i / 19) for i in range(20)]
    assert p.sampling_times(1).tolist() == [49]
    assert p.sampling_times(2).tolist() == [49, 0]
    for T in (7, 50, 100):  # no duplicates for any valid count
        q = DiscreteDDPM(num_steps=T)
        for s in range(1, T + 1):
            assert len(set(q.sampling_times(s).tolist())) == s
    sched = p.sampling_schedule(20)
    assert sched.scales[-1] == 1 and sched.stds[-1] == 0
    torch.testing.assert_close(sched.scales[:-1], p.alpha_bars[tau].sqrt())


# --------------------------------------------------------------------------
# parametrisation, loss, conditioning, helpers
# --------------------------------------------------------------------------


def test_append_dims():
    x = torch.arange(3.0)
    assert append_dims(x, 4).shape == (3, 1, 1, 1)
    assert append_dims(x, 1).shape == (3,)
    with pytest.raises(DataError, match="more than the target"):
        append_dims(torch.zeros(2, 2), 1)


@pytest.mark.parametrize("shape", [(8, 5, 3), (8, 5, 3, 2)])
def test_eps_x0_round_trip(shape):
    p = DiscreteDDPM()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=g, dtype=F64)
    eps = torch.randn(shape, generator=g, dtype=F64)
    t = torch.tensor([0, 1, 5, 10, 20, 30, 40, 49])
    abar = p.alpha_bars[t]
    xt = p.sample_noisy(x0, t, eps)
    torch.testing.assert_close(eps_to_x0(xt, eps, abar), x0, rtol=0, atol=1e-6)
    torch.testing.assert_close(x0_to_eps(xt, x0, abar), eps, rtol=0, atol=1e-6)
    torch.testing.assert_close(x0_to_eps(xt, eps_to_x0(xt, eps, abar), abar), eps, rtol=0, atol=1e-6)


def test_masked_eps_loss_values():
    eps = torch.zeros(2, 2, 2)
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.5], [2.0, 0.0]]])
    mask = torch.tensor([[[1, 0], [1, 1]], [[0, 0], [1, 0]]])
    # (1 + 9 + 16 + 4) / 4 target entries
    assert masked_eps_loss(pred, eps, mask).item() == pytest.approx(30 / 4)
    assert masked_eps_loss(pred, eps, mask.bool()).item() == pytest.approx(30 / 4)
    empty = masked_eps_loss(pred, eps, torch.zeros_like(mask))
    assert empty.ndim == 0 and empty.item() == 0.0
    # Broadcast mask [B, 1, N]: counts every covered entry.
    assert masked_eps_loss(pred, eps, torch.tensor([[[1, 0]], [[0, 0]]])).item() == pytest.approx(10 / 2)


def test_impose_observed():
    x = torch.zeros(2, 3)
    obs = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    expected = torch.tensor([[1.0, 0.0, 3.0], [0.0, 0.0, 6.0]])
    assert torch.equal(impose_observed(x, obs, mask), expected)
    assert torch.equal(impose_observed(x, obs, mask.bool()), expected)


# --------------------------------------------------------------------------
# Gaussian data: optimal denoiser and exact sampler moments
# --------------------------------------------------------------------------

# Data x0 ~ N(MU, SIGMA) on shape [L=2, N=2] (flattened row-major, dimension 4).
# SIGMA = kron(time correlation, node covariance): non-diagonal, eigenvalues
# {2.75, 1.25, 0.69, 0.31}.
SIGMA = torch.kron(
    torch.tensor([[1.0, 0.6], [0.6, 1.0]], dtype=F64),
    torch.tensor([[1.0, -0.4], [-0.4, 1.5]], dtype=F64),
)
MU = torch.tensor([0.5, -1.0, 1.0, 0.2], dtype=F64)
N_SAMPLES = 20000


def gaussian_eps_fn(process, mu, sigma, target=None, observed=None):
    """Optimal eps predictor E[eps | x_t] for x0 ~ N(mu, sigma), any data shape [B, ...].

    E[eps | x_t] = std * Sigma_t^{-1} (x_t - scale * mu), Sigma_t = scale^2 Sigma + std^2 I,
    with (scale, std) = (sqrt(abar), sqrt(1 - abar)).

    With ``target`` (flat indices) and ``observed`` ([B, D]), the data is the
    conditional Gaussian of the target entries given the observed others: eps is
    returned for target entries only (0 elsewhere), and conditioning entries of
    x_t are never read, like a CSDI network.
    """
    d = mu.shape[0]
    if target is None:
        target = torch.arange(d)
        mean_fn = lambda b: mu.expand(b, d)  # noqa: E731
        cov = sigma
    else:
        cond = torch.tensor([i for i in range(d) if i not in target.tolist()])
        s_tc = sigma[target][:, cond]
        gain = s_tc @ torch.linalg.inv(sigma[cond][:, cond])
        cov = sigma[target][:, target] - gain @ s_tc.T
        mean_fn = lambda b: mu[target] + (observed[:b, cond] - mu[cond]) @ gain.T  # noqa: E731
    lam, vecs = torch.linalg.eigh(cov)

    def denoise(x, t):
        b = x.shape[0]
        scale, std = (c[:, None] for c in process.marginal_coefficients(t))
        xt = x.reshape(b, -1).to(F64)[:, target]
        z = (xt - scale * mean_fn(b)) @ vecs / (scale**2 * lam + std**2)
        eps = torch.zeros(b, d, dtype=F64)
        eps[:, target] = std * z @ vecs.T
        return eps.to(x.dtype).reshape(x.shape)

    return denoise


def exact_sampler_moments(process, mu, sigma, *, steps, eta, large=False):
    """Exact mean and covariance of the sampler output for x0 ~ N(mu, sigma), x_T ~ N(0, I).

    Reference written from the papers (not from the library): each step is
    x_prev = alpha x + beta eps + c z, with eps = K (x - sqrt(abar) mu) affine in x:
      * eta = 1: Ho et al. 2020 Alg. 2 with respaced betas
        beta' = 1 - abar_t / abar_prev and variance beta_tilde;
      * eta = 0: Song et al. 2021 eq. 12 (DDIM, sigma = 0);
      * ``large``: Alg. 2 with variance beta' instead of beta_tilde (eta = 1).
    The last step goes to abar_prev = 1 without noise.
    """
    d = mu.shape[0]
    eye = torch.eye(d, dtype=F64)
    T = process.num_steps
    steps = T if steps is None else steps
    tau = [round((T - 1) * (1 - i / (steps - 1))) for i in range(steps)] if steps > 1 else [T - 1]
    abars = [float(process.alpha_bars[t]) for t in tau] + [1.0]
    m, cov = torch.zeros(d, dtype=F64), eye.clone()
    for ab, ab_prev in zip(abars[:-1], abars[1:]):
        if eta == 1:
            beta = 1 - ab / ab_prev
            alpha, coef = 1 / math.sqrt(1 - beta), -beta / math.sqrt((1 - ab) * (1 - beta))
            c2 = (beta if ab_prev < 1 else 0.0) if large else (1 - ab_prev) / (1 - ab) * beta
        else:
            assert eta == 0
            alpha = math.sqrt(ab_prev / ab)
            coef = math.sqrt(1 - ab_prev) - math.sqrt(ab_prev * (1 - ab) / ab)
            c2 = 0.0
        k = math.sqrt(1 - ab) * torch.linalg.inv(ab * sigma + (1 - ab) * eye)
        mat = alpha * eye + coef * k
        m = mat @ m - coef * math.sqrt(ab) * (k @ mu)
        cov = mat @ cov @ mat.T + c2 * eye
    return m, cov


def rel_frobenius(a, b, ref):
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(ref))


def sample_moments(x):
    flat = x.reshape(x.shape[0], -1).to(F64)
    return flat.mean(0), torch.cov(flat.T)


QUAD50 = dict(num_steps=50, schedule="quadratic", beta_start=1e-4, beta_end=0.5)  # CSDI
LIN100 = dict(num_steps=100, schedule="linear", beta_start=1e-4, beta_end=0.2)  # abar_T ~ 2e-5

# (process, sampler, steps, eta, max discretisation bias of the covariance).
# The bias bounds are the exact relative Frobenius errors |Cov_out - SIGMA|_F /
# |SIGMA|_F of each discrete sampler with the optimal denoiser (computed by
# exact_sampler_moments: 0.108, 0.068, 0.059, 0.152, 0.108), rounded up.
# Ancestral sampling with beta_tilde and coarse DDIM under-disperse by 6-15 %
# on these short schedules, so a flat "< 10 % from SIGMA" cannot hold for
# ddpm-quad50 or ddim-20 however many samples are drawn. The bias belongs to
# the algorithms, not to the implementation: it vanishes on fine schedules
# (test_exact_moments_converge_with_steps).
GAUSSIAN_CASES = [
    pytest.param(QUAD50, "ddpm", None, 1.0, 0.11, id="ddpm-quad50"),
    pytest.param(LIN100, "ddpm", None, 1.0, 0.07, id="ddpm-linear100"),
    pytest.param(QUAD50, "ddim", None, 0.0, 0.06, id="ddim-eta0-50"),
    pytest.param(QUAD50, "ddim", 20, 0.0, 0.155, id="ddim-eta0-20"),
    pytest.param(QUAD50, "ddim", None, 1.0, 0.11, id="ddim-eta1-50"),
]


@pytest.mark.parametrize("proc_kwargs, sampler, steps, eta, max_bias", GAUSSIAN_CASES)
def test_exact_moments_discretisation_bias(proc_kwargs, sampler, steps, eta, max_bias):
    p = DiscreteDDPM(**proc_kwargs)
    m, cov = exact_sampler_moments(p, MU, SIGMA, steps=steps, eta=eta)
    # Mean bias comes only from x_T ~ N(0, I) instead of N(sqrt(abar_T) mu, .).
    assert float((m - MU).abs().max()) < 0.01
    bias = rel_frobenius(cov, SIGMA, SIGMA)
    assert bias < max_bias
    assert bias > max_bias - 0.015  # the stated bound is tight, not a blanket allowance


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_exact_moments_converge_with_steps(schedule):
    # A fine schedule makes both samplers (nearly) exact: the biases above are discretisation.
    p = DiscreteDDPM(num_steps=1000, schedule=schedule, beta_start=1e-4, beta_end=0.02)
    biases = []
    for eta in (0, 1):
        m, cov = exact_sampler_moments(p, MU, SIGMA, steps=None, eta=eta)
        assert float((m - MU).abs().max()) < 0.01
        biases.append(rel_frobenius(cov, SIGMA, SIGMA))
    assert max(biases) < 0.015
    coarse = [rel_frobenius(exact_sampler_moments(p, MU, SIGMA, steps=s, eta=0)[1], SIGMA, SIGMA)
              for s in (10, 50, 200)]
    assert coarse[0] > coarse[1] > coarse[2] > biases[0]


@pytest.mark.parametrize("shape", [(2, 2), (2, 1, 2)], ids=["BLN", "BLNC"])
@pytest.mark.parametrize("proc_kwargs, sampler, steps, eta, max_bias", GAUSSIAN_CASES)
def test_gaussian_samples_match_distribution(proc_kwargs, sampler, steps, eta, max_bias, shape):
    p = DiscreteDDPM(**proc_kwargs)
    g = torch.Generator().manual_seed(1234)
    x_T = p.prior_sample((N_SAMPLES, *shape), generator=g)
    kwargs = dict(steps=steps, generator=g)
    if sampler == "ddim":
        kwargs["eta"] = eta
    out = SAMPLERS.get(sampler)(gaussian_eps_fn(p, MU, SIGMA), x_T, p, **kwargs)
    assert isinstance(out, SamplerOutput)
    assert out.x0.shape == x_T.shape and out.x0.dtype == torch.float32
    assert out.nfe == (steps or p.num_steps)
    mean, cov = sample_moments(out.x0)
    exact_mean, exact_cov = exact_sampler_moments(p, MU, SIGMA, steps=steps, eta=eta)
    # Tolerances, for n = 20000: each mean coordinate has standard error
    # sqrt(SIGMA_ii / n) <= 0.011, so 0.05 is > 4 standard errors on top of a
    # mean bias < 0.01. The sample covariance has rms Frobenius error
    # sqrt((tr(S)^2 + |S|_F^2) / n) = 1.3 % of |SIGMA|_F; 5 % is ~4 rms.
    assert float((mean - MU).abs().max()) < 0.05
    assert rel_frobenius(cov, exact_cov, SIGMA) < 0.05
    assert float((mean - exact_mean).abs().max()) < 0.05
    # Against the data distribution: discretisation bias + Monte Carlo allowance.
    assert rel_frobenius(cov, SIGMA, SIGMA) < max_bias + 0.05


# max_bias: exact discretisation bias for the conditional covariance (0.116, 0.060), rounded up.
@pytest.mark.parametrize("sampler, eta, max_bias", [("ddpm", 1.0, 0.12), ("ddim", 0.0, 0.065)])
def test_conditional_gaussian_sampling(sampler, eta, max_bias):
    p = DiscreteDDPM()
    shape = (2, 2)  # [L, N]; imputation pattern: observe (l=0, n=0) and (l=1, n=1)
    cond_mask = torch.tensor([[True, False], [False, True]]).expand(N_SAMPLES, *shape)
    target = torch.tensor([1, 2])
    cond = torch.tensor([0, 3])
    obs_value = torch.tensor([[1.3, 0.0], [0.0, -0.7]])
    observed = obs_value.expand(N_SAMPLES, *shape)

    g = torch.Generator().manual_seed(7)
    x_T = p.prior_sample((N_SAMPLES, *shape), generator=g)
    denoise = gaussian_eps_fn(p, MU, SIGMA, target=target,
                              observed=observed.reshape(N_SAMPLES, -1).to(F64))
    kwargs = dict(generator=g) if sampler == "ddpm" else dict(eta=eta, generator=g)
    out = SAMPLERS.get(sampler)(denoise, x_T, p, **kwargs)
    x = impose_observed(out.x0, observed, cond_mask)

    assert torch.equal(x[cond_mask], observed[cond_mask])  # bit for bit
    assert torch.equal(x[~cond_mask], out.x0[~cond_mask])

    # Gaussian conditioning: target | cond ~ N(mu_T + G (x_C - mu_C), S_TT - G S_CT).
    gain = SIGMA[target][:, cond] @ torch.linalg.inv(SIGMA[cond][:, cond])
    cmean = MU[target] + gain @ (obs_value.reshape(-1)[cond].to(F64) - MU[cond])
    ccov = SIGMA[target][:, target] - gain @ SIGMA[cond][:, target]
    mean, cov = sample_moments(x.reshape(N_SAMPLES, -1)[:, target])
    exact_mean, exact_cov = exact_sampler_moments(p, cmean, ccov, steps=None, eta=eta)
    # Same tolerance reasoning as the unconditional test (conditional variances < 1).
    assert float((mean - cmean).abs().max()) < 0.05
    assert float((mean - exact_mean).abs().max()) < 0.05
    assert rel_frobenius(cov, exact_cov, ccov) < 0.05
    bias = rel_frobenius(exact_cov, ccov, ccov)
    assert max_bias - 0.015 < bias < max_bias
    assert rel_frobenius(cov, ccov, ccov) < bias + 0.05


# --------------------------------------------------------------------------
# samplers: exactness against Alg. 2, determinism, NFE, callback, errors
# --------------------------------------------------------------------------


def reference_ancestral(denoise, x, process, steps, generator, large=False):
    """Ho et al. 2020 Alg. 2, on the respaced sub-sequence, written out directly
    (``large``: with their other variance choice, sigma^2 = beta)."""
    tau = process.sampling_times(steps).tolist()
    abars = [float(process.alpha_bars[t]) for t in tau] + [1.0]
    for i, t in enumerate(tau):
        ab, ab_prev = abars[i], abars[i + 1]
        beta = 1 - ab / ab_prev
        eps = denoise(x, torch.full((x.shape[0],), t))
        x = (x - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta)
        if i < len(tau) - 1:
            var = beta if large else (1 - ab_prev) / (1 - ab) * beta
            x = x + math.sqrt(var) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


@pytest.mark.parametrize("steps", [None, 20, 7])
def test_ddpm_equals_ho_algorithm_2(steps):
    p = DiscreteDDPM()
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = torch.randn(64, 2, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    got = sample_ddpm(denoise, x_T, p, steps=steps, generator=torch.Generator().manual_seed(5))
    want = reference_ancestral(denoise, x_T, p, steps, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got.x0, want, rtol=1e-9, atol=1e-9)
    ddim1 = sample_ddim(denoise, x_T, p, steps=steps, eta=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(ddim1.x0, got.x0)
    small = sample_ddpm(denoise, x_T, p, steps=steps, variance="small", generator=torch.Generator().manual_seed(5))
    assert torch.equal(small.x0, got.x0)


@pytest.mark.parametrize("steps", [None, 20, 7])
def test_ddpm_large_variance_equals_ho_algorithm_2_with_beta(steps):
    p = DiscreteDDPM()
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = torch.randn(64, 2, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    got = sample_ddpm(denoise, x_T, p, steps=steps, variance="large", generator=torch.Generator().manual_seed(5))
    want = reference_ancestral(denoise, x_T, p, steps, torch.Generator().manual_seed(5), large=True)
    torch.testing.assert_close(got.x0, want, rtol=1e-9, atol=1e-9)
    small = sample_ddpm(denoise, x_T, p, steps=steps, generator=torch.Generator().manual_seed(5))
    assert not torch.allclose(got.x0, small.x0)  # the option changes the noise, not only its name


def test_ddpm_large_variance_widens_few_step_samples():
    # Few, long steps under-disperse with beta_tilde; beta adds the missing spread. Exact
    # covariance of each sampler with the optimal denoiser, then a sampled check of "large".
    p = DiscreteDDPM(**QUAD50)
    small = exact_sampler_moments(p, MU, SIGMA, steps=6, eta=1)[1]
    large = exact_sampler_moments(p, MU, SIGMA, steps=6, eta=1, large=True)[1]
    assert float(torch.trace(small)) < float(torch.trace(large))
    assert rel_frobenius(large, SIGMA, SIGMA) < rel_frobenius(small, SIGMA, SIGMA)
    g = torch.Generator().manual_seed(11)
    x_T = p.prior_sample((N_SAMPLES, 2, 2), generator=g)
    out = sample_ddpm(gaussian_eps_fn(p, MU, SIGMA), x_T, p, steps=6, variance="large", generator=g)
    mean, cov = sample_moments(out.x0)
    assert float((mean - MU).abs().max()) < 0.05
    assert rel_frobenius(cov, large, SIGMA) < 0.05


def analytic_step_variance(ab, ab_prev, gamma):
    """Bao et al. 2022 (Analytic-DPM), their eq. for the DDPM step from abar to abar_prev:
    lambda^2 + (sqrt(abar_prev) - sqrt(1 - abar_prev - lambda^2) sqrt(abar / (1 - abar)))^2
    (1 - abar) / abar (1 - Gamma), lambda^2 = beta_tilde; written here from the paper."""
    lam2 = (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
    k = math.sqrt(ab_prev) - math.sqrt(max(1 - ab_prev - lam2, 0.0)) * math.sqrt(ab / (1 - ab))
    return lam2 + k**2 * (1 - ab) / ab * (1 - gamma)


@pytest.mark.parametrize("steps", [4, 6, 12])
def test_ddpm_analytic_variance_is_exact_for_isotropic_gaussian_data(steps):
    # For x0 ~ N(m, v I) the reverse step's conditional q(x_s | x_t) is Gaussian and
    # isotropic, so the optimal denoiser with the analytic variance reproduces every
    # marginal whatever the step count; beta_tilde under-disperses badly on few steps.
    v, m = 2.0, 0.3
    p = DiscreteDDPM(**QUAD50)
    mu, sigma = torch.full((4,), m, dtype=F64), v * torch.eye(4, dtype=F64)
    abar = p.alpha_bars.to(F64)
    gamma = ((1 - abar) / (abar * v + 1 - abar)).tolist()  # E|E[eps | x_t]|^2 / d, exactly
    tau = p.sampling_times(steps).tolist()
    abars = [float(abar[t]) for t in tau] + [1.0]
    # exact moments of the chain with the paper's variance: a scalar recursion per dimension
    mean, var = 0.0, 1.0
    for i, (ab, ab_prev) in enumerate(zip(abars[:-1], abars[1:])):
        beta = 1 - ab / ab_prev
        k = math.sqrt(1 - ab) / (ab * v + 1 - ab)
        alpha, coef = 1 / math.sqrt(1 - beta), -beta / math.sqrt((1 - ab) * (1 - beta))
        c2 = analytic_step_variance(ab, ab_prev, gamma[tau[i]]) if ab_prev < 1 else 0.0
        mean = (alpha + coef * k) * mean - coef * k * math.sqrt(ab) * m
        var = (alpha + coef * k) ** 2 * var + c2
    assert abs(var - v) < 2e-3 and abs(mean - m) < 2e-3  # only x_T ~ N(0, 1) is off
    small_var = float(exact_sampler_moments(p, mu, sigma, steps=steps, eta=1)[1][0, 0])
    assert small_var < 0.9 * v
    g = torch.Generator().manual_seed(3)
    x_T = p.prior_sample((N_SAMPLES, 2, 2), generator=g)
    out = sample_ddpm(gaussian_eps_fn(p, mu, sigma), x_T, p, steps=steps, variance="analytic",
                      eps_sq_norm=gamma, generator=g)
    got_mean, got_cov = sample_moments(out.x0)
    assert float((got_mean - m).abs().max()) < 0.05
    assert rel_frobenius(got_cov, var * torch.eye(4, dtype=F64), sigma) < 0.05


def test_ddpm_analytic_variance_with_gamma_one_is_small():
    # Gamma = 1 says the network knows x0: no x0 uncertainty to add, so beta_tilde exactly.
    p = DiscreteDDPM()
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = torch.randn(32, 2, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    small = sample_ddpm(denoise, x_T, p, steps=7, generator=torch.Generator().manual_seed(5))
    analytic = sample_ddpm(denoise, x_T, p, steps=7, variance="analytic", eps_sq_norm=[1.0] * p.num_steps,
                           generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(analytic.x0, small.x0, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad", ["beta", "Large", None, 1])
def test_ddpm_rejects_unknown_variance(bad):
    p = DiscreteDDPM(num_steps=10)
    with pytest.raises(ConfigError, match="variance must be 'small'.*'large'.*'analytic'"):
        sample_ddpm(lambda x, t: torch.zeros_like(x), torch.zeros(2, 3), p, variance=bad)


def test_ddpm_analytic_variance_checks_eps_sq_norm():
    p, zero = DiscreteDDPM(num_steps=10), lambda x, t: torch.zeros_like(x)
    with pytest.raises(ConfigError, match="needs eps_sq_norm.*estimate_eps_sq_norm"):
        sample_ddpm(zero, torch.zeros(2, 3), p, variance="analytic")
    with pytest.raises(ConfigError, match="must hold 10 finite numbers.*got 9 values"):
        sample_ddpm(zero, torch.zeros(2, 3), p, variance="analytic", eps_sq_norm=[0.5] * 9)
    with pytest.raises(ConfigError, match="must hold 10 finite numbers"):
        sample_ddpm(zero, torch.zeros(2, 3), p, variance="analytic", eps_sq_norm=[float("nan")] * 10)
    with pytest.raises(ConfigError, match="must be a list of 10 numbers"):
        sample_ddpm(zero, torch.zeros(2, 3), p, variance="analytic", eps_sq_norm=["a"] * 10)
    with pytest.raises(ConfigError, match="eps_sq_norm is used only with variance='analytic'"):
        sample_ddpm(zero, torch.zeros(2, 3), p, eps_sq_norm=[0.5] * 10)
    with pytest.raises(ConfigError, match="needs a discrete process"):
        sample_ddpm(zero, torch.zeros(2, 3), build_process("vp"), variance="analytic",
                    eps_sq_norm=[0.5] * 10)


def test_single_step_ddim_predicts_x0():
    p = DiscreteDDPM()
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = torch.randn(16, 2, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    out = sample_ddim(denoise, x_T, p, steps=1)
    t = torch.full((16,), 49)
    torch.testing.assert_close(out.x0, eps_to_x0(x_T, denoise(x_T, t), p.alpha_bars[t]))
    assert out.nfe == 1


@pytest.mark.parametrize("sampler, kwargs", [
    ("ddpm", {}), ("ddpm", {"steps": 10}), ("ddim", {"eta": 0.5, "steps": 10}),
])
def test_seeds_control_samples(sampler, kwargs):
    p = DiscreteDDPM()
    fn = SAMPLERS.get(sampler)
    denoise = gaussian_eps_fn(p, MU, SIGMA)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return fn(denoise, p.prior_sample((32, 2, 1, 2), generator=g), p, generator=g, **kwargs)

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.x0, b.x0)
    assert not torch.allclose(a.x0, c.x0)
    assert a.nfe == b.nfe == kwargs.get("steps", 50)


def test_ddim_eta0_is_deterministic_given_x_T():
    p = DiscreteDDPM()
    denoise = gaussian_eps_fn(p, MU, SIGMA)
    x_T = torch.randn(32, 2, 2, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    a = sample_ddim(denoise, x_T, p, steps=10, generator=g)
    assert torch.equal(g.get_state(), state)  # eta = 0 draws no noise
    b = sample_ddim(denoise, x_T, p, steps=10, generator=torch.Generator().manual_seed(99))
    assert torch.equal(a.x0, b.x0)
    c = sample_ddim(denoise, x_T + 0.1, p, steps=10)
    assert not torch.allclose(a.x0, c.x0)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_nfe_and_callback(sampler):
    p = DiscreteDDPM()
    calls = []

    def denoise(x, t):
        calls.append(t.clone())
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        return torch.zeros_like(x)

    events = []
    out = SAMPLERS.get(sampler)(denoise, torch.ones(3, 2, 2), p, steps=20,
                                generator=torch.Generator().manual_seed(0),
                                callback=events.append)
    assert out.nfe == 20 == len(calls) == len(events)
    tau = p.sampling_times(20)
    assert [e["step"] for e in events] == list(range(20))
    for e, t, c in zip(events, tau.tolist(), calls):
        assert e["t"].tolist() == [t] * 3 and torch.equal(c, e["t"])
        assert set(e) >= {"step", "t", "x", "x0_pred"} and e["x"].shape == (3, 2, 2)
    assert events[0]["t"][0] == 49 and events[-1]["t"][0] == 0


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("steps", [0, 51, -1])
def test_sampler_rejects_bad_steps(sampler, steps):
    p = DiscreteDDPM()
    with pytest.raises(ConfigError, match=rf"steps must be an integer in \[1, 50\].*got {steps}"):
        SAMPLERS.get(sampler)(lambda x, t: x, torch.zeros(2, 3), p, steps=steps)


def test_ddim_rejects_bad_eta():
    with pytest.raises(ConfigError, match=r"eta must be a number in \[0, 1\]; got 1.5"):
        sample_ddim(lambda x, t: x, torch.zeros(2, 3), DiscreteDDPM(), eta=1.5)


def test_unknown_sampler_lists_valid_names():
    assert SAMPLERS.names() == ["ddim", "ddpm", "dpm_solver_pp", "euler_maruyama", "heun", "pc", "sde_dpm_solver_pp"]
    with pytest.raises(UnknownNameError, match="unknown sampler 'euler'; valid sampler names are: "
                       "ddim, ddpm, dpm_solver_pp, euler_maruyama, heun, pc, sde_dpm_solver_pp"):
        SAMPLERS.get("euler")
