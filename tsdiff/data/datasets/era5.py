"""ERA5 2 m temperature over the UK, March 2019 (xarray tutorial data, Copernicus C3S).

``era5_t2m_uk_2019-03.nc``: variable ``t2m`` (K) on 744 hourly steps x 33 latitudes
(58 .. 50 N, decreasing) x 49 longitudes (10 W .. 2 E), 0.25 deg, no NaN. Opened
lazily with xarray + dask; :class:`~tsdiff.data.adapters.grid.GridSource` reads
windows on demand.
"""

from __future__ import annotations

from tsdiff.data.adapters.grid import GridSource, open_lazy_dataset
from tsdiff.data.series import Series
from tsdiff.data.datasets.base import DataFile, DatasetSpec, checksums, locate_files

SPEC = DatasetSpec(
    name="era5_uk_t2m",
    folder="era5",
    files=(DataFile("era5_t2m_uk_2019-03.nc", "0408bfc9c8a5c86057c39338f03b2f13f3d4d19754279c431e339d7469ee9170"),),
    source="xarray tutorial data https://github.com/pydata/xarray-data (era5-2mt-2019-03-uk.grib, as netCDF4)",
    licence="Copernicus licence (C3S ERA5)",
    description="ERA5 2 m temperature, UK, 2019-03, 744 h x 33 x 49",
    card="era5_uk_t2m.md",
)


def open_era5(data_dir=None, chunks: dict | None = None) -> GridSource:
    """Open the ERA5 file lazily (dask chunks as stored in the file by default): a GridSource ``[744, 1617, 1]``."""
    paths = locate_files(SPEC, data_dir)
    sums = checksums(SPEC, paths)
    ds = open_lazy_dataset(paths["era5_t2m_uk_2019-03.nc"], chunks)
    source = GridSource(ds, ["t2m"])
    source.checksums = sums  # SHA-256 of the file, for result records
    return source


def load_era5(data_dir=None) -> Series:
    """The whole ERA5 field as Series ``[744, 33 * 49, 1]`` in Kelvin (grid shape in ``spatial``)."""
    source = open_era5(data_dir)
    series = source.to_series()
    series.attrs["checksums"] = source.checksums
    return series
