"""CRPS and sampling time against the number of network evaluations (NFE), per sampler.

Evaluates one trained model on its protocol's test split with several samplers and step
counts, writes one result record per setting and a PNG of CRPS versus NFE with the
reference sampler's CRPS +-3% band.

    python benchmarks/sampler_nfe.py runs/csdi_aqi36/model.pt \
        --settings ddpm:50 ddim:5 ddim:10 ddim:20 heun:3 heun:5 heun:10 dpm_solver_pp:5 dpm_solver_pp:10 \
        --n-samples 16 --out benchmarks/records/sampler_nfe
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_SETTINGS = ["ddpm:50", "ddim:5", "ddim:10", "ddim:20", "heun:3", "heun:5", "heun:10",
                    "dpm_solver_pp:5", "dpm_solver_pp:10", "dpm_solver_pp:20"]


def parse_setting(text: str) -> tuple[str, int]:
    name, _, steps = text.partition(":")
    if not steps.isdigit() or int(steps) < 1:
        raise SystemExit(f"setting {text!r} must look like SAMPLER:STEPS, e.g. ddim:10")
    return name, int(steps)


def run(model_path: str, settings: list[str], n_samples: int, out: Path, limit_windows: int | None,
        seed: int, progress: bool) -> list[dict]:
    import lightning as L

    from tsdiff.bench.records import make_record, write_record
    from tsdiff.data import build_protocol
    from tsdiff.training.checkpoint import check_signature, load_model
    from tsdiff.training.evaluate import evaluate

    module, extra = load_model(model_path)
    cfg = dict(module.hparams["config"])
    protocol = build_protocol(cfg["data"]["dataset"], cfg["data"]["data_dir"], cfg["data"]["options"])
    check_signature(module.hparams["signature"], protocol.signature)
    records = []
    for text in settings:
        sampler, steps = parse_setting(text)
        L.seed_everything(seed, verbose=False)
        res = evaluate(module, protocol, "test", n_samples=n_samples, sampler=sampler, steps=steps, seed=seed,
                       limit_windows=limit_windows, progress=progress)
        rec = make_record(
            task=f"{cfg['data']['dataset']}_{cfg['task']}", protocol=protocol.id, model=cfg["model"]["name"],
            sampler=sampler, nfe=res["nfe"], n_samples=n_samples, seed=seed, metrics=res["metrics"],
            train_seconds=extra.get("train_seconds"), sample_seconds=res["sample_seconds"], config=cfg,
            dataset_checksums=protocol.checksums,
            extra={"benchmark": "sampler_nfe", "steps": steps, "n_windows": res["n_windows"],
                   "epochs": extra.get("epochs"), "model_file": str(model_path)},
        )
        write_record(rec, out, f"{cfg['name']}_{sampler}{steps}_s{n_samples}_seed{seed}")
        records.append(rec)
        print(json.dumps({"sampler": sampler, "steps": steps, "nfe": res["nfe"], **res["metrics"],
                          "sample_seconds": round(res["sample_seconds"], 1)}), flush=True)
    return records


def plot(records: list[dict], path: Path, reference: tuple[str, int] = ("ddpm", 50)) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    by_sampler: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        by_sampler.setdefault(r["sampler"], []).append((r["nfe"], r["metrics"]["crps"]))
    for name, pts in sorted(by_sampler.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ref = [r for r in records if (r["sampler"], r["steps"]) == reference]
    if ref:
        c = ref[0]["metrics"]["crps"]
        ax.axhspan(c * 0.97, c * 1.03, color="grey", alpha=0.2, label=f"{reference[0]} {reference[1]} steps +-3%")
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per sample (NFE)")
    ax.set_ylabel("CRPS")
    ax.set_title(records[0]["protocol"] if records else "")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="model file written by `tsdiff fit`")
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, help="SAMPLER:STEPS pairs")
    p.add_argument("--n-samples", type=int, default=16)
    p.add_argument("--limit-windows", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/records/sampler_nfe")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    records = run(args.model, args.settings, args.n_samples, out, args.limit_windows, args.seed, not args.no_progress)
    print(f"plot: {plot(records, out / 'crps_vs_nfe.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
