"""Linear interpolation along time between the conditioning entries of each series.

The estimate of the ``interpolation`` prior (:func:`prior_interpolation`), and what the other
priors build on: ``last_value`` and ``seasonal`` (:mod:`tsdiff.diffusion.priors`, which registers
them all) and the ``cross_series`` regression (:mod:`tsdiff.diffusion.prior_regression`). Batches
are ``[B, L, N, C]``; ``anchors [B, 4, N, C]`` (:class:`~tsdiff.diffusion.priors.EdgeAnchors`)
give the nearest known value of each series outside the window.
"""

from __future__ import annotations

import torch


def nearest_conditioning(cond_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per entry of ``cond_mask [B, L, N, C]``, the time index of the nearest conditioning entry of
    its series at or before it (-1 where none) and at or after it (L where none)."""
    L = cond_mask.shape[1]
    idx = torch.arange(L, device=cond_mask.device).view(1, L, 1, 1).expand_as(cond_mask)
    before = torch.where(cond_mask, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    after = torch.where(cond_mask, idx, torch.full_like(idx, L)).flip(1).cummin(dim=1).values.flip(1)
    return before, after


def conditioning_sides(values: torch.Tensor, cond_mask: torch.Tensor, anchors: torch.Tensor | None):
    """For every entry: ``(has, position, value)`` of its nearest conditioning entry before and
    after it, inside the window or (with ``anchors [B, 4, N, C]``) outside it."""
    L = values.shape[1]
    before, after = nearest_conditioning(cond_mask)
    has_b, has_a = before >= 0, after < L
    vb = values.gather(1, before.clamp(0, L - 1))
    va = values.gather(1, after.clamp(0, L - 1))
    pos_b, pos_a = before.to(values.dtype), after.to(values.dtype)
    if anchors is not None:
        gap_b, gap_a = anchors[:, 1:2], anchors[:, 3:4]  # [B, 1, N, C]
        use_b, use_a = ~has_b & (gap_b > 0), ~has_a & (gap_a > 0)
        vb = torch.where(use_b, anchors[:, 0:1].to(values.dtype), vb)
        pos_b = torch.where(use_b, -gap_b.to(values.dtype), pos_b)
        va = torch.where(use_a, anchors[:, 2:3].to(values.dtype), va)
        pos_a = torch.where(use_a, (L - 1 + gap_a).to(values.dtype), pos_a)
        has_b, has_a = has_b | use_b, has_a | use_a
    return (has_b, pos_b, vb), (has_a, pos_a, va)


def prior_interpolation(values: torch.Tensor, cond_mask: torch.Tensor,
                        anchors: torch.Tensor | None = None) -> torch.Tensor:
    """Linear interpolation along time, the nearest value at the edges, 0 for empty series."""
    L = values.shape[1]
    (has_b, pos_b, vb), (has_a, pos_a, va) = conditioning_sides(values, cond_mask, anchors)
    span = (pos_a - pos_b).clamp(min=1)
    w = (torch.arange(L, device=values.device, dtype=values.dtype).view(1, L, 1, 1) - pos_b) / span
    inner = vb + w * (va - vb)
    out = torch.where(has_b & has_a, inner, torch.where(has_b, vb, torch.where(has_a, va, torch.zeros_like(values))))
    return torch.where(cond_mask, values, out)
