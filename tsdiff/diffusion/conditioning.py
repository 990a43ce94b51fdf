"""Conditional sampling on observed entries: imposing observations and strategies.

Strategies (:data:`CONDITIONING`) turn ``(denoise_fn, observed, cond_mask)`` into a
:class:`Conditioned` ``(denoise_fn, step_hook)`` that every sampler accepts, so
forecasting and imputation condition the same way whatever the sampler.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch

from tsdiff.diffusion.utils import append_dims
from tsdiff.errors import ConfigError
from tsdiff.registry import Registry


def impose_observed(
    x: torch.Tensor, observed: torch.Tensor, cond_mask: torch.Tensor
) -> torch.Tensor:
    """Replace conditioning entries of a sample by their observed values.

    As in CSDI (Tashiro et al. 2021), the model only generates target entries;
    conditioning entries of the output must equal the observations exactly,
    which ``torch.where`` guarantees bit for bit (no arithmetic touches them).

    Args:
        x: sample ``[B, ...]``.
        observed: observed values, broadcastable to ``x``.
        cond_mask: True (or non-zero) at conditioning entries, broadcastable to ``x``.

    Returns:
        ``torch.where(cond_mask, observed, x)``.
    """
    if cond_mask.dtype != torch.bool:
        cond_mask = cond_mask != 0
    return torch.where(cond_mask, observed.to(x.dtype), x)


# --------------------------------------------------------------------------
# Conditioning strategies: (denoise_fn, observed, cond_mask) -> (denoise_fn, step_hook)
# --------------------------------------------------------------------------


class Conditioned(NamedTuple):
    """A conditioned sampling setup, passed to any sampler.

    Attributes:
        denoise_fn: ``(x_t, t) -> eps`` to give the sampler.
        step_hook: ``(x, t_next) -> x`` to give the sampler as ``step_hook``; at
            the end (``t_next=None``) it imposes the observations exactly.
    """

    denoise_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    step_hook: Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


#: Conditioning strategies by config name; each is
#: ``fn(denoise_fn, process, observed, cond_mask, *, generator=None, **options) -> Conditioned``.
CONDITIONING: Registry = Registry("conditioning")


def _final_imposer(observed: torch.Tensor, cond_mask: torch.Tensor):
    def hook(x: torch.Tensor, t_next: Optional[torch.Tensor]) -> torch.Tensor:
        return impose_observed(x, observed, cond_mask) if t_next is None else x

    return hook


@CONDITIONING.register("conditional")
def condition_conditional(denoise_fn, process, observed, cond_mask, *, generator=None) -> Conditioned:
    """Conditional network (CSDI, Tashiro et al. 2021): it already sees the observations.

    ``denoise_fn`` is used as is (it closes over the observed values); the hook
    only imposes the observations on the final sample.

    Args:
        denoise_fn: conditional ``(x_t, t) -> eps``.
        process: unused; uniform signature.
        observed: observed values ``[B, ...]`` (shape of the sample).
        cond_mask: True at conditioning entries, broadcastable to the sample.
        generator: unused.
    """
    del process, generator
    return Conditioned(denoise_fn, _final_imposer(observed, cond_mask))


@CONDITIONING.register("inpainting")
def condition_inpainting(denoise_fn, process, observed, cond_mask, *, generator=None) -> Conditioned:
    """Replacement inpainting with an unconditional network (Song et al. 2021, App. I.2; RePaint without resampling, Lugmayr et al. 2022).

    After every sampler step the conditioning entries are replaced by the
    observations noised to the time just reached, ``scale(t) y + std(t) z``
    with fresh ``z``; the final sample gets the observations exactly. This is an
    approximation of the conditional (the network never sees ``y`` itself): its
    error is measured in ``tests/test_diffusion_conditioning.py``.

    Args:
        denoise_fn: unconditional ``(x_t, t) -> eps``.
        process: the forward process (noises the observations).
        observed, cond_mask: as :func:`condition_conditional`.
        generator: source of the noise added to the observations.
    """

    def hook(x: torch.Tensor, t_next: Optional[torch.Tensor]) -> torch.Tensor:
        if t_next is None:
            return impose_observed(x, observed, cond_mask)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        noisy = process.sample_noisy(observed.to(x.dtype).expand_as(x), t_next, z)
        return impose_observed(x, noisy, cond_mask)

    return Conditioned(denoise_fn, hook)


@CONDITIONING.register("guidance")
def condition_guidance(
    denoise_fn, process, observed, cond_mask, *, scale: float = 1.0, obs_std: float = 0.1,
    adaptive: bool = True, generator=None,
) -> Conditioned:
    """Self-guidance of an unconditional network (TSDiff, Kollovieh et al. 2023, eq. 8).

    The score is shifted by ``scale * grad_x log p(y | x0_pred(x_t))`` with the
    Gaussian observation likelihood ``log p = -|m (y - x0_pred)|^2 / (2 r_t^2)``
    over the conditioning entries ``m``. TSDiff uses a fixed ``r_t = obs_std``
    (``adaptive=False``); that gradient grows like ``1 / scale(t)`` at high noise
    and makes sampling diverge for small ``obs_std``. With ``adaptive=True``
    (default) ``r_t^2 = obs_std^2 + sigma_t^2 / (1 + sigma_t^2)``, ``sigma_t =
    std / scale``, the variance of ``x0`` given ``x_t`` for unit-variance data
    (PiGDM, Song et al. 2023), which makes the guided score exact for
    unit-covariance Gaussian data as ``obs_std -> 0``. In eps form
    ``eps_guided = eps - std(t) * scale * grad``. The gradient goes through the
    network by autograd (one backward pass per evaluation). The final sample
    gets the observations exactly.

    Args:
        denoise_fn: unconditional ``(x_t, t) -> eps``, differentiable in ``x_t``.
        process: the forward process (``(scale, std)`` of ``t``).
        observed, cond_mask: as :func:`condition_conditional`.
        scale: guidance scale ``s`` (>= 0).
        obs_std: standard deviation of the observation likelihood (> 0).
        adaptive: add the noise-level dependent variance above.
        generator: unused.

    Raises:
        ConfigError: negative ``scale`` or non-positive ``obs_std``.
    """
    del generator
    if not (isinstance(scale, (int, float)) and scale >= 0):
        raise ConfigError(f"guidance scale must be a number >= 0; got {scale!r}")
    if not (isinstance(obs_std, (int, float)) and obs_std > 0):
        raise ConfigError(f"guidance obs_std must be a positive number; got {obs_std!r}")
    mask = cond_mask if cond_mask.dtype == torch.bool else cond_mask != 0

    def adaptive_var(a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return s**2 / (a**2 + s**2)  # sigma^2 / (1 + sigma^2), sigma = s / a

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = (append_dims(c.to(x.dtype), x.ndim) for c in process.marginal_coefficients(t.to(x.device)))
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            eps = denoise_fn(x_in, t)
            x0 = (x_in - s * eps) / a
            resid = torch.where(mask, observed.to(x.dtype) - x0, torch.zeros_like(x0))
            var = obs_std**2 + (adaptive_var(a, s) if adaptive else 0.0)
            log_lik = -0.5 * (resid**2 / var).sum()
            (grad,) = torch.autograd.grad(log_lik, x_in)
        return eps.detach() - s * float(scale) * grad

    return Conditioned(guided, _final_imposer(observed, cond_mask))
