"""The ``tsdiff`` command line: ``fit``, ``test``, ``calibrate-variance`` and ``datasets`` here; ``bench``
(:mod:`tsdiff.bench.cli`) and ``impute``, ``forecast``, ``predict``, ``plot`` (:mod:`tsdiff.user_commands`).
Every sub-command's parser names its handler with ``set_defaults(run=...)``; :func:`main` calls it.

Examples::

    tsdiff fit configs/imputation/csdi_aqi36.yaml trainer.max_epochs=5 --test
    tsdiff test runs/csdi_aqi36/model.pt eval.sampler=ddim eval.steps=10
    tsdiff calibrate-variance runs/csdi_aqi36
    tsdiff datasets list
    tsdiff impute sensors.csv -o filled.csv --plot gaps.png
    tsdiff forecast rates.csv -o next.csv --prediction-length 30
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
    f.add_argument("--resume", action="store_true", help=(
        "continue an interrupted run from the newest checkpoint in <output.dir>/checkpoints (same as "
        "trainer.resume=true; start from scratch if there is none). Add trainer.checkpoint_every_n_steps=N "
        "to also checkpoint inside epochs"))
    f.set_defaults(run=_fit)

    t = sub.add_parser("test", help="evaluate a trained model and write a result record", description=(
        "Draw eval.n_samples samples per test window with eval.sampler, score CRPS / MAE / RMSE on the "
        "held-out entries in data units, and write one JSON record to output.records_dir."))
    t.add_argument("model", help="model file (model.pt) or the run directory that holds it")
    t.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP + "; model/process cannot change")
    t.add_argument("--no-progress", action="store_true", help="hide the sampling progress bar")
    t.set_defaults(run=_test)

    c = sub.add_parser("calibrate-variance", help="store the statistic of the ddpm sampler's analytic variance in a "
                       "model file", description=(
        "Estimate eps_sq_norm (Gamma_t = E|eps_pred|^2 / d for every diffusion step, Analytic-DPM) on held-out "
        "windows of the model's own data protocol and store it in the model file, so that "
        "eval.sampler_options={variance: analytic} works with the ddpm sampler. Costs T network passes over "
        "--limit-windows windows per repeat."))
    c.add_argument("model", help="model file (model.pt) or the run directory that holds it")
    c.add_argument("overrides", nargs="*", help="config overrides for the data, e.g. data.data_dir=/path")
    c.add_argument("--split", default="val", help="windows to estimate on (default: val, held out from training)")
    c.add_argument("--limit-windows", type=int, default=64, help="first this many windows of the split (default 64; "
                   "0 for all)")
    c.add_argument("--repeats", type=int, default=1, help="noise draws per window and step, averaged (default 1)")
    c.add_argument("--seed", type=int, default=0, help="seed of the noise draws (default 0)")
    c.add_argument("--out", default=None, help="write a copy with the estimate here instead of updating MODEL")
    c.set_defaults(run=_calibrate_variance)

    d = sub.add_parser("datasets", help="list datasets, show their cards, verify their files")
    d.add_argument("action", choices=["list", "info", "verify", "check"], help=(
        "list: registered datasets; info NAME: files, checksums, source, licence, protocol options; "
        "verify [NAME ...]: find + checksum files (check is the same)"))
    d.add_argument("names", nargs="*", help="dataset name(s) for info / verify")
    d.add_argument("--data-dir", default=None, help="data directory (default: $TSDIFF_DATA or the user cache)")
    d.set_defaults(run=_datasets)

    from tsdiff.bench.cli import add_parser as _add_bench_parser

    _add_bench_parser(sub)

    from tsdiff.user_commands import add_parsers as _add_user_parsers

    _add_user_parsers(sub)  # impute, forecast, predict, plot
    return p


def _model_path(arg: str) -> Path:
    from tsdiff.experiment import MODEL_FILE

    path = Path(arg)
    return path / MODEL_FILE if path.is_dir() else path


# --------------------------------------------------------------------------- handlers
# every sub-command's parser names its handler (``set_defaults(run=...)``): ``run(args) -> exit code``


def _fit(args) -> int:
    from tsdiff.config import load_config
    from tsdiff.experiment import fit, test

    cfg = load_config(args.config, args.overrides)
    if args.resume and cfg["trainer"]["resume"] is False:
        cfg["trainer"]["resume"] = True
    path = fit(cfg)
    if args.test:
        test(path)
    return 0


def _test(args) -> int:
    from tsdiff.experiment import test

    test(_model_path(args.model), args.overrides, progress=not args.no_progress)
    return 0


def _calibrate_variance(args) -> int:
    from tsdiff.experiment import calibrate_variance

    if args.limit_windows < 0:
        raise TsdiffError(f"--limit-windows must be >= 0 (0: every window); got {args.limit_windows}")
    path, gamma = calibrate_variance(
        _model_path(args.model), args.overrides, split=args.split, limit_windows=args.limit_windows or None,
        repeats=args.repeats, seed=args.seed, out=args.out)
    shown = ", ".join(f"t={t}: {gamma[t]:.4f}" for t in sorted({0, len(gamma) // 2, len(gamma) - 1}))
    print(f"stored eps_sq_norm ({len(gamma)} steps; {shown}) in {path}; sample with "
          f"eval.sampler=ddpm \"eval.sampler_options={{variance: analytic}}\"")
    return 0


def _datasets(args) -> int:
    from tsdiff.data.catalog import datasets_command

    return datasets_command(args.action, args.names, args.data_dir)


def _show_input_warning(command: str, show):
    """Show warnings about a user's file as ``tsdiff CMD: warning: ...`` (others as before)."""
    from tsdiff.csv_dialect import InputWarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, InputWarning):
            print(f"tsdiff {command}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def main(argv: list[str] | None = None) -> int:
    import warnings

    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_input_warning(args.command, warnings.showwarning)
            return int(args.run(args) or 0)
    except TsdiffError as exc:
        print(f"tsdiff {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
