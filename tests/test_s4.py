"""S4D layer (tsdiff.models.s4): FFT convolution against the recursion, kernel prefixes,
gradients on long windows, caching and bad options."""

from __future__ import annotations

import pytest
import torch

from tsdiff.errors import ConfigError, DataError
from tsdiff.models.s4 import S4Block, S4DConv, kernel_block


def _conv(seed=0, **kw) -> S4DConv:
    torch.manual_seed(seed)
    layer = S4DConv(**{"channels": 3, "state_size": 8, **kw}).double()
    with torch.no_grad():  # slower decay than the default init: the recursions carry far
        layer.log_dt.uniform_(-3.0, -0.5)
    return layer


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("discretization,init", [("zoh", "lin"), ("bilinear", "inv"), ("zoh", "inv")])
def test_fft_convolution_equals_the_recurrent_scan(bidirectional, discretization, init):
    layer = _conv(bidirectional=bidirectional, discretization=discretization, init=init)
    u = torch.randn(2, 3, 150, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fft, rec = layer(u), layer.scan(u)
    assert torch.allclose(fft, rec, rtol=1e-10, atol=1e-10), (fft - rec).abs().max()
    assert fft.abs().max() > 0.1  # not a vacuous comparison


def test_step_by_step_equals_the_convolution_of_a_causal_layer():
    layer = _conv(bidirectional=False)
    u = torch.randn(2, 3, 40, dtype=torch.float64)
    state = layer.initial_state(2, torch.float64)
    ys = []
    for t in range(40):
        y, state = layer.step(u[..., t], state)
        ys.append(y)
    with torch.no_grad():
        assert torch.allclose(torch.stack(ys, -1), layer(u, causal=True), rtol=1e-10, atol=1e-10)
    # causal: the output up to t ignores the input after t
    v = u.clone()
    v[..., 25:] += 5.0
    with torch.no_grad():
        assert torch.allclose(layer(v)[..., :25], layer(u)[..., :25], atol=1e-10)


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_a_kernel_for_length_L_is_exact_for_every_shorter_length(discretization):
    layer = _conv(bidirectional=True, discretization=discretization)
    L = 3 * 64 + 17
    assert kernel_block(L) == 16 and kernel_block(64) == 8 and kernel_block(65) == 16 and kernel_block(1) == 1
    with torch.no_grad():
        full = layer.kernel(L)
        assert full.shape == (2, 3, L)
        for n in list(range(1, 70)) + [127, 128, 129, 191, 192, 193, L - 1]:
            # other block sizes, the same powers: equal up to rounding
            assert torch.allclose(layer.kernel(n), full[..., :n], rtol=0, atol=1e-14), n
    # and the blocked product equals the direct Vandermonde sum
    log_dA, _, dB = layer.discretize()
    direct = 2 * (torch.view_as_complex(layer.C)[:, :, :, None] * dB[:, :, None]
                  * torch.exp(log_dA[:, :, None] * torch.arange(L, dtype=torch.float64))).sum(2).real
    assert torch.allclose(full, direct.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("L", [1, 4096])
def test_gradients_are_finite_on_long_windows(L):
    torch.manual_seed(0)
    block = S4Block(4, state_size=16, bidirectional=True, dropout=0.1)
    x = torch.randn(2, 4, L, requires_grad=True)
    block(x).pow(2).mean().backward()
    for name, p in [("input", x)] + list(block.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert block.conv.log_dt.grad.abs().sum() > 0


def test_kernel_cache_is_used_without_gradients_and_dropped_when_weights_change():
    layer = S4DConv(2, 4)
    u = torch.randn(1, 2, 10)
    with torch.no_grad():
        a = layer(u)
        spec = layer._cache[1]
        assert torch.equal(layer(u), a) and layer._cache[1] is spec
        layer.D.add_(1.0)
        layer.C.mul_(2.0)
        b = layer(u)
    assert layer._cache[1] is not spec
    assert torch.allclose(b, (torch.no_grad()(lambda: layer.scan(u)))(), atol=1e-4)
    layer(u).sum().backward()  # with gradients: no cache
    assert layer._cache is None


def test_block_shapes_mixings_and_half_precision_input():
    for mixing in ("glu", "linear"):
        block = S4Block(6, state_size=4, mixing=mixing, layer_norm=mixing == "glu")
        assert block(torch.randn(3, 6, 11)).shape == (3, 6, 11)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(torch.randn(2, 6, 9))
    assert torch.isfinite(y.float()).all()


@pytest.mark.parametrize("kwargs,match", [
    ({"channels": 0}, "channels must be a positive integer"),
    ({"channels": 2.0}, "channels must be a positive integer"),
    ({"channels": True}, "channels must be a positive integer"),
    ({"state_size": -4}, "state_size must be a positive integer"),
    ({"state_size": "64"}, "state_size must be a positive integer"),
    ({"state_size": 5}, "state_size must be even"),
    ({"l_max": 0}, "l_max must be a positive integer"),
    ({"discretization": "euler"}, "discretization must be one of zoh, bilinear"),
    ({"init": "legs"}, "init must be one of lin, inv"),
    ({"dt_min": 0.5, "dt_max": 0.1}, "0 < dt_min <= dt_max"),
])
def test_bad_options_are_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        S4DConv(**{"channels": 2, **kwargs})


def test_bad_block_options_windows_and_causal_requests():
    with pytest.raises(ConfigError, match="mixing must be one of glu, linear"):
        S4Block(2, mixing="relu")
    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\)"):
        S4Block(2, dropout=1.0)
    layer = S4DConv(2, 4, l_max=16)
    layer(torch.randn(1, 2, 16))
    with pytest.raises(DataError, match="l_max = 16 got a window of 17 steps"):
        layer(torch.randn(1, 2, 17))
    bi = S4Block(2, state_size=4, bidirectional=True)
    with pytest.raises(ConfigError, match="bidirectional S4 layer .* cannot run causally"):
        bi(torch.randn(1, 2, 5), causal=True)
    with pytest.raises(ConfigError, match="cannot run causally"):
        bi.conv.step(torch.randn(1, 2), bi.conv.initial_state(1))
