"""The bad-input matrix: malformed input at every public entry point gives a clear tsdiff error.

One table, ``CASES``: each row names an entry point, the malformed input, the
exception TYPE expected and a fragment of its message (what is wrong / how to fix
it). Entry points: config loading and overrides, the CLI, adapters (frames, numpy,
xarray grids, graph adjacency), protocols, model / process / sampler / conditioning
/ loss builders, networks (every registered model), sampling, metrics, model
files, the Python API. Rows marked with ``# fixed`` crashed deep inside
torch / pandas / Lightning, or silently accepted garbage, before this table.

``test_matrix_counts`` keeps the size of the table visible (inputs tried, errors
verified).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_properties import make_module, registered_models, ring_graph
from tsdiff.errors import ConfigError, DataError, DatasetNotFoundError, TsdiffError, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/imputation/csdi_aqi36.yaml")


class Case(NamedTuple):
    id: str
    call: Callable[[], object]
    error: type[BaseException]
    fragment: str


class CLIError(Exception):
    """``tsdiff`` exited with status 2; the message is its stderr."""


def cli(*argv: str) -> int:
    """Run ``tsdiff ARGV`` in-process. Exit status 2 must come with a ``tsdiff CMD: error: ...`` line on
    stderr (after warnings, if any) and no traceback; it is raised as CLIError. An exception escaping
    ``main`` (a raw traceback for a user) fails the row, since it is not the CLIError the row expects."""
    from tsdiff.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    text = err.getvalue()
    assert "Traceback" not in text, text
    if code == 2:
        lines = text.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith(f"tsdiff {argv[0]}: error: ")), None)
        assert start is not None, f"exit 2 without a 'tsdiff {argv[0]}: error: ...' line: {text!r}"
        assert all(line.startswith(f"tsdiff {argv[0]}: warning: ") for line in lines[:start]), text
        raise CLIError(text)
    return code


def _tiny_imputer_file() -> str:
    """A tiny imputer for 2 columns, trained (once) on values of about 1, saved to a file."""
    global _TINY_IMPUTER
    if _TINY_IMPUTER is None:
        import tempfile

        from tsdiff.api import Imputer

        X = np.random.default_rng(0).normal(size=(16, 2))
        X[3, 0] = np.nan
        path = Path(tempfile.mkdtemp(prefix="tsdiff-bad-")) / "imputer.pt"
        Imputer(window=8, max_steps=1, n_samples=1, sampling_steps=1, prior="none", device="cpu", model_options={
            "layers": 1, "channels": 8, "heads": 2, "ff_dim": 8, "diffusion_embedding_dim": 16,
            "time_embedding_dim": 8, "feature_embedding_dim": 4}).fit(X).save(path)
        _TINY_IMPUTER = str(path)
    return _TINY_IMPUTER


_TINY_IMPUTER: str | None = None


def _loaded_imputer():
    from tsdiff.api import Imputer

    return Imputer.load(_tiny_imputer_file())


def cfg(*overrides: str):
    from tsdiff.config import load_config

    return lambda: load_config(None, list(overrides))


def _tmp(name: str, text: str | bytes) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="tsdiff-bad-")) / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _frame(values, freq="h", columns=None) -> pd.DataFrame:
    values = np.asarray(values)
    return pd.DataFrame(values, index=pd.date_range("2024-01-01", periods=len(values), freq=freq),
                        columns=columns or [f"s{i}" for i in range(values.shape[1])])


def _grid(values=None, time=None, lat_units="degrees_north", dims=("time", "lat", "lon")):
    import xarray as xr

    v = np.arange(24, dtype=float).reshape(4, 2, 3) if values is None else values
    coords = {"time": pd.date_range("2020-01-01", periods=v.shape[0], freq="h") if time is None else time,
              "lat": xr.DataArray([50.0, 51.0], dims="lat", attrs={"units": lat_units}),
              "lon": xr.DataArray([0.0, 1.0, 2.0], dims="lon", attrs={"units": "degrees_east"})}
    return xr.DataArray(v, dims=dims, coords=coords, name="t2m")


def _no_warnings(call: Callable[[], object]) -> Callable[[], object]:
    """``call`` with every warning an error: the refusal must come without a library's warning first."""
    def wrapped():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return call()

    return wrapped


def _series(values):
    from tsdiff.data.adapters.frames import from_numpy

    return from_numpy(values)


def _net_call(name: str, shape_change: str):
    def call():
        fx = {"N": 4, "C": 1, "L": 4}
        module = make_module(name, fx["N"], fx["C"], fx["L"]).eval()
        from tsdiff.models import Condition

        x = torch.zeros(2, 4, 4, 1)
        if shape_change == "nodes":
            bad = torch.zeros(2, 4, 5, 1)
            return module.net(bad, torch.zeros(2), Condition(bad, torch.ones_like(bad, dtype=torch.bool),
                                                             spatial=module.spatial))
        if shape_change == "rank":
            bad = torch.zeros(2, 4, 4)
            return module.net(bad, torch.zeros(2), Condition(bad, torch.ones_like(bad, dtype=torch.bool),
                                                             spatial=module.spatial))
        cm = torch.ones(2, 3, 4, 1, dtype=torch.bool)
        return module.net(x, torch.zeros(2), Condition(x, cm, spatial=module.spatial))

    return call


