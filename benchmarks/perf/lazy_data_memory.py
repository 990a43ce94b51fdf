"""Peak memory of the data pipeline versus file size: a lazily read file against the same data in memory.

For each file size, a float32 file of ``T x N`` values (N = ``--nodes``, T from the size)
is written once (``.npy``, or a netCDF grid of ``sqrt(N) x sqrt(N)`` cells with
``--format nc``). Each setting then runs in a fresh process:

- ``lazy``: ``build_protocol("file", path=...)`` (``data.dataset: file``: a streaming
  scaler pass over the training block, windows read on access);
- ``memory``: the same protocol, then ``Protocol.in_memory()`` (the whole series read,
  as the built-in protocols hold their data);

and reads ``--batches`` shuffled training batches plus the first ``--batches`` batches
of the validation and test splits through a ``DataLoader``. The record holds the growth
of the peak resident memory (the kernel's ``VmHWM``) from
before the protocol is built to the end, and the seconds taken. ``--batch-sizes`` repeats
the lazy setting of the largest file with other batch sizes: lazily, memory follows the
batch, not the file.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/lazy_data_memory.py --sizes-mb 100 200 400 800
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RECORDS, contention_note, maxrss, parse_or_run_child, run_child  # noqa: E402


def write_file(path: Path, T: int, N: int, fmt: str) -> None:
    """Values ``t + n`` (float32) at step t, node n, every 97th value of each node missing."""
    block = 8192
    npy = path.with_suffix(".npy")
    out = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(T, N))
    for a in range(0, T, block):
        b = min(T, a + block)
        v = np.arange(a, b, dtype=np.float32)[:, None] + np.arange(N, dtype=np.float32)
        v[(np.arange(a, b)[:, None] + np.arange(N)) % 97 == 0] = np.nan
        out[a:b] = v
    out.flush()
    del out
    if fmt == "npy":
        return
    import dask.array as da
    import pandas as pd
    import xarray as xr

    side = int(round(N ** 0.5))  # the same values on a side x side grid, written block by block
    values = da.from_array(np.load(npy, mmap_mode="r").reshape(T, side, side), chunks=(block, side, side))
    ds = xr.Dataset({"x": (("time", "lat", "lon"), values)},
                    coords={"time": pd.date_range("2000-01-01", periods=T, freq="h"),
                            "lat": ("lat", np.linspace(60, 40, side), {"units": "degrees_north"}),
                            "lon": ("lon", np.linspace(-10, 10, side), {"units": "degrees_east"})})
    ds.to_netcdf(path, encoding={"x": {"chunksizes": (48, side, side)}})
    npy.unlink()


def child(args) -> dict:
    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    import dask.array  # noqa: F401  (imports are not the data's memory)
    import netCDF4  # noqa: F401
    import xarray  # noqa: F401

    from tsdiff.data import build_protocol

    before = maxrss()
    t0 = time.perf_counter()
    p = build_protocol("file", options={"path": args.path, "window": args.window, "checksum": False})
    if args.mode == "memory":
        p = p.in_memory()
    built = time.perf_counter() - t0
    total, windows = 0.0, 0
    for split in ("train", "val", "test"):
        loader = DataLoader(p.dataset(split), batch_size=args.batch_size, shuffle=split == "train",
                            generator=torch.Generator().manual_seed(0))
        for i, batch in enumerate(loader):
            if i == args.batches:
                break
            total += float(batch["x"].sum())
            windows += len(batch["x"])
    return {"build_seconds": built, "seconds": time.perf_counter() - t0, "windows_read": windows,
            "peak_rss_growth_bytes": maxrss() - before, "T": p.series.shape[0], "N": p.series.shape[1],
            "checksum_of_batches": total}


def run(args, path: Path, mode: str, batch_size: int) -> dict:
    argv = ["--path", str(path), "--mode", mode, "--window", str(args.window), "--batches", str(args.batches),
            "--batch-size", str(batch_size)]
    return run_child(__file__, argv, 1, f"{mode} on {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 200, 400, 800])
    ap.add_argument("--nodes", type=int, default=1024, help="N (a square number for --format nc)")
    ap.add_argument("--format", choices=("npy", "nc"), default="npy")
    ap.add_argument("--window", type=int, default=48)
    ap.add_argument("--batches", type=int, default=20, help="batches read per split")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batch-sizes", type=int, nargs="*", default=[64, 256],
                    help="more batch sizes for the lazy setting of the largest file")
    ap.add_argument("--modes", nargs="+", default=["lazy", "memory"], choices=("lazy", "memory"))
    ap.add_argument("--workdir", default=None, help="where the files are written (default: a temporary folder)")
    ap.add_argument("--out", default=str(RECORDS))
    args = parse_or_run_child(ap, argv, child, ("--path", "--mode"))
    if args is None:
        return 0
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for size in args.sizes_mb:
            T = size * 10**6 // (4 * args.nodes)
            path = Path(tmp) / f"data_{size}mb.{args.format}"
            write_file(path, T, args.nodes, args.format)
            for mode in args.modes:
                sizes = [args.batch_size] + (args.batch_sizes if mode == "lazy" and size == max(args.sizes_mb) else [])
                for bs in sizes:
                    row = {"file_mb": round(path.stat().st_size / 1e6, 1), "mode": mode, "batch_size": bs,
                           **run(args, path, mode, bs)}
                    rows.append(row)
                    print(f"{row['file_mb']:7.1f} MB {mode:6s} batch {bs:4d}: peak RSS "
                          f"+{row['peak_rss_growth_bytes'] / 2**20:7.1f} MiB, build {row['build_seconds']:.1f} s, "
                          f"total {row['seconds']:.1f} s", flush=True)
            path.unlink()
    from common import perf_record
    from tsdiff.bench.records import write_record

    rec = perf_record(task="data_pipeline", protocol=f"file ({args.format}, synthetic t + n values)", model="none",
                      benchmark="lazy_data_memory", sampler="none",
                      config={"nodes": args.nodes, "window": args.window, "batches": args.batches,
                              "format": args.format},
                      results={"settings": rows},
                      extra={"contention": contention_note(1),
                             "note": "VmHWM growth of a fresh process from before build_protocol to "
                                     "after reading the batches; 'memory' = Protocol.in_memory() of the same lazily built protocol"})
    path = write_record(rec, args.out, f"lazy_data_memory_{args.format}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
