"""Diffusion maths: schedules, forward processes, parametrisations, losses, samplers, conditioning."""

from tsdiff.diffusion.conditioning import (
    CONDITIONING,
    Conditioned,
    condition_conditional,
    condition_guidance,
    condition_inpainting,
    impose_observed,
)
from tsdiff.diffusion.losses import LOSS_WEIGHTINGS, denoising_loss, masked_eps_loss
from tsdiff.diffusion.parametrization import (
    PREDICTIONS,
    convert_prediction,
    eps_to_x0,
    to_eps,
    to_score,
    x0_to_eps,
)
from tsdiff.diffusion.ddpm import DiscreteDDPM
from tsdiff.diffusion.process import (
    PROCESSES,
    SPACINGS,
    ForwardProcess,
    SamplingSchedule,
    build_process,
    process_from_config,
)
from tsdiff.diffusion.sde import ContinuousSDE, SubVPSDE, VESDE, VPSDE
from tsdiff.diffusion.flow import FlowMatching
from tsdiff.diffusion.samplers import (
    SAMPLERS,
    SamplerOutput,
    sample_ddim,
    sample_ddpm,
    sample_dpm_solver_pp,
    sample_euler_maruyama,
    sample_heun,
    sample_pc,
    sample_sde_dpm_solver_pp,
)
from tsdiff.diffusion.schedules import SCHEDULES, make_betas
from tsdiff.diffusion.utils import append_dims
from tsdiff.diffusion.components import (  # noqa: E402  (needs every registry filled)
    available,
    build_conditioning,
    build_from_config,
    build_loss,
    build_sampler,
)

__all__ = [
    "CONDITIONING",
    "LOSS_WEIGHTINGS",
    "PREDICTIONS",
    "PROCESSES",
    "SAMPLERS",
    "SCHEDULES",
    "SPACINGS",
    "Conditioned",
    "ContinuousSDE",
    "FlowMatching",
    "DiscreteDDPM",
    "ForwardProcess",
    "SamplerOutput",
    "SamplingSchedule",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "append_dims",
    "available",
    "build_conditioning",
    "build_from_config",
    "build_loss",
    "build_process",
    "build_sampler",
    "condition_conditional",
    "condition_guidance",
    "condition_inpainting",
    "convert_prediction",
    "denoising_loss",
    "eps_to_x0",
    "impose_observed",
    "make_betas",
    "masked_eps_loss",
    "process_from_config",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpm_solver_pp",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_pc",
    "sample_sde_dpm_solver_pp",
    "to_eps",
    "to_score",
    "x0_to_eps",
]
