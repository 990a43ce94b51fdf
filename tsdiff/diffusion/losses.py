"""Training losses of diffusion models."""

from __future__ import annotations

import torch


def masked_eps_loss(
    eps_pred: torch.Tensor, eps: torch.Tensor, target_mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared noise-prediction error over target entries only (CSDI, Tashiro et al. 2021).

    ``sum(((eps_pred - eps) * mask) ** 2) / max(sum(mask), 1)``: the simple DDPM
    loss (Ho et al. 2020) restricted to the entries the model must impute, so
    conditioning and missing entries do not contribute. The ``max(., 1)``
    keeps a batch without targets at loss 0 instead of NaN.

    Args:
        eps_pred: predicted noise ``[B, ...]``.
        eps: true noise, same shape.
        target_mask: 1/True where an entry is a target, broadcastable to ``eps``.

    Returns:
        Scalar tensor.
    """
    mask = target_mask.to(eps_pred.dtype)
    residual = (eps_pred - eps) * mask
    count = mask.expand_as(residual).sum()
    return (residual**2).sum() / count.clamp(min=1)
