"""What the network predicts (eps / x0 / v / velocity) wired into training and sampling, and the
flow-matching process end to end on real AQI-36 windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from tests.test_training import probe_loss_before_after
from tsdiff.config import load_config
from tsdiff.diffusion import masked_eps_loss
from tsdiff.errors import ConfigError, UnknownNameError
from tsdiff.models import build_model
from tsdiff.training import DiffusionModule
from tsdiff.training.checkpoint import load_model, save_model

SMALL_MODEL = {"name": "csdi", "layers": 1, "channels": 16, "heads": 2, "ff_dim": 16,
               "diffusion_embedding_dim": 32, "time_embedding_dim": 16, "feature_embedding_dim": 8}
OPTIM = {"lr": 1e-3, "weight_decay": 1e-6, "milestones": [0.75, 0.9], "gamma": 0.1}
FLOW = {"name": "flow", "num_steps": 8}
DDPM = {"name": "ddpm", "num_steps": 50, "schedule": "quadratic", "beta_start": 1e-4, "beta_end": 0.5}


def _module(protocol, process, prediction=None, loss=None, seed=0):
    torch.manual_seed(seed)
    model = dict(SMALL_MODEL, **({"prediction": prediction} if prediction else {}))
    return DiffusionModule(model=model, process=process, optim=OPTIM, train_mask="mix", signature=protocol.signature,
                           scaler=protocol.scaler.state_dict(), config={"seed": seed}, loss=loss)


def _batch(dataset, idx):
    return next(iter(DataLoader(Subset(dataset, idx), batch_size=len(idx))))


def test_eps_networks_keep_the_masked_eps_loss_exactly(aqi36):
    module = _module(aqi36, DDPM)
    assert module.net.prediction == "eps" and module.loss_fn is None
    batch = _batch(aqi36.dataset("train"), list(range(0, 400, 40)))
    got = module.diffusion_loss(batch, generator=torch.Generator().manual_seed(1))
    # the same draws by hand: mask, time, noise
    g = torch.Generator().manual_seed(1)
    cond_mask = module.mask_fn(batch["observed_mask"], g)
    t = module.process.sample_train_time(batch["x"].shape[0], generator=g)
    noise = torch.randn(batch["x"].shape, generator=g)
    cond = module.condition(batch["x"], cond_mask, batch.get("timepoints"))
    x_t = module.process.sample_noisy(batch["x"], t, noise)
    want = masked_eps_loss(module.net(x_t, module.process.network_time(t), cond), noise,
                           batch["observed_mask"] & ~cond_mask)
    assert torch.equal(got, want)


@pytest.mark.parametrize("process, prediction", [(FLOW, "velocity"), (DDPM, "x0"), (DDPM, "v")])
def test_other_predictions_train_on_their_own_loss_and_sample_through_eps(aqi36, process, prediction):
    module = _module(aqi36, process, prediction)
    assert module.net.prediction == prediction and module.loss_fn is not None
    before, after = probe_loss_before_after(module, aqi36.dataset("train"), 30, 2e-3)
    assert np.isfinite(before) and after < 0.8 * before, (before, after)
    # sampling converts the prediction to eps: observed entries exact, targets finite
    test = _batch(aqi36.dataset("test"), [3, 40])
    samples, nfe = module.sample(test["x"], test["cond_mask"], test["timepoints"], n_samples=2, sampler="ddim",
                                 steps=4, generator=torch.Generator().manual_seed(0))
    assert nfe == 4 and torch.isfinite(samples).all()
    assert torch.equal(samples[:, test["cond_mask"]], test["x"][test["cond_mask"]].expand(2, -1))


def test_eps_fn_converts_the_networks_prediction(aqi36):
    module = _module(aqi36, FLOW, "x0")
    test = _batch(aqi36.dataset("test"), [0, 1])
    x0_guess = torch.randn(test["x"].shape, generator=torch.Generator().manual_seed(0))
    module.net.forward = lambda x_t, noise_level, cond: x0_guess  # a network predicting a fixed x0
    cond = module.condition(test["x"], test["cond_mask"], test["timepoints"])
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    x_t = torch.randn(test["x"].shape, generator=torch.Generator().manual_seed(1))
    a, s = (c.float()[:, None, None, None] for c in module.process.marginal_coefficients(t))
    torch.testing.assert_close(module.eps_fn(cond)(x_t, t), (x_t - a * x0_guess) / s)


def test_model_files_keep_the_prediction_and_the_loss(aqi36, tmp_path):
    module = _module(aqi36, FLOW, "velocity", loss={"weighting": "min_snr", "gamma": 3.0})
    loaded, _ = load_model(save_model(module, tmp_path / "m.pt"))
    assert loaded.net.prediction == "velocity" and loaded.loss_fn.keywords == {
        "parametrization": "velocity", "weighting": "min_snr", "gamma": 3.0}
    batch = _batch(aqi36.dataset("test"), [5])
    kw = dict(n_samples=2, sampler="heun", steps=2, sampler_options={"variable": "time"})
    a, _ = module.sample(batch["x"], batch["cond_mask"], batch["timepoints"], generator=torch.Generator().manual_seed(7),
                         **kw)
    b, _ = loaded.sample(batch["x"], batch["cond_mask"], batch["timepoints"], generator=torch.Generator().manual_seed(7),
                         **kw)
    assert torch.equal(a, b)


def test_bad_predictions_and_losses_are_clear_errors():
    with pytest.raises(UnknownNameError, match="unknown prediction 'noise'; valid prediction names are: eps, score"):
        build_model({"name": "csdi", "prediction": "noise"}, 2, 1)
    with pytest.raises(ConfigError, match="'timegrad' generates one time step after another and predicts 'eps' only"):
        build_model({"name": "timegrad", "prediction": "v"}, 2, 1)
    with pytest.raises(UnknownNameError, match="unknown loss weighting 'snr'; valid loss weighting names are"):
        load_config(overrides=["loss.weighting=snr"])
    with pytest.raises(UnknownNameError, match="unknown prediction 'y'"):
        load_config(overrides=["model.prediction=y"])
    with pytest.raises(ConfigError, match="unknown config key 'loss.weight'"):
        load_config(overrides=["loss.weight=x0"])
    assert load_config(overrides=["loss.weighting=min_snr", "model.prediction=v"])["loss"] == {
        "weighting": "min_snr", "gamma": 5.0}


def test_imputer_with_flow_matching_and_two_heun_steps(data_dir):
    import tsdiff

    ground = pd.read_csv(data_dir / "aqi36" / "pm25_missing.txt", index_col=0, parse_dates=True).iloc[:480, :8]
    imp = tsdiff.Imputer(window=24, max_steps=20, n_samples=4, process={"name": "flow"}, sampler="heun",
                         sampling_steps=2, sampler_options={"variable": "time"}, device="cpu",
                         model_options={"layers": 1, "channels": 8, "heads": 1, "ff_dim": 8,
                                        "prediction": "velocity"})
    out = imp.fit(ground).transform(ground)
    values = ground.to_numpy()
    observed = ~np.isnan(values)
    assert np.array_equal(out[observed], values[observed])  # bit for bit
    assert np.isfinite(out).all()
