"""Run a benchmark suite: every (entry, task, seed) cell writes one JSON record.

Resumable: a cell whose record already exists and is valid (parses, names the same
run, has metrics) is skipped, so a killed ``tsdiff bench run`` restarted with the same
arguments finishes the grid without redoing finished cells. Records are written
atomically (temporary file + rename), so a killed run never leaves a partial record;
stale temporary files of a killed writer are removed at start.

Baselines are scored here on the protocol's test windows through the scoring loop of the
models, :func:`tsdiff.training.evaluate.score_windows`; model entries are trained and tested
through :mod:`tsdiff.experiment`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tsdiff.bench.baselines import BASELINES, Predictor
from tsdiff.bench.records import git_commit, make_record, write_record
from tsdiff.bench.suite import Run, Suite, model_name, resolve_config_path
from tsdiff.data.protocol import Protocol, build_protocol
from tsdiff.errors import ConfigError, DataError, TsdiffError
from tsdiff.training import evaluate as evaluation

METRIC_SETTINGS = {
    "crps": "normalised 19-quantile CRPS (q=0.05..0.95), nearest-rank sample quantiles as GluonTS",
    "point": "median of samples (MAE/RMSE/MRE)",
    "coverage": "central 50%/90% intervals of nearest-rank sample quantiles, closed",
    "energy_score": "per window over its scored entries, mean over windows",
    "qice": "mean |PIT-bin frequency - 1/10| over 10 PIT bins",
    "deterministic": "one sample: CRPS = MRE, ensemble CRPS = MAE",
    "scored": "held-out entries / observed horizon with ground truth",
}


class PeakMemory:
    """Peak resident memory of this process (and its children) while the block runs, in MiB.

    Sampled every ``interval`` seconds with psutil (the maximum RSS since process start
    from ``resource`` is used if psutil is missing); CUDA peak allocation is added
    separately when a GPU is used.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self.method = "psutil rss sampled every 50 ms"
        self._stop = threading.Event()

    def _rss(self) -> float:
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except Exception:  # child ended
                pass
        return total / 2**20

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self._rss())

    def __enter__(self) -> "PeakMemory":
        try:
            import psutil

            self._proc = psutil.Process()
            self.peak_mb = self._rss()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        except ImportError:
            self._thread = None
            self.method = "resource.getrusage maxrss (process lifetime)"
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb, self._rss())
        else:
            import resource

            self.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def as_dict(self) -> dict:
        out = {"peak_rss_mb": round(self.peak_mb, 1), "method": self.method}
        if torch.cuda.is_available():
            out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return out


# ------------------------------------------------------------------ scoring

def evaluate_predictor(predictor: Predictor, protocol: Protocol, split: str = "test", *,
                       limit_windows: int | None = None, batch_size: int = 16) -> dict:
    """Score a baseline on a split's windows, with the masks and metrics of the models.

    The predictor sees each window with every non-conditioning entry set to NaN;
    conditioning entries of its output are replaced by the raw values (as the models'
    evaluation does); then target entries (``score_mask``) are scored in the
    protocol's metric space.

    Returns:
        ``{"metrics": {...}, "sample_seconds": float, "n_windows": int}``.
    """
    scaled = protocol.metric_space == "scaled"

    def predict(batch: dict) -> tuple[np.ndarray, np.ndarray]:
        y = batch["y"].numpy()
        cond = batch["cond_mask"].numpy()
        values = np.where(cond, y, np.nan)  # the baseline never sees a target
        samples = np.asarray(predictor.predict(values, cond, batch["start"].numpy()), dtype=np.float64)
        if samples.ndim != y.ndim + 1 or samples.shape[1:] != y.shape:
            raise DataError(f"baseline returned samples of shape {samples.shape}; expected [S, *{y.shape}]")
        samples = np.where(cond[None], y[None], samples)
        if scaled:
            return protocol.scaler.transform(samples), protocol.scaler.transform(y)
        return samples, y

    return evaluation.score_windows(protocol, split, evaluation.each_batch(predict), limit_windows=limit_windows, batch_size=batch_size)


# ------------------------------------------------------------------ the grid

