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
