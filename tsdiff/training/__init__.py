"""Training: LightningModule, DataModule, checkpoints, evaluation."""

from tsdiff.training.data import WindowDataModule
from tsdiff.training.module import DiffusionModule

__all__ = ["DiffusionModule", "WindowDataModule"]
