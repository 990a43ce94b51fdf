"""Denoiser networks, registered by the names used in configs."""

from tsdiff.models.base import MODELS, Condition, Denoiser, build_model
from tsdiff.models import csdi  # noqa: F401  (registers "csdi")

__all__ = ["MODELS", "Condition", "Denoiser", "build_model"]
