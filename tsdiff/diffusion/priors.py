"""Informative priors: a cheap deterministic estimate of every entry from the conditioning entries.

A prior maps ``(values, cond_mask, anchors)`` of a batch ``[B, L, N, C]`` (scaled space, where 0
is the training mean) to an estimate of the same shape that equals ``values`` on ``cond_mask``
and uses nothing else. ``anchors`` (optional, :func:`edge_anchors`) give the nearest known value
of each series before and after the window, so a gap that crosses the window's edge is
interpolated as over the whole series, not cut at the edge. With a prior other than ``none``, :class:`~tsdiff.training.module.DiffusionModule`
diffuses the residual ``(x - prior) / scale`` on the target entries instead of ``x`` itself
(residual diffusion, as RDPI and TSFlow do) and hands the prior to the network in
``Condition.prior`` (PriSTI's interpolated conditioning): a network that has learned nothing
yet returns the prior plus noise, and training spends its capacity on what the prior misses.

=================  ==========================================================================
name               estimate of an entry without a conditioning value
=================  ==========================================================================
``none``           0, the training mean (plain diffusion: what every model did before priors)
``interpolation``  linear interpolation along time between the nearest conditioning values of
                   its series before and after it; the nearest one where there is only one
                   side (so a forecast horizon gets the last value); 0 where the series has
                   no conditioning value in the window (:mod:`tsdiff.diffusion.interpolation`)
``last_value``     the latest conditioning value at or before it (the earliest one after it
                   where there is none before; 0 where there is none): persistence
``seasonal``       the value ``season`` steps earlier (repeated back as far as needed), where
                   that is a conditioning value; otherwise as ``interpolation``
``cross_series``   ``interpolation`` corrected by a ridge regression, per series and gap shape,
                   on its most correlated series at the same step and on how they moved away
                   from the straight line across the gap; fitted on training windows when
                   training starts (:mod:`tsdiff.diffusion.prior_regression`)
``climatology``   the training mean at the same phase of a season (e.g. the hour of the day),
                   plus the conditioning values' anomaly from it, interpolated inside gaps
                   and damped with the distance beyond them (anomaly persistence); fitted on
                   training windows, needs each window's position in its series
                   (:mod:`tsdiff.diffusion.prior_climatology`)
``auto``           per series, the candidate prior with the lowest MAE on training windows
                   with the training strategy's masks, chosen when training starts
                   (:mod:`tsdiff.diffusion.prior_choice`)
=================  ==========================================================================

Configs name a prior in the top-level section ``prior: {name: interpolation}``;
``seasonal`` takes ``season`` (steps, >= 1); ``cross_series`` takes ``neighbours`` (related
series per series, default 16), ``ridge`` (default 10), ``passes`` (chained passes, default 2)
and ``fit_windows`` (training windows the fit sums over, default 8192, fewer on wide data:
:func:`fit_window_count`); ``climatology`` takes ``season`` (steps, >= 2), ``damping`` (a number
in [0, 1] or ``fit``, the default) and ``fit_windows`` (default 512); ``auto`` takes
``candidates`` (prior names or sections, default interpolation and last_value), ``seasons``
(a seasonal candidate for each) and ``fit_windows`` (default 512). ``scale`` is not an option of the prior: the
module estimates it from training windows (the standard deviation of the residual on
training targets) unless ``prior.scale`` gives a number. ``residual: false`` keeps the prior as
an input of the network but lets the process diffuse the values themselves (default true:
the residual), to measure what each use of the prior buys.
"""

from __future__ import annotations

import numpy as np
import torch

from tsdiff.diffusion.interpolation import conditioning_sides, prior_interpolation
from tsdiff.diffusion.prior_choice import AutoPrior
from tsdiff.diffusion.prior_climatology import ClimatologyPrior
from tsdiff.diffusion.prior_regression import CROSS_SERIES_FIT_ENTRIES, CrossSeriesPrior
from tsdiff.errors import ConfigError
from tsdiff.registry import Registry, check_options

