"""AQI-36 loader and protocol on the real files."""

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff.data import build_protocol
from tsdiff.data.masking import TRAIN_MASKS, historical_train_mask, missing_rate, random_train_mask
from tsdiff.data.datasets.aqi36 import SPEC, load_aqi36
from tsdiff.data.windows import contiguous_segments, covering_starts, sliding_starts
from tsdiff.errors import ConfigError, DataError, DatasetNotFoundError, UnknownNameError


def test_files_shapes_and_dates(data_dir):
    series, eval_mask, sums = load_aqi36(data_dir)
    assert series.shape == (8759, 36, 1)
    assert series.values.dtype == np.float64
    assert series.time_index[0] == pd.Timestamp("2014-05-01 01:00")
    assert series.time_index[-1] == pd.Timestamp("2015-04-30 23:00")
    assert (np.diff(series.time_index.asi8) == 3600 * 10**9).all()
    assert series.node_names[:2] == ["001001", "001002"]
    assert abs(series.missing_rate() - 0.1325) < 5e-4
    assert int(eval_mask.sum()) == 35737
    assert not (eval_mask & np.isnan(series.values)).any()  # targets always have ground truth
    assert sums == {f.name: f.sha256 for f in SPEC.files}
    assert len(series.attrs["latitude"]) == 36


def test_protocol_splits(aqi36):
    p = aqi36
    assert p.id == "aqi36-csdi"
    months = p.series.time_index.month.to_numpy()
    L = p.window
    for split, allowed in [("train", {1, 4, 5, 7, 8, 10, 11}), ("val", {2}), ("test", {3, 6, 9, 12})]:
        seen = set()
        for s in p.splits[split].starts:
            m = set(months[s : s + L])
            assert len(m) == 1, f"{split} window at {s} crosses a month boundary"
            seen |= m
        assert seen == allowed
    assert len(p.splits["train"]) == 4914
    assert len(p.splits["test"]) == 82


def test_every_test_target_scored_exactly_once(aqi36):
    ds = aqi36.dataset("test")
    count = np.zeros(aqi36.series.shape, dtype=int)
    for i in range(len(ds)):
        item = ds[i]
        s = item["start"]
        count[s : s + aqi36.window] += item["score_mask"].numpy()
        # the model never sees a scored value
        assert not (item["cond_mask"] & item["score_mask"]).any()
    test_rows = aqi36.series.time_index.month.isin([3, 6, 9, 12])
    expected = aqi36.eval_mask & test_rows[:, None, None]
    assert count.max() == 1
    assert (count.astype(bool) == expected).all()
    assert int(count.sum()) == 20434


def test_scaler_uses_training_windows_only(aqi36):
    p = aqi36
    rows = np.zeros(p.series.shape[0], bool)
    for s in p.splits["train"].starts:
        rows[s : s + p.window] = True
    train = p.series.values[rows]
    np.testing.assert_allclose(p.scaler.mean, np.nanmean(train, axis=0), rtol=1e-12)
    np.testing.assert_allclose(p.scaler.std, np.nanstd(train, axis=0, ddof=1), rtol=1e-12)
    # the test months would give different statistics
    assert np.abs(p.scaler.mean - np.nanmean(p.series.values, axis=0)).max() > 0.5
    # exactly invertible up to float64 rounding
    x = p.series.values[:100]
    np.testing.assert_allclose(p.scaler.inverse_transform(p.scaler.transform(x)), x, rtol=1e-12)


def test_window_items(aqi36):
    tr = aqi36.dataset("train")[0]
    assert tr["x"].shape == (36, 36, 1) and tr["x"].dtype == torch.float32
    assert tr["observed_mask"].dtype == torch.bool
    assert "cond_mask" not in tr
    assert torch.all(tr["x"][~tr["observed_mask"]] == 0)
    te = aqi36.dataset("test")[0]
    assert (te["cond_mask"] <= te["observed_mask"]).all()


def test_missing_files_error_names_files_source_and_folder(tmp_path):
    (tmp_path / "aqi36").mkdir()
    (tmp_path / "aqi36" / "pm25_ground.txt").write_text("x")
    with pytest.raises(DatasetNotFoundError) as info:
        build_protocol("aqi36", tmp_path)
    msg = str(info.value)
    assert "pm25_missing.txt" in msg and "pm25_latlng.txt" in msg and "pm25_ground.txt," not in msg
    assert "STMVL-Release.zip" in msg
    assert str(tmp_path / "aqi36") in msg
    assert "TSDIFF_DATA" in msg


def test_env_var_is_used(monkeypatch, data_dir):
    monkeypatch.setenv("TSDIFF_DATA", str(data_dir))
    from tsdiff.data.paths import data_dir as resolve

    assert resolve()[0] == data_dir
    monkeypatch.delenv("TSDIFF_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", "/tmp/xdg")
    assert str(resolve()[0]) == "/tmp/xdg/tsdiff/datasets"


