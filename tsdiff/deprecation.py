"""Renamed arguments of the Python API, kept one release as deprecated aliases.

The API's names follow one convention: ``verbose`` (progress bars), ``sampling_steps``
(the sampler's number of steps), ``n_samples`` (sample paths / imputations drawn). The
old names below still work for one release and emit a ``FutureWarning``:

=====================================  ========================
old name                               new name
=====================================  ========================
``Forecaster(progress=...)``           ``verbose``
``Forecaster.predict(progress=...)``   ``verbose``
``Forecaster.predict(steps=...)``      ``sampling_steps``
=====================================  ========================

(``n_samples`` has always been tsdiff's name; GluonTS calls it ``num_samples``.)
"""

from __future__ import annotations

import warnings

from tsdiff.errors import ConfigError

#: ``{(where, old name): new name}`` of the deprecated aliases.
RENAMED = {("Forecaster", "progress"): "verbose", ("Forecaster.predict", "progress"): "verbose",
           ("Forecaster.predict", "steps"): "sampling_steps"}


def renamed(where: str, old: str, old_value, new_value, *, stacklevel: int = 3):
    """The value of a renamed argument: ``new_value``, or ``old_value`` (with a FutureWarning) when the old
    name was given. Both given with different values is a ConfigError."""
    if old_value is None:
        return new_value
    new = RENAMED[(where, old)]
    if new_value is not None and new_value != old_value:
        raise ConfigError(f"{where}: {old}= is the deprecated name of {new}=; pass only {new}={old_value!r}")
    warnings.warn(f"{where}: {old}= is deprecated and will be removed in the next release; use {new}= instead",
                  FutureWarning, stacklevel=stacklevel)
    return old_value
