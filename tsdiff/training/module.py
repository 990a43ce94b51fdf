"""LightningModule tying a denoiser network to a diffusion process."""

from __future__ import annotations

import lightning as L
import torch

from tsdiff.data.masking import TRAIN_MASKS
from tsdiff.data.scalers import StandardScaler
from tsdiff.diffusion import build_process, impose_observed, masked_eps_loss
from tsdiff.diffusion.components import build_sampler
from tsdiff.models import Condition, build_model


def sampler_config(steps: int | None = None, eta: float | None = None, options: dict | None = None) -> dict:
    """Sampler options from the eval config (``steps``, ``eta``, ``sampler_options``)."""
    out = dict(options or {})
    out["steps"] = steps
    if eta is not None:
        out["eta"] = eta
    return out


class DiffusionModule(L.LightningModule):
    """Trains a conditional denoiser with the masked denoising loss and samples from it.

    Args:
        model: model config section (``name`` + hyper-parameters).
        process: process config section (``name`` + options).
        optim: ``lr``, ``weight_decay``, ``milestones`` (fractions of training at
            which the learning rate is multiplied by ``gamma``, CSDI: 0.75, 0.9).
        train_mask: name of the training mask strategy (``random``, ``historical``, ``mix``).
        signature: the data signature (num_nodes, num_channels, window, names, protocol).
        scaler: state dict of the fitted scaler (kept with the weights).
        config: the full experiment config, saved for reproducibility.
    """

    def __init__(self, model: dict, process: dict, optim: dict, train_mask: str, signature: dict,
                 scaler: dict, config: dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_model(model, signature["num_nodes"], signature["num_channels"])
        proc = dict(process)
        self.process = build_process(proc.pop("name"), **proc)
        self.mask_fn = TRAIN_MASKS.get(train_mask)
        self.scaler = StandardScaler.from_state_dict(scaler)
        self.optim = dict(optim)
        #: sampling settings used by ``predict_step`` (``Trainer.predict``)
        self.predict_settings = {"n_samples": 100, "sampler": "ddpm", "steps": None, "eta": None,
                                 "sampler_options": None, "chunk_size": None}

    # --- training -------------------------------------------------------------------
    def diffusion_loss(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Masked epsilon loss of one batch.

        Windows with a ``cond_mask`` (evaluation windows) use it; training windows draw
        one from the training mask strategy. Targets = observed and not conditioned on.
        """
        x, observed = batch["x"], batch["observed_mask"]
        cond_mask = batch.get("cond_mask")
        if cond_mask is None:
            cond_mask = self.mask_fn(observed, generator)
        target = observed & ~cond_mask
        t = self.process.sample_train_time(x.shape[0], generator=generator, device=x.device)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_t = self.process.sample_noisy(x, t, noise)
        cond = Condition(values=x, cond_mask=cond_mask, timepoints=batch.get("timepoints"))
        eps = self.net(x_t, self.process.network_time(t), cond)
        return masked_eps_loss(eps, noise, target)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.diffusion_loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch["x"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # A fixed generator per batch makes the validation loss comparable across epochs.
        gen = torch.Generator(device=batch["x"].device).manual_seed(10_000 + batch_idx)
        loss = self.diffusion_loss(batch, generator=gen)
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=batch["x"].shape[0])
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.optim["lr"], weight_decay=self.optim["weight_decay"])
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        milestones = [int(m * total) for m in self.optim["milestones"]]
        gamma = self.optim["gamma"]

        def factor(step: int) -> float:
            return gamma ** sum(step >= m for m in milestones)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- sampling -------------------------------------------------------------------
    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """Samples of one batch of evaluation windows, in data units.

        Returns ``{"samples": float64 [S, B, L, N, C], "start": [B]}``; conditioning
        entries equal the input values ``batch["y"]`` exactly.
        """
        from tsdiff.training.evaluate import to_data_units

        seed = int((self.hparams.get("config") or {}).get("seed", 0)) + batch_idx
        gen = torch.Generator(device=self.device).manual_seed(seed)
        samples, _ = self.sample(batch["x"], batch["cond_mask"], batch.get("timepoints"), generator=gen,
                                 **self.predict_settings)
        data = to_data_units(samples, batch["y"].cpu().numpy(), batch["cond_mask"].cpu().numpy(), self.scaler)
        return {"samples": data, "start": batch["start"]}

    @torch.inference_mode()
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
    ) -> tuple[torch.Tensor, int]:
        """Draw conditional samples in the scaled space.

        All samples of all windows go through the network together, in chunks of at
        most ``chunk_size`` (window, sample) pairs to bound memory.

        Args:
            x: ``[B, L, N, C]`` scaled values (conditioning entries are used).
            cond_mask: bool ``[B, L, N, C]``.
            timepoints: ``[B, L]`` or None.
        Returns:
            ``(samples, nfe)``: samples ``[S, B, L, N, C]`` whose conditioning entries
            equal ``x`` exactly, and the network evaluations per sample path.
        """
        was_training = self.training
        self.eval()
        fn = build_sampler(sampler, **sampler_config(steps, eta, options=sampler_options))
        B = x.shape[0]
        if chunk_size is None:
            chunk_size = 64 if x.device.type == "cpu" else 2048
        cond = Condition(values=x, cond_mask=cond_mask, timepoints=timepoints).repeat(n_samples)
        total = B * n_samples
        outs, nfe = [], 0
        for lo in range(0, total, chunk_size):
            hi = min(lo + chunk_size, total)
            sub = Condition(
                values=cond.values[lo:hi], cond_mask=cond.cond_mask[lo:hi],
                timepoints=None if cond.timepoints is None else cond.timepoints[lo:hi],
            )
            x_T = self.process.prior_sample(sub.values.shape, generator=generator, device=x.device, dtype=x.dtype)

            def denoise(x_t: torch.Tensor, t: torch.Tensor, sub: Condition = sub) -> torch.Tensor:
                return self.net(x_t, self.process.network_time(t), sub)

            res = fn(denoise, x_T, self.process, generator=generator)
            outs.append(impose_observed(res.x0, sub.values, sub.cond_mask))
            nfe = res.nfe
        if was_training:
            self.train()
        return torch.cat(outs).reshape((n_samples,) + tuple(x.shape)), nfe
