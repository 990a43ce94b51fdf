"""Paper-scale runs on one GPU: CSDI on AQI-36 and PhysioNet 10% at the paper configuration,
few-step samplers, the GPU tests, and throughput against PyPOTS's CSDI, inside a fixed budget.

Every stage runs the project's own commands in a child process (``tsdiff fit`` / ``tsdiff
test``, ``benchmarks/sampler_nfe.py``, ``benchmarks/perf/throughput.py``, ``pytest -m gpu``)
with a time limit taken from what is left of ``--budget-s``, and writes its log under
``OUT/logs``. ``OUT/summary.json`` is rewritten after every stage (what ran, how long,
the headline metrics), and with ``--archive`` so is one tarball of ``OUT`` (model files and
records; Lightning checkpoints left out), so a run stopped at any point keeps what it did.

    python benchmarks/gpu/reproduce.py --out /tmp/gpu --archive $OUT/gpu_run.tar.gz \\
        --aqi-epochs 60 --physio-epochs 40

``--tiny`` shrinks every stage to a few batches, windows and samples (the CPU test of this
script runs it that way with ``--device cpu``). ``benchmarks/gpu/run.sh`` is the one command
for a GPU machine; see ``benchmarks/gpu/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("env", "gpu_tests", "aqi36", "throughput", "profile", "physionet")

#: few-step settings tried on each dataset (chosen on validation windows, all reported on test)
AQI_FAST = ["ddpm:4:spacing=log_snr", "ddpm:4:spacing=log_snr,variance=analytic", "ddpm:8:spacing=log_snr",
            "ddpm:8:spacing=log_snr,variance=analytic", "ddim:4", "ddim:10", "dpm_solver_pp:4:spacing=log_snr",
            "dpm_solver_pp:10:spacing=log_snr"]
PHYSIO_FAST = ["ddpm:4:spacing=log_snr,variance=analytic", "ddpm:8:spacing=log_snr,variance=analytic",
               "dpm_solver_pp:10:spacing=log_snr"]
#: the paper configuration of each dataset, and its name in records
DATASETS = {"aqi36": ("configs/imputation/csdi_aqi36.yaml", "csdi_aqi36"),
            "physionet": ("configs/imputation/csdi_physionet.yaml", "csdi_physionet_10pct")}


class Run:
    """Stage bookkeeping: the time left, child processes with logs, the summary and the archive."""

    def __init__(self, args) -> None:
        self.args, self.t0 = args, time.perf_counter()
        self.out = Path(args.out).resolve()
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self.summary: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": vars(args),
                              "stages": {}}
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        if args.data_dir:
            self.env["TSDIFF_DATA"] = str(Path(args.data_dir).resolve())

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def call(self, name: str, argv: list[str], limit: float) -> tuple[int, float]:
        """Run ``argv`` (a child process) with at most ``limit`` seconds; its output goes to
        ``logs/<name>.log``. Returns ``(exit code, seconds)``; 124 when it ran out of time."""
        limit = max(1.0, min(limit, self.left()))
        log = self.out / "logs" / f"{name}.log"
        t = time.perf_counter()
        with open(log, "w") as fh:
            fh.write("$ " + " ".join(argv) + "\n")
            fh.flush()
            try:
                code = subprocess.run(argv, cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                      timeout=limit).returncode
            except subprocess.TimeoutExpired:
                code = 124
                fh.write(f"\n[stopped after {limit:.0f} s: the stage's time limit]\n")
        seconds = time.perf_counter() - t
        print(f"[{time.perf_counter() - self.t0:6.0f} s] {name}: exit {code} in {seconds:.0f} s", flush=True)
        return code, seconds

    def python(self, name: str, args: list[str], limit: float) -> tuple[int, float]:
        return self.call(name, [sys.executable, *args], limit)

    def save(self) -> None:
        self.summary["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=1, default=str))
        if self.args.archive:
            path = Path(self.args.archive)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part")
            with tarfile.open(tmp, "w:gz") as tar:
                tar.add(self.out, arcname="gpu_run", filter=lambda ti: None if "/checkpoints" in ti.name else ti)
            tmp.replace(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def accelerator(args) -> str:
    return "gpu" if args.device == "cuda" else "cpu"


# --------------------------------------------------------------------------- stages
def stage_env(run: Run) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported())
    from importlib import metadata

    for name in ("lightning", "numpy", "pandas", "scipy", "scikit-learn", "torch-geometric", "pypots",
                 "transformers"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    try:
        info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                             "--format=csv,noheader"], capture_output=True, text=True,
                                            timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        info["nvidia_smi"] = None
    return info


def stage_gpu_tests(run: Run) -> dict:
    argv = ["-m", "pytest", "-m", "gpu", "tests/test_gpu.py", "-q", "-p", "no:cacheprovider", "-rA",
            f"--junitxml={run.out / 'logs' / 'gpu_tests.xml'}"]
    if run.args.device != "cuda":  # the CPU check of this script: the GPU tests must at least collect
        argv.append("--collect-only")
    code, seconds = run.python("gpu_tests", argv, 300)
    tail = (run.out / "logs" / "gpu_tests.log").read_text().strip().splitlines()[-1:]
    return {"exit": code, "seconds": round(seconds, 1), "result": tail[0] if tail else ""}


def _metrics_csv(run_dir: Path) -> Path | None:
    found = sorted((run_dir / "logs").glob("version_*/metrics.csv"))
    return found[-1] if found else None


def learning_curve(run_dir: Path) -> list[dict]:
    """Validation loss (and training loss) per epoch from Lightning's CSV log."""
    import csv

    path = _metrics_csv(run_dir)
    if path is None:
        return []
    rows: dict[int, dict] = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            if row.get("epoch", "") == "":
                continue
            epoch = int(float(row["epoch"]))
            cur = rows.setdefault(epoch, {"epoch": epoch})
            for key in ("val_loss", "train_loss_epoch"):
                if row.get(key):
                    cur[key] = float(row[key])
    return [rows[k] for k in sorted(rows)]