PRIORS: Registry = Registry("prior")
#: Keys of a prior section that configure the module, not the prior (:func:`build_prior` skips them).
MODULE_OPTIONS = ("name", "scale", "residual", "window_norm")


class EdgeAnchors:
    """The nearest known value of each series outside a window, for the priors.

    Built once per series: ``values [T, N, C]`` (scaled) and ``known`` (bool, the entries a
    prior may use: observed and not held out). ``anchors(starts, length)`` returns float
    ``[W, 4, N, C]``: per window the value of the last known entry before the window and its
    distance in steps to the window's first step, then the value of the first known entry after
    the window and its distance to the window's last step; a distance of 0 means there is none.
    With them the priors interpolate a gap that crosses a window's edge exactly as over the
    whole series. Only for imputation: a forecast window must not see what follows it.
    """

    def __init__(self, values: torch.Tensor, known: torch.Tensor) -> None:
        T = values.shape[0]
        idx = torch.arange(T, device=values.device).view(T, *([1] * (values.dim() - 1))).expand_as(known)
        self.values = values
        self.last = torch.where(known, idx, torch.full_like(idx, -1)).cummax(dim=0).values
        self.first = torch.where(known, idx, torch.full_like(idx, T)).flip(0).cummin(dim=0).values.flip(0)

    def anchors(self, starts, length: int) -> torch.Tensor:
        values, T = self.values, self.values.shape[0]
        starts = torch.as_tensor(starts, dtype=torch.long, device=values.device).reshape(-1)
        out = torch.zeros((len(starts), 4) + tuple(values.shape[1:]), dtype=values.dtype, device=values.device)
        if len(starts) == 0:
            return out
        col = (-1,) + (1,) * (values.dim() - 1)
        b = self.last[(starts - 1).clamp(min=0)]  # [W, N, C]
        has_b = (starts > 0).view(col) & (b >= 0)
        ends = starts + length
        a = self.first[ends.clamp(max=T - 1)]
        has_a = (ends < T).view(col) & (a < T)
        zero = torch.zeros((), dtype=values.dtype, device=values.device)
        out[:, 0] = torch.where(has_b, values.gather(0, b.clamp(0, T - 1)), zero)
        out[:, 1] = torch.where(has_b, (starts.view(col) - b).to(values.dtype), zero)
        out[:, 2] = torch.where(has_a, values.gather(0, a.clamp(0, T - 1)), zero)
        out[:, 3] = torch.where(has_a, (a - (ends - 1).view(col)).to(values.dtype), zero)
        return out


def edge_anchors(values: torch.Tensor, known: torch.Tensor, starts, length: int) -> torch.Tensor:
    """:class:`EdgeAnchors` of one series for the windows at ``starts`` (``[W, 4, N, C]``)."""
    return EdgeAnchors(values, known).anchors(starts, length)


