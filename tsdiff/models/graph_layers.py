"""Graph building blocks shared by the spatial denoisers (graph U-Net, CSDI on graphs).

- :func:`grid_graph`: the 4- or 8-neighbour graph of a :class:`GridSpatial`, so graph
  models run on gridded fields.
- :func:`graph_of`: the graph a model uses for ``Condition.spatial`` (a graph as is, a
  grid through :func:`grid_graph`), with a clear error when there is none.
- :class:`GraphSupports`: the forward and backward random-walk transition matrices of a
  (directed, weighted) graph as sparse matrices, cached per graph and device.
- :class:`DiffusionGraphConv`: the diffusion convolution of DCRNN (Li et al. 2018),
  ``sum_k (P_f^k X W_k + P_b^k X W'_k)``, propagated with torch_geometric's sparse
  matrix product so the cost grows with the number of edges.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
from torch_geometric.utils import scatter, spmm, to_torch_csr_tensor

from tsdiff.data.spatial import GraphSpatial, GridSpatial
from tsdiff.errors import ConfigError, DataError


def grid_graph(grid: GridSpatial, neighbours: int = 8) -> GraphSpatial:
    """The neighbour graph of a regular grid, cells flattened row-major (``n = i * W + j``).

    Edges join each cell to its 4 (N, S, E, W) or 8 (also diagonal) neighbours, in both
    directions, with weight 1 for side neighbours and ``1 / sqrt(2)`` for diagonal ones
    (inverse distance in cell units). Cells outside ``grid.land_mask`` get no edges.

    Returns:
        a GraphSpatial over the ``H * W`` cells.
    """
    if neighbours not in (4, 8):
        raise ConfigError(f"grid_neighbours must be 4 or 8, got {neighbours!r}")
    H, W = grid.shape
    used = np.ones((H, W), dtype=bool) if grid.land_mask is None else np.asarray(grid.land_mask, dtype=bool)
    if used.shape != (H, W):
        raise DataError(f"the grid's land_mask has shape {used.shape} but the grid is {(H, W)}")
    offsets = [(-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0)]
    if neighbours == 8:
        d = float(1.0 / np.sqrt(2.0))
        offsets += [(-1, -1, d), (-1, 1, d), (1, -1, d), (1, 1, d)]
    ii, jj = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    src, dst, w = [], [], []
    for di, dj, weight in offsets:
        ti, tj = ii + di, jj + dj
        ok = (ti >= 0) & (ti < H) & (tj >= 0) & (tj < W)
        ok[ok] &= used[ii[ok], jj[ok]] & used[ti[ok], tj[ok]]
        src.append((ii * W + jj)[ok])
        dst.append((ti * W + tj)[ok])
        w.append(np.full(int(ok.sum()), weight, dtype=np.float32))
    edge_index = torch.from_numpy(np.stack([np.concatenate(src), np.concatenate(dst)]).astype(np.int64))
    return GraphSpatial(edge_index, torch.from_numpy(np.concatenate(w)), H * W)


def graph_of(spatial, model: str, num_nodes: int, grid_neighbours: int = 8) -> GraphSpatial:
    """The graph a graph model runs on: a GraphSpatial as is, a GridSpatial's neighbour graph.

    Raises:
        DataError: no spatial metadata, or a graph / grid of the wrong size.
    """
    if isinstance(spatial, GridSpatial):
        graph = grid_graph(spatial, grid_neighbours)
    elif isinstance(spatial, GraphSpatial):
        graph = spatial
    else:
        raise DataError(
            f"model {model!r} needs a graph (or a grid), but the data has "
            f"{'no spatial metadata' if spatial is None else type(spatial).__name__}; give the series a "
            "GraphSpatial (tsdiff.data.adapters.graph: from_dense, from_edge_list, from_coordinates) or a "
            "GridSpatial, or use a model without a graph (e.g. csdi with spatial: none)"
        )
    if graph.num_nodes != num_nodes:
        raise DataError(
            f"model {model!r} was built for N={num_nodes} nodes but the graph has {graph.num_nodes}; "
            "use an adjacency built for the same nodes, in the same order"
        )
    return graph


def transition_supports(graph: GraphSpatial) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Forward and backward random-walk transition matrices of ``graph`` as sparse entries.

    With ``A[i, j]`` the weight of edge i -> j, the forward transition is
    ``P_f = D_out^-1 A`` and the backward one ``P_b = D_in^-1 A^T`` (DCRNN). Each is
    returned as ``(index [2, E], value [E])`` with ``index = (row, column)``, so
    ``(P x)[i] = sum_j P[i, j] x[j]``. Nodes without edges get zero rows.
    """
    ei, w = graph.edge_index, graph.edge_weight
    n = graph.num_nodes
    out_deg = scatter(w, ei[0], dim=0, dim_size=n, reduce="sum")
    in_deg = scatter(w, ei[1], dim=0, dim_size=n, reduce="sum")
    inv = lambda d: torch.where(d > 0, 1.0 / d.clamp_min(1e-12), torch.zeros_like(d))  # noqa: E731
    return [(ei, w * inv(out_deg)[ei[0]]), (ei.flip(0), w * inv(in_deg)[ei[1]])]


