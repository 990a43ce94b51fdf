"""Shared command-line handling of the examples: ``--fast`` (or TSDIFF_EXAMPLES_FAST=1) and ``--out``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def parse(description: str, argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--fast", action="store_true", default=os.environ.get("TSDIFF_EXAMPLES_FAST") == "1",
                   help="tiny settings (seconds, for tests); default: a few minutes of CPU training")
    p.add_argument("--out", default="examples_out", help="folder for the outputs (CSV / netCDF / PNG)")
    p.add_argument("--data-dir", default=os.environ.get("TSDIFF_DATA"),
                   help="tsdiff data directory (default: $TSDIFF_DATA)")
    args = p.parse_args(argv)
    if not args.data_dir:
        p.error("set TSDIFF_DATA or pass --data-dir (the folder holding exchange_rate/, aqi36/, metr_la/, era5/)")
    args.data_dir = Path(args.data_dir)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return args


#: A tiny network for --fast runs.
TINY = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
            feature_embedding_dim=4)


def exchange_rates(data_dir: Path):
    """The LSTNet file (7588 business days x 8 currencies, no header) as a DataFrame on its calendar."""
    import pandas as pd

    raw = pd.read_csv(Path(data_dir) / "exchange_rate" / "exchange_rate.txt.gz", header=None)
    raw.index = pd.bdate_range("1990-01-01", periods=len(raw), name="date")
    raw.columns = [f"currency_{i}" for i in range(raw.shape[1])]
    return raw
