"""CSDI denoiser: residual layers of temporal and feature transformers.

Implements the score network of CSDI (Tashiro et al., "CSDI: Conditional Score-based
Diffusion Models for Probabilistic Time Series Imputation", NeurIPS 2021, Sec. 4 and
Appendix E): the input pairs the conditioning values with the noisy targets; each
residual layer adds the diffusion-step embedding, applies a transformer over time
(per feature) and one over features (per time step), then a gated activation
conditioned on side information (time embedding, feature embedding, conditional mask).

Features are the flattened spatial and channel axes: K = N * C.

On graphs and grids (``spatial: graph`` / ``grid``) each layer also mixes the nodes with
a diffusion graph convolution on the adjacency (PriSTI, Liu et al. 2023: a message
passing branch next to the spatial attention), added to the feature attention's output
before a layer norm. ``graph`` uses ``GraphSpatial``'s weighted edges, ``grid`` the 4-
or 8-neighbour graph of a ``GridSpatial``. With ``feature_attention: false`` the graph
convolution is the only spatial mixing (local, linear in N: for large grids, where
attention over all cells is quadratic).
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from tsdiff.data.spatial import GraphSpatial, GridSpatial
from tsdiff.errors import ConfigError, DataError
from tsdiff.models.base import MODELS, Condition, Denoiser
from tsdiff.models.graph_layers import DiffusionGraphConv, GraphSupports
from tsdiff.models.layers import ATTENTION_KINDS, DiffusionStepEmbedding, TransformerLayer, sinusoidal_embedding
from tsdiff.models.s4 import S4Block

#: Temporal layers of CSDI's residual layers (model option ``temporal``).
TEMPORAL_KINDS = ("transformer", "s4")


class TemporalS4(nn.Module):
    """A bidirectional S4 layer (:class:`tsdiff.models.s4.S4Block`) on ``[S, T, d]`` sequences, the
    drop-in for the temporal transformer in CSDI-S4 (Alcaraz & Strodthoff 2023, Sec. 4)."""

    def __init__(self, channels: int, state_size: int, dropout: float) -> None:
        super().__init__()
        self.s4 = S4Block(channels, state_size=state_size, bidirectional=True, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s4(x.transpose(1, 2)).transpose(1, 2)


class CSDIResidualLayer(nn.Module):
    def __init__(self, channels: int, side_dim: int, diffusion_dim: int, heads: int, ff_dim: int, dropout: float,
                 attention_dropout: float | None, graph_order: int | None = None, feature_attention: bool = True,
                 attention: str = "softmax", temporal: str = "transformer", state_size: int = 64):
        super().__init__()
        self.diffusion_projection = nn.Linear(diffusion_dim, channels)
        if temporal == "s4":
            self.time_layer = TemporalS4(channels, state_size, dropout)
        else:
            self.time_layer = TransformerLayer(channels, heads, ff_dim, dropout, attention_dropout, attention)
        if feature_attention:
            self.feature_layer = TransformerLayer(channels, heads, ff_dim, dropout, attention_dropout, attention)
        if graph_order is not None:  # PriSTI-style message passing over the nodes
            self.graph_conv = DiffusionGraphConv(channels, channels, graph_order)
            self.graph_norm = nn.LayerNorm(channels)
        self.dropout = dropout
        self.mid_projection = nn.Linear(channels, 2 * channels)
        self.cond_projection = nn.Linear(side_dim, 2 * channels)
        self.output_projection = nn.Linear(channels, 2 * channels)
        for lin in (self.mid_projection, self.cond_projection, self.output_projection):
            nn.init.kaiming_normal_(lin.weight)

    def forward(self, h: torch.Tensor, side: torch.Tensor, demb: torch.Tensor, supports=None):
        """Args: h ``[B, L, K, ch]``; side: this layer's projected side information plus the
        mid projection's bias, contiguous ``[B, L, K, 2 ch]`` (``CSDIDenoiser.side_projections``);
        demb ``[B, diffusion_dim]``; supports: transition matrices ``[N, N]`` of the graph
        (K = N * C), or None."""
        B, L, K, ch = h.shape
        y = h + self.diffusion_projection(demb)[:, None, None, :]
        if L > 1:  # attention over time, one sequence per (batch, feature)
            y = self.time_layer(y.transpose(1, 2).reshape(B * K, L, ch)).reshape(B, K, L, ch).transpose(1, 2)
        y_att = y
        if K > 1 and hasattr(self, "feature_layer"):  # attention over features, one sequence per (batch, time step)
            y_att = self.feature_layer(y.reshape(B * L, K, ch)).reshape(B, L, K, ch)
        if supports is not None:  # graph convolution over nodes, one signal per (batch, step, channel)
            N = supports[0].shape[0]
            C = K // N
            g = y.reshape(B, L, N, C, ch).permute(2, 0, 1, 3, 4).reshape(N, B * L * C, ch)
            g = self.graph_conv(g, supports).reshape(N, B, L, C, ch).permute(1, 2, 0, 3, 4).reshape(B, L, K, ch)
            y_att = self.graph_norm(y_att + F.dropout(g, self.dropout, self.training))
        y = y_att
        # mid_projection(y) + cond_projection(side info) in one fused multiply-add
        y = torch.addmm(side.reshape(-1, 2 * ch), y.reshape(-1, ch), self.mid_projection.weight.t()).view(B, L, K, 2 * ch)
        gate, filt = y.chunk(2, dim=-1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=-1)
        return (h + residual) / math.sqrt(2.0), skip


@MODELS.register("csdi")
class CSDIDenoiser(Denoiser):
    """CSDI's conditional score network, on ``[B, L, N, C]`` inputs; predicts the noise.

    Args:
        num_nodes: N, size of the spatial / series axis.
        num_channels: C, channels per node.
        layers: residual layers (paper: 4).
        channels: hidden channels (paper: 64).
        heads: attention heads (paper: 8).
        ff_dim: transformer feed-forward width (paper: 64).
        diffusion_embedding_dim: diffusion-step embedding width (paper: 128).
        time_embedding_dim: time position embedding width (paper: 128).
        feature_embedding_dim: learned feature embedding width (paper: 16).
        dropout: transformer dropout (paper: 0.1, PyTorch's default).
        attention_dropout: dropout on attention weights (default: ``dropout``, as in
            the paper). Setting it to 0 trains faster on CPU.
        attention: ``"softmax"`` (CSDI) or ``"linear"`` (Katharopoulos et al. 2020,
            ``tsdiff.models.layers.linear_attention``): cost linear in the window length
            and the number of features, for many series (electricity) or long windows.
        spatial: ``"none"`` (CSDI), ``"graph"`` (add a graph convolution on the data's
            GraphSpatial, PriSTI-like) or ``"grid"`` (the same on a GridSpatial's
            neighbour graph).
        graph_order: diffusion hops of the graph convolution (PriSTI: 2).
        grid_neighbours: 4 or 8, the neighbour graph used with ``spatial: grid``.
        feature_attention: attention over all K features (CSDI); ``false`` leaves the
            graph convolution as the only spatial mixing (needs ``spatial`` set).
        temporal: ``"transformer"`` (CSDI) or ``"s4"``: a bidirectional S4 layer over time
            (CSDI-S4 of the SSSD paper; cost linear in the window length, :mod:`tsdiff.models.s4`).
        state_size: the S4 layers' state size (``temporal: s4``).
        num_covariates: width K of ``Condition.covariates`` (0: none); their projection is added
            to the input projection of every feature (:meth:`Denoiser.covariate_term`).
    """

    prediction = "eps"

    def __init__(
        self,
        num_nodes: int,
        num_channels: int = 1,
        layers: int = 4,
        channels: int = 64,
        heads: int = 8,
        ff_dim: int = 64,
        diffusion_embedding_dim: int = 128,
        time_embedding_dim: int = 128,
        feature_embedding_dim: int = 16,
        dropout: float = 0.1,
        attention_dropout: float | None = None,
        spatial: str = "none",
        graph_order: int = 2,
        grid_neighbours: int = 8,
        feature_attention: bool = True,
        attention: str = "softmax",
        temporal: str = "transformer",
        state_size: int = 64,
        num_covariates: int = 0,
    ) -> None:
        super().__init__()
        for key, val in dict(num_nodes=num_nodes, num_channels=num_channels, layers=layers, channels=channels, heads=heads).items():
            if not isinstance(val, int) or val < 1:
                raise ConfigError(f"model option {key} must be an integer >= 1, got {val!r}")
        if channels % heads:
            raise ConfigError(f"model option channels ({channels}) must be divisible by heads ({heads})")
        for key, val in dict(dropout=dropout, attention_dropout=attention_dropout).items():
            if val is not None and not 0.0 <= val < 1.0:
                raise ConfigError(f"model option {key} must be in [0, 1), got {val!r}")
        if spatial not in ("none", "graph", "grid"):
            raise ConfigError(f"model option spatial must be 'none', 'graph' or 'grid', got {spatial!r}")
        if not isinstance(graph_order, int) or graph_order < 1:
            raise ConfigError(f"model option graph_order must be an integer >= 1, got {graph_order!r}")
        if grid_neighbours not in (4, 8):
            raise ConfigError(f"model option grid_neighbours must be 4 or 8, got {grid_neighbours!r}")
        if attention not in ATTENTION_KINDS:
            raise ConfigError(f"model option attention must be one of {', '.join(ATTENTION_KINDS)}, got {attention!r}")
        if temporal not in TEMPORAL_KINDS:
            raise ConfigError(f"model option temporal must be one of {', '.join(TEMPORAL_KINDS)}, got {temporal!r}")
        if not feature_attention and spatial == "none":
            raise ConfigError("model option feature_attention: false leaves no spatial mixing; "
                              "set spatial: graph or grid, or keep feature_attention: true")
        self._config = dict(
            num_nodes=num_nodes, num_channels=num_channels, layers=layers, channels=channels, heads=heads,
            ff_dim=ff_dim, diffusion_embedding_dim=diffusion_embedding_dim, time_embedding_dim=time_embedding_dim,
            feature_embedding_dim=feature_embedding_dim, dropout=dropout, attention_dropout=attention_dropout,
        )
        if spatial != "none" or not feature_attention:  # kept out of plain CSDI's config (older files)
            self._config.update(spatial=spatial, graph_order=graph_order, grid_neighbours=grid_neighbours,
                                feature_attention=feature_attention)
        if attention != "softmax":
            self._config["attention"] = attention
        if temporal != "transformer":
            self._config.update(temporal=temporal, state_size=state_size)
        self.spatial = spatial
        self.supports = GraphSupports("csdi", num_nodes, grid_neighbours) if spatial != "none" else None
        self.num_features = num_nodes * num_channels
        self.time_embedding_dim = time_embedding_dim
        side_dim = time_embedding_dim + feature_embedding_dim + 1
        self.feature_embedding = nn.Embedding(self.num_features, feature_embedding_dim)
        self.diffusion_embedding = DiffusionStepEmbedding(diffusion_embedding_dim)
        self.input_projection = nn.Linear(2, channels)
        self.layers = nn.ModuleList(
            CSDIResidualLayer(channels, side_dim, diffusion_embedding_dim, heads, ff_dim, dropout, attention_dropout,
                              None if spatial == "none" else graph_order, feature_attention, attention, temporal,
                              state_size)
            for _ in range(layers)
        )
        self._side_cache: tuple | None = None
        self.output_projection1 = nn.Linear(channels, channels)
        self.output_projection2 = nn.Linear(channels, 1)
        nn.init.kaiming_normal_(self.input_projection.weight)
        nn.init.kaiming_normal_(self.output_projection1.weight)
        nn.init.zeros_(self.output_projection2.weight)
        nn.init.zeros_(self.output_projection2.bias)
        self.enable_covariates(num_covariates, channels)

    def check_spatial(self, spatial) -> None:
        """With ``spatial: graph`` / ``grid``, refuse data without a graph / grid of N nodes (DataError)."""
        if self.spatial == "none":
            return
        kind = GraphSpatial if self.spatial == "graph" else GridSpatial
        if not isinstance(spatial, kind):
            have = "no spatial metadata" if spatial is None else f"a {type(spatial).__name__}"
            raise DataError(
                f"csdi with spatial: {self.spatial} needs a {kind.__name__}, but the data has {have}; set "
                f"model.spatial to {'grid' if isinstance(spatial, GridSpatial) else 'graph' if spatial is not None else 'none'}"
                " to match the data"
            )
        self.supports.check(spatial)

    def side_info(self, cond: Condition, B: int, L: int) -> torch.Tensor:
        """Time embedding, feature embedding and conditional mask: ``[B, L, K, side_dim]``."""
        device = cond.values.device
        tp = cond.timepoints if cond.timepoints is not None else torch.arange(L, device=device).expand(B, L)
        K = self.num_features
        temb = sinusoidal_embedding(tp, self.time_embedding_dim)[:, :, None, :].expand(B, L, K, -1)
        femb = self.feature_embedding.weight[None, None].expand(B, L, K, -1)
        mask = cond.cond_mask.reshape(B, L, K, 1).to(temb.dtype)
        return torch.cat([temb, femb, mask], dim=-1)

    def side_projections(self, cond: Condition, B: int, L: int) -> tuple[torch.Tensor, ...]:
        """Each layer's ``cond_projection(side_info) + mid_projection.bias``: ``[B, L, K, 2 ch]`` each.

        The side information is ``[time embedding (b, l), feature embedding (k), mask (b, l, k)]``,
        so its projection splits into ``temb W_t + femb W_f + mask w_m + bias``: the time part
        is computed once per (b, l), the feature part once per k, and the concatenated
        ``[B, L, K, side_dim]`` tensor (and its matmul over all B L K entries) never exists.
        Same maths as :meth:`side_info` followed by each layer's ``cond_projection``.
        """
        tp = cond.timepoints if cond.timepoints is not None else torch.arange(L, device=cond.values.device).expand(B, L)
        K, n, td = self.num_features, len(self.layers), self.time_embedding_dim
        W = torch.stack([layer.cond_projection.weight for layer in self.layers])  # [n, 2ch, side_dim]
        bias = torch.stack([layer.cond_projection.bias + layer.mid_projection.bias for layer in self.layers])
        P = W.shape[1]
        fd = self.feature_embedding.weight.shape[1]
        temb = sinusoidal_embedding(tp, td).reshape(1, B * L, td)
        t_part = torch.matmul(temb, W[:, :, :td].transpose(1, 2))  # [n, B L, 2ch]
        f_part = torch.matmul(self.feature_embedding.weight, W[:, :, td:td + fd].transpose(1, 2))  # [n, K, 2ch]
        f_part = f_part + bias[:, None, :]
        terms = t_part.view(n, B, L, 1, P) + f_part.view(n, 1, 1, K, P)  # [n, B, L, K, 2ch], contiguous
        mask = cond.cond_mask.reshape(1, B, L, K, 1).to(terms.dtype)
        terms = terms.addcmul_(mask, W[:, :, -1].reshape(n, 1, 1, 1, P).to(terms.dtype))
        return terms.unbind(0)

    def _cached_side_projections(self, cond: Condition, B: int, L: int) -> tuple[torch.Tensor, ...]:
        """:meth:`side_projections`, computed once per condition while sampling.

        A sampler passes the same condition tensors at every step; without gradients the
        projections are reused until the condition, the weights (their in-place version
        counters) or the dtype change. With gradients (training) they are always recomputed.
        """
        if torch.is_grad_enabled() or self.training:
            self._side_cache = None
            return self.side_projections(cond, B, L)
        params = [self.feature_embedding.weight] + [p for layer in self.layers
                                                     for p in (layer.cond_projection.weight, layer.cond_projection.bias,
                                                               layer.mid_projection.bias)]
        key = (tuple(p._version for p in params), torch.get_autocast_dtype(cond.values.device.type)
               if torch.is_autocast_enabled(cond.values.device.type) else None)
        cached = self._side_cache
        if (cached is not None and cached[0]() is cond.values and cached[1]() is cond.cond_mask
                and (cached[2]() if cached[2] is not None else None) is cond.timepoints and cached[3] == key):
            return cached[4]
        terms = self.side_projections(cond, B, L)
        # weak references: when the sampler drops the condition, the cached projections go too
        me = weakref.ref(self)

        def drop(_ref) -> None:
            owner = me()
            if owner is not None and owner._side_cache is not None and owner._side_cache[0] is _ref:
                # a plain attribute: set it without nn.Module.__setattr__, which can fail
                # when this runs during interpreter shutdown
                owner.__dict__["_side_cache"] = None

        self._side_cache = (weakref.ref(cond.values, drop), weakref.ref(cond.cond_mask),
                            None if cond.timepoints is None else weakref.ref(cond.timepoints), key, terms)
        return terms

    def train(self, mode: bool = True):
        self._side_cache = None
        return super().train(mode)

    def forward(self, x_noisy: torch.Tensor, noise_level: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Predict the noise in ``x_noisy``.

        Args:
            x_noisy: ``[B, L, N, C]`` noisy values (used on non-conditioning entries).
            noise_level: ``[B]`` diffusion step (process network time).
            cond: conditioning values and mask, ``[B, L, N, C]`` each.
        Returns:
            ``[B, L, N, C]`` noise prediction.
        """
        self.check_input(x_noisy, cond)
        B, L = x_noisy.shape[:2]
        K = self.num_features
        m = cond.cond_mask.to(x_noisy.dtype)
        inp = torch.stack([cond.filled(), x_noisy * (1 - m)], dim=-1).reshape(B, L, K, 2)
        h = self.input_projection(inp)
        cov = self.covariate_term(cond)  # [B, L, ch], the same for every feature
        h = F.relu(h if cov is None else h + cov[:, :, None, :])
        sides = self._cached_side_projections(cond, B, L)
        demb = self.diffusion_embedding(noise_level)
        supports = None
        if self.supports is not None:
            if not isinstance(cond.spatial, GraphSpatial if self.spatial == "graph" else GridSpatial):
                self.check_spatial(cond.spatial)
            supports = self.supports(cond.spatial, x_noisy.device)
        skips = 0.0
        for layer, side in zip(self.layers, sides):
            h, skip = layer(h, side, demb, supports)
            skips = skips + skip
        out = skips / math.sqrt(len(self.layers))
        out = self.output_projection2(F.relu(self.output_projection1(out)))
        return out.reshape(x_noisy.shape)
