"""Noise (beta) schedules of discrete-time diffusion processes.

Each schedule in :data:`SCHEDULES` maps ``(num_steps, beta_start, beta_end)``
to a float64 tensor of ``num_steps`` betas; :func:`make_betas` validates the
arguments and the result, so schedules themselves stay one-liners.
"""

from __future__ import annotations

import math
import numbers

import torch

from tsdiff.errors import ConfigError
from tsdiff.registry import Registry

SCHEDULES: Registry = Registry("beta schedule")

#: Largest beta the cosine schedule may produce (Nichol & Dhariwal 2021): the
#: last betas of the raw cosine schedule approach 1, which makes sampling blow up.
COSINE_MAX_BETA = 0.999
#: Offset ``s`` of the cosine schedule, so that beta_0 is not vanishingly small.
COSINE_OFFSET = 0.008


def _check_increasing(name: str, beta_start: float, beta_end: float) -> None:
    if beta_start > beta_end:
        raise ConfigError(
            f"{name} schedule needs beta_start <= beta_end; "
            f"got beta_start={beta_start} > beta_end={beta_end}"
        )


@SCHEDULES.register("linear")
def linear_schedule(num_steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Linearly spaced betas (Ho et al. 2020, DDPM).

    Returns:
        float64 tensor ``[num_steps]``: ``linspace(beta_start, beta_end, num_steps)``.
    """
    _check_increasing("linear", beta_start, beta_end)
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


@SCHEDULES.register("quadratic")
def quadratic_schedule(num_steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Betas whose square roots are linearly spaced (CSDI's ``"quad"``, Tashiro et al. 2021).

    Returns:
        float64 tensor ``[num_steps]``:
        ``linspace(sqrt(beta_start), sqrt(beta_end), num_steps) ** 2``.
    """
    _check_increasing("quadratic", beta_start, beta_end)
    return (
        torch.linspace(
            math.sqrt(beta_start), math.sqrt(beta_end), num_steps, dtype=torch.float64
        )
        ** 2
    )


@SCHEDULES.register("cosine")
def cosine_schedule(num_steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021, "Improved DDPM", eq. 17).

    ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos(((t / T) + s) / (1 + s) * pi / 2) ** 2``,
    ``s = 0.008``, and ``beta_t = 1 - alpha_bar(t + 1) / alpha_bar(t)`` clipped to
    ``max_beta = 0.999``. ``beta_start`` and ``beta_end`` are ignored: the shape
    of the curve fixes every beta.

    Returns:
        float64 tensor ``[num_steps]`` of betas.
    """
    del beta_start, beta_end  # fixed by the cosine curve
    steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * (math.pi / 2)) ** 2
    betas = 1 - f[1:] / f[:-1]
    return betas.clamp(max=COSINE_MAX_BETA)


def _check_beta(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a real number in (0, 1); got {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise ConfigError(f"{name} must lie in the open interval (0, 1); got {value}")
    return value


def make_betas(
    schedule: str, num_steps: int, beta_start: float, beta_end: float
) -> torch.Tensor:
    """Build the betas of a registered schedule, validating inputs and output.

    Args:
        schedule: name registered in :data:`SCHEDULES` (``linear``, ``quadratic``,
            ``cosine``).
        num_steps: number of diffusion steps ``T`` (int >= 1).
        beta_start: first beta, in (0, 1). Ignored by ``cosine``, but still
            validated so a config stays valid if its schedule is switched.
        beta_end: last beta, in (0, 1), >= ``beta_start`` for ``linear`` and
            ``quadratic``. Ignored by ``cosine`` (validated as above).

    Returns:
        float64 tensor ``[T]`` with every beta in (0, 1).

    Raises:
        ConfigError: invalid ``num_steps`` or betas.
        UnknownNameError: ``schedule`` is not registered (lists the valid names).
    """
    fn = SCHEDULES.get(schedule)
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral):
        raise ConfigError(f"num_steps must be an integer >= 1; got {num_steps!r}")
    if num_steps < 1:
        raise ConfigError(f"num_steps must be an integer >= 1; got {num_steps}")
    beta_start = _check_beta("beta_start", beta_start)
    beta_end = _check_beta("beta_end", beta_end)
    betas = fn(int(num_steps), beta_start, beta_end)
    bad = ~((betas > 0) & (betas < 1))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ConfigError(
            f"{schedule} schedule produced beta[{i}]={float(betas[i])}, "
            "outside the valid range (0, 1)"
        )
    return betas
