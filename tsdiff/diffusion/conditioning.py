"""Helpers for conditional sampling on observed entries."""

from __future__ import annotations

import torch


def impose_observed(
    x: torch.Tensor, observed: torch.Tensor, cond_mask: torch.Tensor
) -> torch.Tensor:
    """Replace conditioning entries of a sample by their observed values.

    As in CSDI (Tashiro et al. 2021), the model only generates target entries;
    conditioning entries of the output must equal the observations exactly,
    which ``torch.where`` guarantees bit for bit (no arithmetic touches them).

    Args:
        x: sample ``[B, ...]``.
        observed: observed values, broadcastable to ``x``.
        cond_mask: True (or non-zero) at conditioning entries, broadcastable to ``x``.

    Returns:
        ``torch.where(cond_mask, observed, x)``.
    """
    if cond_mask.dtype != torch.bool:
        cond_mask = cond_mask != 0
    return torch.where(cond_mask, observed.to(x.dtype), x)
