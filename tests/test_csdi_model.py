"""CSDI denoiser: shapes, what it may look at, rebuild from config, bad input."""

import pytest
import torch

from tsdiff.errors import ConfigError, DataError, UnknownNameError
from tsdiff.models import MODELS, Condition, build_model
from tsdiff.models.layers import TransformerLayer

SMALL = {"name": "csdi", "layers": 2, "channels": 16, "heads": 4, "ff_dim": 16,
         "diffusion_embedding_dim": 32, "time_embedding_dim": 16, "feature_embedding_dim": 8}


def _inputs(B=3, L=7, N=5, C=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, N, C, generator=g)
    cond = Condition(values=torch.randn(B, L, N, C, generator=g), cond_mask=torch.rand(B, L, N, C, generator=g) > 0.5,
                     timepoints=torch.arange(L).float().expand(B, L))
    return x, cond


def _net(N=5, C=2, **kw):
    torch.manual_seed(0)
    net = build_model({**SMALL, **kw}, N, C)
    # the paper zero-initialises the output layer; randomise it so the tests see a signal
    torch.nn.init.normal_(net.output_projection2.weight)
    return net.eval()


def test_registry_and_paper_defaults():
    assert "csdi" in MODELS
    net = build_model({"name": "csdi"}, 36, 1)
    cfg = net.config()
    assert (cfg["layers"], cfg["channels"], cfg["heads"], cfg["diffusion_embedding_dim"]) == (4, 64, 8, 128)
    assert net.feature_embedding.weight.shape == (36, 16)


@pytest.mark.parametrize("shape", [(3, 7, 5, 2), (2, 1, 5, 2), (2, 6, 1, 1)])
def test_output_shape(shape):
    B, L, N, C = shape
    net = _net(N, C)
    x, cond = _inputs(B, L, N, C)
    out = net(x, torch.tensor([0.0, 3.0, 49.0][:B]), cond)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_conditioning_entries_only_seen_through_cond_values():
    net = _net()
    x, cond = _inputs()
    t = torch.tensor([1.0, 2.0, 3.0])
    ref = net(x, t, cond)
    # noisy values on conditioning entries are ignored
    x2 = torch.where(cond.cond_mask, torch.randn_like(x) * 100, x)
    assert torch.equal(net(x2, t, cond), ref)
    # conditioning values on target entries are ignored
    cond2 = Condition(torch.where(cond.cond_mask, cond.values, torch.randn_like(x) * 100), cond.cond_mask, cond.timepoints)
    assert torch.equal(net(x, t, cond2), ref)
    # ... but conditioning values and the noise level matter
    cond3 = Condition(cond.values + 1.0, cond.cond_mask, cond.timepoints)
    assert not torch.allclose(net(x, t, cond3), ref)
    assert not torch.allclose(net(x, t + 10, cond), ref)


def test_batch_entries_are_independent():
    net = _net()
    x, cond = _inputs()
    t = torch.tensor([1.0, 2.0, 3.0])
    full = net(x, t, cond)
    one = net(x[1:2], t[1:2], Condition(cond.values[1:2], cond.cond_mask[1:2], cond.timepoints[1:2]))
    torch.testing.assert_close(full[1:2], one, atol=1e-5, rtol=1e-5)


def test_rebuild_from_config_gives_identical_outputs():
    net = _net()
    twin = build_model({"name": "csdi", **{k: v for k, v in net.config().items() if k not in ("num_nodes", "num_channels")}}, 5, 2)
    twin.load_state_dict(net.state_dict())
    twin.eval()
    x, cond = _inputs()
    t = torch.tensor([4.0, 4.0, 4.0])
    assert torch.equal(twin(x, t, cond), net(x, t, cond))


def test_transformer_layer_matches_torch_reference():
    torch.manual_seed(0)
    mine = TransformerLayer(16, 4, 32, dropout=0.0).eval()
    ref = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu", batch_first=True).eval()
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(mine.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(mine.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(mine.out.weight)
        ref.self_attn.out_proj.bias.copy_(mine.out.bias)
        ref.linear1.load_state_dict(mine.ff1.state_dict())
        ref.linear2.load_state_dict(mine.ff2.state_dict())
        ref.norm1.load_state_dict(mine.norm1.state_dict())
        ref.norm2.load_state_dict(mine.norm2.state_dict())
    x = torch.randn(6, 9, 16)
    torch.testing.assert_close(mine(x), ref(x), atol=1e-5, rtol=1e-5)


def test_bad_inputs():
    net = _net()
    x, cond = _inputs()
    with pytest.raises(DataError, match=r"built for \[B, L, N, C\] with \(N, C\) = \(5, 2\)"):
        net(x[..., :1], torch.zeros(3), Condition(cond.values[..., :1], cond.cond_mask[..., :1]))
    with pytest.raises(DataError, match="condition values/mask shapes"):
        net(x, torch.zeros(3), Condition(cond.values[:, :3], cond.cond_mask[:, :3]))
    with pytest.raises(UnknownNameError, match="valid model names are: csdi"):
        build_model({"name": "csdj"}, 5, 2)
    with pytest.raises(ConfigError, match="unknown option.*'chanels'.*valid options are: layers, channels"):
        build_model({"name": "csdi", "chanels": 3}, 5, 2)
    with pytest.raises(ConfigError, match="layers must be an integer >= 1"):
        build_model({"name": "csdi", "layers": 0}, 5, 2)
