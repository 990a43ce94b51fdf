"""Flow matching on the straight path between data and noise (rectified flow).

Conditional flow matching (Lipman, Chen, Ben-Hamu, Nickel & Le, ICLR 2023) with the
linear interpolation path of rectified flow (Liu, Gong & Liu, ICLR 2023):
``x_t = (1 - t) x_0 + t eps``, whose velocity ``dx_t / dt = eps - x_0`` is the
regression target (``model: {prediction: velocity}``, loss weighting ``velocity``).
It is a :class:`~tsdiff.diffusion.process.ForwardProcess` with ``scale = 1 - t`` and
``std = t``, so every sampler, loss and conditioning strategy works with it unchanged:

* the ODE ``dx / dt = u(x, t)`` is the probability-flow ODE of this path, and the
  deterministic ``ddim`` step (``eta = 0``) is exactly its Euler step in ``t``
  (both are the Euler step of ``dy / dsigma = eps`` in ``y = x / a``,
  ``sigma = t / (1 - t)``); ``heun`` and ``dpm_solver_pp`` are 2nd-order solvers of it;
* with an informative prior (:mod:`tsdiff.diffusion.priors`) the path runs from the
  prior plus noise to the data, as the process diffuses the residual from the prior.

The signal vanishes at ``t = 1``, so samplers start at ``1 - eps`` (the prior sample
``N(0, I)`` leaves out a share ``eps`` of the data, below any sampler's error), and
training times are drawn from ``[eps, 1 - eps]``: uniform, or logit-normal (Esser et
al. 2024, "Scaling Rectified Flow Transformers"), which puts more of them mid-path.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional

import torch

from tsdiff.diffusion.process import PROCESSES
from tsdiff.diffusion.sde import F64, ContinuousSDE
from tsdiff.errors import ConfigError, UnknownNameError

#: Distributions of training times of :class:`FlowMatching`.
TRAIN_TIMES = ("uniform", "logit_normal")


@PROCESSES.register("flow")
class FlowMatching(ContinuousSDE):
    """Rectified-flow path ``x_t = (1 - t) x_0 + t eps`` on ``t`` in ``[eps, 1 - eps]``.

    ``scale = 1 - t``, ``std = t``, noise level ``sigma = t / (1 - t)``. As an SDE with
    the same marginals (for the stochastic samplers): ``f = -1 / (1 - t)``,
    ``g^2 = 2 t / (1 - t)``. Network time is ``999 t``.

    Args:
        eps: distance of the visited and trained times from both ends, in (0, 0.5).
        num_steps: default number of sampling steps.
        train_time: ``uniform`` or ``logit_normal`` (``t = sigmoid(m + s z)``, z standard
            normal, clipped to the range).
        logit_mean, logit_std: ``m`` and ``s`` of ``logit_normal`` (0 and 1, as Esser et al.).
    """

    name = "flow"

    def __init__(self, eps: float = 1e-3, num_steps: int = 50, train_time: str = "uniform",
                 logit_mean: float = 0.0, logit_std: float = 1.0) -> None:
        if isinstance(eps, numbers.Real) and not isinstance(eps, bool) and not 0.0 < eps < 0.5:
            raise ConfigError(f"eps of the flow process must lie in (0, 0.5) (times run over "
                              f"[eps, 1 - eps]); got {eps!r}")
        super().__init__(eps, num_steps)
        if train_time not in TRAIN_TIMES:
            raise UnknownNameError(f"unknown train_time {train_time!r}; valid names are: {', '.join(TRAIN_TIMES)}")
        for name, value in (("logit_mean", logit_mean), ("logit_std", logit_std)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not abs(float(value)) < float("inf"):
                raise ConfigError(f"{name} must be a finite number; got {value!r}")
        if not logit_std > 0:
            raise ConfigError(f"logit_std must be a positive number; got {logit_std!r}")
        self.train_time = train_time
        self.logit_mean = float(logit_mean)
        self.logit_std = float(logit_std)

    def _top(self) -> float:
        return 1.0 - self.eps

    def _params(self) -> dict[str, Any]:
        return {"train_time": self.train_time, "logit_mean": self.logit_mean, "logit_std": self.logit_std}

    def _coefficients(self, t):
        return 1.0 - t, t.clone()

    def sde_coefficients(self, t):
        t = self._check_t(t)
        if bool((t >= 1).any()):
            raise ConfigError("the flow process has no SDE form at t = 1 (its signal vanishes there); "
                              f"use times up to 1 - eps = {self._top():g}")
        return -1.0 / (1.0 - t), 2.0 * t / (1.0 - t)

    def _time_from_sigma(self, sigma):
        return sigma / (1.0 + sigma)

    def sample_train_time(
        self,
        batch_size: int,
        *,
        generator: Optional[torch.Generator] = None,
        device: Optional[torch.device | str] = None,
    ) -> torch.Tensor:
        """Training times in ``[eps, 1 - eps]`` (float64 ``[batch_size]``), by ``train_time``."""
        if self.train_time == "uniform":
            return super().sample_train_time(batch_size, generator=generator, device=device)
        z = torch.randn(batch_size, generator=generator, device=device, dtype=F64)
        return torch.sigmoid(self.logit_mean + self.logit_std * z).clamp(self.eps, self._top())
