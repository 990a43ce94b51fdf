"""Training recipe: learning-rate schedules, EMA of the weights, time budgets (tsdiff.training.recipe)."""

import datetime as dt
import math
import re

import lightning as L
import numpy as np
import pytest
import torch

import tsdiff
import tsdiff.api as api
from tsdiff.config import load_config
from tsdiff.errors import ConfigError, DataError
from tsdiff.training.recipe import (best_weights_callback, check_optim, ema_callback, lr_factor, parse_duration,
                                    validation_interval, validation_split)

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


# --------------------------------------------------------------------------- held-out validation
def test_best_weights_callback_keeps_the_lowest_validation_loss():
    from types import SimpleNamespace

    net = torch.nn.Linear(2, 1)
    net.register_buffer("stat", torch.tensor(0.0))
    cb = best_weights_callback()
    seen = {}
    for step, loss in enumerate([0.9, 0.5, 0.7, float("nan"), 0.6]):
        with torch.no_grad():
            net.weight.fill_(float(step))
            net.stat.fill_(10.0 + step)
        cb.on_validation_epoch_end(SimpleNamespace(callback_metrics={"val_loss": torch.tensor(loss)},
                                                   global_step=10 * step), net)
        seen[step] = net.weight.clone()
    assert (cb.best, cb.step) == (0.5, 10)
    cb.restore(net)
    assert torch.equal(net.weight, seen[1]) and float(net.stat) == 11.0  # parameters and buffers
    empty = best_weights_callback()
    empty.restore(net)  # nothing seen: nothing changes
    assert torch.equal(net.weight, seen[1])


def test_validation_split_and_interval():
    assert validation_split(100, 0.1, 8) == 90
    assert validation_split(100, 0.05, 8) == 92  # at least one window held out
    with pytest.raises(DataError, match="validation=0.5 needs at least 48 time steps .* the data have 60"):
        validation_split(60, 0.5, 48)
    assert [validation_interval(n) for n in (5, 300, 500, 10**6)] == [1, 15, 25, 50]


@pytest.mark.parametrize("kwargs, words", [
    ({"validation": 0.0}, "in (0, 0.5]"), ({"validation": 0.7}, "in (0, 0.5]"), ({"validation": True}, "in (0, 0.5]"),
    ({"validation": "0.1"}, "in (0, 0.5]"), ({"early_stopping": 3}, "set validation too"),
    ({"validation": 0.1, "early_stopping": 0}, "an integer >= 1"),
    ({"validation": 0.1, "early_stopping": 2.5}, "an integer >= 1"),
])
def test_bad_validation_settings_are_refused_before_training(kwargs, words):
    X = np.arange(60.0).reshape(30, 2)
    for cls in (tsdiff.Imputer, tsdiff.Forecaster):
        with pytest.raises(ConfigError, match=re.escape(words)):
            cls(**kwargs).fit(X)


def test_imputer_and_forecaster_keep_the_best_held_out_weights(data_dir):
    import pandas as pd

    X = pd.read_csv(data_dir / "aqi36" / "pm25_missing.txt", index_col=0, parse_dates=True).iloc[:600, :6]
    tiny = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
                feature_embedding_dim=4)
    imp = tsdiff.Imputer(window=24, max_steps=40, validation=0.2, n_samples=2, sampling_steps=2,
                         model_options=tiny, device="cpu").fit(X)
    assert imp.training_["n_steps"] == 40 and imp.training_["best_step"] in range(2, 41, 2)
    assert math.isfinite(imp.training_["best_val_loss"])
    out = imp.transform(X)
    observed = X.notna().to_numpy()
    assert np.array_equal(out[observed], X.to_numpy()[observed]) and np.isfinite(out).all()
    # a learning rate too small to move float32 weights: the loss never improves after the first
    # check, so a patience of 1 stops training at the second check (every 10 steps)
    stalled = tsdiff.Imputer(window=24, max_steps=200, lr=1e-12, validation=0.2, early_stopping=1, n_samples=2,
                             sampling_steps=2, model_options=tiny, device="cpu").fit(X)
    assert stalled.training_["n_steps"] == 20 and stalled.training_["best_step"] == 10
    assert tsdiff.Imputer(max_steps=2, model_options=tiny, device="cpu").fit(X).training_ == {
        "n_steps": 2, "best_step": None, "best_val_loss": None}
    f = tsdiff.Forecaster(prediction_length=12, max_steps=20, validation=0.2, n_samples=2, sampling_steps=2,
                          model_options=tiny, device="cpu", verbose=False).fit(X)
    assert f.training_["best_step"] is not None
    assert np.isfinite(f.predict(X).samples_full).all()
    with pytest.raises(DataError, match="validation=0.5 leaves no whole training window"):
        tsdiff.Forecaster(prediction_length=200, max_steps=2, validation=0.5, model_options=tiny,
                          device="cpu").fit(X)


