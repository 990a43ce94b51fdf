"""The ``tsdiff`` command line: ``fit``, ``test`` and ``datasets``.

Examples::

    tsdiff fit configs/imputation/csdi_aqi36.yaml trainer.max_epochs=5 --test
    tsdiff test runs/csdi_aqi36/model.pt eval.sampler=ddim eval.steps=10
    tsdiff datasets list
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tsdiff.errors import TsdiffError

_OVERRIDES_HELP = "config overrides as key=value (YAML values), e.g. trainer.max_epochs=5 data.batch_size=8"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsdiff", description="Diffusion models for time-series imputation and forecasting.")
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fit", help="train a model from a YAML config", description=(
        "Train the model described by CONFIG (see configs/). Writes <output.dir>/model.pt (best validation "
        "weights + config + scaler), fit.json and Lightning checkpoints/logs."))
    f.add_argument("config", help="YAML config file, e.g. configs/imputation/csdi_aqi36.yaml")
    f.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    f.add_argument("--test", action="store_true", help="evaluate the trained model right after training")

    t = sub.add_parser("test", help="evaluate a trained model and write a result record", description=(
        "Draw eval.n_samples samples per test window with eval.sampler, score CRPS / MAE / RMSE on the "
        "held-out entries in data units, and write one JSON record to output.records_dir."))
    t.add_argument("model", help="model file (model.pt) or the run directory that holds it")
    t.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP + "; model/process cannot change")
    t.add_argument("--no-progress", action="store_true", help="hide the sampling progress bar")

    d = sub.add_parser("datasets", help="list datasets and check their files")
    d.add_argument("action", choices=["list", "check"], help="list: registered datasets; check: find + checksum files")
    d.add_argument("--data-dir", default=None, help="data directory (default: $TSDIFF_DATA or the user cache)")
    return p


def _model_path(arg: str) -> Path:
    from tsdiff.experiment import MODEL_FILE

    path = Path(arg)
    return path / MODEL_FILE if path.is_dir() else path


def _datasets(action: str, data_dir: str | None) -> int:
    from tsdiff.data.protocol import DATASETS
    from tsdiff.data.sources import SPECS
    from tsdiff.data.sources.base import checksums, locate_files

    for name in DATASETS.names():
        spec = SPECS[name]
        if action == "list":
            print(f"{name}: {spec.description} [{', '.join(f.name for f in spec.files)}]")
        else:
            paths = locate_files(spec, data_dir)
            sums = checksums(spec, paths)
            ok = all(sums[f.name] == f.sha256 for f in spec.files)
            print(f"{name}: {'ok' if ok else 'CHECKSUM MISMATCH'} ({paths[spec.files[0].name].parent})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "fit":
            from tsdiff.config import load_config
            from tsdiff.experiment import fit, test

            cfg = load_config(args.config, args.overrides)
            path = fit(cfg)
            if args.test:
                test(path)
        elif args.command == "test":
            from tsdiff.experiment import test

            test(_model_path(args.model), args.overrides, progress=not args.no_progress)
        elif args.command == "datasets":
            return _datasets(args.action, args.data_dir)
    except TsdiffError as exc:
        print(f"tsdiff {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
