"""Formats with no mirrored file (DCRNN .h5, ASTGCN .npz, large LSTNet text files), tested on
files written in the same format from the real pieces in TSDIFF_DATA."""

from __future__ import annotations

import gzip
import os
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

from tsdiff.data import build_protocol
from tsdiff.errors import DataError

WEEK = "2012-03-01 00:00"


def write_pandas_fixed_h5(path, frame: pd.DataFrame, key: str = "df") -> None:
    """Write ``frame`` the way ``DataFrame.to_hdf(path, key, format="fixed")`` lays it out.

    pandas (``pytables.py``: ``BlockManagerFixed.write``, ``write_index``, ``write_array``)
    stores the column labels in ``axis0``, the DatetimeIndex as int64 ns in ``axis1``
    (``kind = "datetime64"``), and one ``block{i}_values`` per dtype block, transposed to
    ``[rows, block columns]``, with its labels in ``block{i}_items``. Blocks are grouped
    by dtype as pandas groups them.
    """

    def labels(values):
        if all(isinstance(v, str) for v in values):
            return np.array([v.encode() for v in values]), b"string"
        return np.asarray(values, dtype=np.int64), b"integer"

    with h5py.File(path, "w") as f:
        g = f.create_group(key)
        for name, value in dict(pandas_type=b"frame", pandas_version=b"0.15.2", encoding=b"UTF-8",
                                errors=b"strict", ndim=2, axis0_variety=b"regular",
                                axis1_variety=b"regular").items():
            g.attrs[name] = value
        cols, kind = labels(list(frame.columns))
        g.create_dataset("axis0", data=cols).attrs["kind"] = kind
        ax1 = g.create_dataset("axis1", data=frame.index.asi8)
        ax1.attrs["kind"], ax1.attrs["index_class"] = b"datetime64", b"datetime"
        blocks = {}
        for c in frame.columns:
            blocks.setdefault(frame[c].dtype.str, []).append(c)
        g.attrs["nblocks"] = len(blocks)
        for i, members in enumerate(blocks.values()):
            v = g.create_dataset(f"block{i}_values", data=frame[members].to_numpy())  # [rows, block columns]
            v.attrs["transposed"] = True
            items, kind = labels(members)
            g.create_dataset(f"block{i}_items", data=items).attrs["kind"] = kind
            g.attrs[f"block{i}_items_variety"] = b"regular"


@pytest.fixture(scope="module")
def week(data_dir):
    speed = pd.read_csv(data_dir / "metr_la" / "los_speed.csv")
    speed.index = pd.date_range(WEEK, periods=len(speed), freq="5min")
    return speed


def test_pandas_fixed_reader_round_trip(tmp_path, week):
    from tsdiff.data.datasets.hdf5 import list_frames, read_pandas_hdf5

    frame = week.iloc[:50, :5].copy()
    frame["717447"] = (frame["717447"] * 8).round().astype(np.int64)  # second (integer) block
    path = tmp_path / "x.h5"
    write_pandas_fixed_h5(path, frame)
    assert list_frames(path) == ["df"]
    back = read_pandas_hdf5(path)
    pd.testing.assert_frame_equal(back, frame.astype(np.float64), check_freq=False)


