"""``tsdiff impute``, ``tsdiff forecast``, ``tsdiff predict`` and ``tsdiff plot``: commands on a user's files.

They wrap :class:`tsdiff.Imputer` / :class:`tsdiff.Forecaster` (settings from ``--config``
YAML and ``key=value`` overrides, or a saved model with ``--model``) and
:mod:`tsdiff.plotting`. ``tsdiff.cli`` registers them with :func:`add_parsers`.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
from pathlib import Path

import numpy as np

from tsdiff.errors import ConfigError, DataError
from tsdiff.quantiles import point_summary, sample_quantile

_SETTINGS_HELP = ("settings as key=value (YAML values) on top of --config, e.g. max_steps=200 window=48 "
                  "'model_options={layers: 2, channels: 32}'; give them right after INPUT, before the options")


def add_parsers(sub) -> None:
    """Add the ``impute``, ``forecast``, ``predict`` and ``plot`` sub-commands to ``sub``."""
    fmt = argparse.RawDescriptionHelpFormatter
    i = sub.add_parser("impute", help="fill the missing values of a CSV table or netCDF grid", formatter_class=fmt,
                       description=(
        "Fill the NaN / empty cells of INPUT and write OUTPUT in the same format.\n\n"
        "INPUT.csv: first column time (or any row label), one numeric column per series; empty cells, NaN or NA\n"
        "are missing. OUTPUT.csv keeps the header, the index and every observed cell byte for byte (quotes,\n"
        "line endings, '#' comment lines and the encoding too); each missing cell gets the median of\n"
        "--n-samples imputations. Rows of separators only (',,,') are left out, with a warning.\n"
        "INPUT.nc: a netCDF grid (time, latitude, longitude); NaN cells are filled, coordinates, attributes and\n"
        "encoding are kept, observed values are copied unchanged. The grid is read and written window by window,\n"
        "so files larger than memory work (training on INPUT reads it window by window above 1 GiB of values).\n\n"
        "Without --model a tsdiff.Imputer is first trained on INPUT itself (settings: --config YAML of Imputer\n"
        "arguments, then key=value overrides). --model uses a file saved by Imputer.save / --save-model, or\n"
        "an imputation model.pt from `tsdiff fit` (same columns required).\n\n"
        "OUTPUT, --uncertainty and --save-model must differ from INPUT and be writable; this is checked\n"
        "before any work. Missing folders are created. A run killed while writing leaves a hidden\n"
        "'.OUTPUT.tsdiff-PID-XXXX.tmp' beside OUTPUT; the next run writing OUTPUT removes it.\n\n"
        "example: tsdiff impute sensors.csv max_steps=300 -o filled.csv --plot gaps.png"))
    i.add_argument("input", help="INPUT.csv or INPUT.nc")
    i.add_argument("-o", "--output", required=True, help="OUTPUT.csv or OUTPUT.nc (same kind as INPUT)")
    i.add_argument("settings", nargs="*", help=_SETTINGS_HELP)
    _model_args(i)
    i.add_argument("--n-samples", type=int, default=None, help="imputations per window (default: the model's)")
    i.add_argument("--uncertainty", default=None, help=(
        "also write per-missing-entry mean, std and 5/50/95%% quantiles: a CSV (time, column, ...) for CSV input, "
        "a netCDF with a 'stat' dimension for grids"))
    i.add_argument("--plot", default=None, help="write a PNG of the imputations with 90%% intervals (grids: maps)")
    _csv_args(i, forecast=False)

    f = sub.add_parser("forecast", help="forecast the steps after a CSV table or netCDF grid", formatter_class=fmt,
                       description=(
        "Forecast the --prediction-length steps after the end of INPUT.\n\n"
        "INPUT.csv: first column timestamps (regular frequency), one numeric column per series.\n"
        "  Dates such as 01/02/2024 are read month-first; pass --dayfirst for dd/mm/yyyy or --date-format.\n"
        "  Timestamps with UTC offsets (+01:00, also changing with daylight saving time) are read as\n"
        "  instants; the forecast's timestamps carry the offset of the last row.\n"
        "  A first column of numbers (0, 1, 2, ... or epoch seconds) is a step counter, not a date: the\n"
        "  forecast rows continue it (last + k x step). Pass --time-unit s (ms, us, ns, m, h, D) to read\n"
        "  the numbers as epoch times instead.\n"
        "INPUT.nc: a netCDF grid (time, latitude, longitude).\n"
        "OUTPUT.csv: mean and quantile columns 'series:stat' on the future timestamps;\n"
        "OUTPUT.nc: all sample paths with a 'sample' dimension and the input's coordinates.\n\n"
        "Without --model a tsdiff.Forecaster is trained on INPUT (settings: --config YAML of Forecaster\n"
        "arguments, then key=value overrides); --model uses a file saved by Forecaster.save / --save-model.\n\n"
        "example: tsdiff forecast rates.csv -o next30.csv --prediction-length 30 --plot fan.png"))
    f.add_argument("input", help="INPUT.csv or INPUT.nc")
    f.add_argument("-o", "--output", required=True, help="OUTPUT.csv (quantiles) or OUTPUT.nc (samples)")
    f.add_argument("settings", nargs="*", help=_SETTINGS_HELP)
    _model_args(f)
    f.add_argument("--prediction-length", type=int, default=None, help="steps to forecast (default 24)")
    f.add_argument("--context-length", type=int, default=None, help="history steps the model sees (default 2 x H)")
    f.add_argument("--n-samples", type=int, default=None, help="sample paths (default 100)")
    f.add_argument("--sampler", default=None, help="sampler name (ddpm, ddim, heun, dpm_solver_pp, ...)")
    f.add_argument("--steps", type=int, default=None, help="sampler steps (default: all diffusion steps)")
    f.add_argument("--plot", default=None, help="write a fan chart PNG")
    _csv_args(f, forecast=True)

    p = sub.add_parser("predict", help="sample a trained run's evaluation windows and write the predictions",
                       formatter_class=fmt, description=(
        "Load MODEL (model.pt from `tsdiff fit`, or its run directory), draw eval.n_samples samples for every\n"
        "window of eval.split of its protocol, and write them: OUTPUT.nc (samples with dims sample, window,\n"
        "step, node, channel, plus the inputs and masks) or OUTPUT.csv (one row per predicted entry: window,\n"
        "time, node, channel, observed value, mean, std, 5/50/95% quantiles).\n\n"
        "Overrides come right after MODEL, before the options.\n\n"
        "example: tsdiff predict runs/csdi_aqi36 eval.n_samples=20 eval.limit_windows=4 -o preds.nc"))
    p.add_argument("model", help="model file (model.pt) or the run directory that holds it")
    p.add_argument("-o", "--output", required=True, help="OUTPUT.nc or OUTPUT.csv")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value, e.g. eval.sampler=ddim eval.steps=10")
    p.add_argument("--plot", default=None, help="write a PNG of the first window (fan chart or imputation plot)")

    g = sub.add_parser("plot", help="plot result records: leaderboard or CRPS versus NFE", formatter_class=fmt,
                       description=(
        "Read result records (JSON files written by `tsdiff test` / `tsdiff bench`, or folders of them) and\n"
        "write a PNG: 'leaderboard' (a metric per model/sampler, best on top) or 'nfe' (CRPS against network\n"
        "evaluations, one line per sampler).\n\n"
        "example: tsdiff plot nfe results/ -o crps_nfe.png"))
    g.add_argument("kind", choices=["leaderboard", "nfe"], help="which plot")
    g.add_argument("records", nargs="+", help="record JSON files or folders holding them")
    g.add_argument("-o", "--output", required=True, help="OUTPUT.png")
    g.add_argument("--metric", default="crps", help="metric key in the records (default crps)")
    for parser, run in ((i, impute_command), (f, forecast_command), (p, predict_command), (g, plot_command)):
        parser.set_defaults(run=run)


def _csv_args(p, forecast: bool) -> None:
    g = p.add_argument_group("reading INPUT.csv (detected when not given)")
    g.add_argument("--encoding", default=None, help=(
        "text encoding of INPUT.csv (default: from its byte-order mark, else UTF-8; a file that is not UTF-8 is "
        "read as Windows-1252 / Latin-1 with a warning). The output keeps it"))
    g.add_argument("--sep", default=None, help="separator of INPUT.csv: ',', ';', tab or '|' (default: detected)")
    g.add_argument("--decimal", default=None, choices=[".", ","], help=(
        "decimal mark of the numbers: ',' reads 1,5 as 1.5 (the separator is then ';' or tab); the output keeps it"))
    g.add_argument("--dayfirst", action="store_true", help="read dates such as 01/02/2024 as dd/mm/yyyy "
                   "(default mm/dd/yyyy; ambiguous dates are an error that asks for this option)")
    g.add_argument("--date-format", default=None,
                   help="strftime format of the first column, e.g. '%%d.%%m.%%Y %%H:%%M'")
    if forecast:
        g.add_argument("--time-unit", default=None, choices=["D", "h", "m", "s", "ms", "us", "ns"], help=(
            "read a numeric first column as epoch times in this unit (s: Unix seconds); without it numbers are "
            "a step counter"))


def _csv_options(args, kind: str) -> dict:
    """The CSV reading options of ``args`` (refused for a netCDF input)."""
    sep = {"tab": "\t", "\\t": "\t"}.get(args.sep, args.sep)
    opts = {"encoding": args.encoding, "sep": sep, "dayfirst": args.dayfirst, "date_format": args.date_format,
            "time_unit": getattr(args, "time_unit", None), "decimal": args.decimal}
    given = [k for k, v in opts.items() if v]
    if kind != "csv" and given:
        raise ConfigError(f"--{given[0].replace('_', '-')} applies to a CSV input; {args.input!r} is a netCDF "
                          "grid: drop the option")
    if args.dayfirst and args.date_format:
        raise ConfigError("give --dayfirst or --date-format, not both (the format says the order)")
    return opts


def _check_paths(inputs: dict, outputs: dict) -> None:
    """Refuse, before any work, an output that is one of the inputs (it would be destroyed), two
    outputs that are the same file, and an output that cannot be written."""
    from tsdiff.io import check_writable, same_file

    ins = {k: v for k, v in inputs.items() if v}
    outs = {k: v for k, v in outputs.items() if v}
    for oname, opath in outs.items():
        for iname, ipath in ins.items():
            if same_file(opath, ipath):
                p = Path(opath)
                other = str(p.with_name(p.stem + ".out" + p.suffix))
                raise ConfigError(f"{oname} {opath!r} is the same file as {iname} {ipath!r}: writing it would destroy "
                                  f"the {iname}; write to another file, e.g. {other!r}")
    items = list(outs.items())
    for i, (a, pa) in enumerate(items):
        for b, pb in items[i + 1:]:
            if same_file(pa, pb):
                raise ConfigError(f"{a} and {b} are the same file {pa!r}; give each output its own file")
    for oname, opath in outs.items():
        check_writable(opath, oname)


def _model_args(p) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", default=None, help="a saved model file to use instead of training on INPUT")
    src.add_argument("--config", default=None, help="YAML mapping of constructor arguments for the model trained on INPUT")
    p.add_argument("--save-model", default=None, help="save the model trained on INPUT to this file")
    p.add_argument("--seed", type=int, default=None, help="random_state (training and sampling)")


def _settings(cls, config: str | None, overrides: list[str], extra: dict) -> dict:
    import yaml

    from tsdiff.config import parse_override

    valid = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    out: dict = {}
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"config file {config!r} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config}: expected a YAML mapping of {cls.__name__} arguments")
        out.update(loaded)
    for text in overrides:
        keys, value = parse_override(text)
        if len(keys) == 1:
            out[keys[0]] = value
        else:  # model_options.layers=2
            out.setdefault(keys[0], {})
            node = out[keys[0]]
            for k in keys[1:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = value
    out.update({k: v for k, v in extra.items() if v is not None})
    unknown = sorted(set(out) - set(valid))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} setting(s) {unknown}; valid settings are: {', '.join(valid)}")
    return out


def _check_output(args, kind_in: str) -> str:
    from tsdiff.userfiles import file_kind

    kind_out = file_kind(args.output, "output")
    if kind_out != kind_in:
        raise ConfigError(f"output {args.output!r} is {kind_out} but the input is {kind_in}; write the same kind "
                          f"(.csv for tables, .nc for grids)")
    if args.plot is not None and Path(args.plot).suffix.lower() != ".png":
        raise ConfigError(f"--plot writes a PNG; give a path ending in .png, not {args.plot!r}")
    unc = getattr(args, "uncertainty", None)
    if unc is not None and file_kind(unc, "--uncertainty") != kind_in:
        raise ConfigError(f"--uncertainty {unc!r} must be a {'.csv' if kind_in == 'csv' else '.nc'} file like the "
                          "input")
    if args.save_model and args.model:
        raise ConfigError("--save-model saves a model trained on INPUT; with --model nothing is trained: drop "
                          "--save-model")
    _check_paths({"input": args.input, "--model": args.model, "--config": args.config},
                 {"output": args.output, "--uncertainty": unc, "--plot": args.plot, "--save-model": args.save_model})
    return kind_out


@contextlib.contextmanager
def _naming_input(path: str):
    """A DataError about INPUT's data names the file (the API's messages say 'X' or 'the data')."""
    try:
        yield
    except DataError as exc:
        if not exc.args or Path(path).name not in str(exc):
            exc.args = (f"{path}: {exc}",)
        raise


# --------------------------------------------------------------------------- impute
def impute_command(args) -> int:
    from tsdiff.api import Imputer
    from tsdiff.userfiles import file_kind

    kind = file_kind(args.input, "input")
    csv_options = _csv_options(args, kind)
    _check_output(args, kind)
    if args.model:
        imp = Imputer.load(args.model)
        if args.settings or args.seed is not None:
            raise ConfigError("settings and --seed apply to a model trained on INPUT; drop them with --model")
    else:
        imp = Imputer(**_settings(Imputer, args.config, args.settings, {"random_state": args.seed}))
    n = args.n_samples if args.n_samples is not None else imp.n_samples
    with _naming_input(args.input):
        if kind == "csv":
            _impute_csv(imp, args, n, csv_options)
        else:
            _impute_grid(imp, args, n)
    if args.save_model and not args.model:
        imp.save(args.save_model)
        print(f"saved model to {args.save_model}")
    return 0


def _impute_csv(imp, args, n: int, csv_options: dict) -> None:
    import pandas as pd

    from tsdiff.plotting import plot_imputation
    from tsdiff.userfiles import read_csv_table, write_imputed_csv, write_table_like

    table = read_csv_table(args.input, **csv_options)
    df = table.frame
    if args.model:
        from tsdiff.validation import check_model_range

        _check_loaded_columns(imp, df)
        check_model_range(imp.module_.scaler, df.to_numpy(), args.input, columns=[str(c) for c in df.columns],
                          rows=[f"line {r.line}" for r in table.rows])
    else:
        imp.fit(df)
    frame = df if hasattr(imp, "feature_names_in_") else df.to_numpy()
    draws = imp.sample(frame, n)
    arr = df.to_numpy()
    missing = np.isnan(arr)
    point = point_summary(draws, imp.point)
    filled = np.where(missing, point, arr)
    write_imputed_csv(args.output, table, filled, missing)
    print(f"imputed {int(missing.sum())} missing value(s) in {arr.shape[0]} rows x {arr.shape[1]} columns -> "
          f"{args.output}")
    if args.uncertainty:
        t, f = np.nonzero(missing)
        q = sample_quantile(draws[:, t, f], [0.05, 0.5, 0.95], axis=0)  # GluonTS' nearest rank
        labels = np.asarray(table.labels, dtype=object)  # the input's text, not a re-formatted time
        stats = pd.DataFrame({df.index.name or "index": labels[t], "column": df.columns[f],
                              "mean": draws[:, t, f].mean(axis=0), "std": draws[:, t, f].std(axis=0),
                              "q0.05": q[0], "q0.5": q[1], "q0.95": q[2]})
        write_table_like(args.uncertainty, table, stats)
        print(f"wrote {args.uncertainty}")
    if args.plot:
        plot_imputation(df, draws, args.plot)
        print(f"wrote {args.plot}")


def _check_loaded_columns(imp, df) -> None:
    sig = imp.signature_
    names = [str(c) for c in df.columns]
    if len(names) != sig["num_nodes"] * sig["num_channels"]:
        raise DataError(f"the table has {len(names)} columns but the model was trained on "
                        f"{sig['num_nodes'] * sig['num_channels']}; pass the same columns as in training")
    if sig.get("node_names") and sig["num_channels"] == 1 and list(sig["node_names"]) != names \
            and not all(n.startswith("x") for n in sig["node_names"]):
        raise DataError(f"the table's columns {names[:3]}... differ from the model's {list(sig['node_names'])[:3]}...; "
                        "pass the same columns in the same order as in training")


def _impute_grid(imp, args, n: int) -> None:
    """Impute a netCDF grid window by window: the input is read lazily and the output (and the
    uncertainty file) written block by block, so memory follows the batch, not the grid."""
    from contextlib import nullcontext

    from tsdiff.api import grids
    from tsdiff.data.adapters.grid import GridSource
    from tsdiff.plotting import plot_grid_maps
    from tsdiff.userfiles import GridWriter, open_grid

    ds = open_grid(args.input, lazy=True)
    try:
        source = GridSource(ds)
        T, N, C = source.shape
        reader = source
        if args.model:
            sig = imp.signature_
            if (sig["num_nodes"], sig["num_channels"]) != (N, C):
                raise DataError(f"the grid has {N} cells x {C} variable(s) but the model was trained on "
                                f"{sig['num_nodes']} x {sig['num_channels']}; use the same grid and variables")
        else:  # a small grid trains from memory (faster than reading each window)
            reader = grids.fit(imp, source)
        stats = ["mean", "std", "q0.05", "q0.95"]
        n_missing, worst = 0, (0, 0, None)  # the step with most gaps: (gaps, step, its draws [S, N])
        unc = GridWriter(args.uncertainty, source, stats=stats, keep_encoding=False) if args.uncertainty \
            else nullcontext()
        with GridWriter(args.output, source) as out, unc:
            for a, values, draws in imp.imputed_blocks(reader, n):
                missing = np.isnan(values)
                point = point_summary(draws, imp.point)
                out.write(a, np.where(missing, point, values))
                if args.uncertainty:
                    summary = (draws.mean(0), draws.std(0), *sample_quantile(draws, [0.05, 0.95], axis=0))
                    unc.write(a, np.stack([np.where(missing, s, np.nan) for s in summary]))
                gaps = missing.reshape(len(values), -1).sum(axis=1)
                t = int(np.argmax(gaps))
                if worst[2] is None or gaps[t] > worst[0]:
                    worst = (int(gaps[t]), a + t, draws[:, t, :, 0].copy())
                n_missing += int(missing.sum())
        print(f"imputed {n_missing} missing value(s) of {T} steps x {source.spatial.shape} cells -> {args.output}")
        if args.plot:
            H, W = source.spatial.shape
            plot_grid_maps(worst[2].reshape(-1, H, W), source.spatial.lat, source.spatial.lon, args.plot,
                           title=f"{source.variables[0]} {str(source.time_index[worst[1]])[:16]}",
                           units=str(ds[source.variables[0]].attrs.get("units", "")))
            print(f"wrote {args.plot}")
    finally:
        ds.close()


# --------------------------------------------------------------------------- forecast
def forecast_command(args) -> int:
    from tsdiff.api import Forecaster
    from tsdiff.userfiles import file_kind, open_grid, read_csv_table, write_forecast

    kind = file_kind(args.input, "input")
    csv_options = _csv_options(args, kind)
    _check_output(args, kind)
    table, relabel = None, None
    extra = {"prediction_length": args.prediction_length, "context_length": args.context_length,
             "random_state": args.seed}
    with _naming_input(args.input):
        if kind == "csv":
            table = read_csv_table(args.input, **csv_options, strict_time=True)
            data, relabel = _model_time_axis(table, args.input)
        else:
            data = open_grid(args.input)
        if args.model:
            fc = Forecaster.load(args.model)
            if args.settings or any(v is not None for v in extra.values()):
                raise ConfigError("settings, --prediction-length, --context-length and --seed apply to a model "
                                  "trained on INPUT; drop them with --model")
        else:
            fc = Forecaster(**{"verbose": False, **_settings(Forecaster, args.config, args.settings, extra)})
            fc.fit(data)
        forecast = fc.predict(data, n_samples=args.n_samples, sampler=args.sampler, sampling_steps=args.steps,
                              verbose=False)
    index = relabel(forecast.index) if relabel else None
    write_forecast(forecast, args.output, index=index, like=table)
    print(f"forecast {forecast.prediction_length} steps x {forecast.samples_full.shape[2]} series "
          f"({forecast.n_samples} samples) -> {args.output}")
    if args.plot:
        _relabelled(forecast, index, table).plot(args.plot)
        print(f"wrote {args.plot}")
    if args.save_model and not args.model:
        fc.save(args.save_model)
        print(f"saved model to {args.save_model}")
    return 0


def _model_time_axis(table, where):
    """The table with the time axis the model needs (tz-naive timestamps) and a function that
    turns the forecast's timestamps back into the input's kind of label (steps, UTC offsets)."""
    import pandas as pd

    data, axis = table.frame, table.axis
    if axis.kind == "labels":
        raise DataError(f"{where}: the first column must hold timestamps (or step numbers) to forecast the future, "
                        f"but {axis.reason}; write dates such as 2024-01-31 or 2024-01-31 13:00")
    if axis.kind == "steps":
        steps = data.index.to_numpy()
        diffs = np.diff(steps)
        bad = np.flatnonzero(diffs != diffs[0]) if len(diffs) else []
        if len(steps) < 2 or diffs[0] <= 0 or len(bad):
            i = int(bad[0]) + 1 if len(bad) else 1
            raise DataError(f"{where}: the first column holds numbers, read as a step counter, but they do not "
                            f"increase by a constant step (line {table.rows[min(i, len(steps) - 1)].line}); sort the "
                            "rows and fill skipped steps with empty cells, or pass --time-unit s (ms, ...) if they "
                            "are epoch times")
        step, last, name = diffs[0], steps[-1], data.index.name
        model = data.set_axis(pd.date_range("2000-01-01", periods=len(data), freq="D", name=name))
        return model, lambda future: pd.Index(last + step * np.arange(1, len(future) + 1), name=name)
    if axis.tz is not None:
        model = data.set_axis(data.index.tz_convert("UTC").tz_localize(None))
        return model, lambda future: future.tz_localize("UTC").tz_convert(axis.tz)
    return data, None


def _relabelled(forecast, index, table):
    """A copy of ``forecast`` whose future and history carry the input's labels (for plots)."""
    import copy

    if index is None:
        return forecast
    out = copy.copy(forecast)
    out.index = index
    if out.history is not None:
        out.history = copy.copy(out.history)
        out.history.time_index = table.frame.index[-len(out.history.time_index):]
    return out


