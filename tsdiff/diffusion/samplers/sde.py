"""Stochastic samplers of the reverse-time SDE (Song et al. 2021).

"Score-Based Generative Modeling through Stochastic Differential Equations"
(Song et al., ICLR 2021): Euler-Maruyama on the reverse SDE (eq. 6) and the
predictor-corrector sampler (Alg. 1-3) with the reverse-diffusion predictor and
the Langevin corrector. The score is ``-eps / std`` of the eps denoiser.

Both visit ``process.sampling_times(steps)`` and end with one denoising step
from the last time to clean data (``x0 = (x - std eps) / scale``, Tweedie's
formula, as score_sde's ``noise_removal``), which reuses the last evaluation.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from tsdiff.diffusion.process import ForwardProcess, Spacing
from tsdiff.diffusion.samplers.ode import dpm_solver_pp_2m
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
    randn_like,
)
from tsdiff.diffusion.utils import append_dims
from tsdiff.errors import ConfigError


@SAMPLERS.register("euler_maruyama")
def sample_euler_maruyama(
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
    """Euler-Maruyama integration of the reverse-time SDE (Song et al. 2021, eq. 6).

    Between visited times ``t_i > t_{i+1}`` with ``dt = t_i - t_{i+1}``:

        x <- x - [f(t_i) x - g(t_i)^2 score(x, t_i)] dt + g(t_i) sqrt(dt) z

    using the process's :meth:`~ForwardProcess.reverse_drift` and
    :meth:`~ForwardProcess.diffusion`. For DDPM, times are step indices and
    ``f, g`` those of its piecewise-constant VP-SDE reading
    (:meth:`DiscreteDDPM.sde_coefficients`). The last step is the denoising step
    to clean data.

    Args:
        denoise_fn: ``(x_t [B, ...], t [B]) -> eps prediction [B, ...]``.
        x_T: start sample ``[B, ...]`` (``process.prior_sample``).
        process: the forward process.
        steps: number of visited times (``None``: process default).
        spacing: placement of the visited times, a name in
            :data:`~tsdiff.diffusion.process.SPACINGS` (``uniform``, ``quadratic``,
            ``log_snr``, ``karras``), or the times themselves, noisiest first.
        generator: ``torch.Generator`` for all noise draws.
        callback: called per step with ``dict(step, t, x, x0_pred, eps_pred)``.
        step_hook: see :mod:`tsdiff.diffusion.samplers.base`.

    Returns:
        :class:`SamplerOutput` with ``nfe = steps``.
    """
    times, tdtype, scales, stds, x = start_sampling(process, steps, x_T, step_hook, spacing)
    nfe = 0
    for i, time in enumerate(times):
        t = batch_time(time, x, tdtype)
        eps, x0_pred = predict_step(denoise_fn, x, t, i, scales[i], stds[i], callback)
        nfe += 1
        if i + 1 == len(times):
            x = x0_pred
            t_next = None
        else:
            dt = float(time - times[i + 1])
            drift = process.reverse_drift(x, t, -eps / stds[i])
            g = append_dims(process.diffusion(t).to(x.dtype), x.ndim)
            x = x - drift * dt + g * math.sqrt(dt) * randn_like(x, generator)
            t_next = batch_time(times[i + 1], x, tdtype)
        x = apply_hook(step_hook, x, t_next)
    return SamplerOutput(x, nfe)


def _langevin_step(x, eps, std, snr, alpha, generator):
    # Step size from the batch-averaged norms, as in Song et al.'s code: a
    # per-sample ratio |z| / |grad| is heavy-tailed in low dimension (|grad|
    # near 0 gives huge steps) and wrecks the samples of small series.
    grad = -eps / std
    z = randn_like(x, generator)
    grad_norm = grad.flatten(1).norm(dim=1).mean().clamp(min=1e-12)
    noise_norm = z.flatten(1).norm(dim=1).mean()
    step = float(2 * alpha * (snr * noise_norm / grad_norm) ** 2)
    return x + step * grad + math.sqrt(2 * step) * z


@SAMPLERS.register("pc")
def sample_pc(
    denoise_fn: DenoiseFn,
    x_T: torch.Tensor,
    process: ForwardProcess,
    *,
    steps: Optional[int] = None,
    spacing: Spacing = "uniform",
    n_corrector: int = 1,
    snr: float = 0.16,
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callback] = None,
    step_hook: Optional[StepHook] = None,
) -> SamplerOutput:
    """Predictor-corrector sampling (Song et al. 2021, Alg. 1, 4 and 5).

    At each visited time ``t_i`` first ``n_corrector`` Langevin steps
    (Alg. 4/5): ``x <- x + e grad + sqrt(2 e) z`` with ``grad = -eps / std`` and
    ``e = 2 alpha (snr |z| / |grad|)^2`` with the norms averaged over the batch
    (as Song et al.'s code does; samples of one batch share the step), ``alpha = (scale_i /
    scale_{i+1})^2`` (``1 - beta_i`` for VP, 1 for VE); then the
    reverse-diffusion predictor (Song et al. 2021, eq. 46-47) built from the
    exact forward transition ``x_{t_i} = r x_{t_{i+1}} + sqrt(q) z``
    (``r = scale_i / scale_{i+1}``, ``q = std_i^2 - r^2 std_{i+1}^2``):

        x <- (2 - r) x + q score + sqrt(q) z.

    For DDPM this is Song et al.'s ancestral-like update
    ``(2 - sqrt(1 - beta)) x + beta s + sqrt(beta) z``; for VE it is SMLD's.
    The last predictor step is the denoising step to clean data.

    Args:
        denoise_fn, x_T, process, steps, spacing, generator, callback, step_hook: as
            :func:`sample_euler_maruyama`.
        n_corrector: Langevin steps per visited time (>= 0).
        snr: target signal-to-noise ratio ``r`` of the corrector (> 0).

    Returns:
        :class:`SamplerOutput` with ``nfe = steps * (1 + n_corrector)``.

    Raises:
        ConfigError: ``n_corrector < 0`` or ``snr <= 0``.
    """
    if isinstance(n_corrector, bool) or not isinstance(n_corrector, int) or n_corrector < 0:
        raise ConfigError(f"n_corrector must be an integer >= 0; got {n_corrector!r}")
    if not (isinstance(snr, (int, float)) and snr > 0):
        raise ConfigError(f"snr must be a positive number; got {snr!r}")
    times, tdtype, scales, stds, x = start_sampling(process, steps, x_T, step_hook, spacing)
    nfe = 0
    for i, time in enumerate(times):
        t = batch_time(time, x, tdtype)
        r = scales[i] / scales[i + 1]
        for _ in range(n_corrector):
            x = _langevin_step(x, denoise_fn(x, t), stds[i], float(snr), r**2, generator)
            nfe += 1
        eps, x0_pred = predict_step(denoise_fn, x, t, i, scales[i], stds[i], callback)
        nfe += 1
        if i + 1 == len(times):
            x = x0_pred
            t_next = None
        else:
            q = max(stds[i] ** 2 - r**2 * stds[i + 1] ** 2, 0.0)
            x = (2 - r) * x - (q / stds[i]) * eps + math.sqrt(q) * randn_like(x, generator)
            t_next = batch_time(times[i + 1], x, tdtype)
        x = apply_hook(step_hook, x, t_next)
    return SamplerOutput(x, nfe)


@SAMPLERS.register("sde_dpm_solver_pp")
def sample_sde_dpm_solver_pp(
    denoise_fn: DenoiseFn,
    x_T: torch.Tensor,
    process: ForwardProcess,
    *,
    steps: Optional[int] = None,
    spacing: Spacing = "uniform",
    eta: float = 1.0,
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callback] = None,
    step_hook: Optional[StepHook] = None,
) -> SamplerOutput:
    """SDE-DPM-Solver++(2M): the stochastic multistep 2nd-order data-prediction solver
    (Lu et al. 2022, "DPM-Solver++", Sec. 5 and App. B), with an ``eta`` that moves it
    between the probability-flow ODE and the reverse SDE.

    With ``lambda = log(a / s)``, ``h_i = lambda_{i+1} - lambda_i`` and
    ``D_i = x0_pred(x_i, t_i)``, each step is the exact solution of the linear part of
    the SDE with the data prediction held at ``D``:

        x_{i+1} = (s_{i+1} / s_i) exp(-eta h) x_i + a_{i+1} (1 - exp(-(1 + eta) h)) D
                  + s_{i+1} sqrt(1 - exp(-2 eta h)) z

    where ``D = D_0`` on the first step and ``D = D_i + (D_i - D_{i-1}) / (2 r)``,
    ``r = h_{i-1} / h_i``, after (the multistep 2nd-order correction). At ``eta = 1``
    the first-order step is ancestral DDPM sampling (the posterior mean and
    variance of DDPM on the visited times); at ``eta = 0`` the sampler is
    :func:`~tsdiff.diffusion.samplers.ode.sample_dpm_solver_pp`. The final step to
    clean data is ``x = D`` of the last evaluation. Use ``spacing="log_snr"``: on a
    time grid the step ratios ``r`` vary widely and the correction overshoots (VP SDE,
    10 uniform steps: a worse covariance than ancestral sampling on Gaussian data). The
    correction extrapolates between x0 predictions, so a network that is poor at the
    noisiest levels does worse with it than with ``ddpm`` (a 4-epoch CSDI on AQI-36,
    ``benchmarks/records/aqi36/sampler_nfe_40w_low_nfe/``).

    Args:
        denoise_fn, x_T, process, steps, spacing, generator, callback, step_hook: as
            :func:`sample_euler_maruyama`.
        eta: noise of each step in ``[0, 1]`` (1: the reverse SDE, 0: the ODE).

    Returns:
        :class:`SamplerOutput` with ``nfe = steps``.

    Raises:
        ConfigError: ``eta`` outside ``[0, 1]``.
    """
    return dpm_solver_pp_2m(denoise_fn, x_T, process, steps, spacing, check_eta(eta), generator, callback, step_hook)
