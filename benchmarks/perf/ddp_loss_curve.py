"""DDP on CPU: 2 processes (gloo) against 1 process with the same global batch.

Trains the same small CSDI on AQI-36 three times through tsdiff's own Trainer
(``tsdiff.experiment._trainer``, so the ``trainer.strategy`` / ``devices`` /
``num_nodes`` passthrough is what runs):

- ``single``: 1 process, batch ``B``, seed ``s``;
- ``ddp``: ``trainer.strategy=ddp_spawn``, 2 processes, batch ``B / 2`` each, seed ``s``
  (same initial weights, same global batch; each rank draws its own noise);
- ``reseeded``: 1 process, batch ``B``, seed ``s + 1``: how far two equally valid runs
  drift apart, the noise level the DDP difference is judged against.

After every epoch, rank 0 scores the weights with a deterministic loss (eval mode,
fixed validation windows, fixed noise), so the curves compare weights, not the noise
each run happened to draw. Writes one record with the three curves and step times.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/ddp_loss_curve.py --epochs 4 --steps 8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RECORDS, contention_note  # noqa: E402

TINY = ["model.layers=1", "model.channels=16", "model.heads=2", "model.ff_dim=16", "model.diffusion_embedding_dim=16",
        "model.time_embedding_dim=16", "model.feature_embedding_dim=4"]


class DeterministicLossCurve(L.Callback):
    """Rank 0 appends a deterministic loss of the current weights to a JSON file at the
    start of training and after every epoch (eval mode, fixed windows, fixed noise), with
    the optimiser steps taken so far (under ``ddp_spawn`` the training runs in child
    processes, so the parent's trainer never sees the step count)."""

    def __init__(self, path: str, batches: list[dict]) -> None:
        self.path, self.batches = path, batches

    def _score(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        was = module.training
        module.eval()
        with torch.no_grad():
            losses = [module.diffusion_loss(b, generator=torch.Generator().manual_seed(1000 + i)).item()
                      for i, b in enumerate(self.batches)]
        module.train(was)
        state = json.loads(Path(self.path).read_text()) if Path(self.path).exists() else {"curve": []}
        state["curve"].append(sum(losses) / len(losses))
        state["global_step"] = trainer.global_step
        Path(self.path).write_text(json.dumps(state))

    def on_train_start(self, trainer, module) -> None:
        self._score(trainer, module)

    def on_train_epoch_end(self, trainer, module) -> None:
        self._score(trainer, module)


def fixed_batches(protocol, n_windows: int) -> list[dict]:
    from torch.utils.data import DataLoader

    ds = protocol.dataset("val")
    items = [ds[i] for i in range(min(n_windows, len(ds)))]
    batch = next(iter(DataLoader(items, batch_size=len(items))))
    return [{k: batch[k] for k in ("x", "observed_mask", "cond_mask", "timepoints")}]


def train_curve(data_dir: str, out: Path, *, devices: int, strategy: str, batch_size: int, seed: int, epochs: int,
                steps: int, extra: list[str] = ()) -> dict:
    """One training run; returns ``{"curve": [...], "seconds": ..., "steps": ...}``."""
    from tsdiff.config import load_config
    from tsdiff.data import build_protocol
    from tsdiff.experiment import _trainer, build_module
    from tsdiff.training.data import WindowDataModule

    cfg = load_config("configs/imputation/csdi_aqi36.yaml", [
        *TINY, f"data.data_dir={data_dir}", f"data.batch_size={batch_size}", f"seed={seed}",
        f"trainer.max_epochs={epochs}", f"trainer.limit_train_batches={steps}", "trainer.limit_val_batches=1",
        "trainer.accelerator=cpu", f"trainer.devices={devices}", f"trainer.strategy={strategy}",
        "trainer.enable_progress_bar=false", f"output.dir={out}", *extra])
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    data = cfg["data"]
    protocol = build_protocol(data["dataset"], data["data_dir"], data["options"])
    module = build_module(cfg, protocol)
    dm = WindowDataModule(protocol, data["batch_size"], data["num_workers"], seed=cfg["seed"])
    trainer = _trainer(cfg, out)
    curve_file = out / "curve.json"
    trainer.callbacks.append(DeterministicLossCurve(str(curve_file), fixed_batches(protocol, 16)))
    t0 = time.perf_counter()
    trainer.fit(module, dm)
    seconds = time.perf_counter() - t0
    state = json.loads(curve_file.read_text())
    return {"curve": state["curve"], "seconds": seconds, "global_steps": state["global_step"],
            "world_size": trainer.world_size, "strategy": type(trainer.strategy).__name__}


def compare(data_dir: str, *, epochs: int = 3, steps: int = 6, batch_size: int = 16, seed: int = 7,
            workdir: str | None = None) -> dict:
    """The three runs and their differences (see the module docstring)."""
    base = Path(workdir or tempfile.mkdtemp(prefix="tsdiff_ddp_"))
    single = train_curve(data_dir, base / "single", devices=1, strategy="auto", batch_size=batch_size, seed=seed,
                         epochs=epochs, steps=steps)
    ddp = train_curve(data_dir, base / "ddp", devices=2, strategy="ddp_spawn", batch_size=batch_size // 2, seed=seed,
                      epochs=epochs, steps=steps)
    reseeded = train_curve(data_dir, base / "reseeded", devices=1, strategy="auto", batch_size=batch_size,
                           seed=seed + 1, epochs=epochs, steps=steps)
    diff = lambda a, b: max(abs(x - y) for x, y in zip(a["curve"][1:], b["curve"][1:]))  # noqa: E731
    return {"single": single, "ddp": ddp, "reseeded": reseeded,
            "max_abs_diff_ddp_vs_single": diff(ddp, single), "max_abs_diff_reseeded_vs_single": diff(reseeded, single),
            "settings": {"epochs": epochs, "steps_per_epoch": steps, "global_batch": batch_size, "seed": seed,
                         "model": TINY}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("TSDIFF_DATA"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(RECORDS))
    args = ap.parse_args(argv)
    res = compare(args.data_dir, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    from common import perf_record
    from tsdiff.bench.records import write_record

    rec = perf_record(task="aqi36_imputation", protocol="aqi36", model="csdi", benchmark="ddp_loss_curve",
                      config={"overrides": TINY}, results=res, extra={"contention": contention_note(1)})
    path = write_record(rec, args.out, "ddp_loss_curve_csdi_aqi36_cpu")
    print(json.dumps({k: res[k] for k in ("max_abs_diff_ddp_vs_single", "max_abs_diff_reseeded_vs_single")}))
    print({k: [round(v, 4) for v in res[k]["curve"]] for k in ("single", "ddp", "reseeded")})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
