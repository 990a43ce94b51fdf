"""How a prior is called and fitted: the one contract every prior of :mod:`tsdiff.diffusion.priors` keeps.

A prior is called as ``prior(values, cond_mask, anchors)`` on a batch ``[B, L, N, C]``. A prior
that needs to know where each window lies in its series (the phase of a season, as
``climatology``) says so with the class attribute ``uses_starts = True`` and is called with the
keyword ``starts`` as well: ``[B]`` the index of each window's first step in its series.
:func:`apply_prior` makes that call, so callers need not know which kind they hold.

A fitted prior (``fitted_prior = True``) has ``fit(batches)``: ``batches()`` returns a fresh
iterable of ``(x, cond_mask, target, anchors)`` or ``(x, cond_mask, target, anchors, starts)``
tuples, the same each time; :func:`fit_batch` reads either form.
"""

from __future__ import annotations

import torch

from tsdiff.errors import ConfigError


def uses_starts(prior) -> bool:
    """Whether ``prior`` reads the windows' positions (``starts``)."""
    return bool(getattr(prior, "uses_starts", False))


def apply_prior(prior, values: torch.Tensor, cond_mask: torch.Tensor, anchors: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> torch.Tensor:
    """``prior``'s estimate of a batch; ``starts`` reach only a prior that uses them, and such a
    prior without them is a :class:`~tsdiff.errors.ConfigError` naming what is missing."""
    if not uses_starts(prior):
        return prior(values, cond_mask, anchors)
    if starts is None:
        raise ConfigError(f"prior {getattr(prior, 'name', type(prior).__name__)!r} needs the position of each "
                          "window in its series (its 'start'), and this path gives none; use a prior that reads "
                          "the window alone (interpolation, last_value, seasonal, cross_series, auto)")
    starts = torch.as_tensor(starts, dtype=torch.long, device=values.device).reshape(-1)
    return prior(values, cond_mask, anchors, starts=starts)


def fit_batch(batch) -> tuple:
    """``(x, cond_mask, target, anchors, starts)`` of a fit batch given with or without ``starts``."""
    if len(batch) == 4:
        return (*batch, None)
    if len(batch) == 5:
        return tuple(batch)
    raise ValueError(f"a prior's fit batch is (x, cond_mask, target, anchors[, starts]), got {len(batch)} items")
