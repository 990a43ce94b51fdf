"""Graph-conditioned U-Net denoiser (the UGnet idea of DiffSTG).

Implements the epsilon network of DiffSTG (Wen et al., "DiffSTG: Probabilistic
Spatio-Temporal Graph Forecasting with Denoising Diffusion Models", SIGSPATIAL 2023,
Sec. 4.3): a U-Net over the time axis whose residual blocks combine temporal
convolutions, the diffusion-step embedding and a graph convolution over the nodes
(diffusion convolution on the forward and backward transition matrices of the
weighted adjacency, propagated with torch_geometric's sparse products). Time is halved between resolutions
and restored on the way up, with skip connections at every block.

Conditioning differs from DiffSTG in one respect: instead of concatenating the masked
history along time (which ties the network to one window length), every entry gets
three input channels per data channel: the conditioning value (0 off ``cond_mask``),
the noisy value (0 on ``cond_mask``) and the mask itself. Forecasting (the future
masked) and imputation (missing entries masked) are then the same network.

On a grid (``GridSpatial``) the network runs on the grid's 4- or 8-neighbour graph
(:func:`tsdiff.models.graph_layers.grid_graph`), for comparison with the grid U-Net.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tsdiff.errors import ConfigError, DataError
from tsdiff.models.base import MODELS, Condition, Denoiser
from tsdiff.models.graph_layers import DiffusionGraphConv, GraphSupports
from tsdiff.models.layers import DiffusionStepEmbedding, check_unet_options, unet_stages


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class SpatioTemporalBlock(nn.Module):
    """Residual block on ``[B, ch, N, L]``: temporal conv, + step embedding, temporal conv, graph conv."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, kernel_size: int, order: int, dropout: float) -> None:
        super().__init__()
        pad = (0, kernel_size // 2)
        self.norm1, self.norm2 = _norm(c_in), _norm(c_out)
        self.tconv1 = nn.Conv2d(c_in, c_out, (1, kernel_size), padding=pad)
        self.emb = nn.Linear(emb_dim, c_out)
        self.tconv2 = nn.Conv2d(c_out, c_out, (1, kernel_size), padding=pad)
        self.gconv = DiffusionGraphConv(c_out, c_out, order)
        self.dropout = nn.Dropout(dropout)
        self.shortcut = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, h: torch.Tensor, emb: torch.Tensor, supports) -> torch.Tensor:
        """Args: h ``[B, c_in, N, L]``, emb ``[B, emb_dim]``. Returns ``[B, c_out, N, L]``."""
        y = self.tconv1(F.silu(self.norm1(h))) + self.emb(emb)[:, :, None, None]
        y = self.tconv2(self.dropout(F.silu(self.norm2(y))))
        B, c, N, L = y.shape
        g = F.silu(y).permute(2, 0, 3, 1).reshape(N, B * L, c)  # node-first: one graph signal per (batch, step)
        y = y + self.gconv(g, supports).reshape(N, B, L, c).permute(1, 3, 0, 2)
        return self.shortcut(h) + y


class TimeDown(nn.Module):
    """Halve the time axis (ceil) with a strided temporal convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, (1, 3), stride=(1, 2), padding=(0, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(h)


class TimeUp(nn.Module):
    """Restore a time length (nearest-neighbour upsampling, then a temporal convolution)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1))

    def forward(self, h: torch.Tensor, length: int) -> torch.Tensor:
        return self.conv(F.interpolate(h, size=(h.shape[2], length), mode="nearest"))


