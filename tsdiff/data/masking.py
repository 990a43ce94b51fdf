"""Training mask strategies: which observed entries the model conditions on.

Each strategy is a function ``strategy(observed, generator) -> cond_mask`` on a
batch: ``observed`` is a bool tensor ``[B, ...]`` (any rank after the batch axis)
and the returned ``cond_mask`` is a subset of it. The entries ``observed & ~cond_mask``
become the training targets. ``random``, ``historical`` and ``mix`` follow CSDI
(Tashiro et al. 2021, Sec. 4.2); ``block`` adds sensor-failure outages (GRIN / PriSTI).
:func:`missing_rate` gives the realised rate of any mask. Forecast-horizon masks come
with the forecasting windows themselves (their ``cond_mask``), and evaluation masks are
in :mod:`tsdiff.data.eval_masks`.
"""

from __future__ import annotations

from typing import Callable

import torch

from tsdiff.registry import Registry

MaskStrategy = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]
TRAIN_MASKS: Registry[MaskStrategy] = Registry("training mask strategy")


def _uniform(shape, generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


@TRAIN_MASKS.register("random")
def random_train_mask(observed: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Hide a random fraction r ~ U(0, 1) of each sample's observed entries.

    Args:
        observed: bool ``[B, ...]``.
    Returns:
        cond_mask: bool ``[B, ...]``, ``cond_mask <= observed``; sample b keeps
        ``n_obs_b - round(r_b * n_obs_b)`` of its observed entries.
    """
    observed = observed.bool()
    B = observed.shape[0]
    flat = observed.reshape(B, -1)
    ratio = _uniform((B, 1), generator, observed.device)
    n_hide = torch.round(flat.sum(dim=1, keepdim=True) * ratio)
    # Random scores on observed entries, -1 elsewhere; hide the n_hide highest-scored ones.
    scores = torch.where(flat, _uniform(flat.shape, generator, observed.device), torch.full_like(ratio, -1.0))
    order = scores.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1], device=observed.device).expand(B, -1))
    hidden = rank < n_hide
    return (flat & ~hidden).reshape(observed.shape)


@TRAIN_MASKS.register("historical")
def historical_train_mask(observed: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reuse a real missing pattern: condition on entries observed in this window AND
    in another window of the batch (CSDI's "historical" strategy).

    With a batch of one window there is no other pattern; the random strategy is used.
    """
    observed = observed.bool()
    if observed.shape[0] < 2:
        return random_train_mask(observed, generator)
    return observed & observed.roll(1, dims=0)


@TRAIN_MASKS.register("mix")
def mix_train_mask(observed: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per window, the random or the historical strategy with probability 1/2 each (CSDI)."""
    rand = random_train_mask(observed, generator)
    hist = historical_train_mask(observed, generator)
    pick = _uniform((observed.shape[0],), generator, observed.device) < 0.5
    pick = pick.reshape((-1,) + (1,) * (observed.dim() - 1))
    return torch.where(pick, rand, hist)


@TRAIN_MASKS.register("block")
def block_train_mask(observed: torch.Tensor, generator: torch.Generator | None = None, *, point_max: float = 0.15,
               failure_prob: float = 0.15) -> torch.Tensor:
    """Sensor failures: hide random points plus contiguous outages of whole series (time axis 1).

    In each window b, every observed entry is hidden with probability ``r_b ~ U(0, point_max)``;
    every series (each position of the axes after time, e.g. node and channel) independently
    fails with probability ``failure_prob`` for a contiguous run of
    ``U{ceil(L/4), ..., ceil(L/2)}`` steps at a uniform position (the GRIN / PriSTI
    "block" pattern, in the window). Requires observed ``[B, L, ...]`` with L >= 1.

    Returns:
        cond_mask: bool, same shape, ``cond_mask <= observed``.
    """
    observed = observed.bool()
    B, L = observed.shape[:2]
    dev = observed.device
    rate = _uniform((B,) + (1,) * (observed.dim() - 1), generator, dev) * point_max
    hidden = _uniform(observed.shape, generator, dev) < rate
    series_shape = (B, 1) + tuple(observed.shape[2:])
    fails = _uniform(series_shape, generator, dev) < failure_prob
    lo, hi = -(-L // 4), -(-L // 2)
    length = lo + torch.floor(_uniform(series_shape, generator, dev) * (hi - lo + 1)).long()
    start = torch.floor(_uniform(series_shape, generator, dev) * (L - length + 1).float()).long()
    steps = torch.arange(L, device=dev).reshape((1, L) + (1,) * (observed.dim() - 2))
    outage = fails & (steps >= start) & (steps < start + length)
    return observed & ~(hidden | outage)


def missing_rate(observed: torch.Tensor, cond_mask: torch.Tensor) -> float:
    """Fraction of observed entries a mask hides (the realised training missing rate)."""
    n_obs = observed.bool().sum().item()
    return float((observed.bool() & ~cond_mask.bool()).sum().item() / max(n_obs, 1))
