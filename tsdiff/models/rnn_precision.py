"""Recurrent layers under autocast on CPUs whose oneDNN has no reduced-precision RNN kernels.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` PyTorch hands LSTM / GRU layers to
oneDNN in bfloat16. Where the CPU lacks native bf16 (no AVX512-BF16 / AMX) oneDNN cannot
build the primitive and the forward pass raises "could not create a primitive descriptor
for the LSTM forward propagation primitive"; float16 RNNs have no CPU kernel at all. The
capability is probed once per (cell, dtype) by running a one-step layer forward and
backward, and where it is missing the layer runs in float32 with autocast off, so mixed
precision never crashes a model: only the recurrent layer loses the speed-up.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import nn


@functools.lru_cache(maxsize=None)
def cpu_rnn_supports(cell: type, dtype: torch.dtype) -> bool:
    """Whether a ``cell`` (``nn.LSTM`` / ``nn.GRU``) layer runs forward and backward on this CPU
    under ``torch.autocast("cpu", dtype=dtype)``."""
    layer = cell(2, 2, batch_first=True)
    x = torch.zeros(1, 2, 2, requires_grad=True)
    try:
        with warnings.catch_warnings(), torch.autocast("cpu", dtype=dtype):
            warnings.simplefilter("ignore")
            out, _ = layer(x)
        out.float().sum().backward()
    except RuntimeError:
        return False
    return True


def _float(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.float() for s in state)
    return state.float()


def run_rnn(rnn: nn.RNNBase, inputs: torch.Tensor, state=None):
    """``rnn(inputs, state)``, in float32 with autocast off where this CPU cannot run ``rnn``
    under the active CPU autocast dtype (see :func:`cpu_rnn_supports`); unchanged elsewhere."""
    if inputs.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        if not cpu_rnn_supports(type(rnn), dtype):
            with torch.autocast("cpu", enabled=False):
                return rnn(inputs.float(), _float(state))
    return rnn(inputs, state)
