"""Conditional sampling of windows in data units, and placing a module on its device."""

from __future__ import annotations

import numpy as np
import torch

from tsdiff import validation as checks


def _place(module, device_setting) -> torch.device:
    """Move ``module`` to the device ``device_setting`` names (``"auto"``, ``"cpu"``, ``"gpu"``,
    ``"cuda:1"``; see :func:`tsdiff.training.devices.resolve_device`) and return that device."""
    from tsdiff.training.devices import resolve_device

    device = resolve_device(device_setting)
    if module.device != device:
        module.to(device)
    return device


def sample_windows(module, raw: np.ndarray, cond_mask: np.ndarray, *, n_samples: int, sampler: str = "ddpm",
                   steps: int | None = None, seed: int = 0, batch_size: int = 16, progress: bool = False,
                   desc: str = "sampling", generator: torch.Generator | None = None, anchors=None,
                   covariates=None, starts=None, precision: str = "32-true", **sample_options) -> np.ndarray:
    """Conditional samples of a batch of windows, in data units.

    Args:
        module: a trained :class:`~tsdiff.training.module.DiffusionModule`.
        raw: float64 ``[B, L, N, C]`` values in data units (NaN = missing).
        cond_mask: bool ``[B, L, N, C]``: entries to condition on (must be observed).
        generator: the noise generator to draw from (default: a new one seeded with ``seed``);
            passing the same one to successive calls continues its stream, so batches
            sampled call by call equal those of one call over all windows.
        anchors: ``[B, 4, N, C]`` the nearest known scaled values outside each window, for the
            model's prior (:class:`~tsdiff.diffusion.priors.EdgeAnchors`), or None.
        covariates: ``[B, L, K]`` scaled covariates of each window
            (:meth:`tsdiff.data.covariates.CovariateTable.windows`), for a model trained with them.
        starts: ``[B]`` each window's first step counted from the training data's first step, for
            a prior that places windows in a season (``climatology``), or None.
        precision: Lightning's sampling precision, ``"32-true"`` or ``"bf16-mixed"`` (autocast).
        sample_options: further arguments of :meth:`DiffusionModule.sample
            <tsdiff.training.module.DiffusionModule.sample>`: ``eta``, ``sampler_options``
            (e.g. ``{"spacing": "log_snr"}``), ``chunk_size``, ``conditioning``,
            ``conditioning_options``.
    Returns:
        float64 ``[S, B, L, N, C]``; on ``cond_mask`` entries exactly ``raw`` (bit for bit).

    Sampling runs on the module's device, through ``Trainer.predict``
    (:func:`~tsdiff.training.prediction.predict_batches`). The module hands its graph / grid (kept
    from training) to the network itself.
    """
    from tqdm.auto import tqdm

    from tsdiff.data.scalers import to_data_units
    from tsdiff.training.prediction import predict_batches

    raw = np.asarray(raw, dtype=np.float64)
    cond_mask = np.asarray(cond_mask, dtype=bool) & ~np.isnan(raw)
    B, L = raw.shape[:2]
    scaled = np.where(cond_mask, module.scaler.transform(np.where(cond_mask, raw, 0.0)), 0.0).astype(np.float32)
    out = np.empty((n_samples,) + raw.shape, dtype=np.float64)
    batches = _WindowBatches(scaled, cond_mask, batch_size, anchors=anchors, covariates=covariates, starts=starts)
    lr = (module.hparams.get("optim") or {}).get("lr")
    # a context manager: an error mid-way closes the bar first, so its message starts on a new line
    with tqdm(total=B * n_samples, desc=f"{desc} (windows x samples)", unit="path", disable=not progress) as bar:
        def write(samples, batch):
            lo, hi = batch["rows"].tolist()
            checks.check_finite_samples(samples, lr)
            out[:, lo:hi] = to_data_units(samples, raw[lo:hi], cond_mask[lo:hi], module.scaler)
            bar.update((hi - lo) * n_samples)

        settings = {"n_samples": n_samples, "sampler": sampler, "steps": steps, **sample_options}
        predict_batches(module, torch.utils.data.DataLoader(batches, batch_size=None), write, settings=settings,
                        generator=generator, seed=seed, precision=precision)
    checks.check_finite_gaps(out, "the samples")
    return out


class _WindowBatches(torch.utils.data.Dataset):
    """Item ``i``: batch ``i`` of ``batch_size`` windows of the arrays, as :func:`predict_batches
    <tsdiff.training.prediction.predict_batches>` takes them, with ``rows`` ``[lo, hi]`` (the
    windows it holds). Read with ``DataLoader(batch_size=None)``."""

    def __init__(self, scaled: np.ndarray, cond_mask: np.ndarray, batch_size: int, *, anchors=None,
                 covariates=None, starts=None) -> None:
        self.scaled, self.cond_mask, self.batch_size = scaled, cond_mask, int(batch_size)
        self.anchors, self.covariates = anchors, covariates
        self.starts = None if starts is None else np.asarray(starts)

    def __len__(self) -> int:
        return -(-len(self.scaled) // self.batch_size)

    def __getitem__(self, i: int) -> dict:
        lo = i * self.batch_size
        hi = min(lo + self.batch_size, len(self.scaled))
        L = self.scaled.shape[1]
        batch = {"x": torch.from_numpy(self.scaled[lo:hi]), "cond_mask": torch.from_numpy(self.cond_mask[lo:hi]),
                 "timepoints": torch.arange(L, dtype=torch.float32).expand(hi - lo, L),
                 "rows": torch.tensor([lo, hi])}
        if self.anchors is not None:
            batch["anchors"] = torch.as_tensor(self.anchors[lo:hi], dtype=torch.float32)
        if self.covariates is not None:
            batch["covariates"] = torch.as_tensor(self.covariates[lo:hi], dtype=torch.float32)
        if self.starts is not None:
            batch["start"] = torch.as_tensor(self.starts[lo:hi], dtype=torch.long)
        return batch
