"""Informative priors (tsdiff.diffusion.priors) and residual diffusion from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_properties import make_module
from tsdiff.diffusion.prior_regression import BUCKETS
from tsdiff.diffusion.interpolation import prior_interpolation
from tsdiff.diffusion.priors import EdgeAnchors, build_prior, edge_anchors, stream_edge_anchors
from tsdiff.errors import ConfigError, UnknownNameError


def _series(seed: int = 0, T: int = 200, N: int = 3):
    rng = np.random.default_rng(seed)
    v = np.cumsum(rng.normal(size=(T, N)), axis=0)
    known = rng.random((T, N)) > 0.5
    known[50:120, 0] = False  # a gap longer than a window
    known[:, 2] = False
    known[150, 2] = True  # a series with a single known value
    return v, known


def _windows(v, known, L):
    starts = list(range(0, len(v) - L + 1, L))
    vt, kt = torch.tensor(v[:, :, None]), torch.tensor(known[:, :, None])
    xs = torch.stack([torch.where(kt[s:s + L], vt[s:s + L], 0.0) for s in starts])
    ms = torch.stack([kt[s:s + L] for s in starts])
    return starts, xs, ms, edge_anchors(vt, kt, starts, L)


def test_interpolation_with_anchors_equals_pandas_over_the_whole_series():
    v, known = _series()
    L = 24
    starts, xs, ms, anc = _windows(v, known, L)
    frame = pd.DataFrame(np.where(known, v, np.nan))
    want = frame.interpolate(limit_direction="both").to_numpy()
    got = build_prior("interpolation")(xs, ms, anc)
    for i, s in enumerate(starts):
        np.testing.assert_allclose(got[i, :, :, 0].numpy(), want[s:s + L], rtol=0, atol=1e-12)
    want_ffill = frame.ffill().bfill().to_numpy()
    got = build_prior("last_value")(xs, ms, anc)
    for i, s in enumerate(starts):
        np.testing.assert_array_equal(got[i, :, :, 0].numpy(), want_ffill[s:s + L])


def test_priors_keep_conditioning_values_and_fall_back_to_the_mean():
    v, known = _series(1)
    starts, xs, ms, anc = _windows(v, known, 24)
    for name in ("none", "interpolation", "last_value", {"name": "seasonal", "season": 5}):
        for a in (None, anc):
            p = build_prior(name)(xs, ms, a)
            assert torch.equal(p[ms], xs[ms]) and torch.isfinite(p).all()
            # series 2 has one known value in the whole series: windows without it get 0 (the mean)
            # without anchors, and that value with anchors (interpolation / persistence)
            w = [i for i, s in enumerate(starts) if not ms[i, :, 2].any()][0]
            if name == "none" or a is None:
                assert torch.all(p[w, :, 2] == 0)
            elif name in ("interpolation", "last_value"):
                assert torch.allclose(p[w, :, 2], torch.tensor(v[150, 2]))


def test_seasonal_prior_repeats_the_last_season_and_interpolates_the_rest():
    values = torch.tensor([1., 2., 3., 4., 0., 0., 0., 0., 0., 0.]).view(1, 10, 1, 1)
    mask = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.bool).view(1, 10, 1, 1)
    got = build_prior({"name": "seasonal", "season": 4})(values, mask).flatten().tolist()
    assert got == [1., 2., 3., 4., 1., 2., 3., 4., 1., 2.]
    # a season as long as the window: interpolation (here the last value)
    got = build_prior({"name": "seasonal", "season": 12})(values, mask).flatten().tolist()
    assert got == [1., 2., 3., 4.] + [4.] * 6


def test_edge_anchors_name_the_nearest_known_values_outside():
    v = torch.arange(10, dtype=torch.float64).view(10, 1, 1)
    known = torch.tensor([1, 0, 0, 0, 0, 0, 0, 0, 1, 1], dtype=torch.bool).view(10, 1, 1)
    anc = EdgeAnchors(v, known).anchors([3, 0, 6], 3)
    assert anc[0, :, 0, 0].tolist() == [0.0, 3.0, 8.0, 3.0]  # window 3..5: 0 three steps before, 8 three after
    assert anc[1, :, 0, 0].tolist() == [0.0, 0.0, 8.0, 6.0]  # nothing before the series' start
    assert anc[2, :, 0, 0].tolist() == [0.0, 6.0, 9.0, 1.0]


@pytest.mark.parametrize("length", [1, 3, 7, 24, 250])
def test_streamed_anchors_equal_the_in_memory_ones(length):
    v, known = _series(1)
    T = len(v)
    vt, kt = torch.tensor(v[:, :, None]).float(), torch.tensor(known[:, :, None])
    starts = sorted({*range(0, T - length + 1, length), max(T - length, 0)}) if length <= T else [0]
    reads = []

    def read(a, n):
        reads.append((a, n))
        return vt[a:a + n].numpy(), kt[a:a + n].numpy()

    got = stream_edge_anchors(read, T, starts, min(length, T))
    want = EdgeAnchors(vt, kt).anchors(starts, min(length, T)).numpy()
    np.testing.assert_array_equal(got, want)
    # one pass over the series in pieces of at most one window
    assert [a for a, _ in reads] == sorted(a for a, _ in reads) and sum(n for _, n in reads) == T
    assert max(n for _, n in reads) <= min(length, T)


def _related_series(T=2000, seed=0):
    """Two series that share a random walk (plus their own noise) and a third, unrelated one."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.normal(size=T))
    return np.stack([base + 0.1 * rng.normal(size=T), 2 * base + 0.1 * rng.normal(size=T),
                     np.cumsum(rng.normal(size=T))], axis=1)