def stage_paper(run: Run, key: str, epochs: int, fast: list[str], eval_samples: int,
                limit_windows: int | None, fast_samples: int, fast_val_windows: int | None) -> dict:
    """Train the paper configuration for ``epochs`` epochs, test 50-step ancestral sampling on
    every test window, then the few-step ``fast`` settings on validation and test windows."""
    args = run.args
    config, base = DATASETS[key]
    name = f"{base}_{args.device}_{epochs}ep"
    run_dir, records = run.out / "runs" / key, run.out / "records" / key
    acc = accelerator(args)
    res: dict = {"config": config, "epochs_asked": epochs, "train_precision": args.train_precision}
    train_limit = args.train_minutes.get(key, 4.0) * 60
    max_time = time.strftime("00:%H:%M:%S", time.gmtime(max(60.0, min(train_limit, run.left() - 120))))
    overrides = [f"name={name}", f"trainer.max_epochs={epochs}", f"trainer.accelerator={acc}",
                 f"trainer.precision={args.train_precision}", "trainer.enable_progress_bar=false",
                 f"trainer.max_time={max_time}", f"output.dir={run_dir}", f"output.records_dir={records}",
                 f"data.num_workers={args.num_workers}"]
    if args.data_dir:
        overrides.append(f"data.data_dir={Path(args.data_dir).resolve()}")
    if args.tiny:
        overrides += ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    code, seconds = run.python(f"{key}_fit", ["-m", "tsdiff.cli", "fit", config, *overrides], train_limit + 240)
    res.update(fit_exit=code, fit_wall_s=round(seconds, 1))
    model = run_dir / "model.pt"
    if code != 0 or not model.is_file():
        return res
    fit = json.loads((run_dir / "fit.json").read_text())
    res.update(fit={k: fit.get(k) for k in ("train_seconds", "epochs", "global_steps", "best_val_loss",
                                            "train_windows")},
               model_sha256=sha256(model), learning_curve=learning_curve(run_dir))
    if fit.get("epochs"):
        res["seconds_per_epoch"] = round(fit["train_seconds"] / fit["epochs"], 2)
    run.save()
    if args.fit_only:
        return res
    ev = [f"eval.n_samples={eval_samples}", f"trainer.accelerator={acc}"]
    if limit_windows is not None:
        ev.append(f"eval.limit_windows={limit_windows}")
    t = time.perf_counter()
    code, seconds = run.python(f"{key}_test_ddpm50", ["-m", "tsdiff.cli", "test", str(run_dir), *ev, "--no-progress"],
                               900)
    res.update(test_exit=code, test_wall_s=round(seconds, 1))
    found = sorted(records.glob(f"{name}_test_ddpm*_s{eval_samples}_seed*.json"), key=lambda p: p.stat().st_mtime)
    if code == 0 and found:
        rec = json.loads(found[-1].read_text())
        res["ddpm50"] = {"metrics": rec["metrics"], "sample_seconds": rec["sample_seconds"],
                         "n_windows": rec["n_windows"], "sample_device": rec.get("sample_device"),
                         "record": str(found[-1].relative_to(run.out))}
    res["train_plus_test_wall_s"] = round(res["fit_wall_s"] + (time.perf_counter() - t), 1)
    run.save()
    if fast and run.left() > 60:
        res["fast"] = few_step(run, key, model, fast, fast_samples, fast_val_windows, limit_windows)
    return res


