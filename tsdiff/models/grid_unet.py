"""Grid U-Net denoiser for gridded fields (lat x lon), with factorised space/time blocks.

tsdiff's own network for gridded data (no single paper): a U-Net over the two
spatial axes in the style of the DDPM U-Net (Ho et al. 2020), whose residual blocks
factorise a 3-D convolution into a spatial ``1 x 3 x 3`` and a temporal ``k x 1 x 1``
convolution ((2+1)-D, Tran et al. 2018), with the diffusion-step embedding added
between them. The spatial resolution is halved between levels and restored on the way
up, with skip connections; any window length works.

Inputs per entry and data channel: the conditioning value (0 off ``cond_mask``), the
noisy value (0 on ``cond_mask``) and the mask, plus one land/sea channel per cell.
Cells outside ``GridSpatial.land_mask`` are zeroed on input and output, so they never
influence a prediction and their predicted noise is 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tsdiff.data.spatial import GridSpatial
from tsdiff.errors import DataError
from tsdiff.models.base import MODELS, Condition, Denoiser
from tsdiff.models.layers import DiffusionStepEmbedding, check_unet_options, unet_stages


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class FactorisedBlock(nn.Module):
    """Residual block on ``[B, ch, L, H, W]``: spatial conv, + step embedding, temporal conv."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = _norm(c_in), _norm(c_out)
        self.space = nn.Conv3d(c_in, c_out, (1, 3, 3), padding=(0, 1, 1))
        self.emb = nn.Linear(emb_dim, c_out)
        self.time = nn.Conv3d(c_out, c_out, (kernel_size, 1, 1), padding=(kernel_size // 2, 0, 0))
        self.dropout = nn.Dropout(dropout)
        self.shortcut = nn.Identity() if c_in == c_out else nn.Conv3d(c_in, c_out, 1)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Args: h ``[B, c_in, L, H, W]``, emb ``[B, emb_dim]``. Returns ``[B, c_out, L, H, W]``."""
        y = self.space(F.silu(self.norm1(h))) + self.emb(emb)[:, :, None, None, None]
        y = self.time(self.dropout(F.silu(self.norm2(y))))
        return self.shortcut(h) + y


class SpaceDown(nn.Module):
    """Halve both spatial axes (ceil) with a strided ``1 x 3 x 3`` convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(h)


class SpaceUp(nn.Module):
    """Restore a spatial size (nearest-neighbour upsampling, then a ``1 x 3 x 3`` convolution)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, h: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(F.interpolate(h, size=(h.shape[2], *size), mode="nearest"))


@MODELS.register("grid_unet")
class GridUNet(Denoiser):
    """U-Net over (lat, lon) with factorised space/time blocks on ``[B, L, N = H * W, C]``.

    Needs ``Condition.spatial`` to be a ``GridSpatial`` with ``H * W = N`` (cells
    flattened row-major, as the grid adapter does).

    Args:
        num_nodes: N = H * W grid cells.
        num_channels: C, variables per cell.
        hidden: channels at full resolution.
        channel_multipliers: channels per level as multiples of ``hidden``; both spatial
            axes are halved between levels, so the grid needs at least
            ``2 ** (len(channel_multipliers) - 1)`` cells along each axis.
        blocks: residual blocks per level on the way down (one more on the way up).
        kernel_size: odd temporal kernel size.
        diffusion_embedding_dim: width of the diffusion-step embedding.
        dropout: dropout inside the blocks.
        num_covariates: width K of ``Condition.covariates`` (0: none), added to the input
            projection of every cell (:meth:`Denoiser.covariate_term`).
    """

    prediction = "eps"

    def __init__(
        self,
        num_nodes: int,
        num_channels: int = 1,
        hidden: int = 32,
        channel_multipliers: list[int] | tuple[int, ...] = (1, 2, 2),
        blocks: int = 2,
        kernel_size: int = 3,
        diffusion_embedding_dim: int = 128,
        dropout: float = 0.0,
        num_covariates: int = 0,
    ) -> None:
        super().__init__()
        integers = dict(num_nodes=num_nodes, num_channels=num_channels, hidden=hidden, blocks=blocks,
                        kernel_size=kernel_size)
        mults = check_unet_options(integers, kernel_size, channel_multipliers, dropout, diffusion_embedding_dim)
        self._config = dict(
            num_nodes=num_nodes, num_channels=num_channels, hidden=hidden, channel_multipliers=mults, blocks=blocks,
            kernel_size=kernel_size, diffusion_embedding_dim=diffusion_embedding_dim, dropout=dropout,
        )
        self.min_side = 2 ** (len(mults) - 1)
        self._land_key = None
        self._land: torch.Tensor | None = None
        self.diffusion_embedding = DiffusionStepEmbedding(diffusion_embedding_dim)
        self.input_projection = nn.Conv3d(3 * num_channels + 1, hidden, 1)
        block = lambda a, b: FactorisedBlock(a, b, diffusion_embedding_dim, kernel_size, dropout)  # noqa: E731

        self.down, self.middle, self.up, c = unet_stages(hidden, mults, blocks, block, SpaceDown, SpaceUp)
        self.output_norm = _norm(c)
        self.output_projection = nn.Conv3d(c, num_channels, 1)
        self.enable_covariates(num_covariates, hidden)

    def check_spatial(self, spatial) -> None:
        """Refuse data that is not a grid of N cells, or a grid too small for the depth (DataError)."""
        if not isinstance(spatial, GridSpatial):
            raise DataError(
                f"model 'grid_unet' needs gridded data (a GridSpatial, e.g. from an xarray field), but the data has "
                f"{'no spatial metadata' if spatial is None else 'a ' + type(spatial).__name__}; use graph_unet for "
                "graphs or csdi for plain series"
            )
        H, W = spatial.shape
        if H * W != self._config["num_nodes"]:
            raise DataError(f"model 'grid_unet' was built for N={self._config['num_nodes']} cells but the grid is "
                            f"{H} x {W} = {H * W}")
        if min(H, W) < self.min_side:
            n = len(self._config["channel_multipliers"])
            raise DataError(
                f"grid_unet with {n} levels halves the grid {n - 1} time(s) and needs at least {self.min_side} cells "
                f"along each axis, got {H} x {W}; use fewer model.channel_multipliers"
            )

    def _land_mask(self, spatial: GridSpatial, device: torch.device) -> torch.Tensor:
        """float ``[H, W]``: 1 on used cells, cached per grid and device."""
        if self._land_key is None or self._land_key[0] is not spatial or self._land_key[1] != device:
            self.check_spatial(spatial)
            lm = np.ones(spatial.shape, dtype=bool) if spatial.land_mask is None else np.asarray(spatial.land_mask, bool)
            self._land = torch.from_numpy(lm.astype(np.float32)).to(device)
            self._land_key = (spatial, device)
        return self._land

    def forward(self, x_noisy: torch.Tensor, noise_level: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Predict the noise in ``x_noisy``.

        Args:
            x_noisy: ``[B, L, N, C]`` noisy values (used on non-conditioning entries).
            noise_level: ``[B]`` diffusion step (process network time).
            cond: conditioning values and mask ``[B, L, N, C]``; ``spatial`` a GridSpatial.
        Returns:
            ``[B, L, N, C]`` noise prediction, 0 on cells outside the land mask.
        """
        self.check_input(x_noisy, cond)
        land = self._land_mask(cond.spatial, x_noisy.device)
        H, W = land.shape
        B, L, N, C = x_noisy.shape
        m = cond.cond_mask.to(x_noisy.dtype)
        inp = torch.cat([cond.filled(), x_noisy * (1 - m), m], dim=-1) * land.reshape(1, 1, N, 1)
        inp = torch.cat([inp, land.reshape(1, 1, N, 1).expand(B, L, N, 1)], dim=-1)
        h = self.input_projection(inp.reshape(B, L, H, W, 3 * C + 1).permute(0, 4, 1, 2, 3))  # [B, ch, L, H, W]
        cov = self.covariate_term(cond)  # [B, L, ch], the same for every cell
        if cov is not None:
            h = h + cov.transpose(1, 2)[:, :, :, None, None]
        emb = self.diffusion_embedding(noise_level)
        skips = [h]
        for mod in self.down:
            h = mod(h) if isinstance(mod, SpaceDown) else mod(h, emb)
            skips.append(h)
        for mod in self.middle:
            h = mod(h, emb)
        for mod in self.up:
            if isinstance(mod, SpaceUp):
                h = mod(h, tuple(skips[-1].shape[-2:]))
            else:
                h = mod(torch.cat([h, skips.pop()], dim=1), emb)
        out = self.output_projection(F.silu(self.output_norm(h))) * land  # [B, C, L, H, W]
        return out.permute(0, 2, 3, 4, 1).reshape(B, L, N, C)
