"""Peak memory of ``tsdiff impute`` on a netCDF grid versus file size.

For each size a float32 grid of ``T`` steps x ``sqrt(N) x sqrt(N)`` cells is written
(``lazy_data_memory.write_file``: values ``t + n``, every 97th value of each cell missing,
so every window has gaps and is sampled). A small imputer is trained once, in a fresh
process, on the first ``--train-steps`` steps of the smallest file and saved
(``tsdiff impute ... --save-model``; ``--chunk-size`` paths per network pass).
Then, for each file, a fresh process runs

    tsdiff impute FILE.nc -o OUT.nc --uncertainty UNC.nc --model MODEL.pt --n-samples S

and the record holds the growth of its peak resident memory (``VmHWM``) from just
before the command (the libraries imported) to its end, the seconds taken, and the size of the input.

The command reads the grid window by window and writes both outputs block by block, so
memory follows the batch of windows, not the grid. Run with ``PYTHONPATH`` pointing at
another checkout to measure that version of the command (``--label`` names the record).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/impute_memory.py --sizes-mb 50 100 200 400
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RECORDS, contention_note, maxrss, parse_or_run_child, run_child  # noqa: E402
from lazy_data_memory import write_file  # noqa: E402

SMALL_MODEL = "model_options={layers: 1, channels: 8, heads: 2}"


def child(args) -> dict:
    import torch

    torch.set_num_threads(1)
    import dask.array  # noqa: F401  (imports are not the data's memory)
    import h5netcdf  # noqa: F401
    import xarray  # noqa: F401

    import lightning  # noqa: F401
    import tsdiff.api  # noqa: F401
    import tsdiff.training.module  # noqa: F401
    from tsdiff.cli import main

    before = maxrss()
    t0 = time.perf_counter()
    rc = main(["impute", args.path, "-o", args.output, "--uncertainty", args.uncertainty, "--model", args.model,
               "--n-samples", str(args.n_samples)])
    if rc != 0:
        raise SystemExit(f"tsdiff impute exited with {rc}")
    return {"seconds": time.perf_counter() - t0, "peak_rss_growth_bytes": maxrss() - before}


def train(args, path: Path, model: Path) -> None:
    """Train and save the small imputer on the first steps of ``path`` (a fresh process)."""
    import xarray as xr

    piece = path.with_name("train_piece.nc")
    with xr.open_dataset(path) as ds:
        ds.isel(time=slice(0, args.train_steps)).load().to_netcdf(piece)
    cmd = [sys.executable, "-m", "tsdiff.cli", "impute", str(piece), f"window={args.window}", "max_steps=2",
           "batch_size=4", f"chunk_size={args.chunk_size}", "sampler=ddim", f"sampling_steps={args.sampling_steps}",
           f"n_samples={args.n_samples}", SMALL_MODEL, "-o", str(piece.with_name("piece_out.nc")), "--save-model", str(model)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"training the imputer failed:\n{out.stderr[-3000:]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[50, 100, 200, 400])
    ap.add_argument("--nodes", type=int, default=1024, help="N cells (a square number)")
    ap.add_argument("--window", type=int, default=48)
    ap.add_argument("--n-samples", type=int, default=2)
    ap.add_argument("--sampling-steps", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=8, help="(window, sample) paths per network pass")
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--label", default="", help="suffix of the record's name (e.g. the measured version)")
    ap.add_argument("--workdir", default=None, help="where the files are written (default: a temporary folder)")
    ap.add_argument("--out", default=str(RECORDS))
    args = parse_or_run_child(ap, argv, child, ("--path", "--output", "--uncertainty", "--model"))
    if args is None:
        return 0
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        model = Path(tmp) / "model.pt"
        for size in sorted(args.sizes_mb):
            T = size * 10**6 // (4 * args.nodes)
            path = Path(tmp) / f"grid_{size}mb.nc"
            write_file(path, T, args.nodes, "nc")
            if not model.exists():
                train(args, path, model)
            out, unc = Path(tmp) / "out.nc", Path(tmp) / "unc.nc"
            argv = ["--path", str(path), "--output", str(out), "--uncertainty", str(unc), "--model", str(model),
                    "--n-samples", str(args.n_samples)]
            row = {"file_mb": round(path.stat().st_size / 1e6, 1), "T": T, "N": args.nodes,
                   **run_child(__file__, argv, 1, f"tsdiff impute on {path}"),
                   "output_mb": round(out.stat().st_size / 1e6, 1), "uncertainty_mb": round(unc.stat().st_size / 1e6, 1)}
            rows.append(row)
            print(f"{row['file_mb']:7.1f} MB: peak RSS +{row['peak_rss_growth_bytes'] / 2**20:8.1f} MiB, "
                  f"{row['seconds']:.1f} s", flush=True)
            for p in (path, out, unc):
                p.unlink()
    from common import perf_record
    from tsdiff.bench.records import write_record

    rec = perf_record(task="imputation", protocol="tsdiff impute on a netCDF grid (synthetic t + n values)",
                      model="csdi (1 layer, 8 channels)", benchmark="impute_memory", sampler="ddim",
                      config={"nodes": args.nodes, "window": args.window, "n_samples": args.n_samples,
                              "chunk_size": args.chunk_size,
                              "sampling_steps": args.sampling_steps, "label": args.label},
                      results={"settings": rows},
                      extra={"contention": contention_note(1),
                             "note": "VmHWM growth of a fresh process from before `tsdiff impute` "
                                     "(--model, --uncertainty) to its end"})
    name = "impute_memory_nc" + (f"_{args.label}" if args.label else "")
    print(f"wrote {write_record(rec, args.out, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
