"""Deterministic samplers of the probability-flow ODE: Heun and DPM-Solver++(2M).

Both work in the process's ``(scale, std)`` only, so DDPM and the SDEs share
them. Writing ``x_t = a x_0 + s eps``, the probability-flow ODE (Song et al.
2021, eq. 13) in ``y = x / a`` and ``sigma = s / a`` is ``dy / dsigma = eps``
(Karras et al. 2022, eq. 4 with scaling ``a(t)``), and in the log-SNR
``lambda = log(a / s)`` its solution has the semi-linear form that
DPM-Solver++ (Lu et al. 2022) exploits.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from tsdiff.diffusion.process import ForwardProcess, Spacing
from tsdiff.errors import ConfigError
from tsdiff.diffusion.samplers.base import (
    SAMPLERS,
    Callback,
    DenoiseFn,
    SamplerOutput,
    StepHook,
    apply_hook,
    predict_step,
    start_sampling,
    batch_time,
    randn_like,
)


@SAMPLERS.register("heun")
def sample_heun(
    denoise_fn: DenoiseFn,
    x_T: torch.Tensor,
    process: ForwardProcess,
    *,
    steps: Optional[int] = None,
    spacing: Spacing = "uniform",
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callback] = None,
    step_hook: Optional[StepHook] = None,
    variable: str = "sigma",
) -> SamplerOutput:
    """Heun's 2nd-order method on the probability-flow ODE (Karras et al. 2022, Alg. 1).

    ``variable="sigma"``: between visited times ``t_i > t_{i+1}``, in ``y = x / a`` and
    ``sigma = s / a`` (``d = eps(x, t)``):

        y'      = y_i + (sigma_{i+1} - sigma_i) d_i                (Euler)
        y_{i+1} = y_i + (sigma_{i+1} - sigma_i) (d_i + d'(y', t_{i+1})) / 2

    and ``x_{i+1} = a_{i+1} y_{i+1}``. ``variable="time"``: the same two stages on
    ``dx / dt = f(t) x + g(t)^2 eps / (2 s)`` in the process's own (continuous) time,
    the ODE of Song et al. 2021, eq. 13. For the ``flow`` process this is
    ``dx / dt = eps - x0``, the straight-path velocity, on which few steps suffice
    (Liu et al. 2023), where ``sigma`` runs from ``(1 - eps) / eps`` and few steps
    do not. The last step (to clean data) is a plain Euler step, which is the
    denoising ``x0 = (x - s eps) / a``.

    Args:
        denoise_fn, x_T, process, steps, spacing, callback, step_hook: as
            :func:`~tsdiff.diffusion.samplers.sde.sample_euler_maruyama`.
        generator: unused (deterministic sampler); accepted for a uniform signature.
        variable: ``sigma`` or ``time`` (continuous-time processes only).

    Returns:
        :class:`SamplerOutput` with ``nfe = 2 * steps - 1``.

    Raises:
        ConfigError: an unknown ``variable``, or ``time`` on a discrete-step process.
    """
    del generator
    if variable not in ("sigma", "time"):
        raise ConfigError(f"heun's variable must be 'sigma' or 'time'; got {variable!r}")
    if variable == "time" and process.time_range()[2]:
        raise ConfigError(f"heun with variable='time' needs a continuous-time process (vp, subvp, ve, flow); "
                          f"{process.name!r} has discrete steps: use variable='sigma'")
    times, tdtype, scales, stds, x = start_sampling(process, steps, x_T, step_hook, spacing)
    sigmas = [s / a for a, s in zip(scales, stds)]

    def slope(x_now: torch.Tensor, t_now: torch.Tensor, eps: torch.Tensor, std: float) -> torch.Tensor:
        return process.reverse_drift(x_now, t_now, -eps / std, probability_flow=True)

    nfe = 0
    for i, time in enumerate(times):
        t = batch_time(time, x, tdtype)
        eps, x0_pred = predict_step(denoise_fn, x, t, i, scales[i], stds[i], callback)
        nfe += 1
        if i + 1 == len(times):
            x, t_next = x0_pred, None
        elif variable == "time":
            t_next = batch_time(times[i + 1], x, tdtype)
            dt = times[i + 1] - time
            d = slope(x, t, eps, stds[i])
            x_euler = x + dt * d
            d_next = slope(x_euler, t_next, denoise_fn(x_euler, t_next), stds[i + 1])
            nfe += 1
            x = x + (0.5 * dt) * (d + d_next)
        else:
            t_next = batch_time(times[i + 1], x, tdtype)
            y = x / scales[i]
            h = sigmas[i + 1] - sigmas[i]
            x_euler = scales[i + 1] * (y + h * eps)
            eps_next = denoise_fn(x_euler, t_next)
            nfe += 1
            x = scales[i + 1] * (y + h * 0.5 * (eps + eps_next))
        x = apply_hook(step_hook, x, t_next)
    return SamplerOutput(x, nfe)


@SAMPLERS.register("dpm_solver_pp")
def sample_dpm_solver_pp(
    denoise_fn: DenoiseFn,
    x_T: torch.Tensor,
    process: ForwardProcess,
    *,
    steps: Optional[int] = None,
    spacing: Spacing = "uniform",
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callback] = None,
    step_hook: Optional[StepHook] = None,
) -> SamplerOutput:
    """DPM-Solver++(2M), the multistep 2nd-order data-prediction solver (Lu et al. 2022, Alg. 2).

    With ``lambda = log(a / s)``, ``h_i = lambda_{i+1} - lambda_i`` and
    ``D_i = x0_pred(x_i, t_i)``:

        x_{i+1} = (s_{i+1} / s_i) x_i - a_{i+1} (exp(-h_i) - 1) D

    with ``D = D_0`` for the first step (DPM-Solver++1, i.e. DDIM) and
    ``D = (1 + 1 / (2 r)) D_i - D_{i-1} / (2 r)``, ``r = h_{i-1} / h_i``, after.
    The final step to clean data (``lambda = inf``) is first order: ``x = D_i``.
    Lu et al. recommend times uniform in ``lambda`` (``spacing="log_snr"``) for
    few steps; the default ``uniform`` (in time) is kept for every sampler alike.

    Args:
        denoise_fn, x_T, process, steps, spacing, callback, step_hook: as
            :func:`~tsdiff.diffusion.samplers.sde.sample_euler_maruyama`.
        generator: unused (deterministic sampler); accepted for a uniform signature.

    Returns:
        :class:`SamplerOutput` with ``nfe = steps``.
    """
    del generator
    return dpm_solver_pp_2m(denoise_fn, x_T, process, steps, spacing, 0.0, None, callback, step_hook)


def dpm_solver_pp_2m(denoise_fn: DenoiseFn, x_T: torch.Tensor, process: ForwardProcess, steps: Optional[int],
                     spacing: Spacing, eta: float, generator: Optional[torch.Generator], callback: Optional[Callback],
                     step_hook: Optional[StepHook]) -> SamplerOutput:
    """The multistep 2nd-order data-prediction update shared by DPM-Solver++(2M)
    (``eta = 0``) and SDE-DPM-Solver++(2M) (``eta > 0``,
    :func:`~tsdiff.diffusion.samplers.sde.sample_sde_dpm_solver_pp`, which documents
    the step): ``x_{i+1} = (s_{i+1} / s_i) exp(-eta h) x_i - a_{i+1} expm1(-(1 + eta) h) D
    + s_{i+1} sqrt(-expm1(-2 eta h)) z``."""
    times, tdtype, scales, stds, x = start_sampling(process, steps, x_T, step_hook, spacing)
    lambdas = [math.log(a / s) for a, s in zip(scales[:-1], stds[:-1])]
    nfe = 0
    x0_prev, h_prev = None, None
    for i, time in enumerate(times):
        t = batch_time(time, x, tdtype)
        eps, x0_pred = predict_step(denoise_fn, x, t, i, scales[i], stds[i], callback)
        nfe += 1
        if i + 1 == len(times):
            x, t_next = x0_pred, None
        else:
            h = lambdas[i + 1] - lambdas[i]
            if x0_prev is None:
                d = x0_pred
            else:
                r = h_prev / h
                d = (1 + 0.5 / r) * x0_pred - (0.5 / r) * x0_prev
            x = ((stds[i + 1] / stds[i]) * math.exp(-eta * h)) * x - (scales[i + 1] * math.expm1(-(1.0 + eta) * h)) * d
            if eta > 0.0:
                x = x + (stds[i + 1] * math.sqrt(-math.expm1(-2.0 * eta * h))) * randn_like(x, generator)
            x0_prev, h_prev = x0_pred, h
            t_next = batch_time(times[i + 1], x, tdtype)
        x = apply_hook(step_hook, x, t_next)
    return SamplerOutput(x, nfe)
