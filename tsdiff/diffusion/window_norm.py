"""Per-window normalisation (``prior.window_norm``): every window is shifted and scaled by the
mean and standard deviation of its own conditioning values, per series, before the network sees
it and before the process diffuses it; samples are mapped back afterwards.

A global scaler (fitted on the training rows) leaves a trending or non-stationary series at
levels and spreads the network never saw in training: exchange rates that drift out of their
training range, counts that grow. Normalising each window by its context (RevIN, Kim et al.
2022; the mean scaling of DeepAR and Chronos) hands the network every window at the same level
and spread. The statistics are taken from the conditioning entries only (the context of a
forecast window, the observed entries of an imputation window), so no target leaks into them.

- ``loc``: the mean of a series' conditioning values in the window (0 where it has none);
- ``scale``: their standard deviation, at least :data:`MIN_SCALE` (a flat context must not blow
  up the targets), and 1 where fewer than 2 values are known.

Both are in the units of the global scaler's output (z-scores of the training data).
"""

from __future__ import annotations

import torch

#: The smallest window scale, in global z-score units: a context flatter than this (a constant
#: sensor, a pegged rate) is scaled by it, not by its near-zero spread.
MIN_SCALE = 1e-2


def window_stats(x: torch.Tensor, cond_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loc, scale)``, each ``[B, 1, N, C]``: the mean and the standard deviation (floored at
    :data:`MIN_SCALE`; 1 with fewer than 2 known values) of each window's and series' values
    ``x [B, L, N, C]`` on ``cond_mask``."""
    m = cond_mask.to(x.dtype)
    n = m.sum(dim=1, keepdim=True)
    loc = (x * m).sum(dim=1, keepdim=True) / n.clamp(min=1.0)
    var = (((x - loc) * m) ** 2).sum(dim=1, keepdim=True) / n.clamp(min=1.0)
    scale = torch.where(n >= 2, var.sqrt().clamp(min=MIN_SCALE), torch.ones_like(var))
    return loc, scale
