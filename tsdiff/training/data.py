"""LightningDataModule over an evaluation protocol's windows."""

from __future__ import annotations

from typing import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from tsdiff.data.protocol import Protocol


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` that depends only on ``(seed, epoch)``.

    Every epoch's batch order is reproducible on its own (no generator state carried
    from epoch to epoch), so a run resumed from a checkpoint visits the same windows
    in the same order as an uninterrupted one. ``skip`` drops the first indices of
    the next iteration only (the windows a resumed run has already trained on).
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch, self.skip = n, int(seed), 0, 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at each epoch start
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
        order = torch.randperm(self.n, generator=gen).tolist()
        skip, self.skip = self.skip, 0
        return iter(order[skip:])

    def __len__(self) -> int:
        return self.n


class ResumableLoader(DataLoader):
    """DataLoader whose position inside an epoch is saved in Lightning checkpoints.

    Lightning stores ``state_dict()`` of a loader that has one in every checkpoint and
    calls ``load_state_dict`` on resume, so training continues with the next batch of
    the interrupted epoch instead of restarting it. Needs an :class:`EpochShuffleSampler`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._batches = 0  # batches handed out in the current iteration
        self._resume_at = 0

    def __iter__(self):
        start, self._resume_at = self._resume_at, 0
        self._batches = start
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._batches)}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.set_epoch(state["epoch"])
        self._resume_at = int(state["batches"])
        self.sampler.skip = self._resume_at * int(self.batch_size)


class WindowDataModule(L.LightningDataModule):
    """Train / val / test loaders over the windows of an :class:`Protocol`.

    Training windows are shuffled by an :class:`EpochShuffleSampler` seeded by ``seed``:
    the batch order of each epoch is reproducible, does not depend on ``num_workers``,
    and is restored exactly when training resumes from a mid-epoch checkpoint.
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
        dataset = self.protocol.dataset(split)
        # A private generator: creating a loader iterator draws a worker seed from it,
        # never from the global RNG, so the training noise does not depend on when
        # (or how often) loaders are iterated - e.g. after resuming from a checkpoint.
        kwargs = dict(batch_size=batch_size, generator=torch.Generator().manual_seed(self.seed),
                      num_workers=self.num_workers, persistent_workers=self.num_workers > 0)
        if shuffle:
            return ResumableLoader(dataset, sampler=EpochShuffleSampler(len(dataset), self.seed), **kwargs)
        return DataLoader(dataset, shuffle=False, **kwargs)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)
