"""Exact checks of the speed-ups: factored side projections and their sampling cache,
the cheap CPU dropout mask, attention kernels (fused, explicit-with-dropout, linear)."""

import gc
import math

import pytest
import torch
import torch.nn.functional as F

from tsdiff.models import Condition, build_model
from tsdiff.models.layers import TransformerLayer, dropout, dropout_mask, linear_attention, softmax_attention


def _csdi(**kw):
    torch.manual_seed(0)
    cfg = dict(name="csdi", layers=2, channels=16, heads=2, ff_dim=16, diffusion_embedding_dim=16,
               time_embedding_dim=8, feature_embedding_dim=4, **kw)
    net = build_model(cfg, num_nodes=5, num_channels=2)
    torch.nn.init.normal_(net.output_projection2.weight)  # zero at initialisation: outputs would all be 0
    return net


def _cond(B=3, L=7, N=5, C=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, N, C, generator=g)
    mask = torch.rand(B, L, N, C, generator=g) < 0.6
    tp = torch.arange(L, dtype=torch.float32).expand(B, L) * 1.5
    return x, Condition(values=x, cond_mask=mask, timepoints=tp)


def test_side_projections_equal_projection_of_concatenated_side_info():
    net = _csdi()
    x, cond = _cond()
    B, L = x.shape[:2]
    side = net.side_info(cond, B, L)  # [B, L, K, side_dim]
    got = net.side_projections(cond, B, L)
    assert len(got) == 2
    for layer, term in zip(net.layers, got):
        ref = layer.cond_projection(side) + layer.mid_projection.bias
        assert term.shape == ref.shape == (B, L, 10, 32) and term.is_contiguous()
        torch.testing.assert_close(term, ref, rtol=1e-5, atol=1e-5)


def test_side_projection_gradients_match_the_unfactored_form():
    net = _csdi()
    x, cond = _cond()
    B, L = x.shape[:2]
    w = torch.randn(B, L, 10, 32)
    (sum((t * w).sum() for t in net.side_projections(cond, B, L))).backward()
    got = [p.grad.clone() for p in (net.feature_embedding.weight, net.layers[0].cond_projection.weight)]
    net.zero_grad()
    side = net.side_info(cond, B, L)
    (sum(((layer.cond_projection(side) + layer.mid_projection.bias) * w).sum() for layer in net.layers)).backward()
    ref = [p.grad for p in (net.feature_embedding.weight, net.layers[0].cond_projection.weight)]
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_sampling_cache_reuses_projections_and_invalidates_on_weight_change_and_release():
    net = _csdi().eval()
    x, cond = _cond()
    t = torch.full((3,), 10.0)
    with torch.no_grad():
        first = net(x, t, cond)
        cached = net._side_cache[4]
        second = net(x + 0.5, t, cond)
        assert net._side_cache[4] is cached  # same condition: reused
        fresh = _csdi().eval()
        fresh.load_state_dict(net.state_dict())
        torch.testing.assert_close(second, fresh(x + 0.5, t, cond), rtol=0, atol=0)
        # an in-place weight update (as an optimiser step) invalidates the cache
        net.layers[0].cond_projection.weight.add_(0.1)
        third = net(x, t, cond)
        assert net._side_cache[4] is not cached
        assert not torch.allclose(first, third)
        # a new condition object with equal values recomputes (identity, not equality, is the key)
        x2, cond2 = _cond()
        net(x2, t, cond2)
        assert net._side_cache[0]() is cond2.values
    del cond2, x2
    gc.collect()
    assert net._side_cache is None  # dropped with its condition
    # with gradients (training) nothing is cached
    net.train()
    net(x, t, cond).sum().backward()
    assert net._side_cache is None


def test_dropout_mask_rate_and_lanes():
    g = torch.Generator().manual_seed(3)
    for p in (0.1, 0.5, 0.9):
        m = dropout_mask((400, 1001), p, generator=g)  # odd size: the last draw is half used
        assert m.shape == (400, 1001) and m.dtype == torch.bool
        flat = m.reshape(-1)
        n = flat.numel()
        for lane in (flat[0::2], flat[1::2]):  # both halves of each 31-bit draw are unbiased
            rate = 1 - lane.float().mean().item()
            assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / lane.numel()), (p, rate)
        assert abs((1 - flat.float().mean().item()) - p) < 5 * math.sqrt(p * (1 - p) / n)
    # neighbouring entries are independent (one draw feeds two entries)
    m = dropout_mask((1_000_000,), 0.5, generator=torch.Generator().manual_seed(4)).float()
    corr = torch.corrcoef(torch.stack([m[0::2], m[1::2]]))[0, 1].item()
    assert abs(corr) < 0.01


