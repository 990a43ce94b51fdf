"""Every example under examples/ runs on the real data with tiny settings, and the README's
Python snippets run as written (on real data, with tiny settings substituted)."""

import re
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_example(name, tmp_path, data_dir, *extra):
    mod = runpy.run_path(str(ROOT / "examples" / f"{name}.py"), run_name="example")
    return mod["main"](["--fast", "--out", str(tmp_path), "--data-dir", str(data_dir), *extra])


def test_forecast_dataframe_example(tmp_path, data_dir):
    res = run_example("forecast_dataframe", tmp_path, data_dir)
    table = pd.read_csv(tmp_path / "exchange_rate_forecast.csv", header=[0, 1], index_col=0, parse_dates=True)
    assert table.shape == (30, 8 * 4) and np.isfinite(table.to_numpy()).all()
    assert str(table.index[0].date()) == "2019-01-04" or table.index[0] > pd.Timestamp("2018-01-01")
    assert 0 < res["crps"] < 10 and res["naive_mae"] > 0
    assert (tmp_path / "exchange_rate_fan.png").stat().st_size > 5000


def test_forecast_covariates_example(tmp_path, data_dir):
    res = run_example("forecast_covariates", tmp_path, data_dir)
    assert res["forecast"].samples.shape == (4, 24, 1)
    spec = res["loaded"].covariate_spec_
    assert spec.past == ["HUFL", "HULL", "MUFL", "MULL", "LUFL"] and spec.future == ["LULL"] and spec.calendar
    table = pd.read_csv(tmp_path / "etth1_ot_covariates_forecast.csv", header=[0, 1], index_col=0)
    assert len(table) == 24 and np.isfinite(table.to_numpy()).all()
    assert res["crps_covariates"] > 0 and res["crps_plain"] > 0


def test_impute_csv_pipeline_example(tmp_path, data_dir):
    res = run_example("impute_csv_pipeline", tmp_path, data_dir)
    filled, src = res["filled"], res["input"]
    assert filled.index.equals(src.index) and list(filled.columns) == list(src.columns)
    obs = src.notna().to_numpy()
    assert not filled.isna().any().any()
    assert np.array_equal(filled.to_numpy()[obs], src.to_numpy()[obs])
    assert res["draws"].shape[1:] == src.shape
    assert np.isfinite(res["r2"]) and res["mae_station_mean"] > 0
    assert (tmp_path / "aqi36_imputation.png").stat().st_size > 5000


def test_forecast_traffic_graph_example(tmp_path, data_dir):
    import xarray as xr

    res = run_example("forecast_traffic_graph", tmp_path, data_dir)
    assert res["forecast"].samples.shape == (4, 12, 20)
    with xr.open_dataarray(tmp_path / "metr_la_forecast.nc") as da:
        assert da.dims == ("sample", "time", "series") and da.shape == (4, 12, 20)
        assert str(da.time.values[0])[:16] == "2012-03-07T00:00"
    assert (tmp_path / "metr_la_fan.png").stat().st_size > 5000


def test_impute_netcdf_example(tmp_path, data_dir):
    res = run_example("impute_netcdf", tmp_path, data_dir)
    assert res["observed_identical"] and res["attrs_kept"]
    assert res["n_hidden"] > 200 and np.isfinite(res["filled"]).all()
    assert (tmp_path / "era5_maps.png").stat().st_size > 5000


def test_impute_panel_example(tmp_path, data_dir):
    res = run_example("impute_panel", tmp_path, data_dir)
    assert res["n_hidden"] > 500 and res["observed_identical"]
    assert np.isfinite(res["mae_z"]) and res["mae_z"] > 0  # --fast: a 4-step model, no accuracy to check
    assert 0.2 < res["linear_mae_z"] < 1.0


def readme_snippets():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_snippets_for_each_user_group():
    snippets = readme_snippets()
    joined = "\n".join(snippets)
    assert len(snippets) >= 3
    assert "tsdiff.Forecaster" in joined and "tsdiff.Imputer" in joined and "make_pipeline" in joined


#: Tiny settings substituted into the README snippets so they run in seconds.
TINY_SUBSTITUTIONS = [
    (r"Imputer\(window=24, max_steps=\d+\)", "Imputer(window=12, max_steps=3, n_samples=2, sampling_steps=2)"),
    (r"max_steps=\d+", "max_steps=3"), (r"n_samples=\d+", "n_samples=3"), (r"\.iloc\[:720\]", ".iloc[:720:6]"),
    (r'"trainer.max_epochs=1"', '"trainer.max_epochs=1", "trainer.max_steps=2", "trainer.limit_val_batches=1", '
     '"trainer.enable_progress_bar=false", "model.layers=1", "model.channels=8", "model.heads=2", '
     '"eval.limit_windows=1"'),
    (r'"eval.n_samples=16"', '"eval.n_samples=2"'), (r'"eval.steps=10"', '"eval.steps=2"'),
    (r'"configs/', '"' + str(ROOT / "configs") + '/'),
]
TINY_NET = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
                feature_embedding_dim=4)