def test_metr_la_h5_from_real_week(tmp_path, data_dir, week):
    from tsdiff.data.datasets.metr_la import load_metr_la
    from tsdiff.data.datasets.traffic import load_metr_la_full

    frame = week.copy()
    frame.iloc[10, 3] = frame.iloc[11:14, 5] = 0.0  # DCRNN's missing readings are zeros
    frame = frame[list(frame.columns[::-1])]  # columns in another order than the graph
    (tmp_path / "metr_la").mkdir()
    write_pandas_fixed_h5(tmp_path / "metr_la" / "metr-la.h5", frame)
    shutil.copy(data_dir / "metr_la" / "adj_mx.pkl", tmp_path / "metr_la" / "adj_mx.pkl")
    s = load_metr_la_full(tmp_path)
    ref = load_metr_la(data_dir)
    assert s.shape == (2016, 207, 1) and s.values.dtype == np.float64
    assert s.node_names == ref.node_names and s.time_index.equals(ref.time_index)
    assert s.attrs["zeros"] == 4 and s.attrs["inserted_steps"] == 0
    assert np.isnan(s.values[10, 3, 0]) and np.isnan(s.values[11:14, 5, 0]).all()
    assert s.missing_rate() == pytest.approx(4 / (2016 * 207))
    keep = ~np.isnan(s.values)
    np.testing.assert_array_equal(s.values[keep], ref.values[keep])  # every observed value, exactly
    np.testing.assert_array_equal(s.spatial.to_dense(), ref.spatial.to_dense())
    assert load_metr_la_full(tmp_path, zeros_as_missing=False).values[10, 3, 0] == 0.0

    p = build_protocol("metr_la_full", tmp_path)
    n = 2016 - 23  # DCRNN: windows of 12 + 12 steps at every position
    assert {k: len(v) for k, v in p.splits.items()} == {"train": round(0.7 * n), "val": n - round(0.7 * n) - round(0.2 * n),
                                                       "test": round(0.2 * n)}
    assert p.splits["test"].starts[-1] == 2016 - 24 and p.id == "metr_la-dcrnn-c12-h12-s1"
    assert p.splits["val"].starts[0] == p.splits["train"].starts[-1] + 1
    item = p.dataset("test")[0]
    assert not item["score_mask"][:12].any() and item["cond_mask"][:12].sum() == item["observed_mask"][:12].sum()


def test_pems_bay_h5_integer_ids_and_missing_hour(tmp_path, data_dir, week):
    from tsdiff.data.safe_io import safe_load_pickle
    from tsdiff.data.datasets.traffic import load_pems_bay

    ids = [int(i) for i in safe_load_pickle(data_dir / "pems_bay" / "adj_mx_bay.pkl")[0]]
    values = np.resize(week.to_numpy(), (2016, 325))  # real speeds, spread over 325 sensors
    frame = pd.DataFrame(values, index=week.index, columns=ids)
    dropped = frame.index[300:312]  # one hour absent from the file, like the daylight-saving switch
    (tmp_path / "pems_bay").mkdir()
    write_pandas_fixed_h5(tmp_path / "pems_bay" / "pems-bay.h5", frame.drop(index=dropped))
    shutil.copy(data_dir / "pems_bay" / "adj_mx_bay.pkl", tmp_path / "pems_bay" / "adj_mx_bay.pkl")
    s = load_pems_bay(tmp_path)
    assert s.shape == (2016, 325, 1) and s.attrs["inserted_steps"] == 12
    assert s.node_names[:2] == [str(i) for i in ids[:2]] and s.spatial.num_edges == 2694
    assert np.isnan(s.values[300:312]).all() and not np.isnan(s.values[:300]).any()
    np.testing.assert_array_equal(s.values[312:, :, 0], values[312:])
    assert pd.infer_freq(s.time_index) == "5min"


def test_bad_h5_files(tmp_path, data_dir, week):
    from tsdiff.data.datasets.hdf5 import read_pandas_hdf5
    from tsdiff.data.datasets.traffic import read_dcrnn_h5

    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        read_pandas_hdf5(junk)
    table = tmp_path / "table.h5"
    with h5py.File(table, "w") as f:
        f.create_group("df").attrs["pandas_type"] = b"frame_table"
    with pytest.raises(DataError, match="format='fixed'"):
        read_pandas_hdf5(table)
    few = tmp_path / "few.h5"
    write_pandas_fixed_h5(few, week.iloc[:30, :20])
    with pytest.raises(DataError, match="has 20 sensors.*has 207.*same sensors"):
        read_dcrnn_h5(few, data_dir / "metr_la" / "adj_mx.pkl")
    dup = week.iloc[:30].copy()
    dup.index = dup.index[[0] * 2 + list(range(1, 29))]
    write_pandas_fixed_h5(few, dup)
    with pytest.raises(DataError, match="duplicate timestamp"):
        read_dcrnn_h5(few, data_dir / "metr_la" / "adj_mx.pkl")
    off = week.iloc[:30].copy()
    off.index = off.index + pd.to_timedelta(np.r_[np.zeros(29), 60], unit="s")
    write_pandas_fixed_h5(few, off)
    with pytest.raises(DataError, match="not on the 5min grid"):
        read_dcrnn_h5(few, data_dir / "metr_la" / "adj_mx.pkl")


