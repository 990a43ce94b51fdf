"""Experiment configuration: YAML files merged onto defaults, with command-line overrides.

A config is a nested dict with the sections of :data:`DEFAULTS`. Loading checks every
key against the defaults, so a typo (``trainer.max_epoch``) is an error that names the
valid keys instead of being silently ignored. Sections whose keys depend on a chosen
component (``model``, ``data``'s dataset options, ``eval`` sampler options) are
checked by the component itself when it is built.
"""

from __future__ import annotations

import copy
import difflib
import math
from pathlib import Path
from typing import Any, Mapping

import yaml

from tsdiff.errors import ConfigError

#: Defaults of every section. Values of ``None`` mean "not set".
DEFAULTS: dict[str, Any] = {
    "name": "experiment",
    "task": "imputation",
    "seed": 42,
    "data": {
        "dataset": "aqi36",
        "data_dir": None,
        "batch_size": 16,
        "num_workers": 0,
        "train_mask": "mix",
        "options": {},
    },
    "model": {"name": "csdi"},
    # informative prior (tsdiff.diffusion.priors): none | interpolation | last_value | seasonal (season: steps);
    # scale: auto (the residual's std on training targets) or a number
    "prior": {"name": "none"},
    "process": {
        "name": "ddpm",
        "num_steps": 50,
        "schedule": "quadratic",
        "beta_start": 1.0e-4,
        "beta_end": 0.5,
    },
    # training loss (tsdiff.diffusion.losses): weighting of the squared error per noise level;
    # null: the plain MSE of what the model predicts (model.prediction: eps | x0 | v | velocity)
    "loss": {"weighting": None, "gamma": 5.0},
    "optim": {
        "lr": 1.0e-3,
        "weight_decay": 1.0e-6,
        "milestones": [0.75, 0.9],
        "gamma": 0.1,
        "schedule": "multistep",  # or "cosine" (tsdiff.training.recipe)
        "warmup": 0.0,  # fraction of training with a linearly rising learning rate
        "ema": None,  # decay of an average of the weights kept after training, e.g. 0.995
    },
    "trainer": {
        "max_epochs": 200,
        "max_steps": -1,
        "max_time": None,
        "limit_train_batches": None,
        "limit_val_batches": None,
        "check_val_every_n_epoch": 1,
        "accelerator": "auto",
        "devices": 1,
        "strategy": "auto",  # Lightning strategy: auto, ddp, ddp_spawn (gloo on CPU, nccl on GPU), fsdp, ...
        "num_nodes": 1,  # machines for multi-node DDP (data.batch_size is per process)
        "compile": False,  # torch.compile the network for training (nn.Module.compile; weights keep their names)
        "precision": "32-true",
        "gradient_clip_val": None,  # clip gradients to this norm (or value, see below); None: no clipping
        "gradient_clip_algorithm": None,  # "norm" (Lightning's default when clipping) or "value"
        "checkpoint_every_n_steps": None,  # also checkpoint every n optimiser steps (mid-epoch resume)
        "resume": False,  # true: continue from the newest checkpoint of output.dir; or a .ckpt path
        "enable_progress_bar": True,
        "log_every_n_steps": 10,
        "deterministic": False,
        "accumulate_grad_batches": 1,  # optimiser step every n batches
        # further callbacks: [{class_path: lightning.pytorch.callbacks.EarlyStopping, init_args: {...}}, ...]
        "callbacks": [],
        # null: a CSV log in output.dir/logs; false: none; or {class_path: ..., init_args: {...}}
        "logger": None,
    },
    "eval": {
        "split": "test",
        "n_samples": 100,
        "sampler": "ddpm",
        "steps": None,
        "eta": None,
        "sampler_options": {},  # extra sampler options, e.g. {snr: 0.16, n_corrector: 1} for pc
        "chunk_size": None,  # (window, sample) pairs per network pass; None: 64 on CPU, 2048 on GPU
        "conditioning": "conditional",  # conditional | inpainting | guidance (tsdiff.diffusion.CONDITIONING)
        "conditioning_options": {},  # e.g. {resample: 5} for inpainting, {scale: 1.0} for guidance
        "limit_windows": None,
        "compile": False,  # torch.compile the network for sampling
        "precision": "32-true",  # "bf16-mixed": sample under bfloat16 autocast (GPUs, CPUs with AMX)
    },
    "output": {"dir": "runs/${name}", "records_dir": "results"},
}

