"""Training of the estimators: the held-out windows of ``validation=`` and the seeded, file-less
Lightning run of :func:`_train`."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from tsdiff import validation as checks
from tsdiff.training.recipe import best_weights_callback, ema_callback, parse_duration, validation_interval
from tsdiff.training.trainer_options import quiet_lightning

#: At most this many held-out windows are scored at each validation check (evenly spread).
MAX_VAL_WINDOWS = 64


def _spread(starts: np.ndarray, limit: int = MAX_VAL_WINDOWS) -> np.ndarray:
    """At most ``limit`` of ``starts``, evenly spread over them (all when there are fewer)."""
    if len(starts) <= limit:
        return starts
    return starts[np.unique(np.linspace(0, len(starts) - 1, limit).round().astype(np.int64))]


def _train(module, dataset, *, batch_size: int, max_steps: int, seed: int, progress: bool,
           device: torch.device, max_time=None, val_dataset=None, early_stopping: int | None = None,
           trainer_kwargs: dict | None = None) -> dict:
    """Train ``module`` for ``max_steps`` optimiser steps, or until ``max_time`` (a duration, see
    :func:`tsdiff.training.recipe.parse_duration`) if that comes first, with Lightning (seeded,
    no files written) on ``device``, and leave it there (Lightning hands it back on the CPU).

    With ``val_dataset`` the validation loss is computed every
    :func:`~tsdiff.training.recipe.validation_interval` steps and the weights with the lowest one
    are kept; ``early_stopping`` (a patience in checks) also stops training when it stalls.
    ``trainer_kwargs`` (checked by :func:`~tsdiff.training.trainer_options.check_trainer_kwargs`) are
    further ``lightning.Trainer`` arguments; their callbacks run after the estimator's own.

    Returns:
        ``{"n_steps": optimiser steps run, "best_step": step of the kept weights, "best_val_loss": their
        validation loss}`` (the last two None without ``val_dataset``, or when no check ran).
    """
    from lightning.pytorch.callbacks import EarlyStopping
    from torch.utils.data import DataLoader

    from tsdiff.training import engine
    from tsdiff.training.devices import lightning_placement

    batch_size, max_steps = int(batch_size), int(max_steps)  # numpy integers: torch's samplers want int

    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    with quiet_lightning(progress), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*val_dataloader.*")
        torch.manual_seed(seed)
        callbacks = [checks.divergence_callback(module.hparams["optim"]["lr"])]
        best = None
        validation = {"limit_val_batches": 0}
        val_loader = None
        if val_dataset is not None:
            best = best_weights_callback()
            callbacks.append(best)  # before the EMA: it sees the averaged weights during validation
            if early_stopping is not None:
                callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=early_stopping))
            val_loader = DataLoader(val_dataset, batch_size=min(batch_size, len(val_dataset)), shuffle=False)
            validation = {"val_check_interval": validation_interval(max_steps), "check_val_every_n_epoch": None}
        if module.optim.get("ema") is not None:
            callbacks.append(ema_callback(module.optim["ema"]))
        base = dict(max_steps=max_steps, max_epochs=-1, max_time=parse_duration(max_time), logger=False,
                    enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
                    num_sanity_val_steps=0, **validation, **lightning_placement(device))
        trainer = engine.make_trainer(base, callbacks, trainer_kwargs)
        engine.fit(trainer, module, loader, val_loader)
    summary = {"n_steps": int(trainer.global_step), "best_step": None, "best_val_loss": None}
    if best is not None and best.state is not None:
        best.restore(module)
        summary.update(best_step=best.step, best_val_loss=best.best)
    checks.check_trained(module)  # a diverged training is an error, never NaN output
    module._trainer = None  # keep the fitted module picklable and free of the trainer
    module.to(device)  # sampling runs where the module is
    module.eval()
    return summary
