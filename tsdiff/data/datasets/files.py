"""Protocols on a user's own file, read lazily (``data.dataset: file``).

``data.options.path`` names a netCDF grid (CF axes: time, latitude, longitude; every
variable on them is a channel, or those in ``variables``) or a ``.npy`` array
``[T, N]`` / ``[T, N, C]`` (memory-mapped; ``freq`` steps from 2000-01-01). Nothing is
loaded at once: the scaler is fitted in one streaming pass over the training block
(:func:`~tsdiff.data.lazy.fit_scaler_streaming`), and each window is read when a
batch asks for it, so memory grows with the batch, not with the file.

The time axis is split chronologically (``fractions``, default 70/10/20):

- ``task: imputation``: windows of ``window`` steps, sliding by one step in the
  training block, covering the validation and test blocks without overlap. In those
  blocks each observed entry is held out (hidden and scored) with probability
  ``point_rate``, drawn per time step from ``seed`` (:class:`~tsdiff.data.lazy.HeldOutPoints`).
- ``task: forecasting``: ``context`` steps of history, ``horizon`` steps scored; validation
  and test windows forecast every ``test_stride`` steps (default ``horizon``).

Relative paths are looked up in the working directory, then in the data directory; a model
trained by ``tsdiff fit`` keeps the absolute path in its config.
Records carry the file's SHA-256 (one streaming pass; ``checksum: false`` skips it).
"""

from __future__ import annotations

from pathlib import Path

from tsdiff.data.adapters.grid import open_grid
from tsdiff.data.forecasting import chronological_forecasting_protocol
from tsdiff.data.lazy import ArraySource, HeldOutPoints, NpyRows
from tsdiff.data.paths import data_dir as resolve_data_dir
from tsdiff.data.protocol import DATASETS, Protocol, fit_scaler_on_windows, imputation_splits
from tsdiff.data.datasets.base import sha256_file
from tsdiff.errors import ConfigError, DataError

TASKS = ("imputation", "forecasting")

#: File endings :func:`open_source` reads lazily.
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")
ARRAY_SUFFIXES = (".npy",)


def open_source(path, variables: list[str] | None = None, chunks: dict | None = None, freq: str = "h"):
    """Open a file for lazy reading: a netCDF grid (:class:`~tsdiff.data.adapters.grid.GridSource`)
    or a ``.npy`` array ``[T]`` / ``[T, N]`` / ``[T, N, C]`` read row range by row range
    (:class:`~tsdiff.data.lazy.NpyRows` in an :class:`~tsdiff.data.lazy.ArraySource`, ``freq`` steps
    from 2000-01-01).

    Raises:
        DataError: the file is missing, of another kind, or unreadable.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; set data.options.path to a netCDF (.nc) or "
                        ".npy file (absolute, or relative to the working directory)")
    suffix = path.suffix.lower()
    if suffix in NETCDF_SUFFIXES:
        return open_grid(path, variables, chunks)
    if suffix in ARRAY_SUFFIXES:
        if variables is not None:
            raise DataError(f"{path}: variables= selects netCDF variables; a .npy array has none")
        try:
            array = NpyRows(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read as a .npy array ({exc})") from None
        return ArraySource(array, freq=freq, attrs={"path": str(path)})
    raise DataError(f"{path}: tsdiff reads {', '.join(NETCDF_SUFFIXES + ARRAY_SUFFIXES)} files lazily, "
                    f"not {suffix or 'files without an ending'}; convert it (e.g. xarray's to_netcdf or np.save)")


def _locate(path, data_dir) -> Path:
    if path is None or path == "":
        raise ConfigError("dataset 'file' needs data.options.path: a netCDF (.nc) or .npy file")
    p = Path(str(path)).expanduser()
    if p.is_absolute() or p.exists():
        return p
    base, _ = resolve_data_dir(data_dir)
    return base / p if (base / p).exists() else p  # a missing file is reported by open_source


@DATASETS.register("file")
def file_protocol(data_dir=None, path: str | None = None, task: str = "imputation", window: int = 24,
                  context: int | None = None, horizon: int | None = None, variables: list | None = None,
                  point_rate: float = 0.1, seed: int = 0, fractions=(0.7, 0.1, 0.2), train_stride: int = 1,
                  test_stride: int | None = None, chunks: dict | None = None, freq: str = "h",
                  checksum: bool = True) -> Protocol:
    """Imputation or forecasting on your own netCDF grid or .npy array, read window by window.

    Options and splits: the docstring of :mod:`tsdiff.data.datasets.files`.
    """
    if task not in TASKS:
        raise ConfigError(f"data.options.task must be one of {', '.join(TASKS)}, got {task!r}")
    if task == "forecasting" and (context is None or horizon is None):
        raise ConfigError("dataset 'file' with task: forecasting needs data.options.context and "
                          "data.options.horizon (steps of history and steps to forecast)")
    if task == "imputation" and (context is not None or horizon is not None):
        raise ConfigError("data.options.context / horizon are for task: forecasting; imputation windows "
                          "have data.options.window steps")
    if not isinstance(point_rate, (int, float)) or not 0.0 <= point_rate < 1.0:
        raise ConfigError(f"data.options.point_rate must be in [0, 1), got {point_rate!r}")
    if variables is not None and (not isinstance(variables, (list, tuple)) or not variables):
        raise ConfigError(f"data.options.variables must be a non-empty list of variable names, got {variables!r}")
    if chunks is not None and not isinstance(chunks, dict):
        raise ConfigError(f"data.options.chunks must map dimension names to chunk sizes, got {chunks!r}")
    p = _locate(path, data_dir).resolve()
    source = open_source(p, None if variables is None else list(variables), chunks, freq)
    sums = {p.name: sha256_file(p)} if checksum else {}
    T = source.shape[0]
    if task == "forecasting":
        return chronological_forecasting_protocol(
            f"file:{p.name}-c{context}-h{horizon}-s{test_stride or horizon}", source, context, horizon,
            fractions=tuple(fractions), train_stride=train_stride, test_stride=test_stride, checksums=sums,
            meta={"path": str(p), "config_options": {"path": str(p)}},
        )
    blocks, splits = imputation_splits(T, window, tuple(fractions))
    return Protocol(
        id=f"file:{p.name}-impute-w{window}-p{point_rate}-s{seed}",
        series=source,
        eval_mask=HeldOutPoints(source.shape, point_rate, seed, first=blocks["train"][1]),
        window=window,
        splits=splits,
        scaler=fit_scaler_on_windows(source, splits["train"].starts, window),
        checksums=sums,
        meta={"path": str(p), "config_options": {"path": str(p)}, "blocks": blocks, "point_rate": point_rate,
              "seed": seed},
    )