def record_is_valid(path: Path, run: Run) -> bool:
    """True if ``path`` holds a finished record of ``run``."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    if not (isinstance(rec, dict) and rec.get("bench", {}).get("run_id") == run.run_id
            and isinstance(rec.get("metrics"), dict) and "crps" in rec["metrics"]):
        return False
    # the suite may have changed since: a record of other settings is not this run's
    return rec.get("bench", {}).get("settings") == run_settings(run)


def run_settings(run: Run) -> dict:
    """What defines a run besides its id: the task's data options and window limit, the
    entry's baseline / config, options, overrides and sampling settings."""
    e, t = run.entry, run.task
    return json.loads(json.dumps({
        "dataset": t.dataset, "options": t.options, "limit_windows": t.limit_windows, "split": t.split,
        "baseline": e.baseline, "model": e.model, "entry_options": e.options, "overrides": e.overrides,
        "n_samples": e.n_samples, "sampler": e.sampler, "steps": e.steps}, default=str))


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Delete temporary files left by a writer killed before its rename."""
    removed = []
    if Path(out_dir).is_dir():
        for p in Path(out_dir).rglob(".*.json.*.tmp"):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class ProtocolCache:
    """Build each (dataset, options) protocol once per process."""

    def __init__(self, data_dir: str | None) -> None:
        self.data_dir = data_dir
        self._cache: dict[str, Protocol] = {}

    def get(self, dataset: str, options: dict) -> Protocol:
        key = json.dumps([dataset, options], sort_keys=True, default=str)
        if key not in self._cache:
            self._cache[key] = build_protocol(dataset, self.data_dir, options)
        return self._cache[key]


def protocol_id(protocol: Protocol, run: Run, n_windows: int) -> str:
    """The protocol id, plus the split and window subset when the task restricts them."""
    pid = protocol.id
    if run.task.split != "test":
        pid += f"@{run.task.split}"
    total = len(protocol.splits[run.task.split])
    if n_windows < total:
        pid += f"@first{n_windows}of{total}windows"
    return pid


def _bench_fields(run: Run, kind: str, peak: PeakMemory, **extra) -> dict:
    return {"bench": {"suite": run.suite, "run_id": run.run_id, "task": run.task.name, "entry": run.entry.name,
                      "kind": kind, "dataset": run.task.dataset, "options": run.task.options,
                      "limit_windows": run.task.limit_windows, "seed": run.seed,
                      "settings": run_settings(run), **extra},
            "peak_memory": peak.as_dict()}


def run_baseline(run: Run, protocol: Protocol) -> dict:
    """Fit and score one baseline cell; returns its record."""
    spec = BASELINES.get(run.entry.baseline)
    protocol = protocol.in_memory()  # baselines fit on whole series (a lazily read file is loaded here)
    np.random.seed(run.seed)
    torch.manual_seed(run.seed)
    with PeakMemory() as peak:
        t0 = time.perf_counter()
        predictor = spec.factory(protocol, seed=run.seed, **run.entry.options)
        fit_seconds = predictor.fit_seconds if predictor.fit_seconds is not None else time.perf_counter() - t0
        res = evaluate_predictor(predictor, protocol, run.task.split, limit_windows=run.task.limit_windows)
    return make_record(
        task=run.task.name, protocol=protocol_id(protocol, run, res["n_windows"]), model=run.entry.name,
        sampler="none", nfe=0, n_samples=predictor.n_samples, seed=run.seed, metrics=res["metrics"],
        train_seconds=fit_seconds, sample_seconds=res["sample_seconds"],
        config={"task": asdict(run.task), "entry": asdict(run.entry)}, dataset_checksums=protocol.checksums,
        extra={"split": run.task.split, "n_windows": res["n_windows"], "protocol_base": protocol.id,
               "metric_space": protocol.metric_space, "units": protocol.meta.get("units", "data units"),
               "metric_settings": METRIC_SETTINGS,
               **_bench_fields(run, "baseline", peak, baseline=run.entry.baseline,
                               deterministic=predictor.deterministic, baseline_info=predictor.info)},
    )


def model_config(run: Run, runs_dir: Path, data_dir: str | None, suite_path: Path | None = None) -> tuple[dict, list]:
    """The training config of a model cell and the test-time overrides.

    The task fixes the dataset, its options and the task kind; the entry's overrides
    apply first, then the cell's seed and output folders.
    """
    from tsdiff.bench.suite import task_kind
    from tsdiff.config import load_config

    e, t = run.entry, run.task
    cell = Path(runs_dir) / run.suite / t.name / f"{e.name}__seed{run.seed}"
    fixed = [f"seed={run.seed}", f"task={task_kind(t)}", f"data.dataset={t.dataset}",
             f"name={e.name}", f"output.dir={cell}",
             f"output.records_dir={cell / 'records'}", "trainer.enable_progress_bar=false"]
    if data_dir is not None:
        fixed.append(f"data.data_dir={data_dir}")
    limit = "null" if t.limit_windows is None else t.limit_windows
    evals = [f"eval.split={t.split}", f"eval.n_samples={e.n_samples}", f"eval.limit_windows={limit}"]
    evals += [f"eval.sampler={e.sampler}"] if e.sampler else []
    evals += [f"eval.steps={e.steps}"] if e.steps is not None else []
    cfg = load_config(resolve_config_path(e.model, suite_path), list(e.overrides) + fixed + evals)
    # The task's options replace the config's (an override would merge into them): every
    # entry of a task runs on exactly the task's protocol.
    cfg["data"]["options"] = dict(t.options)
    return cfg, evals


def run_model(run: Run, protocol: Protocol, runs_dir: Path, data_dir: str | None,
              suite_path: Path | None = None) -> dict:
    """Train a tsdiff model from its config on the task's protocol, test it; returns its record."""
    from tsdiff.experiment import fit, test

    e = run.entry
    cfg, evals = model_config(run, runs_dir, data_dir, suite_path)
    with PeakMemory() as peak:
        path = fit(cfg)
        record, _ = test(path, evals, progress=False)
    record.update(_bench_fields(run, "model", peak, model_name=cfg["model"]["name"], config_file=e.model))
    record["task"], record["model"] = run.task.name, e.name
    record["protocol_base"] = record["protocol"]
    record["protocol"] = protocol_id(protocol, run, record["n_windows"])
    record["metric_space"] = protocol.metric_space
    record["units"] = protocol.meta.get("units", "data units")
    return record


