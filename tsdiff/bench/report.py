"""Render the leaderboard (``benchmarks/LEADERBOARD.md``) and per-task plots from records.

Records of ``tsdiff bench run`` (those with a ``bench`` section) are grouped by suite
and task; within a task, records of different protocol ids are never mixed (that is an
error: the numbers would not be comparable). Each row is one entry: mean and standard
deviation over its seeds (sample std, ``ddof=1``; ``-`` for one run), the protocol,
sampler and NFE, samples per window, and links to the records. The best mean of each
metric in a task is marked in bold (coverage: closest to its nominal level).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from tsdiff.bench.suite import COVERAGE_TARGETS
from tsdiff.errors import DataError
from tsdiff.io import atomic_write
from tsdiff.metrics.scores import calibrated_coverage

DEFAULT_METRICS = ("crps", "crps_sum", "mae", "rmse", "energy_score", "coverage_90", "qice")


def load_records(root: str | os.PathLike) -> tuple[list[dict], int]:
    """Bench records under ``root`` (recursively), each with ``_path``; also the number of
    other JSON files ignored (records without a ``bench`` section, unreadable files)."""
    out, ignored = [], 0
    for p in sorted(Path(root).rglob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            ignored += 1
            continue
        if not isinstance(rec, dict) or "bench" not in rec or "metrics" not in rec:
            ignored += 1
            continue
        rec["_path"] = p
        out.append(rec)
    return out, ignored


def group_records(records: Iterable[dict]) -> dict:
    """``{(suite, task): {entry: [records]}}``; raises if a task mixes protocol ids."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    protocols: dict = defaultdict(dict)
    for rec in records:
        key = (rec["bench"]["suite"], rec["bench"]["task"])
        pid = rec["protocol"]
        first = protocols[key].setdefault(pid, rec["_path"])
        if len(protocols[key]) > 1:
            others = {p: str(path) for p, path in protocols[key].items()}
            raise DataError(
                f"suite {key[0]!r}, task {key[1]!r}: records of different protocols cannot be compared under one "
                f"task: {json.dumps(others)}. Move the records of the other protocol elsewhere or give that run "
                "its own task name"
            )
        del first
        groups[key][rec["bench"]["entry"]].append(rec)
    return groups


def _summary(values: list[float]) -> tuple[float, float | None]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def _fmt(x: float) -> str:
    """4 significant digits (scientific notation outside 1e-4 .. 1e6)."""
    return f"{x:.4g}"


def _best(metric: str, means: dict[str, float]) -> set[str]:
    if not means:
        return set()
    if metric in COVERAGE_TARGETS:
        score = {k: abs(v - COVERAGE_TARGETS[metric]) for k, v in means.items()}
    else:
        score = means
    best = min(score.values())
    return {k for k, v in score.items() if np.isclose(v, best, rtol=1e-12, atol=0)}