def test_cross_series_prior_fills_a_gap_from_a_related_series():
    from tsdiff.diffusion.priors import prior_fit_mask

    v = torch.tensor(_related_series()[:, :, None], dtype=torch.float32)  # [T, 3, 1]
    L = 24
    windows = torch.stack([v[s:s + L] for s in range(0, len(v) - L, 4)])
    observed = torch.ones_like(windows, dtype=torch.bool)
    prior = build_prior({"name": "cross_series", "neighbours": 2}, num_series=3)
    assert not bool(prior.fitted)
    x0 = windows[:4]
    interp = build_prior("interpolation")
    hole = observed[:4].clone()
    hole[:, 4:20, 0] = False  # series 0 missing for 16 steps; series 1 (its double) observed
    before = prior(x0, hole)
    assert torch.equal(before, interp(x0, hole))  # unfitted: plain interpolation
    gen = torch.Generator().manual_seed(0)
    batches = []
    for lo in range(0, len(windows), 64):
        w, o = windows[lo:lo + 64], observed[lo:lo + 64]
        m = prior_fit_mask(o, gen)
        batches.append((w, m, o & ~m, None))
    prior.fit(lambda: batches)
    assert bool(prior.fitted) and prior.neighbours[0, 0] == 1 and prior.neighbours[1, 0] == 0
    est = prior(x0, hole)
    assert torch.equal(est[hole], x0[hole])  # conditioning values unchanged
    err_fit = (est - x0)[~hole].abs().mean()
    err_interp = (interp(x0, hole) - x0)[~hole].abs().mean()
    assert err_fit < 0.3 * err_interp, (err_fit, err_interp)
    # it uses the conditioning entries only: changing a hidden value changes nothing
    changed = x0.clone()
    changed[~hole] += 100.0
    assert torch.equal(prior(changed, hole), est)


def test_cross_series_second_pass_reads_the_first_pass_estimates_of_related_series():
    """Chained passes: where a related series is missing too, pass 2 reads pass 1's estimate of
    it instead of its interpolation; with one pass the prior is pass 1 alone."""
    v = torch.tensor(_related_series()[:, :, None], dtype=torch.float32)
    windows = torch.stack([v[s:s + 24] for s in range(0, len(v) - 24, 4)])
    hole = torch.ones_like(windows[:4], dtype=torch.bool)
    hole[:, 4:20, 0] = False
    hole[:, 6:18, 1] = False  # series 0's closest relative is missing over most of its gap
    two = build_prior({"name": "cross_series", "neighbours": 2}, num_series=3)
    assert two.weights.shape == (2, 3, len(BUCKETS) + 1, two.num_features)
    torch.manual_seed(0)
    two.weights.normal_()
    one = build_prior({"name": "cross_series", "neighbours": 2, "passes": 1}, num_series=3)
    one.weights.copy_(two.weights[:1])
    one.neighbours.copy_(two.neighbours)
    x = windows[:4]
    first = one(x, hole)
    assert torch.equal(two._estimate(0, x, hole, None, None), first)
    feats, _ = two.features(x, hole, None, first)
    want, _ = one.features(x, hole)
    k = two.k
    near_first = first.reshape(4, 24, 3)[:, :, two.neighbours]
    assert torch.equal(feats[..., 2:2 + k], near_first) and not torch.equal(feats, want)
    assert torch.equal(two(x, hole), two._estimate(1, x, hole, None, first))


