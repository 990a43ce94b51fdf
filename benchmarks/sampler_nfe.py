"""CRPS and sampling time against the number of network evaluations (NFE), per sampler.

Evaluates one trained model on its protocol's test split with several samplers and step
counts (every setting with the same seed and the same test windows), writes one result
record per setting and a PNG of CRPS versus NFE with the reference sampler's CRPS +-3%
band. The plot is drawn from every record in the output folder, so settings may be run
in several invocations.

A setting is ``SAMPLER:STEPS`` optionally followed by ``:key=value,key=value`` sampler
options (values read as YAML), e.g. ``dpm_solver_pp:10:spacing=log_snr`` or
``ddim:10:eta=0.5``; a list is written with slashes, e.g. visited times tuned by
``tune_times.py``: ``ddpm:6:spacing=49/42/36/22/7/0``. ``ddpm:8:variance=analytic`` estimates
the sampler's ``eps_sq_norm`` once on the first 64 validation windows and records it in the
setting's ``sampler_options``.

    python benchmarks/sampler_nfe.py runs/csdi_aqi36/model.pt \
        --settings ddpm:50 ddim:10 heun:5 dpm_solver_pp:10:spacing=log_snr \
        --n-samples 16 --limit-windows 24 --out benchmarks/records/aqi36/sampler_nfe

``--limit-windows K`` scores only the first ``K`` test windows (the records say so in
``subset``); ``--split val`` scores validation windows instead (to choose a setting without
the test split; labels end in ``_val``); ``--device`` places the model (default: CUDA when
available); ``--plot-only`` redraws the figure from the records in ``--out``.

A long setting can be split over processes by windows: ``--windows 0:3``, ``3:6``, ...
write shard records under ``OUT/shards/``; ``--merge`` then combines the shards of each
setting into one record exactly (CRPS is a ratio of sums: the shards' quantile-loss
sums are recovered from their CRPS and ``sum |y|`` over their scored targets).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

DEFAULT_SETTINGS = ["ddpm:50", "ddim:5", "ddim:10", "ddim:20", "heun:3", "heun:5", "heun:10",
                    "dpm_solver_pp:5", "dpm_solver_pp:10", "dpm_solver_pp:20"]
PLOT_NAME = "crps_vs_nfe.png"


def parse_setting(text: str) -> tuple[str, int, dict]:
    """``"ddim:10:eta=0.5,spacing=quadratic"`` -> ``("ddim", 10, {"eta": 0.5, "spacing": "quadratic"})``.

    A list value is written with slashes: ``ddpm:6:spacing=49/42/36/22/7/0``.
    """
    import yaml

    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) < 1:
        raise SystemExit(f"setting {text!r} must look like SAMPLER:STEPS[:key=value,...], e.g. ddim:10")
    options = {}
    if len(parts) == 3 and parts[2]:
        for item in parts[2].split(","):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SystemExit(f"option {item!r} of setting {text!r} must look like key=value")
            # a list is written with slashes (commas separate options): spacing=49/42/36/22/7/0
            options[key] = [yaml.safe_load(v) for v in value.split("/")] if "/" in value else yaml.safe_load(value)
    return parts[0], int(parts[1]), options


def parse_window_range(text: str) -> tuple[int, int]:
    """``"A:B"`` -> ``(A, B)`` with ``0 <= A < B`` (windows ``A .. B - 1``); ValueError otherwise."""
    a, _, b = text.partition(":")
    if not (a.isdigit() and b.isdigit() and int(a) < int(b)):
        raise ValueError(f"--windows must look like A:B with A < B, got {text!r}")
    return int(a), int(b)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class WindowSlice:
    """A protocol whose splits keep only windows ``start <= i < stop`` (for sharded runs)."""

    def __init__(self, protocol, start: int, stop: int) -> None:
        self._protocol, self.start, self.stop = protocol, start, stop

    def dataset(self, split: str):
        from torch.utils.data import Subset

        full = self._protocol.dataset(split)
        return Subset(full, range(min(self.start, len(full)), min(self.stop, len(full))))

    def __getattr__(self, name: str):
        return getattr(self._protocol, name)


def abs_target_sum(module, protocol, dataset) -> float:
    """``sum |y|`` over the scored targets of ``dataset``, in the space the metrics use."""
    import numpy as np

    total = 0.0
    for i in range(len(dataset)):
        item = dataset[i]
        raw, mask = np.asarray(item["y"], dtype=np.float64), np.asarray(item["score_mask"], dtype=bool)
        target = module.scaler.transform(raw) if protocol.metric_space == "scaled" else raw
        total += float(np.abs(target[mask]).sum())
    return total


def load_with_protocol(model_path: str | Path, device: str = "auto"):
    """``(module, extra, cfg, protocol)``: a trained model on ``device`` (``auto``: CUDA when
    available) and the protocol its saved config names, checked to match the data it was
    trained on."""
    from tsdiff.data import build_protocol
    from tsdiff.training.checkpoint import check_signature, load_model
    from tsdiff.training.devices import resolve_device

    module, extra = load_model(model_path)
    cfg = dict(module.hparams["config"])
    protocol = build_protocol(cfg["data"]["dataset"], cfg["data"]["data_dir"], cfg["data"]["options"])
    check_signature(module.hparams["signature"], protocol.signature)
    return module.to(resolve_device(device)), extra, cfg, protocol


def run(model_path: str, settings: list[str], n_samples: int, out: Path, limit_windows: int | None,
        seed: int, progress: bool, windows: tuple[int, int] | None = None, bf16: bool = False,
        split: str = "test", device: str = "auto") -> list[dict]:
    import lightning as L
    import torch

    from tsdiff.bench.records import git_commit, make_record, setting_label, write_record
    from tsdiff.training.evaluate import evaluate

    git_commit()  # the code that was loaded, before anything can change the checkout
    parsed = [parse_setting(s) for s in settings]  # fail on a typo before any sampling
    model_sha = sha256_of(model_path)
    module, extra, cfg, protocol = load_with_protocol(model_path, device)
    eps_sq_norm = None
    for _, _, options in parsed:  # the analytic variance's statistic, once, on validation windows
        if options.get("variance") == "analytic" and "eps_sq_norm" not in options:
            if eps_sq_norm is None:
                from tsdiff.training.evaluate import estimate_eps_sq_norm

                eps_sq_norm = estimate_eps_sq_norm(module, protocol, "val", seed=seed)
            options["eps_sq_norm"] = eps_sq_norm
    n_test = len(protocol.dataset(split))
    shard = None
    if windows is not None:
        protocol = WindowSlice(protocol, *windows)
        shard = {"start": windows[0], "stop": min(windows[1], n_test),
                 "abs_target_sum": abs_target_sum(module, protocol, protocol.dataset(split))}
    records = []
    for sampler, steps, options in parsed:
        L.seed_everything(seed, verbose=False)
        cpu0 = time.process_time()
        with torch.autocast(module.device.type, dtype=torch.bfloat16, enabled=bf16):
            res = evaluate(module, protocol, split, n_samples=n_samples, sampler=sampler, steps=steps,
                           sampler_options=options, seed=seed, limit_windows=limit_windows, progress=progress)
        cpu_seconds = time.process_time() - cpu0  # compute cost, less sensitive than wall time to a busy machine
        subset = None
        if shard is not None:
            subset = f"shard: {split} windows {shard['start']} to {shard['stop'] - 1} of {n_test}"
        elif res["n_windows"] < n_test:
            subset = (f"first {res['n_windows']} of {n_test} {split} windows "
                      f"({res['metrics'].get('n_targets')} scored targets); every setting uses the same "
                      f"windows and seed {seed}")
        label = setting_label(sampler, steps, options) + ("_bf16" if bf16 else "") + ("" if split == "test" else f"_{split}")
        rec = make_record(
            task=f"{cfg['data']['dataset']}_{cfg['task']}", protocol=protocol.id, model=cfg["model"]["name"],
            sampler=sampler, nfe=res["nfe"], n_samples=n_samples, seed=seed, metrics=res["metrics"],
            train_seconds=extra.get("train_seconds"), sample_seconds=res["sample_seconds"], config=cfg,
            dataset_checksums=protocol.checksums,
            extra={"benchmark": "sampler_nfe", "setting": label, "steps": steps, "sampler_options": options,
                   "split": split, "n_windows": res["n_windows"], "n_test_windows": n_test, "subset": subset,
                   "sample_device": str(module.device),
                   "sample_cpu_seconds": cpu_seconds, "precision": "bf16-mixed" if bf16 else "32-true",
                   "torch_threads": torch.get_num_threads(),
                   "epochs": extra.get("epochs"), "model_file": str(model_path), "model_sha256": model_sha},
        )
        if shard is None:
            write_record(rec, out, f"{cfg['name']}_{label}_s{n_samples}_seed{seed}")
        else:
            rec["shard"] = shard
            write_record(rec, out / "shards", f"{cfg['name']}_{label}_s{n_samples}_seed{seed}_w{shard['start']}-{shard['stop']}")
        records.append(rec)
        print(json.dumps({"setting": label, "nfe": res["nfe"], **res["metrics"],
                          "sample_seconds": round(res["sample_seconds"], 1)}), flush=True)
    return records


def merge_metrics(parts: list[dict], abs_target_sums: list[float], n_windows: list[int]) -> dict:
    """The metrics of the union of disjoint window sets, from each set's metrics.

    Every metric of :class:`tsdiff.metrics.MetricAccumulator` is a ratio of sums, so it
    is recovered exactly from the parts: CRPS, MRE and the weighted quantile losses are
    divided by ``sum |y|`` (weights ``abs_target_sums``); MAE, ensemble CRPS, the interval
    coverages and the PIT histogram by the target count (``n_targets``); RMSE is the root
    of the count-weighted mean square; the energy score is a mean over windows (weights
    ``n_windows``, every window having a scored target, as in every test split here);
    QICE is recomputed from the merged PIT histogram. A metric missing from any part, and
    ``crps_sum`` (its ``sum |y|`` of summed targets is not recorded), is left out.
    """
    import numpy as np

    from tsdiff.metrics.scores import qice_from_histogram

    a, w = np.asarray(abs_target_sums, dtype=np.float64), np.asarray(n_windows, dtype=np.float64)
    n = np.asarray([m["n_targets"] for m in parts], dtype=np.float64)

    def mean(values, weights: np.ndarray):
        """``sum_i weights_i values_i / sum weights`` (numbers or numpy arrays)."""
        return sum(v * k for v, k in zip(values, weights)) / weights.sum()

    def have(key: str) -> bool:
        return all(key in m for m in parts)

    out = {"crps": float(mean([m["crps"] for m in parts], a)), "mae": float(mean([m["mae"] for m in parts], n)),
           "rmse": float(mean([m["rmse"] ** 2 for m in parts], n)) ** 0.5, "n_targets": int(n.sum())}
    weights = {"mre": a, "ensemble_crps": n, "energy_score": w}
    weights.update({key: n for key in parts[0] if key.startswith("coverage_")})
    for key, wts in weights.items():
        if have(key):
            out[key] = float(mean([m[key] for m in parts], wts))
    if have("quantile_loss"):
        out["quantile_loss"] = {q: float(mean([m["quantile_loss"][q] for m in parts], a))
                                for q in parts[0]["quantile_loss"]}
    if have("pit_histogram"):
        hist = mean([np.asarray(m["pit_histogram"], dtype=np.float64) for m in parts], n)
        out["qice"] = qice_from_histogram(hist)
        out["pit_histogram"] = [float(f) for f in hist]
    return out


def merge_shards(out: Path) -> list[Path]:
    """Combine the shard records in ``out/shards`` into one record per setting in ``out``.

    Shards must cover consecutive windows from 0 without gaps or overlaps. CRPS is
    ``sum quantile losses / sum |y|``, so the merged CRPS is the ``sum |y|``-weighted
    mean of the shards'; MAE and RMSE combine by target counts, and so on for every
    metric (:func:`merge_metrics`). ``sample_seconds`` is
    the sum over shards (they ran in parallel on a shared machine).
    """
    from tsdiff.bench.records import write_record

    groups: dict[tuple, list[dict]] = {}
    for path in sorted((out / "shards").glob("*.json")):
        r = json.loads(path.read_text())
        key = (r["config"]["name"], r["setting"], r["n_samples"], r["seed"], r["model_sha256"])
        groups.setdefault(key, []).append(r)
    written = []
    for (name, label, n_samples, seed, _), shards in groups.items():
        shards.sort(key=lambda r: r["shard"]["start"])
        stops = [r["shard"]["stop"] for r in shards]
        starts = [r["shard"]["start"] for r in shards]
        if starts[0] != 0 or starts[1:] != stops[:-1]:
            raise SystemExit(f"shards of {label} do not tile windows from 0: {list(zip(starts, stops))}")
        n = [r["metrics"]["n_targets"] for r in shards]
        merged = dict(shards[0])
        merged.pop("shard")
        merged["metrics"] = merge_metrics([r["metrics"] for r in shards],
                                          [r["shard"]["abs_target_sum"] for r in shards],
                                          [r["shard"]["stop"] - r["shard"]["start"] for r in shards])
        merged["n_windows"] = stops[-1]
        merged["sample_seconds"] = sum(r["sample_seconds"] for r in shards)
        if all("sample_cpu_seconds" in r for r in shards):
            merged["sample_cpu_seconds"] = sum(r["sample_cpu_seconds"] for r in shards)
        merged["shards"] = [{"windows": [r["shard"]["start"], r["shard"]["stop"]], "metrics": r["metrics"],
                             "sample_seconds": r["sample_seconds"], "abs_target_sum": r["shard"]["abs_target_sum"]}
                            for r in shards]
        n_test = merged["n_test_windows"]
        merged["subset"] = None if stops[-1] >= n_test else (
            f"first {stops[-1]} of {n_test} test windows ({sum(n)} scored targets), sampled in "
            f"{len(shards)} window shards run in parallel; every setting uses the same windows and seed {seed}")
        written.append(write_record(merged, out, f"{name}_{label}_s{n_samples}_seed{seed}"))
    return written


def load_records(out: Path, split: str = "test") -> list[dict]:
    """The sampler_nfe records of ``split`` in ``out`` (sorted by file name; records written
    before ``--split`` existed are test records)."""
    recs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    return [r for r in recs if r.get("benchmark") == "sampler_nfe" and r.get("split", "test") == split]


def _curve_name(r: dict) -> str:
    opts = {k: v for k, v in (r.get("sampler_options") or {}).items()}
    bf16 = " bf16" if r.get("precision") == "bf16-mixed" else ""
    return r["sampler"] + "".join(f" {k}={v}" for k, v in sorted(opts.items())) + bf16


def plot(records: list[dict], path: Path, reference: tuple[str, int] = ("ddpm", 50)) -> Path:
    """CRPS against NFE, one line per sampler (and options), with the reference's +-3% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    curves: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        curves.setdefault(_curve_name(r), []).append((r["nfe"], r["metrics"]["crps"]))
    for name, pts in sorted(curves.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, label=name)
    ref = [r for r in records if (r["sampler"], r["steps"]) == reference and not r.get("sampler_options")
           and r.get("precision") != "bf16-mixed"]
    if ref:
        c = ref[0]["metrics"]["crps"]
        ax.axhspan(c * 0.97, c * 1.03, color="grey", alpha=0.25, label=f"{reference[0]} {reference[1]} steps +-3%")
    ax.axvline(10, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per sample (NFE)")
    ax.set_ylabel("CRPS")
    if records:
        r0 = records[0]
        ax.set_title(f"{r0['protocol']}: {r0.get('n_windows')} test windows x {r0['n_samples']} samples",
                     fontsize=9)
        lo = min(r["metrics"]["crps"] for r in records)
        ref_c = ref[0]["metrics"]["crps"] if ref else lo
        ax.set_ylim(lo * 0.95, max(ref_c * 1.6, lo * 1.2))  # far-off points (1-2 steps) leave the frame
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def table(records: list[dict]) -> str:
    """Markdown table of the curve: setting, NFE, CRPS, MAE, wall and CPU seconds of sampling."""
    rows = ["| setting | NFE | CRPS | MAE | wall s | CPU s |", "|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["sampler"], r["nfe"], r.get("setting", ""))):
        m = r["metrics"]
        cpu = r.get("sample_cpu_seconds")
        rows.append(f"| {r.get('setting', r['sampler'])} | {r['nfe']} | {m['crps']:.4f} | {m['mae']:.2f} | "
                    f"{r['sample_seconds']:.0f} | {'-' if cpu is None else f'{cpu:.0f}'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="model file written by `tsdiff fit`")
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, help="SAMPLER:STEPS[:key=value,...]")
    p.add_argument("--n-samples", type=int, default=16)
    p.add_argument("--limit-windows", type=int, default=None, help="score only the first K test windows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/records/sampler_nfe")
    p.add_argument("--windows", default=None, help="A:B, sample only test windows A..B-1 (a shard, see --merge)")
    p.add_argument("--merge", action="store_true", help="merge shard records of OUT/shards, then plot")
    p.add_argument("--plot-only", action="store_true", help="redraw the plot from the records in --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--bf16", action="store_true", help="sample under bfloat16 autocast (GPUs; CPUs with AMX)")
    p.add_argument("--split", default="test", choices=["test", "val"],
                   help="windows to score (val: to choose a setting without looking at the test split)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, gpu or cuda:N")
    args = p.parse_args(argv)
    out = Path(args.out)
    windows = None
    if args.windows is not None:
        try:
            windows = parse_window_range(args.windows)
        except ValueError as err:
            p.error(str(err))
    if args.merge:
        for path in merge_shards(out):
            print(f"merged: {path}")
    elif not args.plot_only:
        if args.model is None:
            p.error("a model file is needed unless --plot-only or --merge is given")
        run(args.model, args.settings, args.n_samples, out, args.limit_windows, args.seed, not args.no_progress,
            windows, bf16=args.bf16, split=args.split, device=args.device)
    records = load_records(out)
    print(table(records))
    print(f"plot: {plot(records, out / PLOT_NAME)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
