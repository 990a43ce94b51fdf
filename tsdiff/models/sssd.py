"""SSSD-S4 denoiser: a DiffWave residual stack whose temporal layers are S4 state-space models.

Implements SSSD^S4 of Alcaraz & Strodthoff, "Diffusion-based Time Series Imputation and
Forecasting with Structured State Space Models" (TMLR 2023, Sec. 3 and Fig. 2): the
DiffWave architecture (Kong et al. 2021) with each residual block's dilated convolution
replaced by S4 layers, one before and one after the conditioning is added. The S4 layers
are the diagonal S4D of :mod:`tsdiff.models.s4` (plain PyTorch, FFT convolution), so cost
and memory grow linearly (times ``log L``) in the window length, where CSDI's attention
over time is quadratic.

Features are channels: the window ``[B, L, N, C]`` becomes ``K = N C`` input channels of
a 1-D sequence model over time. Graphs and grids are handled by this flattening (no
message passing; every cell is a feature), up to ``max_features`` features (default
4096; a larger K is a clear ConfigError: use ``graph_unet`` / ``grid_unet`` or ``csdi``
with ``spatial`` for large graphs and grids).

Conditioning (the paper's ``mask`` conditioning): the network input is the noisy window
with the conditioning entries zeroed; the conditioning signal is ``[values, mask]``
(``2K`` channels, values 0 off the mask, or the prior's estimate there). Bidirectional S4
layers read the whole window, so for forecasting the future is hidden by the mask alone:
the network never sees a value that is not under ``cond_mask`` (tests/test_sssd.py checks
that the true future cannot change a forecast). A bidirectional S4 layer refuses to run
causally (:meth:`tsdiff.models.s4.S4DConv.step`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tsdiff.errors import ConfigError
from tsdiff.models.base import MODELS, Condition, Denoiser
from tsdiff.models.layers import DiffusionStepEmbedding
from tsdiff.models.s4 import S4Block

#: A small CPU-sized configuration (the API's default network for ``model="sssd"``). It predicts
#: v: after minutes of CPU training the noise prediction's errors at high noise, amplified by
#: ``sqrt((1 - alpha_bar) / alpha_bar)``, gave AQI-36 CRPS 1.52; x0 prediction learned to
#: ignore the noisy input, so every sample came out alike (90% coverage 0.01 on AQI-36's
#: validation month, with the cross_series prior); v, which tends to x0 = x_t as the noise
#: vanishes, kept the spread: validation CRPS 0.226 against x0's 0.246, coverage 0.77
#: (configs/imputation/sssd_aqi36_cpu.yaml says how these were run).
SSSD_CPU_PRESET: dict = {"prediction": "v", "layers": 4, "channels": 32, "state_size": 16,
                         "diffusion_embedding_dim": 64, "diffusion_hidden_dim": 128}


class SSSDResidualBlock(nn.Module):
    """One residual block of SSSD-S4 on ``[B, ch, L]``.

    ``h = x + W_t e(t)``; ``h = S4(conv3(h))`` on 2 ch channels; ``h = S4(h + W_c cond)``;
    gated ``tanh * sigmoid``; residual and skip outputs through pointwise convolutions.
    """

    def __init__(self, channels: int, skip_channels: int, cond_channels: int, embedding_dim: int, s4: dict) -> None:
        super().__init__()
        self.step_projection = nn.Linear(embedding_dim, channels)
        self.conv = nn.Conv1d(channels, 2 * channels, 3, padding=1)
        self.s4_in = S4Block(2 * channels, **s4)
        self.cond_projection = nn.Conv1d(cond_channels, 2 * channels, 1)
        self.s4_out = S4Block(2 * channels, **s4)
        self.res_projection = nn.Conv1d(channels, channels, 1)
        self.skip_projection = nn.Conv1d(channels, skip_channels, 1)
        for conv in (self.conv, self.cond_projection, self.res_projection, self.skip_projection):
            nn.init.kaiming_normal_(conv.weight)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: x ``[B, ch, L]``, cond ``[B, 2K, L]``, emb ``[B, embedding_dim]``. Returns (residual out, skip)."""
        h = x + self.step_projection(emb)[:, :, None]
        h = self.s4_in(self.conv(h))
        h = self.s4_out(h + self.cond_projection(cond))
        filt, gate = h.chunk(2, dim=1)
        out = torch.tanh(filt) * torch.sigmoid(gate)
        return (x + self.res_projection(out)) * math.sqrt(0.5), self.skip_projection(out)


