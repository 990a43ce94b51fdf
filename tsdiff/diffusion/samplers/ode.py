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
) -> SamplerOutput:
    """Heun's 2nd-order method on the probability-flow ODE (Karras et al. 2022, Alg. 1).

    Between visited times ``t_i > t_{i+1}``, in ``y = x / a`` and
    ``sigma = s / a`` (``d = eps(x, t)``):

        y'      = y_i + (sigma_{i+1} - sigma_i) d_i                (Euler)
        y_{i+1} = y_i + (sigma_{i+1} - sigma_i) (d_i + d'(y', t_{i+1})) / 2

    and ``x_{i+1} = a_{i+1} y_{i+1}``. The last step (to ``sigma = 0``, clean data)
    is a plain Euler step, which is the denoising ``x0 = (x - s eps) / a``.

    Args:
        denoise_fn, x_T, process, steps, spacing, callback, step_hook: as
            :func:`~tsdiff.diffusion.samplers.sde.sample_euler_maruyama`.
        generator: unused (deterministic sampler); accepted for a uniform signature.

    Returns:
        :class:`SamplerOutput` with ``nfe = 2 * steps - 1``.
    """
    del generator
    times, tdtype, scales, stds, x = start_sampling(process, steps, x_T, step_hook, spacing)
    sigmas = [s / a for a, s in zip(scales, stds)]
    nfe = 0
    for i, time in enumerate(times):
        t = batch_time(time, x, tdtype)
        eps, x0_pred = predict_step(denoise_fn, x, t, i, scales[i], stds[i], callback)
        nfe += 1
        if i + 1 == len(times):
            x, t_next = x0_pred, None
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
