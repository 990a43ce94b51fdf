"""Small tensor helpers shared by the diffusion modules."""

from __future__ import annotations

import torch

from tsdiff.errors import DataError


def append_dims(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton dimensions to ``x`` until it has ``ndim`` dimensions.

    Used to broadcast per-batch scalars (shape ``[B]``) against data tensors of
    any rank with the batch first (``[B, L, N]``, ``[B, L, N, C]``, ...), so no
    diffusion code hard-codes the data rank (as in k-diffusion).

    Args:
        x: tensor of shape ``[B, ...]`` with ``x.ndim <= ndim``.
        ndim: number of dimensions of the result.

    Returns:
        A view of ``x`` with shape ``x.shape + (1,) * (ndim - x.ndim)``.
    """
    missing = ndim - x.ndim
    if missing < 0:
        raise DataError(
            f"append_dims: input has {x.ndim} dimensions, more than the target {ndim}"
        )
    return x[(...,) + (None,) * missing]
