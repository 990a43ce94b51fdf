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
                   covariates=None, starts=None, **sample_options) -> np.ndarray:
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
        sample_options: further arguments of :meth:`DiffusionModule.sample
            <tsdiff.training.module.DiffusionModule.sample>`: ``eta``, ``sampler_options``
            (e.g. ``{"spacing": "log_snr"}``), ``chunk_size``, ``conditioning``,
            ``conditioning_options``.
    Returns:
        float64 ``[S, B, L, N, C]``; on ``cond_mask`` entries exactly ``raw`` (bit for bit).

    The module hands its graph / grid (kept from training) to the network itself.
    """
    from tqdm.auto import tqdm

    from tsdiff.data.scalers import to_data_units

    raw = np.asarray(raw, dtype=np.float64)
    cond_mask = np.asarray(cond_mask, dtype=bool) & ~np.isnan(raw)
    B, L = raw.shape[:2]
    scaled = np.where(cond_mask, module.scaler.transform(np.where(cond_mask, raw, 0.0)), 0.0).astype(np.float32)
    device = module.device
    gen = generator if generator is not None else torch.Generator(device=device).manual_seed(int(seed))
    out = np.empty((n_samples,) + raw.shape, dtype=np.float64)
    tp = torch.arange(L, dtype=torch.float32, device=device)
    # a context manager: an error mid-way closes the bar first, so its message starts on a new line
    with tqdm(total=B * n_samples, desc=f"{desc} (windows x samples)", unit="path", disable=not progress) as bar:
        for lo in range(0, B, batch_size):
            hi = min(lo + batch_size, B)
            x = torch.from_numpy(scaled[lo:hi]).to(device)
            m = torch.from_numpy(cond_mask[lo:hi]).to(device)
            anc = None if anchors is None else torch.as_tensor(anchors[lo:hi], dtype=torch.float32).to(device)
            cov = None if covariates is None else torch.as_tensor(covariates[lo:hi], dtype=torch.float32).to(device)
            st = None if starts is None else torch.as_tensor(np.asarray(starts)[lo:hi], dtype=torch.long)
            s, _ = module.sample(x, m, tp.expand(hi - lo, L), n_samples=n_samples, sampler=sampler, steps=steps,
                                 generator=gen, anchors=anc, covariates=cov, starts=st, **sample_options)
            checks.check_finite_samples(s, (module.hparams.get("optim") or {}).get("lr"))
            out[:, lo:hi] = to_data_units(s, raw[lo:hi], cond_mask[lo:hi], module.scaler)
            bar.update((hi - lo) * n_samples)
    checks.check_finite_gaps(out, "the samples")
    return out
