"""Graph adapters: every input format, normalisation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tsdiff.data.adapters.graph import (
    from_coordinates, from_dense, from_edge_list, from_scipy, gaussian_kernel, haversine_km, normalize,
)
from tsdiff.data.spatial import GraphSpatial
from tsdiff.errors import DataError

A = np.array([[0, 2.0, 0], [1.0, 0, 3.0], [0, 0.5, 0]])


def test_dense_and_sparse_agree():
    g = from_dense(A)
    h = from_scipy(sp.csr_matrix(A))
    assert g.num_edges == h.num_edges == 4 and g.edge_index.dtype == torch.long
    np.testing.assert_array_equal(g.to_dense(), A)
    np.testing.assert_array_equal(h.to_dense(), A)


def test_gaussian_kernel_formula():
    d = np.array([[0.0, 1.0, np.inf], [2.0, 0.0, 3.0]])
    w, sigma = gaussian_kernel(d)
    finite = np.array([0, 1, 2, 0, 3.0])
    assert sigma == pytest.approx(finite.std())
    expected = np.exp(-((d / sigma) ** 2))
    expected[expected < 0.1] = 0
    np.testing.assert_allclose(w, expected)
    assert w[0, 2] == 0 and w[1, 2] == 0  # inf and below threshold


def test_edge_list_with_ids_drops_unknown():
    edges = [["s1", "s2", 100.0], ["s2", "s1", 200.0], ["s9", "s1", 5.0]]
    g = from_edge_list(edges, node_ids=["s1", "s2"], threshold=0.0)
    assert g.num_nodes == 2 and g.node_names == ["s1", "s2"]
    sigma = np.std([100.0, 200.0])
    assert g.to_dense()[0, 1] == pytest.approx(np.exp(-(100 / sigma) ** 2))


def test_knn_from_coordinates():
    lat = np.array([0.0, 0.0, 0.0, 10.0])
    lon = np.array([0.0, 1.0, 2.0, 0.0])
    g = from_coordinates(lat, lon, k=1, weight="distance")
    dense = g.to_dense()
    assert g.num_edges == 4 and dense[0, 1] > 0 and dense[3, 0] > 0  # node 3's nearest is node 0
    assert dense[0, 1] == pytest.approx(haversine_km(0, 0, 0, 1), rel=1e-5)
    assert dense[0, 1] == pytest.approx(111.19, rel=1e-3)


def test_normalisations():
    g = from_dense(A)
    sym = normalize(g, "sym").to_dense()
    d = A.sum(1)
    np.testing.assert_allclose(sym, A / np.sqrt(np.outer(d, d)), rtol=1e-6)
    rw = normalize(g, "rw", self_loops=True).to_dense()
    B = A + np.eye(3)
    np.testing.assert_allclose(rw, B / B.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(rw.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(normalize(g, "none").to_dense(), A)


def test_bad_graphs():
    with pytest.raises(DataError, match="adjacency is 3x3 but there are 4 nodes"):
        from_dense(A, num_nodes=4)
    with pytest.raises(DataError, match="square"):
        from_dense(np.ones((2, 3)))
    with pytest.raises(DataError, match="negative weight"):
        from_dense(-A)
    bad = A.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN weight"):
        from_dense(bad)
    with pytest.raises(DataError, match="num_nodes=2"):
        GraphSpatial(torch.tensor([[0, 2], [1, 0]]), torch.ones(2), 2)
    with pytest.raises(DataError, match="the graph has 3 nodes but the series has N=5"):
        from_dense(A).check_nodes(5)
    with pytest.raises(DataError, match="NaN or negative"):
        gaussian_kernel(np.array([1.0, -2.0]))