def few_step(run: Run, key: str, model: Path, settings: list[str], n_samples: int, val_windows: int | None,
             test_windows: int | None) -> dict:
    """Every setting on validation windows (the choice) and on the test windows (the report)."""
    script = str(ROOT / "benchmarks" / "sampler_nfe.py")
    out = run.out / "records" / key / "sampler_nfe"
    common = ["--settings", *settings, "--n-samples", str(n_samples), "--out", str(out), "--no-progress",
              "--device", run.args.device]
    res: dict = {}
    for split, limit in (("val", val_windows), ("test", test_windows)):
        argv = [script, str(model), *common, "--split", split]
        if limit is not None:
            argv += ["--limit-windows", str(limit)]
        code, seconds = run.python(f"{key}_fast_{split}", argv, 600)
        res[f"{split}_exit"], res[f"{split}_wall_s"] = code, round(seconds, 1)
    by_split: dict = {"val": {}, "test": {}}
    for path in sorted(out.glob("*.json")):
        rec = json.loads(path.read_text())
        split = rec.get("split", "test")
        by_split.setdefault(split, {})[rec["setting"].removesuffix("_val")] = {
            "nfe": rec["nfe"], "crps": rec["metrics"]["crps"], "mae": rec["metrics"].get("mae"),
            "sample_seconds": round(rec["sample_seconds"], 2)}
    res.update(by_split)
    if by_split["val"]:
        best = min(by_split["val"], key=lambda s: by_split["val"][s]["crps"])
        res["chosen_on_val"] = {"setting": best, "val": by_split["val"][best], "test": by_split["test"].get(best)}
    return res


