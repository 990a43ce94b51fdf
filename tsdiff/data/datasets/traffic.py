"""Full traffic benchmarks that are too large to mirror: METR-LA, PEMS-BAY, PEMS04, PEMS08.

- METR-LA / PEMS-BAY (DCRNN, Li et al. 2018): speeds in DCRNN's ``metr-la.h5`` /
  ``pems-bay.h5`` (pandas fixed-format HDF5, read with h5py by
  :func:`~tsdiff.data.datasets.hdf5.read_pandas_hdf5`: rows = 5-minute timestamps,
  columns = sensor ids) and the graph in ``adj_mx.pkl`` / ``adj_mx_bay.pkl`` (restricted
  unpickler). Zero speeds are missing readings (DCRNN masks them in its metrics), so
  they become NaN by default. Timestamps absent from the file (PEMS-BAY lacks the
  hour of the daylight-saving switch) are inserted as all-NaN rows, so the series is
  on a regular 5-minute grid; ``attrs["inserted_steps"]`` counts them.
- PEMS04 / PEMS08 (ASTGCN, Guo et al. 2019): ``pems04.npz`` / ``pems08.npz`` with array
  ``data`` ``[T, N, 3]`` (flow, occupancy, speed) at 5 minutes, plus the road graph
  ``PEMS0X_distance.csv``. The files carry no timestamps; the periods are those of
  the ASTGCN paper (PEMS04: 2018-01-01 .. 02-28, PEMS08: 2016-07-01 .. 08-31).

Protocols (registered in ``DATASETS``): 12 -> 12 step forecasting on every window of
24 steps; windows split in time order as DCRNN (70/10/20 of the windows, ``round``)
or STSGCN (60/20/20, ``int``) do.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd

from tsdiff.data.adapters.graph import from_dcrnn_pickle
from tsdiff.data.forecasting import build_forecasting_protocol
from tsdiff.data.protocol import DATASETS, Protocol
from tsdiff.data.series import Series
from tsdiff.data.datasets.base import DataFile, DatasetSpec, checksums, locate_files
from tsdiff.data.datasets.hdf5 import read_pandas_hdf5
from tsdiff.data.datasets.pems import PEMS_NODES, read_pems_edge_list
from tsdiff.errors import ConfigError, DataError

DCRNN_SOURCE = "DCRNN repo https://github.com/liyaguang/DCRNN (data/ links: metr-la.h5, pems-bay.h5; data/sensor_graph/)"
ASTGCN_SOURCE = "ASTGCN repo https://github.com/guoshnBJTU/ASTGCN-r-pytorch (data/PEMS0X/pems0x.npz, distance.csv)"

METR_LA_FULL_SPEC = DatasetSpec(
    "metr_la_full", "metr_la",
    (DataFile("metr-la.h5"),
     DataFile("adj_mx.pkl", "a35687c6e15aa228dc45027b0ed2a0ea0f4ec78f573deb992c595092d12f61b3")),
    DCRNN_SOURCE, "MIT (DCRNN repository)",
    "METR-LA, 34272 x 207 speeds (mph) at 5 min, 2012-03-01 .. 2012-06-27, DCRNN adjacency", "metr_la_full.md",
)
PEMS_BAY_FULL_SPEC = DatasetSpec(
    "pems_bay_full", "pems_bay",
    (DataFile("pems-bay.h5"),
     DataFile("adj_mx_bay.pkl", "116275f5704d0d492018e14c047f7ae5004385b450aa907f88424055a4a97370")),
    DCRNN_SOURCE, "MIT (DCRNN repository)",
    "PEMS-BAY, 52116 x 325 speeds (mph) at 5 min, 2017-01-01 .. 2017-06-30, DCRNN adjacency", "pems_bay.md",
)
#: name -> (spec, first timestamp) of the ASTGCN flow files.
PEMS_FLOW = {
    "pems04": (DatasetSpec(
        "pems04", "pems",
        (DataFile("pems04.npz"),
         DataFile("PEMS04_distance.csv", "68ffaa80447eb34428a9999dc28363c61406ec0fd714686d0582d2386ac6f5f7")),
        ASTGCN_SOURCE, "Caltrans PeMS",
        "PeMSD4 flows, 16992 x 307 x 3 (flow, occupancy, speed) at 5 min, 2018-01-01 .. 02-28", "pems04.md",
    ), "2018-01-01"),
    "pems08": (DatasetSpec(
        "pems08", "pems",
        (DataFile("pems08.npz"),
         DataFile("PEMS08_distance.csv", "859d68e7583ed4e6016588eaaca494d3ece286dae361614c5c1833017f87eaa7")),
        ASTGCN_SOURCE, "Caltrans PeMS",
        "PeMSD8 flows, 17856 x 170 x 3 (flow, occupancy, speed) at 5 min, 2016-07-01 .. 08-31", "pems08.md",
    ), "2016-07-01"),
}
PEMS_CHANNELS = ("flow", "occupancy", "speed")


def regular_grid(frame: pd.DataFrame, freq: str, where: str) -> tuple[pd.DataFrame, int]:
    """Put a frame with a sorted, unique DatetimeIndex on the regular ``freq`` grid.

    Timestamps absent from the frame become all-NaN rows.

    Returns:
        ``(frame on the grid, number of inserted rows)``.
    Raises:
        DataError: duplicate or unsorted timestamps, or timestamps off the grid.
    """
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise DataError(f"{where}: the row index must hold timestamps, got {type(idx).__name__}")
    if not idx.is_unique:
        raise DataError(f"{where}: duplicate timestamp {idx[idx.duplicated()][0]}")
    if not idx.is_monotonic_increasing:
        raise DataError(f"{where}: timestamps are not sorted")
    grid = pd.date_range(idx[0], idx[-1], freq=freq, name=idx.name)
    off = idx.difference(grid)
    if len(off):
        raise DataError(f"{where}: timestamp {off[0]} is not on the {freq} grid starting {idx[0]}")
    return frame.reindex(grid), len(grid) - len(idx)


def read_dcrnn_h5(h5_path, adj_path, *, zeros_as_missing: bool = True, freq: str = "5min",
                  channel: str = "speed", units: str = "mph") -> Series:
    """A DCRNN speed file + its adjacency pickle -> Series ``[T, N, 1]`` with the graph.

    Node order is the pickle's sensor order; the file's columns are matched to it by id.

    Raises:
        DataError: sensors of the pickle missing from the file (or the reverse), or an
            irregular time index.
    """
    frame = read_pandas_hdf5(h5_path)
    graph = from_dcrnn_pickle(adj_path)
    cols = [str(c) for c in frame.columns]
    if sorted(cols) != sorted(graph.node_names) or len(set(cols)) != len(cols):
        extra = sorted(set(cols) - set(graph.node_names))[:3]
        absent = sorted(set(graph.node_names) - set(cols))[:3]
        raise DataError(
            f"{h5_path} has {len(cols)} sensors, {adj_path} has {graph.num_nodes}; they must be the same sensors "
            f"(in the file only: {extra}, in the graph only: {absent})"
        )
    frame.columns = cols
    frame = frame[graph.node_names]
    frame, inserted = regular_grid(frame, freq, str(h5_path))
    values = frame.to_numpy(dtype=np.float64)
    n_zero = int((values == 0).sum())
    if zeros_as_missing:
        values[values == 0] = np.nan
    return Series(
        values[:, :, None], pd.DatetimeIndex(frame.index, name="time"), list(graph.node_names), [channel],
        spatial=graph,
        attrs={"units": units, "freq": freq, "inserted_steps": inserted, "zeros": n_zero,
               "zeros_as_missing": zeros_as_missing},
    )


def read_pems_npz(npz_path, distance_path, num_nodes: int, start: str, *, freq: str = "5min",
                  channels: tuple[str, ...] | list[str] | None = ("flow",), threshold: float = 0.1) -> Series:
    """An ASTGCN ``pems0X.npz`` + ``distance.csv`` -> Series ``[T, N, C]`` with the road graph.

    Args:
        channels: which of ``flow, occupancy, speed`` to keep (None: all in the file).
    Raises:
        DataError: no ``data`` array, a shape other than ``[T, N, 3]`` / ``[T, N, 1]`` /
            ``[T, N]``, N different from the graph, or non-numeric data. Object arrays
            are never unpickled.
    """
    if not zipfile.is_zipfile(npz_path):
        raise DataError(f"{npz_path}: not a readable .npz file (an .npz is a zip archive of .npy arrays)")
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            if "data" not in z.files:
                raise DataError(f"{npz_path}: expected an array named 'data', found {z.files}")
            data = z["data"]
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataError(f"{npz_path}: cannot read the 'data' array without unpickling ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{npz_path}: not a readable .npz file ({exc})") from None
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[2] not in (1, 3) or not np.issubdtype(data.dtype, np.number):
        raise DataError(f"{npz_path}: 'data' must be a numeric [T, N, 3] or [T, N, 1] array, got {data.shape} {data.dtype}")
    if data.shape[1] != num_nodes:
        raise DataError(f"{npz_path}: 'data' has N={data.shape[1]} nodes but the road graph has {num_nodes}")
    names = list(PEMS_CHANNELS[: data.shape[2]]) if data.shape[2] == 3 else ["flow"]
    keep = names if channels is None else list(channels)
    bad = [c for c in keep if c not in names]
    if bad or not keep:
        raise ConfigError(f"channels {bad or keep} not in the file's channels {names}")
    values = data[:, :, [names.index(c) for c in keep]].astype(np.float64)
    graph = read_pems_edge_list(distance_path, num_nodes, threshold)
    index = pd.date_range(start, periods=data.shape[0], freq=freq, name="time")
    return Series(values, index, [str(i) for i in range(num_nodes)], keep, spatial=graph,
                  attrs={"freq": freq, "note": "timestamps implied (the file has none)"})


def load_metr_la_full(data_dir=None, zeros_as_missing: bool = True) -> Series:
    """Full METR-LA from DCRNN's ``metr-la.h5``: Series ``[34272, 207, 1]`` (mph)."""
    return _load_dcrnn(METR_LA_FULL_SPEC, "metr-la.h5", "adj_mx.pkl", "metr_la_full", data_dir, zeros_as_missing)