def stream_edge_anchors(read, T: int, starts, length: int) -> np.ndarray:
    """The same numbers as :class:`EdgeAnchors` (float32 ``[W, 4, N, C]``) in one forward pass over
    a series too large to hold: ``read(a, n)`` returns ``(values [n, N, C], known [n, N, C])`` of
    steps ``a .. a + n - 1`` (scaled values; ``known``: what the prior may use), and is called on
    consecutive pieces of at most ``length`` steps that cover ``0 .. T - 1`` once. Memory: the
    anchors and one piece."""
    starts = [int(s) for s in np.asarray(starts).reshape(-1)]
    cuts = sorted({0, T, *(min(max(s, 0), T) for s in starts), *(min(max(s + length, 0), T) for s in starts)})
    pieces = [(a, min(a + max(length, 1), b)) for lo, b in zip(cuts[:-1], cuts[1:])
              for a in range(lo, b, max(length, 1))]
    out = None
    last_val = last_pos = None
    pending: list[int] = []  # windows whose next known value after their end is still sought
    by_start = {}
    for w, s in enumerate(starts):
        by_start.setdefault(s, []).append(w)
    for a, b in pieces:
        values, known = read(a, b - a)
        values = np.asarray(values, dtype=np.float32)
        known = np.asarray(known, dtype=bool)
        if out is None:
            out = np.zeros((len(starts), 4) + values.shape[1:], dtype=np.float32)
            last_val = np.zeros(values.shape[1:], dtype=np.float32)
            last_pos = np.full(values.shape[1:], -1, dtype=np.int64)
            unresolved = np.ones((len(starts),) + values.shape[1:], dtype=bool)
        for w in by_start.get(a, []):
            has = last_pos >= 0
            out[w, 0] = np.where(has, last_val, 0.0)
            out[w, 1] = np.where(has, a - last_pos, 0)
        for w in [w for w, s in enumerate(starts) if s + length == a]:
            pending.append(w)
        if pending and known.any():
            seen = known.any(axis=0)
            first = known.argmax(axis=0)
            first_val = np.take_along_axis(values, first[None], axis=0)[0]
            for w in pending:
                take = unresolved[w] & seen
                end = starts[w] + length - 1
                out[w, 2] = np.where(take, first_val, out[w, 2])
                out[w, 3] = np.where(take, a + first - end, out[w, 3])
                unresolved[w] &= ~take
            pending = [w for w in pending if unresolved[w].any()]
        if known.any():
            seen = known.any(axis=0)
            lastk = known.shape[0] - 1 - known[::-1].argmax(axis=0)
            val = np.take_along_axis(values, lastk[None], axis=0)[0]
            last_val = np.where(seen, val, last_val)
            last_pos = np.where(seen, a + lastk, last_pos)
    if out is None:
        return np.zeros((len(starts), 4), dtype=np.float32)
    return out


@PRIORS.register("none")
def prior_none(values: torch.Tensor, cond_mask: torch.Tensor, anchors: torch.Tensor | None = None) -> torch.Tensor:
    """The training mean (0 in the scaled space) off the conditioning entries."""
    return torch.where(cond_mask, values, torch.zeros_like(values))


PRIORS.add("interpolation", prior_interpolation)


@PRIORS.register("last_value")
def prior_last_value(values: torch.Tensor, cond_mask: torch.Tensor,
                     anchors: torch.Tensor | None = None) -> torch.Tensor:
    """Persistence: the latest conditioning value at or before each entry."""
    (has_b, _, vb), (has_a, _, va) = conditioning_sides(values, cond_mask, anchors)
    out = torch.where(has_b, vb, torch.where(has_a, va, torch.zeros_like(values)))
    return torch.where(cond_mask, values, out)


class SeasonalPrior:
    """The value ``season`` steps earlier (seasonal naive); :func:`prior_interpolation` where no
    conditioning value lies a whole number of seasons earlier in the window."""

    def __init__(self, season: int) -> None:
        if isinstance(season, bool) or not isinstance(season, int) or season < 1:
            raise ConfigError(f"prior option season must be an integer >= 1 (steps per season), got {season!r}")
        self.season = season

    def __call__(self, values: torch.Tensor, cond_mask: torch.Tensor, anchors: torch.Tensor | None = None) -> torch.Tensor:
        out = prior_interpolation(values, cond_mask, anchors)
        L, s = values.shape[1], self.season
        if s >= L:
            return out
        known = cond_mask.clone()
        est = torch.where(cond_mask, values, out)
        for start in range(s, L, s):  # one season at a time, so a gap of several seasons repeats the last one
            stop = min(start + s, L)
            take = ~known[:, start:stop] & known[:, start - s: stop - s]
            est[:, start:stop] = torch.where(take, est[:, start - s: stop - s], est[:, start:stop])
            known[:, start:stop] |= take
        return torch.where(cond_mask, values, est)


PRIORS.add("seasonal", SeasonalPrior)
PRIORS.add("cross_series", CrossSeriesPrior)
PRIORS.add("climatology", ClimatologyPrior)

