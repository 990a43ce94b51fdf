"""The user-facing Python API: :class:`Forecaster`, :class:`Imputer` and :class:`Forecast`.

Data in, probabilistic answers out, in a few lines::

    fc = tsdiff.Forecaster(prediction_length=24, context_length=48).fit(df)   # wide / long DataFrame,
    forecast = fc.predict(n_samples=100)                                     # xarray, GluonTS, Series
    forecast.to_pandas()          # mean + quantile columns on the future index
    forecast.to_xarray()          # a "sample" dimension + the original coordinates

    imp = tsdiff.Imputer()                     # scikit-learn transformer (rows = time)
    X_filled = imp.fit_transform(X)            # NaN filled, observed values returned bit for bit
    draws = imp.sample(X, 20)                  # [20, T, F] multiple imputations

Both train a registered denoiser (``model=`` any name of :data:`tsdiff.models.MODELS`)
with the Lightning training loop of :class:`~tsdiff.training.module.DiffusionModule`
and sample with any registered sampler. Spatial metadata of the data (a graph, a grid)
is kept in the :class:`~tsdiff.data.series.Series` and handed to models that use it.
Models are saved with :func:`~tsdiff.training.checkpoint.save_model` (loaded with
``torch.load(weights_only=True)``: no code runs on load).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import torch

from tsdiff.data.series import Series
from tsdiff.errors import ConfigError, DataError, TsdiffError
from tsdiff import validation as checks
from tsdiff.config import DEFAULTS as CONFIG_DEFAULTS
from tsdiff.training.recipe import (best_weights_callback, check_validation, ema_callback, parse_duration,
                                    validation_interval, validation_split)
from tsdiff.training.trainer_options import check_trainer_kwargs, trainer_arguments
from tsdiff.forecast import Forecast  # noqa: F401  (defined in tsdiff.forecast, re-exported)
from tsdiff.quantiles import sample_quantile

#: Hyper-parameters used when ``model_options`` leaves them out: small enough to train on a CPU in minutes.
SMALL_MODEL_OPTIONS: dict[str, dict] = {
    "csdi": {"layers": 2, "channels": 32, "heads": 4, "ff_dim": 32, "diffusion_embedding_dim": 64,
             "time_embedding_dim": 32, "feature_embedding_dim": 8},
}
#: From this many features (series x channels, or grid cells x variables) on, CSDI's attention
#: defaults to ``"linear"`` (cost linear in the number of features) unless ``model_options``
#: choose ``attention``, ``spatial`` or ``feature_attention``. Over 1617 ERA5 cells a training
#: step of the small network (batch 4, window 18, one CPU thread) took 75 s and 22 GB with
#: softmax attention, 3.8 s and 1.4 GB with linear (benchmarks/perf/scaling.py).
LINEAR_ATTENTION_FROM = 256
#: Default forward process: 50-step DDPM with a linear schedule to 0.2. CSDI's paper schedule
#: (quadratic to 0.5) amplifies the errors of a briefly trained network a thousandfold at
#: the noisy end; this gentler one keeps short CPU trainings stable. Pass ``process=`` for others.
DEFAULT_PROCESS = {"name": "ddpm", "num_steps": 50, "schedule": "linear", "beta_start": 1.0e-4, "beta_end": 0.2}
#: Optimiser and recipe of Forecaster / Imputer training: the config's ``optim`` defaults (options:
#: :mod:`tsdiff.training.recipe`); ``lr`` comes from the estimator's ``lr``
API_OPTIM = {k: copy.deepcopy(v) for k, v in CONFIG_DEFAULTS["optim"].items() if k != "lr"}
API_FORMAT = "tsdiff-api-v1"
# --------------------------------------------------------------------------- data in
def _is_xarray(obj) -> bool:
    mod = type(obj).__module__
    return mod.startswith("xarray.")


def _is_gluonts(obj) -> bool:
    if hasattr(obj, "train") and hasattr(obj, "metadata"):
        return True
    if isinstance(obj, (list, tuple)) and obj:  # ListDataset is a list of entry dicts
        return all(isinstance(e, dict) and "target" in e and "start" in e for e in obj)
    return type(obj).__module__.startswith("gluonts.")


def check_frame(df: pd.DataFrame, where: str = "data") -> None:
    """Refuse an empty DataFrame or non-numeric columns, naming the column and a bad value."""
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{where} is empty ({df.shape[0]} rows x {df.shape[1]} columns); pass at least one row "
                        "and one numeric column")
    checks.check_columns(df, where)  # unique labels of one kind
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            try:
                num = pd.to_numeric(s, errors="coerce")
            except TypeError:
                num = pd.Series(np.nan, index=s.index)
            bad = s[num.isna() & s.notna()]
            if not len(bad) and not pd.api.types.is_bool_dtype(s) and not isinstance(s.dtype, pd.DatetimeTZDtype) \
                    and not pd.api.types.is_datetime64_any_dtype(s):
                continue  # numbers stored as objects / strings convert exactly
            example = f" (e.g. {bad.iloc[0]!r} at row {bad.index[0]!r})" if len(bad) else ""
            raise DataError(
                f"{where}: column {col!r} is not numeric{example}; convert it with pd.to_numeric(..., "
                "errors='coerce') to turn bad entries into NaN (missing), or drop the column"
            )


def to_series(data, *, freq: str | None = None, graph=None, item_col: str = "item_id",
              time_col: str = "timestamp", variables: list[str] | None = None,
              lazy: bool = False) -> tuple[Series, Any]:
    """Convert user data to the canonical :class:`Series` ``[T, N, C]``.

    Accepted: a wide ``pd.DataFrame`` (DatetimeIndex x one column per series), a long
    DataFrame (columns ``item_col``, ``time_col`` and value columns), a ``pd.Series``,
    an ``xarray`` Dataset / DataArray on a (time, latitude, longitude) grid, a GluonTS
    dataset (or ``TrainDatasets``: its ``train`` part), a ``[T]`` / ``[T, N]`` / ``[T, N, C]``
    numpy array (with ``freq``), or a :class:`Series`. ``graph`` (a dense ``[N, N]``
    adjacency, a scipy sparse matrix or a :class:`~tsdiff.data.spatial.GraphSpatial`)
    becomes ``series.spatial``.

        lazy: with a dask-backed xarray object (``xr.open_dataset(path, chunks={})``),
            return its :class:`~tsdiff.data.adapters.grid.GridSource` as the series too,
            without reading any value (windows are read when used; not with ``graph``).
    Returns:
        ``(series, grid_source)``; ``grid_source`` is the
        :class:`~tsdiff.data.adapters.grid.GridSource` of xarray input (to rebuild
        xarray output with the original coordinates), else None.
    Raises:
        DataError: empty data, non-numeric columns, irregular timestamps, ...
    """
    from tsdiff.data.adapters import frames

    checks.check_freq(freq)
    checks.refuse_scipy_sparse(data)
    source = None
    if isinstance(data, Series):
        series = data
    elif isinstance(data, pd.Series):
        return to_series(data.to_frame(data.name if data.name is not None else "value"), freq=freq, graph=graph)
    elif isinstance(data, pd.DataFrame):
        if item_col in data.columns and time_col in data.columns:
            if data.shape[0] == 0:
                raise DataError("the long DataFrame is empty (0 rows)")
            check_frame(data.drop(columns=[item_col, time_col]), "long DataFrame")
            series = frames.from_long_dataframe(data, item_col, time_col, freq=freq)
        else:
            check_frame(data, "DataFrame")
            if not isinstance(data.index, pd.DatetimeIndex):
                raise DataError(
                    "a wide DataFrame needs a DatetimeIndex (one row per time step); set it with "
                    "df.set_index(pd.to_datetime(df['date'])), or pass a long frame with columns "
                    f"{item_col!r}, {time_col!r}"
                )
            series = frames.from_wide_dataframe(data, freq=freq)
    elif _is_xarray(data):
        from tsdiff.data.adapters.grid import GridSource

        if getattr(data, "sizes", None) is not None and any(v == 0 for v in data.sizes.values()):
            raise DataError(f"the xarray object is empty (sizes {dict(data.sizes)})")
        source = GridSource(data, variables)
        if lazy and graph is None and all(f.chunks is not None for f in source.fields):
            return source, source  # dask-backed: read nothing now
        series = source.to_series()
        series.attrs["freq"] = freq or (pd.infer_freq(series.time_index) if len(series.time_index) >= 3 else None)
    elif isinstance(data, np.ndarray):
        if data.size == 0:
            raise DataError(f"the array is empty (shape {data.shape})")
        series = frames.from_numpy(data, freq=freq or "h")
    elif _is_gluonts(data):
        from tsdiff.data.adapters.gluonts import from_gluonts

        series = from_gluonts(data.train if hasattr(data, "train") and hasattr(data, "metadata") else data, freq)
    else:
        raise DataError(
            f"cannot use data of type {type(data).__name__}; pass a pandas DataFrame (wide or long), an xarray "
            "Dataset/DataArray, a GluonTS dataset, a numpy array or a tsdiff Series"
        )
    if series.shape[0] == 0 or series.shape[1] == 0:
        raise DataError(f"the data is empty (shape [T, N, C] = {series.shape})")
    if graph is not None:
        series.spatial = _graph(graph, series)
    return series, source


def _last_steps(series, n: int) -> Series:
    """The last ``n`` steps as a :class:`Series` (read from a lazy source, or a view)."""
    from tsdiff.data.lazy import read_series

    T = series.shape[0]
    return series.slice_time(T - n, T) if isinstance(series, Series) else read_series(series, T - n)


def _graph(graph, series: Series):
    from tsdiff.data.adapters.graph import from_dense, from_scipy
    from tsdiff.data.spatial import GraphSpatial

    n = series.shape[1]
    if isinstance(graph, GraphSpatial):
        graph.check_nodes(n)
        return graph
    if hasattr(graph, "tocoo"):
        return from_scipy(graph, list(series.node_names), num_nodes=n)
    return from_dense(np.asarray(graph), list(series.node_names), num_nodes=n)


# --------------------------------------------------------------------------- model building, training, sampling
def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _model_config(model: str, options: dict | None, num_features: int = 1) -> dict:
    from tsdiff.models import MODELS

    MODELS.get(model)  # unknown name -> UnknownNameError listing the valid names
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"model_options must be a dict of hyper-parameters, got {type(options).__name__}")
    defaults = dict(SMALL_MODEL_OPTIONS.get(model, {}))
    if (model == "csdi" and num_features >= LINEAR_ATTENTION_FROM
            and not {"attention", "spatial", "feature_attention"} & set(options or {})):
        defaults["attention"] = "linear"
    return {"name": model, **defaults, **(options or {})}


def _process_config(process: dict | None) -> dict:
    if process is not None and not isinstance(process, dict):
        raise ConfigError(f"process must be a dict (name + options), got {type(process).__name__}")
    out = dict(DEFAULT_PROCESS)
    if process and process.get("name", "ddpm") != "ddpm":
        out = {}
    out.update(process or {})
    return out


def _check_int(name: str, value, low: int = 1, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}{' or None' if allow_none else ''}, got {value!r}")


def _check_sampling(sampler: str, steps, sampler_options, chunk_size) -> None:
    """Sampling settings as sampling would check them (names and option names), before any training."""
    from tsdiff.diffusion.components import build_sampler
    from tsdiff.training.module import sampler_config

    if sampler_options is not None and not isinstance(sampler_options, dict):
        raise ConfigError(f"sampler_options must be a dict of sampler options (e.g. {{'spacing': 'log_snr'}}) or "
                          f"None, got {type(sampler_options).__name__}")
    _check_int("chunk_size", chunk_size, allow_none=True)
    build_sampler(sampler, **sampler_config(steps, options=sampler_options))


#: At most this many held-out windows are scored at each validation check (evenly spread).
MAX_VAL_WINDOWS = 64


def _spread(starts: np.ndarray, limit: int = MAX_VAL_WINDOWS) -> np.ndarray:
    """At most ``limit`` of ``starts``, evenly spread over them (all when there are fewer)."""
    if len(starts) <= limit:
        return starts
    return starts[np.unique(np.linspace(0, len(starts) - 1, limit).round().astype(np.int64))]


def _seed(random_state) -> int:
    return checks.seed_from(random_state)  # ConfigError on a bad random_state


@contextlib.contextmanager
def _quiet(verbose: bool):
    """Silence Lightning's informational logging unless ``verbose``."""
    names = ["lightning.pytorch", "lightning.fabric", "lightning"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _prior_config(prior) -> dict:
    """The prior section of a ``prior=`` argument (a name or a dict), checked."""
    from tsdiff.diffusion.priors import build_prior, prior_scale_option

    section = {"name": prior} if isinstance(prior, str) or prior is None else prior
    if section is None or not isinstance(section, dict):
        raise ConfigError(f"prior must be a prior name or a dict like {{'name': 'seasonal', 'season': 24}}, "
                          f"got {prior!r}")
    section = {"name": "none", **section}
    build_prior(section)
    prior_scale_option(section)
    return section


def _forecast_prior(prior, freq, context: int):
    """The Forecaster's prior section. ``"seasonal"`` without a season takes it from the data's
    frequency (GluonTS's seasonality, :func:`gluonts.time_feature.get_seasonality`: 24 for
    hourly data, 5 for business days, 12 for monthly, 1 for daily), or 1 (persistence) where the
    data has no frequency or the context holds no whole season. A season given explicitly must
    fit in the context."""
    section = {"name": prior} if isinstance(prior, str) else prior
    if not (isinstance(section, dict) and section.get("name") == "seasonal"):
        return prior
    if "season" not in section:
        from gluonts.time_feature import get_seasonality

        season = int(get_seasonality(str(freq))) if freq is not None else 1
        return {**section, "season": season if season <= context else 1}
    season = section["season"]
    if isinstance(season, int) and not isinstance(season, bool) and season > context:
        raise ConfigError(f"prior 'seasonal' has season {season} steps, longer than the context_length of "
                          f"{context}: the context holds no whole season to repeat; use context_length >= {season}"
                          " or prior='last_value'")
    return section


def _build_module(model_cfg: dict, process_cfg: dict, signature: dict, scaler, *, lr: float, train_mask: str,
                  config: dict, spatial=None, prior=None):
    from tsdiff.training.module import DiffusionModule

    kwargs = dict(model=model_cfg, process=process_cfg, optim={**API_OPTIM, "lr": float(lr)},
                  train_mask=train_mask, signature=signature, scaler=scaler.state_dict(), config=config,
                  prior=_prior_config(prior))
    if spatial is not None:
        if not _accepts(DiffusionModule.__init__, "spatial"):  # pragma: no cover - older module
            raise ConfigError("this tsdiff version cannot train on graph / grid metadata")
        from tsdiff.training.spatial_state import spatial_state

        kwargs["spatial"] = spatial_state(spatial)
    return DiffusionModule(**kwargs)


def _place(module, device_setting) -> torch.device:
    """Move ``module`` to the device ``device_setting`` names (``"auto"``, ``"cpu"``, ``"gpu"``,
    ``"cuda:1"``; see :func:`tsdiff.training.devices.resolve_device`) and return that device."""
    from tsdiff.training.devices import resolve_device

    device = resolve_device(device_setting)
    if module.device != device:
        module.to(device)
    return device


def _train(module, dataset, *, batch_size: int, max_steps: int, seed: int, progress: bool,
           device: torch.device, max_time=None, val_dataset=None, early_stopping: int | None = None,
           trainer_kwargs: dict | None = None) -> dict:
    """Train ``module`` for ``max_steps`` optimiser steps, or until ``max_time`` (a duration, see
    :func:`tsdiff.training.recipe.parse_duration`) if that comes first, with Lightning (seeded,
    no files written) on ``device``, and leave it there (Lightning hands it back on the CPU).

    With ``val_dataset`` the validation loss is computed every
    :func:`~tsdiff.training.recipe.validation_interval` steps and the weights with the lowest one
    are kept; ``early_stopping`` (a patience in checks) also stops training when it stalls.
    ``trainer_kwargs`` (checked by :func:`~tsdiff.training.trainer_options.check_trainer_kwargs`) are
    further ``lightning.Trainer`` arguments; their callbacks run after the estimator's own.

    Returns:
        ``{"n_steps": optimiser steps run, "best_step": step of the kept weights, "best_val_loss": their
        validation loss}`` (the last two None without ``val_dataset``, or when no check ran).
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping
    from torch.utils.data import DataLoader

    from tsdiff.training.devices import lightning_placement

    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    with _quiet(progress), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*val_dataloader.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        torch.manual_seed(seed)
        callbacks = [checks.divergence_callback(module.hparams["optim"]["lr"])]
        best = None
        validation = {"limit_val_batches": 0}
        val_loader = None
        if val_dataset is not None:
            best = best_weights_callback()
            callbacks.append(best)  # before the EMA: it sees the averaged weights during validation
            if early_stopping is not None:
                callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=early_stopping))
            val_loader = DataLoader(val_dataset, batch_size=min(batch_size, len(val_dataset)), shuffle=False)
            validation = {"val_check_interval": validation_interval(max_steps), "check_val_every_n_epoch": None}
        if module.optim.get("ema") is not None:
            callbacks.append(ema_callback(module.optim["ema"]))
        base = dict(max_steps=max_steps, max_epochs=-1, max_time=parse_duration(max_time), logger=False,
                    enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
                    num_sanity_val_steps=0, **validation, **lightning_placement(device))
        trainer = L.Trainer(**trainer_arguments(base, callbacks, trainer_kwargs))
        trainer.fit(module, train_dataloaders=loader, val_dataloaders=val_loader)
    summary = {"n_steps": int(trainer.global_step), "best_step": None, "best_val_loss": None}
    if best is not None and best.state is not None:
        best.restore(module)
        summary.update(best_step=best.step, best_val_loss=best.best)
    checks.check_trained(module)  # a diverged training is an error, never NaN output
    module._trainer = None  # keep the fitted module picklable and free of the trainer
    module.to(device)  # sampling runs where the module is
    module.eval()
    return summary


def sample_windows(module, raw: np.ndarray, cond_mask: np.ndarray, *, n_samples: int, sampler: str = "ddpm",
                   steps: int | None = None, seed: int = 0, batch_size: int = 16, progress: bool = False,
                   desc: str = "sampling", generator: torch.Generator | None = None, anchors=None,
                   **sample_options) -> np.ndarray:
    """Conditional samples of a batch of windows, in data units.

    Args:
        module: a trained :class:`~tsdiff.training.module.DiffusionModule`.
        raw: float64 ``[B, L, N, C]`` values in data units (NaN = missing).
        cond_mask: bool ``[B, L, N, C]``: entries to condition on (must be observed).
        generator: the noise generator to draw from (default: a new one seeded with ``seed``);
            passing the same one to successive calls continues its stream, so batches
            sampled call by call equal those of one call over all windows.
        anchors: ``[B, 4, N, C]`` the nearest known scaled values outside each window, for the
            model's prior (:class:`~tsdiff.diffusion.priors.EdgeAnchors`), or None.
        sample_options: further arguments of :meth:`DiffusionModule.sample
            <tsdiff.training.module.DiffusionModule.sample>`: ``eta``, ``sampler_options``
            (e.g. ``{"spacing": "log_snr"}``), ``chunk_size``, ``conditioning``,
            ``conditioning_options``.
    Returns:
        float64 ``[S, B, L, N, C]``; on ``cond_mask`` entries exactly ``raw`` (bit for bit).

    The module hands its graph / grid (kept from training) to the network itself.
    """
    from tqdm.auto import tqdm

    from tsdiff.training.evaluate import to_data_units

    raw = np.asarray(raw, dtype=np.float64)
    cond_mask = np.asarray(cond_mask, dtype=bool) & ~np.isnan(raw)
    B, L = raw.shape[:2]
    scaled = np.where(cond_mask, module.scaler.transform(np.where(cond_mask, raw, 0.0)), 0.0).astype(np.float32)
    device = module.device
    gen = generator if generator is not None else torch.Generator(device=device).manual_seed(int(seed))
    out = np.empty((n_samples,) + raw.shape, dtype=np.float64)
    tp = torch.arange(L, dtype=torch.float32, device=device)
    # a context manager: an error mid-way closes the bar first, so its message starts on a new line
    with tqdm(total=B * n_samples, desc=f"{desc} (windows x samples)", unit="path", disable=not progress) as bar:
        for lo in range(0, B, batch_size):
            hi = min(lo + batch_size, B)
            x = torch.from_numpy(scaled[lo:hi]).to(device)
            m = torch.from_numpy(cond_mask[lo:hi]).to(device)
            anc = None if anchors is None else torch.as_tensor(anchors[lo:hi], dtype=torch.float32).to(device)
            s, _ = module.sample(x, m, tp.expand(hi - lo, L), n_samples=n_samples, sampler=sampler, steps=steps,
                                 generator=gen, anchors=anc, **sample_options)
            checks.check_finite_samples(s, (module.hparams.get("optim") or {}).get("lr"))
            out[:, lo:hi] = to_data_units(s, raw[lo:hi], cond_mask[lo:hi], module.scaler)
            bar.update((hi - lo) * n_samples)
    checks.check_finite_gaps(out, "the samples")
    return out


def _api_params(obj) -> dict:
    """The constructor arguments as model files keep them: ``trainer_kwargs`` (callbacks, loggers:
    objects, not data) is a training-time setting and is stored as None."""
    return {k: None if k == "trainer_kwargs" else copy.deepcopy(getattr(obj, k))
            for k in inspect.signature(type(obj).__init__).parameters if k != "self"}


def _plain_label(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def _load_device(saved, requested, path) -> str:
    """The device setting of a loaded model: ``requested`` if given, else the saved one; a saved
    GPU setting on a machine without CUDA becomes ``"cpu"`` with a warning (a file trained on a
    GPU must load anywhere), while a GPU requested here without CUDA is an error."""
    if requested is not None:
        return requested
    saved = "auto" if saved is None else saved
    if str(saved).lower() not in ("auto", "cpu") and not torch.cuda.is_available():
        warnings.warn(f"{path} was saved with device={saved!r}, but CUDA is not available here; it samples on the "
                      "CPU (pass device= to load() to choose)", stacklevel=3)
        return "cpu"
    return saved


def _load_api(path, kind: str):
    from tsdiff.training.checkpoint import load_model

    module, extra = load_model(path)
    api = extra.get("api") or {}
    if api.get("format") != API_FORMAT:
        return module, None
    if api.get("kind") != kind:
        raise TsdiffError(f"{path} holds a tsdiff {api.get('kind')}, not a {kind}; load it with "
                          f"tsdiff.{api.get('kind')}.load()")
    return module, api


# --------------------------------------------------------------------------- Forecaster
try:  # scikit-learn is a dependency; keep the import local to the estimators' bases
    from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
except ImportError:  # pragma: no cover
    BaseEstimator = object
    OneToOneFeatureMixin = TransformerMixin = object


class Forecaster(BaseEstimator):
    """Probabilistic forecaster: a conditional diffusion model over ``context + horizon`` windows.

    A dask-backed xarray grid (``xr.open_dataset(path, chunks={})``) is never loaded whole:
    ``fit`` fits the scaler in one streaming pass and reads each training window when a
    batch needs it, and ``predict`` reads only the last ``context_length`` steps.

    Args:
        model: registered denoiser name (``"csdi"``; graph / grid models use the data's
            ``spatial``). ``model_options`` override its hyper-parameters
            (:data:`SMALL_MODEL_OPTIONS` by default: a small CPU-sized network; from
            :data:`LINEAR_ATTENTION_FROM` features on, CSDI uses linear attention).
        prediction_length: H, steps to forecast.
        context_length: steps of history the model sees (default ``2 * H``).
        process: forward process config (default :data:`DEFAULT_PROCESS`: 50-step DDPM, linear
            schedule to 0.2).
        max_steps: optimiser steps of training.
        max_time: a time budget for training, e.g. ``"5min"``, ``"90s"``, ``"00:00:05:00"``, seconds
            or a ``timedelta``: training stops after ``max_steps`` or ``max_time``, whichever comes
            first (the learning-rate schedule is laid out over ``max_steps``). None: no budget.
        validation: fraction of the data held out at its end (the last windows in time, at least
            one) to pick the weights: the validation loss is computed 20 times over ``max_steps``
            (at most every 50 steps) and the weights with the lowest one are kept. None: train on
            everything and keep the last weights.
        early_stopping: with ``validation``, stop when the validation loss has not improved for
            this many checks (None: run to ``max_steps`` / ``max_time``).
        trainer_kwargs: further ``lightning.Trainer`` arguments, e.g. ``{"callbacks":
            [EarlyStopping("val_loss", patience=3)], "logger": CSVLogger("logs"),
            "accumulate_grad_batches": 2}``; callbacks run after tsdiff's own. ``max_steps``,
            ``max_time`` and the device are the estimator's parameters. Used by ``fit`` only: model
            files do not keep them (loggers and callbacks are not data).
        batch_size, lr: training settings; ``train_stride`` spaces the training windows.
        n_samples, sampler, sampling_steps: defaults of :meth:`predict`.
        sampler_options: the sampler's further options, e.g. ``{"spacing": "log_snr"}`` for a
            few-step ``ddpm`` sampler, or ``{"eta": 0.5}`` for ``ddim``.
        chunk_size: (window, sample) pairs per network pass (default: 64 on CPU, 2048 on
            GPU); bounds the memory of sampling.
        freq: pandas frequency of the data (default: inferred).
        prior: informative prior of the horizon (:mod:`tsdiff.diffusion.priors`): ``"last_value"``
            (persistence), ``"seasonal"`` (seasonal naive, the season taken from the frequency as
            GluonTS does: 24 for hourly data, 12 for monthly, 1 (persistence) for daily data, for
            data without a frequency and where ``context_length`` holds no whole season), or
            ``{"name": "seasonal", "season": 24}`` (a season longer than ``context_length`` is an
            error), ``"none"``; the model then learns the residual from it. Default
            ``"seasonal"``: with 500 steps, CRPS 0.76x seasonal naive's MAE on ETTh1 (season 24)
            and on the exchange rates (season 5; 0.86x persistence), where ``"none"`` gave 1.28x
            and 1.31x
            (``benchmarks/accuracy/forecaster_tables.py --part tune``; records in
            ``benchmarks/records/accuracy/``).
        random_state: seed of training and sampling.
        verbose: show Lightning's training bar and the sampling bar.
        device: where training and sampling run: ``"auto"`` (a CUDA GPU when available, else
            the CPU), ``"cpu"``, ``"gpu"`` or a device such as ``"cuda:1"``. A GPU asked for
            where CUDA is not available is an error, not a silent fall-back.
        progress: deprecated name of ``verbose`` (a FutureWarning when ``fit`` or ``predict``
            uses it; when set, it wins over ``verbose``); removed in the next release.

    A scikit-learn ``BaseEstimator``: ``get_params(deep=True)``, ``set_params(**params)`` (an
    unknown name is a ConfigError, a ValueError, listing the valid ones) and ``sklearn.base.clone`` work on
    the constructor arguments, which are stored unchanged.
    """

    def __init__(self, model: str = "csdi", prediction_length: int = 24, context_length: int | None = None, *,
                 model_options: dict | None = None, process: dict | None = None, max_steps: int = 500,
                 max_time=None, validation: float | None = None, early_stopping: int | None = None,
                 trainer_kwargs: dict | None = None, batch_size: int = 16, lr: float = 1.0e-3, train_stride: int = 1,
                 n_samples: int = 100,
                 sampler: str = "ddpm", sampling_steps: int | None = None, sampler_options: dict | None = None,
                 chunk_size: int | None = None, freq: str | None = None, prior="seasonal", random_state: int = 0,
                 verbose: bool = True, device: str = "auto", progress: bool | None = None) -> None:
        self.model = model
        self.prediction_length = prediction_length
        self.context_length = context_length
        self.model_options = model_options
        self.process = process
        self.max_steps = max_steps
        self.max_time = max_time
        self.validation = validation
        self.early_stopping = early_stopping
        self.trainer_kwargs = trainer_kwargs
        self.batch_size = batch_size
        self.lr = lr
        self.train_stride = train_stride
        self.n_samples = n_samples
        self.sampler = sampler
        self.sampling_steps = sampling_steps
        self.sampler_options = sampler_options
        self.chunk_size = chunk_size
        self.freq = freq
        self.prior = prior
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.progress = progress
        self.module_ = None
        self.series_ = None
        self.source_ = None
        self.signature_: dict | None = None

    @property
    def context(self) -> int:
        return self.context_length if self.context_length is not None else 2 * self.prediction_length

    def set_params(self, **params) -> "Forecaster":
        """Set constructor arguments (scikit-learn); an unknown name is a ConfigError listing the valid ones."""
        from tsdiff.sklearn_compat import check_param_names

        check_param_names(self, params)
        return super().set_params(**params)

    def _verbose(self, override: bool | None = None) -> bool:
        """Whether to show progress bars: ``override`` if given, else ``verbose`` (or its deprecated alias)."""
        from tsdiff.deprecation import renamed

        if override is not None:
            return bool(override)
        return bool(self.verbose if self.progress is None else renamed("Forecaster", "progress", self.progress,
                                                                        None, stacklevel=4))

    def _validate_settings(self) -> None:
        _check_int("prediction_length", self.prediction_length)
        _check_int("context_length", self.context_length, allow_none=True)
        for name in ("max_steps", "batch_size", "train_stride", "n_samples"):
            _check_int(name, getattr(self, name))
        parse_duration(self.max_time)
        check_validation(self.validation, self.early_stopping)
        check_trainer_kwargs(self.trainer_kwargs, self.validation)
        _check_int("sampling_steps", self.sampling_steps, allow_none=True)
        _check_sampling(self.sampler, self.sampling_steps, self.sampler_options, self.chunk_size)
        checks.check_lr(self.lr)
        checks.check_random_state(self.random_state)
        checks.check_freq(self.freq)

    def fit(self, data, graph=None, **data_options) -> "Forecaster":
        """Train on ``data`` (every window of ``context + prediction_length`` steps).

        As :meth:`Imputer.fit`, a series (or channel) with no observed value is refused with a
        DataError, and so are scipy sparse matrices and values float64 cannot hold exactly;
        a numpy masked array's masked entries are missing. :meth:`predict` (like
        :meth:`Imputer.transform`) accepts history in which a series is missing throughout:
        its values then come from the trained model and the other series.

        Args:
            data: DataFrame (wide / long), xarray grid, GluonTS dataset, numpy array or Series.
            graph: optional adjacency ``[N, N]`` (dense / scipy / GraphSpatial) for graph models.
            data_options: passed to :func:`to_series` (``item_col``, ``time_col``, ``variables``).
        """
        from tsdiff.data.forecasting import build_forecasting_protocol
        from tsdiff.data.splits import forecast_starts

        from tsdiff.training.devices import resolve_device

        self._validate_settings()
        device = resolve_device(self.device)  # before anything slow
        series, source = to_series(data, freq=self.freq, graph=graph, lazy=True, **data_options)
        H, ctx = self.prediction_length, self.context
        T = series.shape[0]
        if T < ctx + H:
            raise DataError(f"the data has {T} time steps but one training window needs context_length + "
                            f"prediction_length = {ctx} + {H} = {ctx + H}; use shorter lengths or more data")
        if isinstance(series, Series) and np.isnan(series.values).all():
            raise DataError("the data has no observed value (all NaN)")
        if isinstance(series, Series):  # as Imputer.fit: a series with no value gives nothing to learn from
            empty = np.isnan(series.values).all(axis=0)
            if empty.any():
                n, c = (int(i) for i in np.argwhere(empty)[0])
                what = f"series {series.node_names[n]!r}" + (f" channel {series.channel_names[c]!r}"
                                                            if series.shape[2] > 1 else "")
                raise DataError(f"{what} has no observed value (all NaN); drop that column or fill it another "
                                "way")
        starts = forecast_starts(T, ctx, H, stride=self.train_stride)
        last = np.asarray([T - ctx - H], dtype=np.int64)
        held = last
        if self.validation is not None:  # forecasts of the held-out tail, from context before or in it
            cut = validation_split(T, self.validation, H)
            held = _spread(starts[starts + ctx >= cut])
            starts = starts[starts + ctx + H <= cut]
            if not len(starts) or not len(held):
                raise DataError(f"validation={self.validation} leaves no whole training window of context_length + "
                                f"prediction_length = {ctx + H} steps before the held-out last {T - cut} of {T} "
                                "steps; use validation=None or more data")
        protocol = build_forecasting_protocol("api-forecaster", series, ctx, H, starts, held, last)
        freq = series.attrs.get("freq") or self.freq or pd.infer_freq(series.time_index)
        seed = _seed(self.random_state)
        signature = {**protocol.signature, "freq": freq, "columns": [_plain_label(c) for c in
                                                                      series.attrs.get("columns", series.node_names)],
                     "spatial": getattr(series.spatial, "kind", None),
                     "grid_shape": list(getattr(series.spatial, "shape", ()) or []) if source is not None else None}
        config = {"seed": seed, "api": {"kind": "Forecaster", "params": _api_params(self)}}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = _build_module(_model_config(self.model, self.model_options, series.shape[1] * series.shape[2]),
                                   _process_config(self.process),
                                   signature, protocol.scaler, lr=self.lr, train_mask="random", config=config,
                                   spatial=series.spatial, prior=_forecast_prior(self.prior, freq, ctx))
        self.training_ = _train(module, protocol.dataset("train"), batch_size=self.batch_size,
                                max_steps=self.max_steps, max_time=self.max_time, seed=seed,
                                progress=self._verbose(), device=device,
                                val_dataset=protocol.dataset("val") if self.validation is not None else None,
                                early_stopping=self.early_stopping, trainer_kwargs=self.trainer_kwargs)
        self.module_, self.series_, self.source_, self.signature_ = module, series, source, signature
        return self

    def _check_fitted(self) -> None:
        if self.module_ is None:
            raise TsdiffError("this Forecaster is not fitted yet; call fit(data) or Forecaster.load(path) first")

    def check_data(self, series: Series) -> None:
        """Refuse data whose series, channels or frequency differ from the training data."""
        from tsdiff.training.checkpoint import check_signature

        sig = self.signature_
        data_sig = {"num_nodes": series.shape[1], "num_channels": series.shape[2],
                    "node_names": list(series.node_names), "channel_names": list(series.channel_names)}
        if sig.get("num_nodes") != data_sig["num_nodes"]:
            raise DataError(f"the data has {data_sig['num_nodes']} series/nodes but the model was trained on "
                            f"{sig.get('num_nodes')}; pass data with the same series (columns) as in fit")
        if sig.get("node_names") != data_sig["node_names"]:
            extra = sorted(set(data_sig["node_names"]) - set(sig["node_names"]))[:3]
            lack = sorted(set(sig["node_names"]) - set(data_sig["node_names"]))[:3]
            raise DataError(f"the data's columns/series differ from the trained model's (new: {extra}, missing: "
                            f"{lack}, or a different order); pass the same columns in the same order as in fit")
        check_signature(sig, data_sig)
        if series.spatial is not None:
            from tsdiff.training.spatial_state import check_same_spatial

            check_same_spatial(self.module_.hparams.get("spatial"), series.spatial)
        freq = series.attrs.get("freq") or (pd.infer_freq(series.time_index) if series.shape[0] >= 3 else None)
        if freq is not None and sig.get("freq") is not None and pd.tseries.frequencies.to_offset(freq) != \
                pd.tseries.frequencies.to_offset(sig["freq"]):
            raise DataError(f"the data has frequency {freq!r} but the model was trained on {sig['freq']!r} data; "
                            f"resample it (df.resample({sig['freq']!r}).mean()) or train a new model")

    def predict(self, data=None, *, n_samples: int | None = None, sampler: str | None = None,
                sampling_steps: int | None = None, sampler_options: dict | None = None,
                random_state: int | None = None, verbose: bool | None = None, graph=None,
                steps: int | None = None, progress: bool | None = None) -> Forecast:
        """Forecast the ``prediction_length`` steps after the end of ``data``.

        Args:
            data: history to condition on (same series / frequency as in fit); default:
                the training data. Only its last ``context_length`` steps are used.
            n_samples: sample paths (default: the constructor's).
            sampler / sampling_steps: any registered sampler and its number of steps (default:
                the constructor's).
            sampler_options: the sampler's further options (default: the constructor's when
                ``sampler`` is not given or is the constructor's sampler, else none).
            verbose: show the sampling bar (default: the constructor's ``verbose``).
            steps, progress: deprecated names of ``sampling_steps`` and ``verbose`` (a
                FutureWarning); removed in the next release.
        Returns:
            :class:`Forecast` with ``samples`` ``[S, H, N(, C)]`` in data units.
        """
        from tsdiff.deprecation import renamed

        sampling_steps = renamed("Forecaster.predict", "steps", steps, sampling_steps)
        verbose = renamed("Forecaster.predict", "progress", progress, verbose)
        self._check_fitted()
        n = checks.check_n_samples(self.n_samples if n_samples is None else n_samples)
        if random_state is not None:
            checks.check_random_state(random_state)
        if data is None:
            if self.series_ is None:
                raise DataError("this Forecaster was loaded from a file and holds no data; pass predict(data)")
            series, source = self.series_, self.source_
        else:
            series, source = to_series(data, freq=self.freq, graph=graph, lazy=True)
            self.check_data(series)
            if series.spatial is None and self.series_ is not None:
                series.spatial = self.series_.spatial
        ctx, H = self.signature_["context"], self.signature_["window"] - self.signature_["context"]
        T, N, C = series.shape
        if T < ctx:
            raise DataError(f"predict needs at least context_length = {ctx} steps of history, the data has {T}")
        history = _last_steps(series, ctx)
        raw = np.full((1, ctx + H, N, C), np.nan)
        raw[0, :ctx] = history.values
        cond = ~np.isnan(raw)
        if not cond.any():
            raise DataError(f"the last {ctx} steps of the data have no observed value; forecasting needs history")
        seed = _seed(self.random_state if random_state is None else random_state)
        if sampler_options is None and sampler in (None, self.sampler):
            sampler_options = self.sampler_options
        _check_sampling(sampler or self.sampler, sampling_steps, sampler_options, self.chunk_size)
        _place(self.module_, self.device)
        samples = sample_windows(self.module_, raw, cond, n_samples=n, sampler=sampler or self.sampler,
                                 steps=self.sampling_steps if sampling_steps is None else sampling_steps, seed=seed,
                                 progress=self._verbose(verbose), desc="forecast",
                                 sampler_options=sampler_options, chunk_size=self.chunk_size)
        freq = self.signature_.get("freq") or pd.infer_freq(series.time_index)
        future = pd.date_range(series.time_index[-1], periods=H + 1, freq=freq)[1:]
        future.name = series.time_index.name
        return Forecast(samples[:, 0, ctx:], future, series.node_names, series.channel_names, freq=freq,
                        columns=series.attrs.get("columns") or self.signature_.get("columns"),
                        item_ids=series.attrs.get("item_ids") or series.attrs.get("items"),
                        history=history, grid=source, time_name=series.time_index.name)

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights + settings + data signature to ``path`` (loaded with ``weights_only=True``)."""
        from tsdiff.training.checkpoint import save_model

        self._check_fitted()
        api = {"format": API_FORMAT, "kind": "Forecaster", "params": _api_params(self), "signature": self.signature_}
        return save_model(self.module_, path, extra={"api": api})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "Forecaster":
        """Rebuild a Forecaster saved by :meth:`save` (no code executes while loading).

        Args:
            device: where to sample (see the constructor); default: the saved setting, or the
                CPU with a warning when that asked for a GPU and this machine has none.
        """
        module, api = _load_api(path, "Forecaster")
        if api is None:
            raise TsdiffError(f"{path} is a model file from `tsdiff fit`, not a saved Forecaster; use `tsdiff test`")
        params = dict(api["params"])
        if "verbose" not in params and "progress" in params:  # saved before progress= became verbose=
            params["verbose"] = params.pop("progress")
        obj = cls(**{**params, "device": _load_device(params.get("device"), device, path)})
        obj.module_, obj.signature_ = module, api["signature"]
        _place(module, obj.device)
        return obj


# --------------------------------------------------------------------------- Imputer (scikit-learn)

class Imputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Diffusion-model imputer with the scikit-learn transformer API.

    Rows are time steps and columns are features (series); NaN marks a missing
    value. ``fit`` trains a conditional denoiser on windows of ``window`` consecutive
    rows, hiding random observed entries as training targets (CSDI's self-supervised
    scheme); ``transform`` draws ``n_samples`` imputations of each window with missing
    values and fills each NaN with their ``point`` summary. Observed entries are
    returned bit for bit. Works in ``Pipeline`` and ``ColumnTransformer``; ``clone``
    copies the settings; ``set_output(transform="pandas")`` returns DataFrames.
    :meth:`imputed_blocks` imputes data read lazily (e.g. a file larger than memory)
    block by block, with the same draws as :meth:`sample`.

    Args:
        model: registered denoiser name; ``model_options`` overrides its
            hyper-parameters (default :data:`SMALL_MODEL_OPTIONS`, CPU-sized; from
            :data:`LINEAR_ATTENTION_FROM` features on, CSDI uses linear attention).
        window: rows per window (shorter data uses one window of all rows). Default 48: on the tune
            part of the accuracy tables (``benchmarks/accuracy/imputer_tables.py --part tune --set
            window=48``) it lowered the MAE on every row measured against 24 (ETTh1 blocks 0.931 -> 0.868,
            points 0.396 -> 0.389; exchange-rate blocks 0.0050 -> 0.0047; AQI-36 points 7.32 -> 7.30)
            and gave 0.88x MICE on AQI-36 blocks, at about twice the fit time.
        process: forward process config (default :data:`DEFAULT_PROCESS`: 50-step DDPM, linear
            schedule to 0.2).
        max_steps: optimiser steps; ``batch_size``, ``lr``: training settings.
        max_time: a time budget for training (``"3min"``, ``"90s"``, ``"00:00:03:00"``, seconds or a
            ``timedelta``): training stops after ``max_steps`` or ``max_time``, whichever comes first.
            None: no budget.
        validation: fraction of the rows held out at the end of the table (at least one window) to
            pick the weights: the loss of imputing holes drawn as in training is computed there 20
            times over ``max_steps`` (at most every 50 steps) and the weights with the lowest one are
            kept. None: train on every row and keep the last weights.
        early_stopping, trainer_kwargs: as :class:`Forecaster`'s.
        train_mask: training mask strategy (``"random"``, ``"historical"``, ``"mix"``).
        n_samples: imputations drawn per window by ``transform``.
        sampler, sampling_steps: sampler name and its steps (default DDIM, 10 steps).
        sampler_options: the sampler's further options, e.g. ``{"eta": 0.5}`` or
            ``{"spacing": "log_snr"}``.
        chunk_size: (window, sample) pairs per network pass (default: 64 on CPU); bounds
            the memory of sampling.
        point: ``"median"`` or ``"mean"`` of the samples fills each missing entry. The median
            fill is the textbook one (``np.median``: the mean of the two middle draws for an even
            ``n_samples``), the point of :func:`tsdiff.metrics.point_forecast` and of the MAE;
            :meth:`quantiles` (``0.5`` included) use GluonTS' nearest rank (:mod:`tsdiff.quantiles`),
            which picks one of the two middle draws. For odd ``n_samples`` they agree.
        prior: informative prior (:mod:`tsdiff.diffusion.priors`): a name (``"interpolation"``,
            ``"last_value"``, ``"none"``) or a dict (``{"name": "seasonal", "season": 24}``). The
            model then learns the residual from the prior instead of the values themselves.
            Default ``"cross_series"``: linear interpolation over the whole table, corrected by a
            ridge regression on the most related columns fitted before training
            (:mod:`tsdiff.diffusion.prior_regression`). On the first 60% of AQI-36, ETTh1 and the
            exchange rates with 20% point and 15% block holes, ``"none"`` gave 4.2-17x the MAE of
            linear interpolation, ``"interpolation"`` 1.02-1.07x on points and 1.56-1.80x that of
            MICE on AQI-36 / ETTh1 blocks; ``"cross_series"`` with one pass 0.75-0.997x the best
            baseline on five rows and 1.14x MICE on AQI-36 blocks, two passes (its default) took
            the prior's own block MAE from 16.2 to 12.8 on AQI-36 (MICE 14.0) and from 1.14 to
            0.91 on ETTh1 (MICE 1.22) (``benchmarks/accuracy/imputer_tables.py --part tune``).
            On the held-out last 40% of the rows, with the default window, it beats both baselines
            on all six rows (0.59-0.99x the better one; 0.98-0.99x MICE on AQI-36 / ETTh1 blocks;
            records in ``benchmarks/records/accuracy/``).
        random_state: seed of training and sampling (same seed, same output on the same device).
        verbose: show training and sampling progress bars.
        device: where training and sampling run: ``"auto"`` (a CUDA GPU when available, else
            the CPU), ``"cpu"``, ``"gpu"`` or a device such as ``"cuda:1"``.

    scikit-learn estimator checks: ``tests/test_sklearn.py`` runs every check of
    ``estimator_checks_generator`` (46 with scikit-learn 1.9: 21 in the default suite, the
    other 25 under ``-m integration``) plus ``check_dataframe_column_names_consistency``
    and ``check_set_output_transform``. None is expected to fail
    (:data:`SKLEARN_EXPECTED_FAILED_CHECKS` is empty). Not run, and why:

    - ``check_array_api_input`` skips itself unless ``SCIPY_ARRAY_API=1``; the imputer
      computes in torch from numpy input and does not claim array-API support.
    - ``check_estimators_nan_inf`` does not apply to estimators tagged ``allow_nan``
      (NaN is the missing data here); infinite values are refused with a DataError,
      tested separately.

    ``check_methods_subset_invariance`` and ``check_methods_sample_order_invariance``
    pass because their data has no NaN (nothing to impute); with gaps, imputations do
    depend on the neighbouring rows, since rows are time steps.
    """

    def __init__(self, model: str = "csdi", window: int = 48, *, model_options: dict | None = None,
                 process: dict | None = None, max_steps: int = 300, max_time=None,
                 validation: float | None = None, early_stopping: int | None = None,
                 trainer_kwargs: dict | None = None, batch_size: int = 16,
                 lr: float = 1.0e-3, train_mask: str = "random", n_samples: int = 16, sampler: str = "ddim",
                 sampling_steps: int | None = 10, sampler_options: dict | None = None,
                 chunk_size: int | None = None, point: str = "median", prior="cross_series", random_state=0,
                 verbose: bool = False, device: str = "auto") -> None:
        self.model = model
        self.window = window
        self.model_options = model_options
        self.process = process
        self.max_steps = max_steps
        self.max_time = max_time
        self.validation = validation
        self.early_stopping = early_stopping
        self.trainer_kwargs = trainer_kwargs
        self.batch_size = batch_size
        self.lr = lr
        self.train_mask = train_mask
        self.n_samples = n_samples
        self.sampler = sampler
        self.sampling_steps = sampling_steps
        self.sampler_options = sampler_options
        self.chunk_size = chunk_size
        self.point = point
        self.prior = prior
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.non_deterministic = False
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"allow_nan": True}

    # -- input checks
    def _validate(self, X, reset: bool) -> np.ndarray:
        from sklearn.utils.validation import validate_data

        checks.refuse_scipy_sparse(X, "X")
        if isinstance(X, pd.DataFrame):
            check_frame(X, "X")
            checks.check_columns(X, "X", allow_mixed=False)
            X = checks.frame_to_float(X, "X")  # sparse / nullable / object columns; pd.NA -> NaN
        elif isinstance(X, np.ndarray):  # masked entries -> NaN; values float64 cannot hold are refused
            X = checks.as_float64(X, "X")
        try:
            arr = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan",
                                accept_sparse=False)
        except TsdiffError:
            raise
        except ValueError as exc:
            raise DataError(f"{exc}") from None
        if not reset and isinstance(X, pd.DataFrame) and isinstance(X.index, pd.DatetimeIndex) \
                and getattr(self, "freq_", None) and len(X.index) >= 3:
            freq = pd.infer_freq(X.index)
            if freq is not None and pd.tseries.frequencies.to_offset(freq) != \
                    pd.tseries.frequencies.to_offset(self.freq_):
                raise DataError(f"X has frequency {freq!r} but the imputer was fitted on {self.freq_!r} data; "
                                "resample it to the training frequency or fit a new imputer")
        return arr

    def _check_settings(self) -> None:
        _check_int("window", self.window)
        for name in ("max_steps", "batch_size", "n_samples"):
            _check_int(name, getattr(self, name))
        parse_duration(self.max_time)
        check_validation(self.validation, self.early_stopping)
        check_trainer_kwargs(self.trainer_kwargs, self.validation)
        _check_int("sampling_steps", self.sampling_steps, allow_none=True)
        _check_sampling(self.sampler, self.sampling_steps, self.sampler_options, self.chunk_size)
        if self.point not in ("median", "mean"):
            raise ConfigError(f"point must be 'median' or 'mean', got {self.point!r}")
        checks.check_lr(self.lr)
        checks.check_random_state(self.random_state)

    # -- fitting
    def fit(self, X, y=None) -> "Imputer":
        """Train on ``X`` ``[T, F]`` (NaN = missing; ``y`` is ignored).

        ``X``: an array (a numpy masked array's masked entries are missing), or a DataFrame
        (pandas sparse, nullable and object columns of numbers; ``pd.NA`` is missing). Refused
        with a DataError: a feature with no observed value, scipy sparse matrices (implicit
        entries are zeros, not missing), duplicate or mixed-type column labels, and values
        float64 cannot hold exactly (int64 beyond 2**53, float128).
        """
        self._check_settings()
        arr = self._validate(X, reset=True)
        self.freq_ = None
        if isinstance(X, pd.DataFrame) and isinstance(X.index, pd.DatetimeIndex) and len(X.index) >= 3:
            self.freq_ = pd.infer_freq(X.index)
        names = [str(c) for c in getattr(self, "feature_names_in_", [f"x{i}" for i in range(arr.shape[1])])]
        # rows are steps; the model only uses positions, so a placeholder hourly index suffices
        series = Series(np.array(arr[:, :, None]), pd.date_range("2000-01-01", periods=arr.shape[0], freq="h"), names, ["value"])
        self._fit_series(series)
        return self

    def _fit_series(self, series, grid_shape=None) -> "Imputer":
        """Train on a :class:`Series` ``[T, N, C]``, or on a lazily read source of one (used by ``fit``
        and by ``tsdiff impute`` on grids): a source is read window by window, its scaler fitted in
        one streaming pass, so memory follows the batch and not the data."""
        from tsdiff.data.lazy import HeldOutPoints, fit_scaler_streaming
        from tsdiff.data.protocol import Protocol, SplitWindows, fit_scaler_on_windows
        from tsdiff.data.windows import sliding_starts
        from tsdiff.training.devices import resolve_device

        self._check_settings()
        device = resolve_device(self.device)  # before anything slow
        T = series.shape[0]
        w = min(int(self.window), T)
        starts, held = sliding_starts(T, w, 1), np.zeros(0, dtype=np.int64)
        if self.validation is not None:  # whole windows in the held-out tail, none overlapping training's
            cut = validation_split(T, self.validation, w)
            held = _spread(cut + sliding_starts(T - cut, w, 1))
            starts = sliding_starts(cut, w, 1)
        if isinstance(series, Series):
            observed = ~np.isnan(series.values).all(axis=0)
            eval_mask = np.zeros(series.shape, dtype=bool)
        else:
            scaler, count = fit_scaler_streaming(series, starts, w, return_counts=True)
            observed = count > 0
            eval_mask = HeldOutPoints(series.shape, 0.0, 0)  # nothing held out: all windows train
        if not observed.any():
            raise DataError("X has no observed value (all NaN); there is nothing to learn from")
        if not observed.all():
            n, c = np.argwhere(~observed)[0]
            raise DataError(f"feature {series.node_names[n]!r} has no observed value (all NaN); drop that column "
                            "or fill it another way")
        if isinstance(series, Series):
            scaler = fit_scaler_on_windows(series, starts, w)
        none = np.zeros(0, dtype=np.int64)
        protocol = Protocol(id="api-imputer", series=series, eval_mask=eval_mask, window=w,
                            # held-out windows draw holes as training does (no score_from)
                            splits={"train": SplitWindows(starts), "val": SplitWindows(held),
                                    "test": SplitWindows(none, none)},
                            scaler=scaler)
        seed = _seed(self.random_state)
        sig = protocol.signature
        sig.update({"spatial": getattr(series.spatial, "kind", None),
                    "grid_shape": list(grid_shape) if grid_shape is not None else None})
        config = {"seed": seed, "api": {"kind": "Imputer", "params": _api_params(self)}}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = _build_module(_model_config(self.model, self.model_options, series.shape[1] * series.shape[2]),
                                   _process_config(self.process),
                                   sig, protocol.scaler, lr=self.lr, train_mask=self.train_mask, config=config,
                                   spatial=series.spatial, prior=self.prior)
        self.training_ = _train(module, protocol.dataset("train"), batch_size=self.batch_size,
                                max_steps=self.max_steps, max_time=self.max_time, seed=seed,
                                progress=bool(self.verbose), device=device,
                                val_dataset=protocol.dataset("val") if self.validation is not None else None,
                                early_stopping=self.early_stopping, trainer_kwargs=self.trainer_kwargs)
        self.module_ = module
        self.window_ = w
        self.signature_ = sig
        self.spatial_ = series.spatial
        self.seed_ = seed
        return self

    # -- sampling
    def _sample_series(self, values: np.ndarray, n_samples: int) -> np.ndarray:
        """Imputations of ``values`` ``[T, N, C]``: float64 ``[S, T, N, C]``, observed entries exact."""
        from tsdiff.data.lazy import ArraySource

        checks.check_model_range(self.module_.scaler, values, "X",
                                 columns=[str(c) for c in getattr(self, "feature_names_in_", [])] or None)
        out = np.empty((n_samples,) + values.shape, dtype=np.float64)
        for a, _, draws in self.imputed_blocks(ArraySource(values), n_samples):
            out[:, a: a + draws.shape[1]] = draws
        return out

    def imputed_blocks(self, source, n_samples: int | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Imputations of a series read window by window, in time order (bounded memory).

        Args:
            source: the data ``[T, N, C]`` (NaN = missing) as anything with ``shape`` and
                ``window(start, length)``: e.g. :func:`tsdiff.data.lazy.open_source` on a netCDF
                or ``.npy`` file, :class:`~tsdiff.data.adapters.grid.GridSource` on a dask-backed
                xarray grid, or :class:`~tsdiff.data.lazy.ArraySource` on an array.
            n_samples: imputations per window (default: ``n_samples``).
        Yields:
            ``(start, values, draws)`` for consecutive row blocks that together cover all T
            steps: ``values`` float64 ``[rows, N, C]`` as read and ``draws`` float64
            ``[n_samples, rows, N, C]``, equal to ``values`` bit for bit on observed entries.

        Windows of ``window_`` rows cover the data (the last one aligned with the end). Windows
        without a missing entry are copied, not sampled; the others are sampled ``batch_size``
        at a time from one noise generator, so the draws equal :meth:`sample`'s on the same
        data whatever reads them. Memory: one batch of windows and its draws.
        """
        from tqdm.auto import tqdm

        from tsdiff.data.lazy import read_window
        from tsdiff.data.windows import covering_starts

        self._fitted()
        n = self.n_samples if n_samples is None else n_samples
        _check_int("n_samples", n)
        _check_sampling(self.sampler, self.sampling_steps, self.sampler_options, self.chunk_size)  # set_params
        T, N, C = (int(d) for d in source.shape)
        sig = self.signature_
        if (N, C) != (int(sig["num_nodes"]), int(sig["num_channels"])):
            raise DataError(f"the data has {N} series x {C} channel(s) but the imputer was fitted on "
                            f"{sig['num_nodes']} x {sig['num_channels']}; pass data of the same shape")
        w = min(self.window_, T)
        starts, score_from = covering_starts(T, w)
        _place(self.module_, self.device)
        gen = torch.Generator(device=self.module_.device).manual_seed(int(self.seed_))
        held: list[tuple[int, int, np.ndarray | None]] = []  # windows in order: (start, score_from, raw if sampled)
        edges = self._edge_anchors(source, starts, w) if self.module_.residual else None
        anchor_row = {a: k for k, a in enumerate(starts.tolist())}

        def flush():
            raws = [r for _, _, r in held if r is not None]
            if raws:
                raw = np.stack(raws)
                anchors = None if edges is None else edges[[anchor_row[a] for a, _, r in held if r is not None]]
                samples = sample_windows(self.module_, raw, ~np.isnan(raw), n_samples=n, sampler=self.sampler,
                                         steps=self.sampling_steps, seed=self.seed_, batch_size=len(raws),
                                         sampler_options=self.sampler_options, chunk_size=self.chunk_size,
                                         generator=gen, anchors=anchors)
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

        with tqdm(total=len(starts), desc="imputing (windows)", unit="window", disable=not self.verbose) as bar:
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
                if n_sampled == self.batch_size:
                    yield from flush()
                    n_sampled = 0
            yield from flush()

    def _edge_anchors(self, source, starts, w: int) -> np.ndarray:
        """The prior's view beyond each window: the nearest known scaled value of every series
        before and after it (:func:`~tsdiff.diffusion.priors.stream_edge_anchors`, one pass over
        the source in pieces of at most one window), so a gap that crosses a window's edge is
        bridged as over the whole series, however large the source."""
        from tsdiff.data.lazy import read_window
        from tsdiff.diffusion.priors import stream_edge_anchors

        scaler = self.module_.scaler

        def read(a: int, n: int):
            raw = read_window(source, a, n)
            known = ~np.isnan(raw)
            return np.where(known, scaler.transform(np.where(known, raw, 0.0)), 0.0), known

        return stream_edge_anchors(read, int(source.shape[0]), starts, w)

    def _fitted(self) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "module_")

    def sample(self, X, n_samples: int | None = None) -> np.ndarray:
        """Multiple imputations of ``X`` ``[T, F]``.

        Returns:
            float64 ``[n_samples, T, F]``; observed entries equal ``X`` exactly in every draw.
        """
        self._fitted()
        n = checks.check_n_samples(self.n_samples if n_samples is None else n_samples)  # before any allocation
        arr = self._validate(X, reset=False)
        return self._sample_series(arr[:, :, None], n)[..., 0]

    def transform(self, X) -> np.ndarray:
        """Fill the NaN of ``X`` ``[T, F]``: float64 ``[T, F]``, observed entries bit for bit.

        The masked entries of a numpy masked array are missing too; it gets a masked array
        back (with nothing masked). A gap is never NaN/inf: that is a DataError instead.
        """
        self._fitted()
        arr = self._validate(X, reset=False)
        missing = np.isnan(arr)
        if not missing.any():
            out = arr.copy()
        else:
            draws = self._sample_series(arr[:, :, None], self.n_samples)[..., 0]
            point = checks.finite_reduce(np.median if self.point == "median" else np.mean, draws, axis=0)
            out = np.where(missing, point, arr)
        checks.check_finite_gaps(out[missing], "the imputed values")
        # a numpy masked array in, a masked array out (nothing masked: every entry has a value)
        return np.ma.MaskedArray(out, mask=np.zeros(out.shape, dtype=bool)) if isinstance(X, np.ma.MaskedArray) \
            else out

    def quantiles(self, X, q=(0.05, 0.5, 0.95), n_samples: int | None = None):
        """Sample quantiles of the imputations per entry (observed entries: the value itself).

        Nearest rank, as GluonTS and :class:`Forecast` (:mod:`tsdiff.quantiles`): each is one of
        the draws of :meth:`sample`.

        Returns:
            float64 ``[Q, T, F]``; with ``set_output(transform="pandas")`` (or ``"polars"``) a
            list of Q DataFrames, one per level, with the columns (and, for a DataFrame ``X``,
            the index) that :meth:`transform` gives.
        """
        from tsdiff.sklearn_compat import like_transform, wants_container

        qs = np.asarray(q, dtype=np.float64)
        if qs.ndim != 1 or np.any((qs < 0) | (qs > 1)):
            raise ConfigError(f"q must be a list of levels in [0, 1], got {q!r}")
        out = sample_quantile(self.sample(X, n_samples), qs, axis=0)
        return [like_transform(self, v, X) for v in out] if wants_container(self) else out

    def std(self, X, n_samples: int | None = None):
        """Sample standard deviation per entry ``[T, F]`` (0 on observed entries): the imputation uncertainty
        (a DataFrame like :meth:`transform`'s with ``set_output(transform="pandas")``)."""
        from tsdiff.sklearn_compat import like_transform

        return like_transform(self, checks.finite_reduce(np.std, self.sample(X, n_samples), axis=0), X)

    # -- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write weights + settings + data signature to ``path`` (loaded with ``weights_only=True``)."""
        from tsdiff.training.checkpoint import save_model

        self._fitted()
        state = {"n_features_in_": int(self.n_features_in_) if hasattr(self, "n_features_in_") else None,
                 "feature_names_in_": [_plain_label(c) for c in getattr(self, "feature_names_in_", [])] or None,
                 "freq_": self.freq_ if hasattr(self, "freq_") else None, "window_": int(self.window_),
                 "seed_": int(self.seed_)}
        api = {"format": API_FORMAT, "kind": "Imputer", "params": _api_params(self),
               "signature": self.signature_, "state": state}
        return save_model(self.module_, path, extra={"api": api})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "Imputer":
        """Rebuild an Imputer saved by :meth:`save` (no code executes while loading).

        A model file written by ``tsdiff fit`` for an imputation protocol also loads:
        its window and the columns it was trained on come from the file.

        Args:
            device: where to sample (see the constructor); default: the saved setting, or the
                CPU with a warning when that asked for a GPU and this machine has none.
        """
        module, api = _load_api(path, "Imputer")
        if api is None:
            sig = module.hparams["signature"]
            if sig.get("task", "imputation") != "imputation":
                raise TsdiffError(f"{path} is a {sig.get('task')} model; tsdiff.Imputer needs an imputation model")
            cfg = module.hparams.get("config") or {}
            obj = cls(model=module.hparams["model"]["name"], window=int(sig["window"]),
                      random_state=int(cfg.get("seed", 0)), device="auto" if device is None else device)
            state = {"n_features_in_": None, "feature_names_in_": None, "freq_": None, "window_": int(sig["window"]),
                     "seed_": int(cfg.get("seed", 0))}
            api = {"signature": sig, "state": state}
        else:
            obj = cls(**{**api["params"], "device": _load_device(api["params"].get("device"), device, path)})
        _place(module, obj.device)
        obj.module_, obj.signature_ = module, api["signature"]
        st = api["state"]
        if st.get("n_features_in_") is not None:
            obj.n_features_in_ = st["n_features_in_"]
        if st.get("feature_names_in_"):
            obj.feature_names_in_ = np.asarray(st["feature_names_in_"], dtype=object)
        obj.freq_, obj.window_, obj.seed_ = st.get("freq_"), st["window_"], st["seed_"]
        obj.spatial_ = None
        return obj


#: scikit-learn estimator checks that ``Imputer`` is expected to fail, with the reason (none at present).
SKLEARN_EXPECTED_FAILED_CHECKS: dict[str, str] = {}