@pytest.fixture(scope="module")
def pems04_dir(tmp_path_factory, data_dir, week):
    """pems04.npz written as ASTGCN ships it ([T, 307, 3] under 'data'), values from the real METR-LA week."""
    root = tmp_path_factory.mktemp("pemsdata")
    (root / "pems").mkdir()
    speeds = np.resize(week.to_numpy(), (2016, 307))
    data = np.stack([np.round(speeds * 3), speeds / 100, speeds], axis=-1)  # flow, occupancy, speed
    np.savez(root / "pems" / "pems04.npz", data=data)
    shutil.copy(data_dir / "pems" / "PEMS04_distance.csv", root / "pems" / "PEMS04_distance.csv")
    return root, data


def test_pems04_npz(pems04_dir, data_dir):
    from tsdiff.data.datasets.pems import load_pems_graph
    from tsdiff.data.datasets.traffic import load_pems_flows

    root, data = pems04_dir
    s = load_pems_flows("pems04", root)
    assert s.shape == (2016, 307, 1) and s.channel_names == ["flow"]
    np.testing.assert_array_equal(s.values[:, :, 0], data[:, :, 0])
    assert s.time_index[0] == pd.Timestamp("2018-01-01") and s.time_index.freqstr == "5min"
    np.testing.assert_array_equal(s.spatial.to_dense(), load_pems_graph("pems04", data_dir).to_dense())
    full = load_pems_flows("pems04", root, channels=("flow", "occupancy", "speed"))
    np.testing.assert_array_equal(full.values, data)
    p = build_protocol("pems04", root, {"test_stride": 12})
    n = 2016 - 23
    assert len(p.splits["train"]) == int(0.6 * n) and p.splits["val"].starts[0] == int(0.6 * n)
    assert p.splits["test"].starts[0] == int(0.8 * n) and (np.diff(p.splits["test"].starts) == 12).all()


def test_bad_npz(tmp_path, data_dir):
    from tsdiff.data.datasets.traffic import read_pems_npz

    dist = data_dir / "pems" / "PEMS08_distance.csv"
    obj = tmp_path / "obj.npz"
    np.savez(obj, data=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="without unpickling"):
        read_pems_npz(obj, dist, 170, "2016-07-01")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((5, 170, 3)))
    with pytest.raises(DataError, match="expected an array named 'data'"):
        read_pems_npz(wrong, dist, 170, "2016-07-01")
    np.savez(wrong, data=np.zeros((5, 169, 3)))
    with pytest.raises(DataError, match="N=169 nodes but the road graph has 170"):
        read_pems_npz(wrong, dist, 170, "2016-07-01")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"nope")
    with pytest.raises(DataError, match="not a readable .npz"):
        read_pems_npz(junk, dist, 170, "2016-07-01")


def _write_lstnet(path, values):
    with gzip.open(path, "wt", compresslevel=1) as fh:
        pd.DataFrame(values).to_csv(fh, header=False, index=False, float_format="%.6g")


def test_lstnet_large_small_files_match_gluonts_recipe(tmp_path, data_dir):
    """Electricity / solar in the LSTNet format, cut from the real exchange-rate file: the
    hourly sums and the split agree with GluonTS's own LSTNet recipe."""
    from gluonts.dataset.repository._lstnet import load_from_pandas

    from tsdiff.data.datasets.lstnet import aggregate, load_lstnet, lstnet_rolling_split, read_lstnet_text

    real = pd.read_csv(data_dir / "exchange_rate" / "exchange_rate.txt.gz", header=None).to_numpy()
    solar = real[:600, :5]
    path = tmp_path / "solar_AL.txt.gz"
    _write_lstnet(path, solar)
    s = aggregate(read_lstnet_text(path, "solar"), "1h")
    assert s.shape == (100, 5, 1) and s.time_index[1] == pd.Timestamp("2006-01-01 01:00")
    idx = pd.period_range("2006-01-01", freq="10min", periods=600)
    ref = load_from_pandas(pd.read_csv(path, header=None), idx, "1h")
    for n in range(5):
        np.testing.assert_allclose(s.values[:, n, 0], ref[n].to_numpy(), rtol=1e-12)
    split = lstnet_rolling_split(s, 5, 3)
    training_end = ref[0].index[int(len(ref[0]) * 0.8)]  # GluonTS: last training period
    assert split.train_end == len(ref[0][:training_end]) == 81
    for k, (_, target) in enumerate(split.test_windows()):
        gl = ref[2][: training_end + (k + 1) * 5].to_numpy()
        np.testing.assert_allclose(target.values[:, 2, 0], gl[-5:])
    with pytest.raises(DataError, match="need 101 steps, the series has 100"):
        lstnet_rolling_split(s, 5, 4)
    (tmp_path / "electricity").mkdir()
    _write_lstnet(tmp_path / "electricity" / "electricity.txt.gz", real[:200, :8])
    with pytest.raises(DataError, match="expected 26304 rows x 321 series, got \\(200, 8\\)"):
        load_lstnet("electricity", tmp_path)
    e = load_lstnet("electricity", tmp_path, check_shape=False)
    assert e.shape == (200, 8, 1) and e.time_index[0] == pd.Timestamp("2012-01-01") and e.attrs["freq"] == "h"
    np.testing.assert_allclose(e.values[:, :, 0], real[:200, :8], rtol=1e-5)
    assert len(e.attrs["checksums"]["electricity.txt.gz"]) == 64


