"""Spatial metadata (graph / grid) as plain data, kept with a trained model.

A model file must rebuild the graph or grid its network was trained on and must
load with ``torch.load(weights_only=True)``, so the metadata is stored as plain
lists, numbers and strings (:func:`spatial_state`) and rebuilt with
:func:`spatial_from_state`. :func:`check_same_spatial` refuses data whose graph or
grid differs from the one the model was trained with.
"""

from __future__ import annotations

import numpy as np
import torch

from tsdiff.data.spatial import GraphSpatial, GridSpatial
from tsdiff.errors import DataError


def spatial_state(spatial) -> dict | None:
    """Plain-data description of ``Series.spatial`` (None, GraphSpatial or GridSpatial).

    Graph: ``{"kind": "graph", "num_nodes", "edge_index": [[src...], [dst...]],
    "edge_weight": [...], "node_names"}``; grid: ``{"kind": "grid", "lat", "lon",
    "land_mask": [[bool]] or None, "dims"}``. float32 weights round-trip exactly.
    """
    if spatial is None:
        return None
    if isinstance(spatial, GraphSpatial):
        return {"kind": "graph", "num_nodes": int(spatial.num_nodes),
                "edge_index": spatial.edge_index.tolist(), "edge_weight": spatial.edge_weight.tolist(),
                "node_names": None if spatial.node_names is None else [str(n) for n in spatial.node_names]}
    if isinstance(spatial, GridSpatial):
        lm = spatial.land_mask
        return {"kind": "grid", "lat": np.asarray(spatial.lat, dtype=np.float64).tolist(),
                "lon": np.asarray(spatial.lon, dtype=np.float64).tolist(),
                "land_mask": None if lm is None else np.asarray(lm, dtype=bool).tolist(),
                "dims": [str(d) for d in spatial.dims]}
    raise DataError(f"unsupported spatial metadata {type(spatial).__name__}; expected GraphSpatial or GridSpatial")


def spatial_from_state(state: dict | None):
    """Rebuild the GraphSpatial / GridSpatial described by :func:`spatial_state` (None stays None)."""
    if state is None:
        return None
    if state.get("kind") == "graph":
        return GraphSpatial(torch.tensor(state["edge_index"], dtype=torch.long).reshape(2, -1),
                            torch.tensor(state["edge_weight"], dtype=torch.float32), int(state["num_nodes"]),
                            state.get("node_names"))
    if state.get("kind") == "grid":
        lm = state.get("land_mask")
        return GridSpatial(np.asarray(state["lat"]), np.asarray(state["lon"]),
                           None if lm is None else np.asarray(lm, dtype=bool), tuple(state.get("dims") or
                                                                                     ("time", "latitude", "longitude")))
    raise DataError(f"unknown spatial metadata kind {state.get('kind')!r} in the model file")


def _describe(state: dict | None) -> str:
    if state is None:
        return "no graph or grid"
    if state["kind"] == "graph":
        return f"a graph of {state['num_nodes']} nodes and {len(state['edge_weight'])} edges"
    return f"a {len(state['lat'])} x {len(state['lon'])} grid"


def check_same_spatial(trained: dict | None, data_spatial) -> None:
    """Refuse data whose graph / grid differs from the one the model was trained with.

    A model trained without spatial metadata (``trained`` None, also every model file
    written before spatial metadata was kept) uses none, so any data passes.

    Args:
        trained: the model's :func:`spatial_state` (from its file).
        data_spatial: ``Series.spatial`` of the data to run on.
    Raises:
        DataError: naming both and the fix.
    """
    if trained is None:
        return
    data = spatial_state(data_spatial)
    same = (trained is None) == (data is None)
    if same and trained is not None:
        if trained["kind"] != data["kind"]:
            same = False
        elif trained["kind"] == "graph":
            same = (trained["num_nodes"] == data["num_nodes"] and trained["edge_index"] == data["edge_index"]
                    and np.array_equal(np.float32(trained["edge_weight"]), np.float32(data["edge_weight"])))
        else:
            same = (np.shape(trained["lat"]) == np.shape(data["lat"]) and np.shape(trained["lon"]) == np.shape(data["lon"])
                    and np.allclose(trained["lat"], data["lat"]) and np.allclose(trained["lon"], data["lon"])
                    and trained.get("land_mask") == data.get("land_mask"))
    if not same:
        what = "graph" if "graph" in (_describe(trained) + _describe(data)) else "grid"
        raise DataError(
            f"the data's spatial metadata ({_describe(data)}) differs from what the model was trained with "
            f"({_describe(trained)}); use the same {what} (same nodes, edges and weights, or the same grid and "
            "land mask) or train a new model on this data"
        )
