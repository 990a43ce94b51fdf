"""Continuous-time forward SDEs of Song et al. 2021: VP, sub-VP and VE.

"Score-Based Generative Modeling through Stochastic Differential Equations"
(Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, ICLR 2021), Sec. 3.4 and
App. B. Time runs over ``[0, 1]``; samplers integrate from ``t = 1`` down to
``t = eps`` (default ``1e-3``) and finish with one denoising step to clean data.
Each process is a :class:`~tsdiff.diffusion.process.ForwardProcess`, so every
sampler, loss and conditioning strategy works with it unchanged.

Network time (:meth:`ContinuousSDE.network_time`) is ``999 * t`` for all three,
the range of a 1000-step DDPM index, so sinusoidal step embeddings (CSDI) work
as they are. For VE, ``t`` is an affine function of ``log sigma``
(``t = log(sigma / sigma_min) / log(sigma_max / sigma_min)``), so this is a
log-sigma embedding rescaled to ``[0, 999]``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import torch

from tsdiff.diffusion.process import PROCESSES, ForwardProcess, spaced_positions
from tsdiff.errors import ConfigError

F64 = torch.float64


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ConfigError(f"{name} must be a positive number; got {value!r}")
    return float(value)


class ContinuousSDE(ForwardProcess):
    """Shared plumbing of the continuous-time SDEs: times, training times, prior, config.

    Args:
        eps: smallest time visited by samplers and drawn for training, in (0, 1).
        num_steps: default number of sampling steps (``steps=None``).
    """

    #: Network time scale: ``network_time(t) = TIME_SCALE * t``.
    TIME_SCALE = 999.0

    def __init__(self, eps: float = 1e-3, num_steps: int = 1000) -> None:
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 < eps < 1.0:
            raise ConfigError(f"eps must lie in the open interval (0, 1); got {eps!r}")
        if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or num_steps < 1:
            raise ConfigError(f"num_steps must be an integer >= 1; got {num_steps!r}")
        self.eps = float(eps)
        self.num_steps = int(num_steps)

    def time_range(self) -> tuple[float, float, bool]:
        return self._top(), self.eps, False

    def _top(self) -> float:
        """The noisiest time samplers visit (1; below it where the signal vanishes at 1)."""
        return 1.0

    # subclasses define these two in closed form
    def _coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _time_from_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _prior_std(self) -> float:
        return 1.0

    def _params(self) -> dict[str, Any]:
        return {}

    def _check_t(self, t: torch.Tensor) -> torch.Tensor:
        if not t.dtype.is_floating_point:
            raise ConfigError(
                f"{type(self).__name__} expects float times in [0, 1]; got dtype {t.dtype}"
            )
        t = t.to(F64)
        if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):
            raise ConfigError(
                f"times of the {self.name!r} process must lie in [0, 1]; got values in "
                f"[{float(t.min()):g}, {float(t.max()):g}]"
            )
        return t

    def marginal_coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._coefficients(self._check_t(t))

    def time_from_noise_level(self, sigma: torch.Tensor) -> torch.Tensor:
        """Closed-form inverse of :meth:`noise_level` on ``[sigma(0), sigma(1)]`` (float64 times)."""
        ends = self.noise_level(torch.tensor([0.0, 1.0], dtype=F64))
        sigma = self._check_noise_range(sigma, float(ends[0]), float(ends[1]), self.name)
        return self._time_from_sigma(sigma).clamp(0.0, 1.0)

    def sampling_times(self, steps: Optional[int] = None, spacing: str = "uniform") -> torch.Tensor:
        """Times from the top (``1``) down to ``eps`` (float64) placed by ``spacing``; ``steps = 1``
        is the top alone.

        ``uniform`` is ``linspace(1, eps, steps)``; for VE this is a geometric
        sequence of sigmas from ``sigma_max`` to ``sigma(eps)``, since ``log sigma``
        is affine in ``t`` (so ``log_snr`` spacing coincides with it). Other spacings:
        :data:`~tsdiff.diffusion.process.SPACINGS`.

        Raises:
            ConfigError: ``steps`` is not an integer >= 1.
            UnknownNameError: unknown ``spacing``.
        """
        if steps is None:
            steps = self.num_steps
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ConfigError(f"steps must be an integer >= 1; got {steps!r}")
        ends = torch.tensor([self._top()], dtype=F64), torch.tensor([self.eps], dtype=F64)
        times = spaced_positions(self, int(steps), spacing, *ends)
        if steps > 1 and not bool((times[:-1] > times[1:]).all()):
            raise AssertionError(f"sampling times not strictly decreasing: {times.tolist()}")
        return times

    def sample_train_time(
        self,
        batch_size: int,
        *,
        generator: Optional[torch.Generator] = None,
        device: Optional[torch.device | str] = None,
    ) -> torch.Tensor:
        """Uniform times in ``[eps, top]`` (float64 ``[batch_size]``)."""
        u = torch.rand(batch_size, generator=generator, device=device, dtype=F64)
        return self.eps + (self._top() - self.eps) * u

    def network_time(self, t: torch.Tensor) -> torch.Tensor:
        """``999 * t`` as float32 (see the module docstring)."""
        return (self.TIME_SCALE * self._check_t(t)).to(torch.float32)

    def prior_sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: Optional[torch.Generator] = None,
        device: Optional[torch.device | str] = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``N(0, prior_std^2 I)``: ``prior_std`` is 1 for VP / sub-VP, ``sigma_max`` for VE."""
        x = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
        return self._prior_std() * x

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **self._params(), "eps": self.eps, "num_steps": self.num_steps}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class _LinearBetaSDE(ContinuousSDE):
    """Linear ``beta(t) = beta_min + t (beta_max - beta_min)`` and its integral ``B(t)``."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, eps: float = 1e-3,
                 num_steps: int = 1000) -> None:
        super().__init__(eps, num_steps)
        self.beta_min = _positive("beta_min", beta_min)
        self.beta_max = _positive("beta_max", beta_max)
        if self.beta_max < self.beta_min:
            raise ConfigError(
                f"beta_max must be >= beta_min; got beta_min={beta_min}, beta_max={beta_max}"
            )

    def _params(self) -> dict[str, Any]:
        return {"beta_min": self.beta_min, "beta_max": self.beta_max}

    def _beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _integral(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def _time_from_integral(self, big_b: torch.Tensor) -> torch.Tensor:
        # Positive root of 0.5 (bmax - bmin) t^2 + bmin t - B = 0, written without
        # cancellation: t = 2B / (bmin + sqrt(bmin^2 + 2 (bmax - bmin) B)).
        d = self.beta_max - self.beta_min
        return 2 * big_b / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * d * big_b))


@PROCESSES.register("vp")
class VPSDE(_LinearBetaSDE):
    """Variance-preserving SDE (Song et al. 2021, eq. 11; continuous DDPM).

    ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW``, so with ``B(t) = int_0^t beta``:
    ``scale = exp(-B / 2)``, ``std = sqrt(1 - exp(-B))``, ``sigma^2 = exp(B) - 1``.
    Prior ``N(0, I)``.

    Args:
        beta_min, beta_max: endpoints of the linear ``beta(t)`` (0.1, 20).
        eps: smallest sampling / training time.
        num_steps: default number of sampling steps.
    """

    name = "vp"

    def _coefficients(self, t):
        big_b = self._integral(t)
        return torch.exp(-0.5 * big_b), (-torch.expm1(-big_b)).sqrt()

    def sde_coefficients(self, t):
        beta = self._beta(self._check_t(t))
        return -0.5 * beta, beta

    def _time_from_sigma(self, sigma):
        return self._time_from_integral(torch.log1p(sigma**2))


@PROCESSES.register("subvp")
class SubVPSDE(_LinearBetaSDE):
    """Sub-VP SDE (Song et al. 2021, eq. 12): variance bounded by the VP one.

    ``dx = -beta x / 2 dt + sqrt(beta (1 - exp(-2 B))) dW``: ``scale = exp(-B / 2)``,
    ``std = 1 - exp(-B)`` (the standard deviation itself, not its square), hence
    ``sigma = 2 sinh(B / 2)``. Prior ``N(0, I)``.

    Args: as :class:`VPSDE`.
    """

    name = "subvp"

    def _coefficients(self, t):
        big_b = self._integral(t)
        return torch.exp(-0.5 * big_b), -torch.expm1(-big_b)

    def sde_coefficients(self, t):
        t = self._check_t(t)
        beta = self._beta(t)
        return -0.5 * beta, beta * (-torch.expm1(-2 * self._integral(t)))

    def _time_from_sigma(self, sigma):
        return self._time_from_integral(2 * torch.asinh(0.5 * sigma))


@PROCESSES.register("ve")
class VESDE(ContinuousSDE):
    """Variance-exploding SDE (Song et al. 2021, eq. 9; continuous SMLD / NCSN).

    ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``, ``dx = sigma(t)
    sqrt(2 log(sigma_max / sigma_min)) dW``: ``scale = 1``, ``std = sigma(t)``,
    ``f = 0``. Prior ``N(0, sigma_max^2 I)``. As in the paper, the marginal std at
    ``t = 0`` is ``sigma_min``, not 0: data are assumed to carry that much noise.

    Args:
        sigma_min, sigma_max: noise levels at ``t = 0`` and ``t = 1`` (0.01, 50).
        eps: smallest sampling / training time.
        num_steps: default number of sampling steps.
    """

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, eps: float = 1e-3,
                 num_steps: int = 1000) -> None:
        super().__init__(eps, num_steps)
        self.sigma_min = _positive("sigma_min", sigma_min)
        self.sigma_max = _positive("sigma_max", sigma_max)
        if not self.sigma_max > self.sigma_min:
            raise ConfigError(
                f"sigma_max must be > sigma_min; got sigma_min={sigma_min}, sigma_max={sigma_max}"
            )
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def _params(self) -> dict[str, Any]:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}

    def _prior_std(self) -> float:
        return self.sigma_max

    def _coefficients(self, t):
        sigma = self.sigma_min * torch.exp(t * self._log_ratio)
        return torch.ones_like(sigma), sigma

    def sde_coefficients(self, t):
        sigma = self._coefficients(self._check_t(t))[1]
        return torch.zeros_like(sigma), sigma**2 * (2 * self._log_ratio)

    def _time_from_sigma(self, sigma):
        return torch.log(sigma / self.sigma_min) / self._log_ratio
