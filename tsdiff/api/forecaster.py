"""The :class:`Forecaster`: fit on history, :meth:`~Forecaster.predict` a :class:`~tsdiff.forecast.Forecast`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tsdiff import validation as checks
from tsdiff.api import fitting, forecast_panels, panel_covariates, persistence, sampling
from tsdiff.api.building import _build_module, _model_config, _process_config
from tsdiff.api.covariate_inputs import check_names, covariate_data, fit_covariates, forecast_block, future_rows
from tsdiff.api.fitting import _spread
from tsdiff.api.forecast_panels import SeriesPanel
from tsdiff.api.inputs import _is_gluonts, _last_steps, to_series, warn_trailing_steps
from tsdiff.api.persistence import API_FORMAT, _load_api, _load_device, _plain_label
from tsdiff.api.sampling import _place
from tsdiff.api.settings import _check_int, _check_sampling, _forecast_prior, _seed
from tsdiff.data.covariates import CovariateSpec, CovariateWindows
from tsdiff.data.periods import steps_between
from tsdiff.diffusion.prior_contract import uses_starts
from tsdiff.data.series import Series
from tsdiff.errors import ConfigError, DataError, TsdiffError
from tsdiff.forecast import Forecast, PanelForecast
from tsdiff.training.recipe import check_validation, parse_duration, validation_split
from tsdiff.training.trainer_options import check_trainer_kwargs

try:  # scikit-learn is a dependency; keep the import local to the estimators' bases
    from sklearn.base import BaseEstimator
except ImportError:  # pragma: no cover
    BaseEstimator = object


class Forecaster(BaseEstimator):
    """Probabilistic forecaster: a conditional diffusion model over ``context + horizon`` windows.

    A dask-backed xarray grid (``xr.open_dataset(path, chunks={})``) is never loaded whole:
    ``fit`` fits the scaler in one streaming pass and reads each training window when a
    batch needs it, and ``predict`` reads only the last ``context_length`` steps.

    Args:
        model: registered denoiser name (``"csdi"``; graph / grid models use the data's
            ``spatial``). ``model_options`` override its hyper-parameters
            (:data:`~tsdiff.api.building.SMALL_MODEL_OPTIONS` by default: a small CPU-sized network; from
            :data:`~tsdiff.api.building.LINEAR_ATTENTION_FROM` features on, CSDI uses linear attention).
        prediction_length: H, steps to forecast.
        context_length: steps of history the model sees (default ``2 * H``).
        process: forward process config (default :data:`~tsdiff.api.building.DEFAULT_PROCESS`: 50-step DDPM, linear
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
            error), ``"climatology"`` (the training mean at the same phase of the frequency's
            season plus the context's last anomaly from it, damped with the lead time; the phase
            of each window from its timestamps; joint mode only), ``"auto"``, ``"none"``; the
            model then learns the residual from it. Default
            ``"seasonal"``: with 500 steps, CRPS 0.76x seasonal naive's MAE on ETTh1 (season 24)
            and on the exchange rates (season 5; 0.86x persistence), where ``"none"`` gave 1.28x
            and 1.31x
            (``benchmarks/accuracy/forecaster_tables.py --part tune``; records in
            ``benchmarks/records/accuracy/``). ``{"name": "seasonal", "window_norm": True}``
            also shifts and scales each window by its context's mean and spread (for trending
            series: 0.719x seasonal naive on the exchange rates' tune part against 0.763x, but
            0.792x against 0.758x on ETTh1; :mod:`tsdiff.diffusion.window_norm`).
        covariates: column names of a wide (or long) DataFrame that are past-only covariates: the
            model reads them over the context (the last ``context_length`` steps), not over the
            horizon. A long frame's are read per item (a global model: as each series' own); a
            GluonTS dataset brings its own (``feat_dynamic_real``: known-future,
            ``past_feat_dynamic_real``: past-only) and takes neither argument.
        future_covariates: column names of known-future covariates: read over the context from the
            data, and over the horizon from ``predict(..., future_covariates=frame)``.
        calendar: calendar features of the frequency as known-future covariates (GluonTS's
            ``time_features_from_frequency_str``: hour of day, day of week, ... for hourly data),
            computed from the timestamps; data without timestamps (a numpy array without
            ``freq``, whose steps are positions) gets none. ``True`` leaves out a feature whose
            period the training data covers fewer than three times (day of year with under three
            years of data: the model would learn the training year's dates, not a season); a list
            of feature names (``["hour_of_day", "day_of_week"]``) is used as given. With
            ``calendar=False``, ``covariates=None`` and ``future_covariates=None`` the model is the
            plain one (no covariate input); with covariates the network reads them through a map
            that starts at zero, so training starts from the plain model and a covariate gains
            weight only as far as the loss asks. Covariate columns are standardised on the training
            data and are not forecast; a missing known-future value is an error
            (:mod:`tsdiff.data.covariates`). A global model reads the calendar features of each
            series' own timestamps.
        centre_covariates: centre each past-only covariate on its mean over the window's context,
            so that the network reads how it moved within the window rather than its level, which
            drifts between the training period and the forecast (a missing value reads as that
            mean). ``False``: the training standardisation alone (a missing value reads as the
            training mean); choose it where a past-only covariate's level itself carries the
            information (an on/off regime flag). Known-future covariates are never centred.
        static_covariates: names of per-series static covariates of a global model (``mode="global"``;
            ``"auto"`` then picks it): columns of a long DataFrame that are constant within each item,
            or a GluonTS dataset's ``"feat_static_cat"`` / ``"feat_static_real"`` fields. Numeric
            ones are standardised with the training mean and standard deviation; categorical ones
            (non-numeric, bool or ``category`` dtype) are one-hot encoded over the training levels
            plus an "unknown" level, which unseen values at predict map to. ``predict`` takes new
            series with their static values (:mod:`tsdiff.api.panel_covariates`).
        random_state: seed of training and sampling.
        verbose: show Lightning's training bar and the sampling bar.
        device: where training and sampling run: ``"auto"`` (a CUDA GPU when available, else
            the CPU), ``"cpu"``, ``"gpu"`` or a device such as ``"cuda:1"``. A GPU asked for
            where CUDA is not available is an error, not a silent fall-back.
        progress: deprecated name of ``verbose`` (a FutureWarning when ``fit`` or ``predict``
            uses it; when set, it wins over ``verbose``); removed in the next release.
        mode: how the data's series relate (:mod:`tsdiff.api.forecast_panels`):

            - ``"joint"``: the series are the features (nodes) of one multivariate model; they
              share one time axis and one end, and one forecast starts after it. Series that
              end at different times are a DataError (use ``"global"``).
            - ``"global"``: the series are independent samples sharing the weights. Training
              windows are drawn from every series (each window inside one series; the model's
              features are the per-series features F), and ``predict`` forecasts each series
              from its own last ``context_length`` steps, starting one step after its own end:
              a :class:`~tsdiff.forecast.PanelForecast`. A wide frame / 2-D array is read as one
              univariate series per column (over its observed span). Calendar features,
              ``static_covariates`` and dynamic covariates are read, each series' own: a long
              frame's ``covariates`` / ``future_covariates`` columns on the item's timestamps, or
              a GluonTS dataset's ``past_feat_dynamic_real`` / ``feat_dynamic_real``; the
              horizon's known-future values come from ``predict(future_covariates=...)``, a long
              frame with the item and time columns (:mod:`tsdiff.api.panel_covariates`). Other
              inputs with dynamic covariates are a DataError.
            - ``"auto"`` (default): global for a 3-D array ``[n_series, L, F]``, a list of 2-D
              arrays / DataFrames, and a long frame (``item_col`` / ``time_col``) or GluonTS
              dataset whose series are ragged (different ends or lengths); joint otherwise (a
              wide DataFrame, a 2-D array, an xarray grid, series sharing one span). Under
              ``"joint"`` a 3-D array keeps its ``[T, N, C]`` reading.

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
                 chunk_size: int | None = None, freq: str | None = None, prior="seasonal",
                 covariates: list | None = None, future_covariates: list | None = None, calendar=True,
                 centre_covariates: bool = True, static_covariates: list | None = None,
                 random_state: int = 0, verbose: bool = True, device: str = "auto",
                 progress: bool | None = None, mode: str = "auto") -> None:
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
        self.covariates = covariates
        self.future_covariates = future_covariates
        self.calendar = calendar
        self.centre_covariates = centre_covariates
        self.static_covariates = static_covariates
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.progress = progress
        self.mode = mode
        self.module_ = None
        self.series_ = None
        self.source_ = None
        self.signature_: dict | None = None
        self.covariate_frame_ = None
        self.panel_: SeriesPanel | None = None

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
        check_names(self.covariates, self.future_covariates, self.calendar, self.centre_covariates)
        if panel_covariates.check_static_names(self.static_covariates, self.covariates, self.future_covariates) \
                and self.mode == "joint":
            raise ConfigError("static_covariates are per-series covariates of a global model; use mode='global' "
                              "(or 'auto')")
        forecast_panels.check_mode(self.mode)

    @property
    def mode_(self) -> str | None:
        """The fitted model's mode, ``"joint"`` or ``"global"`` (None before fit)."""
        return None if self.signature_ is None else self.signature_.get("mode", "joint")

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
            data_options: passed to :func:`to_series` (``item_col``, ``time_col``, ``variables``), and
                ``targets``: the target columns of a wide DataFrame (default: every column that is
                not a covariate).
        """
        from tsdiff.data.forecasting import build_forecasting_protocol
        from tsdiff.data.splits import forecast_starts

        from tsdiff.training.devices import resolve_device

        self._validate_settings()
        device = resolve_device(self.device)  # before anything slow
        where = {k: data_options[k] for k in ("item_col", "time_col") if k in data_options}
        mode = forecast_panels.resolve_mode(self.mode, data, freq=self.freq, **where)
        if mode == "global" or self.static_covariates:  # static covariates belong to independent series
            if graph is not None or set(data_options) - {"item_col", "time_col"}:
                raise DataError(f"mode='global' takes no graph or {sorted(set(data_options) - set(where))}; "
                                "pass the series and item_col / time_col only")
            forecast_panels.fit_global(self, data, device, **where)
            self.series_ = self.source_ = self.covariate_frame_ = None
            return self
        past_cols, future_cols = check_names(self.covariates, self.future_covariates)
        targets = data_options.pop("targets", None)
        data, past_df, future_df = covariate_data(data, past_cols, future_cols, targets, freq=self.freq)
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
                raise checks.never_observed(series, n, c, what)
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
        calendar = False if series.attrs.get("placeholder_time", False) else self.calendar
        spec, rows = fit_covariates(past_df, future_df, series.time_index, freq, calendar, self.centre_covariates)
        signature = {**protocol.signature, "freq": freq, "columns": [_plain_label(c) for c in
                                                                      series.attrs.get("columns", series.node_names)],
                     "spatial": getattr(series.spatial, "kind", None),
                     "grid_shape": list(getattr(series.spatial, "shape", ()) or []) if source is not None else None,
                     "mode": "joint", "origin": str(series.time_index[0])}
        self._train_protocol(protocol, signature, freq, device, spec=spec, rows=rows)
        self.series_, self.source_, self.panel_ = series, source, None
        self.covariate_frame_ = None if spec is None else pd.concat(
            [f for f in (future_df, past_df) if f is not None] or [pd.DataFrame(index=series.time_index)], axis=1)
        return self

    def _train_protocol(self, protocol, signature: dict, freq, device, *, spec=None, rows=None) -> None:
        """Build the module for ``protocol``'s windows (and covariates ``spec`` / ``rows``), train it and
        keep it with ``signature`` (shared by the joint and the global mode)."""
        ctx = protocol.context
        series = protocol.series
        seed = _seed(self.random_state)
        model_cfg = _model_config(self.model, self.model_options, series.shape[1] * series.shape[2])
        if spec is not None:
            signature["covariates"] = spec.state_dict()
            model_cfg["num_covariates"] = spec.width
        config = {"seed": seed, "api": {"kind": "Forecaster", "params": persistence._api_params(self)}}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = _build_module(model_cfg, _process_config(self.process),
                                   signature, protocol.scaler, lr=self.lr, train_mask="random", config=config,
                                   spatial=series.spatial, prior=_forecast_prior(self.prior, freq, ctx))
        if uses_starts(module.prior_fn) and signature.get("mode") == "global":
            raise ConfigError("prior 'climatology' places each window in the season by its steps from the start of "
                              "the training data, which independent series (mode='global') do not share; use "
                              "mode='joint' or a prior that reads the window alone (seasonal, last_value, auto)")
        windows = (lambda split: protocol.dataset(split)) if spec is None else \
            (lambda split: CovariateWindows(protocol.dataset(split), rows, spec, ctx))
        self.training_ = fitting._train(
            module, windows("train"), batch_size=self.batch_size, max_steps=self.max_steps,
            max_time=self.max_time, seed=seed, progress=self._verbose(), device=device,
            val_dataset=windows("val") if self.validation is not None else None,
            early_stopping=self.early_stopping, trainer_kwargs=self.trainer_kwargs)
        self.module_, self.signature_ = module, signature

    @property
    def covariate_spec_(self) -> CovariateSpec | None:
        """The covariates the fitted model reads (:class:`~tsdiff.data.covariates.CovariateSpec`), or None."""
        return CovariateSpec.from_state_dict((self.signature_ or {}).get("covariates"))

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
                future_covariates=None, steps: int | None = None, progress: bool | None = None,
                item_col: str = "item_id", time_col: str = "timestamp") -> Forecast | PanelForecast:
        """Forecast the ``prediction_length`` steps after the end of ``data``.

        Args:
            data: history to condition on (same series / frequency as in fit); default:
                the training data. Only its last ``context_length`` steps are used. A global
                model (``mode_ == "global"``) takes any number of series with the trained
                features and forecasts each after its own end.
            item_col, time_col: the id and time columns of a long DataFrame (as in ``fit``).
            n_samples: sample paths (default: the constructor's).
            sampler / sampling_steps: any registered sampler and its number of steps (default:
                the constructor's).
            sampler_options: the sampler's further options (default: the constructor's when
                ``sampler`` is not given or is the constructor's sampler, else none).
            verbose: show the sampling bar (default: the constructor's ``verbose``).
            future_covariates: a DataFrame (DatetimeIndex) with the model's known-future covariate
                columns at every forecast step (more rows are ignored); needed when the model was
                trained with ``future_covariates``. The data's other covariate columns give the
                context's covariates. For a global model a long DataFrame (``item_col``,
                ``time_col`` and the columns) with each series' ``prediction_length`` steps after
                its own end; GluonTS entries may bring them in ``feat_dynamic_real`` instead.
            steps, progress: deprecated names of ``sampling_steps`` and ``verbose`` (a
                FutureWarning); removed in the next release.
        Returns:
            :class:`Forecast` with ``samples`` ``[S, H, N(, C)]`` in data units; for a global
            model a :class:`~tsdiff.forecast.PanelForecast` (one Forecast per series, ``[S, H, F]``).
        """
        from tsdiff.deprecation import renamed

        sampling_steps = renamed("Forecaster.predict", "steps", steps, sampling_steps)
        verbose = renamed("Forecaster.predict", "progress", progress, verbose)
        self._check_fitted()
        n = checks.check_n_samples(self.n_samples if n_samples is None else n_samples)
        if random_state is not None:
            checks.check_random_state(random_state)
        if self.mode_ == "global":
            if graph is not None:
                raise DataError("a global model (mode='global') forecasts independent series and takes no graph")
            return self._predict_global(data, n, sampler, sampling_steps, sampler_options, random_state, verbose,
                                        future_covariates, item_col=item_col, time_col=time_col)
        if data is not None:
            forecast_panels.resolve_mode("joint", data, freq=self.freq, item_col=item_col, time_col=time_col)
        spec = self.covariate_spec_
        cov_frame = self.covariate_frame_
        horizon_source = "future_covariates"
        if data is None:
            if self.series_ is None:
                raise DataError("this Forecaster was loaded from a file and holds no data; pass predict(data)")
            series, source = self.series_, self.source_
        else:
            if spec is not None and spec.columns:
                gluonts = _is_gluonts(data)
                past_cols, future_cols = check_names(self.covariates, self.future_covariates)
                data, past_df, future_df = covariate_data(data, past_cols, future_cols, self.signature_.get("columns"),
                                                          freq=self.freq, where="predict", trained=spec)
                cov_frame = pd.concat([f for f in (future_df, past_df) if f is not None], axis=1)
                if gluonts and future_covariates is None:  # feat_dynamic_real reaches into the horizon
                    future_covariates, horizon_source = future_df, "the entries' feat_dynamic_real"
            series, source = to_series(data, freq=self.freq, graph=graph, lazy=True, item_col=item_col,
                                       time_col=time_col)
            self.check_data(series)
            if series.spatial is None and self.series_ is not None:
                series.spatial = self.series_.spatial
        ctx, H = self.signature_["context"], self.signature_["window"] - self.signature_["context"]
        T, N, C = series.shape
        if T < ctx:
            raise DataError(f"predict needs at least context_length = {ctx} steps of history, the data has {T}")
        history = _last_steps(series, ctx)
        warn_trailing_steps(history)
        # values far outside the training data overflow the float32 network: say so, not "diverged"
        checks.check_model_range(self.module_.scaler, history.values, "the data",
                                 columns=[str(n) for n in series.node_names] if C == 1 else None)
        freq = self.signature_.get("freq") or pd.infer_freq(series.time_index)
        future = pd.date_range(series.time_index[-1], periods=H + 1, freq=freq)[1:]
        future.name = series.time_index.name
        block = None
        if spec is not None:
            frame = pd.DataFrame(index=history.time_index) if cov_frame is None else cov_frame
            block = forecast_block(spec, frame, history.time_index,
                                   future_rows(future_covariates, spec, future, self.signature_.get("columns", []),
                                               horizon_source),
                                   future)
        elif future_covariates is not None:
            future_rows(future_covariates, CovariateSpec(), future, [])  # the error that names the fix
        raw = np.full((1, ctx + H, N, C), np.nan)
        raw[0, :ctx] = history.values
        cond = ~np.isnan(raw)
        if not cond.any():
            raise DataError(f"the last {ctx} steps of the data have no observed value; forecasting needs history")
        starts = None
        if uses_starts(self.module_.prior_fn):  # the window's steps from the training data's first one
            starts = np.asarray([steps_between(self.signature_["origin"], history.time_index[0], freq)])
        samples = self._sample(raw, cond, n, sampler, sampling_steps, sampler_options, random_state, verbose,
                               covariates=block, starts=starts)
        return Forecast(samples[:, 0, ctx:], future, series.node_names, series.channel_names, freq=freq,
                        columns=series.attrs.get("columns") or self.signature_.get("columns"),
                        item_ids=series.attrs.get("item_ids") or series.attrs.get("items"),
                        history=history, grid=source, time_name=series.time_index.name)

    def _sample(self, raw, cond, n: int, sampler, sampling_steps, sampler_options, random_state, verbose,
                covariates=None, starts=None) -> np.ndarray:
        """Samples ``[S, B, L, N, C]`` of the windows ``raw`` with the predict-time sampling settings."""
        seed = _seed(self.random_state if random_state is None else random_state)
        if sampler_options is None and sampler in (None, self.sampler):
            sampler_options = self.sampler_options
        _check_sampling(sampler or self.sampler, sampling_steps, sampler_options, self.chunk_size)
        _place(self.module_, self.device)
        return sampling.sample_windows(
            self.module_, raw, cond, n_samples=n, sampler=sampler or self.sampler,
            steps=self.sampling_steps if sampling_steps is None else sampling_steps, seed=seed,
            progress=self._verbose(verbose), desc="forecast", sampler_options=sampler_options,
            chunk_size=self.chunk_size, covariates=covariates, starts=starts)

    def _predict_global(self, data, n: int, sampler, sampling_steps, sampler_options, random_state, verbose,
                        future_covariates, *, item_col: str, time_col: str) -> PanelForecast:
        panel = forecast_panels.predict_panel(self, data, item_col=item_col, time_col=time_col)
        return forecast_panels.predict_global(self, panel, lambda raw, cond, block: self._sample(
            raw, cond, n, sampler, sampling_steps, sampler_options, random_state, verbose, covariates=block),
            future_covariates, item_col=item_col, time_col=time_col)

    def backtest(self, data, **options):
        """Rolling-origin evaluation on ``data``: :func:`tsdiff.backtest.backtest` with this
        forecaster (``windows=``, ``stride=``, ``horizon=``, ``start=``, ``metrics=``, ``refit=``,
        ...). Returns a :class:`~tsdiff.backtest.BacktestResult`: the per-window metrics frame,
        the forecasts and ``summary()``."""
        from tsdiff.backtest import backtest

        return backtest(self, data, **options)

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights + settings + data signature to ``path`` (loaded with ``weights_only=True``)."""
        from tsdiff.training.checkpoint import save_model

        self._check_fitted()
        api = {"format": API_FORMAT, "kind": "Forecaster", "params": persistence._api_params(self),
               "signature": self.signature_}
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
        params.setdefault("calendar", False)  # saved before calendar features existed: a model without them
        params.setdefault("centre_covariates", False)  # saved before past covariates were centred per window
        params.setdefault("mode", "joint")  # saved before panels: a joint model
        obj = cls(**{**params, "device": _load_device(params.get("device"), device, path)})
        obj.module_, obj.signature_ = module, api["signature"]
        _place(module, obj.device)
        return obj