def _sample(name: str, what: str):
    def call():
        module = make_module(name, 4, 1, 4)
        x = torch.zeros(2, 4, 4, 1)
        cm = torch.ones(2, 4, 4, 1, dtype=torch.bool)
        cm[:, -1] = False
        kw = dict(n_samples=2, sampler="ddim", steps=2)
        if what == "nan":
            x[0, 0, 0, 0] = float("nan")
        elif what == "inf":
            x[0, 0, 0, 0] = float("inf")
        elif what == "mask_shape":
            cm = cm[:, :3]
        elif what == "n_samples":
            kw["n_samples"] = 0
        elif what == "mask_dtype":
            cm = cm.float() * 0.5
        return module.sample(x, cm, None, **kw)

    return call


def _module_with(name: str, **change):
    def call():
        from tsdiff.data.spatial import GridSpatial

        spatial = {"none": None, "graph3": ring_graph(3), "grid": GridSpatial(np.array([1.0, 2.0]), np.array([1.0, 2.0]))}
        if "spatial" in change:
            from tsdiff.training.spatial_state import spatial_state

            return make_module(name, 4, 1, 4, spatial=spatial_state(spatial[change["spatial"]]))
        return make_module(name, 4, 1, 4, **change)

    return call


def _metric(fn_name: str, samples, target, mask=None, **kw):
    def call():
        import tsdiff.metrics as m

        return getattr(m, fn_name)(samples, target, mask, **kw)

    return call


def _api(what: str):
    def call():
        import tsdiff.api as api

        X = np.random.default_rng(0).normal(size=(30, 3))
        if what == "imputer_strings":
            return api.Imputer(max_steps=1).fit(np.array([["a", "b"], ["c", "d"]], dtype=object))
        if what == "imputer_window":
            return api.Imputer(window=0, max_steps=1).fit(X)
        if what == "imputer_columns":
            imp = api.Imputer(window=8, max_steps=1, n_samples=1, sampling_steps=1).fit(X)
            return imp.transform(X[:, :2])
        if what == "imputer_inf":
            Y = X.copy()
            Y[3, 1] = np.inf
            return api.Imputer(max_steps=1).fit(Y)
        if what == "imputer_model":
            return api.Imputer(model="nope", max_steps=1).fit(X)
        if what == "imputer_empty":
            return api.Imputer(max_steps=1).fit(np.zeros((0, 3)))
        if what == "forecaster_horizon":
            return api.Forecaster(prediction_length=0).fit(_frame(X))
        if what == "forecaster_strings":
            return api.Forecaster(prediction_length=2, max_steps=1).fit(
                pd.DataFrame({"a": ["x"] * 30}, index=pd.date_range("2024", periods=30, freq="h")))
        if what == "forecaster_short":
            return api.Forecaster(prediction_length=20, context_length=20, max_steps=1).fit(_frame(X[:10]))
        if what == "forecaster_load_missing":
            return api.Forecaster.load("/nonexistent/model.pt")
        return _hostile(api, X, what)

    return call


_TINY = dict(max_steps=1, n_samples=1, sampling_steps=1, device="cpu")


def _hostile(api, X, what: str):
    """Hostile input to the Python API (settings, labels, storage kinds, precision)."""
    F = dict(prediction_length=2, context_length=4, max_steps=1, n_samples=1, sampling_steps=1, verbose=False,
             device="cpu")
    df = _frame(X)
    if what.startswith("sample_n="):
        imp = api.Imputer(window=8, **_TINY).fit(X)
        imp.module_ = None  # n_samples must be refused before anything runs (or is allocated)
        return imp.sample(X, n_samples={"neg": -3, "float": 2.0, "bool": True}[what.split("=")[1]])
    if what.startswith("predict_n="):
        fc = api.Forecaster(**F).fit(df)
        return fc.predict(n_samples={"neg": -3, "float": 2.0, "bool": True}[what.split("=")[1]])
    settings = {"lr_nan": {"lr": float("nan")}, "lr_negative": {"lr": -1}, "lr_bool": {"lr": True},
                "seed_negative": {"random_state": -1}, "seed_float": {"random_state": 1.5},
                "cuda": {"device": "cuda"}}
    who, _, key = what.partition("_")
    if key in settings:
        if who == "imputer":
            return api.Imputer(**{**_TINY, **settings[key]}).fit(X)
        return api.Forecaster(**{**F, **settings[key]}).fit(df)
    if what == "forecaster_freq":
        return api.Forecaster(**F, freq="bogus").fit(df)
    if what == "to_series_freq":
        return api.to_series(X, freq="bogus")
    if what == "lr_diverges":
        Y = X.copy()
        Y[4, 1] = np.nan
        return api.Imputer(**{**_TINY, "max_steps": 8, "lr": 1e6}).fit_transform(Y)
    if what == "to_pandas_quantiles":
        return api.Forecaster(**F).fit(df).predict().to_pandas(quantiles=[2])
    if what == "forecaster_all_nan_series":
        Y = X.copy()
        Y[:, 1] = np.nan
        return api.Forecaster(**F).fit(_frame(Y))
    if what in ("imputer_duplicates", "forecaster_duplicates"):
        bad = _frame(X, columns=["a", "a", "b"])
        return api.Imputer(**_TINY).fit(bad) if what.startswith("imputer") else api.Forecaster(**F).fit(bad)
    if what == "imputer_mixed_labels":
        return api.Imputer(**_TINY).fit(_frame(X, columns=[0, "a", "b"]))
    if what == "forecaster_colliding_labels":
        return api.Forecaster(**F).fit(_frame(X, columns=[0, "0", "b"]))
    if what in ("imputer_scipy", "forecaster_scipy"):
        import scipy.sparse as sp

        m = sp.csr_matrix(X)
        return api.Imputer(**_TINY).fit(m) if what.startswith("imputer") else api.Forecaster(**F).fit(m)
    big = (np.arange(90, dtype=np.int64).reshape(30, 3) + 2**53 + 1)
    if what == "imputer_int64":
        return api.Imputer(**_TINY).fit(big)
    if what == "forecaster_int64":
        return api.Forecaster(**F).fit(big)
    if what == "forecaster_int64_frame":
        return api.Forecaster(**F).fit(_frame(big))
    if what == "imputer_nullable_int64":
        return api.Imputer(**_TINY).fit(_frame(big).astype("Int64"))
    if what == "imputer_float128":
        return api.Imputer(**_TINY).fit(X.astype(np.longdouble) + np.longdouble(1) / np.longdouble(3 * 2**60))
    raise AssertionError(what)


