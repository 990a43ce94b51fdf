"""Peak memory of sampling a whole test set: bounded by ``eval.chunk_size``, not by the set's size.

Each setting (number of test windows W, chunk size c) runs ``tsdiff.training.evaluate``
with 100 samples per window in a fresh subprocess, and reports the growth of the
process's peak RSS (``getrusage`` ``ru_maxrss``) during evaluation above its peak after
setup (imports, data, model). A fresh process per setting keeps settings from sharing
allocator state.

Memory per network pass does not depend on the sampler's number of steps (every step
runs the same network on the same chunk), so the default runs 1 DDIM step to keep the
CPU time small; ``--sampler ddpm --steps 50`` measures the paper's sampler.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/sampling_memory.py \
        --windows 100 800 --chunks 64 512 --out benchmarks/records/perf
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RECORDS, contention_note, maxrss, run_child  # noqa: E402

SMALL = ["model.layers=1", "model.channels=16", "model.heads=2", "model.ff_dim=16"]


def child(args) -> dict:
    """One setting, in this process: build, then evaluate; returns the RSS peaks."""
    import torch

    torch.set_num_threads(args.threads)
    from tsdiff.config import load_config
    from tsdiff.data import build_protocol
    from tsdiff.training.evaluate import evaluate
    from tsdiff.experiment import build_module

    cfg = load_config(args.config, [*args.set, f"data.data_dir={args.data_dir}"])
    protocol = build_protocol(cfg["data"]["dataset"], cfg["data"]["data_dir"], cfg["data"]["options"])
    torch.manual_seed(0)
    module = build_module(cfg, protocol)
    n_test = len(protocol.dataset("test"))
    W = n_test if args.windows <= 0 else min(args.windows, n_test)
    # touch the windows once, so lazily built data is part of the baseline
    _ = protocol.dataset("test")[0]
    before = maxrss()
    t0 = time.perf_counter()
    res = evaluate(module, protocol, "test", n_samples=args.n_samples, sampler=args.sampler, steps=args.steps,
                   batch_size=args.batch_size, chunk_size=args.chunk, seed=0, limit_windows=W, progress=False)
    seconds = time.perf_counter() - t0
    after = maxrss()
    return {"windows": W, "test_windows": n_test, "chunk_size": args.chunk, "n_samples": args.n_samples,
            "batch_size": args.batch_size, "peak_rss_before_bytes": before, "peak_rss_after_bytes": after,
            "peak_rss_growth_bytes": after - before, "seconds": seconds, "nfe": res["nfe"],
            "crps": res["metrics"].get("crps")}


def run_setting(args, windows: int, chunk: int) -> dict:
    argv = ["--config", args.config, "--data-dir", args.data_dir, "--threads", str(args.threads),
            "--sampler", args.sampler, "--steps", str(args.steps), "--n-samples", str(args.n_samples),
            "--batch-size", str(args.batch_size), "--windows", str(windows), "--chunk", str(chunk), "--set", *args.set]
    return run_child(__file__, argv, args.threads, f"setting windows={windows} chunk={chunk}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/imputation/csdi_physionet.yaml")
    ap.add_argument("--set", nargs="*", default=SMALL)
    ap.add_argument("--data-dir", default=os.environ.get("TSDIFF_DATA"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--n-samples", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16, help="windows per evaluation batch")
    ap.add_argument("--windows", type=int, nargs="+", default=[100, 0], help="test windows (0: the whole test set)")
    ap.add_argument("--chunks", type=int, nargs="+", default=[64, 512])
    ap.add_argument("--chunk", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RECORDS))
    args = ap.parse_args(argv)
    if args.child:
        args.windows = args.windows[0]
        print(json.dumps(child(args)))
        return 0
    rows = []
    for chunk in args.chunks:
        for w in args.windows:
            row = run_setting(args, w, chunk)
            rows.append(row)
            print(f"windows={row['windows']:5d} chunk={chunk:5d}: peak RSS +{row['peak_rss_growth_bytes'] / 2**20:.0f} MiB"
                  f" ({row['seconds']:.0f} s)", flush=True)
    from common import perf_record
    from tsdiff.bench.records import write_record

    rec = perf_record(task="physionet2012_imputation", protocol="physionet2012", model="csdi",
                      benchmark="sampling_memory_vs_chunk", config={"config": args.config, "overrides": args.set},
                      results={"settings": rows}, sampler=args.sampler, nfe=rows[0]["nfe"], n_samples=args.n_samples,
                      extra={"contention": contention_note(args.threads),
                             "note": "ru_maxrss growth during evaluate() in a fresh process per setting; memory per "
                                     "network pass does not depend on the number of sampler steps"})
    path = write_record(rec, args.out, f"sampling_memory_csdi_physionet_{args.sampler}{args.steps}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
