"""Loaders on the real files in TSDIFF_DATA: shapes, dtypes, dates, missing rates, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdiff.data.datasets.base import DatasetSpec, DataFile, locate_files
from tsdiff.errors import DatasetNotFoundError


@pytest.mark.filterwarnings(r"ignore:.*BDay|.*PeriodDtype\[B\]:FutureWarning")
def test_exchange_rate_file_and_nips_split(data_dir):
    from tsdiff.data.datasets.lstnet import exchange_rate_nips_split, load_exchange_rate

    s = load_exchange_rate(data_dir)
    assert s.shape == (7588, 8, 1) and s.values.dtype == np.float64
    assert s.time_index[0] == pd.Timestamp("1990-01-01") and s.time_index[-1] == pd.Timestamp("2019-01-30")
    assert (s.time_index.dayofweek < 5).all() and s.missing_rate() == 0.0
    assert s.values[0, 0, 0] == pytest.approx(0.7855) and s.values[0, 7, 0] == pytest.approx(0.525486)
    split = exchange_rate_nips_split(s)
    assert split.train.shape == (6071, 8, 1) and split.prediction_length == 30
    assert split.test_cutoffs.tolist() == [6071, 6101, 6131, 6161, 6191]
    # Cross-check with GluonTS's own recipe: period index, ts[:training_end] (inclusive).
    periods = pd.period_range("1990-01-01", freq="B", periods=7588)
    training_end = periods[int(len(periods) * 0.8)]
    ts = pd.Series(s.values[:, 3, 0], index=periods)
    np.testing.assert_array_equal(ts[:training_end].to_numpy(), split.train.values[:, 3, 0])
    for k, (ctx, tgt) in enumerate(split.test_windows()):
        end = training_end + (k + 1) * 30
        gl = ts[:end].to_numpy()
        assert ctx.shape[0] + 30 == len(gl)
        np.testing.assert_array_equal(gl[-30:], tgt.values[:, 3, 0])
    ctx, _ = split.test_windows(context_length=60)[4]
    assert ctx.shape == (60, 8, 1) and ctx.time_index[-1] < split.series.time_index[6191]


def test_lstnet_generic_loader_on_written_files(tmp_path, data_dir):
    import gzip

    from tsdiff.data.datasets.lstnet import read_lstnet_text

    rng = np.random.default_rng(0)
    arr = rng.random((50, 4))
    path = tmp_path / "electricity.txt.gz"
    with gzip.open(path, "wt") as fh:
        np.savetxt(fh, arr, delimiter=",", fmt="%.6f")
    s = read_lstnet_text(path, "electricity")
    assert s.shape == (50, 4, 1) and s.time_index[1] - s.time_index[0] == pd.Timedelta("1h")
    np.testing.assert_allclose(s.values[:, :, 0], arr, atol=1e-6)
    plain = tmp_path / "solar.txt"
    np.savetxt(plain, arr, delimiter=",")
    s = read_lstnet_text(plain, "solar")
    assert s.time_index[0] == pd.Timestamp("2006-01-01") and s.time_index.freqstr == "10min"
    from tsdiff.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="no timestamps"):
        read_lstnet_text(plain)
    with pytest.raises(DataError, match="expected 7588 rows"):
        read_lstnet_text(plain, "exchange_rate", expected_shape=(7588, 8))


def test_etth1(data_dir):
    from tsdiff.data.datasets.ett import etth1_split, load_etth1

    s = load_etth1(data_dir)
    assert s.shape == (17420, 1, 7) and s.channel_names[-1] == "OT"
    assert s.time_index[0] == pd.Timestamp("2016-07-01") and s.time_index[-1] == pd.Timestamp("2018-06-26 19:00")
    assert pd.infer_freq(s.time_index) == "h" and s.missing_rate() == 0.0
    assert s.values[0, 0, 6] == pytest.approx(30.531)
    split = etth1_split(s)
    assert (split.train_end, split.val_end) == (8640, 11520)
    assert len(split.test_cutoffs) == 2857 and split.test_cutoffs[-1] + 24 == 14400
    assert split.series.time_index[8640] == pd.Timestamp("2017-06-26")


def test_metr_la_week_and_graph(data_dir):
    from tsdiff.data.spatial import GraphSpatial

    from tsdiff.data.datasets.metr_la import load_metr_la

    s = load_metr_la(data_dir)
    assert s.shape == (2016, 207, 1) and s.node_names[:2] == ["773869", "767541"]
    assert s.missing_rate() == 0.0 and 58 < np.nanmean(s.values) < 60  # publisher filled zeros
    g = s.spatial
    assert isinstance(g, GraphSpatial) and g.num_nodes == 207 and g.num_edges == 1722
    adj = g.to_dense()
    assert np.allclose(np.diag(adj), 1.0) and adj.dtype == np.float32 and adj.max() <= 1.0
    assert len(s.attrs["latitude"]) == 207 and s.time_index[-1] == pd.Timestamp("2012-03-07 23:55")


def test_pems_graphs(data_dir):
    from tsdiff.data.adapters.graph import from_dcrnn_pickle
    from tsdiff.data.datasets.pems import load_pems_bay_graph, load_pems_graph

    g4, g8 = load_pems_graph("pems04", data_dir), load_pems_graph("pems08", data_dir)
    assert (g4.num_nodes, g4.num_edges) == (307, 209) and (g8.num_nodes, g8.num_edges) == (170, 137)
    # The kernel by hand for one PEMS04 edge: 73 -> 5 at 352.6 with sigma = std of all 340 costs.
    costs = pd.read_csv(data_dir / "pems" / "PEMS04_distance.csv")["cost"].to_numpy()
    assert g4.to_dense()[73, 5] == pytest.approx(np.exp(-(352.6 / costs.std()) ** 2), rel=1e-6)
    assert float(g4.edge_weight.min()) >= 0.1
    bay = load_pems_bay_graph(data_dir)
    official = from_dcrnn_pickle(data_dir / "pems_bay" / "adj_mx_bay.pkl")
    assert bay.num_nodes == 325 and bay.num_edges == official.num_edges == 2694
    np.testing.assert_allclose(bay.to_dense(), official.to_dense(), atol=1e-6)


def test_physionet2012(data_dir):
    from tsdiff.data.datasets.physionet import load_physionet2012

    d = load_physionet2012(data_dir)
    assert d.values.shape == (4000, 48, 35) and len(d.variables) == 35
    assert "MechVent" not in d.variables and "Weight" not in d.variables
    assert d.missing_rate() == pytest.approx(0.8053, abs=1e-4)
    assert d.record_ids[0] == 132539 and len(d.outcomes) == 4000
    hr = d.variables.index("HR")
    assert d.values[0, 0, hr] == 77  # 00:07 HR 73, 00:37 HR 77 -> last value of hour 0
    split = d.split(seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [2800, 400, 800]
    assert len(np.unique(np.concatenate(list(split.values())))) == 4000
    assert all(np.array_equal(split[k], d.split(seed=0)[k]) for k in split)
    assert not np.array_equal(split["test"], d.split(seed=1)["test"])
    stay = d.stay(0)
    assert stay.shape == (48, 35, 1) and stay.attrs["record_id"] == 132539


def test_era5_lazy_and_round_trip(data_dir):
    import dask.array as da
    import xarray as xr

    from tsdiff.data.datasets.era5 import open_era5

    g = open_era5(data_dir)
    assert isinstance(g.fields[0].data, da.Array)  # nothing read yet
    assert g.shape == (744, 33 * 49, 1) and g.spatial.shape == (33, 49)
    assert (g.time_dim, g.lat_dim, g.lon_dim) == ("time", "latitude", "longitude")
    w = g.window(100, 24)
    assert w.shape == (24, 1617, 1) and 265 < w.min() and w.max() < 292
    s = g.to_series()
    assert s.missing_rate() == 0.0 and s.time_index[-1] == pd.Timestamp("2019-03-31 23:00")
    np.testing.assert_array_equal(s.values[100:124], w)
    with xr.open_dataset(data_dir / "era5" / "era5_t2m_uk_2019-03.nc") as ds:
        xr.testing.assert_identical(g.to_xarray(s.values), ds.load())
        part = g.to_xarray(w, start=100)
        xr.testing.assert_identical(part, ds.isel(time=slice(100, 124)).load())


def test_missing_file_error_names_source(tmp_path):
    from tsdiff.data.datasets.lstnet import SPEC, load_exchange_rate

    with pytest.raises(DatasetNotFoundError, match="laiguokun"):
        load_exchange_rate(tmp_path)
    assert isinstance(SPEC, DatasetSpec) and isinstance(SPEC.files[0], DataFile)
    with pytest.raises(DatasetNotFoundError, match="TSDIFF_DATA"):
        locate_files(SPEC, tmp_path)


def test_specs_match_sha256sums(data_dir):
    from tsdiff.data.datasets import era5, ett, lstnet, metr_la, pems, physionet

    sums = dict(line.split()[::-1] for line in (data_dir / "SHA256SUMS").read_text().splitlines() if line.strip())
    specs = [era5.SPEC, ett.SPEC, lstnet.SPEC, metr_la.SPEC, physionet.SPEC, pems.PEMS_BAY_SPEC, *pems.PEMS_SPECS.values()]
    for spec in specs:
        for f in spec.files:
            assert sums[f"{spec.folder}/{f.name}"] == f.sha256, (spec.name, f.name)
