"""tsdiff: diffusion models for probabilistic forecasting and imputation of time series."""

from tsdiff._version import __version__

#: The user-facing API (imported on first use, so ``import tsdiff`` stays light).
_API = ("Forecaster", "Imputer", "Forecast", "PanelForecast", "Imputation")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from tsdiff import api

        return getattr(api, name)
    raise AttributeError(f"module 'tsdiff' has no attribute {name!r}")
