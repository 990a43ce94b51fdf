"""The network, process and module an estimator trains: :data:`SMALL_MODEL_OPTIONS` is the
named CPU preset of the model section, resolved into the same config schema as ``tsdiff fit``'s
and built by :func:`tsdiff.training.engine.build_module`."""

from __future__ import annotations

import copy

from tsdiff.config import DEFAULTS as CONFIG_DEFAULTS
from tsdiff.api.settings import _prior_config
from tsdiff.errors import ConfigError
from tsdiff.models.sssd import SSSD_CPU_PRESET

#: Hyper-parameters used when ``model_options`` leaves them out: small enough to train on a CPU in minutes.
SMALL_MODEL_OPTIONS: dict[str, dict] = {
    "csdi": {"layers": 2, "channels": 32, "heads": 4, "ff_dim": 32, "diffusion_embedding_dim": 64,
             "time_embedding_dim": 32, "feature_embedding_dim": 8},
    # predicts x0: predicting the noise after minutes of training gave AQI-36 a CRPS worse than
    # the station mean (tsdiff/models/sssd.py)
    "sssd": dict(SSSD_CPU_PRESET),
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


def _build_module(model_cfg: dict, process_cfg: dict, signature: dict, scaler, *, lr: float, train_mask: str,
                  config: dict, spatial=None, prior=None):
    """The estimator's module: its resolved sections, built by :func:`tsdiff.training.engine.build_module`."""
    from tsdiff.training import engine

    return engine.build_module(model=model_cfg, process=process_cfg, optim={**API_OPTIM, "lr": float(lr)},
                               train_mask=train_mask, signature=signature, scaler=scaler, config=config,
                               spatial=spatial, prior=_prior_config(prior))
