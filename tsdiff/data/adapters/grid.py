"""Gridded fields (xarray) <-> :class:`Series`, lazily.

:class:`GridSource` wraps an ``xarray.Dataset`` / ``DataArray`` whose variables have
dimensions (time, latitude, longitude) in any order and under any names: the axes
are recognised by CF conventions (``standard_name``, ``units`` such as
``degrees_north`` / ``degrees_east``, ``axis`` = T/Y/X, or a datetime dtype for time),
never by fixed names. Several variables become channels; grid cells are flattened
row-major into the spatial axis (``n = i * W + j``); NaN cells are unobserved.

With dask-backed data (``xr.open_dataset(..., chunks=...)``) nothing is read until
:meth:`GridSource.window` asks for a time slice, so windows of a file much larger
than memory can be used. :meth:`GridSource.to_xarray` rebuilds an xarray object with
the original coordinates and attributes from ``[T, N, C]`` values (e.g. imputations).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tsdiff.data.lazy import check_window, read_series
from tsdiff.data.series import Series
from tsdiff.data.spatial import GridSpatial
from tsdiff.errors import DataError
from tsdiff.validation import as_float64

LAT_UNITS = {"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"}
LON_UNITS = {"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"}


def _role(var) -> str | None:
    a = {k: str(v).strip().lower() for k, v in var.attrs.items()}
    sn, units, axis = a.get("standard_name", ""), a.get("units", ""), a.get("axis", "")
    if sn == "latitude" or units in LAT_UNITS or axis == "y":
        return "lat"
    if sn == "longitude" or units in LON_UNITS or axis == "x":
        return "lon"
    if sn == "time" or axis == "t" or np.issubdtype(var.dtype, np.datetime64) or " since " in units:
        return "time"
    return None


def find_cf_axes(obj) -> tuple[str, str, str]:
    """Names of the (time, latitude, longitude) dimensions of ``obj`` by CF conventions.

    Raises:
        DataError: an axis cannot be recognised, or is found twice.
    """
    found: dict[str, list[str]] = {"time": [], "lat": [], "lon": []}
    for name in obj.dims:
        if name in obj.coords:
            role = _role(obj.coords[name])
            if role:
                found[role].append(str(name))
    for role, names in found.items():
        if len(names) > 1:
            raise DataError(f"several dimensions look like {role}: {names}; drop or rename the extra ones")
    missing = [r for r, n in found.items() if not n]
    if missing:
        desc = {str(d): dict(obj.coords[d].attrs) if d in obj.coords else "(no coordinate)" for d in obj.dims}
        raise DataError(
            f"cannot recognise the {' and '.join(missing)} dimension(s) of the grid; dims and their attributes: "
            f"{desc}. Give latitude/longitude coordinates units='degrees_north'/'degrees_east' (or standard_name "
            "'latitude'/'longitude', or axis 'Y'/'X') and a datetime time coordinate (numbers need CF units, e.g. "
            "time.attrs['units'] = 'seconds since 1970-01-01' for epoch seconds; they are never read as nanoseconds)"
        )
    return found["time"][0], found["lat"][0], found["lon"][0]


class GridSource:
    """A lazily read gridded field in canonical layout ``[T, N = H * W, C]``.

    Args:
        obj: ``xarray.Dataset`` (each data variable with the three grid dims is a
            channel) or ``xarray.DataArray`` (one channel).
        variables: which data variables to use (default: all with the grid dims).
    """

    def __init__(self, obj, variables: list[str] | None = None) -> None:
        import xarray as xr

        ds = obj.to_dataset(name=obj.name or "value") if isinstance(obj, xr.DataArray) else obj
        self.template = ds
        self.time_dim, self.lat_dim, self.lon_dim = find_cf_axes(ds)
        grid_dims = {self.time_dim, self.lat_dim, self.lon_dim}
        names = variables or [str(v) for v in ds.data_vars if set(ds[v].dims) == grid_dims]
        bad = [v for v in names if v not in ds.data_vars or set(ds[v].dims) != grid_dims]
        if bad or not names:
            raise DataError(
                f"variable(s) {bad or list(ds.data_vars)} do not have exactly the dims {sorted(grid_dims)}; "
                "select them with variables= or squeeze extra dims first"
            )
        self.variables = names
        self.time_index = pd.DatetimeIndex(ds[self.time_dim].values, name=self.time_dim)
        if not self.time_index.is_unique or not self.time_index.is_monotonic_increasing:
            raise DataError("the grid's time coordinate has duplicate or unsorted values; sortby(time) first")
        dims = (self.time_dim, self.lat_dim, self.lon_dim)
        self.fields = [ds[v].transpose(*dims) for v in names]  # lazy if dask-backed
        bad = {v: str(f.dtype) for v, f in zip(names, self.fields)
               if not np.issubdtype(f.dtype, np.number) or np.issubdtype(f.dtype, np.complexfloating)}
        if bad:
            raise DataError(f"grid variable(s) {bad} must be numeric (real numbers, NaN = missing)")
        self.spatial = GridSpatial(
            lat=np.asarray(ds[self.lat_dim].values), lon=np.asarray(ds[self.lon_dim].values),
            dims=dims, coord_attrs={d: dict(ds[d].attrs) for d in dims},
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(T, N, C)`` without reading data."""
        return len(self.time_index), self.spatial.num_nodes, len(self.variables)

    @property
    def node_names(self) -> list[str]:
        """``"i_j"`` for the cell in row i, column j (row-major, as the spatial axis)."""
        H, W = self.spatial.shape
        return [f"{i}_{j}" for i in range(H) for j in range(W)]

    @property
    def channel_names(self) -> list[str]:
        return list(self.variables)

    @property
    def attrs(self) -> dict:
        """The file's and the variables' attributes (as :meth:`to_series` keeps them)."""
        return {"source_attrs": dict(self.template.attrs),
                "variable_attrs": {v: dict(self.template[v].attrs) for v in self.variables}}

    def window(self, start: int, length: int) -> np.ndarray:
        """Read steps ``[start, start + length)`` only: float array ``[L, N, C]`` (NaN = unobserved)."""
        check_window(start, length, self.shape[0])
        sl = {self.time_dim: slice(start, start + length)}
        out = np.empty((length, self.shape[1], len(self.fields)), dtype=np.float64)
        for c, f in enumerate(self.fields):  # one variable at a time: peak = output + one variable's slice
            # dask's synchronous scheduler: no thread pool, so reads also work in forked
            # DataLoader workers (a pool inherited through fork deadlocks)
            v = np.asarray(f.isel(sl).compute(scheduler="synchronous").values)
            out[:, :, c] = as_float64(v, f"grid variable {self.variables[c]!r}").reshape(length, -1)
        return out

    def to_series(self) -> Series:
        """Read everything into a Series ``[T, H * W, C]`` with ``spatial`` = :class:`GridSpatial`."""
        return read_series(self)

    def to_xarray(self, values, time_index=None, start: int | None = None):
        """``[T', N, C]`` values -> ``xarray.Dataset`` with the original coords and attributes.

        ``values`` may be a dask array; the dataset then stays lazy.

        Args:
            time_index: timestamps of the T' steps; default: the source's steps from
                ``start`` (default 0).
        """
        import xarray as xr

        v = values if hasattr(values, "dask") else np.asarray(values)  # a dask array stays lazy
        H, W = self.spatial.shape
        if v.ndim != 3 or v.shape[1:] != (H * W, len(self.variables)):
            raise DataError(f"values must be [T, {H * W}, {len(self.variables)}], got {v.shape}")
        if time_index is None:
            a = start or 0
            time_index = self.template[self.time_dim].isel({self.time_dim: slice(a, a + v.shape[0])})
        times = xr.DataArray(np.asarray(time_index), dims=(self.time_dim,), attrs=self.spatial.coord_attrs[self.time_dim])
        coords = {self.time_dim: times, self.lat_dim: self.template[self.lat_dim], self.lon_dim: self.template[self.lon_dim]}
        out = {}
        for c, name in enumerate(self.variables):
            src = self.template[name]
            da = xr.DataArray(v[:, :, c].reshape(-1, H, W).astype(src.dtype, copy=False),
                              dims=self.spatial.dims, coords=coords, attrs=dict(src.attrs))
            out[name] = da.transpose(*src.dims)
        ds = xr.Dataset(out, attrs=dict(self.template.attrs))
        for name, coord in self.template.coords.items():  # non-dimension coords (scalars, time-dependent)
            if name in ds.coords:
                continue
            if self.time_dim not in coord.dims:
                ds = ds.assign_coords({name: coord})
            elif np.array_equal(coord[self.time_dim].values, ds[self.time_dim].values):
                ds = ds.assign_coords({name: coord})
            else:
                ds = ds.assign_coords({name: coord.sel({self.time_dim: ds[self.time_dim].values})})
        return ds


