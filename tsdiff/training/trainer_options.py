"""The user's own ``lightning.Trainer`` arguments: ``trainer_kwargs=`` of the estimators, and the
``trainer.callbacks`` / ``trainer.logger`` entries of configs written as ``class_path`` /
``init_args`` (the convention of LightningCLI and jsonargparse)::

    trainer:
      accumulate_grad_batches: 2
      callbacks:
        - class_path: lightning.pytorch.callbacks.EarlyStopping
          init_args: {monitor: val_loss, patience: 3}
      logger:
        class_path: lightning.pytorch.loggers.TensorBoardLogger
        init_args: {save_dir: runs/tb}

Everything is checked before any data is read or any training starts. :func:`quiet_lightning`
is the log level the estimators' training and every sampling run (``Trainer.predict``) run under.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import logging
import warnings

from tsdiff.errors import ConfigError

#: Trainer arguments the estimators set from their own parameters (``max_steps``, ``max_time``,
#: ``device``), which ``trainer_kwargs`` may not give a second time.
OWNED_TRAINER_ARGS = {"max_steps": "max_steps", "max_time": "max_time", "max_epochs": "max_steps",
                      "accelerator": "device", "devices": "device"}


def check_trainer_kwargs(trainer_kwargs, validation) -> None:
    """Refuse ``trainer_kwargs`` that ``lightning.Trainer`` would not take, that repeat an estimator
    parameter, or whose callbacks watch ``val_loss`` while no data are held out.

    Raises:
        ConfigError: naming the argument and the fix.
    """
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    if trainer_kwargs is None:
        return
    if not isinstance(trainer_kwargs, dict) or not all(isinstance(k, str) for k in trainer_kwargs):
        raise ConfigError(f"trainer_kwargs must be a dict of lightning.Trainer arguments, e.g. "
                          f"{{'callbacks': [...], 'logger': CSVLogger('logs')}}; got {trainer_kwargs!r}")
    valid = [k for k in inspect.signature(L.Trainer.__init__).parameters if k != "self"]
    for key in trainer_kwargs:
        if key in OWNED_TRAINER_ARGS:
            raise ConfigError(f"trainer_kwargs[{key!r}]: set the estimator's {OWNED_TRAINER_ARGS[key]}= instead")
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            raise ConfigError(f"trainer_kwargs[{key!r}] is not a lightning.Trainer argument"
                              + (f" (did you mean {close[0]!r}?)" if close else "")
                              + f"; valid arguments are: {', '.join(sorted(valid))}")
    for cb in _their_callbacks(trainer_kwargs):
        if not isinstance(cb, Callback):
            raise ConfigError(f"trainer_kwargs['callbacks'] must hold lightning Callback objects; got {cb!r}")
        if validation is None and getattr(cb, "monitor", None) == "val_loss":
            raise ConfigError(f"{type(cb).__name__} watches val_loss, which exists only with held-out data: "
                              "set validation=0.1 (for example) as well")


def _their_callbacks(trainer_kwargs: dict | None) -> list:
    """The callbacks of ``trainer_kwargs`` as a list (one callback alone is accepted too)."""
    theirs = (trainer_kwargs or {}).get("callbacks") or []
    return list(theirs) if isinstance(theirs, (list, tuple)) else [theirs]


def trainer_arguments(base: dict, callbacks: list, trainer_kwargs: dict | None) -> dict:
    """``lightning.Trainer`` arguments: ``base`` updated by ``trainer_kwargs``, whose callbacks
    come after ``callbacks`` (the estimator's own)."""
    extra = {k: v for k, v in (trainer_kwargs or {}).items() if k != "callbacks"}
    return {**base, **extra, "callbacks": list(callbacks) + _their_callbacks(trainer_kwargs)}


def _resolve(entry, base: type, where: str) -> tuple[type, dict]:
    """The class and constructor arguments a ``{class_path, init_args}`` entry describes; the class
    must be a ``base`` and take those arguments.

    Raises:
        ConfigError: a malformed entry, a class path that does not import, a class that is not a
            ``base``, or init_args the class does not take.
    """
    if not isinstance(entry, dict) or "class_path" not in entry or set(entry) - {"class_path", "init_args"}:
        raise ConfigError(f"{where} must be a mapping with class_path (e.g. lightning.pytorch.callbacks."
                          f"EarlyStopping) and optional init_args; got {entry!r}")
    path, args = entry["class_path"], entry.get("init_args") or {}
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{where}.class_path must be a dotted path such as "
                          f"lightning.pytorch.callbacks.EarlyStopping; got {path!r}")
    if not isinstance(args, dict):
        raise ConfigError(f"{where}.init_args must be a mapping of constructor arguments; got {args!r}")
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: class path {path!r} cannot be imported ({type(exc).__name__}: {exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{where}: {path!r} is not a {base.__module__}.{base.__name__}")
    try:
        inspect.signature(cls).bind(**args)
    except TypeError as exc:
        raise ConfigError(f"{where}: init_args {args!r} do not fit {path} ({exc})") from None
    return cls, args


def _entries(entries, where: str) -> list:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"{where} must be a list of {{class_path, init_args}} entries; got {entries!r}")
    return entries


def check_config_entries(trainer: dict) -> None:
    """Check a config's ``trainer.callbacks`` and ``trainer.logger`` without building them (class
    paths import, the classes are callbacks / loggers, ``init_args`` fit their constructors)."""
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger

    for i, entry in enumerate(_entries(trainer.get("callbacks"), "trainer.callbacks")):
        _resolve(entry, Callback, f"trainer.callbacks[{i}]")
    if trainer.get("logger") not in (None, True, False):
        _resolve(trainer["logger"], Logger, "trainer.logger")


def config_callbacks(entries, where: str = "trainer.callbacks") -> list:
    """The callbacks of a config's ``trainer.callbacks`` list (ConfigError naming a bad entry)."""
    from lightning.pytorch.callbacks import Callback

    built = []
    for i, entry in enumerate(_entries(entries, where)):
        cls, args = _resolve(entry, Callback, f"{where}[{i}]")
        built.append(cls(**args))
    return built


def config_logger(entry, default):
    """The logger of a config's ``trainer.logger``: None or true gives ``default()``, false none,
    a ``{class_path, init_args}`` entry that logger."""
    from lightning.pytorch.loggers import Logger

    if entry is None or entry is True:
        return default()
    if entry is False:
        return False
    cls, args = _resolve(entry, Logger, "trainer.logger")
    return cls(**args)


@contextlib.contextmanager
def quiet_lightning(verbose: bool):
    """Silence Lightning's informational logging (devices found, ...) unless ``verbose``, and
    always the warnings every run of the estimators would raise: data loaders without worker
    processes (the windows are in memory) and Lightning's use of torch's deprecated pytree
    ``LeafSpec``."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)
