"""pandas / numpy / GluonTS adapters: round trips and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdiff.data.adapters.frames import (
    check_usable, from_long_dataframe, from_numpy, from_wide_dataframe, to_long_dataframe, to_wide_dataframe,
)
from tsdiff.errors import DataError


def _wide(T=20, cols=("a", 7, "c")):
    rng = np.random.default_rng(0)
    idx = pd.date_range("2021-01-01", periods=T, freq="15min", name="ts")
    df = pd.DataFrame(rng.normal(size=(T, len(cols))), index=idx, columns=list(cols))
    df.iloc[3, 1] = np.nan
    df.iloc[5:9, 0] = np.nan
    return df


def test_wide_round_trip_keeps_index_columns_values():
    df = _wide()
    s = from_wide_dataframe(df)
    assert s.shape == (20, 3, 1) and s.attrs["freq"] == "15min"
    assert s.observed_mask.sum() == df.notna().to_numpy().sum()
    pd.testing.assert_frame_equal(to_wide_dataframe(s), df, check_freq=False)


def test_long_round_trip_and_alignment():
    df = _wide().stack().rename("y").rename_axis(["ts", "item"]).reset_index()
    df["z"] = df["y"] * 2
    df = df.sample(frac=1.0, random_state=0)  # any row order
    s = from_long_dataframe(df, "item", "ts", ["y", "z"])
    assert s.shape == (20, 3, 2) and s.channel_names == ["y", "z"]
    back = to_long_dataframe(s, "item", "ts")
    key = ["item", "ts"]
    a = df.assign(item=df["item"].astype(str)).sort_values(key).reset_index(drop=True)
    b = back.assign(item=back["item"].astype(str)).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key + ["y", "z"]], b[key + ["y", "z"]], check_dtype=False)


def test_numpy_shapes():
    assert from_numpy(np.arange(5.0)).shape == (5, 1, 1)
    s = from_numpy(np.ones((6, 3)), start="2020-01-01", freq="D")
    assert s.shape == (6, 3, 1) and s.time_index[-1] == pd.Timestamp("2020-01-06")
    with pytest.raises(DataError, match=r"\[T\], \[T, N\] or \[T, N, C\]"):
        from_numpy(np.ones((2, 2, 2, 2)))


def test_duplicate_timestamps():
    df = _wide()
    df.index = df.index[:3].append(df.index[2:-1])
    with pytest.raises(DataError, match="duplicate timestamp.*2021-01-01 00:30"):
        from_wide_dataframe(df)


def test_unsorted_timestamps():
    df = _wide().iloc[[0, 2, 1, 3, 4]]
    with pytest.raises(DataError, match="not sorted.*sort by time"):
        from_wide_dataframe(df)


def test_irregular_frequency():
    df = _wide().drop(index=_wide().index[[4, 11]])
    with pytest.raises(DataError, match="irregular timestamps.*resample"):
        from_wide_dataframe(df)
    with pytest.raises(DataError, match="do not follow frequency.*is missing"):
        from_wide_dataframe(df, freq="15min")


def test_long_duplicates_and_off_grid():
    df = pd.DataFrame({"item_id": ["a", "a", "b"], "timestamp": ["2020-01-01", "2020-01-01", "2020-01-02"], "v": [1.0, 2, 3]})
    with pytest.raises(DataError, match="item 'a' has duplicate timestamp"):
        from_long_dataframe(df)
    df = pd.DataFrame({"item_id": ["a"] * 4, "timestamp": ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-05 12:00"], "v": 1.0})
    with pytest.raises(DataError, match="irregular"):
        from_long_dataframe(df)


def test_too_short_and_all_nan():
    s = from_numpy(np.ones((5, 2)))
    with pytest.raises(DataError, match="shorter than one window of 12"):
        check_usable(s, window=12)
    v = np.ones((10, 2))
    v[:, 1] = np.nan
    s = from_numpy(v)
    with pytest.raises(DataError, match="node '1' channel 'c0' is all NaN"):
        check_usable(s)
    assert check_usable(s, all_nan="keep") is s
    with pytest.raises(DataError, match="no observed value at all"):
        check_usable(from_numpy(np.full((4, 2), np.nan)), all_nan="keep")
    from tsdiff.data.splits import chronological_split, forecast_starts

    with pytest.raises(DataError, match="shorter than one window"):
        forecast_starts(10, context=8, horizon=4)
    with pytest.raises(DataError, match="shorter than 12 steps"):
        chronological_split(40, (0.7, 0.1, 0.2), min_length=12)


def test_gluonts_list_dataset_round_trip_and_forecasts():
    from gluonts.dataset.common import ListDataset, TrainDatasets, MetaData
    from gluonts.model.forecast import SampleForecast

    from tsdiff.data.adapters.gluonts import from_gluonts, from_train_datasets, to_gluonts_list, to_sample_forecasts

    ds = ListDataset(
        [{"start": "2020-01-01", "target": [1.0, 2, 3, 4], "item_id": "x"},
         {"start": "2020-01-03", "target": [5.0, 6, 7], "item_id": "y"}],
        freq="D",
    )
    s = from_gluonts(ds)
    assert s.shape == (5, 2, 1) and s.node_names == ["x", "y"]
    np.testing.assert_array_equal(s.values[:, 1, 0], [np.nan, np.nan, 5, 6, 7])
    back = list(to_gluonts_list(s))
    np.testing.assert_array_equal(back[0]["target"], [1, 2, 3, 4, np.nan])
    td = TrainDatasets(metadata=MetaData(freq="D", prediction_length=2), train=ds, test=ds)
    out = from_train_datasets(td)
    assert out["prediction_length"] == 2 and out["test"].shape == (5, 2, 1)
    samples = np.random.default_rng(0).normal(size=(100, 3, 2, 1))
    fcs = to_sample_forecasts(samples, "2020-01-06", "D", item_ids=["x", "y"])
    assert len(fcs) == 2 and isinstance(fcs[0], SampleForecast)
    assert fcs[1].item_id == "y" and fcs[1].samples.shape == (100, 3)
    assert fcs[0].start_date == pd.Period("2020-01-06", freq="D")
    np.testing.assert_allclose(fcs[1].mean, samples[:, :, 1, 0].mean(0))
    multi = to_sample_forecasts(samples, "2020-01-06", "D", multivariate=True)[0]
    assert multi.samples.shape == (100, 3, 2)


def test_wide_round_trip_keeps_attrs_freq_names_and_timezone():
    df = _wide(cols=(3, 1, 2))
    df.columns.name = "station"
    df.attrs = {"units": "ug/m3", "source": "test"}
    df.index = pd.date_range("2021-03-28 00:00", periods=len(df), freq="15min", tz="Europe/Berlin", name="ts")
    s = from_wide_dataframe(df)
    back = to_wide_dataframe(s)
    pd.testing.assert_frame_equal(back, df)  # index (tz, name, freq), columns (labels, name, dtype), values
    assert back.attrs == df.attrs and back.index.freqstr == "15min" and back.columns.name == "station"
    assert s.node_names == ["3", "1", "2"]


def test_wide_frame_bad_columns():
    df = _wide()
    df.columns = ["a", "a", "b"]
    with pytest.raises(DataError, match="duplicate column 'a'"):
        from_wide_dataframe(df)
    df.columns = pd.MultiIndex.from_tuples([("x", 1), ("x", 2), ("y", 1)])
    with pytest.raises(DataError, match="MultiIndex"):
        from_wide_dataframe(df)
    df = _wide()
    df["label"] = "a"
    with pytest.raises(DataError, match=r"\['label'\] are not numeric"):
        from_wide_dataframe(df)