def load_pems_bay(data_dir=None, zeros_as_missing: bool = True) -> Series:
    """PEMS-BAY from DCRNN's ``pems-bay.h5``: Series ``[52128, 325, 1]`` (12 inserted NaN rows)."""
    return _load_dcrnn(PEMS_BAY_FULL_SPEC, "pems-bay.h5", "adj_mx_bay.pkl", "pems_bay", data_dir, zeros_as_missing)


def _load_dcrnn(spec, h5_name: str, pkl_name: str, dataset: str, data_dir, zeros_as_missing: bool) -> Series:
    paths = locate_files(spec, data_dir)
    sums = checksums(spec, paths)
    s = read_dcrnn_h5(paths[h5_name], paths[pkl_name], zeros_as_missing=zeros_as_missing)
    s.attrs.update(dataset=dataset, checksums=sums)
    return s


def load_pems_flows(name: str, data_dir=None, channels=("flow",)) -> Series:
    """PEMS04 / PEMS08 (``name``) flows with the road graph: Series ``[T, N, len(channels)]``."""
    if name not in PEMS_FLOW:
        raise ConfigError(f"unknown PEMS flow dataset {name!r}; valid: {', '.join(PEMS_FLOW)}")
    spec, start = PEMS_FLOW[name]
    paths = locate_files(spec, data_dir)
    sums = checksums(spec, paths)
    s = read_pems_npz(paths[spec.files[0].name], paths[spec.files[1].name], PEMS_NODES[name], start,
                      channels=channels)
    s.attrs.update(dataset=name, checksums=sums, units="vehicles / 5 min" if s.channel_names == ["flow"] else "")
    return s


