"""Training-step time and peak memory versus window length L: SSSD (S4) against CSDI (attention).

For each family and each L (default 96 ... 4096), one fresh process builds the network on
random data ``[B, L, K, 1]`` and times a training step (forward, masked loss, backward,
Adam) after a warm-up, with the peak RSS above the phase start (``common.PeakRSS``).
Families: ``sssd`` (S4 over time), ``csdi`` with softmax attention, ``csdi_linear``
(linear attention) and ``csdi_s4`` (CSDI with ``temporal: s4``), all at the same depth and
width. A family stops at the first L whose step exceeded ``--max-seconds`` or
``--max-memory-gb``, or whose extrapolation from the two previous lengths (the observed
growth exponent, clamped to [1, 2]) would exceed them; the record keeps the reason. Step
times are the fastest of ``--repeats`` (the median is kept too).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/scaling_length.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RECORDS, PeakRSS, contention_note, exact_rss_accounting, median, parse_or_run_child,  # noqa: E402
                    perf_record, pin_threads, random_training_step)

FAMILIES = {
    "sssd": lambda a: {"name": "sssd", "layers": a.layers, "channels": a.channels, "state_size": a.state_size,
                       "diffusion_embedding_dim": 64, "diffusion_hidden_dim": 128},
    "csdi": lambda a: {"name": "csdi", "layers": a.layers, "channels": a.channels, "heads": 4, "ff_dim": a.channels,
                       "diffusion_embedding_dim": 64, "time_embedding_dim": 32, "feature_embedding_dim": 8},
    "csdi_linear": lambda a: {**FAMILIES["csdi"](a), "attention": "linear"},
    "csdi_s4": lambda a: {**FAMILIES["csdi"](a), "temporal": "s4", "state_size": a.state_size},
}


def child(args) -> dict:
    """One (family, L) measurement in this process."""
    import torch

    from tsdiff.diffusion import build_process
    from tsdiff.models import build_model

    pin_threads(args.threads)
    torch.manual_seed(0)
    L, K, B = int(args.length), args.features, args.batch_size
    net = build_model(FAMILIES[args.family](args), num_nodes=K, num_channels=1)
    proc = build_process("ddpm", num_steps=50, schedule="linear", beta_start=1e-4, beta_end=0.2)
    train_step, _, _ = random_training_step(net, proc, B, L, K)

    train_step()  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        train_step()
        times.append(time.perf_counter() - t0)
    # then one step for memory, with freed blocks returned to the OS (that makes every large
    # allocation a fresh mapping, which slows the step: timed apart)
    exact_rss_accounting()
    with PeakRSS() as rss:
        train_step()
    peak = rss.delta
    # the fastest repeat: the least disturbed by other processes on a shared machine
    return {"family": args.family, "L": L, "train_step_seconds": min(times), "train_step_median_seconds": median(times),
            "peak_rss_bytes": peak,
            "parameters": sum(p.numel() for p in net.parameters())}


def _predict(rows: list[dict], L: int, key: str) -> float | None:
    """Extrapolate ``key`` to ``L`` with the growth exponent of the last two measured lengths."""
    done = [r for r in rows if key in r]
    if len(done) < 2:
        return None
    a, b = done[-2], done[-1]
    if a[key] <= 0 or b[key] <= 0:
        return None
    k = math.log(b[key] / a[key]) / math.log(b["L"] / a["L"])
    # between linear and quadratic: no family grows faster, and a contended timing must not
    # stop a family early
    return b[key] * (L / b["L"]) ** min(max(k, 1.0), 2.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--lengths", type=int, nargs="+", default=[96, 192, 384, 768, 1536, 3072, 4096])
    ap.add_argument("--features", type=int, default=7, help="K series (ETTh1's 7 variables)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--state-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=30.0, help="stop a family beyond this step time")
    ap.add_argument("--max-memory-gb", type=float, default=6.0, help="stop a family beyond this peak RSS")
    ap.add_argument("--stem", default=None)
    ap.add_argument("--out", default=str(RECORDS))
    args = parse_or_run_child(ap, argv, child, ("--family", "--length"))
    if args is None:
        return 0
    rows, stopped = [], {}
    base = ["--threads", str(args.threads), "--features", str(args.features), "--batch-size", str(args.batch_size),
            "--layers", str(args.layers), "--channels", str(args.channels), "--state-size", str(args.state_size),
            "--repeats", str(args.repeats)]
    for fam in args.families:
        mine: list[dict] = []
        for L in args.lengths:
            t_pred = _predict(mine, L, "train_step_seconds")
            m_pred = _predict(mine, L, "peak_rss_bytes")
            if t_pred is not None and t_pred > args.max_seconds:
                stopped[fam] = f"L={L}: predicted step {t_pred:.1f} s > {args.max_seconds} s"
            elif m_pred is not None and m_pred > args.max_memory_gb * 2**30:
                stopped[fam] = f"L={L}: predicted peak {m_pred / 2**30:.1f} GiB > {args.max_memory_gb} GiB"
            if fam in stopped:
                break
            cmd = [sys.executable, __file__, "--child", *base, "--family", fam, "--length", str(L)]
            timeout = 4 * args.max_seconds * (args.repeats + 1) + 60
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                     env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)), check=False)
            except subprocess.TimeoutExpired:
                stopped[fam] = f"L={L}: no result within {timeout:.0f} s"
                break
            if out.returncode != 0:
                last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode
                stopped[fam] = f"L={L}: failed ({last})"
                break
            row = json.loads(out.stdout.strip().splitlines()[-1])
            mine.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
            if row["train_step_seconds"] > args.max_seconds or row["peak_rss_bytes"] > args.max_memory_gb * 2**30:
                stopped[fam] = f"after L={L}: step {row['train_step_seconds']:.1f} s, peak " \
                               f"{row['peak_rss_bytes'] / 2**30:.2f} GiB beyond the bound"
                break
        rows += mine
        if fam in stopped:
            print(f"{fam} stopped: {stopped[fam]}", flush=True)
    growth = {}
    for fam in args.families:
        mine = [r for r in rows if r["family"] == fam]
        if len(mine) >= 2:  # log-log slope from the first to the last length measured
            a, b = mine[0], mine[-1]
            growth[fam] = {k: round(math.log(b[k] / a[k]) / math.log(b["L"] / a["L"]), 3)
                           for k in ("train_step_seconds", "peak_rss_bytes") if a[k] > 0 and b[k] > 0}
    from tsdiff.bench.records import write_record

    rec = perf_record(task="synthetic", protocol="none", model="+".join(args.families), benchmark="scaling_length",
                      config={k: getattr(args, k) for k in ("features", "batch_size", "layers", "channels",
                                                            "state_size", "repeats", "max_seconds", "max_memory_gb")},
                      results={"rows": rows, "stopped": stopped, "growth_exponent": growth},
                      extra={"contention": contention_note(args.threads)})
    path = write_record(rec, args.out, args.stem or f"scaling_length_sssd_csdi_cpu_t{args.threads}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
