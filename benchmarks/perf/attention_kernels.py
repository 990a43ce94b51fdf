"""Attention kernels against linear layers at CSDI's sampling shapes, on one thread.

Why CSDI sampling is hard to speed up further on a CPU: its attention runs over short
sequences (the window length L for the time layer, the number of features K for the
feature layer) with heads only 8 channels wide, and at that shape every kernel PyTorch
offers does a few GFLOPS, where the linear layers of the same network do tens.

For each shape (one attention call of one layer: ``paths x K`` sequences of length L, or
``paths x L`` sequences of length K; 8 heads of width 8) it times:

- ``sdpa``: ``F.scaled_dot_product_attention`` on the strided q/k/v views that
  ``TransformerLayer`` passes (tsdiff's kernel), in float32 and bfloat16;
- ``explicit``: ``softmax(q k^T / sqrt(d)) v`` as two batched matmuls and a softmax, in
  chunks of sequences that fit the cache;
- ``explicit_noshift``: the same without the softmax's row maximum (exact when the scores
  stay below 80 and no row underflows, which it checks), with the normaliser taken from
  the second matmul by a column of ones appended to v;
- the ``qkv`` projection (``channels -> 3 channels``) over the same tokens, in float32 and
  bfloat16 (AMX where the CPU has it), for scale.

Every variant's output is compared with float32 ``sdpa`` (``max_abs_error``). GFLOPS count
the useful multiply-adds only (``4 T^2 d`` per sequence and head for attention).

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/perf/attention_kernels.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RECORDS, contention_note, median, pin_threads  # noqa: E402

#: (name, sequences, length): one attention call of CSDI's sampling pass, 16 paths
#: (2 windows x 8 samples, as in throughput.py) on AQI-36 (K = L = 36) and PhysioNet (K = 35, L = 48).
SHAPES = (
    ("aqi36_time_and_feature", 16 * 36, 36),
    ("physionet_time", 16 * 35, 48),
    ("physionet_feature", 16 * 48, 35),
)


def explicit(q, k, v, chunk_elems: int = 1 << 18):
    """``softmax(q k^T / sqrt(d)) v`` on ``[S, h, T, d]`` views, in chunks of sequences."""
    import torch

    S, h, T, d = q.shape
    out = torch.empty(S, T, h, d, dtype=q.dtype)
    n = max(1, min(S, chunk_elems // (h * T * T)))
    for i in range(0, S, n):
        j = min(i + n, S)
        m = j - i
        qc = (q[i:j] * d ** -0.5).reshape(m * h, T, d)
        kc = k[i:j].transpose(-1, -2).reshape(m * h, d, T)
        vc = v[i:j].reshape(m * h, T, d)
        o = torch.bmm(torch.bmm(qc, kc).softmax(-1), vc)
        out[i:j].copy_(o.view(m, h, T, d).transpose(1, 2))
    return out.transpose(1, 2)


def explicit_noshift(q, k, v, chunk_elems: int = 1 << 18):
    """As :func:`explicit`, but ``exp`` without the row maximum and the row sums from the
    second matmul (v gets a column of ones). Raises where that would lose precision."""
    import torch

    S, h, T, d = q.shape
    out = torch.empty(S, T, h, d, dtype=q.dtype)
    n = max(1, min(S, chunk_elems // (h * T * T)))
    qb, kb, vb = torch.empty(n, h, T, d), torch.empty(n, h, d, T), torch.empty(n, h, T, d + 1)
    vb[..., d] = 1.0
    for i in range(0, S, n):
        j = min(i + n, S)
        m = j - i
        qc, kc, vc = qb[:m], kb[:m], vb[:m]
        torch.mul(q[i:j], d ** -0.5, out=qc)
        kc.copy_(k[i:j].transpose(-1, -2))
        vc[..., :d].copy_(v[i:j])
        s = torch.bmm(qc.view(m * h, T, d), kc.view(m * h, d, T))
        if float(s.max()) >= 80.0:
            raise FloatingPointError("scores too large for exp without the row maximum")
        o = torch.bmm(s.exp_(), vc.view(m * h, T, d + 1)).view(m, h, T, d + 1)
        if float(o[..., d].min()) < 1e-26:
            raise FloatingPointError("a row of exp(scores) underflows")
        torch.div(o[..., :d], o[..., d:], out=out[i:j].transpose(1, 2))
    return out.transpose(1, 2)


def measure(name: str, S: int, T: int, args) -> dict:
    import torch
    import torch.nn.functional as F

    h, d = args.heads, args.head_width
    C = h * d
    g = torch.Generator().manual_seed(0)
    # q, k, v as TransformerLayer produces them: views of one [S, T, 3 C] projection
    x = torch.randn(S, T, 3 * C, generator=g)
    q, k, v = x.view(S, T, 3, h, d).permute(2, 0, 3, 1, 4)
    xb = x.bfloat16()
    qb, kb, vb = xb.view(S, T, 3, h, d).permute(2, 0, 3, 1, 4)
    tokens = torch.randn(S * T, C, generator=g)
    w, bias = torch.randn(3 * C, C, generator=g) * C ** -0.5, torch.zeros(3 * C)
    tb, wb, bb = tokens.bfloat16(), w.bfloat16(), bias.bfloat16()

    fns = {
        "sdpa_float32": lambda: F.scaled_dot_product_attention(q, k, v),
        "sdpa_bfloat16": lambda: F.scaled_dot_product_attention(qb, kb, vb),
        "explicit_float32": lambda: explicit(q, k, v),
        "explicit_noshift_float32": lambda: explicit_noshift(q, k, v),
        "qkv_linear_float32": lambda: F.linear(tokens, w, bias),
        "qkv_linear_bfloat16": lambda: F.linear(tb, wb, bb),
    }
    ref = fns["sdpa_float32"]()
    row = {"shape": name, "sequences": S, "length": T, "heads": h, "head_width": d}
    times = {key: [] for key in fns}
    with torch.inference_mode():
        for fn in fns.values():  # warm-up
            fn()
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every variant alike
            for key, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
        attn_flops = 4.0 * S * h * T * T * d
        lin_flops = 2.0 * S * T * C * 3 * C
        for key in fns:
            sec = median(times[key])
            row[f"{key}_ms"] = round(sec * 1e3, 3)
            row[f"{key}_gflops"] = round((lin_flops if "linear" in key else attn_flops) / sec / 1e9, 2)
            if "linear" not in key:
                row[f"{key}_max_abs_error"] = float((fns[key]().float() - ref).abs().max())
    row["linear_over_sdpa_float32_gflops"] = round(row["qkv_linear_float32_gflops"] / row["sdpa_float32_gflops"], 1)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-width", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--shapes", nargs="+", metavar="NAME:SEQUENCES:LENGTH",
                    help="instead of CSDI's sampling shapes (e.g. small:8:12)")
    ap.add_argument("--out", default=str(RECORDS))
    ap.add_argument("--stem", default=None)
    args = ap.parse_args(argv)
    for key in ("threads", "heads", "head_width", "repeats"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
    shapes = SHAPES
    if args.shapes:
        try:
            shapes = [(n, int(s), int(t)) for n, s, t in (spec.split(":") for spec in args.shapes)]
        except ValueError:
            ap.error(f"--shapes takes NAME:SEQUENCES:LENGTH with whole numbers, e.g. small:8:12; got {args.shapes}")
        if any(s < 1 or t < 1 for _, s, t in shapes):
            ap.error(f"--shapes: sequences and length must be at least 1, got {args.shapes}")
    pin_threads(args.threads)
    rows = []
    for name, S, T in shapes:
        row = measure(name, S, T, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    from common import perf_record
    from tsdiff.bench.records import write_record

    # the record's hardware field names the CPU's bfloat16 flags, its packages field the torch version
    rec = perf_record(task="synthetic", protocol="none", model="csdi", benchmark="attention_kernels",
                      config={"heads": args.heads, "head_width": args.head_width, "repeats": args.repeats},
                      results={"rows": rows},
                      extra={"contention": contention_note(args.threads)})
    path = write_record(rec, args.out, args.stem or f"attention_kernels_cpu_t{args.threads}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
