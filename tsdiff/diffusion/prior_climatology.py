"""The ``climatology`` prior: the training mean at the same phase of the season, plus the
current anomaly from it, damped with the distance to the nearest conditioning value.

For a quantity with a strong daily (or weekly, yearly) cycle, such as temperature, the best cheap
guess a day ahead is the usual value at that hour, corrected by how far the latest observation
lies from its own usual value, a correction that fades with the lead time (anomaly persistence,
the reference forecast of weather services). Yesterday's values (``seasonal``) carry all of
yesterday's weather into tomorrow; the climatology keeps only what persists.

The estimate of an entry of series ``s`` at step ``t`` of a window starting at step ``t0`` of its
series, phase ``p = (t0 + t) mod season``:

- ``clim[p, s]``, the mean of the training values of series ``s`` at phase ``p``;
- plus the anomaly ``a = value - clim`` of the conditioning values: interpolated linearly between
  the nearest conditioning values before and after the entry (a gap inside the data), or the
  nearest one's anomaly times ``damping[s] ** distance`` where there is only one side (a forecast
  horizon: ``damping ** h`` at lead ``h``); 0 where the series has no conditioning value.

``damping`` is a number in [0, 1] or ``"fit"`` (default): per series the value of
:data:`DAMPING_GRID` with the lowest mean absolute error on training windows with the training
strategy's conditioning masks. The means and dampings are buffers, saved in model files, fitted
when training starts from training windows only. The prior needs each window's position in its
series (``starts``, see :mod:`tsdiff.diffusion.prior_contract`).
"""

from __future__ import annotations

import torch

from tsdiff.diffusion.interpolation import conditioning_sides
from tsdiff.diffusion.prior_choice import choose_per_series, series_errors
from tsdiff.diffusion.prior_contract import fit_batch
from tsdiff.errors import ConfigError

#: damping factors per step tried by ``damping: fit`` (0: the climatology alone; 1: the anomaly persists)
DAMPING_GRID = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0)


