"""Scalers fitted on observed training values only, exactly invertible."""

from __future__ import annotations

import numpy as np

from tsdiff.errors import DataError


#: Locations whose largest observed magnitude is above ``_BIG`` (or below ``_SMALL``) are fitted on
#: values divided by a power of two, so squares and sums neither overflow nor underflow.
_BIG, _SMALL = 2.0**480, 2.0**-480
_FMAX = float(np.finfo(np.float64).max)
#: Largest scale a scaler uses: ``x / std`` stays finite and draws in scaled units up to 8 map back.
_MAX_SCALE = _FMAX / 8


def _pow2_factor(values: np.ndarray) -> np.ndarray:
    """Per-``[N, C]`` power of two ``p`` with ``values / p`` of moderate magnitude; 1 for ordinary data
    (which is then fitted with the plain formulas, bit for bit)."""
    if values.shape[0] == 0:
        return np.ones(values.shape[1:])
    with np.errstate(invalid="ignore"):
        k = np.fmax.reduce(np.abs(values), axis=0)  # NaN-ignoring max, no warning for all-NaN
    extreme = np.isfinite(k) & (k > 0) & ((k > _BIG) | (k < _SMALL))
    p = np.ones(k.shape)
    p[extreme] = np.ldexp(1.0, np.frexp(k[extreme])[1] - 1)  # the power of two <= k (exact, never inf)
    return p


