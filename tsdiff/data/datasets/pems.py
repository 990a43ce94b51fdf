"""Road graphs of PEMS04, PEMS08 (ASTGCN edge lists) and PEMS-BAY (DCRNN).

- PEMS04 / PEMS08: ``PEMS0X_distance.csv`` with header ``from,to,cost`` (node
  positions 0..N-1, cost = road distance); 307 and 170 nodes.
- PEMS-BAY: ``distances_bay_2017.csv`` (no header: from_id, to_id, distance in m)
  and DCRNN's ``adj_mx_bay.pkl`` (sensor order + the official adjacency).

Weights use DCRNN's thresholded Gaussian kernel ``w = exp(-d^2 / sigma^2)``, sigma =
std of the listed distances, ``w < 0.1`` set to 0
(:func:`~tsdiff.data.adapters.graph.from_edge_list`). Built from the raw distances,
the PEMS-BAY graph reproduces ``adj_mx_bay.pkl`` (2694 edges).
"""

from __future__ import annotations

import pandas as pd

from tsdiff.data.adapters.graph import from_dcrnn_pickle, from_edge_list
from tsdiff.data.spatial import GraphSpatial
from tsdiff.data.datasets.base import DataFile, DatasetSpec, checksums, locate_files
from tsdiff.errors import DataError, UnknownNameError

PEMS_NODES = {"pems04": 307, "pems08": 170}

PEMS_SPECS = {
    "pems04": DatasetSpec(
        "pems04_graph", "pems",
        (DataFile("PEMS04_distance.csv", "68ffaa80447eb34428a9999dc28363c61406ec0fd714686d0582d2386ac6f5f7"),),
        "ASTGCN repo https://github.com/guoshnBJTU/ASTGCN-r-pytorch data/PEMS04/distance.csv", "Caltrans PeMS",
        "PeMSD4 road graph, 307 nodes, edge list from,to,cost", "pems_graphs.md",
    ),
    "pems08": DatasetSpec(
        "pems08_graph", "pems",
        (DataFile("PEMS08_distance.csv", "859d68e7583ed4e6016588eaaca494d3ece286dae361614c5c1833017f87eaa7"),),
        "ASTGCN repo https://github.com/guoshnBJTU/ASTGCN-r-pytorch data/PEMS08/distance.csv", "Caltrans PeMS",
        "PeMSD8 road graph, 170 nodes, edge list from,to,cost", "pems_graphs.md",
    ),
}

PEMS_BAY_SPEC = DatasetSpec(
    "pems_bay_graph", "pems_bay",
    (
        DataFile("adj_mx_bay.pkl", "116275f5704d0d492018e14c047f7ae5004385b450aa907f88424055a4a97370"),
        DataFile("distances_bay_2017.csv", "e5feed06bfa1ba4c554a946d0e03d99f2018365eec5a8f28fd8504dea9d082b5"),
        DataFile("graph_sensor_locations_bay.csv", "276ee01059610774d4e59572507f7e32eaac21f1f5882fcd9e3d7d426a4b7a6c"),
    ),
    "DCRNN repo https://github.com/liyaguang/DCRNN data/sensor_graph/", "MIT",
    "PEMS-BAY graph, 325 sensors", "pems_graphs.md",
)


def read_pems_edge_list(path, num_nodes: int, threshold: float = 0.1) -> GraphSpatial:
    """Graph from an ASTGCN ``from,to,cost`` csv over nodes ``0..num_nodes-1``."""
    df = pd.read_csv(path)
    if list(df.columns[:3]) != ["from", "to", "cost"]:
        raise DataError(f"{path}: expected columns from,to,cost, got {list(df.columns)}")
    return from_edge_list(df[["from", "to", "cost"]], num_nodes=num_nodes, threshold=threshold)


def load_pems_graph(name: str, data_dir=None, threshold: float = 0.1) -> GraphSpatial:
    """PEMS04 / PEMS08 road graph (``name`` = ``"pems04"`` or ``"pems08"``)."""
    if name not in PEMS_SPECS:
        raise UnknownNameError(f"unknown PEMS graph {name!r}; valid: {', '.join(PEMS_SPECS)}")
    spec = PEMS_SPECS[name]
    paths = locate_files(spec, data_dir)
    checksums(spec, paths)
    return read_pems_edge_list(paths[spec.files[0].name], PEMS_NODES[name], threshold)


def load_pems_bay_graph(data_dir=None, from_distances: bool = True, threshold: float = 0.1) -> GraphSpatial:
    """PEMS-BAY graph over the 325 sensors in ``adj_mx_bay.pkl`` order.

    Args:
        from_distances: build the weights from ``distances_bay_2017.csv`` (True) or
            return the official adjacency from the pickle (False).
    """
    paths = locate_files(PEMS_BAY_SPEC, data_dir)
    checksums(PEMS_BAY_SPEC, paths)
    official = from_dcrnn_pickle(paths["adj_mx_bay.pkl"])
    if not from_distances:
        return official
    edges = pd.read_csv(paths["distances_bay_2017.csv"], header=None)
    return from_edge_list(edges, node_ids=official.node_names, threshold=threshold)