def run_suite(suite: Suite, out_dir: str | Path, *, data_dir: str | None = None, runs_dir: str | Path = "runs/bench",
              kinds: tuple[str, ...] = ("baseline", "model"), tasks: list[str] | None = None,
              entries: list[str] | None = None, seeds: list[int] | None = None, dry_run: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Run every unfinished cell of the suite's grid (filtered by kind / task / entry names / seeds).

    Returns:
        ``{"done": [...], "skipped": [...], "failed": [(run_id, message)], "optional_skipped": [...]}``.
    """
    for what, asked, known in (("task", tasks, list(suite.tasks)), ("entry", entries, [e.name for e in suite.entries])):
        unknown = [a for a in asked or () if a not in known]
        if unknown:
            raise ConfigError(f"suite {suite.name!r} has no {what} named {', '.join(map(repr, unknown))}; "
                              f"its {what} names are: {', '.join(known)}")
    git_commit()  # the code that runs now, fixed before anything slow
    out_dir = Path(out_dir)
    for p in remove_stale_temporaries(out_dir):
        log(f"removed stale temporary file {p}")
    cache = ProtocolCache(data_dir)
    summary: dict = {"done": [], "skipped": [], "failed": [], "optional_skipped": []}
    from tsdiff.models import MODELS

    grid = [r for r in suite.runs() if r.entry.kind in kinds and (not tasks or r.task.name in tasks)
            and (not entries or r.entry.name in entries) and (seeds is None or r.seed in seeds)]
    log(f"suite {suite.name}: {len(grid)} runs -> {out_dir}")
    for i, run in enumerate(grid, 1):
        path = run.record_path(out_dir)
        head = f"[{i}/{len(grid)}] {run.run_id}"
        if record_is_valid(path, run):
            log(f"{head}: done already ({path})")
            summary["skipped"].append(run.run_id)
            continue
        if path.exists():
            log(f"{head}: {path} is incomplete or from other settings: running it again")
        if run.entry.kind == "model":
            mname = model_name(run.entry, suite.path)
            if mname is None or mname not in MODELS:
                why = (f"config {run.entry.model!r} does not exist yet" if mname is None
                       else f"model {mname!r} is not registered (registered: {', '.join(MODELS.names())})")
                log(f"{head}: skipped (optional entry): {why}")
                summary["optional_skipped"].append(run.run_id)
                continue
        if dry_run:
            log(f"{head}: to run")
            continue
        t0 = time.perf_counter()
        try:
            protocol = cache.get(run.task.dataset, run.task.options)
            if run.entry.kind == "baseline":
                record = run_baseline(run, protocol)
            else:
                record = run_model(run, protocol, Path(runs_dir), data_dir, suite.path)
        except TsdiffError as exc:
            log(f"{head}: FAILED: {exc}")
            summary["failed"].append((run.run_id, str(exc)))
            continue
        record["bench"]["wall_seconds"] = time.perf_counter() - t0
        write_record(record, path.parent, path.stem)
        m = record["metrics"]
        log(f"{head}: crps={m['crps']:.4f} mae={m['mae']:.4g} ({record['bench']['wall_seconds']:.1f} s) -> {path}")
        summary["done"].append(run.run_id)
        if suite.throttle_seconds:
            time.sleep(suite.throttle_seconds)
    return summary


def default_out_dir(suite: Suite) -> Path:
    """``benchmarks/records/<suite name>`` (relative to the working directory)."""
    return Path("benchmarks") / "records" / suite.name


__all__ = ["PeakMemory", "evaluate_predictor", "record_is_valid", "run_suite", "default_out_dir"]
