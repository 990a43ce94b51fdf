"""Config names of the diffusion components, and builders from YAML sections.

=====================  ===============================================  =============================
kind                   names                                            builder
=====================  ===============================================  =============================
process                ddpm, vp, subvp, ve, flow                        :func:`build_process`
sampler                ddpm, ddim, euler_maruyama, pc, heun,            :func:`build_sampler`
                       dpm_solver_pp, sde_dpm_solver_pp
conditioning           conditional, inpainting, guidance                :func:`build_conditioning`
parametrization        eps, x0, v, velocity, score                      :func:`build_loss` / ``to_eps``
loss weighting         eps, x0, v, velocity, min_snr, max_snr           :func:`build_loss`
beta schedule          linear, quadratic, cosine                        ``DiscreteDDPM(schedule=...)``
time spacing           uniform, quadratic, log_snr, karras              sampler option ``spacing``
=====================  ===============================================  =============================

Unknown names raise :class:`~tsdiff.errors.UnknownNameError` listing the valid
names; unknown options raise :class:`~tsdiff.errors.ConfigError` listing the
valid options.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from tsdiff.diffusion.conditioning import CONDITIONING
from tsdiff.diffusion.losses import LOSS_WEIGHTINGS, denoising_loss
from tsdiff.diffusion.parametrization import PREDICTIONS, _check_prediction
from tsdiff.diffusion.process import PROCESSES, SPACINGS, build_process
from tsdiff.diffusion.samplers import SAMPLERS
from tsdiff.diffusion.schedules import SCHEDULES
from tsdiff.errors import ConfigError
from tsdiff.registry import check_options

#: Arguments of a sampler that tsdiff supplies at call time, not the config.
SAMPLER_CALL_ARGS = ("denoise_fn", "x_T", "process", "generator", "callback", "step_hook")
#: Arguments of a conditioning strategy supplied at call time.
CONDITIONING_CALL_ARGS = ("denoise_fn", "process", "observed", "cond_mask", "generator")


def available() -> dict[str, list[str]]:
    """Every configurable diffusion component name, by kind."""
    return {
        "process": PROCESSES.names(),
        "sampler": SAMPLERS.names(),
        "conditioning": CONDITIONING.names(),
        "parametrization": sorted(PREDICTIONS),
        "loss_weighting": LOSS_WEIGHTINGS.names(),
        "schedule": SCHEDULES.names(),
        "spacing": SPACINGS.names(),
    }


def build_sampler(name: str, **options: Any) -> Callable:
    """The sampler registered as ``name`` with its config ``options`` bound.

    Returns:
        ``fn(denoise_fn, x_T, process, *, generator=None, callback=None, step_hook=None)``.

    Raises:
        UnknownNameError: unknown sampler name; ConfigError: unknown option.
    """
    fn = SAMPLERS.get(name)
    check_options(fn, options, f"sampler {name!r}", fixed=SAMPLER_CALL_ARGS)
    return functools.partial(fn, **options)


def build_conditioning(name: str, **options: Any) -> Callable:
    """The conditioning strategy ``name`` with its options bound.

    Returns:
        ``fn(denoise_fn, process, observed, cond_mask, *, generator=None) -> Conditioned``.
    """
    fn = CONDITIONING.get(name)
    check_options(fn, options, f"conditioning {name!r}", fixed=CONDITIONING_CALL_ARGS)
    return functools.partial(fn, **options)


def build_loss(parametrization: str = "eps", weighting: str | None = "eps", gamma: float = 5.0) -> Callable:
    """:func:`~tsdiff.diffusion.losses.denoising_loss` with its options bound (names checked now);
    ``weighting=None``: the parametrisation's own MSE."""
    _check_prediction(parametrization)
    if weighting is not None:
        LOSS_WEIGHTINGS.get(weighting)
    if not (isinstance(gamma, (int, float)) and gamma > 0):
        raise ConfigError(f"loss gamma must be a positive number; got {gamma!r}")
    return functools.partial(
        denoising_loss, parametrization=parametrization, weighting=weighting, gamma=gamma
    )


_BUILDERS = {
    "process": build_process,
    "sampler": build_sampler,
    "conditioning": build_conditioning,
}


def build_from_config(kind: str, section: dict[str, Any]) -> Any:
    """Build one component from a YAML section ``{"name": ..., **options}``.

    ``kind`` is ``process``, ``sampler``, ``conditioning`` or ``loss`` (whose
    section has no ``name``: ``{"parametrization", "weighting", "gamma"}``).

    Raises:
        ConfigError: unknown kind, missing ``name``, or unknown options.
        UnknownNameError: unknown component name.
    """
    params = dict(section)
    if kind == "loss":
        check_options(build_loss, params, "loss")
        return build_loss(**params)
    if kind not in _BUILDERS:
        raise ConfigError(
            f"unknown component kind {kind!r}; valid kinds are: {', '.join(sorted([*_BUILDERS, 'loss']))}"
        )
    if "name" not in params:
        raise ConfigError(
            f"{kind} config needs a 'name' key; valid names are: {', '.join(available()[kind])}"
        )
    return _BUILDERS[kind](params.pop("name"), **params)
