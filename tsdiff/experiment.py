"""Run experiments from a config: ``fit`` trains and saves a model, ``test`` evaluates it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch

from tsdiff.bench.records import eval_label, git_commit, make_record, write_record
from tsdiff.config import load_config, resolve_output_dir
from tsdiff.data import build_protocol
from tsdiff.diffusion.components import build_conditioning, build_sampler
from tsdiff.diffusion.ddpm import DiscreteDDPM
from tsdiff.errors import ConfigError, DataError
from tsdiff.io import write_json
from tsdiff.training import engine
from tsdiff.training.checkpoint import check_signature, load_model, save_model
from tsdiff.training.data import WindowDataModule
from tsdiff.training.devices import resolve_device
from tsdiff.training.evaluate import evaluate
from tsdiff.training.module import DiffusionModule, needs_stored_eps_sq_norm, sampler_config
from tsdiff.training.recipe import ema_callback, parse_duration
from tsdiff.training.spatial_state import check_same_spatial

MODEL_FILE = "model.pt"


#: Lightning checkpoints under ``<output.dir>/checkpoints``: end of epoch, and every
#: ``trainer.checkpoint_every_n_steps`` optimiser steps.
LAST_CKPT, STEP_CKPT = "last.ckpt", "step.ckpt"


class ResumeStateCallback(L.Callback):
    """Stores what Lightning does not in every checkpoint, and restores it on resume.

    - The global RNG states: training draws its noise, diffusion times and masks from
      the global torch RNG, so a resumed run only continues exactly like an
      uninterrupted one if the RNG continues from the same state.
    - The training loader's position inside the epoch (Lightning sets the loaders up
      while estimating the stepping batches for the LR schedule, before it restores a
      checkpoint, and then skips restoring loader states).

    Everything is plain tensors and lists, so the checkpoint loads with ``weights_only=True``.
    """

    def __init__(self) -> None:
        self._loader_state: dict | None = None

    def state_dict(self) -> dict:
        import random

        import numpy as np

        np_state = np.random.get_state()
        state = {"torch": torch.get_rng_state(), "python": _plain_tuple(random.getstate()),
                 "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        loader = getattr(self, "_trainer", None) and self._trainer.train_dataloader
        if loader is not None and hasattr(loader, "state_dict"):
            state["train_loader"] = loader.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        import random

        import numpy as np

        torch.set_rng_state(state["torch"])
        random.setstate(_tuple(state["python"]))
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        self._loader_state = state.get("train_loader")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the restore, before the first training batch is drawn
        loader = trainer.train_dataloader
        if self._loader_state is not None and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(self._loader_state)
        self._loader_state = None


def _plain_tuple(obj):
    return [_plain_tuple(v) for v in obj] if isinstance(obj, (tuple, list)) else obj


def _tuple(obj):
    return tuple(_tuple(v) for v in obj) if isinstance(obj, list) else obj


def _trainer(cfg: dict, out: Path) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from tsdiff.training.trainer_options import config_callbacks, config_logger

    t = dict(cfg["trainer"])
    every = t.pop("checkpoint_every_n_steps", None)
    t.pop("resume", None)
    t.pop("compile", None)  # applied to the network by fit(), not a Trainer argument
    user_callbacks = config_callbacks(t.pop("callbacks", None))
    logger = config_logger(t.pop("logger", None), lambda: CSVLogger(out, name="logs"))
    kwargs = {k: v for k, v in t.items() if v is not None}
    if "max_time" in kwargs:  # "5min", "00:00:05:00", seconds
        kwargs["max_time"] = parse_duration(kwargs["max_time"], "trainer.max_time")
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val_loss", mode="min",
                           save_last=True, save_top_k=1)
    callbacks = [ckpt, ResumeStateCallback()]
    if cfg["optim"].get("ema") is not None:  # checkpoints then hold the averaged weights
        callbacks.append(ema_callback(cfg["optim"]["ema"]))
    if every:  # a rolling mid-epoch checkpoint to resume from after a crash
        callbacks.append(ModelCheckpoint(dirpath=out / "checkpoints", filename=Path(STEP_CKPT).stem, monitor=None,
                                         every_n_train_steps=every, save_top_k=1, enable_version_counter=False))
    return engine.make_trainer(dict(default_root_dir=out, logger=logger, enable_model_summary=False, **kwargs),
                               callbacks + user_callbacks)


def resume_checkpoint(cfg: dict) -> Path | None:
    """The Lightning checkpoint ``fit`` continues from, per ``trainer.resume``.

    ``false``: none. ``true``: the checkpoint of ``<output.dir>/checkpoints`` with the
    most optimiser steps (the end-of-epoch ``last.ckpt`` or the mid-epoch
    ``step.ckpt``); None when there is none yet (the run starts from scratch).
    Unreadable (e.g. truncated) checkpoints are skipped with a warning. A path: that file.

    Raises:
        ConfigError: ``trainer.resume`` names a file that does not exist or cannot be read.
    """
    import warnings

    resume = cfg["trainer"].get("resume", False)
    if resume is False or resume is None:
        return None

    def steps(path: Path) -> int:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            return int(ckpt["global_step"])
        except Exception as exc:  # truncated / foreign file
            raise ConfigError(f"checkpoint {str(path)!r} cannot be resumed from ({type(exc).__name__}: {exc})") from None

    if isinstance(resume, str) and resume.lower() not in ("true", "last"):
        path = Path(resume)
        if not path.is_file():
            raise ConfigError(f"trainer.resume: checkpoint {resume!r} does not exist; pass true to resume "
                              "from the newest checkpoint of output.dir")
        steps(path)
        return path
    found = []
    for name in (LAST_CKPT, STEP_CKPT):
        path = resolve_output_dir(cfg) / "checkpoints" / name
        if path.is_file():
            try:
                found.append((steps(path), name == LAST_CKPT, path))  # ties: the end-of-epoch one
            except ConfigError as exc:
                warnings.warn(f"skipping an unreadable checkpoint: {exc}", stacklevel=2)
    return max(found)[2] if found else None


def build_module(cfg: dict, protocol) -> DiffusionModule:
    """A fresh (untrained) module for a resolved config and the protocol built from it,
    with the data's graph / grid (``protocol.series.spatial``) for spatial models."""
    return engine.build_module(
        model=cfg["model"], process=cfg["process"], optim=cfg["optim"], train_mask=cfg["data"]["train_mask"],
        signature=protocol.signature, scaler=protocol.scaler, config=cfg, spatial=protocol.series.spatial,
        prior=cfg["prior"], loss=cfg["loss"],
    )


