"""`tsdiff impute | forecast | predict | plot` on users' files: real AQI-36, exchange-rate and
ERA5 pieces; observed cells byte for byte; clear errors on bad input."""

import csv
import io

import numpy as np
import pandas as pd
import pytest

from tsdiff.cli import main

TINY = "model_options={layers: 1, channels: 8, heads: 2, ff_dim: 8, diffusion_embedding_dim: 16, " \
       "time_embedding_dim: 8, feature_embedding_dim: 4}"
FAST = ["max_steps=3", "n_samples=3", "sampling_steps=3", "window=12", TINY]


def _aqi_csv(data_dir, tmp_path, rows=96, cols=6):
    """The first rows of pm25_missing.txt, columns as published (observed text kept as is)."""
    lines = (data_dir / "aqi36" / "pm25_missing.txt").read_text().splitlines()[: rows + 1]
    cut = [",".join(line.split(",")[: cols + 1]) for line in lines]
    path = tmp_path / "aqi.csv"
    path.write_text("\n".join(cut) + "\n")
    return path


def _cells(path):
    return list(csv.reader(io.StringIO(path.read_text())))


def test_impute_csv_keeps_observed_cells_byte_for_byte(data_dir, tmp_path, capsys):
    src = _aqi_csv(data_dir, tmp_path)
    out = tmp_path / "filled.csv"
    png = tmp_path / "gaps.png"
    unc = tmp_path / "unc.csv"
    rc = main(["impute", str(src), *FAST, "-o", str(out), "--plot", str(png), "--uncertainty", str(unc),
               "--save-model", str(tmp_path / "imp.pt")])
    assert rc == 0, capsys.readouterr().err
    a, b = _cells(src), _cells(out)
    assert len(a) == len(b) == 97 and a[0] == b[0]  # header
    n_missing = 0
    for ra, rb in zip(a[1:], b[1:]):
        assert ra[0] == rb[0]  # index text
        for x, y in zip(ra[1:], rb[1:]):
            if x.strip() in ("", "NaN", "nan", "NA"):
                n_missing += 1
                assert np.isfinite(float(y))
            else:
                assert x == y  # observed cell: the same bytes
    assert n_missing > 20
    # re-read with pandas: same index and columns, no NaN, observed values identical
    df_in = pd.read_csv(src, index_col=0)
    df_out = pd.read_csv(out, index_col=0)
    assert df_out.index.equals(df_in.index) and list(df_out.columns) == list(df_in.columns)
    assert not df_out.isna().any().any()
    obs = df_in.notna().to_numpy()
    assert np.array_equal(df_out.to_numpy()[obs], df_in.to_numpy()[obs])
    u = pd.read_csv(unc)
    assert len(u) == n_missing and (u["q0.05"] <= u["q0.95"]).all() and (u["std"] >= 0).all()
    assert png.stat().st_size > 5000
    # the saved model imputes the same file again without training
    out2 = tmp_path / "again.csv"
    assert main(["impute", str(src), "-o", str(out2), "--model", str(tmp_path / "imp.pt")]) == 0
    assert out2.read_text() == out.read_text()


def test_impute_netcdf_grid_keeps_observed_values_coords_and_attrs(data_dir, tmp_path):
    import xarray as xr

    with xr.open_dataset(data_dir / "era5" / "era5_t2m_uk_2019-03.nc") as ds:
        piece = ds.isel(time=slice(0, 36), latitude=slice(0, 5), longitude=slice(0, 6)).load()
    rng = np.random.default_rng(0)
    hide = rng.random(piece["t2m"].shape) < 0.2
    piece["t2m"] = piece["t2m"].where(~hide)
    src, out = tmp_path / "grid.nc", tmp_path / "filled.nc"
    piece.to_netcdf(src)
    png = tmp_path / "map.png"
    assert main(["impute", str(src), *FAST, "-o", str(out), "--plot", str(png)]) == 0
    with xr.open_dataset(src) as a, xr.open_dataset(out) as b:
        assert a["t2m"].dtype == b["t2m"].dtype == np.float32
        va, vb = a["t2m"].values, b["t2m"].values
        assert np.isnan(va).sum() == hide.sum() and not np.isnan(vb).any()
        assert va[~hide].tobytes() == vb[~hide].tobytes()
        for c in ("time", "latitude", "longitude"):
            assert np.array_equal(a[c].values, b[c].values)
            assert a[c].attrs == b[c].attrs
        assert a["t2m"].attrs == b["t2m"].attrs and a.attrs == b.attrs
        filled = vb[hide]
        assert (filled > 230).all() and (filled < 320).all()  # Kelvin, not garbage
    assert png.stat().st_size > 5000


