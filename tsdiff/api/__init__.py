"""The user-facing Python API: :class:`Forecaster`, :class:`Imputer` and their results :class:`Forecast` and :class:`Imputation`.

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

The package: :mod:`~tsdiff.api.inputs` (user data to a Series), :mod:`~tsdiff.api.settings`
(argument checks, seed, prior), :mod:`~tsdiff.api.building` (the CPU preset and the module, built
by :mod:`tsdiff.training.engine`), :mod:`~tsdiff.api.fitting` (training through the engine),
:mod:`~tsdiff.api.sampling` (samples in data units), :mod:`~tsdiff.api.persistence` (model files),
:mod:`~tsdiff.api.forecaster` and :mod:`~tsdiff.api.imputer` (the estimators), :mod:`~tsdiff.api.panels`
and :mod:`~tsdiff.api.forecast_panels` (independent series: the Imputer's and the global Forecaster's).
"""

from __future__ import annotations


from tsdiff.api.building import API_OPTIM, DEFAULT_PROCESS, LINEAR_ATTENTION_FROM, SMALL_MODEL_OPTIONS
from tsdiff.api.fitting import MAX_VAL_WINDOWS
from tsdiff.api.forecaster import Forecaster
from tsdiff.api.imputer import SKLEARN_EXPECTED_FAILED_CHECKS, Imputer
from tsdiff.api.inputs import check_frame, to_series
from tsdiff.api.persistence import API_FORMAT
from tsdiff.api.sampling import sample_windows
from tsdiff.data.series import Series
from tsdiff.forecast import Forecast, PanelForecast
from tsdiff.imputation import Imputation

__all__ = ["API_FORMAT", "API_OPTIM", "DEFAULT_PROCESS", "Forecast", "Forecaster", "Imputation", "Imputer", "LINEAR_ATTENTION_FROM",
           "MAX_VAL_WINDOWS", "PanelForecast", "SKLEARN_EXPECTED_FAILED_CHECKS", "SMALL_MODEL_OPTIONS", "Series", "check_frame",
           "sample_windows", "to_series"]
