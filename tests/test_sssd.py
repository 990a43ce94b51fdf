"""SSSD-S4 (tsdiff.models.sssd) and CSDI-S4 (csdi ``temporal: s4``): forecasts that cannot see
the future, the flattening limit, priors, the API, configs and a tiny AQI-36 training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tsdiff
from tsdiff.config import load_config
from tsdiff.errors import ConfigError
from tsdiff.models import Condition, build_model
from tsdiff.models.sssd import SSSD_CPU_PRESET
from tests.test_properties import make_module

ROOT = Path(__file__).resolve().parents[1]
TINY = {"layers": 2, "channels": 8, "state_size": 4, "diffusion_embedding_dim": 8, "diffusion_hidden_dim": 16}


def _forecast_setup(model: dict, L=12, context=8, N=3, C=1, seed=0):
    torch.manual_seed(seed)
    net = build_model(model, N, C).eval()
    for p in net.parameters():  # zero-initialised output layers would hide every signal
        if p.dim() > 0 and torch.count_nonzero(p) == 0:
            torch.nn.init.normal_(p, std=0.3)
    g = torch.Generator().manual_seed(seed + 1)
    truth = torch.randn(2, L, N, C, generator=g)
    cond_mask = (torch.arange(L) < context)[None, :, None, None].expand(2, L, N, C).clone()
    return net, truth, cond_mask, g


@pytest.mark.parametrize("model", [{"name": "sssd", **TINY},
                                   {"name": "csdi", "layers": 1, "channels": 8, "heads": 2, "ff_dim": 8,
                                    "diffusion_embedding_dim": 8, "time_embedding_dim": 8, "feature_embedding_dim": 4,
                                    "temporal": "s4", "state_size": 4}],
                         ids=["sssd", "csdi-s4"])
def test_bidirectional_forecasts_never_see_the_future(model):
    """Bidirectional S4 reads the whole window; the future is hidden by the mask alone. With the same
    noisy input, the true future (in the conditioning values, and in the noisy input's context part)
    cannot change the output, while the context and the noisy future do."""
    net, truth, cond_mask, g = _forecast_setup(model)
    assert any(getattr(m, "bidirectional", False) for m in net.modules())
    x_noisy = torch.randn(truth.shape, generator=g)
    t = torch.tensor([4.0, 9.0])
    with torch.no_grad():
        out = net(x_noisy, t, Condition(truth, cond_mask))
        other_future = torch.where(cond_mask, truth, truth + 10 * torch.randn(truth.shape, generator=g))
        assert torch.equal(net(x_noisy, t, Condition(other_future, cond_mask)), out)
        other_noise_on_context = torch.where(cond_mask, torch.randn(truth.shape, generator=g), x_noisy)
        assert torch.equal(net(other_noise_on_context, t, Condition(truth, cond_mask)), out)
        # the network is not constant: the context and the noisy future both matter
        assert not torch.allclose(net(x_noisy, t, Condition(truth + cond_mask.float(), cond_mask)), out)
        noisy_future = torch.where(cond_mask, x_noisy, x_noisy + 1.0)
        assert not torch.allclose(net(noisy_future, t, Condition(truth, cond_mask))[:, :8], out[:, :8])


def test_forecast_samples_do_not_depend_on_the_true_future():
    module = make_module("sssd", 3, 1, 12).eval()
    for p in module.net.parameters():
        if p.dim() > 0 and torch.count_nonzero(p) == 0:
            torch.nn.init.normal_(p, std=0.3)
    truth = torch.randn(2, 12, 3, 1)
    cond_mask = (torch.arange(12) < 8)[None, :, None, None].expand(2, 12, 3, 1).clone()
    draws = []
    for future in (truth, torch.where(cond_mask, truth, truth * 5 - 3)):
        s, _ = module.sample(future, cond_mask, None, n_samples=2, sampler="ddim", steps=3,
                             generator=torch.Generator().manual_seed(4))
        draws.append(s)
    assert torch.equal(draws[0], draws[1])
    assert draws[0][:, :, 8:].std() > 0


def test_sssd_options_and_the_flattening_limit():
    net = build_model({"name": "sssd", **TINY}, 4, 2)
    assert net.config()["skip_channels"] == 8 and net.num_features == 8
    twin = build_model({"name": "sssd", **{k: v for k, v in net.config().items()
                                           if k not in ("num_nodes", "num_channels")}}, 4, 2)
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in net.parameters())
    with pytest.raises(ConfigError, match=r"flattens nodes x channels into 4100 features \(2050 x 2\), more than "
                                          r"max_features = 4096.*graph_unet"):
        build_model({"name": "sssd", **TINY}, 2050, 2)
    build_model({"name": "sssd", **TINY, "layers": 1, "max_features": 5000}, 2050, 2)
    for bad, match in [({"state_size": 0}, "state_size must be a positive integer"),
                       ({"state_size": 3}, "state_size must be even"),
                       ({"channels": 0}, "channels must be an integer >= 1"),
                       ({"channels": 8.0}, "channels must be an integer >= 1"),
                       ({"layers": "2"}, "layers must be an integer >= 1"),
                       ({"discretization": "euler"}, "discretization must be one of")]:
        with pytest.raises(ConfigError, match=match):
            build_model({"name": "sssd", **TINY, **bad}, 3, 1)


def test_sssd_windows_longer_than_l_max_are_refused():
    from tsdiff.errors import DataError

    net = build_model({"name": "sssd", **TINY, "l_max": 8}, 2, 1)
    x = torch.randn(1, 9, 2, 1)
    with pytest.raises(DataError, match="l_max = 8 got a window of 9 steps"):
        net(x, torch.ones(1), Condition(x, torch.zeros_like(x, dtype=torch.bool)))


def test_sssd_with_an_informative_prior_samples_and_keeps_observed_values():
    module = make_module("sssd", 3, 1, 12, prior={"name": "interpolation"})
    x = torch.randn(2, 12, 3, 1)
    cm = torch.rand(2, 12, 3, 1, generator=torch.Generator().manual_seed(0)) > 0.4
    s, nfe = module.sample(x, cm, None, n_samples=2, sampler="dpm_solver_pp", steps=3,
                           generator=torch.Generator().manual_seed(1))
    assert torch.equal(s[:, cm], x[cm].expand(2, -1)) and torch.isfinite(s).all()


def test_csdi_s4_option():
    net = build_model({"name": "csdi", "layers": 1, "channels": 8, "heads": 2, "temporal": "s4", "state_size": 4}, 3, 1)
    assert net.config()["temporal"] == "s4" and net.config()["state_size"] == 4
    assert "temporal" not in build_model({"name": "csdi", "layers": 1, "channels": 8, "heads": 2}, 3, 1).config()
    x = torch.randn(2, 5, 3, 1)
    out = net(x, torch.ones(2), Condition(x, torch.rand(2, 5, 3, 1) > 0.5))
    assert out.shape == x.shape
    with pytest.raises(ConfigError, match="temporal must be one of transformer, s4"):
        build_model({"name": "csdi", "temporal": "lstm"}, 3, 1)


def test_imputer_and_forecaster_run_sssd():
    rng = np.random.default_rng(0)
    t = np.arange(120)
    X = np.stack([np.sin(t / 5), np.cos(t / 7), np.sin(t / 3)], axis=1) + 0.1 * rng.normal(size=(120, 3))
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.2] = np.nan
    # no model_options: the API's preset for sssd (SMALL_MODEL_OPTIONS["sssd"]), v prediction included
    imp = tsdiff.Imputer(model="sssd", window=24, max_steps=3, n_samples=2, sampling_steps=2).fit(Xm)
    assert imp.module_.net.prediction == "v"
    out = imp.transform(Xm)
    assert out.shape == X.shape and np.isfinite(out).all()
    assert np.array_equal(out[~np.isnan(Xm)], Xm[~np.isnan(Xm)])
    df = pd.DataFrame(X, index=pd.date_range("2024-01-01", periods=120, freq="h"), columns=list("abc"))
    fc = tsdiff.Forecaster(model="sssd", prediction_length=6, context_length=12, model_options=TINY, max_steps=3,
                           n_samples=2, sampler="ddim", sampling_steps=2, verbose=False).fit(df).predict()
    assert fc.samples.shape == (2, 6, 3) and np.isfinite(fc.samples).all()


def test_the_cpu_preset_is_small_and_predicts_v():
    net = build_model({"name": "sssd", **SSSD_CPU_PRESET}, 36, 1)
    assert sum(p.numel() for p in net.parameters()) < 200_000 and net.prediction == "v"


def test_sssd_configs_load_with_the_paper_settings():
    paper = load_config(ROOT / "configs/imputation/sssd_aqi36.yaml")
    assert {k: paper["model"][k] for k in ("name", "layers", "channels", "state_size")} == {
        "name": "sssd", "layers": 36, "channels": 256, "state_size": 64}
    assert paper["process"]["num_steps"] == 200 and paper["process"]["schedule"] == "linear"
    assert (paper["process"]["beta_start"], paper["process"]["beta_end"]) == (1e-4, 0.02)
    for name in ("imputation/sssd_aqi36_cpu.yaml", "forecasting/sssd_etth1.yaml"):
        assert load_config(ROOT / "configs" / name)["model"]["name"] == "sssd"


def test_tiny_sssd_training_on_aqi36(aqi36):
    from tests.test_training import probe_loss_before_after

    torch.manual_seed(0)
    from tsdiff.training import DiffusionModule

    eps_net = {k: v for k, v in SSSD_CPU_PRESET.items() if k != "prediction"}  # a loss of E[eps^2] ~ 1 untrained
    module = DiffusionModule(model={"name": "sssd", **eps_net, "layers": 2},
                             process={"name": "ddpm", "num_steps": 50, "schedule": "linear", "beta_start": 1e-4,
                                      "beta_end": 0.2},
                             optim={"lr": 1e-3, "weight_decay": 0.0, "milestones": [0.75, 0.9], "gamma": 0.1},
                             train_mask="mix", signature=aqi36.signature, scaler=aqi36.scaler.state_dict(),
                             config={"seed": 0})
    before, after = probe_loss_before_after(module, aqi36.dataset("train"), 80, 3e-3)
    assert 0.8 < before < 1.2  # zero-initialised output layer: E[eps^2] ~ 1
    assert after < 0.75 * before, (before, after)
    test = aqi36.dataset("test")
    item = test[0]
    x, cm = item["x"][None], item["cond_mask"][None].bool()
    s, _ = module.sample(x, cm, None, n_samples=2, sampler="ddim", steps=3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, *x.shape) and torch.isfinite(s).all()
    assert torch.equal(s[:, cm], x[cm].expand(2, -1))