#: candidates of ``auto`` when its options name none
AUTO_CANDIDATES = ("interpolation", "last_value")


def prior_auto(num_series: int, candidates=None, seasons=(), fit_windows: int = 512) -> AutoPrior:
    """The ``auto`` prior (:mod:`tsdiff.diffusion.prior_choice`): per series, the best of
    ``candidates`` (prior names or sections; default :data:`AUTO_CANDIDATES`) plus one
    ``seasonal`` prior for every season of ``seasons``, scored on ``fit_windows`` training windows."""
    if candidates is None:
        candidates = list(AUTO_CANDIDATES)
    if isinstance(candidates, (str, dict)) or not isinstance(candidates, (list, tuple)) or not candidates:
        raise ConfigError(f"prior option candidates must be a non-empty list of prior names or sections, "
                          f"got {candidates!r}")
    if isinstance(seasons, int) or not isinstance(seasons, (list, tuple)):
        raise ConfigError(f"prior option seasons must be a list of integers >= 1, got {seasons!r}")
    if isinstance(fit_windows, bool) or not isinstance(fit_windows, int) or fit_windows < 1:
        raise ConfigError(f"prior option fit_windows must be an integer >= 1, got {fit_windows!r}")
    sections = [{"name": c} if isinstance(c, str) else c for c in candidates]
    sections += [{"name": "seasonal", "season": s} for s in seasons]
    names, priors = [], []
    for sec in sections:
        if not isinstance(sec, dict) or sec.get("name") in (None, "auto", "none"):
            raise ConfigError(f"prior 'auto': each candidate is a prior name or section other than auto "
                              f"and none, got {sec!r}")
        for key in MODULE_OPTIONS[1:]:
            if key in sec:
                raise ConfigError(f"prior 'auto': a candidate takes no {key} (give prior.{key} to auto itself)")
        opts = ", ".join(f"{k}={v}" for k, v in sec.items() if k != "name")
        name = f"{sec['name']}({opts})" if opts else sec["name"]
        if name in names:
            raise ConfigError(f"prior 'auto': candidate {name} is listed twice")
        names.append(name)
        priors.append(build_prior(sec, num_series))
    return AutoPrior(num_series, names, priors, fit_windows)


PRIORS.add("auto", prior_auto)

#: priors built from options (classes or factories); the others are plain functions without options
_WITH_OPTIONS = {"seasonal", "cross_series", "climatology", "auto"}
#: priors whose constructor takes the number of series (N * C) of the data
_SIZED = {"cross_series", "climatology", "auto"}