# --------------------------------------------------------------------------- trainer_kwargs
def test_trainer_kwargs_reach_lightning_and_stay_out_of_model_files(data_dir, tmp_path):
    import pandas as pd
    from lightning.pytorch.callbacks import Callback, EarlyStopping
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from sklearn.base import clone

    class Count(Callback):
        def __init__(self):
            self.batches = 0

        def on_train_batch_end(self, *args):
            self.batches += 1

    X = pd.read_csv(data_dir / "aqi36" / "pm25_missing.txt", index_col=0, parse_dates=True).iloc[:600, :6]
    tiny = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
                feature_embedding_dim=4)
    count = Count()
    imp = tsdiff.Imputer(window=24, max_steps=6, n_samples=2, sampling_steps=2, model_options=tiny, device="cpu",
                         trainer_kwargs={"callbacks": [count], "accumulate_grad_batches": 2,
                                         "logger": CSVLogger(tmp_path, name="imp"), "log_every_n_steps": 1})
    imp.fit(X)
    assert imp.training_["n_steps"] == 6 and count.batches == 12  # two batches per optimiser step
    metrics = pd.read_csv(next((tmp_path / "imp").rglob("metrics.csv")))
    assert "train_loss_step" in metrics.columns and metrics["train_loss_step"].notna().sum() >= 6
    imp.save(tmp_path / "imp.pt")  # the callbacks and the logger are not written into the file
    assert tsdiff.Imputer.load(tmp_path / "imp.pt").trainer_kwargs is None
    assert clone(imp).trainer_kwargs["accumulate_grad_batches"] == 2
    # a user's EarlyStopping on the held-out loss, and TensorBoard logging
    stop = EarlyStopping(monitor="val_loss", patience=1)
    f = tsdiff.Forecaster(prediction_length=12, max_steps=200, lr=1e-12, validation=0.2, n_samples=2,
                          sampling_steps=2, model_options=tiny, device="cpu", verbose=False,
                          trainer_kwargs={"callbacks": [stop], "logger": TensorBoardLogger(tmp_path, name="tb")})
    f.fit(X)
    assert f.training_["n_steps"] == 20 and stop.stopped_epoch is not None
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))
    f.save(tmp_path / "f.pt")
    assert tsdiff.Forecaster.load(tmp_path / "f.pt").trainer_kwargs is None


@pytest.mark.parametrize("kwargs, words", [
    ({"trainer_kwargs": {"callback": []}}, "trainer_kwargs['callback'] is not a lightning.Trainer argument "
                                           "(did you mean 'callbacks'?)"),
    ({"trainer_kwargs": {"devices": 2}}, "trainer_kwargs['devices']: set the estimator's device= instead"),
    ({"trainer_kwargs": {"max_epochs": 2}}, "set the estimator's max_steps= instead"),
    ({"trainer_kwargs": {"callbacks": ["stop"]}}, "must hold lightning Callback objects; got 'stop'"),
    ({"trainer_kwargs": [("logger", False)]}, "trainer_kwargs must be a dict of lightning.Trainer arguments"),
    ({"trainer_kwargs": {"callbacks": [L.pytorch.callbacks.EarlyStopping("val_loss")]}},
     "EarlyStopping watches val_loss, which exists only with held-out data: set validation=0.1"),
])
def test_bad_trainer_kwargs_are_refused_before_training(kwargs, words):
    X = np.arange(60.0).reshape(30, 2)
    for cls in (tsdiff.Imputer, tsdiff.Forecaster):
        with pytest.raises(ConfigError, match=re.escape(words)):
            cls(**kwargs).fit(X)


