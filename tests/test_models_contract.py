"""The denoiser contract, checked for every network in the MODELS registry.

Each registered model needs an entry in FIXTURES: a small configuration, the spatial
kinds it runs on (``series``, ``graph``, ``grid``) and the task it supports. A newly
registered model without an entry fails ``test_denoiser_contract`` with a message
saying what to add.

For every (model, kind): output shape ``[B, L, N, C]``; conditioning values outside
``cond_mask`` are never seen; conditioning values on ``cond_mask`` are; the training
loss ignores the network's outputs on conditioning entries; a saved and reloaded model
draws identical samples under a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pytest
import torch

from tsdiff.data.spatial import GraphSpatial, GridSpatial
from tsdiff.models import MODELS, Condition
from tsdiff.training import DiffusionModule
from tsdiff.training.checkpoint import load_model, save_model
from tsdiff.training.spatial_state import check_same_spatial, spatial_state

PROCESS = {"name": "ddpm", "num_steps": 20, "schedule": "quadratic", "beta_start": 1e-4, "beta_end": 0.5}
OPTIM = {"lr": 1e-3, "weight_decay": 0.0, "milestones": [0.75, 0.9], "gamma": 0.1}
H, W = 3, 4  # the test grid: N = 12 cells, two of them outside the land mask
B, L, C = 2, 8, 2


def _timegrad_leak(net, cond_mask: torch.Tensor, bump: float):
    """Make TimeGrad's per-step eps-network output garbage on conditioning entries."""
    t0 = net.first_step
    mask = cond_mask[:, t0:].reshape(-1, *cond_mask.shape[2:]).float()
    inner = net.denoise_step

    def patched(x, noise_level, conds):
        return inner(x, noise_level, conds) + bump * mask

    net.denoise_step = patched
    return lambda: delattr(net, "denoise_step")


def _forward_leak(net, cond_mask: torch.Tensor, bump: float):
    """Make the network's output garbage on conditioning entries (a forward hook)."""
    handle = net.register_forward_hook(lambda mod, args, out: out + bump * cond_mask.float())
    return handle.remove


@dataclass
class Fixture:
    """How to test one registered model."""

    model: dict
    kinds: tuple[str, ...]
    task: str = "any"  # "forecasting" for models that only forecast
    options: dict = field(default_factory=dict)  # per-kind model options added to ``model``
    leak: object = _forward_leak


FIXTURES: dict[str, Fixture] = {
    "csdi": Fixture(
        {"layers": 1, "channels": 8, "heads": 2, "ff_dim": 8, "diffusion_embedding_dim": 16,
         "time_embedding_dim": 8, "feature_embedding_dim": 4},
        ("series", "graph", "grid"),
        options={"graph": {"spatial": "graph"}, "grid": {"spatial": "grid", "feature_attention": False}},
    ),
    "graph_unet": Fixture({"hidden": 8, "channel_multipliers": [1, 2], "blocks": 1,
                           "diffusion_embedding_dim": 16}, ("graph", "grid")),
    "grid_unet": Fixture({"hidden": 8, "channel_multipliers": [1, 2], "blocks": 1,
                          "diffusion_embedding_dim": 16}, ("grid",)),
    # graphs and grids by flattening nodes x channels into features
    "sssd": Fixture({"layers": 2, "channels": 8, "state_size": 4, "diffusion_embedding_dim": 8,
                     "diffusion_hidden_dim": 16}, ("series", "graph", "grid")),
    "timegrad": Fixture({"hidden_size": 8, "rnn_layers": 1, "residual_layers": 2, "residual_channels": 4,
                         "diffusion_embedding_dim": 8, "diffusion_hidden_dim": 8, "lags": [1, 2]},
                        ("series",), task="forecasting", leak=_timegrad_leak),
}


def _spatial(kind: str):
    if kind == "series":
        return None
    if kind == "graph":  # a weighted directed ring with chords over 12 nodes
        n = H * W
        src = np.concatenate([np.arange(n), np.arange(0, n, 3)])
        dst = np.concatenate([(np.arange(n) + 1) % n, (np.arange(0, n, 3) + 5) % n])
        w = np.linspace(0.2, 1.0, len(src)).astype(np.float32)
        return GraphSpatial(torch.from_numpy(np.stack([src, dst])), torch.from_numpy(w), n)
    land = np.ones((H, W), dtype=bool)
    land[0, 0] = land[2, 3] = False
    return GridSpatial(np.array([52.0, 51.5, 51.0]), np.array([-1.0, -0.5, 0.0, 0.5]), land)


