"""Plots of forecasts, imputations, gridded fields and benchmark results (matplotlib).

Every function draws on a fresh :class:`matplotlib.figure.Figure` rendered by the Agg
canvas (no display and no change to pyplot's global backend), writes a PNG when
``path`` is given, and returns the figure.

- :func:`plot_forecast`: fan chart (median, central intervals) after the observed history.
- :func:`plot_imputation`: observed values, imputed median and intervals on the gaps.
- :func:`plot_grid_maps`: maps of the sample mean and spread of a gridded field.
- :func:`plot_crps_vs_nfe`: CRPS against network evaluations, one line per sampler.
- :func:`plot_leaderboard`: horizontal bars of a metric per model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from tsdiff.errors import ConfigError, DataError
from tsdiff.quantiles import sample_median, sample_quantile

_BLUE = "#1f77b4"
_ORANGE = "#d95f02"


def _figure(nrows: int = 1, ncols: int = 1, size=(8.0, 3.0), **kw):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("tsdiff plots need matplotlib: pip install matplotlib") from exc
    fig = Figure(figsize=(size[0] * ncols if ncols > 1 else size[0], size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def save_png(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG (``path`` must end in ``.png``)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"plots are written as PNG; give a path ending in .png, not {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _finish(fig, path):
    if path is not None:
        save_png(fig, path)
    return fig


def _pick(names: Sequence, series, limit: int) -> list[int]:
    if series is None:
        return list(range(min(limit, len(names))))
    wanted = [series] if isinstance(series, (str, int, np.integer)) and series not in ("",) else list(series)
    out = []
    labels = [str(n) for n in names]
    for s in wanted:
        if str(s) in labels:
            out.append(labels.index(str(s)))
        elif isinstance(s, (int, np.integer)) and 0 <= s < len(names):
            out.append(int(s))
        else:
            raise DataError(f"unknown series {s!r}; the data has {labels[:10]}{' ...' if len(labels) > 10 else ''}")
    return out


def _fan(ax, x, samples: np.ndarray, levels: Iterable[float], color=_BLUE, label="median"):
    """Shaded central intervals of ``samples`` ``[S, H]`` (widest lightest) and the median line."""
    for lev in sorted(levels, reverse=True):
        lo, hi = sample_quantile(samples, [(1 - lev) / 2, (1 + lev) / 2], axis=0)  # = Forecast.interval
        ax.fill_between(x, lo, hi, color=color, alpha=0.15 + 0.25 * (1 - lev), linewidth=0,
                        label=f"{int(round(lev * 100))}% interval")
    ax.plot(x, sample_median(samples, axis=0), color=color, linewidth=1.6, label=label)  # = Forecast.median


def plot_forecast(forecast, path: str | os.PathLike | None = None, *, series=None, channel: int = 0,
                  levels: Iterable[float] = (0.5, 0.9), max_series: int = 4, truth=None):
    """Fan chart of a :class:`~tsdiff.api.Forecast`, one panel per series.

    Args:
        series: names or positions of the series to draw (default: the first ``max_series``).
        levels: central interval levels to shade.
        truth: optional ``[H, N]`` (or ``[H, N, C]``) actual future values to overlay.
    Returns:
        the matplotlib Figure (also written to ``path`` as PNG).
    """
    S, H, N, C = forecast.samples_full.shape
    idx = _pick(forecast.columns, series, max_series)
    fig, axes = _figure(len(idx), 1, size=(8.0, 2.4))
    hist = forecast.history
    for row, n in enumerate(idx):
        ax = axes[row, 0]
        if hist is not None:
            ax.plot(hist.time_index, hist.values[:, n, channel], color="black", linewidth=1.0, label="observed")
        _fan(ax, forecast.index, forecast.samples_full[:, :, n, channel], levels)
        if truth is not None:
            t = np.asarray(truth, dtype=np.float64)
            t = t[:, n, channel] if t.ndim == 3 else t[:, n]
            ax.plot(forecast.index, t, color=_ORANGE, linewidth=1.0, linestyle="--", label="actual")
        ax.set_title(f"{forecast.columns[n]}" + (f" / {forecast.channel_names[channel]}" if C > 1 else ""),
                     fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left", ncols=4)
    return _finish(fig, path)


def plot_imputation(observed, samples: np.ndarray, path: str | os.PathLike | None = None, *, columns=None,
                    index=None, series=None, levels: Iterable[float] = (0.9,), max_series: int = 4, truth=None):
    """Observed values and the imputations of the gaps with intervals, one panel per column.

    Args:
        observed: ``[T, F]`` array or DataFrame with NaN at missing entries.
        samples: ``[S, T, F]`` multiple imputations (e.g. ``Imputer.sample``).
        truth: optional ``[T, F]`` true values of the hidden entries, drawn as points.
    """
    import pandas as pd

    if isinstance(observed, pd.DataFrame):
        columns = list(observed.columns) if columns is None else columns
        index = observed.index if index is None else index
        observed = observed.to_numpy(dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    smp = np.asarray(samples, dtype=np.float64)
    if obs.ndim != 2 or smp.ndim != 3 or smp.shape[1:] != obs.shape:
        raise DataError(f"observed must be [T, F] and samples [S, T, F] with the same T, F; got {obs.shape} "
                        f"and {smp.shape}")
    T, F = obs.shape
    columns = list(columns) if columns is not None else [str(i) for i in range(F)]
    x = np.asarray(index) if index is not None else np.arange(T)
    miss = np.isnan(obs)
    if series is None:  # the columns with the most gaps are the interesting ones
        idx = list(np.argsort(-miss.sum(axis=0), kind="stable")[:max_series])
    else:
        idx = _pick(columns, series, max_series)
    fig, axes = _figure(len(idx), 1, size=(8.0, 2.4))
    for row, f in enumerate(idx):
        ax = axes[row, 0]
        for lev in sorted(levels, reverse=True):
            lo, hi = sample_quantile(smp[:, :, f], [(1 - lev) / 2, (1 + lev) / 2], axis=0)  # = Imputer.quantiles
            lo, hi = np.where(miss[:, f], lo, np.nan), np.where(miss[:, f], hi, np.nan)
            ax.fill_between(x, lo, hi, color=_ORANGE, alpha=0.3, linewidth=0,
                            label=f"{int(round(lev * 100))}% interval")
        med = np.median(smp[:, :, f], axis=0)
        filled = np.where(miss[:, f], med, obs[:, f])
        ax.plot(x, filled, color=_ORANGE, linewidth=0.8, label="imputed median")
        ax.plot(x, obs[:, f], color="black", linewidth=1.0, label="observed")
        if truth is not None:
            tr = np.asarray(truth, dtype=np.float64)[:, f]
            ax.plot(x[miss[:, f]], tr[miss[:, f]], "o", color=_BLUE, markersize=2.5, label="held-out truth")
        ax.set_title(f"{columns[f]} ({int(miss[:, f].sum())} missing)", fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left", ncols=4)
    return _finish(fig, path)


def plot_grid_maps(samples: np.ndarray, lat, lon, path: str | os.PathLike | None = None, *,
                   title: str = "", units: str = "", cmap: str = "viridis"):
    """Maps of the sample mean and spread (std) of a gridded field.

    Args:
        samples: ``[S, H, W]`` samples of one time step (or ``[S, T, H, W]``: the time
            mean of each sample is mapped).
        lat, lon: ``[H]``, ``[W]`` coordinates in degrees.
    """
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim == 4:
        s = s.mean(axis=1)
    if s.ndim != 3 or s.shape[1:] != (len(lat), len(lon)):
        raise DataError(f"samples must be [S, H, W] = [S, {len(lat)}, {len(lon)}], got {s.shape}")
    fig, axes = _figure(1, 2, size=(5.0, 4.0))
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    for ax, field, name, cm in ((axes[0, 0], s.mean(axis=0), "mean", cmap), (axes[0, 1], s.std(axis=0), "spread (std)",
                                                                            "magma")):
        mesh = ax.pcolormesh(lon, lat, field, cmap=cm, shading="auto")
        fig.colorbar(mesh, ax=ax, shrink=0.8, label=units)
        ax.set_title(f"{title} {name}".strip(), fontsize=9)
        ax.set_xlabel("longitude", fontsize=8)
        ax.set_ylabel("latitude", fontsize=8)
        ax.tick_params(labelsize=7)
    return _finish(fig, path)


def plot_crps_vs_nfe(points, path: str | os.PathLike | None = None, *, metric: str = "crps",
                     title: str = "CRPS versus network evaluations"):
    """CRPS against NFE, one line per sampler.

    Args:
        points: ``{sampler: [(nfe, crps), ...]}``, or result records (dicts with
            ``sampler``, ``nfe`` and ``metrics[metric]``, as written by ``tsdiff test``).
    """
    if not isinstance(points, Mapping):
        grouped: dict[str, list] = {}
        for rec in points:
            try:
                grouped.setdefault(str(rec["sampler"]), []).append((float(rec["nfe"]), float(rec["metrics"][metric])))
            except (KeyError, TypeError, ValueError):
                raise DataError(f"a record lacks sampler / nfe / metrics.{metric}: {str(rec)[:120]}") from None
        points = grouped
    if not points:
        raise DataError("nothing to plot: no (nfe, crps) points")
    fig, axes = _figure(1, 1, size=(6.0, 4.0))
    ax = axes[0, 0]
    for name, pts in sorted(points.items()):
        pts = sorted((float(a), float(b)) for a, b in pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per sample (NFE)")
    ax.set_ylabel(metric.upper())
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_leaderboard(rows, path: str | os.PathLike | None = None, *, metric: str = "crps", label: str = "model",
                     title: str | None = None):
    """Horizontal bars of ``metric`` per entry, best (lowest) on top.

    Args:
        rows: a DataFrame, a list of dicts with ``label`` and ``metric`` keys, or result
            records (``metrics[metric]`` is used, labelled by ``model`` / ``sampler``).
    """
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict("records")
    names, values = [], []
    for r in rows:
        v = r.get(metric, (r.get("metrics") or {}).get(metric))
        if v is None:
            continue
        name = r.get(label) if label in r else r.get("model", "?")
        if "metrics" in r and "sampler" in r and label == "model":
            name = f"{name} ({r['sampler']}, {r.get('task', '')})".replace(", )", ")")
        names.append(str(name))
        values.append(float(v))
    if not values:
        raise DataError(f"nothing to plot: no row has a {metric!r} value")
    order = np.argsort(values)[::-1]
    fig, axes = _figure(1, 1, size=(7.0, 0.45 * len(values) + 1.2))
    ax = axes[0, 0]
    ax.barh([names[i] for i in order], [values[i] for i in order], color=_BLUE)
    for y, i in enumerate(order):
        ax.text(values[i], y, f" {values[i]:.4g}", va="center", fontsize=8)
    ax.set_xlabel(metric.upper())
    ax.set_title(title or f"leaderboard ({metric}, lower is better)", fontsize=10)
    ax.tick_params(labelsize=8)
    return _finish(fig, path)