def stage_throughput(run: Run) -> dict:
    args = run.args
    script = str(ROOT / "benchmarks" / "perf" / "throughput.py")
    out = run.out / "records" / "perf"
    dev = args.device
    size = (["--train-steps", "2", "--repeats", "1", "--sample-windows", "1", "--n-samples", "2"] if args.tiny else
            ["--train-steps", "60", "--repeats", "3", "--sample-windows", "16", "--n-samples", "16"])
    base = [script, "--device", dev, "--threads", "4", "--no-memory-pass", "--out", str(out), *size]
    if args.data_dir:
        base += ["--data-dir", str(Path(args.data_dir).resolve())]
    runs = {"aqi36_fp32": ["--config", DATASETS["aqi36"][0], "--phases", "train", "sample",
                           "--fast", "ddpm:8:spacing=log_snr", "--stem", f"throughput_csdi_aqi36_{dev}"],
            "aqi36_bf16": ["--config", DATASETS["aqi36"][0], "--phases", "train", "sample", "--bf16",
                           "--no-pypots", "--stem", f"throughput_csdi_aqi36_{dev}_bf16"],
            "physionet_fp32": ["--config", DATASETS["physionet"][0], "--phases", "train", "sample",
                               "--stem", f"throughput_csdi_physionet2012_{dev}"]}
    if args.tiny:  # the CPU check: one configuration is enough to exercise the stage
        runs = {"aqi36_fp32": runs["aqi36_fp32"]}
    res: dict = {}
    for label, extra in runs.items():
        if run.left() < 45:
            res[label] = "skipped: out of time"
            continue
        code, seconds = run.python(f"throughput_{label}", [*base, *extra], 240)
        path = out / f"{extra[-1]}.json"
        entry: dict = {"exit": code, "wall_s": round(seconds, 1)}
        if code == 0 and path.is_file():
            rec = json.loads(path.read_text())
            for phase, r in rec["metrics"].items():
                if not isinstance(r, dict):
                    continue
                unit = r["unit"]
                entry[phase] = {lib: round(r[lib][unit], 1) for lib in ("tsdiff", "pypots") if lib in r}
                entry[phase]["unit"] = unit
                if "ratio_tsdiff_over_pypots" in r:
                    entry[phase]["ratio"] = round(r["ratio_tsdiff_over_pypots"], 2)
        res[label] = entry
        run.save()
    return res


