"""Building blocks shared by denoiser networks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tsdiff.errors import ConfigError


def sinusoidal_embedding(positions: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer position encoding (Vaswani et al. 2017) of real-valued positions.

    Args:
        positions: ``[...]`` float tensor.
    Returns:
        ``[..., dim]`` with ``sin`` on even and ``cos`` on odd features.
    """
    if dim % 2:
        raise ValueError(f"embedding dimension must be even, got {dim}")
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim
    )
    angles = positions.float().unsqueeze(-1) * freqs
    out = torch.empty(*positions.shape, dim, device=positions.device)
    out[..., 0::2] = torch.sin(angles)
    out[..., 1::2] = torch.cos(angles)
    return out


class DiffusionStepEmbedding(nn.Module):
    """Embedding of the noise level (diffusion step) as in DiffWave / CSDI.

    ``[sin(t * 10^(4 i / (h - 1))), cos(...)]`` for i < h = dim / 2, followed by two
    linear layers with SiLU. Works on real-valued t, so continuous-time processes share it.
    """

    def __init__(self, dim: int = 128, projection_dim: int | None = None) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"diffusion embedding dimension must be even, got {dim}")
        projection_dim = projection_dim or dim
        half = dim // 2
        self.register_buffer("freqs", 10.0 ** (torch.arange(half) / max(half - 1, 1) * 4.0), persistent=False)
        self.proj1 = nn.Linear(dim, projection_dim)
        self.proj2 = nn.Linear(projection_dim, projection_dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Args: t ``[B]``. Returns ``[B, projection_dim]``."""
        angles = t.float().unsqueeze(-1) * self.freqs
        x = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        return F.silu(self.proj2(F.silu(self.proj1(x))))


#: Attention kernels of :class:`TransformerLayer` (model option ``attention``).
ATTENTION_KINDS = ("softmax", "linear")


def dropout_mask(shape: tuple[int, ...] | torch.Size, p: float, device=None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli keep-mask with ``P(keep) = 1 - p`` from 15-bit uniform integers.

    On CPU, ``bernoulli_`` (what ``F.dropout`` draws) costs one generator call and a float
    conversion per entry and dominated the CSDI training profile. Here each 31-bit draw
    of ``random_`` is masked to two 15-bit uniform integers (its two 16-bit halves with
    the top bit cleared), so one draw serves two entries and one vectorised comparison
    with a scalar threshold gives the mask. The realised drop probability is
    ``round(p 2^15) / 2^15`` (within 1.6e-5 of ``p``).

    Returns:
        bool tensor of ``shape`` (True = keep).
    """
    n = math.prod(shape)
    raw = torch.empty((n + 1) // 2, dtype=torch.int32, device=device).random_(generator=generator)
    halves = raw.bitwise_and_(0x7FFF7FFF).view(torch.int16)  # 2 uniform integers in [0, 2^15) per draw
    return halves[:n].view(shape) >= round(p * 32768)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` with the cheaper CPU mask of :func:`dropout_mask` (same distribution
    up to 1.6e-5 in ``p``); on other devices ``F.dropout`` itself."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    # a scaled float mask: the product and its backward stay single-dtype (vectorised)
    return x * dropout_mask(x.shape, p, x.device).to(x.dtype).mul_(1.0 / (1.0 - p))


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention (Vaswani et al. 2017) on ``[S, h, T, d]`` tensors.

    Without dropout this is ``F.scaled_dot_product_attention`` (the fused kernel). With
    attention dropout on CPU the fused kernel falls back to a generic path that also
    scans every row for ``-inf`` (for masks tsdiff never passes); the explicit
    ``softmax(q k^T / sqrt(d))`` with :func:`dropout` computes the same thing faster.
    """
    if dropout_p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    scores = torch.matmul(q * (q.shape[-1] ** -0.5), k.transpose(-1, -2))
    return torch.matmul(dropout(scores.softmax(dim=-1), dropout_p, True), v)


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Linear attention of Katharopoulos et al. 2020 ("Transformers are RNNs"), non-causal.

    ``out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j))`` with
    ``phi = elu + 1``: cost and memory ``O(T d^2)`` instead of ``O(T^2 d)``, for attention
    over many features (electricity's 370 series) or long windows.

    Args:
        q, k, v: ``[S, h, T, d]``.
    Returns:
        ``[S, h, T, d]``.
    """
    q, k = F.elu(q) + 1.0, F.elu(k) + 1.0
    kv = torch.matmul(k.transpose(-1, -2), v)  # [S, h, d, d]
    z = torch.matmul(q, k.sum(dim=-2, keepdim=True).transpose(-1, -2))  # [S, h, T, 1]
    return torch.matmul(q, kv) / (z + eps)


class TransformerLayer(nn.Module):
    """One post-norm transformer encoder layer (GELU feed-forward) on fused attention.

    Same computation as ``nn.TransformerEncoderLayer(d, h, ff, dropout, "gelu",
    batch_first=True)``, written on ``F.scaled_dot_product_attention`` so the
    attention kernel can be swapped in one place: ``attention="linear"`` uses
    :func:`linear_attention` (linear in the sequence length).
    ``attention_dropout`` (default: ``dropout``) applies to the attention weights
    (softmax attention only); dropout masks on CPU come from :func:`dropout_mask`.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1,
                 attention_dropout: float | None = None, attention: str = "softmax") -> None:
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"channels ({d_model}) must be divisible by heads ({nhead})")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        self.nhead = nhead
        self.attention = attention
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff1 = nn.Linear(d_model, dim_feedforward)
        self.ff2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = dropout
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``[S, T, d]`` (S independent sequences of length T). Returns ``[S, T, d]``."""
        S, T, d = x.shape
        q, k, v = self.qkv(x).view(S, T, 3, self.nhead, d // self.nhead).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        if self.attention == "linear":
            a = linear_attention(q, k, v)
        else:
            a = softmax_attention(q, k, v, self.attention_dropout if self.training else 0.0)
        a = a.transpose(1, 2).reshape(S, T, d)
        x = self.norm1(x + dropout(self.out(a), p, self.training))
        h = self.ff2(dropout(F.gelu(self.ff1(x)), p, self.training))
        return self.norm2(x + dropout(h, p, self.training))


def check_unet_options(integers: dict, kernel_size: int, channel_multipliers, dropout: float,
                       diffusion_embedding_dim) -> list[int]:
    """Validate the options the U-Net denoisers share (ConfigError naming the option).

    ``integers`` maps option names to values that must be integers >= 1. Returns the
    channel multipliers as a list.
    """
    for key, val in integers.items():
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise ConfigError(f"model option {key} must be an integer >= 1, got {val!r}")
    if kernel_size % 2 == 0:
        raise ConfigError(f"model option kernel_size must be odd (same-length convolutions), got {kernel_size}")
    mults = list(channel_multipliers) if isinstance(channel_multipliers, (list, tuple)) else None
    if not mults or any(not isinstance(m, int) or isinstance(m, bool) or m < 1 for m in mults):
        raise ConfigError(
            f"model option channel_multipliers must be a non-empty list of integers >= 1, got {channel_multipliers!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model option dropout must be in [0, 1), got {dropout!r}")
    if not isinstance(diffusion_embedding_dim, int) or diffusion_embedding_dim < 2 or diffusion_embedding_dim % 2:
        raise ConfigError(f"model option diffusion_embedding_dim must be an even integer >= 2, got {diffusion_embedding_dim!r}")
    return mults


def unet_stages(hidden: int, mults, blocks: int, block, down, up) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList, int]:
    """The module lists of a U-Net: ``(down, middle, up, out_channels)``.

    Level ``i`` has ``hidden * mults[i]`` channels and ``blocks`` blocks on the way down
    (``blocks + 1`` on the way up, each fed one skip); ``down(c)`` / ``up(c)`` resample
    between levels. ``block(c_in, c_out)`` builds one block. Forward passes push the
    stem output and every down module's output as skips and pop one per up block.
    """
    chs = [hidden * m for m in mults]
    skips, c = [hidden], hidden
    down_mods = nn.ModuleList()
    for i, ch in enumerate(chs):
        for _ in range(blocks):
            down_mods.append(block(c, ch))
            c = ch
            skips.append(c)
        if i < len(chs) - 1:
            down_mods.append(down(c))
            skips.append(c)
    middle = nn.ModuleList([block(c, c), block(c, c)])
    up_mods = nn.ModuleList()
    for i in reversed(range(len(chs))):
        for _ in range(blocks + 1):
            up_mods.append(block(c + skips.pop(), chs[i]))
            c = chs[i]
        if i > 0:
            up_mods.append(up(c))
    return down_mods, middle, up_mods, c
