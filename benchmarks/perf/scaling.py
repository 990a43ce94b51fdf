"""Step time and peak memory of the CSDI network versus N (series / nodes) and L (window length).

For each shape ``[B, L, N, 1]`` and each attention kernel (softmax, linear), times a
training step (forward, masked loss, backward, Adam) and a sampling pass (one network
evaluation without gradients on ``B x S`` paths), and measures the peak RSS above the
start of each phase (glibc returns freed blocks, see ``common.exact_rss_accounting``).
Inputs are random: the cost does not depend on the values.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/scaling.py --out benchmarks/records/perf
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RECORDS, PeakRSS, contention_note, exact_rss_accounting, median, pin_threads,  # noqa: E402
                    random_training_step)


def measure(N: int, L: int, attention: str, args) -> dict:
    import torch

    from tsdiff.diffusion import build_process
    from tsdiff.models import build_model

    torch.manual_seed(0)
    net = build_model({"name": "csdi", "layers": args.layers, "channels": args.channels, "heads": args.heads,
                       "ff_dim": args.ff_dim, "attention": attention}, num_nodes=N, num_channels=1)
    proc = build_process("ddpm", num_steps=50, schedule="quadratic", beta_start=1e-4, beta_end=0.5)
    B = args.batch_size
    train_step, x, cond = random_training_step(net, proc, B, L, N)

    S = args.n_samples
    scond = cond.repeat(S)
    xs = torch.randn(S * B, L, N, 1)
    ts = torch.full((S * B,), 25.0)

    def sample_pass():
        net.eval()
        with torch.inference_mode():
            net(xs, ts, scond)

    out = {"N": N, "L": L, "attention": attention, "batch_size": B, "sample_paths": S * B}
    for name, fn in (("train_step", train_step), ("sample_pass", sample_pass)):
        fn()  # warm-up
        times, peak = [], 0
        for _ in range(args.repeats):
            with PeakRSS() as rss:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            peak = max(peak, rss.delta)
        out[f"{name}_seconds"] = median(times)
        out[f"{name}_peak_rss_bytes"] = peak
    del train_step, net
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ff-dim", type=int, default=64)
    ap.add_argument("--stem", default=None, help="record file name (default: scaling_csdi_cpu_t<threads>)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--n-samples", type=int, default=4, help="samples per window in the sampling pass")
    ap.add_argument("--nodes", type=int, nargs="+", default=[36, 128, 370])
    ap.add_argument("--lengths", type=int, nargs="+", default=[36, 96, 192])
    ap.add_argument("--base-nodes", type=int, default=36)
    ap.add_argument("--base-length", type=int, default=36)
    ap.add_argument("--attention", nargs="+", default=["softmax", "linear"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(RECORDS))
    args = ap.parse_args(argv)
    exact_rss_accounting()
    pin_threads(args.threads)
    shapes = [(n, args.base_length) for n in args.nodes] + [(args.base_nodes, l) for l in args.lengths
                                                            if (args.base_nodes, l) not in
                                                            [(n, args.base_length) for n in args.nodes]]
    rows = []
    for attention in args.attention:
        for N, L in shapes:
            row = measure(N, L, attention, args)
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    from common import perf_record
    from tsdiff.bench.records import write_record

    rec = perf_record(task="synthetic", protocol="none", model="csdi", benchmark="scaling_N_L",
                      config={"layers": args.layers, "channels": args.channels, "heads": args.heads, "ff_dim": args.ff_dim,
                              "batch_size": args.batch_size, "n_samples": args.n_samples},
                      results={"rows": rows}, extra={"contention": contention_note(args.threads)})
    path = write_record(rec, args.out, args.stem or f"scaling_csdi_cpu_t{args.threads}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