def _run_snippet(code: str, name: str, data_dir, tmp_path, monkeypatch) -> dict:
    """Run a README snippet with the tiny settings substituted, in ``tmp_path``; its namespace."""
    import tsdiff.api

    for pattern, new in TINY_SUBSTITUTIONS:
        code = re.sub(pattern, new, code)
    monkeypatch.setitem(tsdiff.api.SMALL_MODEL_OPTIONS, "csdi", TINY_NET)
    monkeypatch.setenv("TSDIFF_DATA", str(data_dir))
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, name, "exec"), ns)
    return ns


@pytest.mark.parametrize("i", range(4))
def test_readme_python_snippets_run(i, data_dir, tmp_path, monkeypatch):
    """Each snippet runs as written, with TSDIFF_DATA set, in an empty folder, with tiny
    step counts and network substituted; its results are checked."""
    ns = _run_snippet(readme_snippets()[i], f"README snippet {i}", data_dir, tmp_path, monkeypatch)
    if i == 0:
        assert ns["forecast"].samples.shape == (3, 30, 8) and np.isfinite(ns["forecast"].samples).all()
        assert ns["lower"].shape == (30, 8) and (tmp_path / "fan.png").stat().st_size > 5000
        assert (tmp_path / "rates.pt").is_file()
    elif i == 1:
        X, filled = ns["X"], ns["filled"]
        assert filled.index.equals(X.index) and not filled.isna().any().any()
        obs = X.notna().to_numpy()
        assert np.array_equal(filled.to_numpy()[obs], X.to_numpy()[obs])
        assert ns["draws"].shape == (3, 120, 35)
        assert np.isfinite(ns["model"].predict(X)).all()
    elif i == 2:  # an xarray grid in, the same type out
        ds, filled = ns["ds"], ns["filled"]
        assert type(filled) is type(ds) and filled["t2m"].dims == ds["t2m"].dims
        assert ds["t2m"].isnull().any() and not filled["t2m"].isnull().any()
        obs = ds["t2m"].notnull().values
        assert np.array_equal(filled["t2m"].values[obs], ds["t2m"].values[obs])
    else:
        assert {"crps", "mae", "rmse"} <= set(ns["record"]["metrics"])
        assert ns["path"].is_file()
        # `tsdiff predict` on the run the snippet trained: every imputed entry of one test window
        from tsdiff.cli import main

        assert main(["predict", "runs/quick", "eval.n_samples=2", "eval.limit_windows=1", "eval.sampler=ddim",
                     "eval.steps=2", "-o", "preds.csv", "--plot", "window.png"]) == 0
        preds = pd.read_csv(tmp_path / "preds.csv")
        assert 0 < len(preds) < 36 * 36  # entries not conditioned on: missing or held out
        assert preds["observed"].notna().sum() > 0  # held-out entries carry their true value
        assert {"time", "node", "mean", "q0.05", "q0.95"} <= set(preds.columns) and preds["mean"].notna().all()
        assert (tmp_path / "window.png").stat().st_size > 5000
        # the eval section's sampler options reach the sampler; model and process stay fixed
        assert main(["predict", "runs/quick", "eval.limit_windows=1", "eval.sampler=ddim",
                     "eval.sampler_options={bogus: 1}", "-o", "p2.csv"]) == 2
        assert main(["predict", "runs/quick", "model.channels=4", "-o", "p2.csv"]) == 2
        assert not (tmp_path / "p2.csv").exists()


def test_readme_panel_snippet_runs(data_dir, tmp_path, monkeypatch):
    """The README's panel snippet (a ragged long frame, mode="auto" -> global) runs with tiny settings."""
    (code,) = [s for s in readme_snippets() if 'item_col="unique_id"' in s]
    ns = _run_snippet(code, "README panel snippet", data_dir, tmp_path, monkeypatch)
    panel, dates = ns["panel"], ns["dates"]
    assert ns["forecaster"].mode_ == "global" and panel.items == [f"fx{c}" for c in range(8)]
    assert ns["forecaster"].covariate_spec_.static["categorical"] == {"region": ["asia", "europe"]}
    for c in range(8):
        assert panel[f"fx{c}"].index[0] == dates[300 - 10 * c - 1] + dates.freq
        assert panel[f"fx{c}"].samples.shape == (3, 30, 1)
    assert list(panel.to_pandas().columns) == ["item_id", "ds", "mean", "0.1", "0.5", "0.9"]
