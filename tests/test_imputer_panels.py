"""Imputer on panels of independent samples: PhysioNet 2012 stays as ``[n, 48, 35]``, ragged lists."""

import numpy as np
import pandas as pd
import pytest

from tsdiff.api import Imputer
from tsdiff.api.panels import as_panel, training_windows
from tsdiff.data.protocol import build_protocol
from tsdiff.data.datasets.physionet import load_physionet2012
from tsdiff.errors import DataError

TINY = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
            feature_embedding_dim=4)


@pytest.fixture(scope="module")
def stays(data_dir):
    """40 real stays ``[40, 48, 35]`` (about 80% missing)."""
    return load_physionet2012(data_dir).values[:40]


def tiny(**kw):
    params = dict(max_steps=3, n_samples=2, sampling_steps=2, batch_size=8, model_options=TINY, random_state=0)
    params.update(kw)
    return Imputer(**params)


def test_training_windows_stay_inside_their_samples():
    panel = as_panel([np.zeros((5, 2)), np.zeros((3, 2)), np.zeros((4, 2))])
    assert panel.lengths == [5, 3, 4] and not panel.stacked
    # gap 2: samples at rows 0, 7, 12
    assert panel.offsets(2).tolist() == [0, 7, 12]
    train, held = training_windows(panel, 3, 2, None)
    assert train.tolist() == [0, 1, 2, 7, 12, 13] and held.size == 0
    train, held = training_windows(panel, 3, 2, 0.3)  # ceil(0.9) = 1 sample held out: the last
    assert train.tolist() == [0, 1, 2, 7] and held.tolist() == [12, 13]
    cat = panel.concatenated(2)
    assert cat.shape == (16, 2) and np.isnan(cat[5:7]).all() and np.isnan(cat[10:12]).all()


def test_physionet_stays_as_a_3d_array_are_imputed_through_the_public_api(stays):
    imp = tiny().fit(stays[:32])
    assert imp.window_ == 48 and imp.n_features_in_ == 35
    test = stays[32:]
    out = imp.transform(test)
    assert out.shape == test.shape and not np.isnan(out).any()
    obs = ~np.isnan(test)
    assert np.array_equal(out[obs], test[obs])  # observed values bit for bit
    draws = imp.sample(test, 3)
    assert draws.shape == (3,) + test.shape
    q = imp.quantiles(test, [0.1, 0.9], n_samples=3)
    assert q.shape == (2,) + test.shape and np.all(q[0] <= q[1])
    assert imp.std(test, n_samples=3).shape == test.shape


def test_each_sample_is_imputed_from_its_own_values_only(stays):
    imp = tiny().fit(stays[:32])
    test = stays[32:36].copy()
    base = imp.sample(test, 2)
    other = test.copy()
    obs1 = ~np.isnan(other[1])
    other[1][obs1] = other[1][obs1] * 3.0 + 7.0  # another patient's values change, not its gaps
    moved = imp.sample(other, 2)
    for i in (0, 2, 3):
        np.testing.assert_array_equal(moved[:, i], base[:, i])
    assert not np.array_equal(moved[:, 1], base[:, 1])


def test_ragged_list_of_frames_keeps_each_samples_length_and_columns(stays):
    cols = [f"v{i}" for i in range(35)]
    frames = [pd.DataFrame(stays[i][: 30 + i], columns=cols) for i in range(19)]
    imp = tiny(window=24).fit(frames)
    assert list(imp.feature_names_in_) == cols and imp.window_ == 24
    out = imp.transform(frames)
    assert isinstance(out, list) and [o.shape for o in out] == [(30 + i, 35) for i in range(19)]
    for o, f in zip(out, frames):
        v = f.to_numpy()
        assert np.array_equal(o[~np.isnan(v)], v[~np.isnan(v)]) and not np.isnan(o).any()
    q = imp.quantiles(frames, [0.5], n_samples=2)
    assert [x.shape for x in q] == [(1, 30 + i, 35) for i in range(19)]


def test_validation_holds_out_whole_samples(stays):
    imp = tiny(validation=0.25, max_steps=4).fit(stays[:32])  # 8 stays held out, 24 train
    assert imp.training_["n_steps"] == 4
    assert imp.training_["best_step"] is not None and np.isfinite(imp.training_["best_val_loss"])


def test_bad_panels_get_clear_errors(stays):
    with pytest.raises(DataError, match="every sample of a panel needs the same features"):
        tiny().fit([stays[0], stays[1][:, :30]])
    with pytest.raises(DataError, match="list of 2-D"):
        tiny().fit([np.zeros(5), np.zeros(5)])
    with pytest.raises(DataError, match="the same columns in the same order"):
        tiny().fit([pd.DataFrame(stays[0]).add_prefix("a"), pd.DataFrame(stays[1]).add_prefix("b")])
    with pytest.raises(DataError, match="needs at least one of each"):
        tiny().fit(np.zeros((0, 48, 35)))
    with pytest.raises(DataError, match="validation holds out whole samples"):
        tiny(validation=0.2).fit(stays[:1])
    with pytest.raises(DataError, match=r"X\[1\].*inf"):
        bad = stays[:2].copy()
        bad[1, 0, 0] = np.inf
        tiny().fit(bad)
    imp = tiny().fit(stays[:32])
    with pytest.raises(DataError, match="35"):
        imp.transform(stays[:2, :, :30])


def test_physionet_protocol_windows_see_nothing_of_the_neighbouring_stays(data_dir):
    p = build_protocol("physionet2012", data_dir, {"missing_ratio": 0.1})
    assert p.sample_length == 48
    ds = p.dataset("test")
    for i in range(5):
        item = ds[i]
        assert float(item["anchors"].abs().sum()) == 0.0  # one stay per window: nothing beyond its edges
    assert p.margins(96) == (96, 144)
