"""GluonTS ``Estimator`` / ``Predictor`` wrappers of :class:`~tsdiff.api.Forecaster`.

With them a tsdiff model takes part in GluonTS workflows as any GluonTS model does::

    from gluonts.evaluation import Evaluator, make_evaluation_predictions

    predictor = DiffusionEstimator(prediction_length=24, max_steps=500).train(dataset.train)
    forecast_it, ts_it = make_evaluation_predictions(dataset.test, predictor, num_samples=100)
    agg, per_item = Evaluator()(ts_it, forecast_it)
    predictor.serialize(Path("model"));  Predictor.deserialize(Path("model"))

The model follows the Forecaster's ``mode`` (default ``"auto"``, see
:mod:`tsdiff.api.forecast_panels`). Entries that share one span give a joint model (the series of
the training data are the nodes of one multivariate model): ``predict`` needs the same series
(``item_id``, any order) ending on the same date. Ragged entries (different ends or lengths) give a
global model (one model shared by independent series): ``predict`` takes any entries with the
trained features, each forecast from its own end. Either way it yields one ``SampleForecast`` per
entry, in the dataset's order, starting one period after the entry's end. A dataset of one multivariate entry (target ``[C, T]``) gets one forecast with samples
``[S, H, C]``. The forecasts' quantiles are GluonTS' nearest rank, tsdiff's one definition
(:mod:`tsdiff.quantiles`), so ``Evaluator`` figures equal :mod:`tsdiff.metrics` on the same
samples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from gluonts.model.estimator import Estimator
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor

from tsdiff.errors import ConfigError, DataError

#: Files of a serialized :class:`DiffusionPredictor` besides GluonTS' ``gluonts-config.json``.
MODEL_FILE = "forecaster.pt"
META_FILE = "tsdiff-predictor.json"
FORMAT = "tsdiff-gluonts-predictor-v1"


class DiffusionEstimator(Estimator):
    """A GluonTS ``Estimator`` training a :class:`~tsdiff.api.Forecaster`.

    Args:
        prediction_length: H, steps to forecast.
        lead_time: GluonTS' gap between the data's end and the forecast; only 0 is supported.
        forecaster_options: the Forecaster's other constructor arguments (``context_length``,
            ``model``, ``max_steps``, ``n_samples``, ``random_state``, ``validation``, ...),
            checked here.
    """

    def __init__(self, prediction_length: int, *, lead_time: int = 0, **forecaster_options) -> None:
        from tsdiff.api import Forecaster

        if lead_time != 0:
            raise ConfigError(f"lead_time={lead_time!r} is not supported; the forecast starts right after the data "
                              "(lead_time=0)")
        super().__init__(lead_time=lead_time)
        self.prediction_length = prediction_length
        self.forecaster_options = dict(forecaster_options)
        try:
            self._forecaster()._validate_settings()
        except TypeError as exc:  # an unknown constructor argument
            valid = sorted(Forecaster().get_params())
            raise ConfigError(f"DiffusionEstimator: {exc}; the Forecaster's options are {valid}") from None

    def _forecaster(self):
        from tsdiff.api import Forecaster

        return Forecaster(prediction_length=self.prediction_length, **self.forecaster_options)

    def train(self, training_data, validation_data=None, **kwargs) -> "DiffusionPredictor":
        """Fit a Forecaster on ``training_data`` (any GluonTS dataset) and return its predictor.

        ``validation_data`` is not taken: pass ``validation=<fraction>`` among the estimator's
        options to hold out the end of the training data and keep the best weights.
        """
        if validation_data is not None:
            raise ConfigError("DiffusionEstimator.train does not take validation_data; build the estimator with "
                              "validation=<fraction> to hold out the end of the training series instead")
        if kwargs:
            raise ConfigError(f"DiffusionEstimator.train got unknown arguments {sorted(kwargs)}")
        return DiffusionPredictor(self._forecaster().fit(training_data))


def _entry_target(entry, i: int) -> np.ndarray:
    from tsdiff.validation import as_float64

    if "target" not in entry or "start" not in entry:
        raise DataError(f"dataset entry {i} has no 'target' or 'start' field")
    return np.asarray(as_float64(entry["target"], f"entry {i} 'target'"), dtype=np.float64)


class DiffusionPredictor(Predictor):
    """A GluonTS ``Predictor`` around a fitted :class:`~tsdiff.api.Forecaster` (see the module docstring)."""

    def __init__(self, forecaster) -> None:
        forecaster._check_fitted()
        sig = forecaster.signature_
        super().__init__(prediction_length=int(sig["window"] - sig["context"]))
        self.forecaster = forecaster

    def _order(self, entries: list) -> list[int]:
        """Position in ``entries`` of each trained series, in the trained order."""
        trained = [str(n) for n in self.forecaster.signature_["node_names"]]
        if len(entries) == 1 and len(trained) == 1 and np.ndim(entries[0]["target"]) == 2:
            return [0]
        ids = [str(e.get("item_id", i)) for i, e in enumerate(entries)]
        if sorted(ids) != sorted(trained) or len(set(ids)) != len(ids):
            new, lack = sorted(set(ids) - set(trained))[:3], sorted(set(trained) - set(ids))[:3]
            raise DataError(f"the model forecasts its {len(trained)} training series jointly; the dataset's item_ids "
                            f"differ (new: {new}, missing: {lack}, or repeated); pass one entry per training series")
        where = {item: i for i, item in enumerate(ids)}
        return [where[t] for t in trained]

    def predict(self, dataset, num_samples: Optional[int] = None, **kwargs) -> Iterator[SampleForecast]:
        """One ``SampleForecast`` per entry of ``dataset``, in its order.

        Args:
            dataset: entries with ``start`` (``pd.Period``), ``target`` and ``item_id``: the
                training series, ending on one date.
            num_samples: sample paths (default: the Forecaster's ``n_samples``).
        """
        from tsdiff.data.adapters.gluonts import _period

        if kwargs:
            raise ConfigError(f"DiffusionPredictor.predict got unknown arguments {sorted(kwargs)}")
        entries = list(dataset)
        if not entries:
            return
        targets = [_entry_target(e, i) for i, e in enumerate(entries)]
        ends = [_period(e["start"], self.forecaster.freq) + t.shape[-1] for e, t in zip(entries, targets)]
        if self.forecaster.mode_ == "global":  # each entry forecast from its own end
            panel = self.forecaster.predict(entries, n_samples=num_samples)
            for i, (item, end) in enumerate(zip(panel.items, ends)):
                samples = panel[item].samples_full[..., 0]  # [S, H, F]
                yield SampleForecast(samples=samples[:, :, 0] if samples.shape[2] == 1 else samples,
                                     start_date=end, item_id=entries[i].get("item_id"))
            return
        if len(set(ends)) > 1:
            raise DataError(f"the entries end on different dates (next periods {sorted(set(map(str, ends)))[:3]}); "
                            "the model forecasts its series jointly from one end, so cut them to a common end, "
                            "or train with mode='global' (each entry forecast from its own end)")
        order = self._order(entries)
        # the entries themselves: their feat_dynamic_real / past_feat_dynamic_real are the covariates
        forecast = self.forecaster.predict([entries[i] for i in order], n_samples=num_samples)
        samples = forecast.samples_full  # [S, H, N, C]
        if samples.shape[2] == 1 and samples.shape[3] > 1:  # one multivariate entry: [S, H, C]
            yield SampleForecast(samples=samples[:, :, 0, :], start_date=ends[0], item_id=entries[0].get("item_id"))
            return
        node_of = {entry: node for node, entry in enumerate(order)}
        for i, entry in enumerate(entries):
            yield SampleForecast(samples=samples[:, :, node_of[i], 0], start_date=ends[i],
                                 item_id=entry.get("item_id"))

    def serialize(self, path: Path) -> None:
        """Write GluonTS' ``gluonts-config.json`` and the Forecaster's model file into the folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        super().serialize(path)
        self.forecaster.save(path / MODEL_FILE)
        (path / META_FILE).write_text(json.dumps({"format": FORMAT, "prediction_length": self.prediction_length,
                                                  "model_file": MODEL_FILE}))

    @classmethod
    def deserialize(cls, path: Path, device: str | None = None, **kwargs) -> "DiffusionPredictor":
        """Rebuild a predictor written by :meth:`serialize` (also reached through ``Predictor.deserialize``).

        Args:
            device: where to sample (see :meth:`Forecaster.load`); GluonTS' other context
                arguments are ignored.
        """
        from tsdiff.api import Forecaster

        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise DataError(f"{path} holds no serialized DiffusionPredictor ({META_FILE} is missing)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise DataError(f"{meta_path} has format {meta.get('format')!r}, expected {FORMAT!r}")
        return cls(Forecaster.load(path / meta.get("model_file", MODEL_FILE), device=device))
