"""Shared pieces of the samplers: registry, output type, hooks and small helpers.

Every sampler is a pure function
``sample_<name>(denoise_fn, x_T, process, *, steps, generator, callback,
step_hook, ...) -> SamplerOutput(x0, nfe)`` that only uses the process's
:meth:`~tsdiff.diffusion.process.ForwardProcess.sampling_schedule` (times and
their ``(scale, std)``) and, for the SDE samplers, its
:meth:`~tsdiff.diffusion.process.ForwardProcess.reverse_drift` and
:meth:`~tsdiff.diffusion.process.ForwardProcess.diffusion`. No sampler branches
on the process type, so DDPM (step indices as times) and the VP / sub-VP / VE
SDEs all work with all of them.

``step_hook(x, t_next) -> x`` (optional) is applied to the start state (with
the first time), after every step (with the time just reached), and once at the
end with ``t_next=None`` (clean data). Conditioning strategies use it to
re-impose observed values (:mod:`tsdiff.diffusion.conditioning`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import torch

from tsdiff.diffusion.process import Spacing
from tsdiff.errors import ConfigError
from tsdiff.registry import Registry

SAMPLERS: Registry = Registry("sampler")

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict[str, Any]], None]
StepHook = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


class SamplerOutput(NamedTuple):
    """Result of a sampler.

    Attributes:
        x0: the generated sample, same shape and dtype as ``x_T``.
        nfe: number of ``denoise_fn`` evaluations performed.
    """

    x0: torch.Tensor
    nfe: int


def batch_time(value: float | int, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A time repeated over the batch: tensor ``[B]`` on ``like``'s device."""
    return torch.full((like.shape[0],), value, dtype=dtype, device=like.device)


def apply_hook(hook: Optional[StepHook], x: torch.Tensor, t: Optional[torch.Tensor]) -> torch.Tensor:
    """``hook(x, t)`` when a hook is given, else ``x``."""
    return x if hook is None else hook(x, t)


def check_eta(eta) -> float:
    """``eta`` as a float after checking it is a real number in ``[0, 1]`` (``True``/``False`` are
    rejected: a YAML ``eta: true`` is a typo, not 1.0).

    Raises:
        ConfigError: ``eta`` is not a number in ``[0, 1]``.
    """
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= float(eta) <= 1.0:
        raise ConfigError(f"eta must be a number in [0, 1]; got {eta!r}")
    return float(eta)


def randn_like(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Standard normal noise shaped like ``x`` from ``generator``."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def predict_step(denoise_fn, x: torch.Tensor, t: torch.Tensor, step: int, scale: float, std: float,
                 callback: Optional[Callback]) -> tuple[torch.Tensor, torch.Tensor]:
    """One network evaluation: the eps prediction, the implied ``x0 = (x - std eps) / scale``,
    and the progress callback (``dict(step, t, x, x0_pred, eps_pred)``).

    Returns:
        ``(eps, x0_pred)``, both shaped like ``x``.
    """
    eps = denoise_fn(x, t)
    x0_pred = (x - std * eps) / scale
    if callback is not None:
        callback(dict(step=step, t=t, x=x, x0_pred=x0_pred, eps_pred=eps))
    return eps, x0_pred


def start_sampling(process, steps: Optional[int], x_T: torch.Tensor, step_hook: Optional[StepHook],
                   spacing: Spacing = "uniform"):
    """The opening every sampler shares: the process's schedule for ``steps`` and the first hook.

    ``spacing`` (a name in :data:`~tsdiff.diffusion.process.SPACINGS`) places the
    visited times: ``uniform`` in time, ``quadratic`` in time, ``log_snr`` or ``karras``;
    a sequence of times visits exactly those (noisiest first, checked by
    :meth:`~tsdiff.diffusion.process.ForwardProcess.explicit_times`).

    Times and coefficients are returned as Python floats, so the per-step maths is
    float64 and the loop needs no device syncs.

    Returns:
        ``(times, time_dtype, scales, stds, x)``: ``scales``/``stds`` have one more entry
        than ``times`` (the clean end point), and ``x`` is ``x_T`` after ``step_hook``.
    """
    schedule = process.sampling_schedule(steps, spacing)
    times, tdtype = schedule.times.tolist(), schedule.times.dtype
    x = apply_hook(step_hook, x_T, batch_time(times[0], x_T, tdtype))
    return times, tdtype, schedule.scales.tolist(), schedule.stds.tolist(), x
