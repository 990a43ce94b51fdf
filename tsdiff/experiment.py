"""Run experiments from a config: ``fit`` trains and saves a model, ``test`` evaluates it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch

from tsdiff.bench.records import git_commit, make_record, write_record
from tsdiff.config import load_config, resolve_output_dir
from tsdiff.data import build_protocol
from tsdiff.errors import ConfigError
from tsdiff.io import write_json
from tsdiff.training.checkpoint import check_signature, load_model, save_model
from tsdiff.training.data import WindowDataModule
from tsdiff.training.evaluate import evaluate
from tsdiff.training.module import DiffusionModule

MODEL_FILE = "model.pt"


def _trainer(cfg: dict, out: Path) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    t = dict(cfg["trainer"])
    kwargs = {k: v for k, v in t.items() if v is not None}
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val_loss", mode="min",
                           save_last=True, save_top_k=1)
    return L.Trainer(default_root_dir=out, logger=CSVLogger(out, name="logs"), callbacks=[ckpt],
                     enable_model_summary=False, **kwargs)


def fit(cfg: dict) -> Path:
    """Train the configured model; writes ``<output.dir>/model.pt`` and ``fit.json``.

    The saved weights are those with the lowest validation loss.
    """
    code_version = git_commit()  # before anything slow: the code that is running now
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    out = resolve_output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    data = cfg["data"]
    protocol = build_protocol(data["dataset"], data["data_dir"], data["options"])
    module = DiffusionModule(
        model=cfg["model"], process=cfg["process"], optim=cfg["optim"], train_mask=data["train_mask"],
        signature=protocol.signature, scaler=protocol.scaler.state_dict(), config=cfg,
    )
    dm = WindowDataModule(protocol, data["batch_size"], data["num_workers"], seed=cfg["seed"])
    trainer = _trainer(cfg, out)
    t0 = time.perf_counter()
    trainer.fit(module, dm)
    train_seconds = time.perf_counter() - t0
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    info = {
        "train_seconds": train_seconds,
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "best_val_loss": float(trainer.checkpoint_callback.best_model_score)
        if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_score is not None else None,
        "train_windows": len(protocol.splits["train"]),
        "git_commit": code_version,
        "dataset_checksums": protocol.checksums,
    }
    path = save_model(module, out / MODEL_FILE, extra=info)
    write_json(out / "fit.json", info)
    print(f"saved model to {path} ({info['epochs']} epochs, {info['global_steps']} steps, {train_seconds:.0f} s)")
    return path


def test(model_path: str | Path, overrides: list[str] | tuple[str, ...] = (), progress: bool = True) -> tuple[dict, Path]:
    """Evaluate a saved model on its protocol's test (or val) split; writes a record.

    ``overrides`` (``key=value``) apply on top of the config saved in the model, e.g.
    ``eval.sampler=ddim eval.steps=10`` or ``data.data_dir=/path``.
    """
    git_commit()  # cache the commit of the code that is running now
    module, extra = load_model(model_path)
    saved_cfg = dict(module.hparams["config"])
    cfg = load_config(None, overrides, base=saved_cfg)
    for section in ("model", "process"):
        if cfg[section] != saved_cfg[section]:
            raise ConfigError(f"the {section} section cannot be overridden at test time; it is fixed by the trained model")
    L.seed_everything(cfg["seed"], verbose=False)
    data, ev = cfg["data"], cfg["eval"]
    protocol = build_protocol(data["dataset"], data["data_dir"], data["options"])
    check_signature(module.hparams["signature"], protocol.signature)
    res = evaluate(
        module, protocol, ev["split"], n_samples=ev["n_samples"], sampler=ev["sampler"], steps=ev["steps"],
        eta=ev["eta"], sampler_options=ev["sampler_options"], batch_size=data["batch_size"],
        chunk_size=ev["chunk_size"], seed=cfg["seed"],
        limit_windows=ev["limit_windows"], progress=progress,
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
               "train_git_commit": extra.get("git_commit")},
    )
    stem = f"{cfg['name']}_{ev['split']}_{ev['sampler']}{ev['steps'] or ''}_s{ev['n_samples']}_seed{cfg['seed']}"
    path = write_record(record, cfg["output"]["records_dir"], stem)
    print(json.dumps({"record": str(path), **res["metrics"], "nfe": res["nfe"],
                      "sample_seconds": round(res["sample_seconds"], 1)}, indent=None))
    return record, path