def fit(cfg: dict) -> Path:
    """Train the configured model; writes ``<output.dir>/model.pt`` and ``fit.json``.

    The saved weights are those with the lowest validation loss. With
    ``trainer.resume`` the run continues from a Lightning checkpoint (weights,
    optimiser, scheduler, loop and data-loader position, RNG states), so an
    interrupted run ends exactly as an uninterrupted one in deterministic mode.
    """
    code_version = git_commit()  # before anything slow: the code that is running now
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    out = resolve_output_dir(cfg)
    ckpt_path = resume_checkpoint(cfg)  # a bad trainer.resume fails before anything slow
    out.mkdir(parents=True, exist_ok=True)
    data = cfg["data"]
    protocol = build_protocol(data["dataset"], data["data_dir"], data["options"])
    if protocol.meta.get("config_options"):  # e.g. a data file's absolute path: `tsdiff test` works from any folder
        data = {**data, "options": {**data["options"], **protocol.meta["config_options"]}}
        cfg = {**cfg, "data": data}
    module = build_module(cfg, protocol)
    check_eval_settings(cfg["eval"], module)  # a typo there must not wait for the end of training
    if cfg["trainer"].get("compile"):
        module.net.compile()  # in place: checkpoints keep the plain parameter names
    dm = WindowDataModule(protocol, data["batch_size"], data["num_workers"], seed=cfg["seed"])
    trainer = _trainer(cfg, out)
    if ckpt_path is not None:
        print(f"resuming from {ckpt_path}")
    t0, started = time.perf_counter(), time.time()
    engine.fit(trainer, module, dm, ckpt_path=ckpt_path)
    train_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:  # strategy "ddp" runs this function in every process: rank 0 saves
        return out / MODEL_FILE
    progress = _fit_progress(trainer, out, since=started)
    if progress["best_path"]:
        state = torch.load(progress["best_path"], map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    if needs_stored_eps_sq_norm(cfg["eval"]["sampler"], cfg["eval"]["sampler_options"]):
        # so `tsdiff test` with this config needs nothing more
        from tsdiff.training.evaluate import estimate_eps_sq_norm

        t1 = time.perf_counter()
        try:
            module.to(sampling_device(cfg))  # Lightning hands the module back on the CPU
            module.eps_sq_norm = estimate_eps_sq_norm(module, protocol, "val", seed=cfg["seed"])
            print(f"estimated eps_sq_norm for variance: analytic on validation windows "
                  f"({time.perf_counter() - t1:.0f} s)")
        except DataError as exc:  # the trained weights are saved all the same
            print(f"warning: no eps_sq_norm for variance: analytic ({exc}); the model is saved without it: "
                  f"run `tsdiff calibrate-variance MODEL --split SPLIT` on a split with held-out entries")
    info = {
        "train_seconds": train_seconds,
        "epochs": progress["epochs"],
        "global_steps": progress["global_steps"],
        "best_val_loss": progress["best_val_loss"],
        "train_windows": len(protocol.splits["train"]),
        "git_commit": code_version,
        "dataset_checksums": protocol.checksums,
    }
    path = save_model(module, out / MODEL_FILE, extra=info)
    write_json(out / "fit.json", info)
    print(f"saved model to {path} ({info['epochs']} epochs, {info['global_steps']} steps, {train_seconds:.0f} s)")
    return path


def check_eval_settings(ev: dict, module: DiffusionModule) -> None:
    """Refuse, before any training, an eval section that sampling would refuse later: an
    unknown sampler or conditioning name, an option they do not take, or the analytic
    variance where it cannot be estimated.

    Raises:
        UnknownNameError / ConfigError: naming the valid choices.
    """
    build_sampler(ev["sampler"], **sampler_config(ev["steps"], ev["eta"], options=ev["sampler_options"]))
    build_conditioning(ev["conditioning"], **(ev["conditioning_options"] or {}))
    if needs_stored_eps_sq_norm(ev["sampler"], ev["sampler_options"]) and (
            not isinstance(module.process, DiscreteDDPM) or module.net.autoregressive):
        raise ConfigError("eval.sampler_options variance: analytic needs a discrete DDPM process (process.name: "
                          "ddpm) and a network that is not autoregressive; use variance: small or large")


def _fit_progress(trainer: L.Trainer, out: Path, since: float) -> dict:
    """Epochs, optimiser steps and the best validation checkpoint of a finished ``trainer.fit``.

    Under ``trainer.strategy=ddp_spawn`` training runs in child processes: this process gets
    their final weights back, but its trainer and checkpoint callback never see their steps
    or the best score (Lightning passes back only the best checkpoint's path). They are
    then read from the run's ``last.ckpt``, if the workers wrote it after ``since`` (a
    ``time.time()``).
    """
    cb = trainer.checkpoint_callback
    best_score = cb.best_model_score if cb is not None else None
    info = {"epochs": trainer.current_epoch, "global_steps": trainer.global_step,
            "best_path": cb.best_model_path if cb is not None else "",
            "best_val_loss": None if best_score is None else float(best_score)}
    last = out / "checkpoints" / LAST_CKPT
    if cb is None or trainer.global_step > 0 or not last.is_file() or last.stat().st_mtime < since:
        return info
    state = torch.load(last, map_location="cpu", weights_only=True)
    epoch = state["loops"]["fit_loop"]["epoch_progress"]["current"]
    info.update(global_steps=int(state["global_step"]),
                epochs=int(epoch["completed"]) + int(epoch["processed"] > epoch["completed"]))
    for key, cb_state in state.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and cb_state.get("monitor") == "val_loss":
            score = cb_state.get("best_model_score")
            info.update(best_path=cb_state.get("best_model_path") or "",
                        best_val_loss=None if score is None else float(score))
    return info


def sampling_device(cfg: dict) -> torch.device:
    """The device a run samples on: the first device of ``trainer.accelerator`` /
    ``trainer.devices`` (``auto``: CUDA when available). Raises ConfigError when they
    cannot be honoured (a GPU asked for without CUDA, more devices than there are)."""
    return resolve_device(cfg["trainer"]["accelerator"], cfg["trainer"]["devices"])


def load_run(model_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[DiffusionModule, dict, dict, object]:
    """``(module, extra, cfg, protocol)``: a ``tsdiff fit`` model file, its saved config with
    ``overrides`` (the model and process sections fixed), and the data protocol, checked
    against the model's data signature and graph / grid. The module is on
    :func:`sampling_device` (``trainer.accelerator=cpu`` samples a model on the CPU).

    Raises:
        ConfigError: an override of the model or process section; DataError: data that does
            not match the model.
    """
    module, extra = load_model(model_path)
    saved_cfg = dict(module.hparams["config"] or {})
    if "api" in saved_cfg:  # a tsdiff.Forecaster / Imputer file: no dataset protocol to evaluate on
        kind = saved_cfg["api"].get("kind", "Forecaster")
        raise ConfigError(f"{model_path} was saved by tsdiff.{kind} (the Python API), not by `tsdiff fit`, so it has "
                          f"no dataset protocol to run on; load it with tsdiff.{kind}.load() and call its methods")
    cfg = load_config(None, overrides, base=saved_cfg)
    for section in ("model", "process", "prior"):
        if section in saved_cfg and cfg[section] != saved_cfg[section]:
            raise ConfigError(f"the {section} section cannot be overridden at test time; it is fixed by the trained model")
    device = sampling_device(cfg)  # a GPU asked for without CUDA fails before the data is read
    data = cfg["data"]
    protocol = build_protocol(data["dataset"], data["data_dir"], data["options"])
    check_signature(module.hparams["signature"], protocol.signature)
    check_same_spatial(module.hparams.get("spatial"), protocol.series.spatial)
    return module.to(device), extra, cfg, protocol


def calibrate_variance(model_path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, split: str = "val",
                       limit_windows: int | None = 64, repeats: int = 1, seed: int = 0,
                       out: str | Path | None = None) -> tuple[Path, list[float]]:
    """Estimate ``eps_sq_norm`` (``Gamma_t`` per diffusion step, for the ``ddpm`` sampler's
    ``variance: analytic``) on ``split`` of the model's own data protocol and store it in the
    model file (in place, or in a copy at ``out``). Everything else in the file is kept.

    Returns:
        ``(path written, the estimates)``.
    Raises:
        ConfigError: the model's process is not discrete DDPM, the network is autoregressive,
            or an option is out of range; DataError: the split has no scored entry.
    """
    from tsdiff.training.checkpoint import store_eps_sq_norm
    from tsdiff.training.evaluate import estimate_eps_sq_norm

    module, _, _, protocol = load_run(model_path, overrides)
    gamma = estimate_eps_sq_norm(module, protocol, split, limit_windows=limit_windows, seed=seed, repeats=repeats)
    return store_eps_sq_norm(model_path, gamma, out=out), gamma


def prepare_sampling(module: DiffusionModule, ev: dict) -> None:
    """Applies ``eval.compile`` to the network before sampling. ``eval.precision`` is Lightning's
    precision of ``Trainer.predict`` (:func:`tsdiff.training.prediction.predict_batches`)."""
    if ev.get("compile"):
        module.net.compile()


def test(model_path: str | Path, overrides: list[str] | tuple[str, ...] = (), progress: bool = True) -> tuple[dict, Path]:
    """Evaluate a saved model on its protocol's test (or val) split; writes a record.

    ``overrides`` (``key=value``) apply on top of the config saved in the model, e.g.
    ``eval.sampler=ddim eval.steps=10`` or ``data.data_dir=/path``.
    """
    git_commit()  # cache the commit of the code that is running now
    module, extra, cfg, protocol = load_run(model_path, overrides)
    L.seed_everything(cfg["seed"], verbose=False)
    data, ev = cfg["data"], cfg["eval"]
    prepare_sampling(module, ev)
    res = evaluate(
        module, protocol, ev["split"], n_samples=ev["n_samples"], sampler=ev["sampler"], steps=ev["steps"],
        eta=ev["eta"], sampler_options=ev["sampler_options"], batch_size=data["batch_size"],
        chunk_size=ev["chunk_size"], conditioning=ev["conditioning"],
        conditioning_options=ev["conditioning_options"], seed=cfg["seed"],
        limit_windows=ev["limit_windows"], progress=progress, precision=ev["precision"],
    )
    record = make_record(
        task=f"{data['dataset']}_{cfg['task']}", protocol=protocol.id, model=cfg["model"]["name"],
        sampler=ev["sampler"], nfe=res["nfe"], n_samples=ev["n_samples"], seed=cfg["seed"], metrics=res["metrics"],
        train_seconds=extra.get("train_seconds"), sample_seconds=res["sample_seconds"], config=cfg,
        dataset_checksums=protocol.checksums,
        extra={"split": ev["split"], "n_windows": res["n_windows"], "epochs": extra.get("epochs"),
               "metric_settings": {"crps": "normalised 19-quantile CRPS (q=0.05..0.95), nearest-rank sample "
                                           "quantiles as GluonTS", "point": "median of samples",
                                   "units": protocol.meta.get("units", "data units"),
                                   "scored": "held-out entries with ground truth"},
               "global_steps": extra.get("global_steps"), "model_file": str(model_path),
               "sample_device": str(module.device),
               "train_git_commit": extra.get("git_commit")},
    )
    stem = f"{cfg['name']}_{ev['split']}_{eval_label(ev)}_s{ev['n_samples']}_seed{cfg['seed']}"
    if (Path(cfg["output"]["records_dir"]) / f"{stem}.json").exists():
        print(f"replacing the record of the same settings, {stem}.json")
    path = write_record(record, cfg["output"]["records_dir"], stem)
    print(json.dumps({"record": str(path), **res["metrics"], "nfe": res["nfe"],
                      "sample_seconds": round(res["sample_seconds"], 1)}, indent=None))
    return record, path
