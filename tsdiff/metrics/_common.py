"""Input conversion and validation shared by the metric functions (private).

Every metric converts its inputs with :func:`prepare`: numpy arrays and torch tensors
(on any device) become float64 torch tensors on one device, and malformed input
raises :class:`~tsdiff.errors.DataError` with a message saying how to fix it.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from tsdiff.errors import ConfigError, DataError

ArrayLike = Union[np.ndarray, torch.Tensor]

POINT_KINDS = ("median", "mean")


def pick_device(*values: Any) -> torch.device:
    """Device of the first torch tensor among ``values`` (CPU if none).

    MPS has no float64, so MPS tensors are evaluated on the CPU.
    """
    for value in values:
        if isinstance(value, torch.Tensor):
            return torch.device("cpu") if value.device.type == "mps" else value.device
    return torch.device("cpu")


def to_float64(value: Any, name: str, device: torch.device) -> torch.Tensor:
    """``value`` (numpy array, torch tensor, nested list) as a float64 tensor on ``device``."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise DataError(f"{name} must be real-valued, got a complex tensor")
        return value.detach().to(device=device, dtype=torch.float64)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{name} must be a numeric numpy array or torch tensor, got {type(value).__name__} "
            f"({exc})"
        ) from None
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array).to(device)


def to_mask(mask: Any, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """``mask`` as a bool tensor; bool, or numeric with only 0/1 values. ``None``: all True."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if isinstance(mask, torch.Tensor):
        m = mask.detach().to(device)
    else:
        try:
            m = torch.from_numpy(np.array(mask)).to(device)
        except TypeError as exc:
            raise DataError(
                f"mask must be a bool (or 0/1) numpy array or torch tensor, got "
                f"{type(mask).__name__} ({exc})"
            ) from None
    if m.dtype == torch.bool:
        return m
    if m.is_complex() or not ((m == 0) | (m == 1)).all():
        raise DataError(
            "mask must be bool, or numeric with only 0/1 values (1 = evaluate this entry); "
            f"got dtype {m.dtype} with other values. Pass e.g. `mask > 0` or `mask.astype(bool)`"
        )
    return m != 0


def check_samples(samples: torch.Tensor) -> None:
    """Raise unless ``samples`` is ``[S, ...]`` with ``S >= 1`` and all values finite."""
    if samples.ndim == 0 or samples.shape[0] < 1:
        raise DataError(
            f"samples must have shape [S, *target.shape] with at least 1 sample (S >= 1), got "
            f"shape {tuple(samples.shape)}; draw at least one sample from the model"
        )
    finite = torch.isfinite(samples)
    if not bool(finite.all()):
        n_nan = int(torch.isnan(samples).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise DataError(
            f"samples contain {n_nan} NaN and {n_inf} inf values (of {samples.numel()}); "
            "metrics need finite forecasts. The model or sampler diverged: check its "
            "outputs (e.g. the noise schedule / learning rate) before evaluating"
        )


class Prepared(NamedTuple):
    """Validated inputs: float64 tensors on one device."""

    samples: torch.Tensor  # [S, *shape]
    target: torch.Tensor  # shape; entries outside the mask set to 0
    mask: torch.Tensor  # shape, bool
    n_targets: int


def prepare(samples: Any, target: Any, mask: Any = None, *, allow_empty: bool = False) -> Prepared:
    """Convert and validate ``(samples, target, mask)`` (see module docstring).

    Raises :class:`DataError` for a shape mismatch, fewer than one sample, non-finite
    samples, NaN/inf target values where the mask is True, or (unless ``allow_empty``)
    a mask without any True entry.
    """
    device = pick_device(samples, target, mask)
    s = to_float64(samples, "samples", device)
    y = to_float64(target, "target", device)
    if s.ndim != y.ndim + 1 or s.shape[1:] != y.shape:
        hint = ""
        if s.shape == y.shape:
            hint = " (samples has no sample axis: add one, e.g. samples[None] for 1 sample)"
        elif s.ndim == y.ndim + 1 and s.ndim >= 2 and s.shape[0] == y.shape[0]:
            hint = (
                " (the sample axis looks like axis 1, as in [B, S, ...] layouts: move it "
                "first, e.g. samples.transpose(0, 1))"
            )
        raise DataError(
            f"samples shape {tuple(s.shape)} does not match target shape {tuple(y.shape)}: "
            f"samples must be [S, *target.shape] with the sample axis first{hint}"
        )
    check_samples(s)
    m = to_mask(mask, y.shape, device)
    if m.shape != y.shape:
        raise DataError(
            f"mask shape {tuple(m.shape)} does not match target shape {tuple(y.shape)}; "
            "pass one bool per target entry (True = evaluate it)"
        )
    bad = m & ~torch.isfinite(y)
    if bool(bad.any()):
        raise DataError(
            f"target has {int(bad.sum())} NaN/inf values at entries where mask is True; "
            "missing ground truth must be excluded from evaluation: set mask False there "
            "(e.g. mask = mask & ~isnan(target))"
        )
    n = int(m.sum())
    if n == 0 and not allow_empty:
        raise DataError(
            "mask selects no target entries (it is all False), so the metric is undefined; "
            "pass a mask with at least one True entry"
        )
    y = torch.where(m, y, torch.zeros((), dtype=y.dtype, device=device))
    return Prepared(s, y, m, n)


def check_point(point: str) -> str:
    """Validate the point-forecast kind (``"median"`` or ``"mean"``)."""
    if point not in POINT_KINDS:
        raise ConfigError(f"point must be one of {POINT_KINDS}, got {point!r}")
    return point


def resolve_sum_axes(sum_axes: Optional[Sequence[int]], ndim: int) -> tuple[int, ...]:
    """Non-negative, sorted axes of a rank-``ndim`` target to sum over for CRPS-sum.

    ``None`` means every axis after the time axis of a ``[B, L, N, C]``-style layout,
    i.e. ``tuple(range(2, ndim))``, which needs ``ndim >= 3``.
    """
    if sum_axes is None:
        if ndim < 3:
            raise DataError(
                f"crps_sum needs explicit sum_axes for a target of rank {ndim}: the default "
                "sums the axes after the time axis of a [B, L, N(, C)] layout (rank >= 3)"
            )
        return tuple(range(2, ndim))
    if isinstance(sum_axes, int):
        sum_axes = (sum_axes,)
    axes = []
    for axis in sum_axes:
        axis = int(axis)
        if not -ndim <= axis < ndim:
            raise DataError(f"sum_axes entry {axis} is out of range for a target of rank {ndim}")
        axes.append(axis % ndim)
    if len(set(axes)) != len(axes):
        raise DataError(f"sum_axes {tuple(sum_axes)} repeats an axis")
    return tuple(sorted(axes))


def like_input(result: torch.Tensor, reference: Any) -> ArrayLike:
    """``result`` as a numpy array, or a torch tensor if ``reference`` is one."""
    if isinstance(reference, torch.Tensor):
        return result
    return result.cpu().numpy()
