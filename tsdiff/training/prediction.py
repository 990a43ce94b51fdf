"""Sampling through ``lightning.Trainer.predict``: the one loop that draws samples, whichever way in.

The Python API (:func:`tsdiff.api.sampling.sample_windows`), the CLI (``tsdiff test`` /
``tsdiff predict``) and the benchmark grid (through :func:`tsdiff.training.evaluate.evaluate`)
all call :func:`predict_batches`. Lightning brings the device placement (the trainer runs on the
device the module was placed on) and the precision (``"bf16-mixed"``: autocast around every
sampling step). A prediction writer hands each batch's samples to the caller as soon as they
are drawn and nothing is collected (``return_predictions=False``), so memory holds one batch of
samples, whatever the number of windows.

One noise generator runs through all batches in order: for a fixed seed the samples are the
same whatever the batch size of the loader (up to the network's own batching arithmetic) and
equal, bit for bit on the CPU, those drawn by calling
:meth:`DiffusionModule.sample <tsdiff.training.module.DiffusionModule.sample>` batch after batch.
"""

from __future__ import annotations

import warnings
from typing import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from tsdiff.training.devices import lightning_placement
from tsdiff.training.trainer_options import quiet_lightning

#: What a batch may hold for sampling: ``x`` (scaled values, conditioning entries used),
#: ``cond_mask``, and optionally ``timepoints``, ``anchors``, ``covariates`` and ``start``
#: (see :meth:`DiffusionModule.sample <tsdiff.training.module.DiffusionModule.sample>`); any
#: other key (e.g. the raw values ``y`` and ``score_mask`` of a protocol's windows) rides along
#: to the writer untouched.
SAMPLE_KEYS = {"timepoints": "timepoints", "anchors": "anchors", "covariates": "covariates", "start": "starts"}


class SamplingTask(L.LightningModule):
    """A trained module seen by ``Trainer.predict``: ``predict_step`` draws the samples of one
    batch with the sampling ``settings`` (``n_samples``, ``sampler``, ``steps``, ``eta``,
    ``sampler_options``, ``chunk_size``, ``conditioning``, ``conditioning_options``) from
    ``generator``. The module is a child, so the trainer moves it with the task."""

    def __init__(self, module, settings: dict, generator: torch.Generator) -> None:
        super().__init__()
        self.module = module
        self.settings = dict(settings)
        self.generator = generator
        #: network evaluations per sample path of the last batch
        self.nfe = 0

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        extra = {arg: batch[key] for key, arg in SAMPLE_KEYS.items() if batch.get(key) is not None}
        samples, self.nfe = self.module.sample(batch["x"], batch["cond_mask"], generator=self.generator, **extra,
                                               **self.settings)
        return samples


class _BatchWriter(BasePredictionWriter):
    """Hands every batch's samples to ``write(samples, batch)`` as soon as they are drawn."""

    def __init__(self, write: Callable) -> None:
        super().__init__(write_interval="batch")
        self.write = write

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        self.write(prediction, batch)


def predict_batches(module, batches, write: Callable[[torch.Tensor, dict], None], *, settings: dict,
                    generator: torch.Generator | None = None, seed: int = 0, precision: str = "32-true") -> int:
    """Draw the samples of every batch of ``batches`` with ``Trainer.predict``, on the module's device.

    Args:
        module: a trained :class:`~tsdiff.training.module.DiffusionModule`, placed on the device
            to sample on (one device; the module is there again afterwards).
        batches: a data loader (or any iterable Lightning takes) of dict batches, see
            :data:`SAMPLE_KEYS`; Lightning moves each batch to the device.
        write: called as ``write(samples, batch)`` after each batch, in order, with the samples
            ``[S, B, L, N, C]`` in the scaled space (conditioning entries equal ``batch["x"]``)
            and the batch on the device.
        settings: the sampling settings (see :class:`SamplingTask`).
        generator: the noise generator, on the module's device (default: a new one seeded with
            ``seed``); passing the same one to successive calls continues its stream.
        precision: Lightning's precision: ``"32-true"``, or ``"bf16-mixed"`` (autocast).
    Returns:
        The network evaluations per sample path (of the last batch).
    """
    device = module.device
    gen = generator if generator is not None else torch.Generator(device=device).manual_seed(int(seed))
    task = SamplingTask(module, settings, gen)
    with quiet_lightning(False), warnings.catch_warnings():
        # the writer is handed the batch itself, not its indices in a sampler
        warnings.filterwarnings("ignore", message=".*infer the batch indices.*")
        trainer = L.Trainer(**lightning_placement(device), precision=precision, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            inference_mode=False,  # guidance conditioning differentiates through the network
                            callbacks=[_BatchWriter(write)])
        try:
            trainer.predict(task, dataloaders=batches, return_predictions=False)
        finally:
            module.to(device)  # Lightning hands a GPU module back on the CPU; sampling stays where it was put
            module.trainer = None  # Lightning hands its trainer to child modules: keep the module free of it
    return task.nfe
