"""Gridded fields in :class:`~tsdiff.api.imputer.Imputer`: an ``xarray.DataArray`` or
``Dataset`` whose variables have a time, a latitude and a longitude dimension (recognised by CF
conventions, :class:`~tsdiff.data.adapters.grid.GridSource`), the layout ``tsdiff impute`` reads
from netCDF files.

Each grid cell is a series and each variable a channel. ``transform`` gives back an object of the
input's type: the same dims in the same order, coordinates, attributes, encodings, other
variables of a Dataset untouched, the grid variables' dtypes kept, and NaN filled (observed
values bit for bit). ``sample``, ``quantiles`` and ``std`` give the same layout with a leading
``sample`` / ``quantile`` dimension (``std`` none).
"""

from __future__ import annotations

import numpy as np

from tsdiff.errors import DataError
from tsdiff import validation as checks
from tsdiff.quantiles import sample_quantile

#: grids up to this many bytes (as float64 values) are read into memory to train on; larger ones
#: (dask-backed, ``xr.open_dataset(..., chunks=...)``) are read window by window
GRID_IN_MEMORY_BYTES = 1 << 30


def is_grid(X) -> bool:
    """Whether ``X`` is an xarray DataArray or Dataset (without importing xarray)."""
    cls = type(X)
    return cls.__module__.split(".")[0] == "xarray" and cls.__name__ in ("DataArray", "Dataset")


def source_of(X):
    """The :class:`~tsdiff.data.adapters.grid.GridSource` of a grid (a DataError says what is wrong)."""
    from tsdiff.data.adapters.grid import GridSource

    return GridSource(X)


def fit(imputer, source):
    """Train ``imputer`` on a grid source; returns the reader to impute it with (in memory when the
    grid is small, else the source itself, read window by window)."""
    from tsdiff.data.lazy import ArraySource

    T, N, C = source.shape
    if T * N * C * 8 <= GRID_IN_MEMORY_BYTES:
        series = source.to_series()
        imputer._fit_series(series, grid_shape=source.spatial.shape)
        reader = ArraySource(series.values)
    else:
        imputer._fit_series(source, grid_shape=source.spatial.shape)
        reader = source
    imputer.n_features_in_ = N * C
    imputer.freq_ = None
    if hasattr(imputer, "feature_names_in_"):
        del imputer.feature_names_in_
    return reader


def _draws(imputer, source, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """``(values [T, N, C], draws [S, T, N, C])`` of a grid, float64."""
    T, N, C = source.shape
    values = np.empty((T, N, C))
    draws = np.empty((n_samples, T, N, C))
    for a, v, d in imputer.imputed_blocks(source, n_samples):
        values[a: a + len(v)] = v
        draws[:, a: a + len(v)] = d
    return values, draws


def _like(X, source, arrays: np.ndarray, lead: str | None = None, labels=None):
    """``arrays`` (``[T, N, C]``, or ``[K, T, N, C]`` with a leading dim ``lead`` labelled
    ``labels``) in the layout of ``X``: same type, dims order, coordinates and attributes."""
    import xarray as xr

    H, W = source.spatial.shape
    grid_dims = (source.time_dim, source.lat_dim, source.lon_dim)
    ds = X.to_dataset(name=X.name or "value") if isinstance(X, xr.DataArray) else X
    filled = {}
    for c, name in enumerate(source.variables):
        src = ds[name]
        v = arrays[..., c].reshape(arrays.shape[:-2] + (H, W))
        dims = grid_dims if lead is None else (lead,) + grid_dims
        da = xr.DataArray(v.astype(src.dtype, copy=False) if lead is None else v, dims=dims)
        da = da.transpose(*(src.dims if lead is None else (lead,) + src.dims))
        out = xr.DataArray(da.values, dims=da.dims, coords=src.coords, attrs=dict(src.attrs), name=src.name)
        if lead is not None:
            out = out.assign_coords({lead: labels})
        else:
            out.encoding = dict(src.encoding)
        filled[name] = out
    if isinstance(X, xr.DataArray):
        return filled[source.variables[0]].rename(X.name)
    return X.assign(filled)


def transform(imputer, X):
    """``X`` with its NaN filled by the point summary of the imputations."""
    source = source_of(X)
    values, draws = _draws(imputer, source, imputer.n_samples)
    return _like(X, source, imputer._fill(values, draws))


def sample(imputer, X, n_samples: int):
    """``n_samples`` imputations of ``X``, stacked along a leading ``sample`` dimension (float64)."""
    source = source_of(X)
    _, draws = _draws(imputer, source, n_samples)
    return _like(X, source, draws, "sample", np.arange(n_samples))


def quantiles(imputer, X, qs: np.ndarray, n_samples: int):
    """Nearest-rank quantiles of the imputations along a leading ``quantile`` dimension."""
    source = source_of(X)
    _, draws = _draws(imputer, source, n_samples)
    return _like(X, source, sample_quantile(draws, qs, axis=0), "quantile", qs)


def std(imputer, X, n_samples: int):
    """Standard deviation of the imputations (0 on observed entries), float64."""
    source = source_of(X)
    _, draws = _draws(imputer, source, n_samples)
    sd = checks.finite_reduce(np.std, draws, axis=0)
    return _like(X, source, sd[None], "stat", ["std"]).isel(stat=0, drop=True)

