"""Training losses of diffusion models: masked eps loss and weighted denoising score matching."""

from __future__ import annotations

import torch

from tsdiff.diffusion.parametrization import convert_prediction
from tsdiff.diffusion.utils import append_dims
from tsdiff.registry import Registry


def masked_eps_loss(
    eps_pred: torch.Tensor, eps: torch.Tensor, target_mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared noise-prediction error over target entries only (CSDI, Tashiro et al. 2021).

    ``sum(((eps_pred - eps) * mask) ** 2) / max(sum(mask), 1)``: the simple DDPM
    loss (Ho et al. 2020) restricted to the entries the model must impute, so
    conditioning and missing entries do not contribute. The ``max(., 1)``
    keeps a batch without targets at loss 0 instead of NaN.

    Args:
        eps_pred: predicted noise ``[B, ...]``.
        eps: true noise, same shape.
        target_mask: 1/True where an entry is a target, broadcastable to ``eps``.

    Returns:
        Scalar tensor.
    """
    mask = target_mask.to(eps_pred.dtype)
    residual = (eps_pred - eps) * mask
    count = mask.expand_as(residual).sum()
    return (residual**2).sum() / count.clamp(min=1)


def _weight_eps(scale: torch.Tensor, std: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.ones_like(scale)


def _weight_x0(scale: torch.Tensor, std: torch.Tensor, gamma: float) -> torch.Tensor:
    return (std / scale) ** 2  # 1 / SNR


def _weight_min_snr(scale: torch.Tensor, std: torch.Tensor, gamma: float) -> torch.Tensor:
    snr = (scale / std) ** 2
    return torch.clamp(snr, max=gamma) / snr


def _weight_max_snr(scale: torch.Tensor, std: torch.Tensor, gamma: float) -> torch.Tensor:
    snr = (scale / std) ** 2
    return torch.clamp(snr, min=1.0) / snr


def _weight_v(scale: torch.Tensor, std: torch.Tensor, gamma: float) -> torch.Tensor:
    return ((scale**2 + std**2) / scale) ** 2


def _weight_velocity(scale: torch.Tensor, std: torch.Tensor, gamma: float) -> torch.Tensor:
    return ((scale + std) / scale) ** 2


#: Per-noise-level loss weightings ``w(scale, std)`` on the squared eps error. A
#: prediction's own squared error is a weighted eps error, as the errors of the
#: implied predictions at fixed ``x_t`` are proportional (``x0_err = -(s / a) eps_err``):
#: x0 MSE is ``1 / SNR`` (``SNR = a^2 / s^2``), v MSE ``((a^2 + s^2) / a)^2``, velocity
#: MSE ``((a + s) / a)^2``.
LOSS_WEIGHTINGS: Registry = Registry("loss weighting")
LOSS_WEIGHTINGS.add("eps", _weight_eps)  # unit eps loss (Ho et al. 2020)
LOSS_WEIGHTINGS.add("x0", _weight_x0)  # plain x0 MSE
LOSS_WEIGHTINGS.add("v", _weight_v)  # plain v MSE (Salimans & Ho 2022)
LOSS_WEIGHTINGS.add("velocity", _weight_velocity)  # flow matching (Lipman et al. 2023)
LOSS_WEIGHTINGS.add("min_snr", _weight_min_snr)  # Min-SNR-gamma (Hang et al. 2023)
LOSS_WEIGHTINGS.add("max_snr", _weight_max_snr)  # truncated SNR (Salimans & Ho 2022)

#: The weighting that makes the loss the plain MSE of each parametrisation's own output
#: (``weighting=None``); the score's is the eps loss, as its MSE diverges at small noise.
MATCHED_WEIGHTING = {"eps": "eps", "x0": "x0", "v": "v", "velocity": "velocity", "score": "eps"}


def denoising_loss(
    prediction: torch.Tensor,
    noise: torch.Tensor,
    x_t: torch.Tensor,
    scale: torch.Tensor,
    std: torch.Tensor,
    target_mask: torch.Tensor,
    *,
    parametrization: str = "eps",
    weighting: str | None = "eps",
    gamma: float = 5.0,
) -> torch.Tensor:
    """Weighted denoising score matching loss over target entries, any process and time.

    Denoising score matching (Vincent 2011; Song et al. 2021, eq. 7) written in
    eps space: the prediction is converted to eps exactly
    (:func:`~tsdiff.diffusion.parametrization.convert_prediction`), and

        loss = sum_b,i w(SNR_b) mask (eps_pred - eps)^2 / max(sum mask, 1)

    with ``SNR = scale^2 / std^2`` and ``w`` from :data:`LOSS_WEIGHTINGS`:
    ``eps`` (1), ``x0`` (``1 / SNR``: the x0 MSE), ``v`` and ``velocity`` (their MSEs),
    ``min_snr`` (``min(SNR, gamma) / SNR``, Hang et al. 2023), ``max_snr``
    (``max(SNR, 1) / SNR``, Salimans & Ho 2022); None: the parametrisation's own
    MSE (:data:`MATCHED_WEIGHTING`). Works for discrete steps and
    continuous times alike: only ``(scale, std)`` at the drawn times enter.
    With ``parametrization="eps"`` and ``weighting="eps"`` it equals
    :func:`masked_eps_loss`.

    Args:
        prediction: network output ``[B, ...]`` in ``parametrization`` form.
        noise: the noise ``eps`` used to make ``x_t``, same shape.
        x_t: the noisy input, same shape.
        scale, std: marginal coefficients per sample ``[B]`` (``std > 0``).
        target_mask: 1/True at target entries, broadcastable to ``noise``.
        parametrization: ``eps``, ``x0``, ``v``, ``velocity`` or ``score``.
        weighting: name in :data:`LOSS_WEIGHTINGS`, or None (:data:`MATCHED_WEIGHTING`).
        gamma: the ``gamma`` of ``min_snr``.

    Returns:
        Scalar tensor.

    Raises:
        UnknownNameError: unknown ``weighting`` or ``parametrization``.
    """
    weight_fn = LOSS_WEIGHTINGS.get(MATCHED_WEIGHTING.get(parametrization, "eps") if weighting is None
                                    else weighting)
    eps_pred = convert_prediction(prediction, parametrization, "eps", x_t, scale, std)
    scale64 = torch.as_tensor(scale, dtype=torch.float64, device=noise.device)
    std64 = torch.as_tensor(std, dtype=torch.float64, device=noise.device)
    weight = weight_fn(scale64, std64, float(gamma)).to(noise.dtype)
    mask = target_mask.to(noise.dtype)
    residual = ((eps_pred - noise) * mask) ** 2
    count = mask.expand_as(residual).sum()
    weighted = append_dims(weight.reshape(-1), residual.ndim) * residual if weight.ndim else weight * residual
    return weighted.sum() / count.clamp(min=1)
