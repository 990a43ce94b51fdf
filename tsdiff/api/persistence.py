"""What model files of the estimators keep (constructor arguments, data labels) and how they
load (the device, the kind of estimator)."""

from __future__ import annotations

import copy
import inspect
import warnings

import numpy as np
import torch

from tsdiff.errors import TsdiffError

#: The format tag of the files Forecaster.save / Imputer.save write (files of `tsdiff fit` have none).
API_FORMAT = "tsdiff-api-v1"


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
        command = {"Imputer": "tsdiff impute", "Forecaster": "tsdiff forecast"}.get(api.get("kind"))
        raise TsdiffError(f"{path} holds a tsdiff {api.get('kind')}, not {'an' if kind[0] in 'AEIOU' else 'a'} {kind}; "
                          f"load it with tsdiff.{api.get('kind')}.load()"
                          + (f" (on the command line: {command} --model)" if command else ""))
    return module, api

