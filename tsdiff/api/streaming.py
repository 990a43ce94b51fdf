"""Imputations of a series read window by window (:meth:`tsdiff.api.imputer.Imputer.imputed_blocks`):
memory follows one batch of windows, not the data, so ``tsdiff impute`` and
:mod:`tsdiff.api.grids` fill files and grids larger than memory."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from tsdiff.api import sampling
from tsdiff.api.panels import SampleRows
from tsdiff.api.sampling import _place
from tsdiff.api.settings import _check_int, _check_sampling
from tsdiff.errors import DataError


def imputed_blocks(imp, source, n_samples: int | None = None, segments=None
                   ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """:meth:`~tsdiff.api.imputer.Imputer.imputed_blocks` of the fitted imputer ``imp``."""
    from tqdm.auto import tqdm

    from tsdiff.data.lazy import read_window
    from tsdiff.data.windows import covering_starts

    imp._fitted()
    n = imp.n_samples if n_samples is None else n_samples
    _check_int("n_samples", n)
    _check_sampling(imp.sampler, imp.sampling_steps, imp.sampler_options, imp.chunk_size)  # set_params
    T, N, C = (int(d) for d in source.shape)
    sig = imp.signature_
    if (N, C) != (int(sig["num_nodes"]), int(sig["num_channels"])):
        raise DataError(f"the data has {N} series x {C} channel(s) but the imputer was fitted on "
                        f"{sig['num_nodes']} x {sig['num_channels']}; pass data of the same shape")
    if segments is None:
        w = min(imp.window_, T)
        starts, score_from = covering_starts(T, w)
        edges = edge_anchors(imp, source, starts, w) if imp.module_.has_prior else None
    else:
        w = min([imp.window_] + [int(n_rows) for _, n_rows in segments])
        cover = [covering_starts(int(n_rows), w) for _, n_rows in segments]
        starts = np.concatenate([int(a) + s for (a, _), (s, _) in zip(segments, cover)])
        score_from = np.concatenate([f for _, f in cover])
        edges = np.concatenate([edge_anchors(imp, SampleRows(source, int(a), int(n_rows)), s, w)
                                for (a, n_rows), (s, _) in zip(segments, cover)]) \
            if imp.module_.has_prior else None
    _place(imp.module_, imp.device)
    gen = torch.Generator(device=imp.module_.device).manual_seed(int(imp.seed_))
    held: list[tuple[int, int, np.ndarray | None]] = []  # windows in order: (start, score_from, raw if sampled)
    anchor_row = {a: k for k, a in enumerate(starts.tolist())}  # starts are distinct

    def flush():
        raws = [r for _, _, r in held if r is not None]
        if raws:
            raw = np.stack(raws)
            anchors = None if edges is None else edges[[anchor_row[a] for a, _, r in held if r is not None]]
            samples = sampling.sample_windows(
                imp.module_, raw, ~np.isnan(raw), n_samples=n, sampler=imp.sampler, steps=imp.sampling_steps,
                seed=imp.seed_, batch_size=len(raws), sampler_options=imp.sampler_options,
                chunk_size=imp.chunk_size, generator=gen, anchors=anchors)
        j = 0
        for a, f, r in held:
            if r is None:  # a window without gaps: re-read its rows, not kept while waiting
                v = read_window(source, a + f, w - f)
                yield a + f, v, np.broadcast_to(v, (n,) + v.shape).copy()
            else:
                v = r[f:]
                yield a + f, v, np.where(np.isnan(v)[None], samples[:, j, f:], v[None])
                j += 1
        held.clear()

    with tqdm(total=len(starts), desc="imputing (windows)", unit="window", disable=not imp.verbose) as bar:
        n_sampled = 0
        for a, f in zip(starts.tolist(), score_from.tolist()):
            v = read_window(source, a, w)
            bar.update(1)
            gap = bool(np.isnan(v).any())
            if not gap and not held:
                yield a + f, v[f:], np.broadcast_to(v[f:], (n, w - f) + v.shape[1:]).copy()
                continue
            held.append((a, f, v if gap else None))
            n_sampled += gap
            if n_sampled == imp.batch_size:
                yield from flush()
                n_sampled = 0
        yield from flush()


def edge_anchors(imp, source, starts, w: int) -> np.ndarray:
    """The prior's view beyond each window: the nearest known scaled value of every series
    before and after it (:func:`~tsdiff.diffusion.priors.stream_edge_anchors`, one pass over
    the source in pieces of at most one window), so a gap that crosses a window's edge is
    bridged as over the whole series, however large the source."""
    from tsdiff.data.lazy import read_window
    from tsdiff.diffusion.priors import stream_edge_anchors

    scaler = imp.module_.scaler

    def read(a: int, n: int):
        raw = read_window(source, a, n)
        known = ~np.isnan(raw)
        return np.where(known, scaler.transform(np.where(known, raw, 0.0)), 0.0), known

    return stream_edge_anchors(read, int(source.shape[0]), starts, w)
