"""Denoiser networks, registered by the names used in configs."""

from tsdiff.models.base import MODELS, Condition, Denoiser, build_model
from tsdiff.models import csdi  # noqa: F401  (registers "csdi")
from tsdiff.models import graph_unet  # noqa: F401  (registers "graph_unet")
from tsdiff.models import grid_unet  # noqa: F401  (registers "grid_unet")
from tsdiff.models import sssd  # noqa: F401  (registers "sssd")
from tsdiff.models import timegrad  # noqa: F401  (registers "timegrad")

__all__ = ["MODELS", "Condition", "Denoiser", "build_model"]
