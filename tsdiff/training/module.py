"""LightningModule tying a denoiser network to a diffusion process."""

from __future__ import annotations

import math
import numbers

import lightning as L
import torch

from tsdiff.config import DEFAULTS as CONFIG_DEFAULTS
from tsdiff.data.masking import TRAIN_MASKS
from tsdiff.data.scalers import StandardScaler
from tsdiff.diffusion import build_process, impose_observed, masked_eps_loss, to_eps
from tsdiff.diffusion.components import build_conditioning, build_loss, build_sampler
from tsdiff.diffusion.prior_contract import apply_prior
from tsdiff.diffusion.priors import (build_prior, fit_window_count, prior_fit_mask, prior_none, prior_residual_option,
                                     prior_scale_option, window_norm_option)
from tsdiff.diffusion.window_norm import window_stats
from tsdiff.errors import ConfigError
from tsdiff.models import Condition, build_model
from tsdiff.training.recipe import check_optim, lr_factor, time_budget_spent
from tsdiff.training.spatial_state import spatial_from_state


def sampler_config(steps: int | None = None, eta: float | None = None, options: dict | None = None) -> dict:
    """Sampler options from the eval config (``steps``, ``eta``, ``sampler_options``)."""
    out = dict(options or {})
    out["steps"] = steps
    if eta is not None:
        out["eta"] = eta
    return out


def needs_stored_eps_sq_norm(sampler: str, options: dict | None) -> bool:
    """Whether sampling with ``sampler`` and ``options`` uses the ``ddpm`` sampler's
    ``variance: analytic`` without an ``eps_sq_norm`` of its own, i.e. the model's stored one."""
    options = options or {}
    return sampler == "ddpm" and options.get("variance") == "analytic" and options.get("eps_sq_norm") is None


def check_sample_input(x: torch.Tensor, cond_mask: torch.Tensor, n_samples: int) -> None:
    """Refuse sampling inputs that would silently give NaN or misaligned samples.

    Args:
        x: ``[B, L, N, C]`` scaled values; must be finite everywhere (0 where missing).
        cond_mask: bool ``[B, L, N, C]``.
        n_samples: samples per window (>= 1).
    Raises:
        DataError: non-finite ``x``, a mask of another shape or a non-bool mask.
        ConfigError: ``n_samples`` < 1.
    """
    from tsdiff.errors import ConfigError, DataError

    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ConfigError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    n_samples = int(n_samples)  # numpy integers too
    if tuple(cond_mask.shape) != tuple(x.shape):
        raise DataError(f"cond_mask shape {tuple(cond_mask.shape)} must equal x's shape {tuple(x.shape)} "
                        "([B, L, N, C]: one flag per value)")
    if cond_mask.dtype != torch.bool:
        raise DataError(f"cond_mask must be bool (True = condition on this value), got dtype {cond_mask.dtype}; "
                        "pass e.g. mask > 0")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise DataError(f"x has {bad} NaN/inf value(s); missing values must be 0 in x and False in cond_mask "
                        "(torch.nan_to_num(x) after building the mask from ~isnan)")


