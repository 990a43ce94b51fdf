"""One engine: the Python API (Forecaster, Imputer), configs (`tsdiff fit` / `tsdiff test`) and the
benchmark grid (`tsdiff bench run`) build and train through :mod:`tsdiff.training.engine`, sample
through :func:`tsdiff.training.prediction.predict_batches` (``lightning.Trainer.predict``) and score
through :func:`tsdiff.training.evaluate.score_windows`, and nothing else trains, samples or scores."""

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest

from tests.test_training import CLI_TINY
from tsdiff.bench.runner import run_suite
from tsdiff.bench.suite import parse_suite
from tsdiff.cli import main
from tsdiff.training import engine, evaluate, prediction

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
            feature_embedding_dim=4)


@pytest.fixture
def calls(monkeypatch):
    """The names of the engine's functions, ``predict_batches``, ``score_windows`` and
    ``lightning.Trainer.fit`` / ``predict`` in the order they are called (each still runs)."""
    seen = []

    def spy(owner, name, label):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            seen.append(label)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    for name in ("build_module", "make_trainer", "fit"):
        spy(engine, name, name)
    spy(evaluate, "score_windows", "score_windows")
    spy(prediction, "predict_batches", "predict_batches")
    spy(L.Trainer, "fit", "Trainer.fit")  # every training, whoever starts it
    spy(L.Trainer, "predict", "Trainer.predict")  # every sampling, whoever starts it
    return seen


TRAINED = ["build_module", "make_trainer", "fit", "Trainer.fit"]
SAMPLED = ["predict_batches", "Trainer.predict"]


def _frame() -> pd.DataFrame:
    t = np.arange(60)
    return pd.DataFrame({"a": np.sin(t / 4), "b": np.cos(t / 6)}, index=pd.date_range("2024-01-01", periods=60,
                                                                                      freq="h"))


def test_the_api_builds_trains_and_samples_through_the_engine(calls):
    import tsdiff

    fc = tsdiff.Forecaster(prediction_length=3, context_length=6, max_steps=2, model_options=TINY, n_samples=2,
                           sampler="ddim", sampling_steps=2, verbose=False, device="cpu").fit(_frame())
    assert calls == TRAINED
    calls.clear()
    fc.predict()
    assert calls == SAMPLED
    calls.clear()
    X = _frame().to_numpy()
    X[::7, 0] = np.nan
    imp = tsdiff.Imputer(window=8, max_steps=2, n_samples=2, sampling_steps=2, model_options=TINY, device="cpu").fit(X)
    assert calls == TRAINED
    calls.clear()
    imp.transform(X)
    assert calls == SAMPLED


def test_configs_build_train_and_score_through_the_engine(calls, tmp_path, data_dir):
    cfg = str(ROOT / "configs/imputation/csdi_aqi36.yaml")
    out = [f"output.dir={tmp_path}/run", f"output.records_dir={tmp_path}/records", f"data.data_dir={data_dir}"]
    assert main(["fit", cfg, *CLI_TINY, *out, "--test"]) == 0
    assert calls == [*TRAINED, "score_windows", *SAMPLED]


def test_the_bench_trains_models_and_scores_models_and_baselines_through_the_engine(calls, tmp_path, data_dir):
    raw = {"name": "one_engine", "seeds": [0], "metrics": ["crps"],
           "tasks": {"aqi": {"dataset": "aqi36", "limit_windows": 2}},
           "entries": [{"baseline": "mean", "tasks": ["aqi"]},
                       {"name": "csdi_tiny", "model": str(ROOT / "configs/imputation/csdi_aqi36.yaml"),
                        "tasks": ["aqi"], "n_samples": 2, "sampler": "ddim", "steps": 2,
                        "overrides": [o for o in CLI_TINY if not o.startswith("eval.")]}]}
    summary = run_suite(parse_suite(raw), tmp_path / "records", data_dir=data_dir, runs_dir=tmp_path / "runs",
                        log=lambda _: None)
    assert summary["failed"] == [] and len(summary["done"]) == 2
    assert calls == ["score_windows", *TRAINED, "score_windows", *SAMPLED]  # the baseline, then the model
