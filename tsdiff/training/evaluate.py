"""Probabilistic evaluation of a trained module on a protocol split."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from tsdiff.data.protocol import Protocol
from tsdiff.data.scalers import StandardScaler
from tsdiff.errors import DataError
from tsdiff.metrics import MetricAccumulator
from tsdiff.training.module import DiffusionModule


def to_data_units(samples: torch.Tensor, raw: np.ndarray, cond_mask: np.ndarray, scaler: StandardScaler) -> np.ndarray:
    """Samples in data units, with every conditioning entry equal to the raw input.

    Args:
        samples: ``[S, B, L, N, C]`` in the scaled space.
        raw: ``[B, L, N, C]`` the input values in data units (NaN = missing).
        cond_mask: bool ``[B, L, N, C]``: entries the model conditioned on.
    Returns:
        float64 ``[S, B, L, N, C]``; on ``cond_mask`` entries, bit-for-bit ``raw``
        (copied, never round-tripped through the scaler).
    """
    raw, cond_mask = np.asarray(raw), np.asarray(cond_mask)
    if raw.shape != tuple(samples.shape[1:]) or cond_mask.shape != raw.shape:
        raise DataError(f"samples {tuple(samples.shape)} must be [S, *raw.shape] and cond_mask must have raw's "
                        f"shape; got raw shape {raw.shape} and cond_mask shape {cond_mask.shape}")
    inv = scaler.inverse_transform(samples.detach().to("cpu", torch.float64).numpy())
    return np.where(cond_mask[None], raw[None], inv)


def evaluate(
    module: DiffusionModule,
    protocol: Protocol,
    split: str = "test",
    *,
    n_samples: int = 100,
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float | None = None,
    sampler_options: dict | None = None,
    batch_size: int = 16,
    chunk_size: int | None = None,
    conditioning: str = "conditional",
    conditioning_options: dict | None = None,
    seed: int = 0,
    limit_windows: int | None = None,
    progress: bool = True,
) -> dict:
    """Sample every window of a split and score its target entries.

    Metrics are in data units unless the protocol's ``metric_space`` is ``"scaled"``;
    forecasting protocols also report CRPS-sum (over nodes and channels).

    Returns:
        ``{"metrics": {...}, "nfe": int, "sample_seconds": float, "n_windows": int}``.
    """
    dataset = protocol.dataset(split)
    if limit_windows is not None:
        dataset = Subset(dataset, range(min(limit_windows, len(dataset))))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    device = module.device
    gen = torch.Generator(device=device).manual_seed(seed)
    scaled = protocol.metric_space == "scaled"
    acc = MetricAccumulator(crps_sum=protocol.task == "forecasting")
    nfe = 0
    bar = tqdm(total=len(dataset) * n_samples, desc=f"sampling {split} (windows x samples)", unit="path",
               disable=not progress)
    t0 = time.perf_counter()
    for batch in loader:
        samples, nfe = module.sample(
            batch["x"].to(device), batch["cond_mask"].to(device), batch["timepoints"].to(device),
            n_samples=n_samples, sampler=sampler, steps=steps, eta=eta, sampler_options=sampler_options,
            generator=gen, chunk_size=chunk_size, conditioning=conditioning,
            conditioning_options=conditioning_options,
        )
        raw, cond = batch["y"].numpy(), batch["cond_mask"].numpy()
        if scaled:  # scored on the normalised values (the protocol's choice)
            target = module.scaler.transform(raw)
            data = np.where(cond[None], target[None], samples.detach().to("cpu", torch.float64).numpy())
        else:
            target, data = raw, to_data_units(samples, raw, cond, module.scaler)
        acc.update(data, target, batch["score_mask"].numpy())
        bar.update(len(raw) * n_samples)
    bar.close()
    return {
        "metrics": acc.compute(),
        "nfe": int(nfe),
        "sample_seconds": time.perf_counter() - t0,
        "n_windows": len(dataset),
    }