def window_split(num_windows: int, fractions, rounding: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split window positions ``0..num_windows-1`` in time order into train / val / test.

    ``rounding="dcrnn"``: ``n_test = round(f_test * n)``, ``n_train = round(f_train * n)``,
    validation the rest (DCRNN's ``generate_training_data``); ``"floor"``: cut at
    ``int(f_train * n)`` and ``int((f_train + f_val) * n)`` (STSGCN).
    """
    f = [float(x) for x in fractions]
    if len(f) != 3 or min(f) < 0 or abs(sum(f) - 1) > 1e-6:
        raise ConfigError(f"fractions must be 3 numbers >= 0 summing to 1, got {list(fractions)}")
    n = num_windows
    if rounding == "dcrnn":
        n_test, n_train = round(n * f[2]), round(n * f[0])
        a, b = n_train, n - n_test
    elif rounding == "floor":
        a, b = int(n * f[0]), int(n * (f[0] + f[1]))
    else:
        raise ConfigError(f"rounding must be 'dcrnn' or 'floor', got {rounding!r}")
    pos = np.arange(n, dtype=np.int64)
    parts = pos[:a], pos[a:b], pos[b:]
    if any(len(p) == 0 for p in parts):
        raise DataError(f"{n} windows split {f} leave an empty split; use more data or other fractions")
    return parts


def windowed_forecasting_protocol(protocol_id: str, series: Series, context: int, horizon: int, fractions,
                                  rounding: str, test_stride: int = 1, meta: dict | None = None) -> Protocol:
    """Forecasting on every window of ``context + horizon`` steps, windows split in time order.

    Train windows slide by one step; validation and test windows every ``test_stride``
    steps (1 = every window, as DCRNN / STSGCN evaluate).
    """
    for key, val in dict(context=context, horizon=horizon, test_stride=test_stride).items():
        if not isinstance(val, int) or val < 1:
            raise ConfigError(f"data.options.{key} must be an integer >= 1, got {val!r}")
    n = series.shape[0] - context - horizon + 1
    if n < 3:
        raise DataError(
            f"the series has {series.shape[0]} steps, too short for windows of {context} + {horizon} steps"
        )
    train, val, test = window_split(n, fractions, rounding)
    return build_forecasting_protocol(
        protocol_id, series, context, horizon, train, val[::test_stride], test[::test_stride],
        checksums=series.attrs.get("checksums", {}),
        meta={"units": series.attrs.get("units", ""), "fractions": list(fractions), "rounding": rounding,
              "test_stride": test_stride, **(meta or {})},
    )


@DATASETS.register("metr_la_full")
def metr_la_full_protocol(data_dir=None, context: int = 12, horizon: int = 12, test_stride: int = 1,
                          fractions=(0.7, 0.1, 0.2), zeros_as_missing: bool = True) -> Protocol:
    """Full METR-LA, DCRNN's protocol: 12 -> 12 steps, windows split 70/10/20 (see the module docstring)."""
    series = load_metr_la_full(data_dir, zeros_as_missing)
    return windowed_forecasting_protocol(f"metr_la-dcrnn-c{context}-h{horizon}-s{test_stride}", series, context,
                                         horizon, fractions, "dcrnn", test_stride)


@DATASETS.register("pems_bay")
def pems_bay_protocol(data_dir=None, context: int = 12, horizon: int = 12, test_stride: int = 1,
                      fractions=(0.7, 0.1, 0.2), zeros_as_missing: bool = True) -> Protocol:
    """PEMS-BAY, DCRNN's protocol: 12 -> 12 steps, windows split 70/10/20 (see the module docstring)."""
    series = load_pems_bay(data_dir, zeros_as_missing)
    return windowed_forecasting_protocol(f"pems_bay-dcrnn-c{context}-h{horizon}-s{test_stride}", series, context,
                                         horizon, fractions, "dcrnn", test_stride)


def _pems_flow_protocol(name: str):
    def protocol(data_dir=None, context: int = 12, horizon: int = 12, test_stride: int = 1,
                 fractions=(0.6, 0.2, 0.2), channels=("flow",)) -> Protocol:
        series = load_pems_flows(name, data_dir, tuple(channels))
        return windowed_forecasting_protocol(f"{name}-stsgcn-c{context}-h{horizon}-s{test_stride}", series,
                                             context, horizon, fractions, "floor", test_stride)

    protocol.__name__ = f"{name}_protocol"
    protocol.__doc__ = f"{name.upper()} flow forecasting, 12 -> 12 steps, windows split 60/20/20 (STSGCN)."
    return protocol


for _name in PEMS_FLOW:
    DATASETS.add(_name, _pems_flow_protocol(_name))

