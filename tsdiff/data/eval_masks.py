"""Evaluation mask strategies: which observed entries are held out and scored.

Each strategy maps ``observed`` (bool ``[T, N, C]``) and a seed to a bool
``target`` mask ``[T, N, C]`` with ``target <= observed``, and returns the realised
missing rate (fraction of observed entries hidden) next to it, so every benchmark
record can state the exact rate. Same inputs + seed -> same mask.

- ``point``: each observed entry hidden with probability ``rate`` (CSDI, GRIN "point").
- ``block``: per node, contiguous outages of ``min_len..max_len`` steps started
  with probability ``block_prob`` per step, plus ``point_rate`` random points
  (GRIN / PriSTI "block missing").
- ``historical``: the missing pattern of another (seeded, shifted) period reused.
- ``horizon``: the last ``horizon`` steps (forecasting).
- ``mixture``: union of several strategies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsdiff.errors import ConfigError, DataError
from tsdiff.registry import Registry

EVAL_MASKS: Registry = Registry("evaluation mask strategy")


@dataclass
class EvalMask:
    """A held-out mask and its realised missing rate."""

    target: np.ndarray
    missing_rate: float


def _finish(observed: np.ndarray, hidden: np.ndarray) -> EvalMask:
    target = observed & hidden
    return EvalMask(target, float(target.sum() / max(int(observed.sum()), 1)))


def _obs(observed) -> np.ndarray:
    o = np.asarray(observed, dtype=bool)
    if o.ndim != 3:
        raise DataError(f"observed must be [T, N, C], got shape {o.shape}")
    return o


@EVAL_MASKS.register("point")
def point_mask(observed, rate: float, seed: int = 0) -> EvalMask:
    """Hide each observed entry independently with probability ``rate``."""
    if not 0 <= rate <= 1:
        raise ConfigError(f"rate must be in [0, 1], got {rate}")
    o = _obs(observed)
    return _finish(o, np.random.default_rng(seed).random(o.shape) < rate)


@EVAL_MASKS.register("block")
def block_mask(observed, min_len: int, max_len: int, block_prob: float = 0.0015, point_rate: float = 0.05, seed: int = 0) -> EvalMask:
    """Sensor failures: per (node, channel), outages of ``min_len..max_len`` steps + random points.

    An outage starts at each step with probability ``block_prob``; its length is
    uniform in ``[min_len, max_len]``.
    """
    if not 1 <= min_len <= max_len:
        raise ConfigError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    o = _obs(observed)
    rng = np.random.default_rng(seed)
    T = o.shape[0]
    hidden = rng.random(o.shape) < point_rate
    starts = rng.random(o.shape) < block_prob
    lengths = rng.integers(min_len, max_len + 1, size=o.shape)
    for t, n, c in zip(*np.nonzero(starts)):
        hidden[t : min(T, t + lengths[t, n, c]), n, c] = True
    return _finish(o, hidden)


@EVAL_MASKS.register("historical")
def historical_mask(observed, shift: int | None = None, seed: int = 0) -> EvalMask:
    """Hide entries that are missing ``shift`` steps away (a real missing pattern reused)."""
    o = _obs(observed)
    T = o.shape[0]
    if T < 2:
        raise DataError("the historical strategy needs at least 2 steps")
    shift = shift or int(np.random.default_rng(seed).integers(1, T))
    return _finish(o, ~np.roll(o, shift, axis=0))


@EVAL_MASKS.register("horizon")
def horizon_mask(observed, horizon: int, seed: int = 0) -> EvalMask:
    """Hide the last ``horizon`` steps (forecasting as imputation)."""
    o = _obs(observed)
    if not 1 <= horizon <= o.shape[0]:
        raise ConfigError(f"horizon must be in 1..{o.shape[0]}, got {horizon}")
    hidden = np.zeros_like(o)
    hidden[-horizon:] = True
    return _finish(o, hidden)


@EVAL_MASKS.register("mixture")
def mixture_mask(observed, parts: list[tuple[str, dict]], seed: int = 0) -> EvalMask:
    """Union of strategies, e.g. ``[("block", {...}), ("point", {"rate": 0.05})]``; part k uses seed + k."""
    o = _obs(observed)
    hidden = np.zeros_like(o)
    for k, (name, kwargs) in enumerate(parts):
        hidden |= EVAL_MASKS.get(name)(o, seed=seed + k, **kwargs).target
    return _finish(o, hidden)