def _setup(name: str, kind: str, seed: int = 0):
    fx = FIXTURES[name]
    model = {"name": name, **fx.model, **fx.options.get(kind, {})}
    N = H * W
    forecasting = fx.task == "forecasting"
    signature = {"protocol": "synthetic", "task": "forecasting" if forecasting else "imputation",
                 "num_nodes": N, "num_channels": C, "window": L, "context": L // 2 if forecasting else None,
                 "node_names": [str(i) for i in range(N)], "channel_names": ["a", "b"]}
    spatial = _spatial(kind)
    torch.manual_seed(seed)
    module = DiffusionModule(model=model, process=PROCESS, optim=OPTIM, train_mask="random", signature=signature,
                             scaler={"mean": [0.0, 0.0], "std": [1.0, 1.0]}, config={"seed": seed},
                             spatial=spatial_state(spatial))
    for p in module.net.parameters():  # zero-initialised output layers would hide every signal
        if p.dim() > 0 and torch.count_nonzero(p) == 0:
            torch.nn.init.normal_(p, std=0.3)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(B, L, N, C, generator=g)
    if forecasting:
        cond_mask = (torch.arange(L) < L // 2)[None, :, None, None].expand(B, L, N, C).clone()
        cond_mask &= torch.rand(B, L, N, C, generator=g) > 0.2
    else:
        cond_mask = torch.rand(B, L, N, C, generator=g) > 0.5
    cond = Condition(values=torch.randn(B, L, N, C, generator=g), cond_mask=cond_mask,
                     timepoints=torch.arange(L).float().expand(B, L), spatial=module.spatial)
    return module.eval(), x, cond


def _cases():
    out = []
    for name in MODELS.names():
        kinds = FIXTURES[name].kinds if name in FIXTURES else ("missing",)
        out += [pytest.param(name, k, id=f"{name}-{k}") for k in kinds]
    return out


@pytest.mark.parametrize("name,kind", _cases())
def test_denoiser_contract(name, kind, tmp_path):
    if name not in FIXTURES:
        pytest.fail(f"model {name!r} is registered but tests/test_models_contract.py has no FIXTURES entry; "
                    "add a small config, the spatial kinds it supports and its task")
    module, x, cond = _setup(name, kind)
    net = module.net
    t = torch.tensor([3.0, 11.0])
    with torch.no_grad():
        out = net(x, t, cond)
        assert out.shape == x.shape and torch.isfinite(out).all()
        # values outside cond_mask are never seen ...
        hidden = replace(cond, values=torch.where(cond.cond_mask, cond.values, torch.randn_like(x) * 100))
        assert torch.equal(net(x, t, hidden), out)
        # ... values on cond_mask are
        shifted = replace(cond, values=torch.where(cond.cond_mask, cond.values + 1.0, cond.values))
        assert not torch.allclose(net(x, t, shifted), out)

    # the loss ignores the network's outputs on conditioning entries
    observed = torch.ones_like(cond.cond_mask)
    if FIXTURES[name].task == "forecasting":  # context entries not conditioned on are missing, not targets
        observed = cond.cond_mask | (torch.arange(L) >= L // 2)[None, :, None, None]
    batch = {"x": x, "observed_mask": observed, "cond_mask": cond.cond_mask, "timepoints": cond.timepoints}

    def loss(bump_mask=None):
        remove = FIXTURES[name].leak(net, cond.cond_mask if bump_mask is None else bump_mask, 1e3)
        try:
            with torch.no_grad():
                return module.diffusion_loss(batch, generator=torch.Generator().manual_seed(5)).item()
        finally:
            remove()

    clean = module.diffusion_loss(batch, generator=torch.Generator().manual_seed(5)).item()
    assert loss() == pytest.approx(clean, rel=1e-6, abs=1e-7)
    assert loss(~cond.cond_mask) > 10 * clean  # the same garbage on targets is seen

    # save and load give identical samples under a fixed seed
    path = save_model(module, tmp_path / "model.pt")
    loaded, _ = load_model(path)
    check_same_spatial(loaded.hparams["spatial"], _spatial(kind))
    draws = []
    for m in (module, loaded):
        s, nfe = m.sample(cond.values, cond.cond_mask, cond.timepoints, n_samples=2, sampler="ddim", steps=3,
                          generator=torch.Generator().manual_seed(9))
        draws.append(s)
    assert draws[0].shape == (2,) + tuple(x.shape)
    assert torch.equal(draws[0], draws[1])
    assert torch.equal(draws[0][:, cond.cond_mask], cond.values[cond.cond_mask].expand(2, -1))
