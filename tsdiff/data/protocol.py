"""Evaluation protocols: a dataset cut into train/val/test windows with fixed masks.

A :class:`Protocol` carries everything needed to reproduce a benchmark
exactly: the raw series, which entries are held out for scoring, the window starts
of every split, and the scaler fitted on training data only.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from tsdiff.data.lazy import fit_scaler_streaming, read_window, scale_window
from tsdiff.data.scalers import StandardScaler
from tsdiff.data.series import Series
from tsdiff.data.splits import chronological_split
from tsdiff.data.windows import covering_starts, sliding_starts
from tsdiff.errors import ConfigError, DataError
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
class Protocol:
    """A dataset, its splits and held-out entries, as one reproducible benchmark.

    Every task is conditional generation of the masked part of a window:

    - imputation (``context is None``): the model conditions on the observed entries
      that are not held out (``eval_mask``) and the held-out ones are scored;
    - forecasting (``context`` set): the first ``context`` steps of each window
      condition and the remaining ``window - context`` steps (the horizon) are scored.

    Attributes:
        id: protocol identifier written into every result record.
        series: the raw data in data units, ``[T, N, C]`` with NaN for missing: a
            :class:`Series` in memory, or a lazily read source (``shape``, ``window(start,
            length)``, ``time_index``, ``node_names``, ``channel_names``, ``spatial``,
            ``attrs``; :mod:`tsdiff.data.lazy`), whose windows are read only when a
            :class:`WindowDataset` item asks for them (:attr:`is_lazy`).
        eval_mask: bool ``[T, N, C]``: observed entries hidden from the model in
            validation and test windows and scored there (imputation), or None. With a
            lazy series, anything with ``window(start, length)`` giving those entries of
            a window (e.g. :class:`~tsdiff.data.lazy.HeldOutPoints`).
        window: window length L (context + horizon for forecasting).
        splits: ``{"train": ..., "val": ..., "test": ...}``.
        scaler: fitted on observed values of training windows only.
        checksums: SHA-256 of the source files.
        meta: free-form facts (blocks, realised rates, units, ...). Its optional
            ``config_options`` are data options that ``tsdiff fit`` writes into the model's
            config (a data file's absolute path), so later commands rebuild the same protocol.
        context: forecasting context length, or None for imputation.
        metric_space: ``"data"`` (metrics in data units) or ``"scaled"`` (on the
            normalised values, as the PhysioNet protocol of CSDI).
        sample_length: for independent samples laid end to end (PhysioNet's stays), the steps
            of each; a window's margins (the priors' view beyond its edges) then stop at its
            sample's edges. None: one continuous series.

    Imputation models train with the configured training mask strategy; forecasting
    windows carry their own ``cond_mask`` (the context), so they train on the horizon.
    """

    id: str
    series: Series
    eval_mask: np.ndarray | None
    window: int
    splits: dict[str, SplitWindows]
    scaler: StandardScaler
    checksums: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    context: int | None = None
    metric_space: str = "data"
    sample_length: int | None = None

    def margins(self, start: int) -> tuple[int, int]:
        """Rows ``[lo, hi)`` an imputation window at ``start`` reads with its margins: up to one
        window's length on each side, inside the series and inside the window's sample."""
        L, T = self.window, self.series.shape[0]
        lo, hi = max(0, start - L), min(T, start + 2 * L)
        if self.sample_length:
            first = (start // self.sample_length) * self.sample_length
            lo, hi = max(lo, first), min(hi, first + self.sample_length * -(-(start + L - first) // self.sample_length))
        return lo, hi

    def __post_init__(self) -> None:
        if self.context is None and self.eval_mask is None:
            raise ConfigError(f"protocol {self.id!r}: an imputation protocol needs an eval_mask")
        if self.context is not None and not 0 < self.context < self.window:
            raise ConfigError(f"protocol {self.id!r}: context ({self.context}) must be in 1..window-1 ({self.window - 1})")
        if self.metric_space not in ("data", "scaled"):
            raise ConfigError(f"metric_space must be 'data' or 'scaled', got {self.metric_space!r}")

    @property
    def is_lazy(self) -> bool:
        """True when the series is read window by window from a source (not held in memory)."""
        return not isinstance(self.series, Series)

    def in_memory(self) -> "Protocol":
        """This protocol with the whole series read into memory (itself if it already is).

        The splits, scaler and held-out entries stay the same, so every window is identical;
        for what needs all values at once (the baselines).
        """
        if not self.is_lazy:
            return self
        series = self.series.to_series()
        T = series.shape[0]
        eval_mask = None if self.eval_mask is None else np.asarray(self.eval_mask.window(0, T), dtype=bool)
        return dataclasses.replace(self, series=series, eval_mask=eval_mask)

    @functools.cached_property
    def series_tensors(self) -> dict:
        """The whole series as tensors, built once and shared by every split's windows.

        ``x``: float32 scaled values, 0 where missing; ``observed``: bool; ``raw``:
        float64 data-unit values; ``eval_mask``: bool held-out entries (None for
        forecasting). All ``[T, N, C]``. Not for lazy protocols (:meth:`in_memory`).
        """
        if self.is_lazy:
            raise DataError(f"protocol {self.id!r} reads its data lazily and has no in-memory tensors; "
                            "use protocol.in_memory() to load the whole series")
        values = self.series.values
        T = values.shape[0]
        x = np.empty(values.shape, dtype=np.float32)
        observed = np.empty(values.shape, dtype=bool)
        step = max(1, (1 << 20) // max(1, values[0].size))  # scaled in blocks: no float64 copy of it all
        for a in range(0, T, step):
            x[a:a + step], observed[a:a + step] = scale_window(np.array(values[a:a + step], dtype=np.float64),
                                                                self.scaler)
        return {
            "x": torch.from_numpy(x),
            "observed": torch.from_numpy(observed),
            "raw": torch.from_numpy(np.asarray(values, dtype=np.float64)),
            "eval_mask": None if self.eval_mask is None else torch.from_numpy(self.eval_mask & observed),
        }

    @property
    def task(self) -> str:
        return "imputation" if self.context is None else "forecasting"

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
            "task": self.task,
            "num_nodes": n,
            "num_channels": c,
            "window": self.window,
            "context": self.context,
            "node_names": list(self.series.node_names),
            "channel_names": list(self.series.channel_names),
        }



def fit_scaler_on_windows(series: Series, starts: np.ndarray, window: int) -> StandardScaler:
    """Fit a StandardScaler on the observed values covered by the given windows.

    A lazily read series (not a :class:`Series`) is scanned in time blocks
    (:func:`~tsdiff.data.lazy.fit_scaler_streaming`: the same statistics up to rounding).
    """
    if not isinstance(series, Series):
        return fit_scaler_streaming(series, starts, window)
    covered = np.zeros(series.shape[0], dtype=bool)
    for s in starts:
        covered[s : s + window] = True
    return StandardScaler().fit(series.values[covered])


def imputation_splits(T: int, window: int, fractions=(0.7, 0.1, 0.2)) -> tuple[dict, dict[str, SplitWindows]]:
    """Consecutive train / val / test blocks of ``T`` steps and their windows.

    Training windows slide by one step inside the training block; validation and test
    windows cover their blocks without overlap (each step scored once).

    Returns:
        ``(blocks, splits)``: ``{name: (start, stop)}`` and ``{name: SplitWindows}``.
    """
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ConfigError(f"data.options.window must be an integer >= 1, got {window!r}")
    blocks = chronological_split(T, fractions, min_length=window)
    splits = {"train": SplitWindows(sliding_starts(blocks["train"][1], window, 1))}
    for name in ("val", "test"):
        a, b = blocks[name]
        splits[name] = SplitWindows(*covering_starts(b - a, window, offset=a))
    return blocks, splits


def chronological_imputation_protocol(
    protocol_id: str,
    series: Series,
    window: int,
    held_out,
    *,
    fractions=(0.7, 0.1, 0.2),
    checksums: dict | None = None,
    meta: dict | None = None,
) -> Protocol:
    """Imputation on consecutive train / val / test blocks of the time axis.

    Training windows slide by one step inside the training block; validation and test
    windows cover their blocks without overlap (each held-out value scored once).

    Args:
        held_out: bool ``[T, N, C]`` of entries to hide, or a function of the splits
            ``{"train", "val", "test"} -> SplitWindows`` returning it (for masks aligned
            with the evaluation windows). Entries in the training block and entries
            without a value are never held out.
    Returns:
        the Protocol; ``meta["realised_missing_rate"]`` holds the held-out fraction of
        observed values in the validation and test blocks.
    """
    blocks, splits = imputation_splits(series.shape[0], window, fractions)
    observed = series.observed_mask
    mask = np.asarray(held_out(splits) if callable(held_out) else held_out, dtype=bool) & observed
    mask[: blocks["train"][1]] = False
    rates = {name: float(mask[slice(*blocks[name])].sum() / max(int(observed[slice(*blocks[name])].sum()), 1))
             for name in ("val", "test")}
    return Protocol(
        id=protocol_id,
        series=series,
        eval_mask=mask,
        window=window,
        splits=splits,
        scaler=fit_scaler_on_windows(series, splits["train"].starts, window),
        checksums=checksums or {},
        meta={"realised_missing_rate": rates, "blocks": blocks, **(meta or {})},
    )


class WindowDataset(Dataset):
    """Windows of one split as tensors, in the scaled space.

    Each item is a dict (all ``[L, N, C]`` unless noted):
        ``x``: scaled values, 0 where missing;  ``observed_mask``: bool;
        ``timepoints``: ``[L]`` float positions 0..L-1;  ``start``: int;
        ``anchors``: ``[4, N, C]`` (imputation) the nearest known value of each series before and
            after the window, within one window's length of it, for the priors
            (:class:`~tsdiff.diffusion.priors.EdgeAnchors`; known: observed and not held out).
    Forecasting windows (every split) also give ``cond_mask``: observed entries of
    the first ``context`` steps. Evaluation splits (``score_from`` set) also give
        ``y``: float64 values in data units (NaN where missing), for scoring and for
            returning conditioning values exactly;
        ``cond_mask``: bool, what the model conditions on (observed and not held out,
            or the context for forecasting);
        ``score_mask``: bool, the entries scored in this window (held out, or the
            observed horizon for forecasting).
    """

    def __init__(self, protocol: Protocol, split: str) -> None:
        self.protocol = protocol
        self.split = split
        self.windows = protocol.splits[split]
        self.L = protocol.window
        if not protocol.is_lazy:
            tensors = protocol.series_tensors
            self.x, self.observed, self.raw = tensors["x"], tensors["observed"], tensors["raw"]
            self.eval_mask = tensors["eval_mask"]
        self.in_context = None if protocol.context is None else (torch.arange(self.L) < protocol.context)[:, None, None]
        self.timepoints = torch.arange(self.L, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.windows)

    def _read(self, s: int, scored: bool) -> tuple:
        """``(x, observed, raw, held_out, anchors)`` of the window at ``s``; raw and held_out only
        when scored, anchors only for imputation: ``[4, N, C]``, the priors' view of up to one
        window's length on each side (:class:`~tsdiff.diffusion.priors.EdgeAnchors`; known =
        observed and not held out), the same numbers in memory and read lazily."""
        from tsdiff.diffusion.priors import EdgeAnchors

        p, L = self.protocol, self.L
        imputing = self.in_context is None
        if not p.is_lazy:
            sl = slice(s, s + L)
            held = None if not scored or self.eval_mask is None else self.eval_mask[sl]
            anchors = None
            if imputing:
                lo, hi = p.margins(s)
                known = self.observed[lo:hi] if self.eval_mask is None else self.observed[lo:hi] & ~self.eval_mask[lo:hi]
                anchors = EdgeAnchors(self.x[lo:hi], known).anchors([s - lo], L)[0]
            return self.x[sl], self.observed[sl], self.raw[sl] if scored else None, held, anchors
        lo, hi = p.margins(s) if imputing else (s, s + L)
        raw_all = read_window(p.series, lo, hi - lo)  # one read: the window and its margins
        raw = raw_all[s - lo: s - lo + L].copy() if scored else None  # data units, for scoring only
        x_all, known_all = scale_window(raw_all, p.scaler)
        x = torch.from_numpy(np.ascontiguousarray(x_all[s - lo: s - lo + L]))
        known_all = torch.from_numpy(known_all)
        observed = known_all[s - lo: s - lo + L].clone()
        held, anchors = None, None
        if p.eval_mask is not None and (scored or imputing):
            held_all = torch.from_numpy(np.asarray(p.eval_mask.window(lo, hi - lo), dtype=bool)) & known_all
            held = held_all[s - lo: s - lo + L].clone() if scored else None
            known_all = known_all & ~held_all
        if imputing:
            anchors = EdgeAnchors(torch.from_numpy(x_all), known_all).anchors([s - lo], L)[0]
        return x, observed, None if raw is None else torch.from_numpy(raw), held, anchors

    def __getitem__(self, i: int) -> dict:
        s = int(self.windows.starts[i])
        x, observed, raw, held_out, anchors = self._read(s, self.windows.score_from is not None)
        item = {"x": x, "observed_mask": observed, "timepoints": self.timepoints, "start": s}
        if anchors is not None:
            item["anchors"] = anchors
        if self.in_context is not None:
            item["cond_mask"] = observed & self.in_context
        if self.windows.score_from is None:
            return item
        item["y"] = raw
        if self.in_context is not None:
            score = observed & ~self.in_context
        else:
            item["cond_mask"] = observed & ~held_out
            score = held_out.clone()
        score[: int(self.windows.score_from[i])] = False
        item["score_mask"] = score
        return item


ProtocolBuilder = Callable[..., Protocol]
DATASETS: Registry[ProtocolBuilder] = Registry("dataset")


def build_protocol(name: str, data_dir=None, options: dict | None = None) -> Protocol:
    """Build a registered dataset protocol; ``options`` are checked against its parameters."""
    builder = DATASETS.get(name)
    options = dict(options or {})
    check_options(builder, options, f"dataset {name!r} (data.options)", fixed=("data_dir",))
    return builder(data_dir=data_dir, **options)