def test_cross_series_prior_is_fitted_at_training_start_and_saved(tmp_path):
    import tsdiff
    from tsdiff.training.checkpoint import load_model

    frame = pd.DataFrame(_related_series(600))
    rng = np.random.default_rng(1)
    frame[rng.random(frame.shape) < 0.1] = np.nan
    frame.iloc[200:230, 0] = np.nan
    imp = tsdiff.Imputer(window=24, max_steps=2, n_samples=2, sampling_steps=2, prior="cross_series", device="cpu",
                         model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8})
    filled = imp.fit(frame).transform(frame)
    prior = imp.module_.prior_fn
    assert bool(prior.fitted) and np.isfinite(float(imp.module_.prior_scale))
    assert np.isfinite(filled).all()
    path = imp.save(tmp_path / "imp.pt")
    loaded = load_model(path)[0].prior_fn
    assert torch.equal(loaded.weights, prior.weights) and torch.equal(loaded.neighbours, prior.neighbours)
    np.testing.assert_array_equal(tsdiff.Imputer.load(path).transform(frame), filled)


@pytest.mark.parametrize("config, error, match", [
    ("interp", UnknownNameError,
     "valid prior names are: auto, climatology, cross_series, interpolation, last_value, none, seasonal"),
    ({"name": "climatology"}, TypeError, "season"),
    ({"name": "climatology", "season": 1}, ConfigError, "season must be an integer >= 2"),
    ({"name": "climatology", "season": 24, "damping": 1.5}, ConfigError, "damping must be a number in \\[0, 1\\] or 'fit'"),
    ({"name": "climatology", "season": 24, "damping": "auto"}, ConfigError, "damping must be"),
    ({"name": "climatology", "season": 24, "fit_windows": 0}, ConfigError, "fit_windows must be an integer >= 1"),
    ({"name": "auto", "candidates": "last_value"}, ConfigError, "candidates must be a non-empty list"),
    ({"name": "auto", "candidates": []}, ConfigError, "candidates must be a non-empty list"),
    ({"name": "auto", "candidates": ["auto"]}, ConfigError, "other than auto and none"),
    ({"name": "auto", "candidates": ["interp"]}, UnknownNameError, "valid prior names"),
    ({"name": "auto", "candidates": ["last_value", "last_value"]}, ConfigError, "listed twice"),
    ({"name": "auto", "seasons": 24}, ConfigError, "seasons must be a list"),
    ({"name": "auto", "seasons": [0]}, ConfigError, "season must be an integer >= 1"),
    ({"name": "auto", "fit_windows": 0}, ConfigError, "fit_windows must be an integer >= 1"),
    ({"name": "auto", "candidates": [{"name": "seasonal", "season": 2, "scale": 1}]}, ConfigError, "takes no scale"),
    ({"name": "cross_series", "neighbours": -1}, ConfigError, "neighbours must be an integer >= 0"),
    ({"name": "cross_series", "ridge": 0}, ConfigError, "ridge must be a positive number"),
    ({"name": "cross_series", "season": 2}, ConfigError, "unknown option"),
    ({"name": "cross_series", "passes": 0}, ConfigError, "passes must be an integer >= 1"),
    ({"name": "cross_series", "fit_windows": 2.5}, ConfigError, "fit_windows must be an integer >= 1"),
    ({"name": "seasonal", "season": 0}, ConfigError, "season must be an integer >= 1"),
    ({"name": "seasonal"}, TypeError, "season"),
    ({"name": "interpolation", "season": 3}, ConfigError, "takes no options"),
    ({"name": "seasonal", "season": 2, "lag": 1}, ConfigError, "unknown option"),
    (3, ConfigError, "prior must be a name or a mapping"),
])
def test_bad_prior_configs_are_clear_errors(config, error, match):
    with pytest.raises(error, match=match):
        build_prior(config)


def test_config_refuses_an_unknown_prior_and_a_bad_scale():
    from tsdiff.config import load_config

    with pytest.raises(UnknownNameError, match="valid prior names"):
        load_config(None, ["prior.name=linear"])
    with pytest.raises(ConfigError, match="prior.scale must be a positive number"):
        load_config(None, ["prior.name=interpolation", "prior.scale=-1"])
    cfg = load_config(None, ["prior={name: seasonal, season: 24}", "prior.name=interpolation"])
    assert cfg["prior"] == {"name": "interpolation"}  # a new name does not inherit the old one's options


