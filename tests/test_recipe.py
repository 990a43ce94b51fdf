"""Training recipe: learning-rate schedules, EMA of the weights, time budgets (tsdiff.training.recipe)."""

import datetime as dt
import math

import lightning as L
import numpy as np
import pytest
import torch

import tsdiff
import tsdiff.api as api
from tsdiff.config import load_config
from tsdiff.errors import ConfigError
from tsdiff.training.recipe import check_optim, ema_callback, lr_factor, parse_duration

CSDI_OPTIM = {"milestones": [0.75, 0.9], "gamma": 0.1}


def test_multistep_schedule_is_csdi_decay():
    f = lr_factor(CSDI_OPTIM, 100)
    assert [f(s) for s in (0, 74, 75, 89, 90, 99)] == [1.0, 1.0, 0.1, 0.1, pytest.approx(0.01), pytest.approx(0.01)]


def test_cosine_schedule_with_warmup():
    f = lr_factor({**CSDI_OPTIM, "schedule": "cosine", "warmup": 0.1}, 100)
    assert [f(s) for s in range(10)] == [pytest.approx((s + 1) / 10) for s in range(10)]
    assert f(10) == 1.0
    assert f(55) == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert f(100) == pytest.approx(0.0, abs=1e-12)
    # warm-up on the multistep schedule too
    g = lr_factor({**CSDI_OPTIM, "warmup": 0.5}, 10)
    assert [g(s) for s in range(5)] == [pytest.approx(v) for v in (0.2, 0.4, 0.6, 0.8, 1.0)]


@pytest.mark.parametrize("bad, words", [({"schedule": "linear"}, "multistep, cosine"), ({"warmup": 1.0}, "[0, 1)"),
                                        ({"warmup": True}, "[0, 1)"), ({"ema": 1.0}, "(0, 1)"),
                                        ({"ema": "yes"}, "(0, 1)")])
def test_bad_optim_options_are_refused(bad, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        check_optim({**CSDI_OPTIM, **bad})


@pytest.mark.parametrize("text, seconds", [("5min", 300), ("90s", 90), ("1.5h", 5400), ("1h30min", 5400),
                                           ("00:00:05:00", 300), ("1:02:03:04", 93784), (" 2 minutes ", 120),
                                           (45, 45), (2.5, 2.5), (dt.timedelta(minutes=3), 180)])
def test_durations(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["soon", "5 parsecs", "5", "min", "-5min", 0, -1, True, float("nan"), [5], "5min x"])
def test_bad_durations_name_the_format(bad):
    with pytest.raises(ConfigError, match="time budget"):
        parse_duration(bad, "max_time")


class _Tiny(L.LightningModule):
    """A linear model with a buffer set when training starts (as a prior's fitted weights are)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)
        self.register_buffer("fitted", torch.tensor(float("nan")))
        self.seen: list[torch.Tensor] = []

    def on_train_start(self):
        self.fitted.fill_(2.5)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((self.lin(x) - y) ** 2).mean()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.seen.append(torch.cat([p.detach().flatten().clone() for p in self.parameters()]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_ema_keeps_the_average_of_the_parameters_and_the_trained_buffers():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    data = torch.utils.data.TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]))
    module = _Tiny()
    trainer = L.Trainer(max_steps=20, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[ema_callback(0.9)], accelerator="cpu")
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8))
    assert len(module.seen) == 20
    avg = module.seen[0]  # the first update copies the weights; then decay min(0.9, (1 + n) / (10 + n))
    for n, w in enumerate(module.seen[1:], start=1):
        d = min(0.9, (1 + n) / (10 + n))
        avg = d * avg + (1 - d) * w
    final = torch.cat([p.detach().flatten() for p in module.parameters()])
    torch.testing.assert_close(final, avg, rtol=1e-6, atol=1e-7)
    assert not torch.equal(final, module.seen[-1])  # not simply the last weights
    assert float(module.fitted) == 2.5  # the buffer set at train start, not the copy's NaN


def test_imputer_ema_and_time_budget(monkeypatch):
    rng = np.random.default_rng(0)
    X = np.cumsum(rng.normal(size=(80, 3)), axis=0)
    X[rng.random(X.shape) < 0.1] = np.nan
    tiny = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
                feature_embedding_dim=4)
    monkeypatch.setitem(api.API_OPTIM, "ema", 0.9)
    imp = tsdiff.Imputer(window=8, max_steps=10**6, max_time="2s", n_samples=2, sampling_steps=2,
                         model_options=tiny, device="cpu").fit(X)
    assert imp.module_.optim["ema"] == 0.9
    assert np.isfinite(imp.transform(X)).all()
    assert imp.module_.residual_scale > 0  # buffers fitted at train start survive the average
    with pytest.raises(ConfigError, match="time budget"):
        tsdiff.Imputer(max_time="soon").fit(X)
    with pytest.raises(ConfigError, match="time budget"):
        tsdiff.Forecaster(max_time=-3).fit(X)


def test_config_takes_recipe_options_and_durations():
    cfg = load_config(None, ["trainer.max_time=5min", "optim.schedule=cosine", "optim.warmup=0.05", "optim.ema=0.995"])
    assert cfg["optim"]["ema"] == 0.995 and cfg["trainer"]["max_time"] == "5min"
    with pytest.raises(ConfigError, match="trainer.max_time"):
        load_config(None, ["trainer.max_time=soon"])
    with pytest.raises(ConfigError, match="optim.schedule"):
        load_config(None, ["optim.schedule=step"])
