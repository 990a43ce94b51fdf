"""Forecasting protocols: windows of ``context + horizon`` steps cut from a ForecastSplit."""

from __future__ import annotations

import numpy as np

from tsdiff.data.protocol import Protocol, SplitWindows, fit_scaler_on_windows
from tsdiff.data.splits import ForecastSplit, forecast_starts
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
    zeros = lambda a: np.zeros(len(a), dtype=np.int64)  # noqa: E731
    splits = {
        "train": SplitWindows(train_starts),
        "val": SplitWindows((val_cutoffs - context).astype(np.int64), zeros(val_cutoffs)),
        "test": SplitWindows(test_starts.astype(np.int64), zeros(test_starts)),
    }
    return Protocol(
        id=protocol_id,
        series=split.series,
        eval_mask=None,
        window=context + H,
        splits=splits,
        scaler=fit_scaler_on_windows(split.series, train_starts, context + H),
        checksums=checksums or {},
        meta={"prediction_length": H, "context": context, "train_end": split.train_end,
              "test_cutoffs": split.test_cutoffs.tolist(), **(meta or {})},
        context=context,
    )