def test_residual_diffusion_trains_samples_and_keeps_observed_values():
    torch.manual_seed(0)
    module = make_module("csdi", 3, 1, 12, prior={"name": "interpolation"})
    assert module.residual and not torch.isfinite(module.prior_scale)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.cumsum(rng.normal(size=(8, 12, 3, 1)), axis=1).astype(np.float32))
    observed = torch.from_numpy(rng.random(x.shape) > 0.2)
    x = torch.where(observed, x, 0.0)
    data = [{"x": x[i], "observed_mask": observed[i]} for i in range(8)]
    module.prior_scale.fill_(module.estimate_prior_scale(data))
    assert 0 < float(module.prior_scale) < 5
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    for _ in range(3):
        loss = module.diffusion_loss({"x": x, "observed_mask": observed})
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    for conditioning in ("conditional", "inpainting"):
        s, _ = module.sample(x, observed, n_samples=3, sampler="ddim", steps=4, conditioning=conditioning,
                             generator=torch.Generator().manual_seed(0))
        assert torch.equal(s[:, observed], x[observed].expand(3, -1)) and torch.isfinite(s).all()
    # an untrained residual model stays near the prior: its samples centre on it, not on the mean
    prior = module.condition(x, observed, None).prior
    s, _ = module.sample(x, observed, n_samples=64, sampler="ddpm", generator=torch.Generator().manual_seed(1))
    err_prior = (s.median(0).values - prior)[~observed].abs().mean()
    assert err_prior < (s.median(0).values[~observed].abs().mean())


def test_residual_false_hands_the_prior_to_the_network_but_diffuses_the_values():
    torch.manual_seed(0)
    module = make_module("csdi", 3, 1, 12, prior={"name": "interpolation", "residual": False})
    assert module.has_prior and not module.residual and module.residual_scale == 1.0
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.cumsum(rng.normal(size=(4, 12, 3, 1)), axis=1).astype(np.float32))
    observed = torch.from_numpy(rng.random(x.shape) > 0.3)
    cond = module.condition(x, observed, None)
    assert torch.equal(cond.prior, prior_interpolation(x, observed))  # the network sees the prior
    assert module.to_process_space(x, cond) is x and module.from_process_space(x, cond) is x
    seen = []
    hook = module.net.register_forward_hook(lambda net, args, out: seen.append(args[2].prior))
    loss = module.diffusion_loss({"x": x, "observed_mask": observed}, generator=torch.Generator().manual_seed(0))
    hook.remove()
    assert torch.isfinite(loss) and seen and seen[0] is not None
    s, _ = module.sample(x, observed, n_samples=2, sampler="ddim", steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s[:, observed], x[observed].expand(2, -1)) and torch.isfinite(s).all()
    # the same model with residual diffusion diffuses x - prior on the targets
    res = make_module("csdi", 3, 1, 12, prior={"name": "interpolation"})
    res.prior_scale.fill_(2.0)
    rcond = res.condition(x, observed, None)
    assert torch.allclose(res.to_process_space(x, rcond), (x - rcond.prior) / 2.0)


@pytest.mark.parametrize("config, match", [
    ({"name": "interpolation", "residual": "no"}, "prior.residual must be true or false"),
    ({"name": "interpolation", "residual": 1}, "prior.residual must be true or false"),
    ({"name": "auto", "candidates": [{"name": "interpolation", "residual": False}]}, "a candidate takes no residual"),
])
def test_bad_residual_options_are_clear_errors(config, match):
    import tsdiff

    with pytest.raises(ConfigError, match=match):
        tsdiff.Imputer(prior=config).fit(pd.DataFrame(np.random.default_rng(0).normal(size=(40, 2))))


def test_prior_scale_is_estimated_at_training_start_and_kept_in_model_files(tmp_path):
    import tsdiff
    from tsdiff.training.checkpoint import load_model

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(np.cumsum(rng.normal(size=(120, 3)), axis=0))
    frame[rng.random(frame.shape) < 0.1] = np.nan
    imp = tsdiff.Imputer(window=12, max_steps=2, n_samples=2, sampling_steps=2, prior="interpolation",
                         device="cpu", model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8})
    imp.fit(frame)
    scale = float(imp.module_.prior_scale)
    assert np.isfinite(scale) and scale > 0
    path = imp.save(tmp_path / "imp.pt")
    assert float(load_model(path)[0].prior_scale) == scale
    filled = imp.transform(frame)
    assert np.isfinite(filled).all()
    loaded = tsdiff.Imputer.load(path)
    np.testing.assert_array_equal(loaded.transform(frame), filled)


