"""Baselines and peers for the benchmark harness, all on the protocol's own test windows.

Every baseline is a factory registered in :data:`BASELINES`::

    factory(protocol, *, seed, **options) -> Predictor

The harness then feeds it the test windows of the protocol, one batch at a time, with
every entry that is not conditioning set to NaN (so a baseline cannot see a held-out
value or the forecast horizon), and scores its samples with the same masks and
metrics as the diffusion models (:func:`tsdiff.bench.runner.evaluate_predictor`).

Deterministic baselines return one sample (``S = 1``). For one sample the normalised
quantile CRPS reduces to ``sum |y - yhat| / sum |y|`` (the MRE), the ensemble CRPS to
the MAE, the energy score to the mean Euclidean error per window, and coverage counts
exact hits only: the scores of a point forecast seen as a one-member ensemble.

Values given to and returned by the predictors are in data units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import warnings

import numpy as np

from tsdiff.data.protocol import Protocol
from tsdiff.errors import ConfigError, DataError
from tsdiff.registry import Registry

#: ``predict(values [B, L, N, C] NaN = not given, cond_mask [B, L, N, C], starts [B])``
#: ``-> samples [S, B, L, N, C]`` in data units.
PredictFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Predictor:
    """A fitted baseline: its predict function and what the record says about it."""

    predict: PredictFn
    n_samples: int = 1
    fit_seconds: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def deterministic(self) -> bool:
        return self.n_samples == 1


@dataclass(frozen=True)
class BaselineSpec:
    """A registered baseline: factory plus the tasks it applies to."""

    factory: Callable[..., Predictor]
    tasks: tuple[str, ...]  # "imputation" and/or "forecasting"
    seeded: bool  # False: results do not depend on the seed (one run is enough)
    description: str
    optional_package: str | None = None


BASELINES: Registry[BaselineSpec] = Registry("baseline")


def register(name: str, tasks: tuple[str, ...], seeded: bool, description: str,
             optional_package: str | None = None):
    def deco(fn):
        BASELINES.add(name, BaselineSpec(fn, tasks, seeded, description, optional_package))
        return fn
    return deco


# ------------------------------------------------------------------ helpers

def train_block_end(protocol: Protocol) -> int:
    """One past the last time step covered by a training window."""
    return int(np.max(protocol.splits["train"].starts)) + protocol.window


def train_rows(protocol: Protocol) -> np.ndarray:
    """Values ``[T', N * C]`` (NaN = missing) of the time steps covered by training windows."""
    covered = np.zeros(protocol.series.shape[0], dtype=bool)
    for s in protocol.splits["train"].starts:
        covered[s : s + protocol.window] = True
    values = protocol.series.values[covered]
    return values.reshape(len(values), -1)


def feature_means(protocol: Protocol) -> np.ndarray:
    """Per-feature training mean ``[N * C]``; the overall training mean where a feature has none."""
    rows = train_rows(protocol)
    counts = np.sum(~np.isnan(rows), axis=0)
    if not counts.any():
        raise DataError(f"protocol {protocol.id!r} has no observed training value")
    sums = np.nansum(rows, axis=0)
    overall = sums.sum() / counts.sum()
    return np.where(counts > 0, sums / np.maximum(counts, 1), overall)


def _flat(values: np.ndarray) -> np.ndarray:
    """``[B, L, N, C] -> [B, L, N * C]``."""
    return values.reshape(values.shape[0], values.shape[1], -1)


def _check_int(name: str, value, low: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ConfigError(f"baseline option {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _subsample(rows: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    if max_rows is None or len(rows) <= max_rows:
        return rows
    idx = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_rows, replace=False))
    return rows[idx]


def _ffill_time(values: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along axis 1 of ``[B, L, F]``; leading NaN stay NaN."""
    out = values.copy()
    for t in range(1, out.shape[1]):
        gap = np.isnan(out[:, t])
        out[:, t][gap] = out[:, t - 1][gap]
    return out


# ------------------------------------------------------------------ imputation

@register("mean", ("imputation", "forecasting"), seeded=False,
          description="per-feature mean of the training observations")
def mean_baseline(protocol: Protocol, *, seed: int = 0) -> Predictor:
    means = feature_means(protocol)

    def predict(values, cond_mask, starts):
        b, l = values.shape[:2]
        return np.broadcast_to(means, (b, l, means.size)).reshape((1,) + values.shape).copy()

    return Predictor(predict)


def interpolate_window(values: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Linear interpolation in time of each feature of ``[L, F]`` (NaN = missing).

    Before the first / after the last given value the nearest given value is held;
    a feature without any value in the window takes ``fallback[f]``.
    """
    out = np.empty_like(values)
    t = np.arange(values.shape[0])
    for f in range(values.shape[1]):
        given = ~np.isnan(values[:, f])
        out[:, f] = np.interp(t, t[given], values[given, f]) if given.any() else fallback[f]
    return out


@register("linear_interpolation", ("imputation",), seeded=False,
          description="linear interpolation in time within each window (training mean if a series is empty)")
def linear_interpolation_baseline(protocol: Protocol, *, seed: int = 0) -> Predictor:
    means = feature_means(protocol)

    def predict(values, cond_mask, starts):
        flat = _flat(values)
        out = np.stack([interpolate_window(w, means) for w in flat])
        return out.reshape((1,) + values.shape)

    return Predictor(predict)


def _sklearn_imputer(protocol: Protocol, imputer, max_train_rows: int | None, seed: int) -> Predictor:
    import time

    rows = _subsample(train_rows(protocol), max_train_rows, seed)
    t0 = time.perf_counter()
    imputer.fit(rows)
    fit_seconds = time.perf_counter() - t0
    means = feature_means(protocol)

    def predict(values, cond_mask, starts):
        flat = _flat(values)
        b, l, f = flat.shape
        out = imputer.transform(flat.reshape(b * l, f)).reshape(b, l, f)
        out = np.where(np.isnan(out), means, out)  # features without any training value
        return out.reshape((1,) + values.shape)

    return Predictor(predict, fit_seconds=fit_seconds, info={"train_rows": int(len(rows))})


@register("knn", ("imputation",), seeded=True,
          description="scikit-learn KNNImputer over time steps (rows) fitted on training rows")
def knn_baseline(protocol: Protocol, *, seed: int = 0, n_neighbors: int = 5, weights: str = "uniform",
                 max_train_rows: int | None = 5000) -> Predictor:
    from sklearn.impute import KNNImputer

    imputer = KNNImputer(n_neighbors=_check_int("n_neighbors", n_neighbors), weights=weights,
                         keep_empty_features=True)
    return _sklearn_imputer(protocol, imputer, max_train_rows, seed)


@register("mice", ("imputation",), seeded=True,
          description="scikit-learn IterativeImputer (MICE, BayesianRidge) fitted on training rows")
def mice_baseline(protocol: Protocol, *, seed: int = 0, max_iter: int = 10, n_nearest_features: int | None = 20,
                  max_train_rows: int | None = 3000) -> Predictor:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    imputer = IterativeImputer(max_iter=_check_int("max_iter", max_iter), n_nearest_features=n_nearest_features,
                               random_state=seed, keep_empty_features=True)
    return _sklearn_imputer(protocol, imputer, max_train_rows, seed)


# ------------------------------------------------------------------ forecasting

def _context(protocol: Protocol) -> int:
    if protocol.context is None:
        raise ConfigError(f"protocol {protocol.id!r} is not a forecasting protocol")
    return int(protocol.context)


@register("persistence", ("forecasting",), seeded=False,
          description="last observed context value of each series, held over the horizon")
def persistence_baseline(protocol: Protocol, *, seed: int = 0) -> Predictor:
    ctx = _context(protocol)
    means = feature_means(protocol)

    def predict(values, cond_mask, starts):
        flat = _ffill_time(_flat(values)[:, :ctx])
        last = np.where(np.isnan(flat[:, -1]), means, flat[:, -1])  # [B, F]
        out = np.repeat(last[:, None, :], values.shape[1], axis=1)
        return out.reshape((1,) + values.shape)

    return Predictor(predict)


@register("seasonal_naive", ("forecasting",), seeded=False,
          description="GluonTS SeasonalNaivePredictor on each series' context window")
def seasonal_naive_baseline(protocol: Protocol, *, seed: int = 0, season_length: int = 1) -> Predictor:
    import pandas as pd
    from gluonts.dataset.common import ListDataset
    from gluonts.model.seasonal_naive import SeasonalNaivePredictor

    ctx = _context(protocol)
    horizon = protocol.window - ctx
    freq = _freq(protocol)
    season_length = _check_int("season_length", season_length)
    predictor = SeasonalNaivePredictor(prediction_length=horizon, season_length=season_length)
    means = feature_means(protocol)
    index = protocol.series.time_index

    def predict(values, cond_mask, starts):
        flat = _ffill_time(_flat(values)[:, :ctx])
        flat = np.where(np.isnan(flat), means, flat)  # a series without any context value
        b, _, f = flat.shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            entries = [{"start": pd.Period(index[int(starts[i])], freq), "target": flat[i, :, j]}
                       for i in range(b) for j in range(f)]
        with warnings.catch_warnings():  # pandas deprecates Periods of business days; GluonTS uses them
            warnings.simplefilter("ignore", FutureWarning)
            ds = ListDataset(entries, freq=freq)
            fc = np.stack([np.asarray(fo.samples)[0] for fo in predictor.predict(ds)])  # [B*F, H]
        out = np.concatenate([flat, fc.reshape(b, f, horizon).transpose(0, 2, 1)], axis=1)
        return out.reshape((1,) + values.shape)

    return Predictor(predict, info={"season_length": season_length})


@register("climatology", ("forecasting",), seeded=False,
          description="ensemble of the training values at the same phase of the season (e.g. hour of day)")
def climatology_baseline(protocol: Protocol, *, seed: int = 0, season_length: int = 24,
                         max_samples: int = 100) -> Predictor:
    """Samples for time step ``t`` of series f: training values ``x[t', f]`` with
    ``t' = t (mod season_length)``, the latest ``K`` of them (same ``K`` for every phase)."""
    season_length = _check_int("season_length", season_length)
    end = train_block_end(protocol)
    values = protocol.series.values.reshape(protocol.series.shape[0], -1)
    per_phase = [np.arange(p, end, season_length) for p in range(season_length)]
    k = min(min(len(ix) for ix in per_phase), _check_int("max_samples", max_samples))
    if k < 1:
        raise ConfigError(f"climatology: the training block ({end} steps) is shorter than season_length "
                          f"({season_length})")
    bank = np.stack([values[ix[-k:]] for ix in per_phase], axis=1)  # [K, season, F]
    means = feature_means(protocol)
    bank = np.where(np.isnan(bank), means, bank)

    def predict(values_, cond_mask, starts):
        b, l = values_.shape[:2]
        t = np.asarray(starts)[:, None] + np.arange(l)[None]  # [B, L]
        out = bank[:, t % season_length]  # [K, B, L, F]
        return out.reshape((k,) + values_.shape)

    return Predictor(predict, n_samples=k, info={"season_length": season_length})


def _freq(protocol: Protocol) -> str:
    import pandas as pd

    index = protocol.series.time_index
    freq = index.freqstr or pd.infer_freq(index[:100])
    if freq is None:
        raise DataError(f"protocol {protocol.id!r}: cannot infer the time frequency of the series")
    return freq


@register("deepar", ("forecasting",), seeded=True,
          description="GluonTS torch DeepAREstimator trained on the training block (short CPU training)")
def deepar_baseline(protocol: Protocol, *, seed: int = 0, max_epochs: int = 5, num_batches_per_epoch: int = 50,
                    n_samples: int = 100, hidden_size: int = 40, num_layers: int = 2, batch_size: int = 32) -> Predictor:
    import tempfile
    import time

    import lightning as L
    import pandas as pd
    from gluonts.dataset.common import ListDataset
    from gluonts.torch import DeepAREstimator

    ctx = _context(protocol)
    horizon = protocol.window - ctx
    freq = _freq(protocol)
    index = protocol.series.time_index
    values = protocol.series.values.reshape(protocol.series.shape[0], -1)
    end = train_block_end(protocol)
    warnings.filterwarnings("ignore", "Period with BDay freq", FutureWarning)
    start = pd.Period(index[0], freq)
    train = ListDataset([{"start": start, "target": values[:end, f], "item_id": str(f)}
                         for f in range(values.shape[1])], freq=freq)
    L.seed_everything(seed, verbose=False)
    estimator = DeepAREstimator(
        freq=freq, prediction_length=horizon, context_length=ctx, num_layers=num_layers, hidden_size=hidden_size,
        batch_size=batch_size, num_batches_per_epoch=_check_int("num_batches_per_epoch", num_batches_per_epoch),
        num_parallel_samples=_check_int("n_samples", n_samples),
        trainer_kwargs={"max_epochs": _check_int("max_epochs", max_epochs), "accelerator": "cpu",
                        "enable_progress_bar": False, "enable_model_summary": False, "logger": False},
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tsdiff-deepar-") as tmp:  # GluonTS' own checkpoint callback
        estimator.trainer_kwargs["default_root_dir"] = tmp
        predictor = estimator.train(train)
    fit_seconds = time.perf_counter() - t0

    def predict(values_, cond_mask, starts):
        b = values_.shape[0]
        f = values.shape[1]
        entries = [{"start": start, "target": values[: int(starts[i]) + ctx, j], "item_id": f"{i}-{j}"}
                   for i in range(b) for j in range(f)]
        L.seed_everything(seed + int(starts[0]), verbose=False)
        fcs = [np.asarray(fo.samples) for fo in predictor.predict(ListDataset(entries, freq=freq))]
        fc = np.stack(fcs).reshape(b, f, n_samples, horizon).transpose(2, 0, 3, 1)  # [S, B, H, F]
        ctx_part = np.repeat(_flat(values_)[None, :, :ctx], n_samples, axis=0)
        return np.concatenate([ctx_part, fc], axis=2).reshape((n_samples,) + values_.shape)

    return Predictor(predict, n_samples=n_samples, fit_seconds=fit_seconds,
                     info={"max_epochs": max_epochs, "num_batches_per_epoch": num_batches_per_epoch})


# ------------------------------------------------------------------ PyPOTS peers

def _pypots_train_set(protocol: Protocol, max_train_windows: int | None, seed: int) -> np.ndarray:
    """Scaled training windows ``[W, L, N * C]`` with NaN where missing."""
    scaled = protocol.scaler.transform(protocol.series.values)
    starts = protocol.splits["train"].starts
    if max_train_windows is not None and len(starts) > max_train_windows:
        starts = np.sort(np.random.default_rng(seed).choice(starts, size=max_train_windows, replace=False))
    windows = np.stack([scaled[s : s + protocol.window] for s in starts])
    return _flat(windows).astype(np.float32)


def _pypots(protocol: Protocol, model_cls, kwargs: dict, seed: int, n_samples: int,
            max_train_windows: int | None) -> Predictor:
    import time

    import torch

    try:
        import pypots  # noqa: F401
    except ImportError:
        raise ConfigError("PyPOTS peers need the optional 'peers' extra: pip install 'tsdiff[peers]'") from None
    torch.manual_seed(seed)
    np.random.seed(seed)
    train = _pypots_train_set(protocol, max_train_windows, seed)
    model = model_cls(n_steps=protocol.window, n_features=train.shape[-1], device="cpu", saving_path=None,
                      verbose=False, **kwargs)
    t0 = time.perf_counter()
    model.fit({"X": train})
    fit_seconds = time.perf_counter() - t0
    scaler = protocol.scaler
    probabilistic = n_samples > 1

    def predict(values, cond_mask, starts):
        x = _flat(scaler.transform(values)).astype(np.float32)
        torch.manual_seed(seed + int(starts[0]))
        if probabilistic:
            out = model.predict({"X": x}, n_sampling_times=n_samples)["imputation"]  # [B, S, L, F]
            out = np.moveaxis(np.asarray(out, dtype=np.float64), 1, 0)
        else:
            out = np.asarray(model.predict({"X": x})["imputation"], dtype=np.float64)[None]
        out = out.reshape((len(out),) + values.shape)
        return scaler.inverse_transform(out)

    return Predictor(predict, n_samples=n_samples, fit_seconds=fit_seconds,
                     info={"train_windows": int(len(train)), **{k: v for k, v in kwargs.items()}})


@register("pypots_saits", ("imputation",), seeded=True, optional_package="pypots",
          description="PyPOTS SAITS (self-attention imputation), short CPU training; deterministic output")
def pypots_saits(protocol: Protocol, *, seed: int = 0, epochs: int = 5, n_layers: int = 2, d_model: int = 64,
                 n_heads: int = 4, d_ffn: int = 128, dropout: float = 0.1, batch_size: int = 32,
                 max_train_windows: int | None = 2000) -> Predictor:
    from pypots.imputation import SAITS

    kwargs = dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_k=d_model // n_heads,
                  d_v=d_model // n_heads, d_ffn=d_ffn, dropout=dropout, batch_size=batch_size,
                  epochs=_check_int("epochs", epochs))
    return _pypots(protocol, SAITS, kwargs, seed, 1, max_train_windows)


@register("pypots_csdi", ("imputation",), seeded=True, optional_package="pypots",
          description="PyPOTS CSDI (diffusion imputation), short CPU training; 50-step ancestral sampling")
def pypots_csdi(protocol: Protocol, *, seed: int = 0, epochs: int = 2, n_layers: int = 4, n_heads: int = 8,
                n_channels: int = 64, n_samples: int = 16, batch_size: int = 16,
                max_train_windows: int | None = 1000) -> Predictor:
    from pypots.imputation import CSDI

    kwargs = dict(n_layers=n_layers, n_heads=n_heads, n_channels=n_channels, d_time_embedding=128,
                  d_feature_embedding=16, d_diffusion_embedding=128, batch_size=batch_size,
                  epochs=_check_int("epochs", epochs))
    return _pypots(protocol, CSDI, kwargs, seed, _check_int("n_samples", n_samples), max_train_windows)