@MODELS.register("graph_unet")
class GraphUNet(Denoiser):
    """Graph-conditioned U-Net over time on ``[B, L, N, C]`` inputs; predicts the noise.

    Needs ``Condition.spatial``: a ``GraphSpatial`` (edge weights are used) or a
    ``GridSpatial`` (run on its neighbour graph).

    Args:
        num_nodes: N, graph nodes (or grid cells).
        num_channels: C, channels per node.
        hidden: channels at the first resolution (DiffSTG: 32).
        channel_multipliers: channels of each resolution as multiples of ``hidden``;
            time is halved between consecutive resolutions (DiffSTG: [1, 2]). Windows
            need at least ``2 ** (len(channel_multipliers) - 1)`` steps.
        blocks: residual blocks per resolution on the way down (DiffSTG: 2; one more
            on the way up).
        kernel_size: odd temporal kernel size (DiffSTG: 3).
        graph_order: diffusion hops K of the graph convolution (DiffSTG: 1).
        diffusion_embedding_dim: width of the diffusion-step embedding.
        grid_neighbours: 4 or 8, the neighbour graph used on grids.
        dropout: dropout inside the blocks.
        num_covariates: width K of ``Condition.covariates`` (0: none), added to the input
            projection of every node (:meth:`Denoiser.covariate_term`).
    """

    prediction = "eps"

    def __init__(
        self,
        num_nodes: int,
        num_channels: int = 1,
        hidden: int = 32,
        channel_multipliers: list[int] | tuple[int, ...] = (1, 2),
        blocks: int = 2,
        kernel_size: int = 3,
        graph_order: int = 1,
        diffusion_embedding_dim: int = 128,
        grid_neighbours: int = 8,
        dropout: float = 0.0,
        num_covariates: int = 0,
    ) -> None:
        super().__init__()
        integers = dict(num_nodes=num_nodes, num_channels=num_channels, hidden=hidden, blocks=blocks,
                        kernel_size=kernel_size, graph_order=graph_order)
        mults = check_unet_options(integers, kernel_size, channel_multipliers, dropout, diffusion_embedding_dim)
        if grid_neighbours not in (4, 8):
            raise ConfigError(f"model option grid_neighbours must be 4 or 8, got {grid_neighbours!r}")
        self._config = dict(
            num_nodes=num_nodes, num_channels=num_channels, hidden=hidden, channel_multipliers=mults, blocks=blocks,
            kernel_size=kernel_size, graph_order=graph_order, diffusion_embedding_dim=diffusion_embedding_dim,
            grid_neighbours=grid_neighbours, dropout=dropout,
        )
        self.min_window = 2 ** (len(mults) - 1)
        self.supports = GraphSupports("graph_unet", num_nodes, grid_neighbours)
        self.diffusion_embedding = DiffusionStepEmbedding(diffusion_embedding_dim)
        self.input_projection = nn.Conv2d(3 * num_channels, hidden, 1)
        block = lambda a, b: SpatioTemporalBlock(a, b, diffusion_embedding_dim, kernel_size, graph_order, dropout)  # noqa: E731

        self.down, self.middle, self.up, c = unet_stages(hidden, mults, blocks, block, TimeDown, TimeUp)
        self.output_norm = _norm(c)
        self.output_projection = nn.Conv2d(c, num_channels, 1)
        self.enable_covariates(num_covariates, hidden)

    def check_data(self, signature: dict) -> None:
        """Refuse windows shorter than the U-Net depth (ConfigError)."""
        if signature.get("window") is not None:
            self._check_length(int(signature["window"]), ConfigError)

    def check_spatial(self, spatial) -> None:
        """Refuse data without a graph or grid of N nodes (DataError)."""
        self.supports.check(spatial)

    def _check_length(self, L: int, error: type[Exception]) -> None:
        if L < self.min_window:
            n = len(self._config["channel_multipliers"])
            raise error(
                f"graph_unet with {n} resolutions halves the time axis {n - 1} time(s) and needs windows of at "
                f"least {self.min_window} steps, got {L}; use a longer window (data.options: window, or context "
                "+ horizon) or fewer model.channel_multipliers"
            )

    def forward(self, x_noisy: torch.Tensor, noise_level: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Predict the noise in ``x_noisy``.

        Args:
            x_noisy: ``[B, L, N, C]`` noisy values (used on non-conditioning entries).
            noise_level: ``[B]`` diffusion step (process network time).
            cond: conditioning values and mask ``[B, L, N, C]``; ``spatial`` a graph or grid.
        Returns:
            ``[B, L, N, C]`` noise prediction.
        """
        self.check_input(x_noisy, cond)
        self._check_length(x_noisy.shape[1], DataError)
        supports = self.supports(cond.spatial, x_noisy.device)
        m = cond.cond_mask.to(x_noisy.dtype)
        inp = torch.cat([cond.filled(), x_noisy * (1 - m), m], dim=-1)  # [B, L, N, 3C]
        h = self.input_projection(inp.permute(0, 3, 2, 1))  # [B, hidden, N, L]
        cov = self.covariate_term(cond)  # [B, L, hidden], the same for every node
        if cov is not None:
            h = h + cov.transpose(1, 2)[:, :, None, :]
        emb = self.diffusion_embedding(noise_level)
        skips = [h]
        for mod in self.down:
            h = mod(h) if isinstance(mod, TimeDown) else mod(h, emb, supports)
            skips.append(h)
        for mod in self.middle:
            h = mod(h, emb, supports)
        for mod in self.up:
            if isinstance(mod, TimeUp):
                h = mod(h, skips[-1].shape[-1])
            else:
                h = mod(torch.cat([h, skips.pop()], dim=1), emb, supports)
        out = self.output_projection(F.silu(self.output_norm(h)))  # [B, C, N, L]
        return out.permute(0, 3, 2, 1)
