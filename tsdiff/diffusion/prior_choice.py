"""The ``auto`` prior: for every series, the candidate prior with the lowest error on training windows.

Which simple estimate of the missing entries is best depends on the data: persistence for a
random walk (exchange rates) and for traffic speeds a few minutes ahead, the same hour of the
previous day for an hourly load or temperature, interpolation for short gaps. ``auto`` holds a
list of candidate priors and, when training starts, scores each one on windows of the training
split with the training strategy's conditioning masks (mean absolute error on the entries the
masks hide), then uses, for every series (node and channel), the candidate that scored best on
it; a series with too few scored entries takes the candidate best over all series. The choice is
a buffer of the module, saved in model files. Nothing of the test split is read.
"""

from __future__ import annotations

import torch

from tsdiff.diffusion.prior_contract import apply_prior, fit_batch, uses_starts

#: a series needs at least this many scored training entries for a choice of its own
MIN_ENTRIES_PER_SERIES = 64


class AutoPrior(torch.nn.Module):
    """Per-series choice among ``priors`` (built prior callables, named by ``names``).

    Before :meth:`fit` every series uses the first candidate.
    """

    fitted_prior = True
    #: fitted on training windows with the training strategy's masks (the gaps the model will be
    #: asked to fill), not on the simulated gap shapes of ``cross_series``
    fit_on_training_masks = True

    def __init__(self, num_series: int, names: list[str], priors: list, fit_windows: int) -> None:
        super().__init__()
        self.names = list(names)
        self.priors = list(priors)
        self.fit_windows = int(fit_windows)
        self.num_series = int(num_series)
        for i, p in enumerate(self.priors):  # fitted candidates keep their state in model files
            if isinstance(p, torch.nn.Module):
                self.add_module(f"candidate{i}", p)
        self.register_buffer("choice", torch.zeros(self.num_series, dtype=torch.long))
        self.register_buffer("fitted", torch.tensor(False))
        #: mean absolute error of every candidate on the fit's entries (all series), after fit
        self.scores: dict[str, float] = {}

    def chosen(self) -> dict[str, int]:
        """How many series use each candidate."""
        counts = torch.bincount(self.choice.cpu(), minlength=len(self.names))
        return {n: int(c) for n, c in zip(self.names, counts)}

    @property
    def uses_starts(self) -> bool:
        """Whether a candidate reads the windows' positions (then so does ``auto``)."""
        return any(uses_starts(p) for p in self.priors)

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, anchors: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> torch.Tensor:
        choice = self.choice.to(values.device)
        used = torch.unique(choice).tolist()
        if len(used) == 1:
            return apply_prior(self.priors[used[0]], values, cond_mask, anchors, starts)
        shape = values.shape
        out = torch.zeros_like(values).reshape(shape[0], shape[1], -1)
        for k in used:
            est = apply_prior(self.priors[k], values, cond_mask, anchors, starts).reshape(shape[0], shape[1], -1)
            out = torch.where((choice == k).view(1, 1, -1), est, out)
        return out.reshape(shape)

    @torch.no_grad()
    def fit(self, batches) -> None:
        """Score the candidates on ``batches()`` (a function returning a fresh iterable of ``(x,
        cond_mask, target, anchors[, starts])`` batches, the same each time) and choose per series.
        Fitted candidates (``cross_series``) are fitted first, on the same batches."""
        for p in self.priors:
            if getattr(p, "fitted_prior", False) and not bool(p.fitted):
                p.fit(batches)
        candidates = [lambda x, c, a, s, p=p: apply_prior(p, x, c, a, s) for p in self.priors]
        err, count = series_errors(candidates, batches, self.num_series)
        total = err.sum(dim=1)
        self.choice.copy_(choose_per_series(err, count))
        self.fitted.fill_(True)
        n = max(float(count.sum()), 1.0)
        self.scores = {name: float(total[k]) / n for k, name in enumerate(self.names)}


def series_errors(candidates: list, batches, num_series: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(err [K, S], count [S])``: per candidate estimate ``candidate(x, cond_mask, anchors,
    starts)`` and series, the summed absolute error on the target entries of ``batches()`` (fit
    batches, :func:`~tsdiff.diffusion.prior_contract.fit_batch`), and the series' target counts."""
    K, S = len(candidates), num_series
    err = torch.zeros(K, S, dtype=torch.float64)
    count = torch.zeros(S, dtype=torch.float64)
    for x, cond_mask, target, anchors, starts in map(fit_batch, batches()):
        B, L = x.shape[:2]
        t = target.reshape(B, L, S).cpu()
        count += t.sum(dim=(0, 1)).double()
        for k, estimate in enumerate(candidates):
            diff = (estimate(x, cond_mask, anchors, starts) - x).abs().reshape(B, L, S).cpu().double()
            err[k] += torch.where(t, diff, torch.zeros((), dtype=torch.float64)).sum(dim=(0, 1))
    return err, count


def choose_per_series(err: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``[S]`` per series the candidate with the lowest error (:func:`series_errors`); a series with
    fewer than :data:`MIN_ENTRIES_PER_SERIES` scored entries takes the best over all series."""
    best = int(torch.argmin(err.sum(dim=1))) if count.sum() > 0 else 0
    per_series = torch.argmin(err / count.clamp(min=1), dim=0)
    return torch.where(count >= MIN_ENTRIES_PER_SERIES, per_series, torch.full_like(per_series, best))