class StandardScaler:
    """Per-location, per-channel z-scoring: ``(x - mean) / std``.

    Statistics are computed over the time axis of ``[T, N, C]`` using only observed
    (non-NaN) entries, so missing values never bias them. A location with fewer than
    two observed values, or zero spread, gets std 1 (and mean 0 if it has none).

    Any finite values, up to the float64 maximum, give finite statistics: a location whose
    magnitude is beyond ``2**480`` (or below ``2**-480``) is fitted on its values divided by
    a power of two, and its std is capped at ``float64 max / 8``.
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, values: np.ndarray) -> "StandardScaler":
        """Args: values ``[T, N, C]`` with NaN for missing entries."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 3:
            raise DataError(f"StandardScaler.fit expects [T, N, C], got shape {values.shape}")
        count = (~np.isnan(values)).sum(axis=0)
        p = _pow2_factor(values)
        scaled = bool((p != 1).any())
        if scaled:  # values near the float64 limits: statistics of values / p (exact: p is a power of 2)
            values = values / p
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), 0.0)
            var = np.where(
                count > 1,
                np.nansum((values - mean) ** 2, axis=0) / np.maximum(count - 1, 1),
                1.0,
            )
        std = np.sqrt(var)
        if scaled:
            with np.errstate(over="ignore"):
                mean = mean * p
                std = np.where(std > 0, np.minimum(std * p, _MAX_SCALE), 0.0)
        std = np.where(std > 0, std, 1.0)
        self.mean, self.std = mean, std
        return self

    def _check(self, values: np.ndarray) -> None:
        if self.mean is None:
            raise DataError("the scaler is not fitted; call fit() on training values first")
        if values.shape[-2:] != self.mean.shape:
            raise DataError(
                f"data has [N, C] = {values.shape[-2:]} but the scaler was fitted on {self.mean.shape}"
            )

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale ``[..., N, C]`` values (NaN stays NaN)."""
        values = np.asarray(values)
        self._check(values)
        with np.errstate(over="ignore", invalid="ignore"):
            out = (values - self.mean) / self.std
            bad = np.isinf(out) & np.isfinite(values)
            if bad.any():  # ``values - mean`` overflowed (values near the float64 limit): halve first
                out = np.where(bad, (values / 2 - self.mean / 2) / (self.std / 2), out)
        return out

    def inverse_transform(self, values):
        """Undo :meth:`transform`; accepts numpy arrays or torch tensors ``[..., N, C]``.

        A finite value whose result would exceed the float64 range saturates at +-max
        (never inf); NaN stays NaN.
        """
        self._check(values)
        if isinstance(values, np.ndarray):
            with np.errstate(over="ignore", invalid="ignore"):
                out = values * self.std + self.mean
                bad = ~np.isfinite(out) & np.isfinite(values)
                if bad.any():
                    alt = np.clip(2 * (values * (self.std / 2) + self.mean / 2), -_FMAX, _FMAX)
                    out = np.where(bad, alt, out)
            return out
        import torch

        std = torch.as_tensor(self.std, dtype=values.dtype, device=values.device)
        mean = torch.as_tensor(self.mean, dtype=values.dtype, device=values.device)
        out = values * std + mean
        bad = ~torch.isfinite(out) & torch.isfinite(values)
        if bool(bad.any()):
            big = torch.finfo(values.dtype).max
            alt = (2 * (values * (std / 2) + mean / 2)).nan_to_num(nan=0.0, posinf=big, neginf=-big)
            out = torch.where(bad, alt, out)
        return out

    def state_dict(self) -> dict:
        return {"kind": "standard", "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "StandardScaler":
        out = cls()
        out.mean = np.asarray(state["mean"], dtype=np.float64)
        out.std = np.asarray(state["std"], dtype=np.float64)
        return out


class _RangeScaler(StandardScaler):
    """Shared machinery: ``(x - loc) / scale`` with per-[N, C] statistics of observed values."""

    kind = "range"

    def _stats(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(self, values: np.ndarray) -> "StandardScaler":
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 3:
            raise DataError(f"{type(self).__name__}.fit expects [T, N, C], got shape {values.shape}")
        empty = np.isnan(values).all(axis=0)
        safe = np.where(empty[None], 0.0, values)  # all-NaN locations: loc 0, scale 1
        p = _pow2_factor(safe)
        scaled = bool((p != 1).any())
        loc, scale = self._stats(safe / p if scaled else safe)
        if scaled:  # values near the float64 limits: statistics of values / p, then back
            with np.errstate(over="ignore"):
                loc = loc * p
                scale = np.where(scale > 0, np.minimum(scale * p, _MAX_SCALE), 0.0)
        scale = np.where((scale > 0) & ~empty, scale, 1.0)
        self.mean, self.std = np.where(empty, 0.0, loc), scale
        return self

    def state_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}


class MinMaxScaler(_RangeScaler):
    """Per-location ``(x - min) / (max - min)`` over observed values, to [0, 1] on the fit data."""

    kind = "minmax"

    def _stats(self, values):
        lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        return lo, hi - lo


class MeanAbsScaler(_RangeScaler):
    """Per-location ``x / mean(|x|)`` over observed values (GluonTS / DeepAR mean scaling)."""

    kind = "meanabs"

    def _stats(self, values):
        return np.zeros(values.shape[1:]), np.nanmean(np.abs(values), axis=0)


SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "meanabs": MeanAbsScaler}


def to_data_units(samples, raw: np.ndarray, cond_mask: np.ndarray, scaler: StandardScaler) -> np.ndarray:
    """Samples in data units, with every conditioning entry equal to the raw input.

    Args:
        samples: torch ``[S, B, L, N, C]`` in the scaled space (any device and dtype).
        raw: ``[B, L, N, C]`` the input values in data units (NaN = missing).
        cond_mask: bool ``[B, L, N, C]``: entries the model conditioned on.
    Returns:
        float64 ``[S, B, L, N, C]``; on ``cond_mask`` entries, bit-for-bit ``raw``
        (copied, never round-tripped through the scaler).
    """
    import torch

    raw, cond_mask = np.asarray(raw), np.asarray(cond_mask)
    if raw.shape != tuple(samples.shape[1:]) or cond_mask.shape != raw.shape:
        raise DataError(f"samples {tuple(samples.shape)} must be [S, *raw.shape] and cond_mask must have raw's "
                        f"shape; got raw shape {raw.shape} and cond_mask shape {cond_mask.shape}")
    inv = scaler.inverse_transform(samples.detach().to("cpu", torch.float64).numpy())
    return np.where(cond_mask[None], raw[None], inv)


def scaler_from_state_dict(state: dict) -> StandardScaler:
    """Rebuild any scaler from its ``state_dict()`` (``kind`` picks the class)."""
    cls = SCALERS.get(state.get("kind", "standard"))
    if cls is None:
        raise DataError(f"unknown scaler kind {state.get('kind')!r}; valid: {', '.join(SCALERS)}")
    out = cls()
    out.mean = np.asarray(state["mean"], dtype=np.float64)
    out.std = np.asarray(state["std"], dtype=np.float64)
    return out