def test_imputer_with_a_prior_bridges_gaps_across_windows():
    """A column missing for longer than a window is bridged by interpolation over the whole table
    (the prior's anchors), not filled with the training mean."""
    import tsdiff

    t = np.arange(300, dtype=float)
    frame = pd.DataFrame({"a": 10 + 0.1 * t, "b": np.sin(t / 10)})
    frame.loc[100:160, "a"] = np.nan
    truth = 10 + 0.1 * t[100:161]
    err = {}
    for prior in ("interpolation", "none"):
        imp = tsdiff.Imputer(window=12, max_steps=150, n_samples=4, sampling_steps=2, prior=prior, device="cpu",
                             model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8})
        err[prior] = np.abs(imp.fit(frame).transform(frame)[100:161, 0] - truth).mean()
    # the bridge is 12.5 from the mean on average; a briefly trained residual model stays near it
    assert err["interpolation"] < 3.0 and err["none"] > 10.0, err


def test_priors_need_a_whole_window_network():
    with pytest.raises(ConfigError, match="generates one time step after another"):
        make_module("timegrad", 2, 1, 8, prior={"name": "last_value"})


def _hourly_frame(T=240):
    t = np.arange(T)
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=T), "b": t / T},
                        index=pd.date_range("2024-01-01", periods=T, freq="h"))


def test_forecaster_seasonal_prior_takes_the_season_from_the_frequency():
    import tsdiff

    fc = tsdiff.Forecaster(prediction_length=12, context_length=24, max_steps=1, n_samples=2, sampling_steps=2,
                           prior="seasonal", verbose=False, device="cpu",
                           model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8}).fit(_hourly_frame())
    assert fc.module_.prior_fn.season == 24
    assert fc.get_params()["prior"] == "seasonal"  # the argument itself is stored unchanged


def test_forecaster_seasonal_prior_longer_than_the_context_is_refused_or_persistence_by_default():
    import tsdiff

    tiny = dict(prediction_length=6, context_length=12, max_steps=1, n_samples=2, sampling_steps=2, verbose=False,
                device="cpu", model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8})
    with pytest.raises(ConfigError, match="season 30 steps, longer than the context_length of 12"):
        tsdiff.Forecaster(prior={"name": "seasonal", "season": 30}, **tiny).fit(_hourly_frame())
    # the default: a day of hourly data does not fit in 12 steps of context, so persistence
    assert tsdiff.Forecaster(**tiny).fit(_hourly_frame()).module_.prior_fn.season == 1
    # no frequency (a plain array): persistence too
    assert tsdiff.Forecaster(**tiny).fit(_hourly_frame().to_numpy()).module_.prior_fn.season == 1