#: Values of ``trainer.precision`` (Lightning's names; "bf16-mixed" autocasts to bfloat16, also on CPU).
PRECISIONS = ("32-true", "32", 32, "64-true", "64", 64, "bf16-mixed", "bf16-true", "bf16", "16-mixed", "16-true",
              "16", 16, "transformer-engine", "transformer-engine-float16")

# Sections whose keys are free-form (checked later by the component they configure).
_OPEN_SECTIONS = {("model",), ("data", "options"), ("eval", "sampler_options"), ("eval", "conditioning_options"),
                  ("process",), ("prior",)}
#: Sections whose other keys are options of the component named by their ``name``: a new name
#: starts from that component's own defaults instead of keeping the previous one's options
#: (``process: {name: vp}`` must not inherit DDPM's ``beta_start``).
_NAMED_SECTIONS = {("process",), ("prior",)}


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _merge(base: dict, update: Mapping, path: tuple[str, ...]) -> dict:
    if path in _NAMED_SECTIONS and "name" in update and update["name"] != base.get("name"):
        base.clear()
    for key, value in update.items():
        where = ".".join(path + (str(key),))
        if path in _OPEN_SECTIONS:
            base[key] = copy.deepcopy(value)
            continue
        if key not in base:
            valid = sorted(base)
            raise ConfigError(
                f"unknown config key {where!r}{_suggest(str(key), valid)}; "
                f"valid keys{' in ' + '.'.join(path) if path else ''} are: {', '.join(valid)}"
            )
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key {where!r} must be a mapping (a YAML section), got {value!r}"
                )
            _merge(base[key], value, path + (str(key),))
        else:
            base[key] = copy.deepcopy(value)
    return base


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` into (["a", "b", "c"], value); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(
            f"override {text!r} is not of the form key=value (for example trainer.max_epochs=5)"
        )
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    if isinstance(value, str):
        # YAML 1.1 reads "1e-3" as a string; users mean the number.
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return key.strip().split("."), value


def _nest(keys: list[str], value: Any) -> dict:
    out: Any = value
    for key in reversed(keys):
        out = {key: out}
    return out


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: Mapping | None = None,
) -> dict:
    """Build a config from defaults, an optional YAML file, and ``key=value`` overrides.

    Args:
        path: YAML file with any subset of the sections of :data:`DEFAULTS`.
        overrides: strings like ``"trainer.max_epochs=5"``, applied after the file.
        base: a mapping applied before the file (for example a config saved in a checkpoint).

    Returns:
        The merged config (a new dict). ``${name}`` in ``output.dir`` is expanded.

    Raises:
        ConfigError: unknown keys, a missing or malformed file, malformed overrides.
    """
    cfg = copy.deepcopy(DEFAULTS)
    if base is not None:
        _merge(cfg, base, ())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist; pass a YAML file such as configs/imputation/csdi_aqi36.yaml")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"config file {str(path)!r} must contain a YAML mapping at top level")
        _merge(cfg, loaded, ())
    for text in overrides:
        keys, value = parse_override(text)
        _merge(cfg, _nest(keys, value), ())
    validate_config(cfg)
    return cfg


def validate_config(cfg: Mapping) -> None:
    """Check value ranges of the generic sections; raises ConfigError on the first problem."""

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    data, ev, trainer, optim = cfg["data"], cfg["eval"], cfg["trainer"], cfg["optim"]
    need(isinstance(cfg["seed"], int), f"seed must be an integer, got {cfg['seed']!r}")
    need(isinstance(data["batch_size"], int) and data["batch_size"] >= 1,
         f"data.batch_size must be an integer >= 1, got {data['batch_size']!r}")
    need(isinstance(data["num_workers"], int) and data["num_workers"] >= 0,
         f"data.num_workers must be an integer >= 0, got {data['num_workers']!r}")
    need(isinstance(ev["n_samples"], int) and ev["n_samples"] >= 1,
         f"eval.n_samples must be an integer >= 1, got {ev['n_samples']!r}")
    need(ev["steps"] is None or (isinstance(ev["steps"], int) and ev["steps"] >= 1),
         f"eval.steps must be null (all steps) or an integer >= 1, got {ev['steps']!r}")
    need(ev["chunk_size"] is None or (isinstance(ev["chunk_size"], int) and ev["chunk_size"] >= 1),
         f"eval.chunk_size must be null (automatic) or an integer >= 1, got {ev['chunk_size']!r}")
    need(ev["split"] in ("test", "val"), f"eval.split must be 'test' or 'val', got {ev['split']!r}")
    need(isinstance(trainer["max_epochs"], int) and (trainer["max_epochs"] >= 1 or trainer["max_epochs"] == -1),
         f"trainer.max_epochs must be an integer >= 1 (or -1 for no limit), got {trainer['max_epochs']!r}")
    clip = trainer["gradient_clip_val"]
    need(clip is None or (isinstance(clip, (int, float)) and not isinstance(clip, bool) and 0 < clip < float("inf")),
         f"trainer.gradient_clip_val must be null (no clipping) or a positive number, got {clip!r}")
    need(trainer["gradient_clip_algorithm"] in (None, "norm", "value"),
         f"trainer.gradient_clip_algorithm must be 'norm' or 'value' (or null), got {trainer['gradient_clip_algorithm']!r}")
    every = trainer["checkpoint_every_n_steps"]
    need(every is None or (isinstance(every, int) and not isinstance(every, bool) and every >= 1),
         f"trainer.checkpoint_every_n_steps must be null or an integer >= 1, got {every!r}")
    need(isinstance(trainer["resume"], (bool, str)),
         f"trainer.resume must be true/false or the path of a .ckpt file, got {trainer['resume']!r}")
    need(trainer["precision"] in PRECISIONS,
         f"trainer.precision must be one of {', '.join(map(str, PRECISIONS))}, got {trainer['precision']!r}")
    need(ev["precision"] in ("32-true", "bf16-mixed"),
         f"eval.precision must be '32-true' or 'bf16-mixed', got {ev['precision']!r}")
    need(isinstance(trainer["compile"], bool) and isinstance(ev["compile"], bool),
         f"trainer.compile and eval.compile must be true or false, got {trainer['compile']!r} / {ev['compile']!r}")
    need(isinstance(trainer["strategy"], str) and trainer["strategy"] != "",
         f"trainer.strategy must be a Lightning strategy name (auto, ddp, ddp_spawn, ...), got {trainer['strategy']!r}")
    need(isinstance(trainer["num_nodes"], int) and not isinstance(trainer["num_nodes"], bool) and trainer["num_nodes"] >= 1,
         f"trainer.num_nodes must be an integer >= 1, got {trainer['num_nodes']!r}")
    def number(v) -> bool:  # a real, finite number (YAML's true/.inf/.nan are not)
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    lr = optim["lr"]
    need(number(lr) and lr > 0, f"optim.lr must be a positive number, got {lr!r}")
    need(number(optim["gamma"]) and 0 < optim["gamma"] <= 1,
         f"optim.gamma must be a number in (0, 1] (the learning-rate decay factor), got {optim['gamma']!r}")
    need(number(optim["weight_decay"]) and optim["weight_decay"] >= 0,
         f"optim.weight_decay must be a number >= 0, got {optim['weight_decay']!r}")
    steps = trainer["max_steps"]
    need(isinstance(steps, int) and not isinstance(steps, bool) and steps >= -1,
         f"trainer.max_steps must be -1 (no limit) or an integer >= 0, got {steps!r}")
    for key in ("limit_train_batches", "limit_val_batches"):
        v = trainer[key]
        need(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
             or (number(v) and 0.0 <= v <= 1.0),
             f"trainer.{key} must be null, a number of batches >= 0 or a fraction in [0, 1], got {v!r}")
    from tsdiff.data.masking import TRAIN_MASKS
    from tsdiff.diffusion.priors import check_prior_section

    TRAIN_MASKS.get(data["train_mask"])  # UnknownNameError listing the valid strategies
    check_prior_section(cfg["prior"])  # UnknownNameError listing the valid priors, or a bad option
    need(all(isinstance(m, (int, float)) and 0 < m <= 1 for m in optim["milestones"]),
         f"optim.milestones are fractions of training in (0, 1], got {optim['milestones']!r}")
    from tsdiff.training.recipe import check_optim, parse_duration

    check_optim(optim)
    parse_duration(trainer["max_time"], "trainer.max_time")
    acc = trainer["accumulate_grad_batches"]
    need(isinstance(acc, int) and not isinstance(acc, bool) and acc >= 1,
         f"trainer.accumulate_grad_batches must be an integer >= 1, got {acc!r}")
    from tsdiff.diffusion.components import build_loss
    from tsdiff.training.trainer_options import check_config_entries

    check_config_entries(trainer)  # class paths import, init_args fit: before any data is read

    build_loss(cfg["model"].get("prediction") or "eps", **cfg["loss"])  # names listed on a typo


def resolve_output_dir(cfg: Mapping) -> Path:
    return Path(str(cfg["output"]["dir"]).replace("${name}", str(cfg["name"])))


def dump_config(cfg: Mapping) -> str:
    return yaml.safe_dump(dict(cfg), sort_keys=False)