# --------------------------------------------------------------------------- predict
def predict_command(args) -> int:
    """Sample the evaluation windows of a ``tsdiff fit`` run and write them."""
    import pandas as pd
    import xarray as xr

    from tsdiff.api import sample_windows
    from tsdiff.experiment import MODEL_FILE, load_run, prepare_sampling
    from tsdiff.io import atomic_write
    from tsdiff.userfiles import file_kind

    kind = file_kind(args.output, "output")
    if args.plot is not None and Path(args.plot).suffix.lower() != ".png":
        raise ConfigError(f"--plot writes a PNG; give a path ending in .png, not {args.plot!r}")
    _check_paths({"model": args.model}, {"output": args.output, "--plot": args.plot})
    path = Path(args.model)
    path = path / MODEL_FILE if path.is_dir() else path
    module, _, cfg, protocol = load_run(path, args.overrides)
    data, ev = cfg["data"], cfg["eval"]
    ds = protocol.dataset(ev["split"])
    n_win = len(ds) if ev["limit_windows"] is None else min(len(ds), int(ev["limit_windows"]))
    if n_win == 0:
        raise DataError(f"split {ev['split']!r} of protocol {protocol.id!r} has no window")
    items = [ds[i] for i in range(n_win)]
    raw = np.stack([it["y"].numpy() for it in items])
    cond = np.stack([it["cond_mask"].numpy() for it in items])
    starts = np.asarray([int(it["start"]) for it in items])
    # the prior sees what `tsdiff test` gives it: the known values beyond each window's edges and
    # each window's position in the series
    anchors = np.stack([it["anchors"].numpy() for it in items]) if "anchors" in items[0] else None
    prepare_sampling(module, ev)
    samples = sample_windows(
        module, raw, cond, n_samples=ev["n_samples"], sampler=ev["sampler"], steps=ev["steps"], seed=cfg["seed"],
        batch_size=data["batch_size"], progress=True, desc="predict", eta=ev["eta"],
        sampler_options=ev["sampler_options"], chunk_size=ev["chunk_size"], conditioning=ev["conditioning"],
        conditioning_options=ev["conditioning_options"], anchors=anchors, starts=starts, precision=ev["precision"])
    series = protocol.series
    L = raw.shape[1]
    times = np.stack([series.time_index[s: s + L].to_numpy() for s in starts])
    if kind == "netcdf":
        out = xr.Dataset(
            {"samples": (("sample", "window", "step", "node", "channel"), samples),
             "input": (("window", "step", "node", "channel"), raw),
             "cond_mask": (("window", "step", "node", "channel"), cond.astype(np.int8)),
             "time": (("window", "step"), times)},
            coords={"window": starts, "node": list(series.node_names), "channel": list(series.channel_names)},
            attrs={"protocol": protocol.id, "split": ev["split"], "sampler": ev["sampler"], "model_file": str(path)})
        data = out.to_netcdf()  # bytes, renamed into place: a killed run leaves no half-written OUTPUT
        atomic_write(args.output, lambda fh: fh.write(bytes(data)))
    else:
        w, l, nn, c = np.nonzero(~cond)
        v = samples[:, w, l, nn, c]
        q = sample_quantile(v, [0.05, 0.5, 0.95], axis=0)
        table = pd.DataFrame({
            "window_start": times[w, 0], "time": times[w, l], "node": np.asarray(series.node_names)[nn],
            "channel": np.asarray(series.channel_names)[c], "observed": raw[w, l, nn, c], "mean": v.mean(0),
            "std": v.std(0), "q0.05": q[0], "q0.5": q[1], "q0.95": q[2]})
        text = table.to_csv(index=False)
        atomic_write(args.output, lambda fh: fh.write(text), mode="w")
    print(f"predicted {n_win} window(s) x {ev['n_samples']} samples of {protocol.id} ({ev['split']}) -> {args.output}")
    if args.plot:
        _plot_window(protocol, samples[:, 0], raw[0], cond[0], times[0], args.plot)
        print(f"wrote {args.plot}")
    return 0


