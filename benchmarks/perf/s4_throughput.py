"""Throughput of tsdiff's S4D layer against a bare ``torch.fft`` convolution of the same kernel.

The official S4 code, without its CUDA Cauchy kernel or pykeops, computes the kernel with a
materialised Vandermonde matrix ``exp(dt A l)`` of ``[H, N/2, L]`` and convolves with
``torch.fft``. Three ways to apply one bidirectional S4D convolution to ``[B, H, L]``, timed
alternately in one process on the same inputs:

- ``tsdiff``: :class:`tsdiff.models.s4.S4DConv` (blocked Vandermonde kernel + FFT; without
  gradients the cached kernel spectrum);
- ``naive``: the official CPU path: the materialised Vandermonde kernel, then the same FFT
  convolution (no cache);
- ``fft_only``: the FFT convolution of an already computed kernel (the cost floor: kernel
  spectrum, input spectrum, product, inverse; a trained layer must also compute its kernel
  from its parameters at every step, so no layer reaches it).

The throughput target compares the layer with the same layer computed the way the official
code does without its custom kernel (``naive``): ``within_2x_of_official_cpu_path`` lists the
lengths where ``tsdiff / naive <= 2``; ``within_2x_of_fft_only`` the stricter comparison with
the floor.

Modes: ``train`` (forward + backward to the input and the parameters / kernel) and
``sample`` (forward without gradients). The record holds the fastest and the median seconds
per call over the repeats and, from the fastest, the ratios ``tsdiff / fft_only`` and
``tsdiff / naive``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/s4_throughput.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RECORDS, contention_note, median, perf_record, pin_threads  # noqa: E402


def naive_kernel(layer, L: int):
    """The official S4D CPU path's kernel: ``2 Re(sum_n C dB exp(log dA l))`` with the full
    ``[S, H, N/2, L]`` Vandermonde matrix materialised."""
    import torch

    log_dA, _, dB = layer.discretize()
    W = torch.view_as_complex(layer.C) * dB
    V = torch.exp(log_dA[:, :, None] * torch.arange(L, dtype=log_dA.real.dtype))
    return 2 * torch.einsum("shn,hnl->shl", W, V).real


def fft_conv(u, K, D):
    """Bidirectional FFT convolution of ``u [B, H, L]`` with kernels ``K [2, H, L]``."""
    import torch
    import torch.nn.functional as F

    L = u.shape[-1]
    n = 2 * L
    k = F.pad(K[0], (0, L)) + F.pad(K[1].flip(-1), (L, 0))
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :L]
    return y + u * D[:, None]


def measure(L: int, args) -> dict:
    import torch

    from tsdiff.models.s4 import S4DConv

    torch.manual_seed(0)
    layer = S4DConv(args.channels, args.state_size, bidirectional=True)
    u = torch.randn(args.batch_size, args.channels, L, requires_grad=True)
    with torch.no_grad():
        K_fixed = layer.kernel(L).clone()
    K_leaf = K_fixed.clone().requires_grad_(True)
    grad = torch.randn(args.batch_size, args.channels, L)

    ways = {
        "tsdiff": lambda: layer(u),
        "naive": lambda: fft_conv(u, naive_kernel(layer, L), layer.D),
        "fft_only": lambda: fft_conv(u, K_leaf, layer.D),
    }
    with torch.no_grad():  # the three compute the same map
        ref = ways["fft_only"]()
        for name in ("tsdiff", "naive"):
            err = (ways[name]() - ref).abs().max().item()
            assert err < 1e-3 * ref.abs().max().item(), (name, err)

    def run(fn, mode):
        if mode == "train":
            fn().backward(grad)
        else:
            with torch.no_grad():
                fn()

    out = {"L": L}
    for mode in ("train", "sample"):
        times = {name: [] for name in ways}
        for name, fn in ways.items():
            run(fn, mode)  # warm-up (and, sampling, the tsdiff kernel cache)
        for _ in range(args.repeats):  # alternate the ways: contention hits all of them alike
            for name, fn in ways.items():
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    run(fn, mode)
                times[name].append((time.perf_counter() - t0) / args.calls)
        for name in ways:  # the fastest repeat: the least disturbed on a shared machine
            out[f"{mode}_{name}_seconds"] = min(times[name])
            out[f"{mode}_{name}_median_seconds"] = median(times[name])
        out[f"{mode}_ratio_tsdiff_over_fft_only"] = out[f"{mode}_tsdiff_seconds"] / out[f"{mode}_fft_only_seconds"]
        out[f"{mode}_ratio_tsdiff_over_naive"] = out[f"{mode}_tsdiff_seconds"] / out[f"{mode}_naive_seconds"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--lengths", type=int, nargs="+", default=[96, 384, 1536, 4096])
    ap.add_argument("--channels", type=int, default=256, help="H (SSSD's S4 layers run on 2 x 128 .. 2 x 256)")
    ap.add_argument("--state-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2, help="calls per timing")
    ap.add_argument("--stem", default=None)
    ap.add_argument("--out", default=str(RECORDS))
    args = ap.parse_args(argv)
    pin_threads(args.threads)
    rows = []
    for L in args.lengths:
        row = measure(L, args)
        rows.append(row)
        print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    from tsdiff.bench.records import write_record

    within = {mode: [r["L"] for r in rows if r[f"{mode}_ratio_tsdiff_over_fft_only"] <= 2.0]
              for mode in ("train", "sample")}
    within_official = {mode: [r["L"] for r in rows if r[f"{mode}_ratio_tsdiff_over_naive"] <= 2.0]
                       for mode in ("train", "sample")}
    rec = perf_record(task="synthetic", protocol="none", model="s4d", benchmark="s4_throughput",
                      config={k: getattr(args, k) for k in ("channels", "state_size", "batch_size", "repeats", "calls")},
                      results={"rows": rows, "within_2x_of_official_cpu_path": within_official,
                               "within_2x_of_fft_only": within},
                      extra={"contention": contention_note(args.threads)})
    path = write_record(rec, args.out, args.stem or f"s4_throughput_cpu_t{args.threads}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