def test_inf_and_text_in_data_file_are_clear_errors(tmp_path, data_dir):
    folder = tmp_path / "aqi36"
    folder.mkdir()
    for name in ("pm25_missing.txt", "pm25_latlng.txt"):
        (folder / name).write_bytes((data_dir / "aqi36" / name).read_bytes())
    lines = (data_dir / "aqi36" / "pm25_ground.txt").read_text().splitlines()
    lines[5] = lines[5].replace(",", ",inf,", 1).rsplit(",", 1)[0]
    (folder / "pm25_ground.txt").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="SHA-256"), pytest.raises(DataError, match="infinite"):
        load_aqi36(tmp_path)
    lines[5] = lines[5].replace("inf", "abc")
    (folder / "pm25_ground.txt").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="SHA-256"), pytest.raises(DataError, match="non-numeric"):
        load_aqi36(tmp_path)


def test_bad_options(data_dir):
    with pytest.raises(ConfigError, match=r"for dataset .aqi36. \(data.options\); valid options are: window, test_months"):
        build_protocol("aqi36", data_dir, {"windw": 24})
    with pytest.raises(ConfigError, match="overlap"):
        build_protocol("aqi36", data_dir, {"valid_months": [3]})
    with pytest.raises(UnknownNameError, match="valid dataset names are: aqi36"):
        build_protocol("aqi37", data_dir)


def test_covering_windows_score_each_step_once():
    for length in (1, 35, 36, 37, 72, 100, 744):
        starts, score_from = covering_starts(length, 36)
        hits = np.zeros(length, int)
        for s, f in zip(starts, score_from):
            hits[s + f : s + 36] += 1
        assert (hits == (1 if length >= 36 else 0)).all()
    assert list(sliding_starts(5, 3, 1, offset=10)) == [10, 11, 12]
    assert contiguous_segments(np.array([1, 1, 2, 2, 2, 1])) == [(0, 2, 1), (2, 5, 2), (5, 6, 1)]


def test_training_masks_are_subsets_of_observed():
    g = torch.Generator().manual_seed(0)
    observed = torch.rand(64, 36, 36, 1, generator=g) > 0.15
    for name in TRAIN_MASKS.names():
        cond = TRAIN_MASKS.get(name)(observed, torch.Generator().manual_seed(1))
        assert cond.dtype == torch.bool and cond.shape == observed.shape
        assert not (cond & ~observed).any()
        assert 0.0 < missing_rate(observed, cond) < 1.0
    hist = historical_train_mask(observed)
    assert torch.equal(hist, observed & observed.roll(1, 0))
    # random: per window a U(0,1) fraction of observed values is hidden -> mean rate ~ 0.5
    rates = []
    for seed in range(20):
        cond = random_train_mask(observed, torch.Generator().manual_seed(seed))
        hidden = (observed & ~cond).flatten(1).sum(1) / observed.flatten(1).sum(1)
        rates.append(hidden)
    rates = torch.cat(rates)
    assert abs(rates.mean().item() - 0.5) < 0.05
    assert rates.min() < 0.05 and rates.max() > 0.95
    # seeded generators make masks reproducible
    a = random_train_mask(observed, torch.Generator().manual_seed(3))
    b = random_train_mask(observed, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_protocol_reproduces_published_simple_baselines(aqi36):
    """Station mean and linear interpolation land on the GRIN paper's AQI-36 numbers
    (MAE ~53.5 and ~14.5, PROTOCOLS.md); a wrong target set or split would not."""
    v, ev = aqi36.series.values[..., 0], aqi36.eval_mask[..., 0]
    targets = ev & aqi36.series.time_index.month.isin([3, 6, 9, 12])[:, None]
    y = v[targets]
    station_mean = np.broadcast_to(aqi36.scaler.mean[:, 0], v.shape)[targets]
    interp = pd.DataFrame(np.where(ev, np.nan, v)).interpolate("linear", limit_direction="both").to_numpy()
    assert np.abs(station_mean - y).mean() == pytest.approx(54.007, abs=0.01)
    assert np.abs(interp[targets] - y).mean() == pytest.approx(14.683, abs=0.01)


def test_dataset_card_matches_spec():
    from pathlib import Path

    card = Path(__file__).resolve().parents[1] / "datasets" / SPEC.card
    text = card.read_text()
    for f in SPEC.files:
        assert f"{f.sha256}  {f.name}" in text, f"{card} lacks the checksum of {f.name}"


def test_datasets_cli(data_dir, capsys, tmp_path):
    from tsdiff.cli import main

    assert main(["datasets", "list"]) == 0
    assert "aqi36: Beijing PM2.5" in capsys.readouterr().out
    assert main(["datasets", "check", "--data-dir", str(data_dir)]) == 0
    assert "aqi36: ok" in capsys.readouterr().out
    assert main(["datasets", "check", "--data-dir", str(tmp_path)]) == 2
    assert "missing file(s)" in capsys.readouterr().err
