"""TimeGrad: an RNN over time with a per-time-step diffusion model over the series.

Implements TimeGrad (Rasul, Seward, Schuster & Vollgraf, "Autoregressive Denoising
Diffusion Models for Multivariate Probabilistic Time Series Forecasting", ICML 2021).
The window is factorised over time,

    p(x_{t0:L} | x_{<t0}) = prod_t p(x_t | h_t),
    h_t = RNN([x_{t-l} for l in lags], c_t, h_{t-1}),

and each factor ``p(x_t | h_t)`` is a denoising diffusion model over the N series
(and C channels) of one time step. Its noise network ``eps(x_t^n, n, h_t)`` projects
the noisy step ``[N, C]`` to ``residual_channels``, runs residual blocks of dilated
1-D convolutions over the series axis with gated activations (the DiffWave block
of the paper's Fig. 2), each conditioned on the diffusion-step embedding and on the
RNN state upsampled to one value per series, and sums their skip outputs.

Time steps: every lag is >= 1, so ``h_t`` only sees values before ``t`` (the paper
writes the same state as ``h_{t-1}``). The first modelled step is ``t0 = max(lags)``;
earlier steps only feed lags. ``c_t`` are time features (a sinusoidal embedding of
``Condition.timepoints``) and, optionally, learned series embeddings.

Training (paper Alg. 1, :meth:`TimeGradDenoiser.autoregressive_loss`) uses teacher
forcing: the RNN runs over the true values, and every modelled time step draws its
own diffusion step and noise. Sampling (Alg. 2, :meth:`TimeGradDenoiser.sample_autoregressive`)
generates one time step after another for all (window, sample) paths at once, with the
RNN state carried from step to step, running any sampler of the library per step.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tsdiff.diffusion.losses import masked_eps_loss
from tsdiff.errors import ConfigError, DataError
from tsdiff.models.base import MODELS, Condition, Denoiser
from tsdiff.models.layers import DiffusionStepEmbedding, sinusoidal_embedding
from tsdiff.models.rnn_precision import run_rnn

_SLOPE = 0.4  # leaky ReLU slope of the conditioner and the input / skip projections
_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
_LOSS_ON = ("target", "all")

#: ``draw(denoise, observed, cond_mask) -> (x0, nfe)``: run the configured sampler and
#: conditioning strategy once from the prior for one time step, ``observed`` and ``cond_mask``
#: ``[M, N, C]`` being that step's values and mask, with ``denoise(x [M, N, C], noise_level [M])
#: -> eps [M, N, C]``. DiffusionModule.sample supplies it.
DrawFn = Callable[..., tuple]


class ConditionUpsampler(nn.Module):
    """RNN state ``[M, H]`` -> one conditioning value per series ``[M, 1, N]`` (two linear layers)."""

    def __init__(self, hidden_size: int, num_nodes: int) -> None:
        super().__init__()
        mid = max(num_nodes // 2, 1)
        self.lin1 = nn.Linear(hidden_size, mid)
        self.lin2 = nn.Linear(mid, num_nodes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.lin1(h), _SLOPE)
        return F.leaky_relu(self.lin2(y), _SLOPE).unsqueeze(1)


class SeriesResidualBlock(nn.Module):
    """Gated residual block with a dilated convolution over the series axis (DiffWave style)."""

    def __init__(self, channels: int, diffusion_dim: int, dilation: int) -> None:
        super().__init__()
        self.diffusion_projection = nn.Linear(diffusion_dim, channels)
        self.dilated_conv = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.cond_projection = nn.Conv1d(1, 2 * channels, 1)
        self.output_projection = nn.Conv1d(channels, 2 * channels, 1)
        nn.init.kaiming_normal_(self.cond_projection.weight)
        nn.init.kaiming_normal_(self.output_projection.weight)

    def forward(self, h: torch.Tensor, cond: torch.Tensor, demb: torch.Tensor):
        """Args: h ``[M, ch, N]``, cond ``[M, 2 ch, N]`` (projected conditioner), demb ``[M, D]``.

        Returns ``(residual output [M, ch, N], skip [M, ch, N])``.
        """
        y = h + self.diffusion_projection(demb)[:, :, None]
        y = self.dilated_conv(y) + cond
        gate, filt = y.chunk(2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=1)
        return (h + residual) / math.sqrt(2.0), skip


def _positive_int(key: str, val) -> None:
    if isinstance(val, bool) or not isinstance(val, int) or val < 1:
        raise ConfigError(f"model option {key} must be an integer >= 1, got {val!r}")


@MODELS.register("timegrad")
class TimeGradDenoiser(Denoiser):
    """TimeGrad on ``[B, L, N, C]`` windows: RNN over time, conv eps-network per time step.

    Paper defaults (Rasul et al. 2021, Sec. 4): a 2-layer LSTM with 40 hidden units,
    8 residual blocks of 8 channels with dilations cycling 1, 2; 100 diffusion steps
    with a linear beta schedule from 1e-4 to 0.1 (the process section of the config).

    Args:
        num_nodes: N, number of series (nodes).
        num_channels: C, channels per series (input channels of the convolutions).
        cell: ``"lstm"`` or ``"gru"``.
        rnn_layers: stacked RNN layers (paper: 2).
        hidden_size: RNN state size (paper: 40).
        dropout: dropout between RNN layers (0.1 as in the reference TimeGrad setup).
        lags: lags (>= 1) of the values fed to the RNN at each step; the first modelled
            time step is ``max(lags)``, so forecasting needs a context of at least that.
        time_feature_dim: width of the sinusoidal embedding of ``Condition.timepoints``
            fed to the RNN (even; 0: none).
        series_embedding_dim: width of a learned per-series embedding fed to the RNN
            (flattened over the N series; 0: none).
        residual_layers: residual blocks of the eps-network (paper: 8).
        residual_channels: channels of the blocks (paper: 8).
        dilation_cycle: block i dilates by ``2 ** (i % dilation_cycle)`` (paper: 2).
        diffusion_embedding_dim: sinusoidal diffusion-step embedding width (even).
        diffusion_hidden_dim: width after the embedding's two linear layers.
        loss_on: ``"target"``: the loss covers the target entries (the horizon);
            ``"all"``: every observed entry from step ``max(lags)`` on, context
            included, as in the paper's training over the whole window.
    """

    prediction = "eps"
    autoregressive = True

    def __init__(
        self,
        num_nodes: int,
        num_channels: int = 1,
        cell: str = "lstm",
        rnn_layers: int = 2,
        hidden_size: int = 40,
        dropout: float = 0.1,
        lags: list[int] | tuple[int, ...] = (1,),
        time_feature_dim: int = 8,
        series_embedding_dim: int = 0,
        residual_layers: int = 8,
        residual_channels: int = 8,
        dilation_cycle: int = 2,
        diffusion_embedding_dim: int = 32,
        diffusion_hidden_dim: int = 64,
        loss_on: str = "target",
    ) -> None:
        super().__init__()
        for key, val in dict(num_nodes=num_nodes, num_channels=num_channels, rnn_layers=rnn_layers,
                             hidden_size=hidden_size, residual_layers=residual_layers,
                             residual_channels=residual_channels, dilation_cycle=dilation_cycle,
                             diffusion_embedding_dim=diffusion_embedding_dim,
                             diffusion_hidden_dim=diffusion_hidden_dim).items():
            _positive_int(key, val)
        if cell not in _CELLS:
            raise ConfigError(f"model option cell must be one of {sorted(_CELLS)}, got {cell!r}")
        if loss_on not in _LOSS_ON:
            raise ConfigError(f"model option loss_on must be one of {list(_LOSS_ON)}, got {loss_on!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model option dropout must be in [0, 1), got {dropout!r}")
        if isinstance(lags, (str, bytes)) or not hasattr(lags, "__iter__") or len(list(lags)) == 0:
            raise ConfigError(f"model option lags must be a non-empty list of integers >= 1, got {lags!r}")
        lags = list(lags)
        for lag in lags:
            _positive_int("lags entry", lag)
        if len(set(lags)) != len(lags):
            raise ConfigError(f"model option lags has repeated entries: {lags}")
        for key, val in dict(time_feature_dim=time_feature_dim, series_embedding_dim=series_embedding_dim).items():
            if isinstance(val, bool) or not isinstance(val, int) or val < 0:
                raise ConfigError(f"model option {key} must be an integer >= 0, got {val!r}")
        if time_feature_dim % 2 or diffusion_embedding_dim % 2:
            raise ConfigError("model options time_feature_dim and diffusion_embedding_dim must be even, got "
                              f"{time_feature_dim} and {diffusion_embedding_dim}")
        self._config = dict(
            num_nodes=num_nodes, num_channels=num_channels, cell=cell, rnn_layers=rnn_layers,
            hidden_size=hidden_size, dropout=float(dropout), lags=lags, time_feature_dim=time_feature_dim,
            series_embedding_dim=series_embedding_dim, residual_layers=residual_layers,
            residual_channels=residual_channels, dilation_cycle=dilation_cycle,
            diffusion_embedding_dim=diffusion_embedding_dim, diffusion_hidden_dim=diffusion_hidden_dim,
            loss_on=loss_on,
        )
        self.lags = lags
        self.loss_on = loss_on
        self.time_feature_dim = time_feature_dim
        self.num_features = num_nodes * num_channels
        input_size = self.num_features * len(lags) + time_feature_dim + num_nodes * series_embedding_dim
        self.series_embedding = nn.Embedding(num_nodes, series_embedding_dim) if series_embedding_dim else None
        self.rnn = _CELLS[cell](input_size, hidden_size, num_layers=rnn_layers, batch_first=True,
                                dropout=float(dropout) if rnn_layers > 1 else 0.0)
        self.upsampler = ConditionUpsampler(hidden_size, num_nodes)
        self.diffusion_embedding = DiffusionStepEmbedding(diffusion_embedding_dim, diffusion_hidden_dim)
        self.input_projection = nn.Conv1d(num_channels, residual_channels, 1)
        self.blocks = nn.ModuleList(
            SeriesResidualBlock(residual_channels, diffusion_hidden_dim, 2 ** (i % dilation_cycle))
            for i in range(residual_layers)
        )
        self.skip_projection = nn.Conv1d(residual_channels, residual_channels, 1)
        self.output_projection = nn.Conv1d(residual_channels, num_channels, 1)
        nn.init.kaiming_normal_(self.input_projection.weight)
        nn.init.kaiming_normal_(self.skip_projection.weight)
        nn.init.zeros_(self.output_projection.weight)  # untrained eps = 0 (DiffWave)
        nn.init.zeros_(self.output_projection.bias)

    # --- checks -----------------------------------------------------------------------
    @property
    def first_step(self) -> int:
        """``t0 = max(lags)``: the first time step of a window the model generates."""
        return max(self.lags)

    def check_data(self, signature: dict) -> None:
        """Refuse imputation protocols and contexts shorter than the largest lag.

        Raises:
            ConfigError: naming the protocol's task or the context to set.
        """
        task = signature.get("task")
        if task is not None and task != "forecasting":
            raise ConfigError(
                f"model 'timegrad' generates time steps one after another from the past only, so it supports "
                f"forecasting protocols; {signature.get('protocol')!r} is a protocol for {task}. Use a forecasting "
                "dataset (e.g. exchange_rate) or a model for imputation (e.g. csdi)"
            )
        context = signature.get("context")
        if context is not None and context < self.first_step:
            raise ConfigError(
                f"model 'timegrad' needs a context of at least max(model.lags) = {self.first_step} steps, the data has "
                f"{context}; set data.options.context >= {self.first_step} or use smaller model.lags"
            )

    def _check_length(self, L: int) -> None:
        if L <= self.first_step:
            raise DataError(
                f"timegrad with lags {self.lags} needs windows longer than max(lags) = {self.first_step} steps "
                f"(the first {self.first_step} steps only feed lags), got L = {L}; use longer windows "
                "(data.options.context) or smaller model.lags"
            )

    # --- pieces -----------------------------------------------------------------------
    def rnn_inputs(self, values: torch.Tensor, timepoints: torch.Tensor | None, start: int, stop: int) -> torch.Tensor:
        """RNN inputs of time steps ``start <= t < stop`` (``start >= max(lags)``).

        Args:
            values: ``[B, L, N, C]`` values the lags read (already masked: 0 where unknown).
            timepoints: ``[B, L]`` or None (positions 0..L-1).
        Returns:
            ``[B, stop - start, N*C*len(lags) + time_feature_dim + N*series_embedding_dim]``.
        """
        B, L = values.shape[:2]
        flat = values.reshape(B, L, self.num_features)
        parts = [flat[:, start - lag: stop - lag] for lag in self.lags]
        if self.time_feature_dim:
            tp = timepoints if timepoints is not None else torch.arange(L, device=values.device).expand(B, L)
            parts.append(sinusoidal_embedding(tp[:, start:stop], self.time_feature_dim).to(values.dtype))
        if self.series_embedding is not None:
            parts.append(self.series_embedding.weight.reshape(1, 1, -1).expand(B, stop - start, -1))
        return torch.cat(parts, dim=-1)

    def step_conditioners(self, h: torch.Tensor) -> list[torch.Tensor]:
        """Per-block conditioning of the eps-network from RNN states ``[M, H]``: list of ``[M, 2 ch, N]``.

        Computed once per time step and reused by every diffusion step of that time step.
        """
        up = self.upsampler(h)
        return [block.cond_projection(up) for block in self.blocks]

    def denoise_step(self, x: torch.Tensor, noise_level: torch.Tensor, conds: list[torch.Tensor]) -> torch.Tensor:
        """The eps-network on single time steps.

        Args:
            x: ``[M, N, C]`` noisy values of M time steps.
            noise_level: ``[M]`` diffusion step (process network time).
            conds: :meth:`step_conditioners` of their RNN states.
        Returns:
            ``[M, N, C]`` noise prediction.
        """
        h = F.leaky_relu(self.input_projection(x.transpose(1, 2)), _SLOPE)
        demb = self.diffusion_embedding(noise_level)
        skips = 0.0
        for block, cond in zip(self.blocks, conds):
            h, skip = block(h, cond, demb)
            skips = skips + skip
        out = F.leaky_relu(self.skip_projection(skips / math.sqrt(len(self.blocks))), _SLOPE)
        return self.output_projection(out).transpose(1, 2)

    def _masked_values(self, cond: Condition) -> torch.Tensor:
        mask = cond.cond_mask if cond.cond_mask.dtype == torch.bool else cond.cond_mask != 0
        return torch.where(mask, cond.values, torch.zeros_like(cond.values))

    # --- the denoiser contract ----------------------------------------------------------
    def forward(self, x_noisy: torch.Tensor, noise_level: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Predict the noise of every modelled time step at once (teacher forcing).

        The RNN reads ``cond.values`` on ``cond.cond_mask`` (0 elsewhere); the output
        at step t depends only on ``x_noisy[:, t]``, the noise level and conditioning
        values at steps before t.

        Args:
            x_noisy: ``[B, L, N, C]`` noisy values.
            noise_level: ``[B]`` (one diffusion step per window) or ``[B, L]`` (per time step).
            cond: conditioning values and mask, ``[B, L, N, C]`` each; ``timepoints [B, L]``.
        Returns:
            ``[B, L, N, C]`` noise prediction; 0 on the first ``max(lags)`` steps, which
            the model does not generate.
        """
        self.check_input(x_noisy, cond)
        B, L, N, C = x_noisy.shape
        self._check_length(L)
        t0, T = self.first_step, L - self.first_step
        if noise_level.shape == (B,):
            level = noise_level[:, None].expand(B, T)
        elif noise_level.shape == (B, L):
            level = noise_level[:, t0:]
        else:
            raise DataError(f"noise_level must have shape [B] = [{B}] or [B, L] = [{B}, {L}], "
                            f"got {tuple(noise_level.shape)}")
        h, _ = run_rnn(self.rnn, self.rnn_inputs(self._masked_values(cond), cond.timepoints, t0, L))
        eps = self.denoise_step(x_noisy[:, t0:].reshape(B * T, N, C), level.reshape(B * T),
                                self.step_conditioners(h.reshape(B * T, -1)))
        return torch.cat([x_noisy.new_zeros(B, t0, N, C), eps.reshape(B, T, N, C)], dim=1)

    # --- autoregressive hooks used by DiffusionModule -------------------------------------
    def autoregressive_loss(self, process, cond: Condition, observed: torch.Tensor,
                            generator: torch.Generator | None = None) -> torch.Tensor:
        """Teacher-forced denoising loss of one batch (paper Alg. 1).

        The RNN runs over every observed value of the window (``cond.values`` on
        ``observed``); each modelled step ``t >= max(lags)`` draws its own diffusion
        time and noise, and the masked eps loss covers the targets (``observed`` and
        not ``cond.cond_mask``) or, with ``loss_on="all"``, every observed entry of
        the modelled steps.

        Args:
            process: the forward process (noising, training times, network time).
            cond: clean scaled values ``[B, L, N, C]`` and the conditioning mask.
            observed: bool ``[B, L, N, C]``, entries with a value.
        Returns:
            scalar loss.
        Raises:
            DataError: targets before step ``max(lags)`` (context shorter than the largest lag).
        """
        x = cond.values
        self.check_input(x, cond)
        B, L, N, C = x.shape
        self._check_length(L)
        t0, T = self.first_step, L - self.first_step
        observed = observed if observed.dtype == torch.bool else observed != 0
        mask = cond.cond_mask if cond.cond_mask.dtype == torch.bool else cond.cond_mask != 0
        if self.loss_on == "target":
            target = observed & ~mask
            if target[:, :t0].any():
                raise DataError(
                    f"timegrad cannot model the first max(lags) = {t0} steps of a window, but targets lie there; "
                    f"use a context of at least {t0} steps (data.options.context) or smaller model.lags"
                )
        else:
            target = observed
        teacher = Condition(values=x, cond_mask=observed, timepoints=cond.timepoints)
        h, _ = run_rnn(self.rnn, self.rnn_inputs(self._masked_values(teacher), cond.timepoints, t0, L))
        t = process.sample_train_time(B * T, generator=generator, device=x.device)
        noise = torch.randn((B * T, N, C), generator=generator, device=x.device, dtype=x.dtype)
        x_t = process.sample_noisy(x[:, t0:].reshape(B * T, N, C), t, noise)
        eps = self.denoise_step(x_t, process.network_time(t), self.step_conditioners(h.reshape(B * T, -1)))
        return masked_eps_loss(eps, noise, target[:, t0:].reshape(B * T, N, C))

    def sample_autoregressive(self, cond: Condition, draw: DrawFn) -> tuple[torch.Tensor, int]:
        """Generate the unconditioned entries one time step after another (paper Alg. 2).

        Every row of ``cond`` (a (window, sample) pair) goes through one batched pass
        per generated time step. The RNN state is carried over: it runs once over the
        fully conditioned steps before the first generated one, then one step at a
        time, reading the values just generated through the lags. At each step with
        any unconditioned entry, ``draw`` runs the sampler (and conditioning strategy, for
        partly observed steps) from the prior on that step's ``[M, N, C]``; conditioning
        entries are then put back exactly.

        Args:
            cond: values and mask ``[M, L, N, C]`` (``timepoints [M, L]``).
            draw: ``draw(denoise, observed, cond_mask) -> (x0, nfe)`` (see :data:`DrawFn`).
        Returns:
            ``(x, nfe)``: ``x [M, L, N, C]`` equal to ``cond.values`` on the mask, the
            samples elsewhere from step ``max(lags)`` on, and 0 on unconditioned entries
            before it (which the model cannot generate); ``nfe`` sums the network
            evaluations over the generated steps.
        """
        values = cond.values
        self.check_input(values, cond)
        M, L, N, C = values.shape
        self._check_length(L)
        mask = cond.cond_mask if cond.cond_mask.dtype == torch.bool else cond.cond_mask != 0
        filled = self._masked_values(cond)
        t0 = self.first_step
        todo = (~mask[:, t0:]).reshape(M, L - t0, -1).any(dim=2).any(dim=0)  # [L - t0]: anything to generate
        steps = [t0 + i for i in torch.nonzero(todo).flatten().tolist()]
        if not steps:
            return filled, 0
        first, nfe, state = steps[0], 0, None
        if first > t0:  # fully conditioned steps: one RNN pass
            _, state = run_rnn(self.rnn, self.rnn_inputs(filled, cond.timepoints, t0, first))
        generate = set(steps)
        for t in range(first, L):
            out, state = run_rnn(self.rnn, self.rnn_inputs(filled, cond.timepoints, t, t + 1), state)
            if t not in generate:
                continue
            conds = self.step_conditioners(out[:, 0])
            x0, k = draw(lambda x, level, conds=conds: self.denoise_step(x, level, conds),
                         values[:, t], mask[:, t])
            nfe += int(k)
            filled[:, t] = torch.where(mask[:, t], values[:, t], x0.to(values.dtype))
        return filled, nfe
