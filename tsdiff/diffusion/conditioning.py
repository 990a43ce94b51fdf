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


def _no_extra_nfe() -> int:
    return 0


class Conditioned(NamedTuple):
    """A conditioned sampling setup, passed to any sampler.

    Attributes:
        denoise_fn: ``(x_t, t) -> eps`` to give the sampler.
        step_hook: ``(x, t_next) -> x`` to give the sampler as ``step_hook``; at
            the end (``t_next=None``) it imposes the observations exactly.
        extra_nfe: ``() -> int``, the network evaluations the hook itself made
            in the last sampler run (RePaint resampling); add it to the
            sampler's ``nfe``. 0 for strategies whose hook never calls the network.
    """

    denoise_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    step_hook: Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
    extra_nfe: Callable[[], int] = _no_extra_nfe


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


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"inpainting {name} must be an integer >= 1; got {value!r}")
    return int(value)


@CONDITIONING.register("inpainting")
def condition_inpainting(
    denoise_fn, process, observed, cond_mask, *, resample: int = 1, jump: int = 1, generator=None,
) -> Conditioned:
    """Replacement inpainting with an unconditional network (Song et al. 2021, App. I.2; RePaint, Lugmayr et al. 2022).

    After every sampler step the conditioning entries are replaced by the
    observations noised to the time just reached, ``scale(t) y + std(t) z``
    with fresh ``z``; the final sample gets the observations exactly. Without
    resampling this is an approximation of the conditional (the network never
    sees ``y`` itself, and the generated part is not harmonised with it): its
    error is measured in ``tests/test_diffusion_conditioning.py``.

    RePaint resampling (Lugmayr et al. 2022, Alg. 1 and the jump schedule of
    their Sec. 4.2): every ``jump`` visited times (and at the end), after the
    replacement the sample is noised back ``jump`` times with the exact forward
    transition ``x_u = (a_u / a_t) x_t + sqrt(s_u^2 - (a_u / a_t)^2 s_t^2) z``
    and denoised again over the same times, ``resample - 1`` times. The redone
    steps are ancestral (DDIM with ``eta = 1``) whatever the sampler, each
    followed by the replacement; they cost ``(resample - 1)`` network
    evaluations per visited time, reported by :attr:`Conditioned.extra_nfe`.
    Repeating the loop lets the generated entries mix with the observed ones;
    the sample tends to the exact conditional as ``resample`` grows.

    The hook keeps the times it has seen during one sampler run (it starts
    afresh when a run starts again from the noisiest time), so one
    :class:`Conditioned` serves one sampler run at a time.

    Args:
        denoise_fn: unconditional ``(x_t, t) -> eps``.
        process: the forward process (noises the observations).
        observed, cond_mask: as :func:`condition_conditional`.
        resample: RePaint's ``r``: how often each stretch is run (1: no resampling).
        jump: RePaint's jump length ``j``: visited times per resampled stretch.
        generator: source of all noise the hook draws.

    Raises:
        ConfigError: ``resample`` or ``jump`` not an integer >= 1.
    """
    resample = _positive_int("resample", resample)
    jump = _positive_int("jump", jump)
    visited: list[tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor]] = []  # (t, scale, std) per time
    count = [0]

    def coefficients(x: torch.Tensor, t: Optional[torch.Tensor]):
        if t is None:  # clean data
            return None, x.new_ones(()), x.new_zeros(())
        a, s = process.marginal_coefficients(t.to(x.device))
        return t, append_dims(a.to(x.dtype), x.ndim), append_dims(s.to(x.dtype), x.ndim)

    def replace(x: torch.Tensor, point) -> torch.Tensor:
        t, a, s = point
        if t is None:
            return impose_observed(x, observed, cond_mask)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return impose_observed(x, a * observed.to(x.dtype) + s * z, cond_mask)

    def ancestral(x: torch.Tensor, here, there) -> torch.Tensor:
        (t, a_t, s_t), (_, a_s, s_s) = here, there
        eps = denoise_fn(x, t)
        count[0] += 1
        x0 = (x - s_t * eps) / a_t
        c2 = (s_s**2 / s_t**2 * (s_t**2 - (a_t / a_s) ** 2 * s_s**2)).clamp(min=0)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return a_s * x0 + (s_s**2 - c2).clamp(min=0).sqrt() * eps + c2.sqrt() * z

    def hook(x: torch.Tensor, t_next: Optional[torch.Tensor]) -> torch.Tensor:
        fresh = not visited or visited[-1][0] is None or (
            t_next is not None and float(t_next[0]) >= float(visited[-1][0][0]))
        if fresh:  # the start of a sampler run
            visited.clear()
            count[0] = 0
        point = coefficients(x, t_next)
        visited.append(point)
        x = replace(x, point)
        k = len(visited) - 1
        if fresh or resample == 1 or (k % jump and t_next is not None):
            return x
        back = k % jump or jump
        for _ in range(resample - 1):
            _, a_u, s_u = visited[k - back]
            _, a_t, s_t = point
            ratio = a_u / a_t
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = ratio * x + (s_u**2 - ratio**2 * s_t**2).clamp(min=0).sqrt() * z
            for m in range(k - back, k):
                x = replace(ancestral(x, visited[m], visited[m + 1]), visited[m + 1])
        return x

    return Conditioned(denoise_fn, hook, lambda: count[0])


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