def task_table(entries: dict[str, list[dict]], metrics: list[str], link_base: Path) -> tuple[list[str], dict]:
    """Markdown lines of one task's table, and ``{entry: {metric: (mean, std)}}``."""
    stats: dict = {}
    for name, recs in entries.items():
        stats[name] = {}
        for m in metrics:
            vals = [r["metrics"][m] for r in recs if isinstance(r["metrics"].get(m), (int, float))]
            if vals:
                stats[name][m] = _summary(vals)
    shown = [m for m in metrics if any(m in s for s in stats.values())]
    best = {m: _best(m, {n: s[m][0] for n, s in stats.items() if m in s}) for m in shown}
    order = sorted(entries, key=lambda n: stats[n].get(shown[0], (np.inf,))[0] if shown else 0)
    calibrated = [m for m in shown if m in COVERAGE_TARGETS]
    header = (["entry", "kind", "seeds"] + shown + [f"{m} if calibrated" for m in calibrated]
              + ["sampler / NFE", "samples", "train s", "predict s", "records"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in order:
        recs = sorted(entries[name], key=lambda r: r["seed"])
        first = recs[0]
        cells = [name, first["bench"]["kind"] + (" (point)" if first["bench"].get("deterministic") else ""),
                 ",".join(str(r["seed"]) for r in recs)]
        for m in shown:
            if m not in stats[name]:
                cells.append("-")
                continue
            mean, std = stats[name][m]
            text = _fmt(mean) + (f" ± {_fmt(std)}" if std is not None else "")
            cells.append(f"**{text}**" if name in best[m] else text)
        n = int(first["n_samples"])
        cells += [_fmt(calibrated_coverage(n, COVERAGE_TARGETS[m])) if n > 1 else "-" for m in calibrated]
        sampler = "-" if first["sampler"] == "none" else f"{first['sampler']} / {first['nfe']}"
        cells += [sampler, str(first["n_samples"]),
                  _fmt(float(np.mean([r["train_seconds"] or 0.0 for r in recs]))),
                  _fmt(float(np.mean([r["sample_seconds"] for r in recs])))]
        links = " ".join(f"[{r['seed']}]({os.path.relpath(r['_path'], link_base).replace(os.sep, '/')})" for r in recs)
        cells.append(links)
        lines.append("| " + " | ".join(cells) + " |")
    return lines, stats


def headline_table(tasks: dict) -> list[str]:
    """One row per task: the best tsdiff model against the best baseline or peer, by mean CRPS.

    ``tasks``: ``{(suite, task): (entries, stats)}`` as :func:`task_table` gives them. Also the
    model's MAE against linear interpolation's where the task has that baseline (imputation),
    and the model's 90% coverage against what a calibrated ensemble of its size reaches."""
    lines = ["| suite / task | best tsdiff entry (seeds) | CRPS | best baseline or peer | CRPS | ratio "
             "| MAE (linear interpolation) | coverage_90 (if calibrated) |", "|" + "---|" * 8]
    for (suite, task), (entries, stats) in sorted(tasks.items()):
        kind = {n: recs[0]["bench"]["kind"] for n, recs in entries.items()}
        crps = {n: st["crps"][0] for n, st in stats.items() if "crps" in st}
        models = [n for n in crps if kind[n] == "model"]
        bases = [n for n in crps if kind[n] != "model"]
        if not models or not bases:
            continue
        m, b = min(models, key=crps.get), min(bases, key=crps.get)
        ratio = crps[m] / crps[b] if crps[b] > 0 else float("inf")
        mae = "-"
        if "linear_interpolation" in stats and "mae" in stats[m] and "mae" in stats["linear_interpolation"]:
            mm, lm = stats[m]["mae"][0], stats["linear_interpolation"]["mae"][0]
            mae = f"{_fmt(mm)} ({_fmt(lm)})" + (" ✓" if mm <= lm else " ✗")
        cov = "-"
        if "coverage_90" in stats[m]:
            n = int(entries[m][0]["n_samples"])
            cov = f"{_fmt(stats[m]['coverage_90'][0])} ({_fmt(calibrated_coverage(n, 0.9))})"
        seeds = len(entries[m])
        lines.append(f"| {suite} / {task} | {m} ({seeds}) | {_fmt(crps[m])} | {b} | {_fmt(crps[b])} "
                     f"| {ratio:.2f}{' ✓' if ratio <= 1 else ' ✗'} | {mae} | {cov} |")
    return lines


def plot_task(path: Path, title: str, stats: dict, metric: str) -> bool:
    """Bar plot of one metric (mean ± std over seeds) per entry; False if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in stats if metric in stats[n]]
    if not names:
        return False
    names.sort(key=lambda n: stats[n][metric][0])
    means = [stats[n][metric][0] for n in names]
    stds = [stats[n][metric][1] or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh(names, means, xerr=stds, color="tab:blue", alpha=0.8, capsize=3)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} (mean ± std over seeds; lower is better)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    plt.close(fig)
    return True


def render_leaderboard(records_dir: str | os.PathLike = "benchmarks/records",
                       out: str | os.PathLike = "benchmarks/LEADERBOARD.md",
                       metrics: Iterable[str] = DEFAULT_METRICS, plots: bool = True,
                       log: Callable[[str], None] = print) -> Path:
    """Write the leaderboard markdown (and PNG plots next to it, in ``leaderboard/``)."""
    records, ignored = load_records(records_dir)
    if not records:
        raise DataError(f"no benchmark records (JSON files with a 'bench' section) under {str(records_dir)!r}; "
                        "run `tsdiff bench run SUITE.yaml` first")
    groups = group_records(records)
    out = Path(out)
    plot_dir = out.parent / "leaderboard"
    can_plot = plots
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            can_plot = False
            log("matplotlib is not installed: skipping the PNG plots (pip install matplotlib to get them)")
    metrics = list(metrics)
    lines = ["# Leaderboard", "",
             "Generated by `tsdiff bench report` from the records under "
             f"`{os.path.relpath(records_dir, out.parent)}`; do not edit by hand.", "",
             "Mean ± sample std over seeds; **bold** = best in the task (coverage: closest to nominal). "
             "CRPS / CRPS-sum: normalised 19-quantile CRPS (nearest-rank sample quantiles, as GluonTS); MAE / RMSE "
             "of the sample median; energy score per window; coverage of the central 90% interval; QICE over 10 PIT "
             "bins. Coverage if calibrated: the coverage a perfectly calibrated ensemble of the entry's sample count "
             "reaches with these nearest-rank intervals ((hi - lo) / (S + 1): 0.78 for 8 samples, 0.88 for 100); "
             "read an entry's coverage against it. "
             "Point forecasts (one sample) have CRPS = MRE and zero-width intervals. Metrics are in the "
             "protocol's units (PhysioNet: z-scores).", ""]
    tables = {key: task_table(groups[key], metrics, out.parent) for key in sorted(groups)}
    lines += ["## Headline", "",
              "Per task, the tsdiff model with the lowest mean CRPS against the best baseline or peer (ratio "
              "below 1: tsdiff ahead), its MAE against linear interpolation's on imputation tasks, and its 90% "
              "coverage against what a calibrated ensemble of its sample count reaches.", ""]
    lines += headline_table({key: (groups[key], tables[key][1]) for key in tables}) + [""]
    for (suite, task) in sorted(groups):
        entries = groups[(suite, task)]
        any_rec = next(iter(entries.values()))[0]
        lines += [f"## {suite} / {task}", "",
                  f"protocol `{any_rec['protocol']}` ({any_rec['bench']['dataset']}, "
                  f"{any_rec.get('n_windows', '?')} windows, {any_rec['metrics'].get('n_targets', '?')} scored "
                  f"entries, units: {any_rec.get('units', 'data units')})", ""]
        table, stats = tables[(suite, task)]
        lines += table
        if can_plot:
            png = plot_dir / f"{suite}__{task}.png"
            if plot_task(png, f"{suite} / {task} ({any_rec['protocol']})", stats, "crps"):
                lines += ["", f"![{suite} / {task}]({os.path.relpath(png, out.parent).replace(os.sep, '/')})"]
        lines.append("")
    if ignored:
        lines += [f"({ignored} other JSON files under the records folder are not benchmark records and are not "
                  "shown.)", ""]
    text = "\n".join(lines)
    atomic_write(out, lambda fh: fh.write(text), mode="w")
    log(f"wrote {out} ({len(records)} records, {len(groups)} tasks)")
    return out