def _three_kinds(B: int = 48, L: int = 24, seed: int = 0):
    """A seasonal series (period 6), a random walk and a straight line, the last 6 steps hidden."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(L).float()
    x = torch.zeros(B, L, 3, 1)
    x[:, :, 0, 0] = torch.sin(2 * torch.pi * (t + 6 * torch.rand(B, 1, generator=gen)) / 6)
    x[:, :, 1, 0] = torch.cumsum(torch.randn(B, L, generator=gen), 1)
    x[:, :, 2, 0] = torch.linspace(0, 1, L) + torch.rand(B, 1, generator=gen)
    cond = torch.ones_like(x, dtype=torch.bool)
    cond[:, L - 6:] = False
    return x, cond


def test_auto_prior_chooses_per_series_the_candidate_with_the_lowest_training_error():
    x, cond = _three_kinds()
    prior = build_prior({"name": "auto", "candidates": ["last_value"], "seasons": [6]}, num_series=3)
    assert prior.names == ["last_value", "seasonal(season=6)"] and not bool(prior.fitted)
    assert torch.equal(prior(x, cond), build_prior("last_value")(x, cond))  # before the fit: the first
    prior.fit(lambda: [(x, cond, ~cond, None)])
    # the seasonal series repeats its period exactly; the walk and the line are best continued
    assert prior.choice.tolist() == [1, 0, 0] and prior.chosen() == {"last_value": 2, "seasonal(season=6)": 1}
    out = prior(x, cond)
    assert torch.equal(out[cond], x[cond])
    assert torch.allclose(out[:, :, 0], x[:, :, 0], atol=1e-5)
    assert torch.equal(out[:, :, 1:], build_prior("last_value")(x, cond)[:, :, 1:])
    want = {n: float((build_prior(c)(x, cond) - x).abs()[~cond].mean())
            for n, c in [("last_value", "last_value"), ("seasonal(season=6)", {"name": "seasonal", "season": 6})]}
    assert prior.scores == pytest.approx(want)


def test_auto_prior_series_with_few_training_entries_take_the_overall_best():
    x, cond = _three_kinds(B=4)
    target = ~cond
    target[:, :, 0] = False  # the seasonal series has no scored entry
    prior = build_prior({"name": "auto", "candidates": ["last_value"], "seasons": [6]}, num_series=3)
    prior.fit(lambda: [(x, cond, target, None)])
    assert prior.choice.tolist() == [0, 0, 0]


def test_auto_prior_is_chosen_at_training_start_saved_and_loaded(tmp_path):
    import tsdiff
    from tsdiff.training.checkpoint import load_model

    tiny = dict(prediction_length=12, context_length=48, max_steps=1, n_samples=2, sampling_steps=2, verbose=False,
                device="cpu", model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8})
    fc = tsdiff.Forecaster(prior="auto", **tiny).fit(_hourly_frame())
    prior = fc.module_.prior_fn
    # hourly data: a daily seasonal candidate from the frequency; the sine takes it, the trend does not
    assert prior.names == ["interpolation", "last_value", "seasonal(season=24)"]
    assert bool(prior.fitted) and prior.choice.tolist() == [2, 0]
    path = fc.save(tmp_path / "fc.pt")
    assert torch.equal(load_model(path)[0].prior_fn.choice, prior.choice)
    # a context shorter than a day: no seasonal candidate
    short = tsdiff.Forecaster(prior="auto", **{**tiny, "context_length": 12}).fit(_hourly_frame())
    assert short.module_.prior_fn.names == ["interpolation", "last_value"]


def test_cross_series_fit_windows_are_capped_by_entries_on_wide_data():
    from tsdiff.diffusion.prior_regression import CROSS_SERIES_FIT_ENTRIES
    from tsdiff.diffusion.priors import fit_window_count

    assert CROSS_SERIES_FIT_ENTRIES == 8192 * 48 * 36
    xs = build_prior({"name": "cross_series"}, num_series=36)
    assert fit_window_count(xs, 8000, 48 * 36) == 8192  # AQI-36 at the Imputer's defaults: unchanged
    assert fit_window_count(xs, 100, 48 * 36) == 400  # a short table: each window 4 times
    assert fit_window_count(xs, 5000, 24 * 207) == CROSS_SERIES_FIT_ENTRIES // (24 * 207) == 2849  # METR-LA
    assert fit_window_count(xs, 5000, 48 * 1617) == 256  # a 33 x 49 grid, 48 steps: the floor
    small = build_prior({"name": "cross_series", "fit_windows": 512}, num_series=207)
    assert fit_window_count(small, 5000, 24 * 207) == 512
    auto = build_prior({"name": "auto"}, num_series=1617)  # scores candidates only: not capped by entries
    assert fit_window_count(auto, 5000, 24 * 1617) == 512


# ----------------------------------------------------------------------------- climatology
def _daily(T: int = 24 * 20, N: int = 2, anomaly_decay: float = 0.9, seed: int = 0):
    """Hourly series: a daily cycle plus an AR(1) anomaly with lag-1 coefficient ``anomaly_decay``."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    cycle = np.stack([np.sin(2 * np.pi * t / 24) * (1 + n) for n in range(N)], axis=1)
    anomaly = np.zeros((T, N))
    for i in range(1, T):
        anomaly[i] = anomaly_decay * anomaly[i - 1] + 0.3 * rng.normal(size=N)
    return cycle, anomaly


def _forecast_windows(v, L: int = 48, ctx: int = 24, stride: int = 5):
    starts = torch.arange(0, len(v) - L + 1, stride)
    x = torch.stack([torch.tensor(v[s:s + L]) for s in starts.tolist()])[..., None]  # [B, L, N, 1]
    cond = torch.zeros_like(x, dtype=torch.bool)
    cond[:, :ctx] = True
    return x, cond, starts


