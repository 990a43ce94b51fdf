"""Evaluation protocols: a dataset cut into train/val/test windows with fixed masks.

An :class:`ImputationProtocol` carries everything needed to reproduce a benchmark
exactly: the raw series, which entries are held out for scoring, the window starts
of every split, and the scaler fitted on training data only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from tsdiff.data.scalers import StandardScaler
from tsdiff.data.series import Series
from tsdiff.errors import ConfigError
from tsdiff.registry import Registry, check_options


@dataclass
class SplitWindows:
    """Window starts of one split.

    ``score_from[i]`` is the first step of window i that is scored (0 except for a
    last window that overlaps its predecessor); ``None`` for training splits.
    """

    starts: np.ndarray
    score_from: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.starts)


@dataclass
class ImputationProtocol:
    """A dataset, its splits and held-out entries, as one reproducible benchmark.

    Attributes:
        id: protocol identifier written into every result record.
        series: the raw data in data units, ``[T, N, C]`` with NaN for missing.
        eval_mask: bool ``[T, N, C]``: observed entries hidden from the model in
            validation and test windows and scored there.
        window: window length L.
        splits: ``{"train": ..., "val": ..., "test": ...}``.
        scaler: fitted on observed values of training windows only.
        checksums: SHA-256 of the source files.
    """

    id: str
    series: Series
    eval_mask: np.ndarray
    window: int
    splits: dict[str, SplitWindows]
    scaler: StandardScaler
    checksums: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def dataset(self, split: str) -> "WindowDataset":
        if split not in self.splits:
            raise ConfigError(f"protocol {self.id!r} has no split {split!r}; splits are {sorted(self.splits)}")
        return WindowDataset(self, split)

    @property
    def signature(self) -> dict:
        """What a trained model must agree with to be applied to this data."""
        _, n, c = self.series.shape
        return {
            "protocol": self.id,
            "num_nodes": n,
            "num_channels": c,
            "window": self.window,
            "node_names": list(self.series.node_names),
            "channel_names": list(self.series.channel_names),
        }


def fit_scaler_on_windows(series: Series, starts: np.ndarray, window: int) -> StandardScaler:
    """Fit a StandardScaler on the observed values covered by the given windows."""
    covered = np.zeros(series.shape[0], dtype=bool)
    for s in starts:
        covered[s : s + window] = True
    return StandardScaler().fit(series.values[covered])


class WindowDataset(Dataset):
    """Windows of one split as tensors, in the scaled space.

    Each item is a dict (all ``[L, N, C]`` unless noted):
        ``x``: scaled values, 0 where missing;  ``observed_mask``: bool;
        ``timepoints``: ``[L]`` float positions 0..L-1;  ``start``: int.
    Evaluation splits (``score_from`` set) also give
        ``y``: float64 values in data units (NaN where missing), for scoring and for
            returning conditioning values exactly;
        ``cond_mask``: bool, what the model conditions on (observed and not held out);
        ``score_mask``: bool, held-out entries scored in this window.
    """

    def __init__(self, protocol: ImputationProtocol, split: str) -> None:
        self.protocol = protocol
        self.split = split
        self.windows = protocol.splits[split]
        self.L = protocol.window
        values = protocol.series.values
        observed = ~np.isnan(values)
        scaled = protocol.scaler.transform(values)
        self.x = torch.from_numpy(np.where(observed, scaled, 0.0).astype(np.float32))
        self.observed = torch.from_numpy(observed)
        self.eval_mask = torch.from_numpy(protocol.eval_mask & observed)
        self.raw = torch.from_numpy(np.asarray(values, dtype=np.float64))
        self.timepoints = torch.arange(self.L, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        s = int(self.windows.starts[i])
        sl = slice(s, s + self.L)
        item = {
            "x": self.x[sl],
            "observed_mask": self.observed[sl],
            "timepoints": self.timepoints,
            "start": s,
        }
        if self.windows.score_from is not None:
            held_out = self.eval_mask[sl]
            item["y"] = self.raw[sl]
            item["cond_mask"] = self.observed[sl] & ~held_out
            score = held_out.clone()
            score[: int(self.windows.score_from[i])] = False
            item["score_mask"] = score
        return item


ProtocolBuilder = Callable[..., ImputationProtocol]
DATASETS: Registry[ProtocolBuilder] = Registry("dataset")


def build_protocol(name: str, data_dir=None, options: dict | None = None) -> ImputationProtocol:
    """Build a registered dataset protocol; ``options`` are checked against its parameters."""
    builder = DATASETS.get(name)
    options = dict(options or {})
    check_options(builder, options, f"dataset {name!r} (data.options)", fixed=("data_dir",))
    return builder(data_dir=data_dir, **options)
