"""The ``cross_series`` prior: linear interpolation corrected by a ridge regression on related series.

Linear interpolation knows a gap's two ends and nothing of its shape; a regression on the other
series at the same time step (MICE) knows the shape and nothing of the ends. This prior uses
both. For every series ``s`` (a node and channel) it fits, on training windows with simulated
holes, one linear model per gap shape (:data:`BUCKETS`: distance to the nearest conditioning
value of ``s``, and whether there is one on both sides) of the true value on

- a constant and the series' own interpolation ``P_s(t)``;
- the ``K`` most correlated series ``j`` at the same step, ``F_j(t)`` (their conditioning value,
  or their own interpolation where they have none);
- how far each ``j`` moved away from the straight line drawn between the ends of ``s``'s gap,
  ``F_j(t) - bridge_j(t)``: the shape of the gap as the related series saw it.

Ridge shrinks each model towards plain interpolation, so a gap shape the fit never saw is
interpolated. Every feature is a function of the conditioning entries only; the estimate
equals the values on them. The fit is closed form (normal equations summed over a few
hundred windows): seconds on a CPU, before the network's training starts.
"""

from __future__ import annotations

import torch

from tsdiff.diffusion.interpolation import conditioning_sides, prior_interpolation
from tsdiff.diffusion.prior_contract import fit_batch
from tsdiff.errors import ConfigError

#: gap shapes with a model each: (both sides known?, lowest distance, highest distance)
BUCKETS = (
    (True, 1, 1), (True, 2, 2), (True, 3, 4), (True, 5, 8), (True, 9, None),
    (False, 1, 2), (False, 3, 8), (False, 9, None),
)
NO_SIDE = len(BUCKETS)  # a series with no conditioning value near it: the related series alone
_FIT_ENTRIES = 1 << 17  # (step, series) entries whose features the fit holds at once


#: entries (windows x steps x series) the module fits a cross-series prior on at most: those of
#: the defaults on AQI-36 (8192 windows of 48 steps x 36 stations). The fit's cost grows with
#: them: on METR-LA's 207 sensors 8192 windows of 24 steps took 208 s on one thread.
CROSS_SERIES_FIT_ENTRIES = 8192 * 48 * 36