def prior_fit_mask(observed: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Holes to fit a fitted prior with: in half the windows random points (a random fraction of
    the observed entries), in the other half one run in each of a random fraction (up to a half)
    of the series, the whole window or (as often) a uniform length from 1 to the window's length at
    a uniform position, so
    every gap shape the prior models appears while most related series stay observed."""
    from tsdiff.data.masking import random_train_mask

    observed = observed.bool()
    B, L = observed.shape[:2]
    dev = observed.device
    rand = lambda shape: torch.rand(shape, generator=generator, device=dev)  # noqa: E731
    series_shape = (B, 1) + tuple(observed.shape[2:])
    # half the runs span the whole window (gaps longer than a window, seen through the anchors)
    length = torch.where(rand(series_shape) < 0.5, torch.full(series_shape, L, device=dev),
                         1 + torch.floor(rand(series_shape) * L).long())
    start = torch.floor(rand(series_shape) * (L - length + 1).float()).long()
    fails = rand(series_shape) < 0.5 * rand((B,) + (1,) * (observed.dim() - 1))
    steps = torch.arange(L, device=dev).reshape((1, L) + (1,) * (observed.dim() - 2))
    runs = observed & ~(fails & (steps >= start) & (steps < start + length))
    pick = (rand((B,)) < 0.5).reshape((-1,) + (1,) * (observed.dim() - 1))
    return torch.where(pick, random_train_mask(observed, generator), runs)


def fit_window_count(prior, n_windows: int, window_entries: int) -> int:
    """How many training windows a fitted prior is fitted on, of a dataset of ``n_windows``
    windows of ``window_entries`` entries (steps x series) each: its ``fit_windows``, but each
    window at most 4 times (with other holes; a short table needs no 8192 windows), at least 256,
    and for ``cross_series``, whose cost grows with the entries fitted, at most
    :data:`~tsdiff.diffusion.prior_regression.CROSS_SERIES_FIT_ENTRIES` entries."""
    n_fit = min(prior.fit_windows, max(256, 4 * n_windows))
    if isinstance(prior, CrossSeriesPrior):
        n_fit = min(n_fit, max(256, CROSS_SERIES_FIT_ENTRIES // max(window_entries, 1)))
    return n_fit


def build_prior(config: dict | str | None, num_series: int = 1):
    """The prior callable ``prior(values, cond_mask, anchors=None) -> estimate`` of a config
    section (``{name: ..., options...}``), a bare name, or None (``none``), for data of
    ``num_series`` series (N * C; the fitted priors size their state by it). ``scale`` and
    ``residual`` are read by the module, not the prior, and are ignored here.

    Raises:
        UnknownNameError: an unknown prior name (the message lists the valid ones).
        ConfigError: an option the prior does not take, or an invalid value.
    """
    if config is None:
        config = {"name": "none"}
    if isinstance(config, str):
        config = {"name": config}
    if not isinstance(config, dict):
        raise ConfigError(f"prior must be a name or a mapping like {{name: interpolation}}, got {config!r}")
    options = {k: v for k, v in config.items() if k not in MODULE_OPTIONS}
    name = config.get("name", "none")
    obj = PRIORS.get(name)
    if name in _WITH_OPTIONS:
        check_options(obj, options, f"prior {name!r}", fixed=("num_series",) if name in _SIZED else ())
        return obj(num_series, **options) if name in _SIZED else obj(**options)
    if options:
        raise ConfigError(f"prior {name!r} takes no options (only scale, residual and window_norm), "
                          f"got {sorted(options)}")
    return obj


def _bool_option(config: dict | str | None, key: str, default: bool) -> bool:
    """``prior.<key>``, a true / false module option (``default`` where the section has none)."""
    if not isinstance(config, dict) or key not in config:
        return default
    value = config[key]
    if not isinstance(value, bool):
        raise ConfigError(f"prior.{key} must be true or false, got {value!r}")
    return value


def prior_residual_option(config: dict | str | None) -> bool:
    """``prior.residual``: whether the process diffuses the residual from the prior (default
    true), or the values themselves with the prior only an input of the network (false: the
    ablation that separates the two uses of a prior)."""
    return _bool_option(config, "residual", True)


def window_norm_option(config: dict | str | None) -> bool:
    """``prior.window_norm``: whether each window is normalised by its conditioning values
    (:mod:`tsdiff.diffusion.window_norm`; default false)."""
    return _bool_option(config, "window_norm", False)


def prior_scale_option(config: dict | str | None):
    """``prior.scale``: None (estimate from training windows) or a positive number."""
    if not isinstance(config, dict) or config.get("scale") in (None, "auto"):
        return None
    scale = config["scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0 or scale == float("inf"):
        raise ConfigError(f"prior.scale must be a positive number or 'auto', got {scale!r}")
    return float(scale)


def check_prior_section(config: dict | str | None) -> None:
    """Check a whole prior section before anything is built: the prior and its options
    (:func:`build_prior`) and the module's options (``scale``, ``residual``, ``window_norm``).

    Raises:
        UnknownNameError, ConfigError: as :func:`build_prior` and the option readers.
    """
    build_prior(config)
    prior_scale_option(config)
    prior_residual_option(config)
    window_norm_option(config)
