"""DDIM and ancestral DDPM samplers (Song, Meng & Ermon 2021; Ho et al. 2020).

``t`` passed to ``denoise_fn`` is a tensor ``[B]`` of the process's ORIGINAL
times (for DDPM, long step indices in ``{0, ..., T - 1}``), so a network
trained on ``T`` steps works unchanged with fewer sampling steps.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from tsdiff.diffusion.ddpm import DiscreteDDPM
from tsdiff.diffusion.process import ForwardProcess, Spacing
from tsdiff.diffusion.samplers.base import (
    SAMPLERS,
    Callback,
    DenoiseFn,
    SamplerOutput,
    StepHook,
    apply_hook,
    check_eta,
    predict_step,
    start_sampling,
    batch_time,
)
from tsdiff.errors import ConfigError


@SAMPLERS.register("ddim")
def sample_ddim(
    denoise_fn: DenoiseFn,
    x_T: torch.Tensor,
    process: ForwardProcess,
    *,
    steps: Optional[int] = None,
    spacing: Spacing = "uniform",
    eta: float = 0.0,
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callback] = None,
    step_hook: Optional[StepHook] = None,
) -> SamplerOutput:
    """DDIM sampling (Song, Meng & Ermon 2021, eq. 12), deterministic to ancestral.

    For each visited time ``t`` (noisiest first) with next time ``s``, writing
    ``x_t = a_t x_0 + s_t eps`` (``a_t = sqrt(abar_t)``, ``s_t = sqrt(1 - abar_t)``
    for VP processes):

        x0_pred = (x_t - s_t eps_pred) / a_t
        c       = eta * sqrt(s_s^2 / s_t^2 * (s_t^2 - (a_t / a_s)^2 s_s^2))
        x_s     = a_s x0_pred + sqrt(s_s^2 - c^2) eps_pred + c z,   z ~ N(0, I)

    For VP processes ``c**2`` is DDIM's ``sigma_t(eta)**2`` and, at ``eta = 1``,
    equals the DDPM posterior variance ``beta_tilde``; the update is then
    exactly Ho et al.'s ancestral step (see :func:`sample_ddpm`).

    Final step: after the last visited time (step 0 for DDPM) the target is
    clean data (``a = 1, s = 0``), so the output is that step's ``x0_pred``
    with no noise added. For DDPM this equals the posterior mean of Ho et al.
    Alg. 2 at ``t = 0`` (CSDI's convention), since ``abar_{-1} = 1``.

    Args:
        denoise_fn: ``(x_t [B, ...], t [B]) -> eps prediction [B, ...]``.
        x_T: start sample ``[B, ...]`` (e.g. ``process.prior_sample``).
        process: the forward process the denoiser was trained for.
        steps: number of denoiser evaluations; ``None`` uses every step. The
            visited times are ``process.sampling_times(steps)`` (for DDPM
            ``round(linspace(T - 1, 0, steps))``).
        spacing: placement of the visited times, a name in
            :data:`~tsdiff.diffusion.process.SPACINGS` (``uniform``, ``quadratic``:
            DDIM's quadratic skip, ``log_snr``, ``karras``), or the times themselves,
            noisiest first (e.g. a schedule tuned on validation windows; a first time
            below the top starts the chain there from the prior, see
            :meth:`~tsdiff.diffusion.process.ForwardProcess.explicit_times`).
        eta: stochasticity in ``[0, 1]``; 0 is deterministic DDIM, 1 ancestral DDPM.
        generator: ``torch.Generator`` on ``x_T``'s device for all noise draws.
        callback: called once per step with ``dict(step=i, t=t [B], x=x_t,
            x0_pred=x0_pred, eps_pred=eps_pred)``, ``x_t`` being the denoiser input.
        step_hook: ``(x, t_next) -> x`` applied to the start, after every step and
            at the end (``t_next=None``); see :mod:`tsdiff.diffusion.samplers.base`.

    Returns:
        :class:`SamplerOutput` with ``x0`` shaped like ``x_T`` and ``nfe = steps``.

    Raises:
        ConfigError: ``steps`` out of range for the process, or ``eta`` outside [0, 1].
    """
    return _ddim_loop(denoise_fn, x_T, process, steps, spacing, check_eta(eta), "eta", None,
                      generator, callback, step_hook)


def _ddim_loop(denoise_fn, x_T, process, steps, spacing, eta: float, noise: str, eps_sq_norm,
               generator, callback, step_hook) -> SamplerOutput:
    """The update of :func:`sample_ddim`. ``noise`` picks the variance of the noise added at
    each step (the mean is the same): ``"eta"`` is ``c^2``; ``"large"`` the forward
    transition's ``q^2 = s_t^2 - (a_t / a_s)^2 s_s^2``; ``"analytic"`` ``c^2`` plus the part of
    ``x_0``'s posterior variance the mean carries, from ``eps_sq_norm`` (see
    :func:`sample_ddpm`)."""
    times, tdtype, scales, stds, x = start_sampling(process, steps, x_T, step_hook, spacing)
    nfe = 0
    for i, time in enumerate(times):
        t = batch_time(time, x, tdtype)
        a_t, s_t, a_s, s_s = scales[i], stds[i], scales[i + 1], stds[i + 1]
        eps, x0_pred = predict_step(denoise_fn, x, t, i, a_t, s_t, callback)
        nfe += 1
        q2 = max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0.0)
        c = eta * math.sqrt(s_s**2 / s_t**2 * q2)
        d = math.sqrt(max(s_s**2 - c**2, 0.0))
        x = a_s * x0_pred + d * eps
        if noise == "large" and s_s > 0:
            c = math.sqrt(q2)
        elif noise == "analytic" and s_s > 0:
            k0 = a_s - d * a_t / s_t  # coefficient of x0_pred in the mean, given x_t
            x0_var = s_t**2 / a_t**2 * min(max(1.0 - eps_sq_norm[int(time)], 0.0), 1.0)
            c = math.sqrt(c**2 + k0**2 * x0_var)
        if c > 0:  # no draw when deterministic, so eta=0 never consumes the generator
            x = x + c * torch.randn(
                x.shape, generator=generator, device=x.device, dtype=x.dtype
            )
        nxt = batch_time(times[i + 1], x, tdtype) if i + 1 < len(times) else None
        x = apply_hook(step_hook, x, nxt)
    return SamplerOutput(x, nfe)


@SAMPLERS.register("ddpm")
def sample_ddpm(
    denoise_fn: DenoiseFn,
    x_T: torch.Tensor,
    process: ForwardProcess,
    *,
    steps: Optional[int] = None,
    spacing: Spacing = "uniform",
    variance: str = "small",
    eps_sq_norm: Optional[Sequence[float]] = None,
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callback] = None,
    step_hook: Optional[StepHook] = None,
) -> SamplerOutput:
    """Ancestral DDPM sampling (Ho et al. 2020, Alg. 2) with variance ``beta_tilde`` or ``beta``.

    Implemented as :func:`sample_ddim` with ``eta = 1``, which is algebraically
    identical: with ``c^2 = beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t``
    the DDIM update's coefficients of ``x_t`` and ``x0_pred`` reduce to those of
    the posterior mean ``mu_tilde_t(x_t, x0_pred)``. With ``steps < T`` the
    visited steps ``tau`` are respaced and the implied betas are
    ``beta'_i = 1 - abar_{tau_i} / abar_{tau_{i-1}}`` (Nichol & Dhariwal 2021).
    As in CSDI no noise is added at the last step; noise is drawn in the same
    order as Alg. 2, so the same generator state gives the same samples.

    Ho et al. name two choices of the noise variance, equally good with 1000 steps: the
    posterior variance ``beta_tilde`` (``variance="small"``, the default and CSDI's), exact
    when ``x_0`` is a single point, and the step's own ``beta`` (``variance="large"``), exact
    for ``x_0 ~ N(0, I)``. With few, long steps they differ a lot near the data end, where
    ``beta_tilde`` is much smaller than ``beta``; ``"large"`` gives wider samples there. The
    mean is the posterior mean in both cases, and the last step adds no noise in both. For
    a general process ``beta`` is the forward transition's variance
    ``s_t^2 - (a_t / a_s)^2 s_s^2``.

    ``variance="analytic"`` is the variance of Bao et al. (2022, Analytic-DPM) for this
    step: the reverse step's mean is ``k0 x0_pred + k_t x_t``, and the best Gaussian of
    that mean has variance ``beta_tilde + k0^2 E[Var(x_0 | x_t)]`` with, per dimension,
    ``E[Var(x_0 | x_t)] = s_t^2 / a_t^2 (1 - Gamma_t)``, ``Gamma_t = E|eps_pred(x_t)|^2 / d``.
    ``Gamma_t`` is a property of the trained network and the data, estimated once on
    held-out windows (:func:`tsdiff.training.evaluate.estimate_eps_sq_norm`) and passed
    as ``eps_sq_norm``. It lies between ``"small"`` (``Gamma = 1``: the network knows
    ``x_0``) and a wider spread where ``x_0`` is uncertain.

    Args:
        denoise_fn, x_T, process, steps, spacing, generator, callback, step_hook: as
            :func:`sample_ddim`.
        variance: ``"small"`` (``beta_tilde``), ``"large"`` (``beta``) or ``"analytic"``.
        eps_sq_norm: with ``"analytic"`` only: ``Gamma_t`` for every step
            ``t = 0 .. T - 1`` of the DDPM process.

    Returns:
        :class:`SamplerOutput` with ``nfe = steps``.

    Raises:
        ConfigError: ``variance`` is not one of the three; ``"analytic"`` without one finite
            ``eps_sq_norm`` value per step of a discrete process, or ``eps_sq_norm`` with
            another variance; as :func:`sample_ddim`.
    """
    if variance not in ("small", "large", "analytic"):
        raise ConfigError(f"variance must be 'small' (beta_tilde, the default), 'large' (beta) or 'analytic' "
                          f"(with eps_sq_norm); got {variance!r}")
    if variance == "analytic":
        eps_sq_norm = check_eps_sq_norm(eps_sq_norm, process)
    elif eps_sq_norm is not None:
        raise ConfigError(f"eps_sq_norm is used only with variance='analytic'; got variance={variance!r}")
    return _ddim_loop(denoise_fn, x_T, process, steps, spacing, 1.0,
                      "eta" if variance == "small" else variance, eps_sq_norm, generator, callback, step_hook)


def check_eps_sq_norm(values, process: ForwardProcess) -> list[float]:
    """``values`` as a list of ``T`` finite floats, ``T`` the DDPM process's number of steps."""
    if not isinstance(process, DiscreteDDPM):
        raise ConfigError(f"variance='analytic' needs a discrete process with integer steps (ddpm); "
                          f"got process {getattr(process, 'name', type(process).__name__)!r}")
    num_steps = process.num_steps
    if values is None:
        raise ConfigError("variance='analytic' needs eps_sq_norm, one value of E|eps_pred|^2 / d per diffusion "
                          "step; estimate it with tsdiff.training.evaluate.estimate_eps_sq_norm, or store it in a "
                          "model file with `tsdiff calibrate-variance MODEL`")
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"eps_sq_norm must be a list of {num_steps} numbers; got {values!r:.80}") from None
    if len(out) != num_steps or not all(math.isfinite(v) for v in out):
        raise ConfigError(f"eps_sq_norm must hold {num_steps} finite numbers (one per diffusion step); "
                          f"got {len(out)} values")
    return out