class CrossSeriesPrior(torch.nn.Module):
    """Fitted cross-series prior of ``num_series`` series (all nodes and channels).

    Args:
        num_series: N * C of the data.
        neighbours: K, the related series each series is regressed on (at most num_series - 1),
            chosen by the absolute correlation of their observed values in training windows.
        ridge: the ridge penalty, in pseudo-observations pulling each model to interpolation.
        fit_windows: training windows (each with its own simulated holes; repeated with other
            holes where the data has fewer, each at most 4 times) the fit sums over.
        passes: chained passes; pass ``p > 1`` reads the related series from pass ``p - 1``'s
            estimate instead of their interpolation where they are missing too (as MICE iterates).

    Its state (``neighbours``, ``weights``, ``fitted``) are buffers, saved in model files.
    Before :meth:`fit` it is plain interpolation.
    """

    fitted_prior = True

    def __init__(self, num_series: int, neighbours: int = 16, ridge: float = 10.0, fit_windows: int = 8192,
                 passes: int = 2) -> None:
        super().__init__()
        if isinstance(neighbours, bool) or not isinstance(neighbours, int) or neighbours < 0:
            raise ConfigError(f"prior option neighbours must be an integer >= 0, got {neighbours!r}")
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge > 0:
            raise ConfigError(f"prior option ridge must be a positive number, got {ridge!r}")
        if isinstance(fit_windows, bool) or not isinstance(fit_windows, int) or fit_windows < 1:
            raise ConfigError(f"prior option fit_windows must be an integer >= 1, got {fit_windows!r}")
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
            raise ConfigError(f"prior option passes must be an integer >= 1, got {passes!r}")
        self.fit_windows = fit_windows
        self.passes = passes
        self.num_series = int(num_series)
        self.k = min(neighbours, self.num_series - 1)
        self.ridge = float(ridge)
        self.register_buffer("neighbours", torch.zeros(self.num_series, self.k, dtype=torch.long))
        self.register_buffer("weights", self._start_weights().expand(passes, -1, -1, -1).clone())
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def num_features(self) -> int:
        return 2 + 2 * self.k

    def _start_weights(self) -> torch.Tensor:
        w = torch.zeros(self.num_series, NO_SIDE + 1, self.num_features)
        w[:, :, 1] = 1.0  # the series' own interpolation
        return w

    # --- features ---------------------------------------------------------------------------
    def features(self, values: torch.Tensor, cond_mask: torch.Tensor, anchors: torch.Tensor | None = None,
                 filled: torch.Tensor | None = None):
        """``(features [B, L, S, F], bucket [B, L, S])`` of every entry of ``[B, L, N, C]``.

        ``filled`` (``[B, L, N, C]``, the previous pass's estimate) gives the related series'
        values where they have none; by default their own interpolation."""
        B, L = values.shape[:2]
        S = self.num_series
        interp = prior_interpolation(values, cond_mask, anchors).reshape(B, L, S)
        (has_b, pos_b, _), (has_a, pos_a, _) = conditioning_sides(values, cond_mask, anchors)
        has_b, has_a = has_b.reshape(B, L, S), has_a.reshape(B, L, S)
        pos_b, pos_a = pos_b.reshape(B, L, S), pos_a.reshape(B, L, S)
        t = torch.arange(L, device=values.device, dtype=values.dtype).view(1, L, 1)
        bucket = self._bucket(has_b, has_a, t - pos_b, pos_a - t)
        parts = [torch.ones_like(interp).unsqueeze(-1), interp.unsqueeze(-1)]
        if self.k:
            other = interp if filled is None else filled.reshape(B, L, S)
            near = other[:, :, self.neighbours]  # [B, L, S, K]: F_j(t) of each series' neighbours
            lo = pos_b.clamp(0, L - 1).long()
            hi = pos_a.clamp(0, L - 1).long()
            lo = torch.where(has_b, lo, torch.where(has_a, hi, torch.arange(L, device=values.device).view(1, L, 1)))
            hi = torch.where(has_a, hi, lo)
            at = lambda idx: near.gather(1, idx.unsqueeze(-1).expand_as(near))  # noqa: E731
            w = ((t - lo) / (hi - lo).clamp(min=1)).clamp(0, 1).unsqueeze(-1)
            bridge = at(lo) + w * (at(hi) - at(lo))
            parts += [near, near - bridge]
        return torch.cat(parts, dim=-1), bucket

    @staticmethod
    def _bucket(has_b, has_a, d_b, d_a) -> torch.Tensor:
        both = has_b & has_a
        d = torch.where(both, torch.minimum(d_b, d_a), torch.where(has_b, d_b, d_a))
        out = torch.full(d.shape, NO_SIDE, dtype=torch.long, device=d.device)
        for i, (two, lo, hi) in reversed(list(enumerate(BUCKETS))):
            sel = (both if two else (has_b ^ has_a)) & (d >= lo)
            if hi is not None:
                sel = sel & (d <= hi)
            out = torch.where(sel, torch.full_like(out, i), out)
        return out

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, anchors: torch.Tensor | None = None) -> torch.Tensor:
        filled = None
        for p in range(self.passes):
            filled = self._estimate(p, values, cond_mask, anchors, filled)
        return filled

    def _estimate(self, p, values, cond_mask, anchors, filled):
        """Pass ``p``: the related series read from ``filled`` (the previous pass)."""
        feats, bucket = self.features(values, cond_mask, anchors, filled)
        series = torch.arange(self.num_series, device=values.device).view(1, 1, -1).expand_as(bucket)
        w = self.weights[p].to(feats.dtype)[series, bucket]  # [B, L, S, F]
        est = (feats * w).sum(-1).reshape(values.shape)
        return torch.where(cond_mask, values, est)

    # --- fitting ----------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, batches) -> None:
        """Fit from ``batches()``, a function returning a fresh iterable of ``(x, cond_mask,
        target, anchors[, starts])`` batches (``[B, L, N, C]``; ``target``: the entries to predict;
        ``anchors`` may be None) that yields the same batches each time: it is read twice, for
        the neighbours and then for the models, holding one batch at a time."""
        if self.k:
            self.neighbours.copy_(self._choose_neighbours(batches()))
        for p in range(self.passes):
            # without related series every pass sees the same features: fit once
            self.weights[p].copy_(self._fit_pass(p, batches) if p == 0 or self.k else self.weights[0])
        self.fitted.fill_(True)

    def _fit_pass(self, p: int, batches) -> torch.Tensor:
        """Least squares of pass ``p``, its related series filled by the passes before it."""
        S, F = self.num_series, self.num_features
        nb = NO_SIDE + 1
        xtx = torch.zeros(S, nb, F, F, dtype=torch.float64)
        xty = torch.zeros(S, nb, F, dtype=torch.float64)
        for x, cond_mask, target, anchors, _ in map(fit_batch, batches()):
            B, L = x.shape[:2]
            step = max(1, _FIT_ENTRIES // (L * S))  # windows at a time, to bound memory on large grids
            for lo in range(0, B, step):
                hi = min(lo + step, B)
                xs, cs = x[lo:hi], cond_mask[lo:hi]
                an = None if anchors is None else anchors[lo:hi]
                filled = None
                for q in range(p):
                    filled = self._estimate(q, xs, cs, an, filled)
                feats, bucket = self.features(xs, cs, an, filled)
                # only the target entries enter the sums: gather them, then add each one's outer
                # product to its (series, side) system (cost: targets x F^2, not windows x S x F^2)
                sel = target[lo:hi].reshape(hi - lo, L, S).cpu()
                b_i, l_i, s_i = torch.nonzero(sel, as_tuple=True)
                if len(s_i) == 0:
                    continue
                f_sel = feats.cpu()[b_i, l_i, s_i].double()  # [n, F]
                y_sel = x[lo:hi].reshape(hi - lo, L, S).cpu()[b_i, l_i, s_i].double()
                system = s_i * nb + bucket.cpu()[b_i, l_i, s_i]  # (series, side) of each target
                xtx.view(S * nb, F, F).index_add_(0, system, f_sel[:, :, None] * f_sel[:, None, :])
                xty.view(S * nb, F).index_add_(0, system, f_sel * y_sel[:, None])
        start = self._start_weights().double()
        eye = torch.eye(F, dtype=torch.float64)
        w = torch.linalg.solve(xtx + self.ridge * eye, xty + self.ridge * start)
        return w.to(self.weights.dtype)

    def _choose_neighbours(self, batches) -> torch.Tensor:
        """The K series most correlated (in absolute value) with each series, over the observed
        entries of the batches (pairwise complete)."""
        S = self.num_series
        n = torch.zeros(S, S, dtype=torch.float64)
        sx = torch.zeros(S, S, dtype=torch.float64)
        sy = torch.zeros_like(sx)
        sxx, syy, sxy = torch.zeros_like(sx), torch.zeros_like(sx), torch.zeros_like(sx)
        for x, cond_mask, target, _, _ in map(fit_batch, batches):
            obs = (cond_mask | target).reshape(-1, S).double().cpu()
            v = torch.where(obs.bool(), x.reshape(-1, S).double().cpu(), torch.zeros((), dtype=torch.float64))
            n += obs.T @ obs
            sx += v.T @ obs
            sy += obs.T @ v
            sxx += (v * v).T @ obs
            syy += obs.T @ (v * v)
            sxy += v.T @ v
        m = n.clamp(min=1)
        cov = sxy / m - (sx / m) * (sy / m)
        var_x = (sxx / m - (sx / m) ** 2).clamp(min=1e-12)
        var_y = (syy / m - (sy / m) ** 2).clamp(min=1e-12)
        corr = (cov / (var_x * var_y).sqrt()).abs()
        corr = torch.where(n >= 8, corr, torch.zeros_like(corr))
        corr.fill_diagonal_(-1.0)  # never a series' own neighbour
        return corr.topk(self.k, dim=1).indices
