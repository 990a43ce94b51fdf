"""Forward (noising) processes: the contract every diffusion process implements.

A process owns the maths of ``q(x_t | x_0)`` (as score_sde's SDE objects do).
Every process supported here has Gaussian marginals of the form

    x_t = scale(t) * x_0 + std(t) * eps,    eps ~ N(0, I),

so samplers only need :meth:`ForwardProcess.sampling_schedule` (the times to
visit and their ``(scale, std)``) and never branch on the process type:
VP processes have ``scale**2 + std**2 = 1``, VE processes ``scale = 1``.

Each process also gives its SDE view (Song et al. 2021): linear drift ``f(t) x``
and diffusion ``g(t)`` (:meth:`ForwardProcess.sde_coefficients`), the reverse
SDE / probability-flow drift for a score, and conversions between its time and
the noise level ``sigma = std / scale`` or log-SNR ``lambda = -2 log sigma``.
The processes: :class:`~tsdiff.diffusion.ddpm.DiscreteDDPM` (:mod:`tsdiff.diffusion.ddpm`), read
as a VP-SDE in step units with piecewise-constant beta, so the SDE samplers run on it too; the
continuous SDEs (:mod:`tsdiff.diffusion.sde`); flow matching (:mod:`tsdiff.diffusion.flow`).
"""

from __future__ import annotations

import abc
import math
import numbers
from typing import Any, NamedTuple, Optional, Sequence, Union

import torch

from tsdiff.diffusion.utils import append_dims
from tsdiff.errors import ConfigError, DataError
from tsdiff.registry import Registry, check_options

PROCESSES: Registry = Registry("process")

#: Spacings of sampling times by config name (the ``spacing`` option of every
#: sampler). Each maps ``(process, steps, t_first, t_last)`` (``steps >= 2``;
#: the noisiest and the cleanest visited time as one-element tensors in the
#: process's units and dtype) to ``steps`` float64 positions from ``t_first``
#: down to ``t_last``; discrete processes snap them to distinct steps.
SPACINGS: Registry = Registry("spacing")

#: What a sampler's ``spacing`` option takes: a name in :data:`SPACINGS`, or the
#: visited times themselves, noisiest first (:meth:`ForwardProcess.explicit_times`).
Spacing = Union[str, Sequence[float]]

#: ``rho`` of the ``karras`` spacing (Karras et al. 2022, eq. 5).
KARRAS_RHO = 7.0


@SPACINGS.register("uniform")
def uniform_spacing(process, steps: int, t_first: torch.Tensor, t_last: torch.Tensor) -> torch.Tensor:
    """Evenly spaced in time (DDPM / DDIM respacing, Song et al. 2021's SDE samplers)."""
    return torch.linspace(float(t_first), float(t_last), steps, dtype=torch.float64)


@SPACINGS.register("quadratic")
def quadratic_spacing(process, steps: int, t_first: torch.Tensor, t_last: torch.Tensor) -> torch.Tensor:
    """Quadratic in time, denser near clean data (DDIM's ``quad`` skip, Song, Meng & Ermon 2021)."""
    u = torch.linspace(1.0, 0.0, steps, dtype=torch.float64)
    return float(t_last) + (float(t_first) - float(t_last)) * u**2


@SPACINGS.register("log_snr")
def log_snr_spacing(process, steps: int, t_first: torch.Tensor, t_last: torch.Tensor) -> torch.Tensor:
    """Uniform in log-SNR ``lambda = log(scale^2 / std^2)`` (DPM-Solver, Lu et al. 2022, Sec. 3.3)."""
    lams = torch.linspace(float(process.log_snr(t_first)), float(process.log_snr(t_last)), steps,
                          dtype=torch.float64)
    return process.continuous_time_from_log_snr(lams)


@SPACINGS.register("karras")
def karras_spacing(process, steps: int, t_first: torch.Tensor, t_last: torch.Tensor) -> torch.Tensor:
    """Noise levels ``sigma_i^(1/rho)`` evenly spaced, ``rho = 7`` (Karras et al. 2022, eq. 5)."""
    s_max = float(process.noise_level(t_first)) ** (1 / KARRAS_RHO)
    s_min = float(process.noise_level(t_last)) ** (1 / KARRAS_RHO)
    sigmas = torch.linspace(s_max, s_min, steps, dtype=torch.float64) ** KARRAS_RHO
    return process.continuous_time_from_log_snr(-2.0 * torch.log(sigmas))


