"""Probabilistic evaluation of a trained module on a protocol split."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from tsdiff.data.protocol import Protocol
from tsdiff.data.scalers import to_data_units
from tsdiff.diffusion.ddpm import DiscreteDDPM
from tsdiff.errors import ConfigError, DataError
from tsdiff.metrics import MetricAccumulator
from tsdiff.training.module import DiffusionModule


def _on(t: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if t is None else t.to(device)


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
    precision: str = "32-true",
) -> dict:
    """Sample every window of a split and score its target entries.

    Sampling runs on the module's device through ``Trainer.predict``
    (:func:`~tsdiff.training.prediction.predict_batches`, with Lightning's ``precision``), and each
    batch is scored as soon as it is drawn (:func:`score_windows`). Metrics are in data units
    unless the protocol's ``metric_space`` is ``"scaled"``; forecasting protocols also report
    CRPS-sum (over nodes and channels).

    Returns:
        ``{"metrics": {...}, "nfe": int, "sample_seconds": float, "n_windows": int}``.
    """
    from tsdiff.training.prediction import predict_batches

    scaled = protocol.metric_space == "scaled"
    settings = {"n_samples": n_samples, "sampler": sampler, "steps": steps, "eta": eta,
                "sampler_options": sampler_options, "chunk_size": chunk_size, "conditioning": conditioning,
                "conditioning_options": conditioning_options}
    nfe = 0

    def run(loader, score) -> None:
        nonlocal nfe

        def write(samples: torch.Tensor, batch: dict) -> None:
            raw, cond = batch["y"].cpu().numpy(), batch["cond_mask"].cpu().numpy()
            if scaled:  # scored on the normalised values (the protocol's choice)
                target = module.scaler.transform(raw)
                score(np.where(cond[None], target[None], samples.detach().to("cpu", torch.float64).numpy()), target,
                      batch)
            else:
                score(to_data_units(samples, raw, cond, module.scaler), raw, batch)

        nfe = predict_batches(module, loader, write, settings=settings, seed=seed, precision=precision)

    t0 = time.perf_counter()
    res = score_windows(protocol, split, run, limit_windows=limit_windows, batch_size=batch_size,
                        n_samples=n_samples, progress=progress, desc=f"sampling {split}")
    # a model's sampling time is the whole loop, scoring included (a baseline's: its predict calls)
    return {**res, "nfe": int(nfe), "sample_seconds": time.perf_counter() - t0}


def each_batch(predict: Callable[[dict], tuple[np.ndarray, np.ndarray]]) -> Callable:
    """The ``run`` of :func:`score_windows` for a predictor called batch by batch (the baselines):
    ``predict(batch) -> (samples, target)``."""
    def run(loader, score) -> None:
        for batch in loader:
            samples, target = predict(batch)
            score(samples, target, batch)
    return run


def score_windows(protocol: Protocol, split: str, run: Callable, *, limit_windows: int | None = None,
                  batch_size: int = 16, n_samples: int = 1, progress: bool = False, desc: str = "sampling") -> dict:
    """The one scoring loop of models and baselines: the windows of ``split`` (the first
    ``limit_windows``) in order, ``batch_size`` at a time, their target entries (``score_mask``)
    scored with one :class:`~tsdiff.metrics.MetricAccumulator` (CRPS-sum too for forecasting).

    Args:
        run: ``run(loader, score)`` draws the samples of every batch of ``loader`` in order and
            calls ``score(samples, target, batch)`` for each: float64 samples ``[S, B, L, N, C]``
            and the target ``[B, L, N, C]``, both in the protocol's metric space, the samples'
            conditioning entries equal to the target's. A model's ``run`` is ``Trainer.predict``
            (:func:`evaluate`); a baseline's is :func:`each_batch`.
        n_samples: samples per window, for the progress bar (windows x samples).
    Returns:
        ``{"metrics": {...}, "sample_seconds": seconds spent in run outside scoring, "n_windows": int}``.
    """
    dataset = protocol.dataset(split)
    if limit_windows is not None:
        dataset = Subset(dataset, range(min(limit_windows, len(dataset))))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    acc = MetricAccumulator(crps_sum=protocol.task == "forecasting")
    scoring = 0.0
    # a context manager: an error mid-way closes the bar first, so its message starts on a new line
    with tqdm(total=len(dataset) * n_samples, desc=f"{desc} (windows x samples)", unit="path",
              disable=not progress) as bar:
        def score(samples: np.ndarray, target: np.ndarray, batch: dict) -> None:
            nonlocal scoring
            t = time.perf_counter()
            acc.update(samples, target, batch["score_mask"].cpu().numpy())
            bar.update(len(target) * n_samples)
            scoring += time.perf_counter() - t

        t0 = time.perf_counter()
        run(loader, score)
        seconds = time.perf_counter() - t0 - scoring
    return {"metrics": acc.compute(), "sample_seconds": seconds, "n_windows": len(dataset)}


@torch.inference_mode()
def estimate_eps_sq_norm(
    module: DiffusionModule,
    protocol: Protocol,
    split: str = "val",
    *,
    limit_windows: int | None = 64,
    batch_size: int = 16,
    seed: int = 0,
    repeats: int = 1,
) -> list[float]:
    """``Gamma_t = E|eps_pred(x_t)|^2 / d`` for every DDPM step, the statistic of the
    ``variance="analytic"`` option of the ``ddpm`` sampler (Bao et al. 2022).

    For each step ``t`` every window of the split is noised to ``t`` on its scored
    (held-out) entries, with its conditioning entries given as at evaluation, and the
    network's eps prediction is averaged in square over the scored entries. Held-out
    windows, not training ones, so the statistic describes the network on data it has
    not fitted. Each estimate is clipped to the interval a true ``Gamma_t`` lies in,
    ``[1 - abar_t / (1 - abar_t) E x_0^2, 1]`` (``x_0``'s posterior variance is at least 0
    and at most its second moment), which matters near the prior end, where a small
    error in ``Gamma_t`` is a large error in the variance. Cost: ``T x repeats`` network
    passes over ``limit_windows`` windows.

    Args:
        module, protocol: the trained model and the protocol of its data.
        split: the windows to estimate on (``"val"``: held out from training).
        limit_windows: the first this many windows of the split (None: all).
        batch_size: windows per network pass.
        seed: seed of the noise draws.
        repeats: noise draws per window and step, averaged (with few validation windows one
            draw leaves the estimates near ``Gamma = 1`` scattered by a few hundredths).
            The noise is drawn per step, then per repeat, then per batch.

    Returns:
        ``T`` floats, index ``t`` for step ``t``; pass them as the sampler option
        ``eps_sq_norm``.

    Raises:
        ConfigError: the module's process is not discrete DDPM, or the module is
            autoregressive (its network denoises one time step at a time).
        DataError: the split has no scored entry.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be an integer >= 1 (noise draws per window and step); got {repeats!r}")
    process = module.process
    if not isinstance(process, DiscreteDDPM):
        raise ConfigError(f"estimate_eps_sq_norm needs a discrete DDPM process; got {process.name!r}")
    num_steps = process.num_steps
    if module.net.autoregressive:
        raise ConfigError("estimate_eps_sq_norm does not support autoregressive networks (TimeGrad)")
    dataset = protocol.dataset(split)
    if limit_windows is not None:
        dataset = Subset(dataset, range(min(limit_windows, len(dataset))))
    device = module.device
    batches = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        raw = batch["y"].numpy()
        x0 = np.nan_to_num(module.scaler.transform(raw), nan=0.0)
        target = torch.as_tensor(batch["score_mask"].numpy() & ~batch["cond_mask"].numpy() & ~np.isnan(raw))
        cond = module.condition(batch["x"].to(device), batch["cond_mask"].to(device), batch["timepoints"].to(device),
                                _on(batch.get("anchors"), device), starts=batch.get("start"))
        x0 = module.to_process_space(torch.as_tensor(x0, dtype=batch["x"].dtype, device=device), cond)
        batches.append((x0, target.to(device), cond))
    count = sum(int(b[1].sum()) for b in batches)
    if count == 0:
        raise DataError(f"split {split!r} has no scored entry to estimate eps_sq_norm on")
    # E[Var(x_0 | x_t)] = s_t^2 / a_t^2 (1 - Gamma_t) lies in [0, E x_0^2]: the clip below keeps a
    # noisy estimate near the prior end (where s_t^2 / a_t^2 is in the thousands) from
    # claiming more uncertainty about x_0 than the data has.
    second_moment = sum(float((x0.double() ** 2)[target].sum()) for x0, target, _ in batches) / count
    abar = process.alpha_bars.double()
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = module.training
    module.eval()  # after every check, so an error leaves the module's mode as it was
    out = []
    for step in range(num_steps):
        total = 0.0
        for _ in range(repeats):
            for x0, target, cond in batches:
                t = torch.full((x0.shape[0],), step, dtype=torch.long, device=device)
                noise = torch.randn(x0.shape, generator=gen, device=device, dtype=x0.dtype)
                eps = module.eps_fn(cond)(process.sample_noisy(x0, t, noise), t)
                total += float((eps.double() ** 2)[target].sum())
        floor = max(0.0, 1.0 - float(abar[step] / (1.0 - abar[step])) * second_moment)
        out.append(min(max(total / (count * repeats), floor), 1.0))
    module.train(was_training)
    return out
