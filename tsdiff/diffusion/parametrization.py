"""Conversions between network output parametrisations (eps, x0, v, score).

With ``x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps`` (Ho et al. 2020), the
noise ``eps`` and the clean data ``x_0`` determine each other given ``x_t``.
:func:`convert_prediction` does the same for any process ``x_t = a x_0 + s eps``
and the five parametrisations eps / x0 / v / velocity / score; :func:`to_eps`
adapts a network of any parametrisation to the samplers' eps contract.
"""

from __future__ import annotations

import torch

from tsdiff.diffusion.utils import append_dims
from tsdiff.errors import UnknownNameError


def _coefficients(alpha_bar: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    alpha_bar = append_dims(torch.as_tensor(alpha_bar, device=like.device), like.ndim)
    # sqrt in the table's precision (float64 for DDPM) before casting to the data dtype.
    return alpha_bar.sqrt().to(like.dtype), (1 - alpha_bar).sqrt().to(like.dtype)


def eps_to_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Predicted clean data from predicted noise (Ho et al. 2020, eq. 15).

    Args:
        x_t: noisy data ``[B, ...]``.
        eps: noise (prediction), same shape as ``x_t``.
        alpha_bar: ``abar_t`` per sample ``[B]`` (or a scalar), in (0, 1].

    Returns:
        ``(x_t - sqrt(1 - abar) eps) / sqrt(abar)``, shape of ``x_t``.
    """
    scale, std = _coefficients(alpha_bar, x_t)
    return (x_t - std * eps) / scale


def x0_to_eps(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Noise implied by a clean-data prediction; inverse of :func:`eps_to_x0`.

    Args:
        x_t: noisy data ``[B, ...]``.
        x0: clean data (prediction), same shape as ``x_t``.
        alpha_bar: ``abar_t`` per sample ``[B]`` (or a scalar), in [0, 1).

    Returns:
        ``(x_t - sqrt(abar) x0) / sqrt(1 - abar)``, shape of ``x_t``.
    """
    scale, std = _coefficients(alpha_bar, x_t)
    return (x_t - scale * x0) / std


# --------------------------------------------------------------------------
# Any process x_t = scale x_0 + std eps: eps / x0 / v / score
# --------------------------------------------------------------------------

#: Network output parametrisations, as named in configs (``model: {prediction: ...}``).
PREDICTIONS = ("eps", "x0", "v", "velocity", "score")


def _check_prediction(kind: str) -> None:
    if kind not in PREDICTIONS:
        raise UnknownNameError(
            f"unknown prediction {kind!r}; valid prediction names are: {', '.join(sorted(PREDICTIONS))}"
        )


def _pair(scale: torch.Tensor, std: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = append_dims(torch.as_tensor(scale, device=like.device), like.ndim).to(like.dtype)
    std = append_dims(torch.as_tensor(std, device=like.device), like.ndim).to(like.dtype)
    return scale, std


def convert_prediction(
    value: torch.Tensor,
    source: str,
    target: str,
    x_t: torch.Tensor,
    scale: torch.Tensor,
    std: torch.Tensor,
) -> torch.Tensor:
    """Convert a prediction between the eps, x0, v, velocity and score parametrisations.

    With ``x_t = a x_0 + s eps`` (``a = scale``, ``s = std``):

    * ``x0 = (x_t - s eps) / a``, ``eps = (x_t - a x0) / s`` (Ho et al. 2020);
    * ``score = -eps / s`` (Vincent 2011; Song et al. 2021);
    * ``v = a eps - s x0`` (Salimans & Ho 2022, "Progressive Distillation"),
      inverted for any ``(a, s)`` as ``eps = (a v + s x_t) / (a^2 + s^2)``;
    * ``velocity = eps - x0``, the flow-matching target of the straight path
      ``x_t = (1 - t) x_0 + t eps`` (Lipman et al. 2023; Liu et al. 2023), where it is
      ``dx_t / dt``; inverted for any ``(a, s)`` as ``eps = (x_t + a u) / (a + s)``.

    ``eps`` is the hub: every conversion goes through it, and is exact up to
    rounding. Conversions out of ``eps`` need ``s > 0``; into ``x0``, ``a > 0``.

    Args:
        value: prediction ``[B, ...]`` in the ``source`` parametrisation.
        source, target: names in :data:`PREDICTIONS`.
        x_t: the noisy input ``[B, ...]``.
        scale, std: ``(a, s)`` per sample ``[B]`` (or scalars).

    Returns:
        The prediction in the ``target`` parametrisation, shape of ``value``.

    Raises:
        UnknownNameError: an unknown parametrisation name.
    """
    _check_prediction(source)
    _check_prediction(target)
    if source == target:
        return value
    a, s = _pair(scale, std, x_t)
    if source == "eps":
        eps = value
    elif source == "x0":
        eps = (x_t - a * value) / s
    elif source == "v":
        eps = (a * value + s * x_t) / (a**2 + s**2)
    elif source == "velocity":
        eps = (x_t + a * value) / (a + s)
    else:  # score
        eps = -s * value
    if target == "eps":
        return eps
    if target == "x0":
        return (x_t - s * eps) / a
    if target == "v":
        return a * eps - s * (x_t - s * eps) / a
    if target == "velocity":
        return eps - (x_t - s * eps) / a
    return -eps / s


def to_prediction(denoise_fn, process, prediction: str, target: str):
    """Wrap a network predicting ``prediction`` so that it returns ``target`` instead.

    Exact for any process with Gaussian marginals (see :func:`convert_prediction`).
    Returns ``denoise_fn`` itself when the two agree.
    """
    _check_prediction(prediction)
    _check_prediction(target)
    if prediction == target:
        return denoise_fn

    def converted(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale, std = process.marginal_coefficients(t.to(x_t.device))
        return convert_prediction(denoise_fn(x_t, t), prediction, target, x_t, scale, std)

    return converted


def to_eps(denoise_fn, process, prediction: str = "eps"):
    """Wrap a network of any parametrisation into the ``denoise_fn -> eps`` samplers take.

    Args:
        denoise_fn: ``(x_t [B, ...], t [B]) -> prediction`` in ``prediction`` form.
        process: the :class:`~tsdiff.diffusion.process.ForwardProcess` giving ``(scale, std)``.
        prediction: one of :data:`PREDICTIONS`.

    Returns:
        ``(x_t, t) -> eps prediction``; ``denoise_fn`` itself when it predicts eps.
    """
    return to_prediction(denoise_fn, process, prediction, "eps")


def to_score(denoise_fn, process, prediction: str = "eps"):
    """As :func:`to_eps`, returning the score ``grad log p_t(x_t) = -eps / std``."""
    return to_prediction(denoise_fn, process, prediction, "score")
