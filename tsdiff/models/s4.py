"""S4D: diagonal structured state-space layers in plain PyTorch (no custom kernels).

Implements the diagonal S4 of Gu, Gupta, Goel & Ré, "On the Parameterization and
Initialization of Diagonal State Space Models" (S4D, NeurIPS 2022), used by SSSD
(Alcaraz & Strodthoff, TMLR 2023) in place of S4's DPLR kernel. Each of H channels is a
linear state-space model with M = ``state_size / 2`` complex modes (the conjugate half is
implicit, hence the ``2 Re``)::

    x_k = dA x_{k-1} + dB u_k,        y_k = 2 Re(C x_k) + D u_k,

discretised from ``x' = A x + B u`` with a learned step ``dt`` by zero-order hold
(``dA = exp(dt A)``, ``dB = (dA - 1) / A``) or the bilinear transform. Unrolling the
recursion gives the convolution kernel ``K_l = 2 Re(C dB dA^l)``, applied by FFT
(training, whole windows; cost ``O(H L log L)``) or step by step (:meth:`S4DConv.step`).

The kernel is a Vandermonde product. It is evaluated in blocks of ``R ~ sqrt(L)`` powers
(:func:`kernel_block`), ``dA^(q R + r) = dA^(q R) dA^r``, so the exponentials cost
``O(H M sqrt(L))`` and memory ``O(H M (L / R + R))`` instead of ``O(H M L)``; the sums
over modes are one real matrix product (only the real part is formed). A kernel for L
equals the kernel for any l < L, cut, up to rounding (tests/test_s4.py: 1e-14 in float64).
All arithmetic is real: on CPU torch's complex exp and complex autograd were most of the
cost. Without gradients (sampling calls the network hundreds of times) the kernel's
spectrum is cached until a parameter changes.

Bidirectional layers (SSSD) hold two kernels: one over the past and present, one over
the strict future (applied to the flipped sequence); one FFT of length 2L applies both.
Such a layer reads every step of the window, so it cannot run causally.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tsdiff.errors import ConfigError, DataError

DISCRETIZATIONS = ("zoh", "bilinear")
INITS = ("lin", "inv")
MIXINGS = ("glu", "linear")


def kernel_block(length: int) -> int:
    """Powers of ``dA`` per block of the kernel's Vandermonde product: the power of two at or
    above ``sqrt(length)``, so the two factors cost ``O(H M sqrt(L))`` each."""
    return 1 << max(math.ceil(math.log2(length) / 2), 0)


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"S4 option {name} must be a positive integer, got {value!r}")
    return value


def s4d_init(modes: int, init: str = "lin") -> tuple[torch.Tensor, torch.Tensor]:
    """S4D's initial diagonal ``A = -1/2 + i w_n`` for ``n < modes`` (S4D paper, Sec. 4).

    ``lin`` (S4D-Lin): ``w_n = pi n``; ``inv`` (S4D-Inv): ``w_n = (N / pi) (N / (2n + 1) - 1)``
    with ``N = 2 modes`` the real state size.

    Returns:
        ``(re, im)``, ``[modes]`` each (float64).
    """
    n = torch.arange(modes, dtype=torch.float64)
    if init == "lin":
        im = math.pi * n
    elif init == "inv":
        N = 2 * modes
        im = (N / math.pi) * (N / (2 * n + 1) - 1)
    else:
        raise ConfigError(f"S4 option init must be one of {', '.join(INITS)}, got {init!r}")
    return torch.full((modes,), -0.5, dtype=torch.float64), im


class S4DConv(nn.Module):
    """The S4D state-space convolution on ``[B, H, L]`` (no activation, no mixing).

    Args:
        channels: H, independent state-space models (one per channel).
        state_size: N, real state size per channel (even: ``N / 2`` complex conjugate modes).
        bidirectional: add a second kernel over the strict future (non-causal).
        l_max: longest window accepted (None: any). The kernel itself works at any length;
            set it to bound the memory of a layer, longer inputs raise DataError.
        discretization: ``"zoh"`` (zero-order hold, S4D's default) or ``"bilinear"``.
        init: ``"lin"`` (S4D-Lin) or ``"inv"`` (S4D-Inv) initialisation of ``A``.
        dt_min, dt_max: the step ``dt`` of each channel starts log-uniform in this range.
    """

    def __init__(self, channels: int, state_size: int = 64, bidirectional: bool = False, l_max: int | None = None,
                 discretization: str = "zoh", init: str = "lin", dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        H = _positive_int("channels", channels)
        N = _positive_int("state_size", state_size)
        if N % 2:
            raise ConfigError(f"S4 option state_size must be even (complex conjugate pairs of modes), got {N}")
        if l_max is not None:
            _positive_int("l_max", l_max)
        if discretization not in DISCRETIZATIONS:
            raise ConfigError(f"S4 option discretization must be one of {', '.join(DISCRETIZATIONS)}, "
                              f"got {discretization!r}")
        if not (isinstance(dt_min, (int, float)) and isinstance(dt_max, (int, float)) and 0 < dt_min <= dt_max):
            raise ConfigError(f"S4 options need 0 < dt_min <= dt_max, got dt_min={dt_min!r}, dt_max={dt_max!r}")
        M = N // 2
        self.channels, self.modes, self.bidirectional = H, M, bool(bidirectional)
        self.l_max, self.discretization = l_max, discretization
        re, im = s4d_init(M, init)
        # Re A = -exp(log_neg_re) stays negative: every mode decays, the kernel stays bounded
        self.log_neg_re = nn.Parameter(torch.log(-re).float().repeat(H, 1))  # [H, M]
        self.im = nn.Parameter(im.float().repeat(H, 1))  # [H, M]
        log_dt = torch.rand(H, dtype=torch.float64) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt.float())  # [H]
        # C (B folded in, B = 1): complex normal with unit variance, as real pairs [S, H, M, 2]
        self.C = nn.Parameter(torch.randn(1 + self.bidirectional, H, M, 2) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(H))
        self._cache: tuple | None = None

    # ------------------------------------------------------------------ discretisation
    def discretize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_dA, dA, dB)``: complex ``[H, M]`` each."""
        A = torch.complex(-torch.exp(self.log_neg_re), self.im)
        dtA = A * torch.exp(self.log_dt)[:, None]
        if self.discretization == "zoh":
            log_dA = dtA
            dA = torch.exp(dtA)
            dB = (dA - 1) / A
        else:
            dA = (1 + dtA / 2) / (1 - dtA / 2)
            log_dA = torch.log(dA)  # any branch: exp(l log dA) = dA^l for integer l
            dB = torch.exp(self.log_dt)[:, None] / (1 - dtA / 2)
        return log_dA, dA, dB

    def kernel(self, length: int) -> torch.Tensor:
        """The real convolution kernels ``[S, H, length]``: ``K_l = 2 Re(C dB dA^l)``.

        Blocked Vandermonde product (module docstring).
        """
        _positive_int("length", length)
        log_dA, _, dB = self.discretize()
        W = torch.view_as_complex(self.C) * dB  # [S, H, M]
        R = kernel_block(length)
        Q = -(-length // R)
        r = torch.arange(R, device=log_dA.device, dtype=log_dA.real.dtype)
        q = torch.arange(Q, device=log_dA.device, dtype=log_dA.real.dtype) * R
        a, b = log_dA.real[:, :, None], log_dA.imag[:, :, None]
        mag = torch.exp(a * r)
        i_re, i_im = mag * torch.cos(b * r), mag * torch.sin(b * r)  # dA^r, [H, M, R]
        mag = torch.exp(a * q)
        p_re, p_im = mag * torch.cos(b * q), mag * torch.sin(b * q)  # dA^(qR), [H, M, Q]
        w_re, w_im = W.real[..., None], W.imag[..., None]  # [S, H, M, 1]
        o_re, o_im = w_re * p_re - w_im * p_im, w_re * p_im + w_im * p_re  # C dB dA^(qR), [S, H, M, Q]
        # only the real part is needed: Re(o i) = o_re i_re - o_im i_im, one real matmul over 2M
        S = W.shape[0]
        o = torch.cat([o_re, -o_im], dim=2).permute(1, 0, 3, 2).reshape(self.channels, S * Q, 2 * self.modes)
        K = torch.bmm(o, torch.cat([i_re, i_im], dim=1))  # [H, S Q, R]
        return 2 * K.view(self.channels, S, Q * R).transpose(0, 1)[..., :length]

    def _kernel_spectrum(self, length: int, n: int) -> torch.Tensor:
        """rfft of the length-``n`` circular kernel: the causal kernel at lags ``0 .. L-1`` and,
        bidirectional, the future kernel at lags ``-1 .. -L`` (stored at ``n-1 .. n-L``). ``[H, n // 2 + 1]``."""
        K = self.kernel(length)
        k = F.pad(K[0], (0, n - length))
        if self.bidirectional:
            k = k + F.pad(K[1].flip(-1), (n - length, 0))
        return torch.fft.rfft(k, n=n)

    def _cached_spectrum(self, length: int, n: int) -> torch.Tensor:
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            self._cache = None
            return self._kernel_spectrum(length, n)
        key = (length, n, self.C.device, self.C.dtype, tuple(p._version for p in self.parameters()),
               tuple(p.data_ptr() for p in self.parameters()))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._kernel_spectrum(length, n))
        return self._cache[1]

    def check_length(self, length: int) -> None:
        if self.l_max is not None and length > self.l_max:
            raise DataError(f"S4 layer built with l_max = {self.l_max} got a window of {length} steps; "
                            f"use windows of at most {self.l_max} steps or build it with a larger l_max")

    # ------------------------------------------------------------------ convolution mode
    def forward(self, u: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """FFT convolution. Args: u ``[B, H, L]``; causal: demand a causal layer (a
        bidirectional one raises ConfigError). Returns ``[B, H, L]``."""
        if causal:
            self._refuse_causal()
        L = u.shape[-1]
        self.check_length(L)
        dtype = u.dtype
        if dtype in (torch.float16, torch.bfloat16):  # FFTs of half types are limited; stay in float32
            u = u.float()
        n = 2 * L
        with torch.autocast(u.device.type, enabled=False):
            kf = self._cached_spectrum(L, n).to(u.dtype.to_complex())
            y = torch.fft.irfft(torch.fft.rfft(u, n=n) * kf, n=n)[..., :L]
            y = y + u * self.D.to(u.dtype)[:, None]
        return y.to(dtype)

    # ------------------------------------------------------------------ recurrent mode
    def _refuse_causal(self) -> None:
        if self.bidirectional:
            raise ConfigError("a bidirectional S4 layer reads the future of every step and cannot run causally "
                              "(step by step, or for a forecast that may only see its past); build it with "
                              "bidirectional=False, or keep it bidirectional and condition the forecast through "
                              "the mask (tsdiff.models.sssd)")

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Zero state ``[batch, H, M]`` (complex)."""
        return torch.zeros(batch, self.channels, self.modes, dtype=dtype.to_complex(), device=self.C.device)

    def step(self, u_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One causal recurrent step. Args: u_t ``[B, H]``; state ``[B, H, M]`` complex.
        Returns ``(y_t [B, H], new state)``. Bidirectional layers raise ConfigError."""
        self._refuse_causal()
        _, dA, dB = self.discretize()
        state = dA * state + dB * u_t[..., None]
        y = 2 * (torch.view_as_complex(self.C)[0] * state).sum(-1).real + self.D * u_t
        return y, state

    def scan(self, u: torch.Tensor) -> torch.Tensor:
        """The same map as :meth:`forward`, by the recursion over time (a slow reference;
        bidirectional layers add a second recursion running backwards). ``[B, H, L] -> [B, H, L]``."""
        self.check_length(u.shape[-1])
        _, dA, dB = self.discretize()
        C = torch.view_as_complex(self.C)
        uc = u.to(dA.dtype)
        x = torch.zeros(u.shape[0], self.channels, self.modes, dtype=dA.dtype, device=u.device)
        ys = []
        for t in range(u.shape[-1]):
            x = dA * x + dB * uc[..., t, None]
            ys.append(2 * (C[0] * x).sum(-1).real)
        y = torch.stack(ys, -1)
        if self.bidirectional:  # x'_t = sum_{s > t} dA^(s-t-1) dB u_s, y'_t = 2 Re(C_1 x'_t)
            x = torch.zeros_like(x)
            back = [torch.zeros_like(ys[0])]
            for t in range(u.shape[-1] - 1, 0, -1):
                x = dA * x + dB * uc[..., t, None]
                back.append(2 * (C[1] * x).sum(-1).real)
            y = y + torch.stack(back[::-1], -1)
        return y + u * self.D[:, None]


class S4Block(nn.Module):
    """An S4 layer as in SSSD: S4D convolution, GELU, dropout, output mixing, residual, layer norm.

    ``y = LayerNorm(u + mix(dropout(gelu(S4D(u)))))`` over channels, with ``mix`` a pointwise
    linear map to 2H followed by a GLU (``"glu"``, S4's default) or to H (``"linear"``).

    Args:
        channels: H.
        state_size, bidirectional, l_max, discretization, init, dt_min, dt_max: see :class:`S4DConv`.
        dropout: dropout after the activation.
        mixing: ``"glu"`` or ``"linear"``.
        layer_norm: normalise the output over channels.
    """

    def __init__(self, channels: int, state_size: int = 64, bidirectional: bool = True, dropout: float = 0.0,
                 mixing: str = "glu", layer_norm: bool = True, l_max: int | None = None, discretization: str = "zoh",
                 init: str = "lin", dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        if mixing not in MIXINGS:
            raise ConfigError(f"S4 option mixing must be one of {', '.join(MIXINGS)}, got {mixing!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"S4 option dropout must be in [0, 1), got {dropout!r}")
        self.conv = S4DConv(channels, state_size, bidirectional, l_max, discretization, init, dt_min, dt_max)
        self.dropout = float(dropout)
        self.mixing = mixing
        self.out = nn.Linear(channels, 2 * channels if mixing == "glu" else channels)
        self.norm = nn.LayerNorm(channels) if layer_norm else None

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """Args: x ``[B, H, L]``. Returns ``[B, H, L]``."""
        y = F.gelu(self.conv(x, causal=causal)).transpose(1, 2)  # [B, L, H]
        y = F.dropout(y, self.dropout, self.training)
        y = self.out(y)
        if self.mixing == "glu":
            y = F.glu(y, dim=-1)
        y = y + x.transpose(1, 2)
        if self.norm is not None:
            y = self.norm(y)
        return y.transpose(1, 2)
