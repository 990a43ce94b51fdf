"""Graph adapters: any common adjacency format -> :class:`GraphSpatial`.

Accepted inputs: a dense ``[N, N]`` matrix, a scipy sparse matrix, an edge list with
distances (converted by DCRNN's thresholded Gaussian kernel), DCRNN's ``adj_mx.pkl``
(read with the restricted unpickler), or node coordinates (k nearest neighbours).
:func:`normalize` is the one place adjacency normalisation happens.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
from torch_geometric.utils import add_remaining_self_loops, from_scipy_sparse_matrix, scatter

from tsdiff.data.safe_io import safe_load_pickle
from tsdiff.data.spatial import GraphSpatial, check_weights
from tsdiff.errors import ConfigError, DataError

EARTH_RADIUS_KM = 6371.0088


def from_dense(adj, node_names: list[str] | None = None, num_nodes: int | None = None) -> GraphSpatial:
    """Graph from a dense adjacency ``[N, N]`` (zeros = no edge).

    Args:
        num_nodes: if given, the N the adjacency must have (e.g. the series' N).
    """
    raw = np.asarray(adj)
    try:
        if raw.dtype.kind not in "biufO":  # strings, complex, datetimes: not edge weights
            raise TypeError(raw.dtype)
        a = raw.astype(np.float64, copy=False)
    except (TypeError, ValueError):
        raise DataError(f"the adjacency must be numeric (edge weights, 0 = no edge), got dtype {raw.dtype}") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise DataError(f"a dense adjacency must be square [N, N], got shape {a.shape}")
    if num_nodes is not None and a.shape[0] != num_nodes:
        raise DataError(
            f"adjacency is {a.shape[0]}x{a.shape[1]} but there are {num_nodes} nodes; "
            "use an adjacency built for the same nodes"
        )
    check_weights(a)
    src, dst = np.nonzero(a)
    return GraphSpatial(
        torch.from_numpy(np.stack([src, dst]).astype(np.int64)),
        torch.from_numpy(a[src, dst].astype(np.float32)),
        a.shape[0],
        node_names,
    )


def from_scipy(matrix, node_names: list[str] | None = None, num_nodes: int | None = None) -> GraphSpatial:
    """Graph from a scipy sparse matrix ``[N, N]`` (stored entries = edges)."""
    if matrix.shape[0] != matrix.shape[1]:
        raise DataError(f"a sparse adjacency must be square, got shape {matrix.shape}")
    if num_nodes is not None and matrix.shape[0] != num_nodes:
        raise DataError(f"adjacency is {matrix.shape[0]}x{matrix.shape[1]} but there are {num_nodes} nodes")
    check_weights(matrix.tocoo().data)
    ei, ew = from_scipy_sparse_matrix(matrix.tocoo())
    return GraphSpatial(ei, ew.float(), matrix.shape[0], node_names)


def gaussian_kernel(dist: np.ndarray, sigma: float | None = None, threshold: float = 0.1) -> tuple[np.ndarray, float]:
    """DCRNN's thresholded Gaussian kernel (Li et al. 2018, Sec. 4.1).

    ``w = exp(-d^2 / sigma^2)``, set to 0 where ``w < threshold``; ``inf`` = no path.

    Args:
        dist: distances, any shape (``inf`` where unknown).
        sigma: kernel width; default: std of the finite distances.
    Returns:
        ``(weights, sigma)`` with weights of the same shape as ``dist``.
    """
    d = np.asarray(dist, dtype=np.float64)
    if np.isnan(d).any() or (d < 0).any():
        raise DataError("distances must be >= 0 (inf = no road between the sensors), found NaN or negative")
    finite = d[np.isfinite(d)]
    if sigma is None:
        sigma = float(finite.std()) if finite.size else 0.0
    if not sigma > 0:
        raise DataError(f"kernel width sigma must be > 0, got {sigma} (all distances equal?)")
    with np.errstate(over="ignore"):
        w = np.exp(-np.square(d / sigma))
    w[w < threshold] = 0.0
    return w, sigma


def from_edge_list(
    edges,
    node_ids: list | None = None,
    num_nodes: int | None = None,
    sigma: float | None = None,
    threshold: float = 0.1,
    symmetric: bool = False,
) -> GraphSpatial:
    """Graph from an edge list of road distances (``from, to, cost`` rows).

    Follows DCRNN's ``gen_adj_mx``: a dense distance matrix (inf = no entry) is
    filled from the list and turned into weights with :func:`gaussian_kernel`,
    with sigma the std of the listed distances.

    Args:
        edges: DataFrame with 3 columns (from, to, distance) or an array ``[E, 3]``.
        node_ids: node identifiers in node order; ``from``/``to`` are looked up in it.
            Default: ``from``/``to`` are positions ``0..N-1``.
        num_nodes: N when ``node_ids`` is not given (default: max index + 1).
        symmetric: also add each distance in the reverse direction.
    """
    df = pd.DataFrame(np.asarray(edges) if not isinstance(edges, pd.DataFrame) else edges.to_numpy())
    if df.shape[1] != 3:
        raise DataError(f"an edge list needs 3 columns (from, to, distance), got {df.shape[1]}")
    if len(df) == 0:
        raise DataError("the edge list is empty; give at least one (from, to, distance) row")
    dist = df[2].to_numpy(dtype=np.float64)
    if node_ids is not None:
        pos = {str(k): i for i, k in enumerate(node_ids)}
        keys_src, keys_dst = df[0].map(_id_str), df[1].map(_id_str)
        keep = keys_src.isin(pos) & keys_dst.isin(pos)  # DCRNN drops rows of unknown sensors
        src = keys_src[keep].map(pos).to_numpy(dtype=np.int64)
        dst = keys_dst[keep].map(pos).to_numpy(dtype=np.int64)
        dist = dist[keep.to_numpy()]
        n = len(node_ids)
    else:
        src, dst = df[0].to_numpy(dtype=np.int64), df[1].to_numpy(dtype=np.int64)
        n = int(num_nodes if num_nodes is not None else max(src.max(), dst.max()) + 1)
        if src.min() < 0 or max(src.max(), dst.max()) >= n:
            raise DataError(f"edge list refers to node {max(src.max(), dst.max())} but num_nodes={n}")
    d = np.full((n, n), np.inf)
    d[src, dst] = dist
    if symmetric:
        d[dst, src] = np.minimum(d[dst, src], dist)
    w, _ = gaussian_kernel(d, sigma, threshold)
    names = [str(k) for k in node_ids] if node_ids is not None else None
    return from_dense(w, names)


def _id_str(x) -> str:
    """Sensor ids compare as strings; ``400001.0`` and ``400001`` are the same id."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def from_dcrnn_pickle(path: str | os.PathLike, num_nodes: int | None = None) -> GraphSpatial:
    """Graph from DCRNN's ``adj_mx.pkl`` (``[sensor_ids, sensor_id_to_ind, adj_mx]``).

    The pickle is read by :func:`~tsdiff.data.safe_io.safe_load_pickle`, so a file
    that tries to run code is refused.
    """
    obj = safe_load_pickle(path)
    if not (isinstance(obj, (list, tuple)) and len(obj) == 3 and isinstance(obj[2], np.ndarray)):
        raise DataError(f"{path}: expected DCRNN's [sensor_ids, sensor_id_to_ind, adj_mx], got {type(obj).__name__}")
    ids, _, adj = obj
    if len(ids) != adj.shape[0]:
        raise DataError(f"{path}: {len(ids)} sensor ids but the adjacency is {adj.shape}")
    return from_dense(adj, [str(i) for i in ids], num_nodes)


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasts)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2) - np.radians(lon1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def from_coordinates(lat, lon, k: int = 8, node_names: list[str] | None = None, weight: str = "gaussian") -> GraphSpatial:
    """k-nearest-neighbour graph from node coordinates (degrees), by great-circle distance.

    Each node gets edges to its ``k`` nearest other nodes. ``weight``: ``"gaussian"``
    (kernel of the distance, sigma = std of the kNN distances, no threshold),
    ``"distance"`` (km) or ``"binary"``.
    """
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    if lat.shape != lon.shape or lat.ndim != 1:
        raise DataError(f"lat and lon must be 1-D of equal length, got {lat.shape} and {lon.shape}")
    if np.isnan(lat).any() or np.isnan(lon).any():
        raise DataError("node coordinates contain NaN")
    n = lat.size
    if not 1 <= k < n:
        raise ConfigError(f"k must be in 1..{n - 1} for {n} nodes, got {k}")
    d = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    np.fill_diagonal(d, np.inf)
    nbr = np.argsort(d, axis=1, kind="stable")[:, :k]
    src = np.repeat(np.arange(n), k)
    dst = nbr.reshape(-1)
    dist = d[src, dst]
    if weight == "gaussian":
        w = np.exp(-np.square(dist / (dist.std() if dist.std() > 0 else 1.0)))
    elif weight == "distance":
        w = dist
    elif weight == "binary":
        w = np.ones_like(dist)
    else:
        raise ConfigError(f"unknown weight {weight!r}; valid: gaussian, distance, binary")
    return GraphSpatial(torch.from_numpy(np.stack([src, dst])), torch.from_numpy(w.astype(np.float32)), n, node_names)


def normalize(graph: GraphSpatial, kind: str = "sym", self_loops: bool = False) -> GraphSpatial:
    """Normalise edge weights.

    Args:
        kind: ``"sym"``: ``w_ij / sqrt(d_i d_j)`` (GCN, Kipf & Welling 2017);
            ``"rw"``: ``w_ij / d_i`` (random walk, rows sum to 1, DCRNN's transition);
            ``"none"``: weights unchanged. ``d_i`` = sum of weights of edges leaving i.
        self_loops: first add a weight-1 loop to nodes that have none.
    """
    ei, ew = graph.edge_index, graph.edge_weight
    if self_loops:
        ei, ew = add_remaining_self_loops(ei, ew, fill_value=1.0, num_nodes=graph.num_nodes)
    if kind == "none":
        out = ew
    elif kind in ("sym", "rw"):
        deg = scatter(ew, ei[0], dim=0, dim_size=graph.num_nodes, reduce="sum")
        if kind == "sym":
            inv = deg.pow(-0.5)
            inv[torch.isinf(inv)] = 0.0
            out = inv[ei[0]] * ew * inv[ei[1]]
        else:
            inv = 1.0 / deg
            inv[torch.isinf(inv)] = 0.0
            out = inv[ei[0]] * ew
    else:
        raise ConfigError(f"unknown normalisation {kind!r}; valid: sym, rw, none")
    return GraphSpatial(ei, out, graph.num_nodes, graph.node_names)