def _plot_window(protocol, samples, raw, cond, times, path) -> None:
    import pandas as pd

    from tsdiff.api import Forecast
    from tsdiff.data.series import Series
    from tsdiff.plotting import plot_forecast, plot_imputation

    s = protocol.series
    if protocol.context is None:
        observed = np.where(cond, raw, np.nan)[:, :, 0]
        plot_imputation(observed, samples[..., 0], path, columns=s.node_names, index=pd.DatetimeIndex(times),
                        truth=raw[:, :, 0])
        return
    ctx = protocol.context
    hist = Series(raw[:ctx], pd.DatetimeIndex(times[:ctx]), s.node_names, s.channel_names)
    fc = Forecast(samples[:, ctx:], pd.DatetimeIndex(times[ctx:]), s.node_names, s.channel_names, history=hist)
    plot_forecast(fc, path, truth=raw[ctx:])


# --------------------------------------------------------------------------- plot
def plot_command(args) -> int:
    from tsdiff.plotting import plot_crps_vs_nfe, plot_leaderboard, save_png

    if Path(args.output).suffix.lower() != ".png":
        raise ConfigError(f"plots are written as PNG; give -o ending in .png, not {args.output!r}")
    _check_paths({}, {"output": args.output})
    records = []
    for item in args.records:
        p = Path(item)
        files = sorted(p.rglob("*.json")) if p.is_dir() else [p]
        for f in files:
            if not f.is_file():
                raise DataError(f"record file {str(f)!r} does not exist")
            try:
                rec = json.loads(f.read_text())
            except json.JSONDecodeError as exc:
                raise DataError(f"{f} is not JSON ({exc})") from None
            if isinstance(rec, dict) and "metrics" in rec:
                records.append(rec)
    if not records:
        raise DataError(f"no result records (JSON with 'metrics') found in {args.records}")
    if args.kind == "leaderboard":
        fig = plot_leaderboard(records, metric=args.metric)
    else:
        fig = plot_crps_vs_nfe(records, metric=args.metric)
    save_png(fig, args.output)
    print(f"wrote {args.output} ({len(records)} records)")
    return 0