def test_climatology_prior_is_the_phase_mean_plus_the_damped_anomaly():
    from tsdiff.diffusion.prior_contract import apply_prior

    cycle, _ = _daily()
    x, cond, starts = _forecast_windows(cycle)
    prior = build_prior({"name": "climatology", "season": 24, "damping": 0.8}, num_series=2)
    prior.fit(lambda: [(x, cond, ~cond, None, starts)])
    # every window holds every phase about equally often: the fitted means are the cycle itself
    torch.testing.assert_close(prior.mean, torch.tensor(cycle[:24], dtype=prior.mean.dtype), atol=1e-6, rtol=0)
    shifted = x + 2.0  # an anomaly of +2 over the whole context
    est = apply_prior(prior, shifted, cond, None, starts)
    assert torch.equal(est[cond], shifted[cond])
    lead = torch.arange(1, 25, dtype=x.dtype).view(1, 24, 1, 1)
    torch.testing.assert_close(est[:, 24:] - x[:, 24:], 2.0 * 0.8 ** lead.expand_as(x[:, 24:]), atol=1e-5, rtol=0)
    # a gap between two conditioning values interpolates the anomaly linearly
    gap = torch.ones_like(cond)
    gap[:, 10:15] = False
    ramp = x.clone()
    ramp[:, 9], ramp[:, 15] = x[:, 9] + 1.0, x[:, 15] + 7.0
    est = apply_prior(prior, ramp, gap, None, starts)
    want = x[:, 10:15] + (1.0 + 6.0 * torch.arange(1, 6, dtype=x.dtype) / 6).view(1, 5, 1, 1)
    torch.testing.assert_close(est[:, 10:15], want, atol=1e-5, rtol=0)


def test_climatology_prior_fits_the_damping_that_forecasts_best_on_training_windows():
    cycle, anomaly = _daily(T=24 * 60, anomaly_decay=0.9)
    x, cond, starts = _forecast_windows(cycle + anomaly)
    prior = build_prior({"name": "climatology", "season": 24}, num_series=2)
    prior.fit(lambda: [(x, cond, ~cond, None, starts)])
    # the anomaly decays by 0.9 a step: its best forecast at lead h is 0.9 ** h times the last one
    assert prior.damping.tolist() == pytest.approx([0.9, 0.9])
    persist = build_prior({"name": "climatology", "season": 24}, num_series=2)
    cycle, anomaly = _daily(T=24 * 60, anomaly_decay=1.0)  # a random walk: the anomaly persists
    x, cond, starts = _forecast_windows(cycle + anomaly)
    persist.fit(lambda: [(x, cond, ~cond, None, starts)])
    assert persist.damping.min() >= 0.97


def test_climatology_prior_reads_anchors_at_their_own_phase():
    """A gap across the window's edge is filled as over the whole series."""
    from tsdiff.diffusion.prior_contract import apply_prior

    cycle, anomaly = _daily(T=24 * 10)
    v = cycle + anomaly
    known = np.ones_like(v, dtype=bool)
    known[100:140] = False
    prior = build_prior({"name": "climatology", "season": 24, "damping": 0.9}, num_series=2)
    prior.mean.copy_(torch.tensor(cycle[:24]))
    vt, kt = torch.tensor(v[:, :, None]), torch.tensor(known[:, :, None])
    whole = apply_prior(prior, torch.where(kt, vt, 0.0)[None], kt[None], None, torch.tensor([0]))[0]
    for s in (96, 110, 130):
        L = 24
        anchors = edge_anchors(vt, kt, [s], L)
        win = apply_prior(prior, torch.where(kt[s:s + L], vt[s:s + L], 0.0)[None], kt[s:s + L][None], anchors,
                          torch.tensor([s]))[0]
        torch.testing.assert_close(win, whole[s:s + L], atol=1e-9, rtol=0)


def test_climatology_prior_without_window_positions_is_a_clear_error():
    from tsdiff.diffusion.prior_contract import apply_prior

    cycle, _ = _daily()
    x, cond, starts = _forecast_windows(cycle)
    prior = build_prior({"name": "climatology", "season": 24}, num_series=2)
    with pytest.raises(ConfigError, match="needs the position of each window in its series"):
        apply_prior(prior, x, cond, None, None)
    with pytest.raises(ConfigError, match="fitted on windows with their positions"):
        prior.fit(lambda: [(x, cond, ~cond, None)])
    auto = build_prior({"name": "auto", "candidates": ["last_value", {"name": "climatology", "season": 24}]},
                       num_series=2)
    assert auto.uses_starts
    auto.fit(lambda: [(x, cond, ~cond, None, starts)])
    assert auto.chosen() == {"last_value": 0, "climatology(season=24)": 2}  # an exact cycle: climatology wins