def open_grid(path, variables: list[str] | None = None, chunks: dict | None = None) -> GridSource:
    """Open any CF-convention netCDF (or other xarray-readable) file lazily as a GridSource.

    Args:
        chunks: dask chunks, e.g. ``{"time": 24}``; default: the file's own chunks.
    Returns:
        a :class:`GridSource` ``[T, H * W, C]``; nothing is read until windows are asked for.
    Raises:
        DataError: the file cannot be opened, or its axes are not recognisable.
    """
    try:
        ds = open_lazy_dataset(path, chunks)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot open as a gridded dataset ({exc})") from None
    return GridSource(ds, variables)


def open_lazy_dataset(path, chunks: dict | None = None):
    """``xarray.open_dataset`` backed by dask (``chunks``, default: the file's own), for reading
    windows of a file larger than memory.

    netCDF-4 (HDF5) files are read through ``h5netcdf``: h5py keeps at most 1 MiB of
    decompressed chunks per variable, where the netCDF-C library's default cache holds up to
    64 MiB per variable read. Other files use xarray's default engine.
    """
    import h5py
    import xarray as xr

    engine = "h5netcdf" if Path(path).is_file() and h5py.is_hdf5(path) else None
    return xr.open_dataset(path, chunks={} if chunks is None else chunks, engine=engine)


def series_from_xarray(obj, variables: list[str] | None = None) -> Series:
    """Eager shortcut: ``GridSource(obj, variables).to_series()``."""
    return GridSource(obj, variables).to_series()
