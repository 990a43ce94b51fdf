"""LightningDataModule over an evaluation protocol's windows."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from tsdiff.data.protocol import Protocol


class WindowDataModule(L.LightningDataModule):
    """Train / val / test loaders over the windows of an :class:`Protocol`.

    Training windows are shuffled with a generator seeded by ``seed``, so the batch
    order is reproducible.
    """

    def __init__(self, protocol: Protocol, batch_size: int = 16, num_workers: int = 0, seed: int = 0,
                 eval_batch_size: int | None = None) -> None:
        super().__init__()
        self.protocol = protocol
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            self.protocol.dataset(split), batch_size=batch_size, shuffle=shuffle, generator=gen,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)