def _cases() -> list[Case]:
    from tsdiff.data.adapters import frames, graph, grid
    from tsdiff.data.protocol import build_protocol
    from tsdiff.data.scalers import StandardScaler
    from tsdiff.data.spatial import GraphSpatial
    from tsdiff.diffusion import build_conditioning, build_loss, build_process, build_sampler
    from tsdiff.models import build_model
    from tsdiff.training.checkpoint import load_model

    bad_yaml = _tmp("bad.yaml", "trainer: [1, 2\n")
    list_yaml = _tmp("list.yaml", "- a\n- b\n")
    json_pt = _tmp("model.pt", '{"format": "tsdiff-model-v1"}')
    same_csv = _tmp("d.csv", "t,a\n2024-01-01,1\n2024-01-02,\n")
    csv_dir = same_csv.parent / "folder.csv"
    csv_dir.mkdir()
    rows = [
        # --- config loading and overrides --------------------------------------------------------
        Case("config/unknown-key", cfg("trainer.max_epoch=3"), ConfigError, "did you mean 'max_epochs'"),
        Case("config/unknown-section", cfg("optimizer.lr=1"), ConfigError, "unknown config key 'optimizer'"),
        Case("config/no-equals", cfg("trainer.max_epochs"), ConfigError, "is not of the form key=value"),
        Case("config/empty-key", cfg("=3"), ConfigError, "has an empty key"),
        Case("config/bad-yaml-value", cfg("data.options={a: [1"), ConfigError, "value is not valid YAML"),
        Case("config/section-not-mapping", cfg("trainer=5"), ConfigError, "must be a mapping"),
        Case("config/missing-file", lambda: __import__("tsdiff.config", fromlist=["x"]).load_config("/no/such.yaml"),
             ConfigError, "does not exist"),
        Case("config/file-not-yaml", lambda: __import__("tsdiff.config", fromlist=["x"]).load_config(bad_yaml),
             ConfigError, "is not valid YAML"),
        Case("config/file-not-mapping", lambda: __import__("tsdiff.config", fromlist=["x"]).load_config(list_yaml),
             ConfigError, "must contain a YAML mapping"),
        Case("config/epochs-zero", cfg("trainer.max_epochs=0"), ConfigError, "max_epochs must be an integer >= 1"),
        Case("config/epochs-string", cfg("trainer.max_epochs=ten"), ConfigError, "max_epochs must be an integer"),
        Case("config/batch-zero", cfg("data.batch_size=0"), ConfigError, "batch_size must be an integer >= 1"),
        Case("config/batch-float", cfg("data.batch_size=2.5"), ConfigError, "batch_size must be an integer >= 1"),
        Case("config/workers-negative", cfg("data.num_workers=-1"), ConfigError, "num_workers must be an integer >= 0"),
        Case("config/lr-negative", cfg("optim.lr=-0.1"), ConfigError, "optim.lr must be a positive number"),
        Case("config/lr-inf", cfg("optim.lr=.inf"), ConfigError, "optim.lr must be a positive"),  # fixed
        Case("config/lr-nan", cfg("optim.lr=.nan"), ConfigError, "optim.lr must be a positive"),  # fixed
        Case("config/lr-bool", cfg("optim.lr=true"), ConfigError, "optim.lr must be a positive"),  # fixed
        Case("config/milestone-range", cfg("optim.milestones=[1.5]"), ConfigError, "fractions of training in (0, 1]"),
        Case("config/gamma-negative", cfg("optim.gamma=-1"), ConfigError, "optim.gamma must be a number in (0, 1]"),  # fixed
        Case("config/weight-decay-negative", cfg("optim.weight_decay=-1"), ConfigError,
             "optim.weight_decay must be a number >= 0"),  # fixed
        Case("config/max-steps", cfg("trainer.max_steps=abc"), ConfigError, "trainer.max_steps must be -1"),  # fixed
        Case("config/limit-batches", cfg("trainer.limit_train_batches=-2"), ConfigError,
             "trainer.limit_train_batches must be null"),  # fixed
        Case("config/n-samples", cfg("eval.n_samples=0"), ConfigError, "n_samples must be an integer >= 1"),
        Case("config/eval-split", cfg("eval.split=train"), ConfigError, "eval.split must be 'test' or 'val'"),
        Case("config/eval-steps", cfg("eval.steps=0"), ConfigError, "eval.steps must be null"),
        Case("config/seed-string", cfg("seed=abc"), ConfigError, "seed must be an integer"),
        Case("config/train-mask", cfg("data.train_mask=blocks"), UnknownNameError,
             "unknown training mask strategy 'blocks'; valid training mask strategy names are:"),  # fixed
        Case("config/clip-negative", cfg("trainer.gradient_clip_val=-1"), ConfigError, "gradient_clip_val must be"),
        Case("config/precision", cfg("trainer.precision=fp8"), ConfigError, "trainer.precision must be one of"),
        Case("config/every-n", cfg("trainer.checkpoint_every_n_steps=0"), ConfigError,
             "checkpoint_every_n_steps must be null or an integer >= 1"),
        # --- command line ------------------------------------------------------------------------
        Case("cli/missing-config", lambda: cli("fit", "/no/such.yaml"), CLIError, "does not exist"),
        Case("cli/missing-model", lambda: cli("test", "/no/such/run"), CLIError, "does not exist"),
        Case("cli/dataset-option", lambda: cli("fit", CONFIG, "data.options={windw: 3}"), CLIError,
             "unknown option(s) ['windw'] for dataset 'aqi36'"),
        Case("cli/missing-data", lambda: cli("datasets", "check", "--data-dir", "/nonexistent"), CLIError,
             "missing file(s)"),
        Case("cli/resume-missing", lambda: cli("fit", CONFIG, "trainer.resume=/no.ckpt", "data.data_dir=/nonexistent"),
             CLIError, "trainer.resume: checkpoint '/no.ckpt' does not exist"),
        Case("cli/not-a-model", lambda: cli("test", str(json_pt)), CLIError, "is not a loadable tsdiff model file"),
        Case("cli/unknown-command", lambda: cli("frobnicate"), SystemExit, "2"),
        Case("cli/impute-missing-input", lambda: cli("impute", "/nonexistent.csv", "-o", "/tmp/x.csv"), CLIError,
             "input file '/nonexistent.csv' does not exist"),
        Case("cli/impute-strings", lambda: cli("impute", str(_tmp("bad.csv", "time,a,b\n2024-01-01 00:00,1,x\n"
                                                                         "2024-01-01 01:00,2,3\n")), "-o", "/tmp/x.csv"),
             CLIError, "column 'b' is not numeric"),
        Case("cli/impute-output-is-input", lambda: cli("impute", str(same_csv), "-o", str(same_csv)), CLIError,
             "is the same file as input"),  # fixed: the input was overwritten
        Case("cli/impute-output-directory", lambda: cli("impute", str(same_csv), "-o", str(csv_dir)), CLIError,
             "is a directory"),  # fixed: a traceback after training
        Case("cli/impute-uncertainty-under-a-file", lambda: cli("impute", str(same_csv), "-o", "/tmp/x.csv",
                                                                "--uncertainty", str(same_csv / "u.csv")), CLIError,
             "is a file, not a folder"),  # fixed: exit 1 after the output was written
        Case("cli/forecast-day-first", lambda: cli("forecast", str(_tmp("dmy.csv", "date,a\n12/01/2024,1\n"
                                                                             "13/01/2024,2\n")), "-o", "/tmp/x.csv"),
             CLIError, "pass --dayfirst"),  # fixed: "not sorted"
        Case("cli/forecast-irregular-steps", lambda: cli("forecast", str(_tmp("st.csv", "t,a\n0,1\n1,2\n5,3\n")),
                                                         "-o", "/tmp/x.csv"), CLIError, "constant step"),  # fixed
        Case("cli/impute-wrong-encoding", lambda: cli("impute", str(_tmp("l1.csv", "t,a\n\xe9,1\n".encode("latin-1"))),
                                                      "--encoding", "utf-8", "-o", "/tmp/x.csv"), CLIError,
             "is not valid utf-8 text"),  # fixed: UnicodeDecodeError
        # found by tests/test_fuzz_inputs.py:
        Case("cli/impute-infinite-cell", lambda: cli(
            "impute", str(_tmp("inf.csv", "t,a,b\n1,2,inf\n2,,3\n")), "-o", "/tmp/x.csv"), CLIError,
             "column 'b' holds 1 infinite value(s) (e.g. 'inf' at line 2)"),  # fixed: sklearn's "Input X contains
        # infinity or a value too large for dtype('float64')", naming no file, line or column
        Case("cli/impute-beyond-model-range", lambda: cli(
            "impute", str(_tmp("big.csv", "t,a,b\n1,2,1e300\n2,,3\n")), "-o", "/tmp/x.csv", "--model",
            _tiny_imputer_file()), CLIError,
             "lie too far outside the data the model was trained on, e.g. 1e+300 in column 'b' (line 2)"),
        # fixed: "x has 1 NaN/inf value(s); missing values must be 0 in x and False in cond_mask"
        Case("cli/impute-beyond-float64", lambda: cli("impute", str(_tmp("big.csv", "t,a\n2024-01-01,1e400\n2024-01-02,\n"
                                                                        "2024-01-03,2\n")), "-o", "/tmp/x.csv"),
             CLIError, "column 'a' holds a number beyond the float64 range (about 1.8e308), '1e400' at line 2"),
        Case("cli/impute-header-separators-only", lambda: cli(
            "impute", str(_tmp("sep.csv", ",\nt,a,b\n1,2,\n")), "-o", "/tmp/x.csv"), CLIError,
             "the header, line 1, is a row of separators only"),  # fixed: only "line 2 has 3 cells but the header has 2"
        Case("cli/forecast-offset-and-none", lambda: cli("forecast", str(_tmp(
            "tz.csv", "t,a\n2024-01-01 00:00+01:00,1\n2024-01-01 01:00,2\n")), "-o", "/tmp/x.csv"),
             CLIError, "has a UTC offset but"),  # fixed: read as labels
        # --- adapters: frames and numpy -----------------------------------------------------------
        Case("frames/not-a-frame", lambda: frames.from_wide_dataframe(np.zeros((3, 2))), DataError,
             "expected a pandas DataFrame"),
        Case("frames/string-column", lambda: frames.from_wide_dataframe(_frame([["a"], ["b"], ["c"]])), DataError,
             "are not numeric"),
        Case("frames/inf", lambda: frames.from_wide_dataframe(_frame([[1.0], [np.inf], [2.0]])), DataError,
             "infinite value(s)"),
        Case("frames/all-nan-series", lambda: frames.check_usable(frames.from_wide_dataframe(
            _frame([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]]))), DataError, "node 's1' channel 'value' is all NaN"),
        Case("frames/all-nan-everything", lambda: frames.check_usable(frames.from_wide_dataframe(
            _frame([[np.nan]] * 3))), DataError, "no observed value at all"),
        Case("frames/empty-rows", lambda: frames.from_wide_dataframe(
            pd.DataFrame({"a": pd.Series([], dtype=float)}, index=pd.DatetimeIndex([])), freq="h"), DataError,
             "has no rows"),  # fixed
        Case("frames/no-columns", lambda: frames.from_wide_dataframe(
            pd.DataFrame(index=pd.date_range("2024", periods=4, freq="h"))), DataError, "has no columns"),  # fixed
        Case("frames/string-index", lambda: frames.from_wide_dataframe(
            pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=["x", "y", "z"])), DataError, "must hold timestamps"),
        Case("frames/long-missing-column", lambda: frames.from_long_dataframe(
            pd.DataFrame({"item_id": ["a"], "value": [1.0]})), DataError, "lacks column(s) ['timestamp']"),
        Case("frames/long-string-values", lambda: frames.from_long_dataframe(pd.DataFrame({
            "item_id": ["a"] * 3, "timestamp": pd.date_range("2024", periods=3, freq="h"), "value": ["x", "y", "z"]})),
             DataError, "value column(s) ['value'] are not numeric"),  # fixed
        Case("numpy/rank-4", lambda: frames.from_numpy(np.zeros((2, 2, 2, 2))), DataError,
             "expected a [T], [T, N] or [T, N, C] array"),
        Case("numpy/strings", lambda: frames.from_numpy(np.array([["a", "b"]])), DataError,
             "must be numeric"),  # fixed
        Case("numpy/complex", lambda: frames.from_numpy(np.ones(4, dtype=complex)), DataError,
             "must be numeric"),  # fixed
        Case("numpy/inf", lambda: frames.from_numpy(np.array([1.0, -np.inf, 2.0])), DataError, "infinite value(s)"),
        Case("numpy/empty", lambda: frames.check_usable(frames.from_numpy(np.zeros((0, 3))), window=4), DataError,
             "shorter than one window of 4"),
        Case("series/int-values", lambda: __import__("tsdiff.data.series", fromlist=["x"]).Series(
            np.zeros((2, 1, 1), dtype=int), pd.date_range("2024", periods=2, freq="h"), ["a"], ["c"]), DataError,
             "must be a float array"),
        Case("scaler/wrong-nodes", lambda: StandardScaler().fit(np.zeros((5, 3, 1))).transform(np.zeros((2, 4, 1))),
             DataError, "data has [N, C] = (4, 1) but the scaler was fitted on (3, 1)"),
        Case("scaler/unfitted", lambda: StandardScaler().transform(np.zeros((2, 4, 1))), DataError, "not fitted"),
        # --- adapters: graphs ------------------------------------------------------------------------
        Case("graph/strings", lambda: graph.from_dense([["a", "b"], ["c", "d"]]), DataError,
             "adjacency must be numeric"),  # fixed
        Case("graph/inf-weight", lambda: graph.from_dense(np.array([[0.0, np.inf], [1.0, 0.0]])), DataError,
             "infinite weight(s)"),
        Case("graph/edge-list-columns", lambda: graph.from_edge_list(np.zeros((3, 2))), DataError,
             "needs 3 columns (from, to, distance)"),
        Case("graph/edge-list-node", lambda: graph.from_edge_list(np.array([[0, 5, 1.0]]), num_nodes=3), DataError,
             "refers to node 5 but num_nodes=3"),
        Case("graph/edge-list-negative", lambda: graph.from_edge_list(np.array([[0, 1, -1.0], [1, 0, 2.0]])),
             DataError, "NaN or negative"),
        Case("graph/edge-list-empty", lambda: graph.from_edge_list(np.zeros((0, 3))), DataError,
             "edge list is empty"),  # fixed
        Case("graph/knn-k", lambda: graph.from_coordinates([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], k=3), ConfigError,
             "k must be in 1..2 for 3 nodes"),
        Case("graph/coords-nan", lambda: graph.from_coordinates([1.0, np.nan], [1.0, 2.0], k=1), DataError,
             "contain NaN"),
        Case("graph/normalize-kind", lambda: graph.normalize(ring_graph(3), "laplacian"), ConfigError,
             "unknown normalisation 'laplacian'; valid: sym, rw, none"),
        Case("graph/edge-index-shape", lambda: GraphSpatial(torch.zeros(3, 2, dtype=torch.long), torch.ones(2), 3),
             DataError, "edge_index must have shape [2, E]"),
        Case("graph/mismatched-series", lambda: ring_graph(3).check_nodes(4), DataError,
             "the graph has 3 nodes but the series has N=4"),
        Case("graph/dcrnn-structure", lambda: graph.from_dcrnn_pickle(_tmp("adj.pkl", __import__("pickle").dumps(
            {"not": "a triple"}))), DataError, "expected DCRNN's [sensor_ids, sensor_id_to_ind, adj_mx]"),
        Case("graph/dcrnn-ids", lambda: graph.from_dcrnn_pickle(_tmp("adj.pkl", __import__("pickle").dumps(
            [["a"], {"a": 0}, np.eye(2)]))), DataError, "1 sensor ids but the adjacency is (2, 2)"),
        # --- adapters: xarray grids ------------------------------------------------------------------
        Case("grid/no-lat-units", lambda: grid.GridSource(_grid(lat_units="m")), DataError,
             "cannot recognise the lat dimension"),
        Case("grid/unsorted-time", lambda: grid.GridSource(_grid(time=pd.DatetimeIndex(
            ["2020-01-01 02:00", "2020-01-01 01:00", "2020-01-01 03:00", "2020-01-01 04:00"]))), DataError,
             "duplicate or unsorted"),
        Case("grid/inf", lambda: grid.GridSource(_grid(values=np.full((4, 2, 3), np.inf))).to_series(), DataError,
             "infinite value(s)"),
        Case("grid/strings", lambda: grid.GridSource(_grid(values=np.full((4, 2, 3), "x"))).to_series(), DataError,
             "must be numeric"),  # fixed
        Case("grid/window-range", lambda: grid.GridSource(_grid()).window(3, 5), DataError,
             "window [3, 8) outside the 4 time steps"),
        Case("grid/to-xarray-shape", lambda: grid.GridSource(_grid()).to_xarray(np.zeros((4, 5, 1))), DataError,
             "values must be [T, 6, 1]"),
        # --- protocols ---------------------------------------------------------------------------------
        Case("protocol/unknown", lambda: build_protocol("aqi37"), UnknownNameError,
             "unknown dataset 'aqi37'; valid dataset names are: aqi36"),
        Case("protocol/unknown-option", lambda: build_protocol("aqi36", options={"horizon": 3}), ConfigError,
             "unknown option(s) ['horizon'] for dataset 'aqi36'"),
        Case("protocol/missing-files", lambda: build_protocol("aqi36", "/nonexistent"), DatasetNotFoundError,
             "missing file(s) pm25_ground.txt"),
        # --- diffusion builders -----------------------------------------------------------------------
        Case("process/unknown", lambda: build_process("ddim"), UnknownNameError,
             "unknown process 'ddim'; valid process names are"),
        Case("process/steps-zero", lambda: build_process("ddpm", num_steps=0), ConfigError, "num_steps"),
        Case("process/beta-order", lambda: build_process("ddpm", beta_start=0.5, beta_end=0.1), ConfigError, "beta"),
        Case("process/beta-above-one", lambda: build_process("ddpm", beta_end=1.5), ConfigError, "beta"),
        Case("process/schedule", lambda: build_process("ddpm", schedule="sigmoid"), UnknownNameError,
             "unknown beta schedule 'sigmoid'"),
        Case("process/unknown-option", lambda: build_process("vp", beta=3), ConfigError,
             "unknown option(s) ['beta'] for process 'vp'"),
        Case("sampler/unknown", lambda: build_sampler("euler"), UnknownNameError,
             "unknown sampler 'euler'; valid sampler names are: ddim, ddpm"),
        Case("sampler/unknown-option", lambda: build_sampler("ddim", etta=0.1), ConfigError,
             "unknown option(s) ['etta'] for sampler 'ddim'"),
        Case("sampler/steps-zero", lambda: _sampler_run("ddim", steps=0), ConfigError, "steps"),
        Case("sampler/eta-negative", lambda: _sampler_run("ddim", eta=-1.0), ConfigError, "eta"),
        Case("conditioning/unknown", lambda: build_conditioning("repaint"), UnknownNameError,
             "unknown conditioning 'repaint'"),
        Case("loss/parametrization", lambda: build_loss("noise"), UnknownNameError, "noise"),
        Case("loss/gamma", lambda: build_loss(gamma=0), ConfigError, "loss gamma must be a positive number"),
        # --- models --------------------------------------------------------------------------------------
        Case("model/unknown", lambda: build_model({"name": "transformer"}, 3, 1), UnknownNameError,
             "unknown model 'transformer'; valid model names are: csdi"),
        Case("model/no-name", lambda: build_model({"layers": 2}, 3, 1), UnknownNameError, "unknown model None"),
        Case("model/csdi-heads", lambda: build_model({"name": "csdi", "channels": 10, "heads": 3}, 3, 1),
             ConfigError, "divisible by heads"),
        Case("model/csdi-layers-string", lambda: build_model({"name": "csdi", "layers": "4"}, 3, 1), ConfigError,
             "layers must be an integer >= 1"),
        Case("module/train-mask", lambda: make_module("csdi", 3, 1, 4).__class__(
            model={"name": "csdi"}, process={"name": "ddpm"}, optim={}, train_mask="blocks",
            signature={"num_nodes": 3, "num_channels": 1}, scaler=StandardScaler().fit(np.zeros((2, 3, 1))).state_dict()),
             UnknownNameError, "unknown training mask strategy 'blocks'"),
        # --- sampling -------------------------------------------------------------------------------------
        Case("sample/nan-input", _sample("csdi", "nan"), DataError, "x has 1 NaN/inf value(s)"),  # fixed
        Case("sample/inf-input", _sample("csdi", "inf"), DataError, "x has 1 NaN/inf value(s)"),  # fixed
        Case("sample/mask-shape", _sample("csdi", "mask_shape"), DataError,
             "cond_mask shape (2, 3, 4, 1) must equal x's shape (2, 4, 4, 1)"),  # fixed
        Case("sample/mask-dtype", _sample("csdi", "mask_dtype"), DataError, "cond_mask must be bool"),  # fixed
        Case("sample/zero-samples", _sample("csdi", "n_samples"), ConfigError,
             "n_samples must be an integer >= 1"),  # fixed
        Case("data-units/shape", lambda: __import__("tsdiff.data.scalers", fromlist=["x"]).to_data_units(
            torch.zeros(2, 1, 4, 3, 1), np.zeros((1, 4, 2, 1)), np.zeros((1, 4, 3, 1), dtype=bool),
            StandardScaler().fit(np.zeros((2, 3, 1)))), DataError, "raw shape (1, 4, 2, 1)"),  # fixed
        # --- metrics -------------------------------------------------------------------------------------
        Case("metrics/strings", _metric("quantile_crps", [["a"]], ["b"]), DataError,
             "samples must be a numeric numpy array or torch tensor"),
        Case("metrics/all-nan-target", _metric("mae", np.ones((2, 3)), np.full(3, np.nan)), DataError,
             "target has 3 NaN/inf values at entries where mask is True"),
        Case("metrics/empty", _metric("rmse", np.ones((2, 0)), np.ones(0)), DataError, "mask selects no target"),
        Case("metrics/quantiles", _metric("quantile_crps", np.ones((2, 3)), np.ones(3), quantiles=[0.0, 1.5]),
             ConfigError, "quantiles must be a non-empty 1-D sequence of levels in [0, 1], got [0.0, 1.5]"),
        Case("metrics/mask-values", _metric("ensemble_crps", np.ones((2, 3)), np.ones(3), np.array([0, 2, 1])),
             DataError, "mask must be bool, or numeric with only 0/1 values"),
        # --- model files ------------------------------------------------------------------------------------
        Case("checkpoint/directory", lambda: load_model(ROOT), TsdiffError, "is a directory, not a model file"),  # fixed
        Case("checkpoint/json", lambda: load_model(json_pt), TsdiffError, "is not a loadable tsdiff model file"),
        Case("checkpoint/text-file", lambda: load_model(_tmp("notes.pt", "hello")), TsdiffError,
             "is not a torch checkpoint, or is damaged, e.g. truncated (KeyError); pass a file written by"),  # fixed: 'KeyError: 101'
        Case("cli/impute-model-truncated", lambda: cli("impute", str(same_csv), "-o", str(same_csv.parent / "i.csv"),
                                                       "--model", str(_tmp("cut.pt", Path(_tiny_imputer_file())
                                                                                      .read_bytes()[:5000]))),
             CLIError, "the file is not a torch checkpoint, or is damaged, e.g. truncated"),  # fixed: 'OSError: [Errno 22]'
        Case("cli/impute-model-text-file", lambda: cli("impute", str(same_csv), "-o", str(same_csv.parent / "i.csv"),
                                                       "--model", str(_tmp("notes.pt", "hello"))), CLIError,
             "notes.pt is not a loadable tsdiff model file: the file is not a torch checkpoint"),
        Case("cli/impute-save-model-into-a-directory", lambda: cli("impute", str(same_csv), "-o",
                                                                   str(same_csv.parent / "i.csv"), "--save-model",
                                                                   str(csv_dir)), CLIError,
             "--save-model '" + str(csv_dir) + "' is a directory; give a file name inside it, e.g. '"
             + str(csv_dir / "model.pt") + "'"),  # fixed: suggested 'folder.csv/output.csv' for a model
        Case("checkpoint/empty", lambda: load_model(_tmp("empty.pt", b"")), TsdiffError,
             "is not a loadable tsdiff model file"),
    ]
    # every registered network: wrong node count, wrong rank, condition shapes
    for name in registered_models():
        rows += [
            Case(f"net/{name}/nodes", _net_call(name, "nodes"), DataError, "was built for [B, L, N, C]"),
            Case(f"net/{name}/rank", _net_call(name, "rank"), DataError, "was built for [B, L, N, C]"),
            Case(f"net/{name}/cond-shape", _net_call(name, "cond"), DataError, "condition values/mask shapes"),
            Case(f"sample/{name}/nan", _sample(name, "nan"), DataError, "NaN/inf value(s)"),
        ]
    if "graph_unet" in registered_models():
        rows += [
            Case("model/graph_unet/no-graph", _module_with("graph_unet", spatial="none"), DataError, "graph"),
            Case("model/graph_unet/graph-size", _module_with("graph_unet", spatial="graph3"), DataError, "3"),
        ]
    if "grid_unet" in registered_models():
        rows += [Case("model/grid_unet/graph-not-grid", _module_with("grid_unet", spatial="graph3"), DataError,
                      "grid")]
    if "timegrad" in registered_models():
        rows += [Case("model/timegrad/imputation", lambda: __import__("tsdiff.models", fromlist=["x"]).build_model(
            {"name": "timegrad"}, 3, 1).check_data({"task": "imputation", "protocol": "aqi36-csdi"}), ConfigError,
            "supports forecasting protocols")]
    # the Python API
    rows += [
        Case("api/imputer-strings", _api("imputer_strings"), DataError, "X holds values that are not numbers (e.g. 'a')"),
        Case("api/imputer-window", _api("imputer_window"), ConfigError, "window"),
        Case("api/imputer-columns", _api("imputer_columns"), DataError, "3 features"),
        Case("api/imputer-inf", _api("imputer_inf"), DataError, "inf"),
        Case("api/imputer-model", _api("imputer_model"), UnknownNameError, "unknown model 'nope'"),
        Case("api/imputer-empty", _api("imputer_empty"), DataError, "0 sample"),
        Case("api/forecaster-horizon", _api("forecaster_horizon"), ConfigError, "prediction_length"),
        Case("api/forecaster-strings", _api("forecaster_strings"), DataError, "not numeric"),
        Case("api/forecaster-short", _api("forecaster_short"), DataError, "10"),
        Case("api/forecaster-load", _api("forecaster_load_missing"), TsdiffError, "does not exist"),
        # hostile input (all fixed): settings, labels, storage kinds, precision
        *[Case(f"api/sample-n-{k}", _api(f"sample_n={k}"), ConfigError, "n_samples must be an integer >= 1")
          for k in ("neg", "float", "bool")],
        *[Case(f"api/predict-n-{k}", _api(f"predict_n={k}"), ConfigError, "n_samples must be an integer >= 1")
          for k in ("neg", "float", "bool")],
        *[Case(f"api/{who}-{k.replace('_', '-')}", _api(f"{who}_{k}"), ConfigError, frag)
          for who in ("imputer", "forecaster")
          for k, frag in (("lr_nan", "lr must be a positive finite number"), ("lr_negative", "lr must be a positive"),
                          ("lr_bool", "lr must be a positive"),
                          ("seed_negative", "random_state must be None, an integer seed in [0, 2**32 - 1]"),
                          ("seed_float", "random_state must be None"), ("cuda", "CUDA is not available"))
          if not (k == "cuda" and torch.cuda.is_available())],
        Case("api/forecaster-freq", _api("forecaster_freq"), ConfigError, "freq='bogus' is not a pandas frequency"),
        Case("api/to-series-freq", _api("to_series_freq"), ConfigError, "freq='bogus' is not a pandas frequency"),
        Case("api/imputer-transform-text", lambda: _loaded_imputer().transform(np.array([["1", "x"]] * 10)), DataError,
             "X holds values that are not numbers (e.g. 'x'); convert them with pd.to_numeric"),  # fixed: numpy's text
        Case("api/imputer-transform-complex", lambda: _loaded_imputer().transform(np.ones((10, 2), complex)),
             DataError, "X holds complex numbers; tsdiff needs real numbers"),  # fixed: the whole array in the message
        Case("api/imputer-panel-text", lambda: _loaded_imputer().transform([np.array([["1", "x"]] * 10)] * 2),
             DataError, "X[0] holds values that are not numbers"),
        Case("api/forecaster-freq-no-pandas-warning", _no_warnings(_api("forecaster_freq")), ConfigError,
             "freq='bogus' is not a pandas frequency; use an alias"),  # fixed: pandas' FutureWarning and text leaked
        Case("cli/forecast-freq-bogus", _no_warnings(lambda: cli("forecast", str(same_csv), "freq=bogus", "-o",
                                                                 str(same_csv.parent / "f.csv"))), CLIError,
             "freq='bogus' is not a pandas frequency"),
        Case("api/lr-diverges", _api("lr_diverges"), ConfigError, "training diverged"),
        Case("api/to-pandas-quantiles", _api("to_pandas_quantiles"), ConfigError, "must be levels in [0, 1]"),
        Case("api/forecaster-all-nan-series", _api("forecaster_all_nan_series"), DataError,
             "series 's1' has no observed value (all NaN)"),
        Case("api/imputer-duplicates", _api("imputer_duplicates"), DataError, "duplicate column 'a'"),
        Case("api/forecaster-duplicates", _api("forecaster_duplicates"), DataError, "duplicate column 'a'"),
        Case("api/imputer-mixed-labels", _api("imputer_mixed_labels"), DataError,
             "column labels of mixed types (int, string"),
        Case("api/forecaster-colliding-labels", _api("forecaster_colliding_labels"), DataError,
             "column labels that are equal as text"),
        Case("api/imputer-scipy-sparse", _api("imputer_scipy"), DataError, "X is a scipy sparse matrix (csr_matrix)"),
        Case("api/forecaster-scipy-sparse", _api("forecaster_scipy"), DataError, "is a scipy sparse matrix"),
        Case("api/imputer-int64-precision", _api("imputer_int64"), DataError,
             "exceed 2**53 and cannot be represented exactly in float64"),
        Case("api/forecaster-int64-precision", _api("forecaster_int64"), DataError, "exceed 2**53"),
        Case("api/forecaster-int64-frame-precision", _api("forecaster_int64_frame"), DataError, "exceed 2**53"),
        Case("api/imputer-nullable-int64-precision", _api("imputer_nullable_int64"), DataError, "exceed 2**53"),
        Case("api/imputer-float128-precision", _api("imputer_float128"), DataError,
             "not exactly representable in float64"),
    ]
    return rows


def _sampler_run(name: str, **options):
    from tsdiff.diffusion import build_process, build_sampler

    proc = build_process("ddpm", num_steps=10)
    fn = build_sampler(name, **options)
    x = torch.zeros(2, 3)
    return fn(lambda x_t, t: torch.zeros_like(x_t), x, proc, generator=torch.Generator().manual_seed(0))


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_a_clear_error(case, recwarn):
    with pytest.raises(case.error) as info:
        case.call()
    message = str(info.value)
    assert case.fragment in message, f"{case.id}: expected {case.fragment!r} in the message, got {message!r}"
    if case.error is not SystemExit:
        assert isinstance(info.value, (TsdiffError, CLIError)), type(info.value)
        assert len(message) > 15  # says what is wrong, not just a bare value


def test_matrix_counts():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    entry_points = {re.split(r"/", i)[0] for i in ids}
    assert {"config", "cli", "frames", "numpy", "graph", "grid", "protocol", "process", "sampler", "model",
            "sample", "metrics", "checkpoint", "net"} <= entry_points
    assert len(CASES) >= 100