class ClimatologyPrior(torch.nn.Module):
    """Per-phase training mean plus the damped anomaly of the conditioning values."""

    fitted_prior = True
    #: the damping is chosen on the training strategy's holes (the gaps the model fills)
    fit_on_training_masks = True
    uses_starts = True
    name = "climatology"

    def __init__(self, num_series: int, season: int, damping="fit", fit_windows: int = 512) -> None:
        super().__init__()
        if isinstance(season, bool) or not isinstance(season, int) or season < 2:
            raise ConfigError(f"prior 'climatology': season must be an integer >= 2 (steps per season, "
                              f"e.g. 24 for the hour of the day in hourly data), got {season!r}")
        fit = damping == "fit"
        if not fit and (isinstance(damping, bool) or not isinstance(damping, (int, float))
                        or not 0.0 <= float(damping) <= 1.0):
            raise ConfigError(f"prior 'climatology': damping must be a number in [0, 1] or 'fit', got {damping!r}")
        if isinstance(fit_windows, bool) or not isinstance(fit_windows, int) or fit_windows < 1:
            raise ConfigError(f"prior 'climatology': fit_windows must be an integer >= 1, got {fit_windows!r}")
        self.season, self.num_series, self.fit_windows = season, int(num_series), fit_windows
        self.fit_damping = fit
        self.register_buffer("mean", torch.zeros(season, self.num_series))
        self.register_buffer("damping", torch.full((self.num_series,), 1.0 if fit else float(damping)))
        self.register_buffer("fitted", torch.tensor(False))

    # --- estimate -------------------------------------------------------------------------
    def _clim(self, starts: torch.Tensor, L: int, shape, dtype) -> torch.Tensor:
        phase = (starts.view(-1, 1) + torch.arange(L, device=starts.device).view(1, L)) % self.season
        return self.mean.to(starts.device, dtype)[phase].reshape(shape)  # [B, L, N, C]

    def _edge_anomalies(self, anchors: torch.Tensor, starts: torch.Tensor, L: int) -> torch.Tensor:
        """``anchors`` with their values turned into anomalies (each at its own phase)."""
        B = anchors.shape[0]
        mean = self.mean.to(anchors.device, anchors.dtype)
        out = anchors.clone()
        flat = out.reshape(B, 4, -1)
        starts = starts.view(-1, 1)
        before = (starts - flat[:, 1].round().long()) % self.season  # [B, S]: phase of the value before
        after = (starts + L - 1 + flat[:, 3].round().long()) % self.season
        series = torch.arange(flat.shape[-1], device=anchors.device).expand(B, -1)
        flat[:, 0] = torch.where(flat[:, 1] > 0, flat[:, 0] - mean[before, series], flat[:, 0])
        flat[:, 2] = torch.where(flat[:, 3] > 0, flat[:, 2] - mean[after, series], flat[:, 2])
        return out

    def estimate(self, values: torch.Tensor, cond_mask: torch.Tensor, anchors: torch.Tensor | None,
                 starts: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
        """The estimate with the per-series ``damping`` ``[S]``."""
        B, L = values.shape[:2]
        clim = self._clim(starts, L, values.shape, values.dtype)
        anomaly = torch.where(cond_mask, values - clim, torch.zeros_like(values))
        edges = None if anchors is None else self._edge_anomalies(anchors, starts, L)
        (has_b, pos_b, ab), (has_a, pos_a, aa) = conditioning_sides(anomaly, cond_mask, edges)
        t = torch.arange(L, device=values.device, dtype=values.dtype).view(1, L, 1, 1)
        inner = ab + (t - pos_b) / (pos_a - pos_b).clamp(min=1) * (aa - ab)
        rho = damping.to(values.device, values.dtype)
        rho = rho.view(1, 1, *values.shape[2:])
        ahead = ab * rho ** (t - pos_b).clamp(min=0)
        behind = aa * rho ** (pos_a - t).clamp(min=0)
        est = torch.where(has_b & has_a, inner, torch.where(has_b, ahead, torch.where(has_a, behind, 0.0)))
        return torch.where(cond_mask, values, clim + est)

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, anchors: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> torch.Tensor:
        if starts is None:
            raise ConfigError("prior 'climatology' needs the position of each window in its series (starts)")
        return self.estimate(values, cond_mask, anchors, starts.to(values.device).long(), self.damping)

    # --- fitting --------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, batches) -> None:
        """The per-phase means from the observed entries of ``batches()`` (fit batches with
        ``starts``, :func:`~tsdiff.diffusion.prior_contract.fit_batch`), then, with ``damping: fit``,
        the damping per series from the error on their target entries."""
        P, S = self.season, self.num_series
        # overlapping windows hold a step several times: each step is weighted by one over the
        # number of windows holding it, so every step of the series counts once
        positions = [self._positions(batch) for batch in batches()]
        lowest = min(int(p.min()) for p in positions)
        cover = torch.bincount(torch.cat(positions).reshape(-1) - lowest).double()
        total = torch.zeros(P, S, dtype=torch.float64)
        count = torch.zeros(P, S, dtype=torch.float64)
        for batch, pos in zip(batches(), positions):
            x, cond_mask, target, _, _ = self._read(batch)
            B, L = x.shape[:2]
            pos = pos.reshape(-1)
            weight = (1.0 / cover[pos - lowest]).view(-1, 1)
            seen = (cond_mask | target).reshape(B * L, S).cpu()
            vals = torch.where(seen, x.reshape(B * L, S).cpu().double(), torch.zeros((), dtype=torch.float64))
            total.index_add_(0, pos % P, vals * weight)
            count.index_add_(0, pos % P, seen.double() * weight)
        # a phase never observed in a series: that series' mean over its observed phases (0, the
        # training mean of the scaled data, when it has none)
        overall = total.sum(0) / count.sum(0).clamp(min=1)
        mean = torch.where(count > 0, total / count.clamp(min=1), overall.expand(P, S))
        self.mean.copy_(mean.to(self.mean.dtype))
        if self.fit_damping:
            self.damping.copy_(self._fit_damping(batches))
        self.fitted.fill_(True)

    def _positions(self, batch) -> torch.Tensor:
        """``[B, L]`` the step of the series of every entry of a fit batch."""
        x, _, _, _, starts = self._read(batch)
        return starts.view(-1, 1) + torch.arange(x.shape[1]).view(1, -1)

    def _read(self, batch):
        x, cond_mask, target, anchors, starts = fit_batch(batch)
        return x, cond_mask, target, anchors, self._starts(starts)

    @staticmethod
    def _starts(starts) -> torch.Tensor:
        """A fit batch's ``starts`` as a long ``[B]`` tensor, or the error that it has none."""
        if starts is None:
            raise ConfigError("prior 'climatology' is fitted on windows with their positions (starts); "
                              "these fit batches have none")
        return torch.as_tensor(starts, dtype=torch.long).reshape(-1)

    def _fit_damping(self, batches) -> torch.Tensor:
        """Per series the value of :data:`DAMPING_GRID` with the lowest error, chosen as ``auto``
        chooses its candidates (:func:`~tsdiff.diffusion.prior_choice.choose_per_series`)."""
        grid = torch.tensor(DAMPING_GRID, dtype=self.damping.dtype)
        S = self.num_series

        def candidate(rho):
            def estimate(x, cond_mask, anchors, starts):
                return self.estimate(x, cond_mask, anchors, self._starts(starts).to(x.device), rho.expand(S))
            return estimate

        err, count = series_errors([candidate(rho) for rho in grid], batches, S)
        return grid[choose_per_series(err, count)]
