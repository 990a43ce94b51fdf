"""The :class:`Imputer`: a scikit-learn transformer that fills gaps with diffusion-model imputations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from tsdiff import validation as checks
from tsdiff.api import fitting, grids, persistence, sampling
from tsdiff.api.building import _build_module, _model_config, _process_config
from tsdiff.api.fitting import _spread
from tsdiff.api.inputs import check_frame
from tsdiff.api.panels import SampleRows, as_panel, training_windows
from tsdiff.api.persistence import API_FORMAT, _load_api, _load_device, _plain_label
from tsdiff.api.sampling import _place
from tsdiff.api.settings import _check_int, _check_sampling, _seed
from tsdiff.data.series import Series
from tsdiff.diffusion.prior_contract import uses_starts
from tsdiff.errors import ConfigError, DataError, TsdiffError
from tsdiff.quantiles import POINT_SUMMARIES, point_summary, sample_quantile
from tsdiff.training.recipe import check_validation, parse_duration, validation_split
from tsdiff.training.trainer_options import check_trainer_kwargs

try:  # scikit-learn is a dependency; keep the import local to the estimators' bases
    from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
except ImportError:  # pragma: no cover
    BaseEstimator = OneToOneFeatureMixin = TransformerMixin = object


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
            hyper-parameters (default :data:`~tsdiff.api.building.SMALL_MODEL_OPTIONS`, CPU-sized; from
            :data:`~tsdiff.api.building.LINEAR_ATTENTION_FROM` features on, CSDI uses linear attention).
        window: rows per window (shorter data uses one window of all rows). Default 48: on the tune
            part of the accuracy tables (``benchmarks/accuracy/imputer_tables.py --part tune --set
            window=48``) it lowered the MAE on every row measured against 24 (ETTh1 blocks 0.931 -> 0.868,
            points 0.396 -> 0.389; exchange-rate blocks 0.0050 -> 0.0047; AQI-36 points 7.32 -> 7.30)
            and gave 0.88x MICE on AQI-36 blocks, at about twice the fit time.
        process: forward process config (default :data:`~tsdiff.api.building.DEFAULT_PROCESS`: 50-step DDPM, linear
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
            raise checks.array_problem(X, exc, "X") from None
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
        if self.point not in POINT_SUMMARIES:
            raise ConfigError(f"point must be 'median' or 'mean', got {self.point!r}")
        checks.check_lr(self.lr)
        checks.check_random_state(self.random_state)

    # -- fitting
    def fit(self, X, y=None) -> "Imputer":
        """Train on ``X`` ``[T, F]`` (NaN = missing; ``y`` is ignored).

        ``X``: an array (a numpy masked array's masked entries are missing), a DataFrame
        (pandas sparse, nullable and object columns of numbers; ``pd.NA`` is missing), a panel
        of independent samples (:mod:`tsdiff.api.panels`) or an xarray grid (a DataArray or
        Dataset with time, latitude and longitude dims: :mod:`tsdiff.api.grids`). Refused
        with a DataError: a feature with no observed value, scipy sparse matrices (implicit
        entries are zeros, not missing), duplicate or mixed-type column labels, and values
        float64 cannot hold exactly (int64 beyond 2**53, float128).
        """
        self._check_settings()
        if grids.is_grid(X):
            grids.fit(self, grids.source_of(X))
            return self
        panel = as_panel(X)
        if panel is not None:
            return self._fit_panel(panel)
        arr = self._validate(X, reset=True)
        self.freq_ = None
        if isinstance(X, pd.DataFrame) and isinstance(X.index, pd.DatetimeIndex) and len(X.index) >= 3:
            self.freq_ = pd.infer_freq(X.index)
        names = [str(c) for c in getattr(self, "feature_names_in_", [f"x{i}" for i in range(arr.shape[1])])]
        # rows are steps; the model only uses positions, so a placeholder hourly index suffices
        series = Series(np.array(arr[:, :, None]), pd.date_range("2000-01-01", periods=arr.shape[0], freq="h"), names, ["value"])
        self._fit_series(series)
        return self

    def _fit_panel(self, panel) -> "Imputer":
        """Train on independent samples: windows inside each sample only (see :mod:`~tsdiff.api.panels`)."""
        self.n_features_in_ = panel.n_features
        if panel.columns is not None:
            self.feature_names_in_ = np.asarray(panel.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.freq_ = None
        w = min(int(self.window), min(panel.lengths))
        # w all-NaN rows between samples: the prior's view beyond a training window's edges
        # (one window's length) ends inside the gap, never in the next sample
        values = panel.concatenated(gap=w)
        starts, held = training_windows(panel, w, w, self.validation)
        names = [str(c) for c in (panel.columns or [f"x{i}" for i in range(panel.n_features)])]
        series = Series(values[:, :, None], pd.date_range("2000-01-01", periods=values.shape[0], freq="h"),
                        names, ["value"])
        return self._fit_series(series, windows=(w, starts, _spread(held)))

    def _fit_series(self, series, grid_shape=None, windows=None) -> "Imputer":
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
        if windows is not None:  # a panel's: inside its samples
            w, starts, held = windows
        elif self.validation is not None:  # whole windows in the held-out tail, none overlapping training's
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
            raise checks.never_observed(series, int(n), int(c), f"feature {series.node_names[n]!r}")
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
        config = {"seed": seed, "api": {"kind": "Imputer", "params": persistence._api_params(self)}}
        named = self.prior.get("name") if isinstance(self.prior, dict) else self.prior
        if named == "climatology":
            raise ConfigError("the Imputer fills tables whose rows need not continue the training data, so it cannot "
                              "place them in a season: prior 'climatology' is for tsdiff.Forecaster and configs "
                              "(tsdiff fit); use prior='cross_series' (default), 'interpolation' or 'auto'")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = _build_module(_model_config(self.model, self.model_options, series.shape[1] * series.shape[2]),
                                   _process_config(self.process),
                                   sig, protocol.scaler, lr=self.lr, train_mask=self.train_mask, config=config,
                                   spatial=series.spatial, prior=self.prior)
        if uses_starts(module.prior_fn):  # e.g. an auto prior with a climatology candidate
            raise ConfigError("the Imputer cannot place its windows in a season: drop the climatology candidate "
                              "of the prior")
        self.training_ = fitting._train(
            module, protocol.dataset("train"), batch_size=self.batch_size, max_steps=self.max_steps,
            max_time=self.max_time, seed=seed, progress=bool(self.verbose), device=device,
            val_dataset=protocol.dataset("val") if self.validation is not None else None,
            early_stopping=self.early_stopping, trainer_kwargs=self.trainer_kwargs)
        self.module_ = module
        self.window_ = w
        self.signature_ = sig
        self.spatial_ = series.spatial
        self.seed_ = seed
        return self

    # -- sampling
    def _sample_series(self, values: np.ndarray, n_samples: int, segments=None) -> np.ndarray:
        """Imputations of ``values`` ``[T, N, C]``: float64 ``[S, T, N, C]``, observed entries exact
        (``segments``: independent samples, see :meth:`imputed_blocks`)."""
        from tsdiff.data.lazy import ArraySource

        checks.check_model_range(self.module_.scaler, values, "X",
                                 columns=[str(c) for c in getattr(self, "feature_names_in_", [])] or None)
        out = np.empty((n_samples,) + values.shape, dtype=np.float64)
        for a, _, draws in self.imputed_blocks(ArraySource(values), n_samples, segments=segments):
            out[:, a: a + draws.shape[1]] = draws
        return out

    def _panel_input(self, X):
        """The :class:`~tsdiff.api.panels.Panel` of ``X`` checked against the fitted features, or None."""
        panel = as_panel(X)
        if panel is None:
            return None
        if panel.n_features != self.n_features_in_:
            raise DataError(f"X has {panel.n_features} features per sample, but the imputer was fitted on "
                            f"{self.n_features_in_}; pass samples with the same features")
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is not None and panel.columns is not None and [str(c) for c in panel.columns] != [
                str(c) for c in fitted]:
            raise DataError(f"X's columns {panel.columns} differ from the fitted {list(fitted)}; pass the same "
                            "columns in the same order")
        return panel

    def _sample_panel(self, panel, n_samples: int) -> list[np.ndarray]:
        """Per sample, float64 ``[S, L_i, F]``: each imputed from its own values only."""
        values = panel.concatenated()[:, :, None]
        segments = list(zip(panel.offsets().tolist(), panel.lengths))
        draws = self._sample_series(values, n_samples, segments=segments)[..., 0]
        return panel.split(draws, axis=1)

    def imputed_blocks(self, source, n_samples: int | None = None, segments=None
                       ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Imputations of a series read window by window, in time order (bounded memory).

        Args:
            source: the data ``[T, N, C]`` (NaN = missing) as anything with ``shape`` and
                ``window(start, length)``: e.g. :func:`tsdiff.data.datasets.files.open_source` on a
                netCDF or ``.npy`` file, :class:`~tsdiff.data.adapters.grid.GridSource` on a
                dask-backed xarray grid, or :class:`~tsdiff.data.lazy.ArraySource` on an array.
            n_samples: imputations per window (default: ``n_samples``).
            segments: ``[(first row, rows), ...]`` of independent samples that tile the rows
                (a panel's); windows stay inside one sample, and so does the prior's view
                beyond a window's edges. None: the rows are one series.
        Yields:
            ``(start, values, draws)`` for consecutive row blocks that together cover all T
            steps: ``values`` float64 ``[rows, N, C]`` as read and ``draws`` float64
            ``[n_samples, rows, N, C]``, equal to ``values`` bit for bit on observed entries.

        Windows of ``window_`` rows cover the data (the last one aligned with the end). Windows
        without a missing entry are copied, not sampled; the others are sampled ``batch_size``
        at a time from one noise generator, so the draws equal :meth:`sample`'s on the same
        data whatever reads them. Memory: one batch of windows and its draws.
        """
        from tsdiff.api.streaming import imputed_blocks

        return imputed_blocks(self, source, n_samples, segments)

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
        if grids.is_grid(X):
            return grids.sample(self, X, n)
        panel = self._panel_input(X)
        if panel is not None:  # [S, n, L, F] for a 3-D panel, a list of [S, L_i, F] for a list
            parts = self._sample_panel(panel, n)
            return np.stack(parts, axis=1) if panel.stacked else parts
        arr = self._validate(X, reset=False)
        return self._sample_series(arr[:, :, None], n)[..., 0]

    def impute(self, X, n_samples: int | None = None):
        """Draws of the missing entries of a table ``X`` ``[T, F]`` (an array or a DataFrame) with
        their summaries: a :class:`tsdiff.imputation.Imputation` (``filled``, ``quantile``,
        ``interval``, ``std``, ``to_pandas``, ``to_xarray``). Its ``filled`` equals
        :meth:`transform`'s result and its quantiles :meth:`quantiles`' on the same draws."""
        from tsdiff.imputation import Imputation

        if grids.is_grid(X) or as_panel(X) is not None:
            raise DataError("impute takes one table [T, F]; for a panel or an xarray grid use sample / transform / "
                            "quantiles, which keep its layout")
        draws = self.sample(X, n_samples)
        arr = self._validate(X, reset=False)
        index = X.index if isinstance(X, pd.DataFrame) else None
        columns = [str(c) for c in getattr(self, "feature_names_in_", [f"x{i}" for i in range(arr.shape[1])])]
        return Imputation(draws, np.isnan(arr), index=index, columns=columns, point=self.point)

    def transform(self, X) -> np.ndarray:
        """Fill the NaN of ``X`` ``[T, F]``: float64 ``[T, F]``, observed entries bit for bit.

        A panel of independent samples (``[n, L, F]``, or a list of ``[L_i, F]`` arrays or
        DataFrames, see :mod:`tsdiff.api.panels`) comes back in the same layout, each sample
        imputed from its own values only; an xarray grid comes back as the same type, dims,
        coordinates and attributes (:mod:`tsdiff.api.grids`).

        The masked entries of a numpy masked array are missing too; it gets a masked array
        back (with nothing masked). A gap is never NaN/inf: that is a DataError instead.
        """
        self._fitted()
        if grids.is_grid(X):
            return grids.transform(self, X)
        panel = self._panel_input(X)
        if panel is not None:
            return panel.result([self._fill(a, draws) for a, draws in
                                 zip(panel.arrays, self._sample_panel(panel, self.n_samples))])
        arr = self._validate(X, reset=False)
        draws = self._sample_series(arr[:, :, None], self.n_samples)[..., 0] if np.isnan(arr).any() else None
        out = self._fill(arr, draws)
        # a numpy masked array in, a masked array out (nothing masked: every entry has a value)
        return np.ma.MaskedArray(out, mask=np.zeros(out.shape, dtype=bool)) if isinstance(X, np.ma.MaskedArray) \
            else out

    def _fill(self, arr: np.ndarray, draws: np.ndarray | None) -> np.ndarray:
        """``arr`` with its NaN replaced by the point summary of ``draws`` ``[S, *arr.shape]``."""
        missing = np.isnan(arr)
        out = arr.copy() if draws is None or not missing.any() else np.where(
            missing, point_summary(draws, self.point), arr)
        checks.check_finite_gaps(out[missing], "the imputed values")
        return out

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
        if grids.is_grid(X):
            self._fitted()
            return grids.quantiles(self, X, qs, checks.check_n_samples(n_samples or self.n_samples))
        draws = self.sample(X, n_samples)
        if isinstance(draws, list):  # a list panel: [Q, L_i, F] per sample
            return [sample_quantile(d, qs, axis=0) for d in draws]
        out = sample_quantile(draws, qs, axis=0)
        return [like_transform(self, v, X) for v in out] if wants_container(self) and out.ndim == 3 else out

    def std(self, X, n_samples: int | None = None):
        """Sample standard deviation per entry ``[T, F]`` (0 on observed entries): the imputation uncertainty
        (a DataFrame like :meth:`transform`'s with ``set_output(transform="pandas")``)."""
        from tsdiff.sklearn_compat import like_transform

        if grids.is_grid(X):
            self._fitted()
            return grids.std(self, X, checks.check_n_samples(n_samples or self.n_samples))
        draws = self.sample(X, n_samples)
        if isinstance(draws, list) or draws.ndim == 4:  # a panel: its own layout
            return [checks.finite_reduce(np.std, d, axis=0) for d in draws] if isinstance(draws, list) \
                else checks.finite_reduce(np.std, draws, axis=0)
        return like_transform(self, checks.finite_reduce(np.std, draws, axis=0), X)

    # -- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write weights + settings + data signature to ``path`` (loaded with ``weights_only=True``)."""
        from tsdiff.training.checkpoint import save_model

        self._fitted()
        state = {"n_features_in_": int(self.n_features_in_) if hasattr(self, "n_features_in_") else None,
                 "feature_names_in_": [_plain_label(c) for c in getattr(self, "feature_names_in_", [])] or None,
                 "freq_": self.freq_ if hasattr(self, "freq_") else None, "window_": int(self.window_),
                 "seed_": int(self.seed_)}
        api = {"format": API_FORMAT, "kind": "Imputer", "params": persistence._api_params(self),
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

