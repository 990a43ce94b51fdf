"""Scalers fitted on observed training values only, exactly invertible."""

from __future__ import annotations

import numpy as np

from tsdiff.errors import DataError


class StandardScaler:
    """Per-location, per-channel z-scoring: ``(x - mean) / std``.

    Statistics are computed over the time axis of ``[T, N, C]`` using only observed
    (non-NaN) entries, so missing values never bias them. A location with fewer than
    two observed values, or zero spread, gets std 1 (and mean 0 if it has none).
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
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), 0.0)
            var = np.where(
                count > 1,
                np.nansum((values - mean) ** 2, axis=0) / np.maximum(count - 1, 1),
                1.0,
            )
        std = np.sqrt(var)
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
        return (values - self.mean) / self.std

    def inverse_transform(self, values):
        """Undo :meth:`transform`; accepts numpy arrays or torch tensors ``[..., N, C]``."""
        self._check(values)
        if isinstance(values, np.ndarray):
            return values * self.std + self.mean
        import torch

        std = torch.as_tensor(self.std, dtype=values.dtype, device=values.device)
        mean = torch.as_tensor(self.mean, dtype=values.dtype, device=values.device)
        return values * std + mean

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
        loc, scale = self._stats(safe)
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


def scaler_from_state_dict(state: dict) -> StandardScaler:
    """Rebuild any scaler from its ``state_dict()`` (``kind`` picks the class)."""
    cls = SCALERS.get(state.get("kind", "standard"))
    if cls is None:
        raise DataError(f"unknown scaler kind {state.get('kind')!r}; valid: {', '.join(SCALERS)}")
    out = cls()
    out.mean = np.asarray(state["mean"], dtype=np.float64)
    out.std = np.asarray(state["std"], dtype=np.float64)
    return out
