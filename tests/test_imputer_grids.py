"""``Imputer`` on xarray grids from Python (real ERA5 pieces): the input's type, dims order,
coordinates, attributes and dtypes come back, observed values bit for bit, and the imputations
equal those of ``tsdiff impute`` on the same grid written to netCDF."""

import numpy as np
import pytest
import xarray as xr

from tests.test_impute_streaming import FAST, _era5_piece
from tsdiff.api import Imputer
from tsdiff.cli import main
from tsdiff.errors import DataError
from tsdiff.quantiles import point_summary, sample_quantile

TINY = {"layers": 1, "channels": 8, "heads": 2, "ff_dim": 8, "diffusion_embedding_dim": 16, "time_embedding_dim": 8,
        "feature_embedding_dim": 4}
SETTINGS = dict(max_steps=3, n_samples=3, sampling_steps=2, window=12, batch_size=2, model_options=TINY)


@pytest.fixture
def grid(data_dir, tmp_path):
    path, hide = _era5_piece(data_dir, tmp_path, packed=False)
    with xr.open_dataset(path) as ds:
        return path, ds.load(), hide


def test_dataset_in_dataset_out_equal_to_the_cli(grid, tmp_path):
    path, ds, hide = grid
    ds = ds.assign(note=xr.DataArray(np.arange(3.0), dims=("k",)))  # not a grid variable: left alone
    ds.attrs["title"] = "piece"
    out = Imputer(**SETTINGS).fit(ds).transform(ds)
    assert isinstance(out, xr.Dataset) and list(out.data_vars) == ["t2m", "note"]
    assert out["t2m"].dims == ds["t2m"].dims and out["t2m"].dtype == ds["t2m"].dtype
    assert out.attrs == ds.attrs and out["t2m"].attrs == ds["t2m"].attrs
    for c in ds.coords:
        assert np.array_equal(out[c].values, ds[c].values)
    assert out["note"].identical(ds["note"])
    v, o = ds["t2m"].values, out["t2m"].values
    assert np.isnan(v).sum() == hide.sum() > 0 and not np.isnan(o).any()
    assert np.array_equal(o[~hide], v[~hide])  # observed values bit for bit
    assert np.isnan(ds["t2m"].values).any()  # the input is not changed
    # the CLI on the same grid and settings: the same numbers
    cli = tmp_path / "cli.nc"
    assert main(["impute", str(path), *FAST, "-o", str(cli)]) == 0
    with xr.open_dataset(cli) as c:
        assert np.array_equal(c["t2m"].values, o)


def test_data_array_in_any_dims_order(grid):
    _, ds, hide = grid
    da = ds["t2m"].transpose("latitude", "time", "longitude")
    imp = Imputer(**SETTINGS).fit(da)
    assert imp.n_features_in_ == 30 and not hasattr(imp, "feature_names_in_")
    out = imp.transform(da)
    assert isinstance(out, xr.DataArray) and out.name == "t2m" and out.dims == da.dims
    assert out.attrs == da.attrs and np.array_equal(out["time"].values, da["time"].values)
    assert np.array_equal(out.values[~np.isnan(da.values)], da.values[~np.isnan(da.values)])
    # transform is the median of the draws sample() gives with the same settings
    draws = imp.sample(da)
    assert draws.dims == ("sample",) + da.dims and draws.sizes["sample"] == 3 and draws.dtype == np.float64
    want = np.where(np.isnan(da.values), point_summary(draws.values, "median"), da.values)
    assert np.array_equal(out.values, want.astype(da.dtype))
    q = imp.quantiles(da, q=[0.1, 0.9])
    assert q.dims == ("quantile",) + da.dims and list(q["quantile"].values) == [0.1, 0.9]
    assert np.array_equal(q.values, sample_quantile(draws.values, np.array([0.1, 0.9]), axis=0))
    sd = imp.std(da)
    assert sd.dims == da.dims and (sd.values[~np.isnan(da.values)] == 0).all()
    assert np.allclose(sd.values, draws.values.std(axis=0))


def test_grid_errors_are_clear(grid):
    _, ds, _ = grid
    imp = Imputer(**SETTINGS).fit(ds)
    with pytest.raises(DataError, match="trained on|fitted on"):
        imp.transform(ds.isel(latitude=slice(0, 2)))
    with pytest.raises(DataError, match="cannot recognise the"):
        Imputer(**SETTINGS).fit(xr.DataArray(np.zeros((4, 2, 2)), dims=("a", "b", "c")))
