"""Spatial denoisers: grid graphs, transition supports, spatial metadata through training and
model files, bad input, and tiny trainings on the real METR-LA week and ERA5 fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from tsdiff.data import build_protocol
from tsdiff.data.spatial import GraphSpatial, GridSpatial
from tsdiff.errors import ConfigError, DataError
from tsdiff.models import Condition, build_model
from tsdiff.models.graph_layers import grid_graph, transition_supports
from tsdiff.training import DiffusionModule
from tsdiff.training.checkpoint import check_signature
from tsdiff.training.spatial_state import check_same_spatial, spatial_from_state, spatial_state

PROCESS = {"name": "ddpm", "num_steps": 50, "schedule": "quadratic", "beta_start": 1e-4, "beta_end": 0.5}
OPTIM = {"lr": 1e-3, "weight_decay": 0.0, "milestones": [0.75, 0.9], "gamma": 0.1}
GRAPH_UNET = {"name": "graph_unet", "hidden": 8, "channel_multipliers": [1, 2], "blocks": 1,
              "diffusion_embedding_dim": 16}
GRID_UNET = {"name": "grid_unet", "hidden": 8, "channel_multipliers": [1, 2], "blocks": 1,
             "diffusion_embedding_dim": 16}
CSDI_GRAPH = {"name": "csdi", "layers": 1, "channels": 16, "heads": 2, "ff_dim": 16, "diffusion_embedding_dim": 32,
              "time_embedding_dim": 16, "feature_embedding_dim": 8, "spatial": "graph", "attention_dropout": 0.0}


def _signature(N, C=1, window=8, task="imputation", context=None):
    return {"protocol": "synthetic", "task": task, "num_nodes": N, "num_channels": C, "window": window,
            "context": context, "node_names": [str(i) for i in range(N)], "channel_names": [str(c) for c in range(C)]}


def _module(model, signature, spatial, seed=0, train_mask="random", scaler=None):
    torch.manual_seed(seed)
    C = signature["num_channels"]
    return DiffusionModule(model=model, process=PROCESS, optim=OPTIM, train_mask=train_mask, signature=signature,
                           scaler=scaler or {"mean": [0.0] * C, "std": [1.0] * C}, config={"seed": seed},
                           spatial=spatial_state(spatial))


def _grid(H=3, W=4, land=None):
    return GridSpatial(np.linspace(52.0, 51.0, H), np.linspace(-1.0, 0.5, W), land)


# --- graphs of grids and transition matrices ---------------------------------------------


def test_grid_graph_edges_exactly():
    g4 = grid_graph(_grid(), 4)
    # 3 x 4 grid: 3 * 3 horizontal + 2 * 4 vertical neighbour pairs, both directions
    assert g4.num_nodes == 12 and g4.num_edges == 2 * 17
    assert torch.all(g4.edge_weight == 1.0)
    g8 = grid_graph(_grid(), 8)
    assert g8.num_edges == 2 * 17 + 2 * 12  # plus 2 * (2 * 3) diagonal pairs
    dense = g8.to_dense()
    assert np.array_equal(dense, dense.T) and dense[0, 5] == pytest.approx(2 ** -0.5) and dense[0, 1] == 1.0
    land = np.ones((3, 4), dtype=bool)
    land[1, 1] = False  # cell 5 is sea: no edges touch it
    gl = grid_graph(_grid(land=land), 8)
    assert gl.num_edges == g8.num_edges - 2 * 8
    assert not (gl.edge_index == 5).any()
    with pytest.raises(ConfigError, match="4 or 8"):
        grid_graph(_grid(), 6)


def test_transition_supports_are_random_walk_matrices():
    ei = torch.tensor([[0, 0, 1, 2, 3], [1, 2, 2, 0, 3]])
    w = torch.tensor([1.0, 3.0, 2.0, 0.5, 1.0])
    g = GraphSpatial(ei, w, 5)  # node 4 has no edges
    A = torch.from_numpy(g.to_dense())
    (fi, fw), (bi, bw) = transition_supports(g)
    P_f = torch.zeros(5, 5).index_put_((fi[0], fi[1]), fw, accumulate=True)
    P_b = torch.zeros(5, 5).index_put_((bi[0], bi[1]), bw, accumulate=True)
    out_deg, in_deg = A.sum(1, keepdim=True), A.sum(0)[:, None]
    torch.testing.assert_close(P_f, torch.where(out_deg > 0, A / out_deg.clamp_min(1e-12), 0.0))
    torch.testing.assert_close(P_b, torch.where(in_deg > 0, A.T / in_deg.clamp_min(1e-12), 0.0))
    assert P_f[4].sum() == 0 and P_b[4].sum() == 0


# --- spatial metadata through the module and model files --------------------------------------


def test_spatial_state_round_trip_exact():
    g = GraphSpatial(torch.tensor([[0, 1, 2], [1, 2, 0]]), torch.tensor([0.1, 0.7, 1 / 3]), 3, ["a", "b", "c"])
    back = spatial_from_state(spatial_state(g))
    assert torch.equal(back.edge_index, g.edge_index) and torch.equal(back.edge_weight, g.edge_weight)
    assert back.node_names == ["a", "b", "c"]
    land = np.array([[True, False], [True, True]])
    grid = spatial_from_state(spatial_state(GridSpatial(np.array([50.0, 49.75]), np.array([1.0, 1.25]), land)))
    assert grid.shape == (2, 2) and np.array_equal(grid.land_mask, land)
    assert spatial_from_state(spatial_state(None)) is None


def test_every_network_call_gets_the_spatial_metadata():
    g = grid_graph(_grid(), 4)
    module = _module(GRAPH_UNET, _signature(12), g)
    seen = []
    module.net.register_forward_pre_hook(lambda mod, args: seen.append(args[2].spatial))
    x = torch.randn(3, 8, 12, 1)
    observed = torch.ones_like(x, dtype=torch.bool)
    module.diffusion_loss({"x": x, "observed_mask": observed})  # training
    module.diffusion_loss({"x": x, "observed_mask": observed, "cond_mask": observed.clone()},
                          generator=torch.Generator().manual_seed(0))  # validation path (fixed generator)
    module.sample(x, torch.rand(x.shape) > 0.5, n_samples=2, sampler="ddim", steps=2)  # sampling
    assert len(seen) == 4 and all(s is module.spatial for s in seen)
    assert isinstance(module.spatial, GraphSpatial) and torch.equal(module.spatial.edge_index, g.edge_index)


def test_different_graph_or_grid_is_refused_on_load():
    g = grid_graph(_grid(), 4)
    state = spatial_state(g)
    check_same_spatial(state, grid_graph(_grid(), 4))  # equal graph: fine
    other = GraphSpatial(g.edge_index, g.edge_weight * 2, 12)
    with pytest.raises(DataError, match="differs from what the model was trained with.*same graph"):
        check_same_spatial(state, other)
    with pytest.raises(DataError, match="no graph or grid"):
        check_same_spatial(state, None)
    with pytest.raises(DataError, match="3 x 4 grid"):
        check_same_spatial(state, _grid())
    land = np.ones((3, 4), dtype=bool)
    land[0, 0] = False
    with pytest.raises(DataError, match="same grid and land mask"):
        check_same_spatial(spatial_state(_grid()), _grid(land=land))
    check_same_spatial(None, g)  # a model trained without spatial metadata uses none


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [GRAPH_UNET, CSDI_GRAPH])
def test_graph_model_without_graph_is_a_clear_error(model):
    with pytest.raises(DataError, match="needs a (graph|GraphSpatial).*no spatial metadata"):
        _module(model, _signature(12), None)
    net = build_model(model, 12, 1)
    x = torch.randn(2, 8, 12, 1)
    with pytest.raises(DataError, match="no spatial metadata"):
        net(x, torch.zeros(2), Condition(x, torch.ones_like(x, dtype=torch.bool)))


def test_graph_of_wrong_size_is_a_clear_error():
    with pytest.raises(DataError, match="N=12 nodes but the graph has 5"):
        _module(GRAPH_UNET, _signature(12), GraphSpatial(torch.tensor([[0], [1]]), torch.tensor([1.0]), 5))


@pytest.mark.parametrize("spatial", [None, "graph"])
def test_grid_model_on_non_grid_data_is_a_clear_error(spatial):
    data = None if spatial is None else grid_graph(_grid(), 4)
    with pytest.raises(DataError, match="grid_unet' needs gridded data.*use graph_unet"):
        _module(GRID_UNET, _signature(12), data)
    with pytest.raises(DataError, match="csdi with spatial: grid needs a GridSpatial"):
        _module({**CSDI_GRAPH, "spatial": "grid"}, _signature(12), data)


def test_grid_too_small_for_the_depth_is_a_clear_error():
    with pytest.raises(DataError, match="needs at least 4 cells along each axis, got 3 x 4"):
        _module({**GRID_UNET, "channel_multipliers": [1, 1, 1]}, _signature(12), _grid())


def test_window_shorter_than_unet_depth_is_a_clear_error():
    g = grid_graph(_grid(), 4)
    deep = {**GRAPH_UNET, "channel_multipliers": [1, 1, 2, 2]}  # halves time 3 times: >= 8 steps
    with pytest.raises(ConfigError, match="needs windows of at least 8 steps, got 6.*fewer model.channel_multipliers"):
        _module(deep, _signature(12, window=6, task="forecasting", context=3), g)
    module = _module(deep, _signature(12, window=8), g)
    x = torch.randn(2, 4, 12, 1)
    with pytest.raises(DataError, match="at least 8 steps, got 4"):
        module.net(x, torch.zeros(2), Condition(x, torch.ones_like(x, dtype=torch.bool), spatial=module.spatial))


def test_bad_model_options_are_clear_errors():
    with pytest.raises(ConfigError, match="channel_multipliers"):
        build_model({**GRAPH_UNET, "channel_multipliers": []}, 12, 1)
    with pytest.raises(ConfigError, match="kernel_size must be odd"):
        build_model({**GRID_UNET, "kernel_size": 2}, 12, 1)
    with pytest.raises(ConfigError, match="spatial must be 'none', 'graph' or 'grid'"):
        build_model({**CSDI_GRAPH, "spatial": "mesh"}, 12, 1)
    with pytest.raises(ConfigError, match="feature_attention: false leaves no spatial mixing"):
        build_model({**CSDI_GRAPH, "spatial": "none", "feature_attention": False}, 12, 1)


def test_mismatched_features_between_checkpoint_and_data_is_refused():
    trained = _module(GRAPH_UNET, _signature(12, C=1), grid_graph(_grid(), 4)).hparams["signature"]
    with pytest.raises(DataError, match="num_channels is 2 in the data but 1 in the model"):
        check_signature(trained, _signature(12, C=2))
    with pytest.raises(DataError, match="num_nodes is 20 in the data but 12 in the model"):
        check_signature(trained, _signature(20))


# --- the grid U-Net respects the land/sea mask ---------------------------------------------------


def test_grid_unet_ignores_and_zeroes_sea_cells():
    land = np.ones((4, 4), dtype=bool)
    land[0, :2] = land[3, 3] = False
    sea = torch.from_numpy(~land.reshape(-1))
    torch.manual_seed(0)
    net = build_model(GRID_UNET, 16, 2).eval()
    cond_spatial = _grid(4, 4, land)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 16, 2, generator=g)
    cond = Condition(torch.randn(2, 6, 16, 2, generator=g), torch.rand(2, 6, 16, 2, generator=g) > 0.5,
                     spatial=cond_spatial)
    t = torch.tensor([2.0, 7.0])
    with torch.no_grad():
        out = net(x, t, cond)
        assert torch.all(out[:, :, sea] == 0) and torch.all(out[:, :, ~sea] != 0)
        noisy = x.clone()
        noisy[:, :, sea] = 50.0
        values = cond.values.clone()
        values[:, :, sea] = -50.0
        assert torch.equal(net(noisy, t, Condition(values, cond.cond_mask, spatial=cond_spatial)), out)


# --- tiny trainings on real data ---------------------------------------------------------------


def _fixed_batch_training(module, batch, steps, lr):
    """Train on one fixed batch; return the probe loss (4 fixed noise draws) before and after."""

    def probe():
        module.eval()
        with torch.no_grad():
            return float(np.mean([module.diffusion_loss(batch, generator=torch.Generator().manual_seed(100 + i)).item()
                                  for i in range(4)]))

    before = probe()
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(1)
    module.train()
    for _ in range(steps):
        loss = module.diffusion_loss(batch, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return before, probe()


def _real_module(protocol, model, train_mask="random"):
    return _module(model, protocol.signature, protocol.series.spatial, train_mask=train_mask,
                   scaler=protocol.scaler.state_dict())


def _batch(protocol, split, idx):
    return next(iter(DataLoader(Subset(protocol.dataset(split), idx), batch_size=len(idx))))


@pytest.fixture(scope="module")
def metr_la(data_dir):
    return build_protocol("metr_la", data_dir)


def test_graph_unet_learns_on_metr_la_forecasting(metr_la):
    assert isinstance(metr_la.series.spatial, GraphSpatial) and metr_la.series.spatial.num_edges == 1722
    module = _real_module(metr_la, GRAPH_UNET)
    batch = _batch(metr_la, "train", [0, 300, 700, 1100])  # 12 -> 12 steps, 207 sensors
    before, after = _fixed_batch_training(module, batch, steps=15, lr=3e-3)
    assert after < 0.7 * before, (before, after)


def test_csdi_on_graph_learns_on_metr_la_imputation(data_dir):
    protocol = build_protocol("metr_la_impute", data_dir)
    module = _real_module(protocol, CSDI_GRAPH)
    assert len(module.net.layers[0].graph_conv.lin.weight) == 16  # the graph branch is there
    batch = _batch(protocol, "train", [0, 500, 1000])
    before, after = _fixed_batch_training(module, batch, steps=15, lr=3e-3)
    assert after < 0.8 * before, (before, after)


def test_grid_unet_learns_on_era5(data_dir):
    protocol = build_protocol("era5_impute", data_dir)
    assert isinstance(protocol.series.spatial, GridSpatial) and protocol.series.spatial.shape == (33, 49)
    module = _real_module(protocol, GRID_UNET)
    batch = _batch(protocol, "train", [0, 200])
    before, after = _fixed_batch_training(module, batch, steps=15, lr=3e-3)
    assert after < 0.7 * before, (before, after)


SPATIAL_CONFIGS = ["forecasting/graph_unet_metr_la", "imputation/graph_unet_metr_la", "forecasting/graph_unet_era5",
                   "forecasting/csdi_metr_la", "imputation/csdi_metr_la", "forecasting/grid_unet_era5",
                   "imputation/grid_unet_era5", "forecasting/csdi_era5", "imputation/csdi_era5"]


@pytest.mark.parametrize("name", SPATIAL_CONFIGS)
def test_spatial_configs_build_on_their_data(name, data_dir):
    """Each config's paper-size module builds on its real protocol (graph / grid checked)."""
    from pathlib import Path

    from tsdiff.config import load_config

    cfg = load_config(Path(__file__).parents[1] / "configs" / f"{name}.yaml", [f"data.data_dir={data_dir}"])
    data = cfg["data"]
    protocol = build_protocol(data["dataset"], data["data_dir"], data["options"])
    module = DiffusionModule(model=cfg["model"], process=cfg["process"], optim=cfg["optim"],
                             train_mask=data["train_mask"], signature=protocol.signature,
                             scaler=protocol.scaler.state_dict(), config=cfg,
                             spatial=spatial_state(protocol.series.spatial))
    assert module.net.config()["num_nodes"] == protocol.signature["num_nodes"]
    assert type(module.spatial) is type(protocol.series.spatial)
    assert cfg["task"] == protocol.task