class GraphSupports:
    """Transition matrices of the graph in ``Condition.spatial``, cached per graph and device.

    The matrices are torch_geometric sparse CSR tensors ``[N, N]``. The cache holds the
    last spatial object seen (compared by identity), so a model called many times with
    the same graph normalises it once.
    """

    def __init__(self, model: str, num_nodes: int, grid_neighbours: int = 8) -> None:
        self.model, self.num_nodes, self.grid_neighbours = model, num_nodes, grid_neighbours
        self._key = None
        self._value: list[torch.Tensor] = []

    def check(self, spatial) -> GraphSpatial:
        """Raise DataError unless ``spatial`` gives a usable graph; returns it."""
        return graph_of(spatial, self.model, self.num_nodes, self.grid_neighbours)

    def __call__(self, spatial, device: torch.device) -> list[torch.Tensor]:
        """The forward and backward transition matrices, sparse CSR ``[N, N]`` on ``device``."""
        if self._key is None or self._key[0] is not spatial or self._key[1] != device:
            graph = self.check(spatial)
            n = graph.num_nodes
            with warnings.catch_warnings():  # torch flags sparse CSR as beta
                warnings.simplefilter("ignore", UserWarning)
                self._value = [to_torch_csr_tensor(idx.to(device), val.to(device), size=(n, n))
                               for idx, val in transition_supports(graph)]
            self._key = (spatial, device)
        return self._value


class DiffusionGraphConv(nn.Module):
    """Diffusion convolution over the node axis (Li et al. 2018, DCRNN, Eq. 2).

    ``out = [X, P_f X, ..., P_f^K X, P_b X, ..., P_b^K X] W + b``: the weighted graph
    enters through its transition matrices (torch_geometric sparse matrix products).
    DiffSTG's spatial block is the ``K = 1`` case.

    Args:
        in_channels, out_channels: feature sizes.
        order: K, the number of diffusion hops per direction.
    """

    def __init__(self, in_channels: int, out_channels: int, order: int = 1) -> None:
        super().__init__()
        if not isinstance(order, int) or order < 1:
            raise ConfigError(f"graph order must be an integer >= 1, got {order!r}")
        self.order = order
        self.lin = nn.Linear(in_channels * (1 + 2 * order), out_channels)

    def forward(self, x: torch.Tensor, supports: list[torch.Tensor]) -> torch.Tensor:
        """Args: x ``[N, S, in]`` (node-first, S independent graph signals). Returns ``[N, S, out]``."""
        N, S, c = x.shape
        flat = x.reshape(N, S * c)
        if flat.dtype in (torch.float16, torch.bfloat16) and supports:
            flat = flat.to(supports[0].dtype)
        hops = [flat]
        # sparse CSR products have no half-precision CPU kernel: under bf16/fp16 autocast, hop in float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            for P in supports:
                h = flat
                for _ in range(self.order):
                    h = spmm(P, h)
                    hops.append(h)
        return self.lin(torch.stack(hops, dim=-1).reshape(N, S, c * len(hops)))
