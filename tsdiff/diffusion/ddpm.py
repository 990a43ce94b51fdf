"""The discrete-time DDPM forward process (Ho et al. 2020), registered as ``"ddpm"``.

It implements the :class:`~tsdiff.diffusion.process.ForwardProcess` contract, read as a VP-SDE in
step units with piecewise-constant beta, so every sampler runs on it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np
import torch

from tsdiff.diffusion.process import PROCESSES, ForwardProcess, spaced_positions
from tsdiff.diffusion.schedules import make_betas
from tsdiff.errors import ConfigError


@PROCESSES.register("ddpm")
class DiscreteDDPM(ForwardProcess):
    """Discrete-time variance-preserving process of DDPM (Ho et al. 2020).

    ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` with
    ``abar_t = prod_{s <= t} (1 - beta_s)``, for integer steps ``t`` in
    ``{0, ..., T - 1}`` (0 is the least noisy). Defaults are CSDI's
    (Tashiro et al. 2021): 50 steps, quadratic schedule from 1e-4 to 0.5.

    Tables are kept in float64 on the CPU; lookups are cast to the data's dtype
    and device on use, so the process itself never needs moving.

    Args:
        num_steps: number of diffusion steps ``T``.
        schedule: beta schedule name (see :data:`~tsdiff.diffusion.schedules.SCHEDULES`).
        beta_start, beta_end: schedule endpoints (see :func:`make_betas`).
    """

    name = "ddpm"

    def __init__(
        self,
        num_steps: int = 50,
        schedule: str = "quadratic",
        beta_start: float = 1e-4,
        beta_end: float = 0.5,
    ) -> None:
        self.betas = make_betas(schedule, num_steps, beta_start, beta_end)
        self.num_steps = int(num_steps)
        self.schedule = schedule
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        self._on_device: dict = {}  # (table name, device) -> the table there: one copy per device, not per step

    def _table(self, name: str, device: torch.device) -> torch.Tensor:
        """The float64 table ``name`` on ``device`` (copied there once)."""
        table = getattr(self, name)
        if table.device == device:
            return table
        key = (name, device)
        cached = self._on_device.get(key)
        if cached is None:
            cached = self._on_device[key] = table.to(device)
        return cached

    def __repr__(self) -> str:
        return (
            f"DiscreteDDPM(num_steps={self.num_steps}, schedule={self.schedule!r}, "
            f"beta_start={self.beta_start}, beta_end={self.beta_end})"
        )

    def _check_t(self, t: torch.Tensor) -> None:
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ConfigError(
                f"DiscreteDDPM expects integer timesteps (torch.long); got dtype {t.dtype}"
            )
        # One host sync on accelerators, accepted: an out-of-range index would
        # otherwise fail later with an opaque device-side assertion.
        if t.numel():
            lo, hi = (int(v) for v in torch.stack(torch.aminmax(t)).tolist())
            if lo < 0 or hi >= self.num_steps:
                raise ConfigError(
                    f"timesteps must lie in {{0, ..., {self.num_steps - 1}}} for a "
                    f"{self.num_steps}-step process; got values in [{lo}, {hi}]"
                )

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """``abar_t`` for integer steps ``t`` ``[B]``, float64 on ``t.device``."""
        self._check_t(t)
        return self._table("alpha_bars", t.device)[t]

    def marginal_coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        abar = self.alpha_bar(t)
        return abar.sqrt(), (1.0 - abar).sqrt()

    def sde_coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """DDPM read as a VP-SDE in step units with piecewise-constant ``beta``.

        On the interval ``(t - 1, t]`` (step ``t``; clean data sits at time ``-1``)
        the rate is ``b_t = -log(1 - beta_t)``, so ``exp(-sum b) = abar_t`` at
        every integer step: ``f = -b_t / 2`` and ``g^2 = b_t`` (Song et al. 2021,
        VP-SDE). Times are the long step indices; ``dt`` is counted in steps.
        """
        self._check_t(t)
        b = -torch.log1p(-self._table("betas", t.device)[t])
        return -0.5 * b, b

    def time_from_noise_level(self, sigma: torch.Tensor) -> torch.Tensor:
        """The step whose ``sigma_t = sqrt((1 - abar_t) / abar_t)`` is nearest to ``sigma`` (log scale).

        Exact inverse on the grid of steps; other levels snap to the nearest step.

        Raises:
            ConfigError: ``sigma`` outside ``[sigma_0, sigma_{T-1}]``.
        """
        table = ((1 - self.alpha_bars) / self.alpha_bars).sqrt()
        sigma = self._check_noise_range(sigma, float(table[0]), float(table[-1]), "ddpm")
        dist = (sigma.log().reshape(-1, 1).cpu() - table.log().reshape(1, -1)).abs()
        return dist.argmin(dim=1).reshape(sigma.shape).to(sigma.device)

    def continuous_time_from_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        """Fractional step position whose log-SNR is ``log_snr`` (linear between steps).

        Raises:
            ConfigError: a level outside ``[lambda_{T-1}, lambda_0]``.
        """
        log_snr = torch.as_tensor(log_snr, dtype=torch.float64)
        table = torch.log(self.alpha_bars / (1 - self.alpha_bars))  # decreasing in the step
        sigma = torch.exp(-0.5 * log_snr)
        self._check_noise_range(sigma, math.exp(-0.5 * float(table[0])), math.exp(-0.5 * float(table[-1])), "ddpm")
        steps = torch.arange(self.num_steps, dtype=torch.float64)
        pos = np.interp(log_snr.reshape(-1).cpu().numpy(), table.flip(0).numpy(), steps.flip(0).numpy())
        return torch.from_numpy(pos).reshape(log_snr.shape)

    def sampling_times(self, steps: Optional[int] = None, spacing: str = "uniform") -> torch.Tensor:
        """Distinct original step indices from ``T - 1`` down to ``0``, placed by ``spacing``.

        ``uniform`` is ``round(linspace(T - 1, 0, steps))``; with ``steps = T`` this
        is every step. Any ``2 <= steps <= T`` includes both ``T - 1`` and ``0``;
        ``steps = 1`` is the single step ``T - 1`` (one-shot prediction of ``x_0``
        from the prior). Fractional positions of the other spacings (``quadratic``,
        ``log_snr``, ``karras``; see :data:`SPACINGS`) are rounded and then moved
        the least needed to make the steps distinct (uniform positions are at
        least 1 apart when ``steps <= T``, so rounding alone keeps them distinct).

        Raises:
            ConfigError: ``steps`` is not an integer in ``[1, T]``.
            UnknownNameError: unknown ``spacing``.
        """
        if steps is None:
            steps = self.num_steps
        valid = isinstance(steps, numbers.Integral) and not isinstance(steps, bool)
        if not valid or not 1 <= steps <= self.num_steps:
            raise ConfigError(
                f"steps must be an integer in [1, {self.num_steps}] (the process has "
                f"T={self.num_steps} diffusion steps); got {steps!r}"
            )
        steps = int(steps)
        pos = spaced_positions(self, steps, spacing, torch.tensor([self.num_steps - 1]), torch.tensor([0]))
        times = pos.round().long().tolist()
        # Distinct steps: push up from the clean end, then down from the noisy end.
        # After both passes times[i] lies in [steps - 1 - i, T - 1 - i], strictly decreasing.
        for i in range(steps - 2, -1, -1):
            times[i] = max(times[i], times[i + 1] + 1)
        times[0] = self.num_steps - 1
        for i in range(1, steps):
            times[i] = min(times[i], times[i - 1] - 1)
        times = torch.tensor(times, dtype=torch.long)
        if steps > 1 and not bool((times[:-1] > times[1:]).all()):  # guards the claim above
            raise AssertionError(f"duplicate sampling timesteps {times.tolist()}")
        return times

    def time_range(self) -> tuple[float, float, bool]:
        return float(self.num_steps - 1), 0.0, True

    def prior_sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: Optional[torch.Generator] = None,
        device: Optional[torch.device | str] = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        # abar_{T-1} is close to, not exactly, 0: N(0, I) is the usual approximation.
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)

    def sample_train_time(
        self,
        batch_size: int,
        *,
        generator: Optional[torch.Generator] = None,
        device: Optional[torch.device | str] = None,
    ) -> torch.Tensor:
        """Uniform integer steps in ``{0, ..., T - 1}`` (long tensor ``[batch_size]``)."""
        return torch.randint(
            0, self.num_steps, (batch_size,), generator=generator, device=device
        )

    def network_time(self, t: torch.Tensor) -> torch.Tensor:
        """The step index as float32 (CSDI's diffusion-step embedding input)."""
        self._check_t(t)
        return t.to(torch.float32)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_steps": self.num_steps,
            "schedule": self.schedule,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
        }
