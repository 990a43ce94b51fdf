"""tsdiff: diffusion models for probabilistic forecasting and imputation of time series."""

__version__ = "0.1.0"