def plan(args) -> dict:
    """Epoch counts (and the training precision) from an earlier run's measurements: the
    seconds per epoch of each dataset's fit (``--fit-only`` runs of a few epochs are enough)
    fill ``--train-minutes``, and bf16 training is chosen where it trains at least 1.25x
    faster than float32 (throughput stage). Returns what was decided, with the reasons."""
    prior = json.loads(Path(args.plan_from).read_text())["stages"]
    decided: dict = {"from": str(args.plan_from)}
    tp = prior.get("throughput") or {}
    try:
        fp32, bf16 = tp["aqi36_fp32"]["train"]["tsdiff"], tp["aqi36_bf16"]["train"]["tsdiff"]
        decided["bf16_over_fp32_train"] = round(bf16 / fp32, 3)
        if bf16 >= 1.25 * fp32:
            args.train_precision = "bf16-mixed"
    except (KeyError, TypeError):
        pass
    decided["train_precision"] = args.train_precision
    for key, attr in (("aqi36", "aqi_epochs"), ("physionet", "physio_epochs")):
        spe = (prior.get(key) or {}).get("seconds_per_epoch") if isinstance(prior.get(key), dict) else None
        if spe:
            # the measured epochs include start-up, so this errs on the short side
            epochs = int(max(1, min(200, args.train_minutes.get(key, 4.0) * 60 * 0.92 // spe)))
            setattr(args, attr, epochs)
            decided[key] = {"seconds_per_epoch_measured": spe, "epochs": epochs}
    return decided


def stage_profile(run: Run) -> dict:
    """Operators with the most GPU time in a training step and in a sampling pass at the
    evaluation's shape (2048 (window, sample) pairs per pass, the GPU default chunk)."""
    args = run.args
    size = (["--sample-windows", "1", "--n-samples", "2", "--train-steps", "1", "--sample-steps", "1"] if args.tiny
            else ["--sample-windows", "16", "--n-samples", "128", "--train-steps", "5", "--sample-steps", "3"])
    argv = [str(ROOT / "benchmarks" / "perf" / "profile_csdi.py"), "--device", args.device, "--config",
            DATASETS["aqi36"][0], "--label", "paper_config", "--out", str(run.out / "records" / "perf"), *size]
    if args.data_dir:
        argv += ["--data-dir", str(Path(args.data_dir).resolve())]
    code, seconds = run.python("profile", argv, 180)
    res: dict = {"exit": code, "wall_s": round(seconds, 1)}
    found = sorted((run.out / "records" / "perf").glob("profile_csdi_*.json"))
    if code == 0 and found:
        m = json.loads(found[-1].read_text())["metrics"]
        res.update({k: m[k] for k in ("train_step_seconds", "sample_pass_seconds", "sample_paths_per_pass")},
                   sample_top=[(o["op"], o["share"]) for o in m["sample_top_ops"][:8]],
                   train_top=[(o["op"], o["share"]) for o in m["train_top_ops"][:8]])
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="work folder: runs, records, logs, summary.json")
    p.add_argument("--archive", default=None, help="also keep a .tar.gz of --out here, rewritten after every stage")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--data-dir", default=os.environ.get("TSDIFF_DATA"))
    p.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget of the whole run (default 9 min)")
    p.add_argument("--aqi-epochs", type=int, default=60)
    p.add_argument("--physio-epochs", type=int, default=40)
    p.add_argument("--train-minutes", default="aqi36=4,physionet=1.5",
                   help="cap on each dataset's training time (trainer.max_time), e.g. aqi36=4,physionet=1.5")
    p.add_argument("--train-precision", default="32-true", help="trainer.precision of both trainings")
    p.add_argument("--eval-samples", type=int, default=100)
    p.add_argument("--physio-eval-samples", type=int, default=100)
    p.add_argument("--physio-limit-windows", type=int, default=None, help="score only the first K test windows")
    p.add_argument("--fast-samples", type=int, default=100)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="a few batches, windows and samples per stage (CPU check)")
    p.add_argument("--fit-only", action="store_true", help="train, but do not sample (to time the epochs)")
    p.add_argument("--plan-from", default=None, help="summary.json of an earlier run (e.g. a --fit-only one): "
                   "epochs from its seconds per epoch, bf16 training where its throughput stage shows a gain")
    args = p.parse_args(argv)
    try:
        args.train_minutes = {k: float(v) for k, v in (item.split("=") for item in args.train_minutes.split(","))}
    except ValueError:
        p.error(f"--train-minutes must look like aqi36=4,physionet=1.5, got {args.train_minutes!r}")
    planned = plan(args) if args.plan_from and Path(args.plan_from).is_file() else None
    tiny_windows = 2 if args.tiny else None
    if args.tiny:
        args.aqi_epochs = args.physio_epochs = 1
    run = Run(args)
    if planned is not None:
        run.summary["plan"] = planned
        print("plan:", json.dumps(planned), flush=True)
    for stage in args.stages:
        if run.left() < 20:
            run.summary["stages"][stage] = "skipped: out of time"
            continue
        t = time.perf_counter()
        try:
            if stage == "env":
                res = stage_env(run)
            elif stage == "gpu_tests":
                res = stage_gpu_tests(run)
            elif stage == "aqi36":
                res = stage_paper(run, "aqi36", args.aqi_epochs, ["ddim:2"] if args.tiny else AQI_FAST,
                                  2 if args.tiny else args.eval_samples, tiny_windows,
                                  2 if args.tiny else args.fast_samples, tiny_windows)
            elif stage == "physionet":
                res = stage_paper(run, "physionet", args.physio_epochs, ["ddim:2"] if args.tiny else PHYSIO_FAST,
                                  2 if args.tiny else args.physio_eval_samples,
                                  tiny_windows or args.physio_limit_windows, 2 if args.tiny else args.fast_samples,
                                  tiny_windows or 100)
            elif stage == "profile":
                res = stage_profile(run)
            else:
                res = stage_throughput(run)
        except Exception as exc:  # one stage's failure must not lose the others' results
            res = {"error": f"{type(exc).__name__}: {exc}"}
        if isinstance(res, dict):
            res["stage_wall_s"] = round(time.perf_counter() - t, 1)
        run.summary["stages"][stage] = res
        run.save()
    print(json.dumps(run.summary["stages"], indent=1, default=str)[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
