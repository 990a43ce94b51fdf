"""Reverse-process samplers: small pure functions in the style of k-diffusion.

Every sampler takes ``denoise_fn(x_t, t) -> eps``, a start ``x_T`` and a
:class:`~tsdiff.diffusion.process.ForwardProcess`, and returns
:class:`SamplerOutput` ``(x0, nfe)``. All randomness comes from the
``generator`` argument; there is no hidden state. Registered names:

=====================  ==========================================  ==================
name                   algorithm                                   NFE
=====================  ==========================================  ==================
``ddpm``               ancestral (Ho et al. 2020, Alg. 2)          ``steps``
``ddim``               DDIM (Song, Meng & Ermon 2021)              ``steps``
``euler_maruyama``     reverse SDE (Song et al. 2021)              ``steps``
``pc``                 predictor-corrector (Song et al. 2021)      ``steps (1 + n_corrector)``
``heun``               PF-ODE, Heun (Karras et al. 2022)           ``2 steps - 1``
``dpm_solver_pp``      DPM-Solver++(2M) (Lu et al. 2022)           ``steps``
``sde_dpm_solver_pp``  SDE-DPM-Solver++(2M) (Lu et al. 2022)       ``steps``
=====================  ==========================================  ==================

Every sampler takes ``steps`` and ``spacing`` (placement of the visited times:
``uniform`` in time, ``quadratic`` in time, ``log_snr`` uniform in log-SNR as
DPM-Solver recommends for few steps, ``karras``; see
:data:`~tsdiff.diffusion.process.SPACINGS`), both settable from YAML
(``eval.sampler_options: {spacing: log_snr}``). ``spacing`` may also be the list of
times itself, noisiest first (``spacing: [49, 42, 36, 22, 7, 0]`` for a 50-step DDPM),
for schedules tuned on validation data (``benchmarks/tune_times.py``).
"""

from tsdiff.diffusion.samplers.base import SAMPLERS, SamplerOutput
from tsdiff.diffusion.samplers.ddim import sample_ddim, sample_ddpm
from tsdiff.diffusion.samplers.ode import sample_dpm_solver_pp, sample_heun
from tsdiff.diffusion.samplers.sde import sample_euler_maruyama, sample_pc, sample_sde_dpm_solver_pp

__all__ = [
    "SAMPLERS",
    "SamplerOutput",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpm_solver_pp",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_pc",
    "sample_sde_dpm_solver_pp",
]