def test_forecast_csv_and_bad_inputs(data_dir, tmp_path, capsys, record_calls):
    from tsdiff.data.adapters.frames import to_wide_dataframe
    from tsdiff.data.datasets.lstnet import load_exchange_rate

    df = to_wide_dataframe(load_exchange_rate(data_dir)).iloc[-120:]
    df.columns = [f"cur{c}" for c in df.columns]
    src = tmp_path / "rates.csv"
    df.to_csv(src)
    out, png = tmp_path / "fc.csv", tmp_path / "fan.png"
    args = ["forecast", str(src), "max_steps=3", "n_samples=4", "sampler=ddim", "sampling_steps=3", TINY,
            "-o", str(out), "--prediction-length", "5", "--context-length", "10", "--plot", str(png)]
    assert main(args) == 0, capsys.readouterr().err
    res = pd.read_csv(out, index_col=0, parse_dates=True)
    assert len(res) == 5 and res.index[0] > df.index[-1]
    assert pd.infer_freq(res.index) == "B"
    assert {"cur0:mean", "cur0:0.05", "cur7:0.95"} <= set(res.columns)
    assert (res["cur3:0.05"] <= res["cur3:0.95"]).all()
    assert png.stat().st_size > 5000
    capsys.readouterr()
    # sampler options from the settings reach the sampler, also when --sampler names the same sampler
    from tsdiff.training.module import DiffusionModule

    calls = record_calls(DiffusionModule, "sample")
    assert main(["forecast", str(src), "max_steps=3", "n_samples=2", "sampler=ddpm", "sampler_options={spacing: log_snr}",
                 TINY, "-o", str(out), "--prediction-length", "5", "--context-length", "10", "--sampler", "ddpm",
                 "--steps", "4"]) == 0, capsys.readouterr().err
    assert calls and calls[-1]["sampler_options"] == {"spacing": "log_snr"} and calls[-1]["steps"] == 4
    # bad input: unknown output extension, strings in numeric columns, empty table, unknown settings
    assert main(["forecast", str(src), "-o", str(tmp_path / "fc.xlsx")]) == 2
    assert "unknown output file extension '.xlsx'" in capsys.readouterr().err
    assert main(["impute", str(src), "-o", str(tmp_path / "x.nc")]) == 2
    assert "write the same kind" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("date,a,b\n2020-01-01,1.0,2.0\n2020-01-02,oops,3.0\n2020-01-03,2.0,\n")
    assert main(["impute", str(bad), "-o", str(tmp_path / "o.csv")]) == 2
    assert "column 'a' is not numeric (e.g. 'oops'" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("date,a,b\n")
    assert main(["impute", str(empty), "-o", str(tmp_path / "o.csv")]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["impute", str(src), "maxsteps=3", "-o", str(tmp_path / "o.csv")]) == 2
    assert "unknown Imputer setting(s) ['maxsteps']" in capsys.readouterr().err
    assert main(["impute", str(src), "max_time=soon", "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "max_time is a time budget" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_plot_records_and_help(tmp_path, capsys):
    import json

    for sampler, pts in {"ddim": [(5, 0.3), (10, 0.25), (50, 0.2)], "heun": [(9, 0.28), (19, 0.22)]}.items():
        for nfe, crps in pts:
            rec = {"model": "csdi", "sampler": sampler, "nfe": nfe, "task": "aqi36_imputation",
                   "metrics": {"crps": crps}}
            (tmp_path / f"{sampler}_{nfe}.json").write_text(json.dumps(rec))
    png = tmp_path / "nfe.png"
    assert main(["plot", "nfe", str(tmp_path), "-o", str(png)]) == 0
    assert png.stat().st_size > 5000
    assert main(["plot", "leaderboard", str(tmp_path), "-o", str(tmp_path / "lb.png")]) == 0
    assert main(["plot", "nfe", str(tmp_path), "-o", str(tmp_path / "lb.jpg")]) == 2
    for cmd in ("impute", "forecast", "predict", "plot"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "example: tsdiff" in capsys.readouterr().out