@pytest.mark.integration
@pytest.mark.parametrize("name, shape, train_end, first_hour", [
    ("electricity", (26304, 321), 21044, "2012-01-01"),
    ("traffic", (17544, 862), 14036, "2015-01-01"),
    ("solar", (52560, 137), 7009, "2006-01-01"),
])
def test_lstnet_large_full_size_protocols(tmp_path, data_dir, name, shape, train_end, first_hour):
    """Full-size files in the published shape (values tiled from the real exchange-rate file)."""
    from tsdiff.data.datasets.lstnet import LSTNET_LARGE

    with gzip.open(data_dir / "exchange_rate" / "exchange_rate.txt.gz", "rt") as fh:
        tokens = np.array([t for line in fh for t in line.strip().split(",")])
    cells = np.resize(tokens, shape)  # the real numbers, as written in the real file
    spec = LSTNET_LARGE[name].spec
    os.makedirs(tmp_path / spec.folder)
    with gzip.open(tmp_path / spec.folder / spec.files[0].name, "wt", compresslevel=1) as fh:
        fh.write("\n".join(",".join(row) for row in cells.tolist()) + "\n")
    values = cells.astype(np.float64)
    p = build_protocol(name, tmp_path)
    T = shape[0] // 6 if name == "solar" else shape[0]
    assert p.series.shape == (T, shape[1], 1) and p.series.time_index[0] == pd.Timestamp(first_hour)
    assert list(p.splits["test"].starts + 24) == [train_end + 24 * k for k in range(7)]
    assert (p.splits["train"].starts + 48).max() <= train_end - 7 * 24
    if name == "solar":
        np.testing.assert_allclose(p.series.values[3, 5, 0], values[18:24, 5].sum(), rtol=1e-9)
    else:
        np.testing.assert_allclose(p.series.values[:, :, 0], values, rtol=1e-9)


def test_window_split_rules_and_short_series():
    from tsdiff.data.adapters.frames import from_numpy
    from tsdiff.data.datasets.traffic import window_split, windowed_forecasting_protocol
    from tsdiff.errors import ConfigError

    tr, va, te = window_split(34249, (0.7, 0.1, 0.2), "dcrnn")  # full METR-LA: 34272 - 23 windows
    assert (len(tr), len(va), len(te)) == (23974, 3425, 6850)  # DCRNN's published sample counts
    tr, va, te = window_split(100, (0.6, 0.2, 0.2), "floor")
    assert (tr[-1], va[0], te[0], te[-1]) == (59, 60, 80, 99)
    with pytest.raises(ConfigError, match="'dcrnn' or 'floor'"):
        window_split(100, (0.6, 0.2, 0.2), "ceil")
    short = from_numpy(np.ones((20, 3)), freq="5min")
    with pytest.raises(DataError, match="20 steps, too short for windows of 12 \\+ 12"):
        windowed_forecasting_protocol("x", short, 12, 12, (0.7, 0.1, 0.2), "dcrnn")
    with pytest.raises(DataError, match="leave an empty split"):
        windowed_forecasting_protocol("x", from_numpy(np.ones((27, 3)), freq="5min"), 12, 12, (0.9, 0.05, 0.05), "floor")
