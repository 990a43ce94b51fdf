"""Forecasting protocols: windows of ``context + horizon`` steps cut from a ForecastSplit."""

from __future__ import annotations

import numpy as np

from tsdiff.data.protocol import Protocol, SplitWindows, fit_scaler_on_windows
from tsdiff.data.series import Series
from tsdiff.data.splits import ForecastSplit, chronological_split, forecast_starts
from tsdiff.errors import ConfigError


def forecasting_protocol(
    protocol_id: str,
    split: ForecastSplit,
    context: int,
    *,
    valid_windows: int = 1,
    train_stride: int = 1,
    checksums: dict | None = None,
    meta: dict | None = None,
) -> Protocol:
    """Turn a :class:`ForecastSplit` into a :class:`Protocol` with ``context`` steps of history.

    - test: one window per test cutoff ``c``: steps ``[c - context, c + H)``, the
      horizon ``[c, c + H)`` is scored;
    - val: the last ``valid_windows`` horizons of the training range (held out from
      training, used to pick the best checkpoint);
    - train: every window (stride ``train_stride``) whose horizon ends before the
      first validation horizon. The scaler is fitted on the training windows only.

    Raises:
        ConfigError: a context longer than the history before the first test cutoff,
            or settings that leave no training window.
    """
    if not isinstance(context, int) or context < 1:
        raise ConfigError(f"data.options.context must be an integer >= 1, got {context!r}")
    if not isinstance(valid_windows, int) or valid_windows < 1:
        raise ConfigError(f"data.options.valid_windows must be an integer >= 1, got {valid_windows!r}")
    H = split.prediction_length
    test_starts = split.test_cutoffs - context
    if len(test_starts) == 0 or test_starts.min() < 0:
        raise ConfigError(f"context {context} is longer than the history before the first test cutoff")
    val_cutoffs = split.train_end - H * np.arange(valid_windows, 0, -1)
    train_limit = int(val_cutoffs[0])
    if val_cutoffs[0] - context < 0 or train_limit < context + H:
        raise ConfigError(
            f"context {context}, horizon {H} and {valid_windows} validation window(s) leave no training window "
            f"in the {split.train_end} training steps; use a shorter context or fewer validation windows"
        )
    train_starts = forecast_starts(train_limit, context, H, stride=train_stride)
    return build_forecasting_protocol(
        protocol_id, split.series, context, H, train_starts, (val_cutoffs - context).astype(np.int64),
        test_starts.astype(np.int64), checksums=checksums,
        meta={"train_end": split.train_end, "test_cutoffs": split.test_cutoffs.tolist(), **(meta or {})},
    )


def chronological_forecasting_protocol(
    protocol_id: str,
    series: Series,
    context: int,
    horizon: int,
    *,
    fractions=(0.7, 0.1, 0.2),
    train_stride: int = 1,
    test_stride: int | None = None,
    checksums: dict | None = None,
    meta: dict | None = None,
) -> Protocol:
    """Forecasting on consecutive train / val / test blocks of the time axis.

    Training windows lie inside the training block. Validation and test windows
    forecast every ``test_stride`` steps (default: ``horizon``, non-overlapping
    horizons) inside their block; their context may reach back into the previous
    block, which is only input, never scored.
    """
    for key, val in dict(context=context, horizon=horizon, train_stride=train_stride).items():
        if not isinstance(val, int) or val < 1:
            raise ConfigError(f"data.options.{key} must be an integer >= 1, got {val!r}")
    test_stride = horizon if test_stride is None else test_stride
    if not isinstance(test_stride, int) or test_stride < 1:
        raise ConfigError(f"data.options.test_stride must be an integer >= 1, got {test_stride!r}")
    blocks = chronological_split(series.shape[0], fractions, min_length=horizon)
    (_, train_end), (va, vb), (ta, tb) = blocks["train"], blocks["val"], blocks["test"]
    if va < context:
        raise ConfigError(f"context {context} is longer than the training block ({train_end} steps)")

    def rolling(a: int, b: int) -> np.ndarray:
        return np.arange(a, b - horizon + 1, test_stride, dtype=np.int64) - context

    return build_forecasting_protocol(
        protocol_id, series, context, horizon, forecast_starts(train_end, context, horizon, stride=train_stride),
        rolling(va, vb), rolling(ta, tb), checksums=checksums,
        meta={"blocks": blocks, "test_stride": test_stride, **(meta or {})},
    )


def build_forecasting_protocol(protocol_id: str, series: Series, context: int, horizon: int,
                               train_starts: np.ndarray, val_starts: np.ndarray, test_starts: np.ndarray, *,
                               checksums: dict | None = None, meta: dict | None = None) -> Protocol:
    """A forecasting :class:`Protocol` from explicit window starts (windows of ``context + horizon``)."""
    zeros = lambda a: np.zeros(len(a), dtype=np.int64)  # noqa: E731
    return Protocol(
        id=protocol_id,
        series=series,
        eval_mask=None,
        window=context + horizon,
        splits={
            "train": SplitWindows(train_starts),
            "val": SplitWindows(val_starts, zeros(val_starts)),
            "test": SplitWindows(test_starts, zeros(test_starts)),
        },
        scaler=fit_scaler_on_windows(series, train_starts, context + horizon),
        checksums=checksums or {},
        meta={"prediction_length": horizon, "context": context, **(meta or {})},
        context=context,
    )
