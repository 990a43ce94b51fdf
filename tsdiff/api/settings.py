"""Argument checks of the estimators, their seed, and the prior section a ``prior=`` argument
stands for."""

from __future__ import annotations

import numpy as np

from tsdiff import validation as checks
from tsdiff.errors import ConfigError


def _check_int(name: str, value, low: int = 1, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}{' or None' if allow_none else ''}, got {value!r}")


def _check_sampling(sampler: str, steps, sampler_options, chunk_size) -> None:
    """Sampling settings as sampling would check them (names and option names), before any training."""
    from tsdiff.diffusion.components import build_sampler
    from tsdiff.training.module import sampler_config

    if sampler_options is not None and not isinstance(sampler_options, dict):
        raise ConfigError(f"sampler_options must be a dict of sampler options (e.g. {{'spacing': 'log_snr'}}) or "
                          f"None, got {type(sampler_options).__name__}")
    _check_int("chunk_size", chunk_size, allow_none=True)
    build_sampler(sampler, **sampler_config(steps, options=sampler_options))


def _seed(random_state) -> int:
    return checks.seed_from(random_state)  # ConfigError on a bad random_state


def _prior_config(prior) -> dict:
    """The prior section of a ``prior=`` argument (a name or a dict), checked."""
    from tsdiff.diffusion.priors import check_prior_section

    section = {"name": prior} if isinstance(prior, str) or prior is None else prior
    if section is None or not isinstance(section, dict):
        raise ConfigError(f"prior must be a prior name or a dict like {{'name': 'seasonal', 'season': 24}}, "
                          f"got {prior!r}")
    section = {"name": "none", **section}
    check_prior_section(section)
    return section


def _freq_season(freq) -> int:
    """GluonTS's seasonality of a frequency (1 without one)."""
    from gluonts.time_feature import get_seasonality

    return int(get_seasonality(str(freq))) if freq is not None else 1


def _forecast_prior(prior, freq, context: int):
    """The Forecaster's prior section. ``"seasonal"`` without a season takes it from the data's
    frequency (GluonTS's seasonality, :func:`gluonts.time_feature.get_seasonality`: 24 for
    hourly data, 5 for business days, 12 for monthly, 1 for daily), or 1 (persistence) where the
    data has no frequency or the context holds no whole season. A season given explicitly must
    fit in the context. ``"climatology"`` without a season takes the frequency's too (it is
    fitted on the training data, so it need not fit in the context). ``"auto"`` without ``seasons`` adds a seasonal candidate at the
    frequency's season where the context holds one."""
    section = {"name": prior} if isinstance(prior, str) else prior
    if isinstance(section, dict) and section.get("name") == "climatology" and "season" not in section:
        season = _freq_season(freq)
        if season < 2:
            raise ConfigError(f"prior 'climatology' takes its season from the data's frequency, and "
                              f"{freq or 'data without a frequency'} has no season of 2 steps or more; give it, "
                              "e.g. prior={'name': 'climatology', 'season': 7} for a weekly cycle of daily data")
        return {**section, "season": season}
    if isinstance(section, dict) and section.get("name") == "auto" and "seasons" not in section:
        # auto's candidates gain seasonal naive at the frequency's season where the context holds one
        season = _freq_season(freq)
        return {**section, "seasons": [season]} if 1 < season <= context else section
    if not (isinstance(section, dict) and section.get("name") == "seasonal"):
        return prior
    if "season" not in section:
        season = _freq_season(freq)
        return {**section, "season": season if season <= context else 1}
    season = section["season"]
    if isinstance(season, int) and not isinstance(season, bool) and season > context:
        raise ConfigError(f"prior 'seasonal' has season {season} steps, longer than the context_length of "
                          f"{context}: the context holds no whole season to repeat; use context_length >= {season}"
                          " or prior='last_value'")
    return section
