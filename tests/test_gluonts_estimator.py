"""tsdiff.gluonts: the GluonTS Estimator / Predictor round trip on the real exchange rates (tiny training).

GluonTS' ``Evaluator`` figures on ``make_evaluation_predictions`` equal tsdiff's own metrics on the
same samples to 1e-9: ``mean_wQuantileLoss`` (quantile_crps), ``wQuantileLoss[q]`` (quantile_loss),
``MSE`` (rmse of the mean, squared), ``abs_error`` (mae of the median; odd sample count, where
GluonTS' nearest-rank median is the textbook one) and ``Coverage[0.95] - Coverage[0.05]``
(interval_coverage at 0.9).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdiff.errors import ConfigError, DataError

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

H, T_TRAIN, S = 6, 200, 9
TINY = dict(context_length=12, max_steps=3, n_samples=S, sampling_steps=2, verbose=False, random_state=7,
            model_options=dict(layers=1, channels=8, heads=1, ff_dim=8))


def _dataset(values: np.ndarray, start: pd.Period, ids) -> list[dict]:
    """A GluonTS dataset (entries with a ``pd.Period`` start) keeping float64 targets: ``ListDataset``
    casts them to float32, and GluonTS then sums ``|y|`` in float32 (figures agree to ~1e-8 only)."""
    return [{"start": start, "target": values[:, n].astype(np.float64), "item_id": i} for n, i in enumerate(ids)]


@pytest.fixture(scope="module")
def fx(data_dir):
    """The first 206 business days of the 8 exchange rates: train on 200, evaluate the last 6."""
    from tsdiff.data.datasets.lstnet import load_exchange_rate

    series = load_exchange_rate(data_dir)
    values = series.values[: T_TRAIN + H, :, 0]
    start = pd.Period(series.time_index[0], freq="B")
    ids = [f"fx{n}" for n in range(values.shape[1])]
    return {"values": values, "start": start, "ids": ids, "train": _dataset(values[:T_TRAIN], start, ids),
            "test": _dataset(values, start, ids)}


@pytest.fixture(scope="module")
def predictor(fx):
    from tsdiff.gluonts import DiffusionEstimator

    return DiffusionEstimator(prediction_length=H, **TINY).train(fx["train"])


def test_evaluator_figures_equal_tsdiff_metrics_on_the_same_samples(fx, predictor):
    from gluonts.evaluation import Evaluator, make_evaluation_predictions

    from tsdiff.backtest import backtest
    from tsdiff.metrics import DEFAULT_QUANTILES, interval_coverage, mae, quantile_crps, quantile_loss, rmse

    forecast_it, ts_it = make_evaluation_predictions(fx["test"], predictor, num_samples=S)
    forecasts, truths = list(forecast_it), list(ts_it)
    assert [f.item_id for f in forecasts] == fx["ids"]
    assert all(f.start_date == fx["start"] + T_TRAIN for f in forecasts)
    assert forecasts[0].samples.shape == (S, H)
    agg, items = Evaluator(quantiles=DEFAULT_QUANTILES, num_workers=None)(iter(truths), iter(forecasts),
                                                                         num_series=len(forecasts))
    samples = np.stack([f.samples for f in forecasts], axis=-1)  # [S, H, N]
    target = np.stack([t.to_numpy()[-H:, 0] for t in truths], axis=-1)  # [H, N], as GluonTS read it
    assert quantile_crps(samples, target) == pytest.approx(agg["mean_wQuantileLoss"], rel=1e-9, abs=0)
    for q, loss in quantile_loss(samples, target).items():
        assert loss == pytest.approx(agg[f"wQuantileLoss[{q}]"], rel=1e-9, abs=0)
    assert rmse(samples, target, point="mean") ** 2 == pytest.approx(agg["MSE"], rel=1e-9, abs=0)
    assert mae(samples, target) * target.size == pytest.approx(agg["abs_error"], rel=1e-9, abs=0)
    assert interval_coverage(samples, target, levels=(0.9,))[0.9] == pytest.approx(
        agg["Coverage[0.95]"] - agg["Coverage[0.05]"], rel=1e-9, abs=0)
    # tsdiff's backtest of the same forecaster on the same data draws the same samples
    result = backtest(predictor.forecaster, fx["test"], windows=1, metrics=["wql"], per_series=False, n_samples=S)
    np.testing.assert_array_equal(result.forecasts[0].samples, samples)
    assert result.metrics["wql"].iloc[0] == pytest.approx(agg["mean_wQuantileLoss"], rel=1e-9, abs=0)


def test_serialize_deserialize_predicts_the_same_and_entries_may_come_in_any_order(fx, predictor, tmp_path):
    from gluonts.model.predictor import Predictor

    from tsdiff.gluonts import DiffusionPredictor

    history = _dataset(fx["values"][:T_TRAIN], fx["start"], fx["ids"])
    before = list(predictor.predict(history))
    predictor.serialize(tmp_path)
    loaded = Predictor.deserialize(tmp_path)  # GluonTS finds the class from gluonts-config.json
    assert isinstance(loaded, DiffusionPredictor) and loaded.prediction_length == H
    after = list(loaded.predict(history))
    for a, b in zip(before, after):
        assert a.item_id == b.item_id and a.start_date == b.start_date
        np.testing.assert_array_equal(a.samples, b.samples)
    order = [3, 0, 7, 1, 2, 6, 5, 4]
    shuffled = _dataset(fx["values"][:T_TRAIN, order], fx["start"], [fx["ids"][i] for i in order])
    for f, i in zip(loaded.predict(shuffled), order):
        assert f.item_id == fx["ids"][i]
        np.testing.assert_array_equal(f.samples, before[i].samples)
    with pytest.raises(DataError, match="no serialized DiffusionPredictor"):
        DiffusionPredictor.deserialize(tmp_path / "nothing")


def test_backtest_metrics_runs_with_the_predictor(fx, predictor):
    from gluonts.evaluation import Evaluator, backtest_metrics, make_evaluation_predictions

    evaluator = Evaluator(quantiles=(0.1, 0.5, 0.9), num_workers=None)
    agg, items = backtest_metrics(fx["test"], predictor, evaluator=evaluator, num_samples=S)
    assert len(items) == len(fx["ids"]) and np.isfinite(agg["mean_wQuantileLoss"]) and agg["MSE"] > 0
    forecast_it, ts_it = make_evaluation_predictions(fx["test"], predictor, num_samples=S)
    again, _ = evaluator(ts_it, forecast_it)
    assert again["mean_wQuantileLoss"] == agg["mean_wQuantileLoss"]  # a fixed seed: the same samples


@pytest.mark.parametrize("freq", ["MS", "QS", "YS", "B", "BMS"])
def test_start_anchored_and_business_frequencies_give_the_next_period(freq):
    from tsdiff.api import to_series
    from tsdiff.data.adapters.gluonts import to_gluonts_list
    from tsdiff.gluonts import DiffusionEstimator

    index = pd.date_range("2001-01-01", periods=24, freq=freq)
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(24, 2)).cumsum(axis=0), index=index,
                         columns=["a", "b"])
    data = to_gluonts_list(to_series(frame)[0])  # pd.Period starts: MS -> M, QS -> Q-DEC, ...
    options = {**TINY, "context_length": 6, "max_steps": 1}
    forecasts = list(DiffusionEstimator(prediction_length=3, **options).train(data).predict(data, num_samples=3))
    assert [f.item_id for f in forecasts] == ["a", "b"]
    future = pd.date_range(index[-1], periods=4, freq=freq)[1:]
    for stamp, period in zip(future, forecasts[0].index):  # each future timestamp lies in its period
        assert period.start_time <= stamp <= period.end_time
    assert forecasts[0].samples.shape == (3, 3)


def test_one_multivariate_entry_gets_one_multivariate_forecast(fx):
    from gluonts.dataset.common import ListDataset

    from tsdiff.gluonts import DiffusionEstimator

    values = fx["values"][:60, :3].T  # [C, T]
    data = ListDataset([{"start": fx["start"], "target": values, "item_id": "rates"}], freq="B", one_dim_target=False)
    options = {**TINY, "max_steps": 1}
    (forecast,) = DiffusionEstimator(prediction_length=4, **options).train(data).predict(data, num_samples=3)
    assert forecast.samples.shape == (3, 4, 3) and forecast.item_id == "rates"
    assert forecast.start_date == fx["start"] + 60


def test_bad_options_and_data_are_clear_errors(fx, predictor):
    from tsdiff.gluonts import DiffusionEstimator

    with pytest.raises(ConfigError, match="the Forecaster's options are"):
        DiffusionEstimator(prediction_length=4, num_layers=3)
    with pytest.raises(ConfigError, match="prediction_length"):
        DiffusionEstimator(prediction_length=0)
    with pytest.raises(ConfigError, match="lead_time"):
        DiffusionEstimator(prediction_length=4, lead_time=2)
    with pytest.raises(ConfigError, match="validation=<fraction>"):
        DiffusionEstimator(prediction_length=4).train(fx["train"], validation_data=fx["test"])
    values = fx["values"][:T_TRAIN]
    with pytest.raises(DataError, match=r"missing: \['fx7'\]"):
        list(predictor.predict(_dataset(values[:, :7], fx["start"], fx["ids"][:7])))
    ragged = _dataset(values, fx["start"], fx["ids"])
    ragged[2]["target"] = ragged[2]["target"][:-1]
    with pytest.raises(DataError, match="end on different dates"):
        list(predictor.predict(ragged))
    with pytest.raises(ConfigError, match="unknown arguments"):
        list(predictor.predict(fx["train"], temperature=2))


def test_gluonts_estimator_example_runs(data_dir, tmp_path):
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "gluonts_estimator.py"
    res = runpy.run_path(str(example), run_name="example")["main"](
        ["--fast", "--out", str(tmp_path), "--data-dir", str(data_dir)])
    assert res["tsdiff_crps"] == pytest.approx(res["agg"]["mean_wQuantileLoss"], rel=1e-9, abs=0)
    assert res["same_after_load"] and len(res["forecasts"]) == 8
    assert (tmp_path / "gluonts_predictor" / "gluonts-config.json").is_file()