@MODELS.register("sssd")
class SSSDDenoiser(Denoiser):
    """SSSD-S4 on ``[B, L, N, C]`` inputs (features K = N C as channels); predicts the noise.

    Args:
        num_nodes: N.
        num_channels: C.
        layers: residual blocks (paper: 36).
        channels: residual channels (paper: 256).
        skip_channels: skip channels (default: ``channels``; paper: 256).
        state_size: S4 state size N per channel (paper: 64).
        bidirectional: bidirectional S4 layers (paper: true, for imputation and forecasting).
        dropout: dropout inside the S4 layers (paper: 0).
        diffusion_embedding_dim: sinusoidal step embedding width (paper: 128).
        diffusion_hidden_dim: its projection width (paper: 512).
        discretization, init, dt_min, dt_max: S4D options (:class:`tsdiff.models.s4.S4DConv`).
        l_max: longest window the S4 layers accept (None: any).
        max_features: largest K = N C accepted (flattened graphs and grids; default 4096).
        num_covariates: width of ``Condition.covariates`` (0: none), added to the input
            projection (:meth:`Denoiser.covariate_term`).
    """

    prediction = "eps"

    def __init__(
        self,
        num_nodes: int,
        num_channels: int = 1,
        layers: int = 36,
        channels: int = 256,
        skip_channels: int | None = None,
        state_size: int = 64,
        bidirectional: bool = True,
        dropout: float = 0.0,
        diffusion_embedding_dim: int = 128,
        diffusion_hidden_dim: int = 512,
        discretization: str = "zoh",
        init: str = "lin",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        l_max: int | None = None,
        max_features: int = 4096,
        num_covariates: int = 0,
    ) -> None:
        super().__init__()
        skip = channels if skip_channels is None else skip_channels
        for key, val in dict(num_nodes=num_nodes, num_channels=num_channels, layers=layers, channels=channels,
                             skip_channels=skip, diffusion_hidden_dim=diffusion_hidden_dim,
                             max_features=max_features).items():
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ConfigError(f"model option {key} must be an integer >= 1, got {val!r}")
        if not isinstance(diffusion_embedding_dim, int) or diffusion_embedding_dim < 2 or diffusion_embedding_dim % 2:
            raise ConfigError(f"model option diffusion_embedding_dim must be an even integer >= 2, "
                              f"got {diffusion_embedding_dim!r}")
        K = num_nodes * num_channels
        if K > max_features:
            raise ConfigError(
                f"model 'sssd' flattens nodes x channels into {K} features ({num_nodes} x {num_channels}), more "
                f"than max_features = {max_features}: its input and conditioning layers grow with K. Use "
                "graph_unet / grid_unet or csdi with spatial: graph / grid for large graphs and grids, or raise "
                "model.max_features"
            )
        self._config = dict(
            num_nodes=num_nodes, num_channels=num_channels, layers=layers, channels=channels, skip_channels=skip,
            state_size=state_size, bidirectional=bidirectional, dropout=dropout,
            diffusion_embedding_dim=diffusion_embedding_dim, diffusion_hidden_dim=diffusion_hidden_dim,
            discretization=discretization, init=init, dt_min=dt_min, dt_max=dt_max, l_max=l_max,
            max_features=max_features,
        )
        self.num_features = K
        s4 = dict(state_size=state_size, bidirectional=bidirectional, dropout=dropout, l_max=l_max,
                  discretization=discretization, init=init, dt_min=dt_min, dt_max=dt_max)
        self.diffusion_embedding = DiffusionStepEmbedding(diffusion_embedding_dim, diffusion_hidden_dim)
        self.input_projection = nn.Conv1d(K, channels, 1)
        self.blocks = nn.ModuleList(SSSDResidualBlock(channels, skip, 2 * K, diffusion_hidden_dim, s4)
                                    for _ in range(layers))
        self.output_projection1 = nn.Conv1d(skip, skip, 1)
        self.output_projection2 = nn.Conv1d(skip, K, 1)
        nn.init.kaiming_normal_(self.input_projection.weight)
        nn.init.kaiming_normal_(self.output_projection1.weight)
        nn.init.zeros_(self.output_projection2.weight)  # DiffWave: start from a zero prediction
        nn.init.zeros_(self.output_projection2.bias)
        self.enable_covariates(num_covariates, channels)

    def forward(self, x_noisy: torch.Tensor, noise_level: torch.Tensor, cond: Condition) -> torch.Tensor:
        """The denoiser contract (tsdiff.models.base): ``[B, L, N, C]`` noisy values, read off
        ``cond_mask`` only, ``[B]`` noise levels and the condition -> ``[B, L, N, C]`` prediction."""
        self.check_input(x_noisy, cond)
        B, L, K = x_noisy.shape[0], x_noisy.shape[1], self.num_features
        m = cond.cond_mask.to(x_noisy.dtype)
        channels_first = lambda t: t.reshape(B, L, K).transpose(1, 2)  # noqa: E731  [B, K, L]
        # as SSSD's "only generate missing" mode: the conditioning values in place of the noisy ones
        h = self.input_projection(channels_first(torch.where(cond.cond_mask, cond.filled(), x_noisy)))
        cov = self.covariate_term(cond)  # [B, L, channels]
        h = F.relu(h if cov is None else h + cov.transpose(1, 2))
        c = torch.cat([channels_first(cond.filled()), channels_first(m)], dim=1)  # [B, 2K, L]
        emb = self.diffusion_embedding(noise_level)
        skips = 0.0
        for block in self.blocks:
            h, skip = block(h, c, emb)
            skips = skips + skip
        out = F.relu(self.output_projection1(skips / math.sqrt(len(self.blocks))))
        return self.output_projection2(out).transpose(1, 2).reshape(x_noisy.shape)
