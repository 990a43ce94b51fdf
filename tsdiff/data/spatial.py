"""Spatial metadata stored next to a :class:`~tsdiff.data.series.Series`.

- :class:`GraphSpatial`: a weighted graph over the N nodes, in torch_geometric
  conventions (``edge_index [2, E]`` int64, ``edge_weight [E]`` float32, an edge
  ``(i, j)`` carries ``weight`` from node i to node j).
- :class:`GridSpatial`: a regular lat/lon grid whose ``H * W`` cells are flattened
  (row-major, latitude first) into the N axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tsdiff.errors import DataError


@dataclass
class GraphSpatial:
    """A weighted graph over the spatial axis.

    Attributes:
        edge_index: int64 tensor ``[2, E]`` of (source, target) node positions.
        edge_weight: float32 tensor ``[E]``, finite and >= 0.
        num_nodes: N; every index in ``edge_index`` is < N.
        node_names: optional N names, in node order (e.g. sensor ids).
    """

    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    num_nodes: int
    node_names: list[str] | None = None
    kind: str = field(default="graph", init=False)

    def __post_init__(self) -> None:
        ei = torch.as_tensor(self.edge_index, dtype=torch.long)
        ew = torch.as_tensor(self.edge_weight, dtype=torch.float32)
        if ei.dim() != 2 or ei.shape[0] != 2:
            raise DataError(f"edge_index must have shape [2, E], got {tuple(ei.shape)}")
        if ew.shape != (ei.shape[1],):
            raise DataError(f"edge_weight must have shape [E] = [{ei.shape[1]}], got {tuple(ew.shape)}")
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= self.num_nodes):
            raise DataError(
                f"edge_index refers to node {int(ei.max())} (or a negative index) but the graph has "
                f"num_nodes={self.num_nodes}; the adjacency must match the number of nodes"
            )
        check_weights(ew.numpy(), "edge_weight")
        if self.node_names is not None and len(self.node_names) != self.num_nodes:
            raise DataError(f"node_names has {len(self.node_names)} entries but num_nodes={self.num_nodes}")
        self.edge_index, self.edge_weight = ei, ew

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def to_dense(self) -> np.ndarray:
        """Dense float32 adjacency ``[N, N]``, ``A[i, j]`` = weight of edge i -> j."""
        adj = np.zeros((self.num_nodes, self.num_nodes), dtype=np.float32)
        src, dst = self.edge_index.numpy()
        np.add.at(adj, (src, dst), self.edge_weight.numpy())
        return adj

    def check_nodes(self, num_nodes: int) -> None:
        """Raise DataError unless this graph has ``num_nodes`` nodes."""
        if num_nodes != self.num_nodes:
            raise DataError(
                f"the graph has {self.num_nodes} nodes but the series has N={num_nodes}; "
                "use an adjacency built for the same sensors, in the same order"
            )


def check_weights(weights: np.ndarray, what: str = "adjacency") -> None:
    """Raise DataError on NaN, infinite or negative weights."""
    w = np.asarray(weights)
    n_nan = int(np.isnan(w).sum())
    if n_nan:
        raise DataError(f"{what} has {n_nan} NaN weight(s); use 0 for 'no edge'")
    if np.isinf(w).any():
        raise DataError(f"{what} has infinite weight(s); convert distances with gaussian_kernel() first")
    n_neg = int((w < 0).sum())
    if n_neg:
        raise DataError(f"{what} has {n_neg} negative weight(s) (min {w.min():g}); weights must be >= 0")


@dataclass
class GridSpatial:
    """A regular grid flattened into the spatial axis (cell ``n = i * W + j``).

    Attributes:
        lat: ``[H]`` latitudes (degrees_north) in the source order.
        lon: ``[W]`` longitudes (degrees_east).
        land_mask: optional bool ``[H, W]`` (True = cell is used).
        dims: names of the (time, lat, lon) dimensions in the source.
        coord_attrs: attributes of each coordinate, to rebuild the source exactly.
    """

    lat: np.ndarray
    lon: np.ndarray
    land_mask: np.ndarray | None = None
    dims: tuple[str, str, str] = ("time", "latitude", "longitude")
    coord_attrs: dict = field(default_factory=dict)
    kind: str = field(default="grid", init=False)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.lat), len(self.lon)

    @property
    def num_nodes(self) -> int:
        return len(self.lat) * len(self.lon)

    def cell_name(self, n: int) -> str:
        """Cell ``n`` by its coordinates, for messages (the spatial axis' ``"i_j"`` labels are
        positions the user never saw)."""
        i, j = divmod(int(n), len(self.lon))
        return f"the cell at {self.dims[1]}={self.lat[i]:g}, {self.dims[2]}={self.lon[j]:g}"