def _etth1_hours(data_dir, T: int = 24 * 30) -> pd.DataFrame:
    from tsdiff.data.datasets.ett import load_etth1

    series = load_etth1(data_dir)
    values = series.values.reshape(series.shape[0], -1)[:T, -1:]  # OT, the oil temperature
    return pd.DataFrame(values, index=series.time_index[:T], columns=["OT"])


def test_forecaster_climatology_prior_places_windows_by_their_timestamps(data_dir):
    """Real hourly data: the season comes from the frequency, the means from the training part
    only, and at predict each window's phase from its first timestamp."""
    import tsdiff

    frame = _etth1_hours(data_dir)
    fc = tsdiff.Forecaster(prediction_length=24, context_length=48, max_steps=2, n_samples=2, sampling_steps=2,
                           prior="climatology", verbose=False, device="cpu", validation=None,
                           model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8})
    fc.fit(frame.iloc[:-100])
    prior = fc.module_.prior_fn
    assert prior.season == 24 and bool(prior.fitted)
    train = frame["OT"].to_numpy()[:-100]
    scaled = (train - fc.module_.scaler.mean.ravel()[0]) / fc.module_.scaler.std.ravel()[0]
    by_hour = np.array([scaled[h::24].mean() for h in range(24)])  # training windows cover each hour alike
    np.testing.assert_allclose(prior.mean[:, 0].numpy(), by_hour, atol=0.05)
    seen = []
    forward = prior.forward
    prior.forward = lambda *a, starts=None, **k: (seen.append(starts.tolist()), forward(*a, starts=starts, **k))[1]
    for cut in (100, 95, 0):  # the phase follows the data's last timestamp, also beyond the training data
        f = fc.predict(frame.iloc[:len(frame) - cut])
        assert np.isfinite(np.asarray(f.samples)).all()
        assert seen[-1] == [len(frame) - cut - 48]
    # a shifted copy of the same hours (another origin) keeps the phase: the timestamps decide
    later = frame.iloc[24 * 7: len(frame) - 95]
    fc.predict(later)
    assert seen[-1] == [len(frame) - 95 - 48]


def test_climatology_prior_is_refused_where_windows_have_no_common_origin(data_dir):
    import tsdiff

    frame = _etth1_hours(data_dir, 24 * 10)
    tiny = dict(max_steps=1, n_samples=2, sampling_steps=2, verbose=False, device="cpu",
                model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8})
    with pytest.raises(ConfigError, match="Imputer fills tables .* prior 'climatology' is for tsdiff.Forecaster"):
        tsdiff.Imputer(window=24, prior="climatology", **tiny).fit(frame)
    with pytest.raises(ConfigError, match="independent series \\(mode='global'\\) do not share"):
        tsdiff.Forecaster(prediction_length=12, context_length=24, prior="climatology", mode="global",
                          **tiny).fit(frame)
    daily = frame.resample("D").mean()
    with pytest.raises(ConfigError, match="takes its season from the data's frequency.*'season': 7"):
        tsdiff.Forecaster(prediction_length=2, context_length=3, prior="climatology", **tiny).fit(daily)


def test_configs_fit_test_and_predict_with_the_climatology_prior(tmp_path, data_dir):
    """`tsdiff fit --test` and `tsdiff predict` hand every window's position to the prior (the
    exchange rates, business days: a weekly season of 5 steps)."""
    from pathlib import Path

    from tests.test_training import CLI_TINY
    from tsdiff.cli import main
    from tsdiff.training.checkpoint import load_model

    cfg = str(Path(__file__).resolve().parents[1] / "configs/forecasting/csdi_exchange_rate.yaml")
    run = tmp_path / "run"
    args = [*CLI_TINY, f"data.data_dir={data_dir}", "prior={name: climatology, season: 5, fit_windows: 64}",
            f"output.dir={run}",
            f"output.records_dir={tmp_path}/records"]
    assert main(["fit", cfg, *args, "--test"]) == 0
    prior = load_model(run / "model.pt")[0].prior_fn
    assert bool(prior.fitted) and prior.mean.abs().sum() > 0 and ((prior.damping >= 0) & (prior.damping <= 1)).all()
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "-o", str(out)]) == 0
    preds = pd.read_csv(out)
    assert len(preds) == 2 * 30 * 8 and np.isfinite(preds[["mean", "q0.05", "q0.95"]].to_numpy()).all()
