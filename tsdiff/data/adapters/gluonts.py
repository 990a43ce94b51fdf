"""GluonTS datasets -> :class:`Series`, and samples -> GluonTS ``SampleForecast``.

GluonTS entries are dicts with ``"start"`` (a ``pd.Period``) and ``"target"``
(``[T]`` univariate or ``[C, T]`` multivariate). Univariate entries become the nodes
of one Series on the union of their time axes (NaN where an entry has no value).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.periods import to_period
from tsdiff.data.series import Series
from tsdiff.errors import DataError
from tsdiff.validation import as_float64


def _period(start, freq: str | None) -> pd.Period:
    if isinstance(start, pd.Period):
        return start
    if freq is None:
        raise DataError("entry 'start' is not a pd.Period; pass freq=")
    return pd.Period(start, freq=freq)


def from_gluonts(dataset, freq: str | None = None) -> Series:
    """A GluonTS dataset (``ListDataset``, ``TrainDatasets.train``, any iterable of entries) -> Series.

    Returns:
        Series ``[T, N, 1]`` for N univariate entries, or ``[T, 1, C]`` for one
        multivariate entry with target ``[C, T]``. ``attrs["item_ids"]`` keeps ids.
    """
    entries = list(dataset)
    if not entries:
        raise DataError("the GluonTS dataset is empty")
    targets = [np.asarray(as_float64(e["target"], f"entry {i} 'target'"), dtype=np.float64)
               for i, e in enumerate(entries)]
    starts = [_period(e["start"], freq) for e in entries]
    freqs = {s.freqstr for s in starts}
    if len(freqs) > 1:
        raise DataError(f"entries have different frequencies {sorted(freqs)}; convert them separately")
    ids = [e.get("item_id", i) for i, e in enumerate(entries)]
    if targets[0].ndim == 2:
        if len(entries) != 1:
            raise DataError("several multivariate entries: convert them one at a time")
        t = targets[0].T  # [T, C]
        index = pd.period_range(starts[0], periods=t.shape[0]).to_timestamp()
        return Series(t[:, None, :], index, [str(ids[0])], [str(c) for c in range(t.shape[1])],
                      attrs={"item_ids": ids, "freq": starts[0].freqstr})
    if any(t.ndim != 1 for t in targets):
        raise DataError("mixed univariate and multivariate targets")
    first = min(starts)
    offsets = [(s - first).n for s in starts]
    T = max(o + len(t) for o, t in zip(offsets, targets))
    values = np.full((T, len(entries), 1), np.nan)
    for n, (o, t) in enumerate(zip(offsets, targets)):
        values[o : o + len(t), n, 0] = t
    index = pd.period_range(first, periods=T).to_timestamp()
    return Series(values, index, [str(i) for i in ids], ["target"], attrs={"item_ids": ids, "freq": first.freqstr})


#: GluonTS fields read as covariates: known-future and past-only dynamic real features.
DYNAMIC_FIELDS = {"feat_dynamic_real": "future", "past_feat_dynamic_real": "past"}
#: Static fields, not read by a joint model (a global one reads them: tsdiff.api.panel_covariates).
STATIC_FIELDS = ("feat_static_cat", "feat_static_real")


def covariate_frames(dataset, freq: str | None = None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The dynamic covariates of a GluonTS dataset's entries as wide frames ``(past, future)``.

    Each entry's ``feat_dynamic_real`` ``[K, T']`` (known-future; ``T'`` may pass the target's end,
    covering the forecast horizon, as in GluonTS test sets) and ``past_feat_dynamic_real``
    ``[K, T]`` become columns ``"<item_id>:<field>:<k>"`` on the timestamps from the entries'
    starts. None for a kind no entry has.

    Static features (``feat_static_cat`` / ``feat_static_real``) are not read: the model forecasts
    the training series jointly and learns an embedding of each, so a per-series constant adds
    nothing it can use; a UserWarning says so.

    Raises:
        DataError: a covariate field that not every entry has.
    """
    import warnings

    entries = list(dataset)
    static = sorted({f for e in entries for f in STATIC_FIELDS if e.get(f) is not None})
    if static:
        warnings.warn(f"the GluonTS entries' {static} are not used: the model forecasts its training series jointly "
                      "and learns an embedding of each series in their place (a global model reads them: "
                      "Forecaster(mode='global', static_covariates=['feat_static_cat', 'feat_static_real']))", UserWarning, stacklevel=3)
    out: dict[str, pd.DataFrame | None] = {"past": None, "future": None}
    for kind, frames in entry_covariates(entries, freq).items():
        if frames is not None:
            out[kind] = pd.DataFrame({f"{e.get('item_id', i)}:{col}": frame[col]
                                      for i, (e, frame) in enumerate(zip(entries, frames)) for col in frame.columns})
    return out["past"], out["future"]


