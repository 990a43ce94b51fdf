"""scikit-learn helpers of the API: ``set_output`` for the Imputer's summaries, clear ``set_params`` errors.

scikit-learn wraps only ``transform`` / ``fit_transform`` in the container chosen by
``set_output(transform=...)`` (or ``sklearn.set_config(transform_output=...)``).
:func:`like_transform` gives any ``[T, F]`` result of the imputer the same container as
``transform``'s: a DataFrame (pandas or polars) with ``get_feature_names_out()`` as columns
and, for a pandas input, the input's index; a numpy array when no output is configured.
"""

from __future__ import annotations

import difflib

import numpy as np

from tsdiff.errors import ConfigError


def like_transform(estimator, data: np.ndarray, X):
    """``data`` ``[T, F]`` in the container ``estimator.transform(X)`` would return."""
    try:
        from sklearn.utils._set_output import _wrap_data_with_container
    except ImportError:  # pragma: no cover - the private helper moved: plain pandas support
        return _pandas_fallback(estimator, data, X)
    return _wrap_data_with_container("transform", data, X, estimator)


def _pandas_fallback(estimator, data, X):  # pragma: no cover
    import pandas as pd

    config = getattr(estimator, "_sklearn_output_config", {}).get("transform", "default")
    if config != "pandas":
        return data
    index = X.index if isinstance(X, pd.DataFrame) else None
    return pd.DataFrame(data, index=index, columns=estimator.get_feature_names_out())


def wants_container(estimator) -> bool:
    """Whether ``transform`` of ``estimator`` returns a DataFrame (``set_output`` / ``set_config``)."""
    try:
        from sklearn.utils._set_output import _get_output_config

        return _get_output_config("transform", estimator)["dense"] != "default"
    except ImportError:  # pragma: no cover
        return getattr(estimator, "_sklearn_output_config", {}).get("transform", "default") != "default"


def check_param_names(estimator, params) -> None:
    """Refuse ``set_params`` names that are not constructor arguments of ``estimator``: a ConfigError
    (a ValueError, as scikit-learn's) naming the closest valid name and listing them all."""
    valid = estimator._get_param_names()
    unknown = [k for k in params if k not in valid]
    if unknown:
        name = type(estimator).__name__
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"Invalid parameter {unknown[0]!r} for estimator {name}{hint}; valid parameters are: "
                          f"{', '.join(valid)}")
