"""Training-recipe pieces shared by every way of training: the learning-rate schedule, the EMA of
the weights and the time budget.

optim options (config ``optim:`` section, and what the API builds):

==============  ==================================================================================
``schedule``    ``"multistep"`` (CSDI: the rate times ``gamma`` at each of ``milestones``, fractions
                of training) or ``"cosine"`` (from ``lr`` down to 0 along half a cosine)
``warmup``      fraction of training over which the rate rises linearly from 0 (default 0)
``ema``         decay of an exponential moving average of the weights, or None (no average); the
                averaged weights are the ones kept after training. The decay used at update ``n``
                is ``min(ema, (1 + n) / (10 + n))``, so a short training is not dominated by the
                initial weights.
==============  ==================================================================================

Held-out validation in the API's training (``Imputer(validation=0.1, early_stopping=5)``):
:func:`validation_split` carves the held-out tail, :func:`validation_interval` spaces the checks,
and :func:`best_weights_callback` keeps the weights with the lowest validation loss.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Callable

import torch

from tsdiff.errors import ConfigError, DataError

SCHEDULES = ("multistep", "cosine")


def check_optim(optim: dict) -> None:
    """Refuse optim options the schedule or the EMA cannot use, naming the fix."""
    schedule = optim.get("schedule", "multistep")
    if schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    warmup = optim.get("warmup", 0.0)
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
        raise ConfigError(f"optim.warmup is a fraction of training in [0, 1), got {warmup!r}")
    ema = optim.get("ema")
    if ema is not None and (isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0 < ema < 1):
        raise ConfigError(f"optim.ema is an averaging decay in (0, 1) such as 0.99, or null for none; got {ema!r}")


def lr_factor(optim: dict, total_steps: int, time_spent: Callable[[], float] | None = None):
    """``step -> factor`` of the base learning rate for ``total_steps`` optimiser steps.

    ``time_spent`` (optional) returns the fraction of a training-time budget used so far. The
    schedule then follows whichever is further along, steps or time: under ``max_time`` a
    milestone (or the cosine) is reached when that fraction of the time is spent even if the
    steps would come later, so a training cut by its time budget still gets its decay. The
    schedule then depends on the machine's speed, as the stopping point already does.
    """
    check_optim(optim)
    total = max(int(total_steps), 1)
    warm = int(round(float(optim.get("warmup", 0.0)) * total))
    schedule = optim.get("schedule", "multistep")
    milestones = [int(m * total) for m in optim.get("milestones", [])]
    gamma = float(optim.get("gamma", 1.0))

    fractions = [float(m) for m in optim.get("milestones", [])]
    warm_fraction = warm / total

    def factor(step: int) -> float:
        spent = min(max(float(time_spent()), 0.0), 1.0) if time_spent is not None else 0.0
        if step < warm and spent < warm_fraction:
            return (step + 1) / warm
        if schedule == "cosine":
            done = max((step - warm) / max(total - warm, 1), (spent - warm_fraction) / max(1.0 - warm_fraction, 1e-12))
            return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))
        return gamma ** sum(step >= m or spent >= f for m, f in zip(milestones, fractions))

    return factor


def ema_callback(decay: float):
    """Lightning's weight averaging with an exponential moving average of the parameters.

    Buffers are not averaged (they hold fitted statistics such as a prior's weights, set when
    training starts); they are copied from the trained module at every update, so the module
    Lightning hands back after training has the averaged parameters and its own buffers.
    """
    from lightning.pytorch.callbacks import WeightAveraging

    decay = float(decay)

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(num_averaged)) / (10.0 + float(num_averaged)))
        return d * averaged + (1.0 - d) * current

    class ParameterEMA(WeightAveraging):
        def __init__(self) -> None:
            super().__init__(use_buffers=False, avg_fn=average)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            model = self._average_model
            if model is not None:
                for mine, theirs in zip(model.module.buffers(), pl_module.buffers()):
                    mine.data.copy_(theirs.data)
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    return ParameterEMA()


def check_validation(validation, early_stopping) -> None:
    """Refuse a validation fraction outside (0, 0.5] and a patience that is not an integer >= 1
    (or one without validation)."""
    if validation is not None and (isinstance(validation, bool) or not isinstance(validation, (int, float))
                                   or not 0 < validation <= 0.5):
        raise ConfigError(f"validation is the fraction of the data held out at its end to pick the best "
                          f"weights, in (0, 0.5] (e.g. 0.1), or None; got {validation!r}")
    if early_stopping is not None:
        if isinstance(early_stopping, bool) or not isinstance(early_stopping, int) or early_stopping < 1:
            raise ConfigError(f"early_stopping is a patience: the number of validation checks without "
                              f"improvement before training stops, an integer >= 1, or None; got {early_stopping!r}")
        if validation is None:
            raise ConfigError("early_stopping needs held-out data to watch: set validation too, e.g. "
                              "validation=0.1")


def validation_split(length: int, fraction: float, need: int) -> int:
    """The first time step of the held-out tail: the last ``ceil(fraction * length)`` steps, at
    least ``need`` of them (one window), and at least ``need`` steps left before them.

    Raises:
        DataError: the data are too short for both.
    """
    held = max(int(math.ceil(fraction * length)), need)
    if length - held < need:
        raise DataError(f"validation={fraction} needs at least {need} time steps (one window) held out and "
                        f"{need} left for training, but the data have {length}; use validation=None or "
                        "a shorter window")
    return length - held


def validation_interval(max_steps: int) -> int:
    """Optimiser steps between validation checks: 20 checks over ``max_steps``, at most every 50."""
    return max(1, min(50, max_steps // 20))


def best_weights_callback():
    """A Lightning callback keeping, in memory, the weights (parameters and buffers) at the lowest
    ``val_loss`` seen, and putting them back when training ends. Listed before the EMA callback,
    it sees the averaged weights that the EMA swaps in for validation."""
    from lightning.pytorch.callbacks import Callback

    class BestWeights(Callback):
        def __init__(self) -> None:
            self.best = math.inf
            self.state: dict | None = None
            self.step = -1

        def on_validation_epoch_end(self, trainer, pl_module) -> None:
            loss = trainer.callback_metrics.get("val_loss")
            if loss is not None and math.isfinite(float(loss)) and float(loss) < self.best:
                self.best, self.step = float(loss), trainer.global_step
                self.state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}

        def restore(self, module) -> None:
            if self.state is not None:
                module.load_state_dict(self.state)

    return BestWeights()


_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600, "d": 86400,
          "day": 86400, "days": 86400}
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")  # "1.5h", "30 min"


def time_budget_spent(trainer) -> Callable[[], float] | None:
    """The fraction of ``trainer``'s ``max_time`` spent in training so far, as a callable (None
    when the trainer has no time budget): read from Lightning's ``Timer`` callback."""
    from lightning.pytorch.callbacks import Timer

    timer = next((cb for cb in getattr(trainer, "callbacks", []) if isinstance(cb, Timer)), None)
    if timer is None or timer.time_remaining() is None:
        return None

    def spent() -> float:
        elapsed, remaining = timer.time_elapsed("train"), timer.time_remaining("train")
        return elapsed / max(elapsed + remaining, 1e-9)

    return spent


def parse_duration(value, name: str = "max_time") -> _dt.timedelta | None:
    """A training time budget as a ``timedelta``: None (no budget), a number of seconds, a
    ``timedelta``, ``"5min"`` / ``"90s"`` / ``"1.5h"`` / ``"1h30min"``, or Lightning's
    ``"DD:HH:MM:SS"``.

    Raises:
        ConfigError: anything else, or a budget that is not positive.
    """
    if value is None:
        return None
    fix = (f"{name} is a time budget: e.g. \"5min\", \"90s\", \"1h30min\", \"00:00:05:00\" (DD:HH:MM:SS), "
           f"a number of seconds or a datetime.timedelta; got {value!r}")
    if isinstance(value, bool):
        raise ConfigError(fix)
    if isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}", text):
            d, h, m, s = (int(p) for p in text.split(":"))
            seconds = ((d * 24 + h) * 60 + m) * 60 + s
        else:
            parts = _AMOUNT.findall(text)
            if not parts or _AMOUNT.sub("", text).strip() or any(u not in _UNITS for _, u in parts):
                raise ConfigError(fix)
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ConfigError(fix)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(fix.replace("; got", ", and positive; got"))
    return _dt.timedelta(seconds=seconds)
