"""Building blocks shared by denoiser networks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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


class TransformerLayer(nn.Module):
    """One post-norm transformer encoder layer (GELU feed-forward) on fused attention.

    Same computation as ``nn.TransformerEncoderLayer(d, h, ff, dropout, "gelu",
    batch_first=True)``, written on ``F.scaled_dot_product_attention`` so the
    attention kernel can be swapped (e.g. for linear attention) in one place.
    ``attention_dropout`` (default: ``dropout``) applies to the attention weights;
    on CPU it costs as much as the attention itself, so it can be set apart.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1,
                 attention_dropout: float | None = None) -> None:
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"channels ({d_model}) must be divisible by heads ({nhead})")
        self.nhead = nhead
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff1 = nn.Linear(d_model, dim_feedforward)
        self.ff2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = dropout
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``[S, T, d]`` (S independent sequences of length T)."""
        S, T, d = x.shape
        q, k, v = self.qkv(x).view(S, T, 3, self.nhead, d // self.nhead).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attention_dropout if self.training else 0.0)
        a = a.transpose(1, 2).reshape(S, T, d)
        x = self.norm1(x + F.dropout(self.out(a), p, self.training))
        h = self.ff2(F.dropout(F.gelu(self.ff1(x)), p, self.training))
        return self.norm2(x + F.dropout(h, p, self.training))
