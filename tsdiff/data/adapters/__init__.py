"""Adapters from common data containers to :class:`~tsdiff.data.series.Series` and back.

- :mod:`.frames`: pandas wide / long DataFrames and numpy arrays.
- :mod:`.gluonts`: GluonTS datasets in, ``SampleForecast`` out.
- :mod:`.graph`: adjacency formats -> :class:`~tsdiff.data.spatial.GraphSpatial`.
- :mod:`.grid`: xarray grids (CF conventions, lazy) <-> Series.

Submodules are imported on use, so ``import tsdiff.data`` stays light.
"""