def entry_covariates(entries: list, freq: str | None = None) -> dict[str, list[pd.DataFrame] | None]:
    """Each entry's own dynamic covariates: ``{"past": frames, "future": frames}``, one frame per
    entry with columns ``"<field>:<k>"`` (row ``k`` of ``past_feat_dynamic_real`` /
    ``feat_dynamic_real``) on the timestamps from its start, or None for a kind no entry has
    (:func:`covariate_frames` joins them; a global model reads them per series).

    Raises:
        DataError: a covariate field that not every entry has.
    """
    out: dict[str, list[pd.DataFrame] | None] = {"past": None, "future": None}
    for name, kind in DYNAMIC_FIELDS.items():
        have = [e.get(name) is not None for e in entries]
        if not any(have):
            continue
        if not all(have):
            raise DataError(f"{have.count(False)} of {len(entries)} GluonTS entries lack {name!r}; give it to every "
                            "entry or to none")
        frames = []
        for i, e in enumerate(entries):
            values = np.atleast_2d(np.asarray(as_float64(e[name], f"entry {i} {name!r}"), dtype=np.float64))
            index = pd.period_range(_period(e["start"], freq), periods=values.shape[1]).to_timestamp()
            frames.append(pd.DataFrame(values.T, index=index, columns=[f"{name}:{k}" for k in range(len(values))]))
        out[kind] = frames
    return out


def from_train_datasets(datasets) -> dict:
    """GluonTS ``TrainDatasets`` -> ``{"train": Series, "test": Series | None, "prediction_length": int | None}``."""
    meta = getattr(datasets, "metadata", None)
    freq = getattr(meta, "freq", None)
    out = {"train": from_gluonts(datasets.train, freq), "test": None,
           "prediction_length": getattr(meta, "prediction_length", None)}
    if getattr(datasets, "test", None) is not None:
        out["test"] = from_gluonts(datasets.test, freq)
    return out


def to_gluonts_list(series: Series, channel: int = 0):
    """Series -> ``ListDataset`` of N univariate entries (NaN stays NaN)."""
    from gluonts.dataset.common import ListDataset

    start = to_period(series.time_index[0], series.attrs.get("freq") or pd.infer_freq(series.time_index))
    freq = start.freqstr  # the period frequency: MS -> M, QS -> Q-DEC (tsdiff.data.periods)
    ids = series.attrs.get("item_ids") or series.node_names
    return ListDataset(
        [{"start": start, "target": series.values[:, n, channel], "item_id": ids[n]} for n in range(series.shape[1])],
        freq=freq,
    )


def to_sample_forecasts(samples, start, freq: str, item_ids=None, multivariate: bool = False) -> list:
    """Forecast samples -> GluonTS ``SampleForecast`` objects.

    Args:
        samples: ``[S, H, N]`` or ``[S, H, N, 1]`` (numpy or torch), already in data units.
        start: first forecast timestamp.
        multivariate: one forecast with samples ``[S, H, N]`` instead of N univariate
            forecasts with samples ``[S, H]``.
    """
    from gluonts.model.forecast import SampleForecast

    s = samples.detach().cpu().numpy() if hasattr(samples, "detach") else np.asarray(samples)
    if s.ndim == 4:
        if s.shape[-1] != 1:
            raise DataError(f"samples with C={s.shape[-1]} channels: pick one channel first")
        s = s[..., 0]
    if s.ndim != 3:
        raise DataError(f"samples must be [S, H, N] or [S, H, N, 1], got shape {s.shape}")
    period = to_period(start, freq)  # any pandas frequency: MS, QS, BMS... -> their period frequency
    if multivariate:
        return [SampleForecast(samples=s, start_date=period, item_id=None)]
    ids = list(item_ids) if item_ids is not None else list(range(s.shape[2]))
    if len(ids) != s.shape[2]:
        raise DataError(f"{len(ids)} item ids for N={s.shape[2]} series")
    return [SampleForecast(samples=s[:, :, n], start_date=period, item_id=ids[n]) for n in range(s.shape[2])]