def spaced_positions(process, steps: int, spacing: str, t_first: torch.Tensor, t_last: torch.Tensor) -> torch.Tensor:
    """``steps`` float64 time positions from ``t_first`` to ``t_last`` (``[1]`` tensors) under ``spacing``.

    Endpoints are exact (no round-off from inverting the log-SNR) and ``steps = 1``
    gives ``[t_first]``.

    Raises:
        UnknownNameError: ``spacing`` is not in :data:`SPACINGS` (lists the valid names).
    """
    fn = SPACINGS.get(spacing)
    if steps == 1:
        return t_first.to(torch.float64).reshape(1)
    pos = fn(process, steps, t_first, t_last).to(torch.float64)
    pos[0], pos[-1] = float(t_first), float(t_last)
    return pos


class SamplingSchedule(NamedTuple):
    """Times a sampler visits, with the marginal coefficients of each.

    Attributes:
        times: ``[S]`` times at which the denoiser is evaluated, noisiest first,
            in the process's own time units (original step indices for DDPM).
        scales: float64 ``[S + 1]``; ``scales[i]`` is ``scale(times[i])`` and the
            extra last entry is the target of the final step (clean data: 1).
        stds: float64 ``[S + 1]``; as ``scales`` for ``std`` (final entry 0).
    """

    times: torch.Tensor
    scales: torch.Tensor
    stds: torch.Tensor