class DiffusionModule(L.LightningModule):
    """Trains a conditional denoiser with the masked denoising loss and samples from it.

    Args:
        model: model config section (``name`` + hyper-parameters).
        process: process config section (``name`` + options).
        optim: ``lr``, ``weight_decay``, ``milestones`` (fractions of training at
            which the learning rate is multiplied by ``gamma``, CSDI: 0.75, 0.9), and the
            recipe options of :mod:`tsdiff.training.recipe` (``schedule``, ``warmup``, ``ema``).
        train_mask: name of the training mask strategy (``random``, ``historical``, ``mix``).
        signature: the data signature (num_nodes, num_channels, window, names, protocol).
        scaler: state dict of the fitted scaler (kept with the weights).
        config: the full experiment config, saved for reproducibility.
        spatial: the data's graph / grid as plain data
            (:func:`tsdiff.training.spatial_state.spatial_state` of ``Series.spatial``), or
            None; every network call gets it rebuilt in ``Condition.spatial``.
        prior: the informative prior's config section (:mod:`tsdiff.diffusion.priors`), e.g.
            ``{"name": "interpolation"}``; None or ``none``: plain diffusion of the values. With
            a prior the process diffuses the residual ``(x - prior) / scale`` on the targets,
            ``scale`` being ``prior["scale"]`` or, by default, the standard deviation of the
            residual on training targets, estimated when training starts (buffer ``prior_scale``);
            ``prior["residual"]: false`` keeps the prior as the network's input only.
        loss: the loss section (``weighting``, ``gamma``: :func:`~tsdiff.diffusion.build_loss`), for
            the network's ``prediction`` (model option, default ``eps``); None: the plain MSE of
            that prediction.
    """

    def __init__(self, model: dict, process: dict, optim: dict, train_mask: str, signature: dict,
                 scaler: dict, config: dict | None = None, spatial: dict | None = None,
                 prior: dict | None = None, loss: dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.prior_fn = build_prior(prior, num_series=signature["num_nodes"] * signature["num_channels"])
        #: a prior is computed and handed to the network (``Condition.prior``)
        self.has_prior = self.prior_fn is not prior_none
        #: the process diffuses the residual from the prior (``prior.residual``, default true);
        #: false: the network still sees the prior, the process diffuses the values themselves
        self.residual = self.has_prior and prior_residual_option(prior)
        self.net = build_model(model, signature["num_nodes"], signature["num_channels"])
        #: each window shifted and scaled by its conditioning values' mean and spread
        #: (``prior.window_norm``, :mod:`tsdiff.diffusion.window_norm`)
        self.window_norm = window_norm_option(prior)
        if self.window_norm and self.net.autoregressive:
            raise ConfigError(f"prior.window_norm needs a network that denoises whole windows; "
                              f"{model.get('name')!r} generates one time step after another: leave window_norm off")
        if self.has_prior:
            if self.net.autoregressive:
                raise ConfigError(f"prior {prior!r} needs a network that denoises whole windows; "
                                  f"{model.get('name')!r} generates one time step after another: use prior none")
            scale = prior_scale_option(prior)
            # NaN until estimated from training windows (on_train_start); kept in model files
            self.register_buffer("prior_scale", torch.tensor(float("nan") if scale is None else scale))
        self.net.check_data(signature)
        #: GraphSpatial / GridSpatial / None, passed to the network in every Condition
        self.spatial = spatial_from_state(spatial)
        self.net.check_spatial(self.spatial)
        proc = dict(process)
        self.process = build_process(proc.pop("name"), **proc)
        loss = {**CONFIG_DEFAULTS["loss"], **(loss or {})}
        #: the training loss of the network's prediction; None: the masked eps MSE (exactly)
        self.loss_fn = (None if self.net.prediction == "eps" and loss["weighting"] in (None, "eps")
                        else build_loss(self.net.prediction, **loss))
        self.mask_fn = TRAIN_MASKS.get(train_mask)
        self.scaler = StandardScaler.from_state_dict(scaler)
        self.optim = dict(optim)
        check_optim(self.optim)
        #: ``Gamma_t`` per diffusion step for the ``ddpm`` sampler's ``variance: analytic``, as
        #: estimated by :func:`tsdiff.training.evaluate.estimate_eps_sq_norm`; kept in the model
        #: file (``tsdiff calibrate-variance``), used when the sampler options give none
        self.eps_sq_norm: list[float] | None = None

    # --- the prior ------------------------------------------------------------------
    @property
    def residual_scale(self) -> float:
        """The residual's scale (1.0 until it is estimated, and without a prior)."""
        if not self.residual or not torch.isfinite(self.prior_scale):
            return 1.0
        return float(self.prior_scale)

    def condition(self, x: torch.Tensor, cond_mask: torch.Tensor, timepoints: torch.Tensor | None,
                  anchors: torch.Tensor | None = None, covariates: torch.Tensor | None = None,
                  starts: torch.Tensor | None = None) -> Condition:
        """The network's :class:`Condition` of a batch, with the prior's estimate when there is a prior
        (``anchors [B, 4, N, C]``: the nearest known values outside each window, see
        :class:`~tsdiff.diffusion.priors.EdgeAnchors`; ``starts [B]``: each window's first step in
        its series, for a prior that reads it, :mod:`tsdiff.diffusion.prior_contract`) and the
        window's ``covariates [B, L, K]`` (:mod:`tsdiff.data.covariates`), if any."""
        prior = apply_prior(self.prior_fn, x, cond_mask, anchors, starts) if self.has_prior else None
        loc, scale = window_stats(x, cond_mask) if self.window_norm else (None, None)
        return Condition(values=x, cond_mask=cond_mask, timepoints=timepoints, spatial=self.spatial, prior=prior,
                         covariates=covariates, loc=loc, scale=scale)

    def to_process_space(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        """What the forward process diffuses: ``x``, or with a prior ``(x - prior) / scale``
        (unless ``prior.residual`` is false); with window statistics (``prior.window_norm``) ``x``
        and the prior are first normalised by them (:meth:`Condition.normalised`)."""
        x = cond.normalised(x)
        if cond.prior is None or not self.residual:
            return x
        return (x - cond.normalised(cond.prior)) / self.residual_scale

    def from_process_space(self, x0: torch.Tensor, cond: Condition) -> torch.Tensor:
        """The inverse of :meth:`to_process_space`."""
        if cond.prior is not None and self.residual:
            x0 = cond.normalised(cond.prior) + self.residual_scale * x0
        if cond.scale is not None:
            x0 = cond.loc + cond.scale * x0
        return x0

    def _prior_windows(self, dataset, n_windows: int, seed: int, mask_fn=None):
        """``n_windows`` windows spread over ``dataset`` in batches of 64, as
        ``(x, cond_mask, target, anchors, starts)``: evaluation windows keep their ``cond_mask``, training
        windows get one from ``mask_fn`` (default: the training strategy) drawn from their own
        generator, so training's random stream is not touched."""
        n = len(dataset)
        # spread over the dataset; more windows than it has repeats them (with other masks)
        idx = torch.linspace(0, n - 1, n_windows).round().long().tolist() if n else []
        gen = torch.Generator().manual_seed(seed)
        mask_fn = mask_fn or self.mask_fn
        for lo in range(0, len(idx), 64):
            items = [dataset[i] for i in idx[lo: lo + 64]]
            x = torch.stack([it["x"] for it in items]).float()
            observed = torch.stack([it["observed_mask"] for it in items]).bool()
            cond_mask = (torch.stack([it["cond_mask"] for it in items]).bool() if "cond_mask" in items[0]
                         else mask_fn(observed, gen))
            anchors = torch.stack([it["anchors"] for it in items]).float() if "anchors" in items[0] else None
            starts = torch.tensor([int(it["start"]) for it in items]) if "start" in items[0] else None
            yield x, cond_mask, observed & ~cond_mask, anchors, starts

    @torch.no_grad()
    def estimate_prior_scale(self, dataset, n_windows: int = 512, seed: int = 0) -> float:
        """Standard deviation of ``x - prior`` on training targets of ``dataset``: up to
        ``n_windows`` windows spread over it, conditioning masks from the training strategy."""
        total, count = 0.0, 0
        for x, cond_mask, target, anchors, starts in self._prior_windows(dataset, n_windows, seed):
            r = x - apply_prior(self.prior_fn, x, cond_mask, anchors, starts)
            if self.window_norm:  # the residual the process diffuses: in each window's own units
                r = r / window_stats(x, cond_mask)[1]
            r = r[target].double()
            total, count = total + float((r ** 2).sum()), count + int(r.numel())
        if count == 0:
            return 1.0
        return max(math.sqrt(total / count), 1e-3)

    def on_train_start(self) -> None:
        if not self.has_prior:
            return
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if dataset is None:
            return
        if getattr(self.prior_fn, "fitted_prior", False) and not bool(self.prior_fn.fitted):
            # a fitted prior (cross_series) learns every gap shape: holes from the training
            # strategy in half the windows, runs of any length in the other half; auto scores its
            # candidates on the training strategy's own holes.
            n_fit = fit_window_count(self.prior_fn, len(dataset), int(dataset[0]["x"].numel()) if len(dataset) else 1)
            mask_fn = None if getattr(self.prior_fn, "fit_on_training_masks", False) else prior_fit_mask
            self.prior_fn.fit(lambda: self._prior_windows(dataset, n_fit, 1, mask_fn=mask_fn))
        if self.residual and not torch.isfinite(self.prior_scale):
            self.prior_scale.fill_(self.estimate_prior_scale(dataset))

    # --- training -------------------------------------------------------------------
    def diffusion_loss(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Masked epsilon loss of one batch.

        Windows with a ``cond_mask`` (evaluation windows) use it; training windows draw
        one from the training mask strategy. Targets = observed and not conditioned on.
        With a prior the process diffuses the residual from the prior (:meth:`to_process_space`).
        """
        x, observed = batch["x"], batch["observed_mask"]
        cond_mask = batch.get("cond_mask")
        if cond_mask is None:
            cond_mask = self.mask_fn(observed, generator)
        if self.net.autoregressive:  # the network owns its factorisation over time (teacher forcing)
            cond = Condition(values=x, cond_mask=cond_mask, timepoints=batch.get("timepoints"), spatial=self.spatial)
            return self.net.autoregressive_loss(self.process, cond, observed, generator=generator)
        target = observed & ~cond_mask
        t = self.process.sample_train_time(x.shape[0], generator=generator, device=x.device)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        cond = self.condition(x, cond_mask, batch.get("timepoints"), batch.get("anchors"), batch.get("covariates"),
                              batch.get("start"))
        x_t = self.process.sample_noisy(self.to_process_space(x, cond), t, noise)
        out = self.net(x_t, self.process.network_time(t), cond.for_network())
        if self.loss_fn is None:
            return masked_eps_loss(out, noise, target)
        scale, std = self.process.marginal_coefficients(t)
        return self.loss_fn(out, noise, x_t, scale, std, target)

    def eps_fn(self, cond: Condition):
        """``(x_t, t) -> eps`` of the network on ``cond`` at process times ``t``, whatever it
        predicts (:func:`~tsdiff.diffusion.to_eps`): the samplers' contract."""
        seen = cond.for_network()
        return to_eps(lambda x_t, t: self.net(x_t, self.process.network_time(t), seen), self.process,
                      self.net.prediction)

    def setup(self, stage: str) -> None:
        # Under DDP every process starts from the same RNG state (same seed, or the state
        # copied by the spawn launcher): all ranks would draw identical noise, diffusion
        # times and masks for their different windows. Offset every rank but rank 0, so a
        # single-process run is unchanged.
        trainer = self._trainer
        if stage == "fit" and trainer is not None and trainer.world_size > 1 and trainer.global_rank > 0:
            torch.manual_seed(torch.initial_seed() + 7919 * trainer.global_rank)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.diffusion_loss(batch)
        # sync_dist: under DDP the logged values are means over all ranks (the global batch);
        # without it rank 0 would pick the best checkpoint by its own shard's validation loss
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch["x"].shape[0],
                 sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # A fixed generator per batch makes the validation loss comparable across epochs.
        gen = torch.Generator(device=batch["x"].device).manual_seed(10_000 + batch_idx)
        loss = self.diffusion_loss(batch, generator=gen)
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=batch["x"].shape[0], sync_dist=True)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.optim["lr"], weight_decay=self.optim["weight_decay"])
        factor = lr_factor(self.optim, self.trainer.estimated_stepping_batches, time_budget_spent(self.trainer))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- sampling -------------------------------------------------------------------
    def analytic_variance_options(self, sampler: str, options: dict | None) -> dict | None:
        """``options`` with the stored :attr:`eps_sq_norm` added where the ``ddpm`` sampler's
        ``variance: analytic`` gives none (a new dict; the caller's is not changed).

        Raises:
            ConfigError: ``variance: analytic`` with no ``eps_sq_norm`` in the options or the model.
        """
        if not needs_stored_eps_sq_norm(sampler, options):
            return options
        if self.eps_sq_norm is None:
            raise ConfigError(
                "variance='analytic' needs eps_sq_norm and this model file holds none: run "
                "`tsdiff calibrate-variance MODEL` once to estimate it on the validation windows and "
                "store it in the model file, or pass sampler option eps_sq_norm (from "
                "tsdiff.training.evaluate.estimate_eps_sq_norm)")
        return {**options, "eps_sq_norm": list(self.eps_sq_norm)}

    @torch.no_grad()  # not inference_mode: guidance conditioning differentiates through the network
    def sample(
        self,
        x: torch.Tensor,
        cond_mask: torch.Tensor,
        timepoints: torch.Tensor | None = None,
        *,
        n_samples: int = 100,
        sampler: str = "ddpm",
        steps: int | None = None,
        eta: float | None = None,
        sampler_options: dict | None = None,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
        conditioning: str = "conditional",
        conditioning_options: dict | None = None,
        anchors: torch.Tensor | None = None,
        covariates: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Draw conditional samples in the scaled space.

        All samples of all windows go through the network together, in chunks of at
        most ``chunk_size`` (window, sample) pairs to bound memory.

        Args:
            x: ``[B, L, N, C]`` scaled values (conditioning entries are used).
            cond_mask: bool ``[B, L, N, C]``.
            timepoints: ``[B, L]`` or None.
            conditioning: strategy name in :data:`tsdiff.diffusion.CONDITIONING`
                (``conditional``: the network sees the observations, as CSDI;
                ``inpainting``: noised observations re-imposed after every step,
                with RePaint resampling via ``conditioning_options={resample: r}``;
                ``guidance``: observation-likelihood gradient). It wraps the
                network as it is; ``conditioning_options`` are the strategy's options.
            anchors: ``[B, 4, N, C]`` the nearest known values outside each window, for the prior
                (:class:`~tsdiff.diffusion.priors.EdgeAnchors`); None: the window alone.
            covariates: ``[B, L, K]`` scaled covariates of each window (:attr:`Condition.covariates`),
                for a network trained with them; None without.
            starts: ``[B]`` each window's first step in its series, for a prior that reads it
                (``climatology``); None: not known.
        Returns:
            ``(samples, nfe)``: samples ``[S, B, L, N, C]`` whose conditioning entries
            equal ``x`` exactly, and the network evaluations per sample path.
        """
        check_sample_input(x, cond_mask, n_samples)
        sampler_options = self.analytic_variance_options(sampler, sampler_options)
        was_training = self.training
        self.eval()
        fn = build_sampler(sampler, **sampler_config(steps, eta, options=sampler_options))
        strategy = build_conditioning(conditioning, **(conditioning_options or {}))
        B = x.shape[0]
        if chunk_size is None:  # autoregressive networks hold one time step at a time: all pairs at once
            chunk_size = B * n_samples if self.net.autoregressive else (64 if x.device.type == "cpu" else 2048)

        def draw(denoise_net, observed: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
            """One conditioned sampler run from the prior on ``observed``'s shape (autoregressive
            networks, one time step); ``denoise_net(x, noise_level) -> eps``."""
            x_T = self.process.prior_sample(observed.shape, generator=generator, device=x.device, dtype=x.dtype)
            setup = strategy(lambda x_t, t: denoise_net(x_t, self.process.network_time(t)), self.process,
                             observed, mask, generator=generator)
            res = fn(setup.denoise_fn, x_T, self.process, generator=generator, step_hook=setup.step_hook)
            return res.x0, res.nfe + setup.extra_nfe()
        cond = self.condition(x, cond_mask, timepoints, anchors, covariates, starts).repeat(n_samples)
        total = B * n_samples
        outs, nfe = [], 0
        for lo in range(0, total, chunk_size):
            hi = min(lo + chunk_size, total)
            sub = cond.slice(lo, hi)
            if self.net.autoregressive:  # one batched pass per generated time step (TimeGrad)
                x0, nfe = self.net.sample_autoregressive(sub, draw)
                outs.append(impose_observed(x0, sub.values, sub.cond_mask))
                continue
            x_T = self.process.prior_sample(sub.values.shape, generator=generator, device=x.device, dtype=x.dtype)

            # the strategy sees the observations in the process's space (with a prior: residual 0)
            setup = strategy(self.eps_fn(sub), self.process, self.to_process_space(sub.values, sub), sub.cond_mask,
                             generator=generator)
            res = fn(setup.denoise_fn, x_T, self.process, generator=generator, step_hook=setup.step_hook)
            outs.append(impose_observed(self.from_process_space(res.x0, sub), sub.values, sub.cond_mask))
            nfe = res.nfe + setup.extra_nfe()
        if was_training:
            self.train()
        return torch.cat(outs).reshape((n_samples,) + tuple(x.shape)), nfe