def test_cpu_dropout_scales_kept_entries_and_is_identity_in_eval():
    x = torch.rand(300, 300) + 1.0
    y = dropout(x, 0.25, True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert abs(1 - kept.float().mean().item() - 0.25) < 0.01
    assert dropout(x, 0.25, False) is x and dropout(x, 0.0, True) is x


def test_softmax_attention_without_dropout_is_the_fused_kernel_and_with_dropout_drops_weights():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 3, 9, 4).unbind(0)
    torch.testing.assert_close(softmax_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    # with v = identity the output rows are the (dropped, rescaled) attention weights
    q, k = torch.randn(2, 64, 4, 9, 8).unbind(0)
    eye = torch.eye(9).expand(64, 4, 9, 9)
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), -1)
    out = softmax_attention(q, k, eye, dropout_p=0.2)
    kept = out != 0
    torch.testing.assert_close(out[kept], w[kept] / 0.8)
    assert abs(1 - kept.float().mean().item() - 0.2) < 0.02


def test_linear_attention_equals_its_quadratic_form():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 3, 11, 4).unbind(0)
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    weights = fq @ fk.transpose(-1, -2)  # [S, h, T, T], nonnegative
    ref = (weights / weights.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(linear_attention(q, k, v), ref, rtol=1e-4, atol=1e-5)


def test_transformer_layer_with_dropout_matches_torch_layer_in_eval_and_trains():
    torch.manual_seed(0)
    mine = TransformerLayer(16, 4, 32, dropout=0.1)
    ref = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, activation="gelu", batch_first=True)
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(mine.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(mine.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(mine.out.weight)
        ref.self_attn.out_proj.bias.copy_(mine.out.bias)
        for a, b in ((ref.linear1, mine.ff1), (ref.linear2, mine.ff2), (ref.norm1, mine.norm1), (ref.norm2, mine.norm2)):
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
    x = torch.randn(5, 9, 16)
    torch.testing.assert_close(mine.eval()(x), ref.eval()(x), rtol=1e-5, atol=1e-5)
    mine.train()
    y = mine(x)
    y.sum().backward()
    assert not torch.allclose(y, mine.eval()(x))  # dropout is active in training
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mine.parameters())


def test_compiled_transformer_layer_matches_eager():
    # eval.compile / trainer.compile / throughput.py --compile wrap the network in
    # torch.compile: the compiled transformer layer computes what the eager one does.
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = TransformerLayer(16, 2, 16).eval()
    x = torch.randn(4, 7, 16)
    with torch.inference_mode():
        eager = layer(x)
        compiled = torch.compile(layer, dynamic=False)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()


def test_csdi_linear_attention_option_roundtrips_and_bad_value_is_a_config_error():
    from tsdiff.errors import ConfigError

    net = _csdi(attention="linear")
    assert net.config()["attention"] == "linear"
    assert "attention" not in _csdi().config()  # the default keeps older model files unchanged
    x, cond = _cond()
    out = net(x, torch.full((3,), 3.0), cond)
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ConfigError, match="attention must be one of softmax, linear"):
        _csdi(attention="flash")


def test_sampling_under_bf16_autocast_returns_float32_with_exact_conditioning(aqi36):
    from tsdiff.config import load_config
    from tsdiff.training.module import DiffusionModule

    cfg = load_config(None, ["model.layers=1", "model.channels=8", "model.heads=2", "model.ff_dim=8",
                             "model.diffusion_embedding_dim=8", "model.time_embedding_dim=8",
                             "model.feature_embedding_dim=4"])
    torch.manual_seed(0)
    module = DiffusionModule(cfg["model"], cfg["process"], cfg["optim"], "mix", aqi36.signature,
                             aqi36.scaler.state_dict(), cfg)
    torch.nn.init.normal_(module.net.output_projection2.weight)
    item = aqi36.dataset("test")[0]
    x, cm, tp = item["x"][None], item["cond_mask"][None], item["timepoints"][None]
    kw = dict(n_samples=3, sampler="ddim", steps=2, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s16, nfe = module.sample(x, cm, tp, **kw)
    kw["generator"] = torch.Generator().manual_seed(0)
    s32, _ = module.sample(x, cm, tp, **kw)
    assert s16.dtype == torch.float32 and nfe == 2 and torch.isfinite(s16).all()
    assert torch.equal(s16[:, cm], x[cm].expand(3, -1))
    assert not torch.equal(s16, s32)  # bf16 really ran
    # the network itself stays close to float32 (sampling from x_T amplifies any difference)
    from tsdiff.models import Condition

    c = Condition(values=x, cond_mask=cm, timepoints=tp)
    module.net.eval()  # no dropout
    with torch.no_grad():
        e32 = module.net(x, torch.full((1,), 10.0), c)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            e16 = module.net(x, torch.full((1,), 10.0), c).float()
    assert (e16 - e32).abs().max() < 0.05 * e32.abs().max()
