"""Result records: one JSON file per evaluation, with everything needed to trace it."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from tsdiff._version import __version__
from tsdiff.io import write_json

_PACKAGES = ("torch", "lightning", "numpy", "pandas", "scipy", "gluonts", "torch-geometric", "xarray", "scikit-learn",
             "properscoring", "pypots")


def hardware() -> dict:
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and "cpu" not in info:
                    info["cpu"] = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and "cpu_bf16_flags" not in info:
                    # what bfloat16 runs on (AMX tiles, AVX-512 BF16): CPU bf16 timings depend on it
                    flags = set(line.split(":", 1)[1].split())
                    info["cpu_bf16_flags"] = sorted(flags & {"amx_bf16", "avx512_bf16"})
                if "cpu" in info and "cpu_bf16_flags" in info:
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def package_versions() -> dict:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the tsdiff source tree (``+dirty`` with uncommitted changes), or None.

    Computed once per process and cached, so a record names the code that was loaded
    when the run started, even if the checkout changes while it runs. Entry points
    (``fit``, ``test``) call it first thing.
    """
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def make_record(*, task: str, protocol: str, model: str, sampler: str, nfe: int, n_samples: int, seed: int,
                metrics: dict, train_seconds: float | None, sample_seconds: float, config: dict,
                dataset_checksums: dict, extra: dict | None = None) -> dict:
    """Assemble a result record (the fields every evaluation writes)."""
    rec = {
        "task": task,
        "protocol": protocol,
        "model": model,
        "sampler": sampler,
        "nfe": nfe,
        "n_samples": n_samples,
        "seed": seed,
        "metrics": metrics,
        "train_seconds": train_seconds,
        "sample_seconds": sample_seconds,
        "hardware": hardware(),
        "tsdiff_version": __version__,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "dataset_checksums": dataset_checksums,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
    }
    if extra:
        rec.update(extra)
    return rec


def setting_label(sampler: str, steps, options: dict | None = None) -> str:
    """A short, file-name safe label of a sampler setting: ``dpm_solver_pp10_spacing-log_snr``.

    ``steps`` is written as given (``""`` for all steps); options are sorted by name, a list
    value joined by ``-`` (``spacing-42-36-22-11-0``). ``eps_sq_norm`` is left out: it is a
    statistic of the model (the analytic variance), not a choice.
    """
    def value(v) -> str:
        text = "-".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text)

    tail = "".join(f"_{k}-{value(v)}" for k, v in sorted((options or {}).items()) if k != "eps_sq_norm")
    return f"{sampler}{steps}{tail}"


def eval_label(ev: dict) -> str:
    """The part of a ``tsdiff test`` record's file name that tells its evaluation settings
    apart: sampler, steps and options, then each setting that changes the samples when it
    is not the default (``eta``, conditioning and its options, bf16, chunk size, a window
    limit). Default settings give ``ddpm`` alone."""
    parts = [setting_label(ev["sampler"], ev.get("steps") or "", ev.get("sampler_options"))]
    if ev.get("eta") is not None:
        parts.append(f"eta{ev['eta']}")
    if ev.get("conditioning", "conditional") != "conditional":
        parts.append(setting_label(ev["conditioning"], "", ev.get("conditioning_options")))
    if ev.get("precision") == "bf16-mixed":
        parts.append("bf16")
    if ev.get("chunk_size") is not None:
        parts.append(f"chunk{ev['chunk_size']}")
    if ev.get("limit_windows") is not None:
        parts.append(f"w{ev['limit_windows']}")
    return "_".join(parts)


def write_record(record: dict, directory: str | os.PathLike, stem: str | None = None) -> Path:
    """Write a record atomically as ``<directory>/<stem>.json`` and return its path."""
    stem = stem or f"{record['task']}_{record['model']}_{record['sampler']}_seed{record['seed']}"
    return write_json(Path(directory) / f"{stem}.json", record)
