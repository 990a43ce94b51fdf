"""The PhysioNet 2012 imputation and exchange-rate forecasting protocols on the real files."""

import json
import os

import numpy as np
import pytest

from tsdiff.cli import main
from tsdiff.data import build_protocol
from tsdiff.data.datasets.physionet_protocol import hold_out_per_window
from tsdiff.errors import ConfigError

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture(scope="module")
def physionet(data_dir):
    return build_protocol("physionet2012", data_dir)


@pytest.fixture(scope="module")
def exchange(data_dir):
    return build_protocol("exchange_rate", data_dir)


def test_physionet_splits_and_held_out_values(physionet):
    p = physionet
    assert p.id == "physionet2012-csdi-10pct" and p.task == "imputation" and p.metric_space == "scaled"
    assert {k: len(v) for k, v in p.splits.items()} == {"train": 2800, "val": 400, "test": 800}
    stays = {k: set((v.starts // 48).tolist()) for k, v in p.splits.items()}
    assert not (stays["train"] & stays["val"]) and not (stays["train"] & stays["test"]) and not (stays["val"] & stays["test"])
    assert len(stays["train"] | stays["val"] | stays["test"]) == 4000
    observed = ~np.isnan(p.series.values).reshape(4000, 48, 35)
    held = p.eval_mask.reshape(4000, 48, 35)
    assert not (held & ~observed).any()
    for s in sorted(stays["test"])[:50]:
        assert held[s].sum() == int(observed[s].sum() * 0.1)
    assert not held[sorted(stays["train"])].any()  # nothing held out in training stays
    # each test window scores exactly its held-out entries, and never conditions on them
    ds = p.dataset("test")
    item = ds[3]
    s = item["start"] // 48
    assert np.array_equal(item["score_mask"].numpy()[..., 0], held[s])
    assert not (item["cond_mask"] & item["score_mask"]).any()
    # per-variable z-scoring with training statistics only
    train_vals = p.series.values.reshape(4000, 48, 35)[sorted(stays["train"])].reshape(-1, 35)
    np.testing.assert_allclose(p.scaler.mean[:, 0], np.nanmean(train_vals, axis=0), rtol=1e-10)


def test_physionet_held_out_mask_is_seeded():
    observed = np.random.default_rng(0).random((20, 48, 35)) < 0.2
    a = hold_out_per_window(observed, 0.5, seed=1)
    assert np.array_equal(a, hold_out_per_window(observed, 0.5, seed=1))
    assert not np.array_equal(a, hold_out_per_window(observed, 0.5, seed=2))
    # the mask of one stay does not depend on the others
    assert np.array_equal(hold_out_per_window(observed[:5], 0.5, seed=1), a[:5])
    assert (a.reshape(20, -1).sum(1) == (observed.reshape(20, -1).sum(1) * 0.5).astype(int)).all()


def test_physionet_bad_ratio(data_dir):
    with pytest.raises(ConfigError, match="missing_ratio must be in"):
        build_protocol("physionet2012", data_dir, {"missing_ratio": 1.5})


def test_exchange_rate_windows(exchange):
    p = exchange
    assert p.task == "forecasting" and p.window == 60 and p.context == 30
    assert list(p.splits["test"].starts + 30) == [6071, 6101, 6131, 6161, 6191]  # GluonTS nips cutoffs
    assert list(p.splits["val"].starts + 30) == [5921, 5951, 5981, 6011, 6041]
    assert (p.splits["train"].starts + 60).max() == 5921  # no training horizon reaches validation
    item = p.dataset("test")[2]
    cond, score = item["cond_mask"].numpy(), item["score_mask"].numpy()
    assert cond[:30].all() and not cond[30:].any()
    assert score[30:].all() and not score[:30].any()
    np.testing.assert_array_equal(item["y"].numpy(), p.series.values[6101:6161])
    assert "cond_mask" in p.dataset("train")[0] and "score_mask" not in p.dataset("train")[0]
    with pytest.raises(ConfigError, match="longer than the history"):
        build_protocol("exchange_rate", None, {"context": 7000})


TINY = ["model.layers=1", "model.channels=16", "model.heads=2", "model.ff_dim=16", "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
        "eval.n_samples=2", "eval.sampler=ddim", "eval.steps=2"]


@pytest.mark.parametrize("config, protocol, extra", [
    ("configs/forecasting/csdi_exchange_rate.yaml", "exchange_rate-nips-c30-h30", "crps_sum"),
    ("configs/imputation/csdi_physionet.yaml", "physionet2012-csdi-10pct", None),
])
def test_cli_on_other_protocols(config, protocol, extra, tmp_path, data_dir):
    out = [f"output.dir={tmp_path}/run", f"output.records_dir={tmp_path}/rec", f"data.data_dir={data_dir}",
           "eval.limit_windows=3"]
    assert main(["fit", os.path.join(ROOT, config), *TINY, *out, "--test"]) == 0
    (path,) = (tmp_path / "rec").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["protocol"] == protocol
    assert all(np.isfinite(rec["metrics"][k]) for k in ("crps", "mae", "rmse"))
    if extra:
        assert np.isfinite(rec["metrics"][extra])


def test_metr_la_forecasting_windows(data_dir):
    p = build_protocol("metr_la", data_dir)
    assert p.id == "metr_la-week-c12-h12-s12" and p.window == 24 and p.series.shape == (2016, 207, 1)
    assert p.meta["blocks"] == {"train": (0, 1411), "val": (1411, 1612), "test": (1612, 2016)}
    assert (p.splits["train"].starts + 24).max() == 1411  # training windows stay in the training block
    horizons = p.splits["test"].starts + 12
    assert horizons[0] == 1612 and (np.diff(horizons) == 12).all() and horizons[-1] + 12 <= 2016
    assert len(p.splits["test"]) == 33


@pytest.mark.parametrize("missing, low, high", [("point", 0.24, 0.26), ("block", 0.05, 0.2)])
def test_metr_la_imputation_masks(data_dir, missing, low, high):
    p = build_protocol("metr_la_impute", data_dir, {"missing": missing})
    assert p.task == "imputation" and p.window == 24
    assert not p.eval_mask[:1411].any()  # nothing held out while training
    rate = p.meta["realised_missing_rate"]["test"]
    assert low < rate < high
    ds = p.dataset("test")
    scored = sum(int(ds[i]["score_mask"].sum()) for i in range(len(ds)))
    assert scored == int(p.eval_mask[1612:].sum())  # each held-out test value scored once
    if missing == "block":  # outages are contiguous runs of at least 12 steps per sensor
        col = p.eval_mask[1612:, :, 0].astype(int)
        runs = np.diff(np.concatenate([np.zeros((1, 207), int), col, np.zeros((1, 207), int)]), axis=0)
        lengths = np.flatnonzero(runs.T.ravel() == -1) - np.flatnonzero(runs.T.ravel() == 1)
        assert lengths.max() >= 12
    with pytest.raises(ConfigError, match="'point' or 'block'"):
        build_protocol("metr_la_impute", data_dir, {"missing": "blocks"})


def test_era5_protocols(data_dir):
    f = build_protocol("era5", data_dir)
    assert f.series.shape == (744, 1617, 1) and f.series.spatial.shape == (33, 49) and f.window == 48
    assert f.meta["blocks"] == {"train": (0, 520), "val": (520, 594), "test": (594, 744)}
    assert list(f.splits["test"].starts + 24) == [594, 618, 642, 666, 690, 714]
    assert f.checksums == {"era5_t2m_uk_2019-03.nc": "0408bfc9c8a5c86057c39338f03b2f13f3d4d19754279c431e339d7469ee9170"}
    p = build_protocol("era5_impute", data_dir)
    assert not p.eval_mask[:520].any()
    held = p.eval_mask[594:, :, 0].reshape(-1, 33, 49)
    # a 6 x 6 patch is hidden for a whole 24 h block: some cell is hidden at all 24 steps of the first block
    assert held[:24].all(axis=0).sum() >= 36
    assert 0.1 < p.meta["realised_missing_rate"]["test"] < 0.25
    item = p.dataset("test")[0]
    assert item["x"].shape == (24, 1617, 1) and not (item["cond_mask"] & item["score_mask"]).any()
    # metrics are in Kelvin: the raw values of a window are temperatures
    assert 250 < float(item["y"].mean()) < 300


def test_etth1_protocol(data_dir):
    p = build_protocol("etth1", data_dir)
    assert p.id == "etth1-informer-c96-h24-s1" and p.task == "forecasting" and p.metric_space == "scaled"
    assert p.window == 120 and p.context == 96 and p.series.shape == (17420, 1, 7)
    test_cutoffs = p.splits["test"].starts + 96
    assert len(test_cutoffs) == 2857 and test_cutoffs[0] == 11520 and test_cutoffs[-1] + 24 == 14400
    assert (np.diff(test_cutoffs) == 1).all()
    assert len(p.splits["train"]) == 8640 - 120 + 1 and (p.splits["train"].starts + 120).max() == 8640
    val_cutoffs = p.splits["val"].starts + 96
    assert val_cutoffs[0] == 8640 and val_cutoffs[-1] + 24 <= 11520 and len(val_cutoffs) == 120
    # Informer's scaler: per-variable statistics of the 12 training months
    np.testing.assert_allclose(p.scaler.mean[0], p.series.values[:8640, 0].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(p.scaler.std[0], p.series.values[:8640, 0].std(axis=0, ddof=1), rtol=1e-12)
    item = p.dataset("test")[0]
    np.testing.assert_array_equal(item["y"].numpy(), p.series.values[11424:11544])
    assert item["score_mask"][96:].all() and not item["score_mask"][:96].any()
    assert build_protocol("etth1", data_dir, {"metric_space": "data", "test_stride": 24}).metric_space == "data"
    with pytest.raises(ConfigError, match="metric_space must be 'scaled' or 'data'"):
        build_protocol("etth1", data_dir, {"metric_space": "kelvin"})
    with pytest.raises(ConfigError, match="context must be an integer >= 1"):
        build_protocol("etth1", data_dir, {"context": 0})


def test_protocols_1_to_6_are_registered_tasks():
    from tsdiff.data import DATASETS
    from tsdiff.data.datasets import PAPER_PROTOCOLS, SPECS, protocol_number

    assert sorted(PAPER_PROTOCOLS) == [1, 2, 3, 4, 5, 6]
    expected = {1: ("aqi36",), 2: ("physionet2012",), 3: ("exchange_rate",), 4: ("metr_la", "metr_la_impute"),
                5: ("era5", "era5_impute"), 6: ("etth1",)}
    assert PAPER_PROTOCOLS == expected
    for number, names in PAPER_PROTOCOLS.items():
        for name in names:
            assert name in DATASETS and name in SPECS and protocol_number(name) == number
    # every protocol names the files it reads, except 'file', which reads the user's own
    assert set(DATASETS.names()) == set(SPECS) | {"file"}
    assert protocol_number("electricity") is None
