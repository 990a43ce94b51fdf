"""torch.profiler view of one CSDI training step and one sampling pass, on CPU or CUDA.

Writes the operators with the most self time (CPU time; with ``--device cuda`` the time on
the GPU) and the wall time per step into a record, so hotspots and the effect of a fix are
kept side by side. To profile an older
tsdiff for a before/after comparison, put its source first on the path:

    git archive <commit> tsdiff | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python benchmarks/perf/profile_csdi.py --label before --commit <commit>
    python benchmarks/perf/profile_csdi.py --label after
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RECORDS, contention_note, pin_threads  # noqa: E402


def top_ops(prof, n: int, device: str = "cpu") -> list[dict]:
    """The ``n`` operators with the most self time on ``device`` (``cpu`` or ``cuda``)."""
    def own(e) -> float:
        if device == "cpu":
            return e.self_cpu_time_total
        return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0.0)

    rows = sorted(prof.key_averages(), key=own, reverse=True)
    total = sum(own(e) for e in rows) or 1
    return [{"op": e.key, f"self_{device}_ms": round(own(e) / 1e3, 1), "share": round(own(e) / total, 4),
             "calls": e.count} for e in rows[:n]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/imputation/csdi_aqi36.yaml")
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--data-dir", default=os.environ.get("TSDIFF_DATA"))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=2)
    ap.add_argument("--sample-windows", type=int, default=4)
    ap.add_argument("--n-samples", type=int, default=16)
    ap.add_argument("--sample-steps", type=int, default=3, help="DDPM steps profiled (each is one network pass)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--label", default="after")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--chunk-size", type=int, default=None,
                    help="(window, sample) pairs per sampling pass (default: all of them in one pass)")
    ap.add_argument("--commit", default=None, help="commit of the profiled tsdiff (default: this checkout)")
    ap.add_argument("--out", default=str(RECORDS / "profile"))
    args = ap.parse_args(argv)

    pin_threads(args.threads)
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.data import DataLoader

    import tsdiff
    from tsdiff.config import load_config
    from tsdiff.data import build_protocol
    from tsdiff.experiment import build_module

    cfg = load_config(args.config, list(args.set) + ([f"data.data_dir={args.data_dir}"] if args.data_dir else []))
    protocol = build_protocol(cfg["data"]["dataset"], cfg["data"]["data_dir"], cfg["data"]["options"])
    torch.manual_seed(0)
    device = torch.device(args.device)
    module = build_module(cfg, protocol).to(device)
    gen = torch.Generator().manual_seed(0)
    batch = next(iter(DataLoader(protocol.dataset("train"), batch_size=args.batch_size, shuffle=True, generator=gen)))
    if "cond_mask" not in batch:
        batch["cond_mask"] = module.mask_fn(batch["observed_mask"], gen)
    batch = {k: v.to(device) for k, v in batch.items()}
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step():
        opt.zero_grad()
        module.diffusion_loss(batch).backward()
        opt.step()

    module.train()
    train_step()  # warm-up
    sync()
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            train_step()
        sync()
        train_s = (time.perf_counter() - t0) / args.train_steps
    train_ops = top_ops(prof, args.top, device.type)

    test = protocol.dataset("test")
    items = [test[i] for i in range(args.sample_windows)]
    x = torch.stack([it["x"] for it in items]).to(device)
    cm = torch.stack([it["cond_mask"] for it in items]).to(device)
    tp = torch.stack([it["timepoints"] for it in items]).to(device)
    kw = dict(n_samples=args.n_samples, sampler="ddpm", steps=args.sample_steps,
              chunk_size=args.chunk_size or args.sample_windows * args.n_samples)
    module.sample(x, cm, tp, **kw)  # warm-up
    sync()
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        module.sample(x, cm, tp, **kw)
        sync()
        sample_s = (time.perf_counter() - t0) / args.sample_steps
    sample_ops = top_ops(prof, args.top, device.type)

    from common import perf_record

    paths = args.sample_windows * args.n_samples
    results = {
        "train_step_seconds": train_s, "train_windows_per_s": args.batch_size / train_s, "train_top_ops": train_ops,
        "device": str(device), "sample_pass_seconds": sample_s, "sample_paths_per_pass": kw["chunk_size"],
        "sample_path_steps_per_s": paths / sample_s, "sample_paths": paths, "sample_top_ops": sample_ops,
    }
    rec = perf_record(task=f"{cfg['data']['dataset']}_{cfg['task']}", protocol=protocol.id, model=cfg["model"]["name"],
                      benchmark="profile", config=cfg, results=results, dataset_checksums=protocol.checksums,
                      extra={"label": args.label, "profiled_commit": args.commit, "tsdiff_source": tsdiff.__file__,
                             "note": "times are measured under the profiler (slower than unprofiled runs); compare "
                                     "shares and before/after on the same machine",
                             "contention": contention_note(args.threads)})
    if args.commit:
        rec["git_commit"] = args.commit
    from tsdiff.bench.records import write_record

    suffix = "" if device.type == "cpu" else f"_{device.type}"
    path = write_record(rec, args.out, f"profile_csdi_{cfg['data']['dataset']}{suffix}_{args.label}")
    print(json.dumps({"train_step_s": round(train_s, 3), "sample_pass_s": round(sample_s, 3),
                      "train_top": [(o["op"], o["share"]) for o in train_ops[:6]],
                      "sample_top": [(o["op"], o["share"]) for o in sample_ops[:6]]}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
