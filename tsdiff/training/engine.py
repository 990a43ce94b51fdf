"""The one place a module is built and trained, whichever way in.

The Python API (:mod:`tsdiff.api`: ``Forecaster`` / ``Imputer``), configs (:mod:`tsdiff.experiment`:
``tsdiff fit``) and the benchmark grid (:mod:`tsdiff.bench.runner`, whose model cells train
through :mod:`tsdiff.experiment`) all call these three functions; what differs between them
is the settings they resolve (the API's CPU-sized preset, a YAML config), not the code that
builds and trains. Sampling has its one loop in
:func:`tsdiff.training.prediction.predict_batches` (``lightning.Trainer.predict``), scoring in
:func:`tsdiff.training.evaluate.score_windows`.
"""

from __future__ import annotations

import lightning as L

from tsdiff.training.module import DiffusionModule
from tsdiff.training.spatial_state import spatial_state
from tsdiff.training.trainer_options import trainer_arguments


def build_module(*, model: dict, process: dict, optim: dict, train_mask: str, signature: dict, scaler,
                 config: dict | None = None, spatial=None, prior: dict | None = None,
                 loss: dict | None = None) -> DiffusionModule:
    """A fresh (untrained) module from resolved config sections.

    Args:
        model, process, optim, prior, loss: the config sections (``loss`` None: the module's
            defaults, :data:`tsdiff.config.DEFAULTS`).
        train_mask: name of the training mask strategy.
        signature: the data signature the module is trained on (checked when it is used).
        scaler: the fitted scaler of the data; the module keeps its state.
        config: the whole config, kept in the module's hyper-parameters and its model files.
        spatial: the data's ``Series.spatial`` (None, a graph or a grid), handed to the network.
    """
    return DiffusionModule(model=model, process=process, optim=optim, train_mask=train_mask, signature=signature,
                           scaler=scaler.state_dict(), config=config, spatial=spatial_state(spatial), prior=prior,
                           loss=loss)


def make_trainer(base: dict, callbacks: list, trainer_kwargs: dict | None = None) -> L.Trainer:
    """The ``lightning.Trainer`` of a training run: ``base`` arguments and ``callbacks`` (the caller's
    own), updated by the user's ``trainer_kwargs`` (their callbacks run after the caller's; see
    :func:`~tsdiff.training.trainer_options.trainer_arguments`)."""
    return L.Trainer(**trainer_arguments(base, callbacks, trainer_kwargs))


def fit(trainer: L.Trainer, module: DiffusionModule, train, val=None, *, ckpt_path=None) -> None:
    """Train ``module`` with ``trainer`` on ``train`` (a data loader or a ``LightningDataModule``),
    validating on ``val`` (a loader, or None), resuming from ``ckpt_path`` if given; checkpoints
    load with ``weights_only=True`` (no code runs on load)."""
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val, ckpt_path=ckpt_path, weights_only=True)
