"""Samples of every sampling way in, on the CPU, for a bit-for-bit comparison of two commits.

``dump`` trains small models with fixed seeds and writes their samples (and ``tsdiff test``'s
metrics) under OUT: the Forecaster (with covariates and calendar features, and on one column),
the Imputer (interpolation prior, edge anchors, two batches), and a ``tsdiff fit`` run of
``configs/imputation/csdi_aqi36.yaml`` sampled by ``tsdiff test`` and ``tsdiff predict``
(ddim, ddpm, and ddim under ``eval.precision=bf16-mixed``). ``compare`` says, file by file,
whether two dumps are identical. To compare a change with the commit before it::

    git worktree add /tmp/before HEAD~1
    (cd /tmp/before && PYTHONPATH=/tmp/before python $PWD/benchmarks/engine/same_samples.py dump /tmp/s_before \
        --configs /tmp/before/configs)
    python benchmarks/engine/same_samples.py dump /tmp/s_after
    python benchmarks/engine/same_samples.py compare /tmp/s_before /tmp/s_after
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
            feature_embedding_dim=4)
CLI_TINY = ["model.layers=1", "model.channels=16", "model.heads=2", "model.ff_dim=16", "trainer.max_epochs=1",
            "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
            "eval.n_samples=2", "eval.sampler=ddim", "eval.steps=3", "eval.limit_windows=5", "data.batch_size=2"]
EVALS = {"ddim": [], "ddpm": ["eval.sampler=ddpm", "eval.steps=null"], "bf16": ["eval.precision=bf16-mixed"]}


def dump(out: Path, data_dir: str | None, configs: Path) -> None:
    import pandas as pd
    import torch
    import xarray as xr

    import tsdiff
    from tsdiff.cli import main
    from tsdiff.data.datasets.ett import load_etth1
    from tsdiff.data.paths import data_dir as resolve_data_dir

    torch.set_num_threads(1)
    data_dir = str(resolve_data_dir(data_dir)[0])
    out.mkdir(parents=True, exist_ok=True)
    s = load_etth1(data_dir)
    df = pd.DataFrame(s.values.reshape(s.shape[0], -1)[:600], index=s.time_index[:600]).rename(columns=str)
    fc = tsdiff.Forecaster(prediction_length=6, context_length=24, max_steps=5, model_options=TINY, n_samples=3,
                           sampler="ddim", sampling_steps=4, verbose=False, covariates=["0", "1"], calendar=True,
                           random_state=1).fit(df)
    np.save(out / "forecaster_covariates.npy", fc.predict().samples)
    fc = tsdiff.Forecaster(prediction_length=6, context_length=24, max_steps=5, model_options=TINY, n_samples=3,
                           verbose=False, random_state=2).fit(df[["6"]])
    np.save(out / "forecaster_one_column.npy", fc.predict().samples)
    X = df.to_numpy().copy()
    X[np.random.default_rng(0).random(X.shape) < 0.2] = np.nan
    imp = tsdiff.Imputer(window=24, max_steps=5, n_samples=3, sampling_steps=3, model_options=TINY, batch_size=4,
                         random_state=3).fit(X)
    np.save(out / "imputer.npy", imp.sample(X, 3))
    run = out / "run"
    cfg = str(configs / "imputation" / "csdi_aqi36.yaml")
    assert main(["fit", cfg, *CLI_TINY, f"output.dir={run}", f"output.records_dir={out}/fit_records",
                 f"data.data_dir={data_dir}"]) == 0
    for tag, extra in EVALS.items():
        assert main(["test", f"{run}/model.pt", *extra, f"output.records_dir={out}/records_{tag}",
                     "--no-progress"]) == 0
        record = json.loads(next((out / f"records_{tag}").glob("*.json")).read_text())
        (out / f"test_{tag}.json").write_text(json.dumps(record["metrics"]))
        assert main(["predict", f"{run}/model.pt", *extra, "-o", str(out / f"predict_{tag}.nc")]) == 0
        with xr.open_dataset(out / f"predict_{tag}.nc") as ds:
            np.save(out / f"predict_{tag}.npy", ds["samples"].values)


def compare(a: Path, b: Path) -> bool:
    same = True
    for f in sorted(a.glob("*.npy")) + sorted(a.glob("test_*.json")):
        g = b / f.name
        if f.suffix == ".npy":
            x, y = np.load(f), np.load(g)
            ok = x.shape == y.shape and x.tobytes() == y.tobytes()
            detail = f"{x.shape}" if ok else f"differ (largest gap {np.nanmax(np.abs(x - y)) if x.shape == y.shape else 'shape'})"
        else:
            ok = json.loads(f.read_text()) == json.loads(g.read_text())
            detail = "metrics"
        print(f"{f.name}: {'bit-identical' if ok else 'DIFFERENT'} {detail}")
        same &= ok
    return same


def main_(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--data-dir", default=None)
    d.add_argument("--configs", type=Path, default=ROOT / "configs")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "dump":
        dump(args.out, args.data_dir, args.configs)
        return 0
    return 0 if compare(args.a, args.b) else 1


if __name__ == "__main__":
    sys.exit(main_())