class ForwardProcess(abc.ABC):
    """Abstract forward process ``q(x_t | x_0) = N(scale(t) x_0, std(t)^2 I)``.

    Data tensors have the batch first and any rank after it; times ``t`` are
    per-sample tensors of shape ``[B]``.
    """

    #: Registry name, written into :meth:`config` and used by :func:`process_from_config`.
    name: str = ""

    # --- maths each process defines ---------------------------------------

    @abc.abstractmethod
    def marginal_coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Marginal coefficients ``(scale(t), std(t))`` of ``x_t = scale x_0 + std eps``.

        Args:
            t: times ``[B]``.

        Returns:
            ``(scale, std)``, float64 tensors ``[B]`` on ``t.device``.
        """

    @abc.abstractmethod
    def sampling_times(self, steps: Optional[int] = None, spacing: str = "uniform") -> torch.Tensor:
        """Times at which a sampler evaluates the denoiser, noisiest first.

        Args:
            steps: number of denoiser evaluations; ``None`` for the process default.
            spacing: how the times are spread, a name in :data:`SPACINGS`
                (``uniform`` in time, ``quadratic`` in time, ``log_snr`` uniform
                in log-SNR, ``karras`` in noise level).

        Returns:
            CPU tensor ``[steps]`` of times, strictly decreasing.
        """

    @abc.abstractmethod
    def prior_sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: Optional[torch.Generator] = None,
        device: Optional[torch.device | str] = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Draw ``x_T`` from the prior that sampling starts from.

        Args:
            shape: full shape ``[B, ...]`` of the sample.
            generator: source of randomness (must live on ``device``).
            device, dtype: of the result.

        Returns:
            Tensor of ``shape``.
        """

    @abc.abstractmethod
    def sample_train_time(
        self,
        batch_size: int,
        *,
        generator: Optional[torch.Generator] = None,
        device: Optional[torch.device | str] = None,
    ) -> torch.Tensor:
        """Draw training times, one per sample.

        Returns:
            Tensor ``[batch_size]`` of times.
        """

    @abc.abstractmethod
    def network_time(self, t: torch.Tensor) -> torch.Tensor:
        """The noise-level input fed to denoiser networks for times ``t``.

        Args:
            t: times ``[B]``.

        Returns:
            float32 tensor ``[B]`` on ``t.device``.
        """

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Plain-data description (``name`` plus constructor arguments) for saving."""

    # --- derived operations, shared by all processes ------------------------

    def marginal(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of ``q(x_t | x_0)``.

        Args:
            x0: clean data ``[B, ...]``.
            t: times ``[B]``.

        Returns:
            ``(mean, std)``: ``mean`` has the shape of ``x0``; ``std`` has shape
            ``[B, 1, ..., 1]`` (broadcastable against ``x0``); both in ``x0.dtype``.
        """
        self._check_batch(x0, t)
        scale, std = self.marginal_coefficients(t.to(x0.device))
        scale = append_dims(scale.to(x0.dtype), x0.ndim)
        std = append_dims(std.to(x0.dtype), x0.ndim)
        return scale * x0, std

    def sample_noisy(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noise clean data to time ``t``: ``x_t = scale(t) x_0 + std(t) noise``.

        Args:
            x0: clean data ``[B, ...]``.
            t: times ``[B]``.
            noise: standard normal noise, same shape as ``x0``.

        Returns:
            ``x_t``, same shape and dtype as ``x0``.
        """
        if noise.shape != x0.shape:
            raise DataError(
                f"noise shape {tuple(noise.shape)} differs from x0 shape {tuple(x0.shape)}"
            )
        mean, std = self.marginal(x0, t)
        return mean + std * noise

    @abc.abstractmethod
    def time_range(self) -> tuple[float, float, bool]:
        """``(noisiest, cleanest, integer)``: the times a sampler may visit and whether
        they must be whole numbers (discrete steps)."""

    def explicit_times(self, times: Any, steps: Optional[int] = None) -> torch.Tensor:
        """Check a user-given list of sampling times (e.g. tuned on validation data).

        Args:
            times: the times to visit, noisiest first: a sequence of numbers in the
                process's units (whole steps ``0 .. T - 1`` for :class:`~tsdiff.diffusion.ddpm.DiscreteDDPM`,
                ``eps .. 1`` for the continuous SDEs), strictly decreasing.
            steps: ``None``, or the number of times (a second statement of it).

        The first time may lie below the top of the range. Samplers still start from
        :meth:`prior_sample`, so the chain then starts from the prior at that time: a close
        approximation for a VP/DDPM process where ``abar`` is already negligible (a share
        ``abar_t`` of the marginal variance is signal), a poor one for VE processes, whose
        prior has the top noise level's scale.

        Returns:
            The times as a tensor like :meth:`sampling_times` returns (long for
            discrete processes, float64 otherwise); the input is not modified.

        Raises:
            ConfigError: not a non-empty sequence of finite numbers, not strictly
                decreasing, outside the range, fractional for a discrete process, or
                ``steps`` disagreeing with its length.
        """
        if isinstance(times, torch.Tensor):
            times = times.tolist()
        hint = "give the times as a list, noisiest first, e.g. spacing: [49, 40, 25, 10, 0]"
        if isinstance(times, (str, bytes)) or not hasattr(times, "__iter__"):
            raise ConfigError(f"explicit sampling times must be a sequence of numbers; got {times!r} ({hint})")
        values = list(times)
        hi, lo, integer = self.time_range()
        if not values:
            raise ConfigError(f"explicit sampling times are empty ({hint})")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
                raise ConfigError(f"explicit sampling times must be finite numbers; got {v!r} in {values!r}")
            if integer and float(v) != int(v):
                raise ConfigError(f"this process has discrete steps: sampling times must be whole numbers in "
                                  f"[{lo:g}, {hi:g}]; got {v!r} in {values!r}")
            if not lo <= float(v) <= hi:
                raise ConfigError(f"sampling time {v!r} lies outside the process's range [{lo:g}, {hi:g}] "
                                  f"(in {values!r})")
        if any(a <= b for a, b in zip(values, values[1:])):
            raise ConfigError(f"explicit sampling times must be strictly decreasing (noisiest first); got {values!r}")
        if steps is not None and steps != len(values):
            raise ConfigError(f"steps={steps!r} but the explicit sampling times list {len(values)}: "
                              f"leave steps unset or make them agree")
        if integer:
            return torch.tensor([int(v) for v in values], dtype=torch.long)
        return torch.tensor([float(v) for v in values], dtype=torch.float64)

    def sampling_schedule(self, steps: Optional[int] = None, spacing: Spacing = "uniform") -> SamplingSchedule:
        """Times to visit and their coefficients, ending at clean data.

        Args:
            steps: number of denoiser evaluations (see :meth:`sampling_times`).
            spacing: name in :data:`SPACINGS` (see :meth:`sampling_times`), or the
                times themselves as a sequence, noisiest first (:meth:`explicit_times`).

        Returns:
            A :class:`SamplingSchedule` with ``S = steps`` times.
        """
        if isinstance(spacing, str):
            times = self.sampling_times(steps, spacing)
        else:
            times = self.explicit_times(spacing, steps)
        scales, stds = self.marginal_coefficients(times)
        one, zero = scales.new_ones(1), stds.new_zeros(1)
        return SamplingSchedule(times, torch.cat([scales, one]), torch.cat([stds, zero]))

    # --- noise level and SDE view ----------------------------------------

    @abc.abstractmethod
    def time_from_noise_level(self, sigma: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`noise_level`: the time whose ``std / scale`` is ``sigma``.

        Args:
            sigma: noise levels ``[B]`` (float, > 0).

        Returns:
            Times ``[B]`` in the process's units and dtype.

        Raises:
            ConfigError: a level outside the range the process covers.
        """

    @abc.abstractmethod
    def sde_coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients ``(f(t), g(t)^2)`` of the forward SDE ``dx = f(t) x dt + g(t) dW``.

        All processes here have a drift linear in ``x``; ``f`` and ``g^2`` satisfy
        ``d log scale / dt = f`` and ``d std^2 / dt = 2 f std^2 + g^2``
        (Song et al. 2021, "Score-Based Generative Modeling through SDEs", eq. 5).

        Args:
            t: times ``[B]``.

        Returns:
            float64 tensors ``[B]`` on ``t.device``.
        """

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        """Noise level ``sigma(t) = std(t) / scale(t)`` (Karras et al. 2022), float64 ``[B]``."""
        scale, std = self.marginal_coefficients(t)
        return std / scale

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """Log signal-to-noise ratio ``lambda(t) = log(scale^2 / std^2)``, float64 ``[B]``."""
        return -2.0 * torch.log(self.noise_level(t))

    def time_from_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`log_snr` (through :meth:`time_from_noise_level`)."""
        log_snr = torch.as_tensor(log_snr, dtype=torch.float64)
        return self.time_from_noise_level(torch.exp(-0.5 * log_snr))

    def continuous_time_from_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        """Time (float64) whose log-SNR is ``log_snr``; between grid steps for discrete processes.

        Used to place sampling times by their log-SNR (:data:`SPACINGS`). Continuous
        processes return :meth:`time_from_log_snr`; discrete ones override this to
        return fractional step positions, which :meth:`sampling_times` snaps to steps.

        Raises:
            ConfigError: a level outside the range the process covers.
        """
        return self.time_from_log_snr(log_snr).to(torch.float64)

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward SDE drift ``f(x, t) = f(t) x``, shape of ``x``."""
        f, _ = self.sde_coefficients(t.to(x.device))
        return append_dims(f.to(x.dtype), x.ndim) * x

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        """Forward SDE diffusion coefficient ``g(t)``, float64 ``[B]``."""
        return self.sde_coefficients(t)[1].sqrt()

    def reverse_drift(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        score: torch.Tensor,
        *,
        probability_flow: bool = False,
    ) -> torch.Tensor:
        """Drift of the reverse-time SDE or of the probability-flow ODE (Song et al. 2021).

        Reverse SDE (eq. 6, Anderson 1982): ``f(t) x - g(t)^2 score``; probability-flow
        ODE (eq. 13): ``f(t) x - g(t)^2 score / 2``. Both are ``dx/dt`` for time
        running backwards (``dt < 0``).

        Args:
            x: state ``[B, ...]``.
            t: times ``[B]``.
            score: ``grad_x log p_t(x)``, shape of ``x``.
            probability_flow: return the ODE drift instead of the SDE drift.

        Returns:
            Tensor shaped like ``x``.
        """
        f, g2 = self.sde_coefficients(t.to(x.device))
        weight = 0.5 if probability_flow else 1.0
        f = append_dims(f.to(x.dtype), x.ndim)
        g2 = append_dims(g2.to(x.dtype), x.ndim)
        return f * x - weight * g2 * score

    @staticmethod
    def _check_noise_range(sigma: torch.Tensor, lo: float, hi: float, who: str) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        if sigma.numel() == 0:
            return sigma
        # A small relative slack so that levels computed from grid times map back.
        bad = ~((sigma >= lo * (1 - 1e-9)) & (sigma <= hi * (1 + 1e-9)))
        if bool(bad.any()):
            value = float(sigma[bad][0])
            raise ConfigError(
                f"noise level sigma={value:g} is outside the range [{lo:g}, {hi:g}] "
                f"covered by the {who} process (log-SNR in "
                f"[{-2 * math.log(hi):g}, {-2 * math.log(lo) if lo > 0 else math.inf:g}])"
            )
        return sigma.clamp(lo, hi)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ForwardProcess":
        """Rebuild a process from the output of :meth:`config`.

        Raises:
            ConfigError: the config names another process or has unknown keys.
        """
        params = dict(config)
        name = params.pop("name", cls.name)
        if name != cls.name:
            raise ConfigError(f"config is for process {name!r}, not {cls.name!r}")
        check_options(cls, params, f"process {cls.name!r}")
        return cls(**params)

    @staticmethod
    def _check_batch(x0: torch.Tensor, t: torch.Tensor) -> None:
        if t.ndim != 1 or t.shape[0] != x0.shape[0]:
            raise DataError(
                f"t must have shape [B] = [{x0.shape[0]}] matching the data batch; "
                f"got {tuple(t.shape)}"
            )


def build_process(name: str, **kwargs: Any) -> ForwardProcess:
    """Construct the process registered as ``name`` with constructor ``kwargs``.

    Raises:
        UnknownNameError: ``name`` is not registered (lists the valid names).
        ConfigError: an option the process does not take (lists the valid options).
    """
    cls = PROCESSES.get(name)
    check_options(cls, kwargs, f"process {name!r}")
    return cls(**kwargs)


def process_from_config(config: dict[str, Any]) -> ForwardProcess:
    """Rebuild any registered process from its :meth:`ForwardProcess.config` output."""
    if "name" not in config:
        raise ConfigError(
            f"process config needs a 'name' key; valid names are: {PROCESSES.names()}"
        )
    return PROCESSES.get(config["name"]).from_config(config)
