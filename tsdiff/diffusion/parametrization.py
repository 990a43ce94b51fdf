"""Conversions between network output parametrisations of a VP process.

With ``x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps`` (Ho et al. 2020), the
noise ``eps`` and the clean data ``x_0`` determine each other given ``x_t``.
"""

from __future__ import annotations

import torch

from tsdiff.diffusion.utils import append_dims


def _coefficients(alpha_bar: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    alpha_bar = append_dims(torch.as_tensor(alpha_bar, device=like.device), like.ndim)
    # sqrt in the table's precision (float64 for DDPM) before casting to the data dtype.
    return alpha_bar.sqrt().to(like.dtype), (1 - alpha_bar).sqrt().to(like.dtype)


def eps_to_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Predicted clean data from predicted noise (Ho et al. 2020, eq. 15).

    Args:
        x_t: noisy data ``[B, ...]``.
        eps: noise (prediction), same shape as ``x_t``.
        alpha_bar: ``abar_t`` per sample ``[B]`` (or a scalar), in (0, 1].

    Returns:
        ``(x_t - sqrt(1 - abar) eps) / sqrt(abar)``, shape of ``x_t``.
    """
    scale, std = _coefficients(alpha_bar, x_t)
    return (x_t - std * eps) / scale


def x0_to_eps(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Noise implied by a clean-data prediction; inverse of :func:`eps_to_x0`.

    Args:
        x_t: noisy data ``[B, ...]``.
        x0: clean data (prediction), same shape as ``x_t``.
        alpha_bar: ``abar_t`` per sample ``[B]`` (or a scalar), in [0, 1).

    Returns:
        ``(x_t - sqrt(abar) x0) / sqrt(1 - abar)``, shape of ``x_t``.
    """
    scale, std = _coefficients(alpha_bar, x_t)
    return (x_t - scale * x0) / std