def test_config_callbacks_logger_and_gradient_accumulation(tmp_path, data_dir):
    import json
    import os

    from tests.test_training import CLI_TINY
    from tsdiff.cli import main

    cfg = os.path.join(os.path.dirname(__file__), "..", "configs/imputation/csdi_aqi36.yaml")
    (tmp_path / "extra.yaml").write_text(f"""
trainer:
  accumulate_grad_batches: 2
  callbacks:
    - class_path: lightning.pytorch.callbacks.EarlyStopping
      init_args: {{monitor: val_loss, patience: 5}}
    - class_path: lightning.pytorch.callbacks.LearningRateMonitor
  logger:
    class_path: lightning.pytorch.loggers.TensorBoardLogger
    init_args: {{save_dir: {tmp_path}/tb}}
""")
    loaded = load_config(tmp_path / "extra.yaml")
    assert loaded["trainer"]["accumulate_grad_batches"] == 2 and len(loaded["trainer"]["callbacks"]) == 2
    out = [f"output.dir={tmp_path}/run", f"data.data_dir={data_dir}", "trainer.max_steps=2",
           "trainer.limit_train_batches=4"]
    extra = [f"trainer.{k}={json.dumps(v)}" for k, v in loaded["trainer"].items()
             if k in ("accumulate_grad_batches", "callbacks", "logger")]
    assert main(["fit", cfg, *CLI_TINY, *out, *extra]) == 0
    fit_info = json.loads((tmp_path / "run" / "fit.json").read_text())
    assert fit_info["global_steps"] == 2  # 4 batches, one optimiser step per two
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))


@pytest.mark.parametrize("override, words", [
    ("trainer.callbacks=[{class_path: lightning.pytorch.callbacks.EarlyStop}]",
     "trainer.callbacks[0]: class path 'lightning.pytorch.callbacks.EarlyStop' cannot be imported"),
    ("trainer.callbacks=[{class_path: collections.OrderedDict}]",
     "'collections.OrderedDict' is not a lightning.pytorch.callbacks.callback.Callback"),
    ("trainer.callbacks=[{class_path: lightning.pytorch.callbacks.EarlyStopping, init_args: {watch: x}}]",
     "init_args {'watch': 'x'} do not fit lightning.pytorch.callbacks.EarlyStopping"),
    ("trainer.callbacks={class_path: x.Y}", "trainer.callbacks must be a list"),
    ("trainer.callbacks=[EarlyStopping]", "trainer.callbacks[0] must be a mapping with class_path"),
    ("trainer.logger={class_path: lightning.pytorch.callbacks.EarlyStopping}", "is not a lightning.pytorch.loggers"),
    ("trainer.accumulate_grad_batches=0", "accumulate_grad_batches must be an integer >= 1"),
])
def test_bad_trainer_entries_in_configs_are_clear_errors(override, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(None, [override])


def test_schedule_under_a_time_budget_follows_whichever_of_steps_or_time_is_further():
    spent = [0.0]
    f = lr_factor(CSDI_OPTIM, 100, lambda: spent[0])
    assert f(10) == 1.0
    spent[0] = 0.8                       # 80% of max_time gone at step 10: past the 0.75 milestone
    assert f(10) == pytest.approx(0.1)
    spent[0] = 0.95
    assert f(10) == pytest.approx(0.01)
    spent[0] = 0.0                       # steps alone still count
    assert f(90) == pytest.approx(0.01)
    cos = lr_factor({**CSDI_OPTIM, "schedule": "cosine", "warmup": 0.1}, 100, lambda: spent[0])
    spent[0] = 0.55
    assert cos(20) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    spent[0] = 2.0                       # clipped: the time budget is never more than all spent
    assert cos(20) == pytest.approx(0.0, abs=1e-12)


def test_time_budget_spent_reads_the_trainers_timer():
    import lightning

    from tsdiff.training.recipe import time_budget_spent

    assert time_budget_spent(lightning.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                                               enable_progress_bar=False)) is None
    trainer = lightning.Trainer(max_time="00:00:01:40", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False)
    spent = time_budget_spent(trainer)
    assert spent is not None and spent() == 0.0  # training has not started
