"""Contract tests driven by the registries: every registered process x sampler x conditioning
strategy, every prior and every training-mask strategy keeps its seam's contract. The
parameters are read from the registries, so a new registration is tested without editing this
file (tests/test_models_contract.py does the same for the denoisers).

The Gaussian accuracy of each combination is tested elsewhere (tests/test_diffusion*.py); here
the contract: shapes and dtypes kept, finite output, observed entries bit for bit, reproducible
from a seeded generator, the reported NFE, and for the priors that nothing off the conditioning
entries is read.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tsdiff.data.masking import TRAIN_MASKS
from tsdiff.diffusion import CONDITIONING, PROCESSES, SAMPLERS, build_conditioning
from tsdiff.diffusion.prior_contract import apply_prior, uses_starts
from tsdiff.diffusion.priors import PRIORS, build_prior, edge_anchors, prior_fit_mask

COMBOS = list(itertools.product(PROCESSES.names(), SAMPLERS.names(), CONDITIONING.names()))
STEPS = 4


def _sample(process: str, sampler: str, strategy: str, shape, dtype):
    p = PROCESSES.get(process)()
    g = torch.Generator().manual_seed(0)
    observed = torch.randn(shape, generator=g, dtype=dtype)
    cond_mask = torch.rand(shape, generator=g) < 0.5
    x_T = p.prior_sample(shape, generator=g).to(dtype)
    weight = torch.linspace(0.05, 0.3, shape[-1], dtype=dtype)

    def denoise(x, t):  # any smooth network stand-in: the contract does not depend on it
        assert x.shape == shape and x.dtype == dtype
        return weight * x + 0.01 * t.reshape(-1, *([1] * (x.dim() - 1))).to(dtype)

    setup = build_conditioning(strategy)(denoise, p, observed, cond_mask, generator=g)
    out = SAMPLERS.get(sampler)(setup.denoise_fn, x_T, p, steps=STEPS, generator=g, step_hook=setup.step_hook)
    return out, observed, cond_mask


def test_the_registries_are_the_documented_ones():
    # a registration that changes these lists is covered by the tests below; this one makes the
    # change visible in review
    assert PROCESSES.names() == ["ddpm", "flow", "subvp", "ve", "vp"]
    assert SAMPLERS.names() == ["ddim", "ddpm", "dpm_solver_pp", "euler_maruyama", "heun", "pc", "sde_dpm_solver_pp"]
    assert CONDITIONING.names() == ["conditional", "guidance", "inpainting"]
    assert PRIORS.names() == ["auto", "climatology", "cross_series", "interpolation", "last_value", "none", "seasonal"]
    assert TRAIN_MASKS.names() == ["block", "historical", "mix", "random"]


@pytest.mark.parametrize("process, sampler, strategy", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_every_process_sampler_and_strategy_keeps_the_contract(process, sampler, strategy):
    for shape, dtype in (((3, 5, 2), torch.float32), ((2, 4, 3, 2), torch.float64)):  # [B,L,N], [B,L,N,C]
        out, observed, cond_mask = _sample(process, sampler, strategy, shape, dtype)
        assert out.x0.shape == shape and out.x0.dtype == dtype
        assert torch.isfinite(out.x0).all()
        assert torch.equal(out.x0[cond_mask], observed[cond_mask])  # bit for bit
        assert isinstance(out.nfe, int) and STEPS <= out.nfe <= 2 * STEPS
        again, _, _ = _sample(process, sampler, strategy, shape, dtype)
        assert torch.equal(again.x0, out.x0)  # the seeded generator fixes every draw


# ----------------------------------------------------------------------------- priors
PRIOR_OPTIONS = {"seasonal": {"season": 6}, "cross_series": {"neighbours": 2, "fit_windows": 64},
                 "climatology": {"season": 6, "fit_windows": 64},
                 "auto": {"seasons": [6], "fit_windows": 64}}


def _windows(seed: int = 0, T: int = 240, N: int = 3, L: int = 24):
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.normal(size=T))
    v = np.stack([base + 0.3 * rng.normal(size=T) for _ in range(N)], axis=1)
    known = rng.random((T, N)) > 0.3
    known[60:130, 0] = False  # a gap longer than a window
    known[:, N - 1] = False  # a series never observed
    starts = list(range(0, T - L + 1, L // 2))
    vt, kt = torch.tensor(v[:, :, None]), torch.tensor(known[:, :, None])
    xs = torch.stack([torch.where(kt[s:s + L], vt[s:s + L], 0.0) for s in starts])
    ms = torch.stack([kt[s:s + L] for s in starts])
    return xs, ms, edge_anchors(vt, kt, starts, L), torch.tensor(starts)


def _built_prior(name: str, xs, ms, anchors, starts):
    prior = build_prior({"name": name, **PRIOR_OPTIONS.get(name, {})}, num_series=xs.shape[2] * xs.shape[3])
    if hasattr(prior, "fit"):
        gen = torch.Generator().manual_seed(0)
        cond = prior_fit_mask(ms, gen)
        prior.fit(lambda: [(xs, cond, ms & ~cond, anchors, starts)])
        assert bool(prior.fitted)
    return prior


@pytest.mark.parametrize("name", PRIORS.names())
def test_every_prior_keeps_the_contract(name):
    xs, ms, anchors, starts = _windows()
    prior = _built_prior(name, xs, ms, anchors, starts)
    for anc in (None, anchors):
        est = apply_prior(prior, xs, ms, anc, starts)
        assert est.shape == xs.shape and est.dtype == xs.dtype
        assert torch.isfinite(est).all()  # a series with no observed value included
        assert torch.equal(est[ms], xs[ms])  # conditioning values bit for bit
        # it reads the conditioning entries only: any values elsewhere give the same estimate
        noise = torch.randn(xs.shape, generator=torch.Generator().manual_seed(3), dtype=xs.dtype)
        scrambled = torch.where(ms, xs, 1e6 * noise)
        assert torch.equal(apply_prior(prior, scrambled, ms, anc, starts), est)


@pytest.mark.parametrize("name", PRIORS.names())
def test_every_prior_returns_the_mean_for_a_window_with_nothing_known(name):
    xs, ms, anchors, starts = _windows()
    prior = _built_prior(name, xs, ms, anchors, starts)
    nothing = torch.zeros_like(ms)
    est = apply_prior(prior, torch.zeros_like(xs), nothing, None, starts)
    if uses_starts(prior):  # the training mean at each step's phase of the season
        L, season = xs.shape[1], prior.season
        phase = (starts.view(-1, 1) + torch.arange(L).view(1, L)) % season
        mean = prior.mean.to(xs.dtype)[phase].reshape(xs.shape)
        assert torch.equal(est, mean)
        assert not torch.equal(mean, torch.zeros_like(mean))  # fitted from the windows, not left at 0
    else:
        assert torch.equal(est, torch.zeros_like(xs))  # 0 is the training mean in the scaled space


# ----------------------------------------------------------------------------- training masks
@pytest.mark.parametrize("name", TRAIN_MASKS.names())
def test_every_training_mask_hides_only_observed_entries_and_is_seeded(name):
    g = torch.Generator().manual_seed(0)
    for shape in ((16, 24, 5), (16, 24, 3, 2)):
        observed = torch.rand(shape, generator=g) > 0.3
        strategy = TRAIN_MASKS.get(name)
        cond = strategy(observed, torch.Generator().manual_seed(1))
        assert cond.shape == observed.shape and cond.dtype == torch.bool
        assert not (cond & ~observed).any()  # conditions only on observed entries
        assert (observed & ~cond).any()  # leaves targets to learn from
        assert torch.equal(cond, strategy(observed, torch.Generator().manual_seed(1)))
