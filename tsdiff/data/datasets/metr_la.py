"""METR-LA: one week of traffic speeds at 207 Los Angeles sensors + DCRNN's graph.

Files (``$TSDIFF_DATA/metr_la/``): ``los_speed.csv`` (T-GCN's "Los-loop": a header
of sensor ids, 2016 rows of speeds in mph at 5-minute steps, zeros already filled
by its publisher), ``graph_sensor_ids.txt`` (sensor order), ``adj_mx.pkl``
(DCRNN's weighted adjacency, read by the restricted unpickler) and
``graph_sensor_locations.csv``. The speed file carries no timestamps; the week is
March 2012 (T-GCN), indexed here from ``2012-03-01 00:00`` by default.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.adapters.graph import from_dcrnn_pickle
from tsdiff.data.series import Series
from tsdiff.data.datasets.base import DataFile, DatasetSpec, checksums, locate_files
from tsdiff.errors import DataError

SPEC = DatasetSpec(
    name="metr_la",
    folder="metr_la",
    files=(
        DataFile("los_speed.csv", "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4"),
        DataFile("adj_mx.pkl", "a35687c6e15aa228dc45027b0ed2a0ea0f4ec78f573deb992c595092d12f61b3"),
        DataFile("graph_sensor_ids.txt", "3ba026caa2e6263ab0ea54b0fa1b125dbfa7216544cd05313b555e826292b990"),
        DataFile("graph_sensor_locations.csv", "eb8ea96e07358b45d0e4ba3b89c2673fa20c54af50150249e627389e749ade6f"),
    ),
    source=(
        "DCRNN repo https://github.com/liyaguang/DCRNN data/sensor_graph/ (adj_mx.pkl, graph_sensor_ids.txt, "
        "graph_sensor_locations.csv); T-GCN repo https://github.com/lehaifeng/T-GCN data/los_speed.csv"
    ),
    licence="MIT (repositories)",
    description="METR-LA one week: 2016 x 207 speeds (mph) at 5 min, DCRNN adjacency",
    card="metr_la.md",
)


def load_metr_la(data_dir=None, start: str = "2012-03-01 00:00", freq: str = "5min") -> Series:
    """METR-LA week as Series ``[2016, 207, 1]`` with ``spatial`` = DCRNN's graph.

    Node order is ``graph_sensor_ids.txt``; the loader checks that the speed file's
    header and the pickle's sensor ids agree with it. ``attrs`` holds units,
    latitude/longitude per sensor and the checksums.
    """
    paths = locate_files(SPEC, data_dir)
    sums = checksums(SPEC, paths)
    ids = paths["graph_sensor_ids.txt"].read_text().strip().split(",")
    speed = pd.read_csv(paths["los_speed.csv"], dtype=np.float64)
    header = [c.split(".")[0] for c in speed.columns]
    if header != ids:
        raise DataError("los_speed.csv columns are not in graph_sensor_ids.txt order")
    graph = from_dcrnn_pickle(paths["adj_mx.pkl"], num_nodes=len(ids))
    if graph.node_names != ids:
        raise DataError("adj_mx.pkl sensor ids differ from graph_sensor_ids.txt")
    loc = pd.read_csv(paths["graph_sensor_locations.csv"], dtype={"sensor_id": str}).set_index("sensor_id").loc[ids]
    index = pd.date_range(start, periods=len(speed), freq=freq, name="time")
    return Series(
        values=speed.to_numpy()[:, :, None],
        time_index=index,
        node_names=ids,
        channel_names=["speed"],
        spatial=graph,
        attrs={
            "dataset": "metr_la",
            "units": "mph",
            "latitude": loc["latitude"].tolist(),
            "longitude": loc["longitude"].tolist(),
            "checksums": sums,
            "note": "timestamps implied (the speed file has none)",
        },
    )
