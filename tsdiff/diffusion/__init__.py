"""Diffusion maths: schedules, forward processes, parametrisations, losses, samplers."""

from tsdiff.diffusion.conditioning import impose_observed
from tsdiff.diffusion.losses import masked_eps_loss
from tsdiff.diffusion.parametrization import eps_to_x0, x0_to_eps
from tsdiff.diffusion.process import (
    PROCESSES,
    DiscreteDDPM,
    ForwardProcess,
    SamplingSchedule,
    build_process,
    process_from_config,
)
from tsdiff.diffusion.samplers import SAMPLERS, SamplerOutput, sample_ddim, sample_ddpm
from tsdiff.diffusion.schedules import SCHEDULES, make_betas
from tsdiff.diffusion.utils import append_dims

__all__ = [
    "PROCESSES",
    "SAMPLERS",
    "SCHEDULES",
    "DiscreteDDPM",
    "ForwardProcess",
    "SamplerOutput",
    "SamplingSchedule",
    "append_dims",
    "build_process",
    "eps_to_x0",
    "impose_observed",
    "make_betas",
    "masked_eps_loss",
    "process_from_config",
    "sample_ddim",
    "sample_ddpm",
    "x0_to_eps",
]
