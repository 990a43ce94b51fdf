"""Where a model trains and samples: one reading of ``accelerator`` / ``devices`` for every entry point.

Lightning places training by its ``accelerator`` and ``devices`` arguments, and moves the
module back to the CPU when ``Trainer.fit`` ends. Every caller that samples first moves the
module to :func:`resolve_device` of the same settings; sampling's ``Trainer.predict``
(:func:`tsdiff.training.prediction.predict_batches`) then runs on the device the module is on,
and leaves it there. A setting that cannot be honoured is a
:class:`~tsdiff.errors.ConfigError` that says why, never a silent fall-back to the CPU.
"""

from __future__ import annotations

import torch

from tsdiff.errors import ConfigError

#: accepted ``accelerator`` values ("gpu" and "cuda" are the same)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _device_indices(devices, available: int, accelerator: str) -> list[int]:
    """Indices of the CUDA devices that ``devices`` asks for (Lightning's meanings: a count, a
    list of indices, ``-1`` / ``"auto"`` for all, or a comma-separated string)."""
    if devices in (None, "auto", -1, "-1"):
        return list(range(max(available, 1)))
    if isinstance(devices, str):
        try:
            parts = [int(p) for p in devices.split(",") if p.strip() != ""]
        except ValueError:
            raise ConfigError(f"devices must be a count, a list of device indices or 'auto'; got {devices!r}") from None
        devices = parts[0] if len(parts) == 1 and "," not in devices else parts
    if isinstance(devices, bool) or not isinstance(devices, (int, list, tuple)):
        raise ConfigError(f"devices must be a count, a list of device indices or 'auto'; got {devices!r}")
    if isinstance(devices, int):
        if devices < 1:
            raise ConfigError(f"devices must be >= 1 (or -1 / 'auto' for all); got {devices}")
        if devices > available:
            raise ConfigError(f"devices={devices} asks for more {accelerator} devices than this machine has "
                              f"({available}); use devices={available} or fewer")
        return list(range(devices))
    indices = list(devices)
    if not indices or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in indices):
        raise ConfigError(f"devices must list device indices >= 0; got {devices!r}")
    missing = [i for i in indices if i >= available]
    if missing:
        raise ConfigError(f"devices={indices} names device index {missing[0]}, but this machine has {available} "
                          f"{accelerator} device(s) (indices 0..{available - 1})")
    return indices


def resolve_device(accelerator: str | None = "auto", devices=1) -> torch.device:
    """The device to sample on (the first of those training would use).

    Args:
        accelerator: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"gpu"`` /
            ``"cuda"``, or a torch device string such as ``"cuda:1"``.
        devices: as Lightning's ``devices``: a count, a list of indices, ``-1`` or ``"auto"``.
    Raises:
        ConfigError: an unknown accelerator, a GPU asked for where CUDA is not available,
            or more devices (or a higher index) than the machine has.
    """
    acc = "auto" if accelerator is None else accelerator
    if isinstance(acc, torch.device):
        acc = str(acc)
    if not isinstance(acc, str):
        raise ConfigError(f"accelerator must be one of {', '.join(ACCELERATORS)} (or e.g. 'cuda:0'); got {acc!r}")
    acc = acc.strip().lower()
    if acc.startswith("cuda:"):
        try:
            index = int(acc.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"accelerator {accelerator!r} is not a device such as 'cuda:0'") from None
        acc, devices = "gpu", [index]
    if acc not in ACCELERATORS:
        raise ConfigError(f"unknown accelerator {accelerator!r}; use one of {', '.join(ACCELERATORS)} "
                          "(or a device such as 'cuda:0')")
    count = _cuda_count()
    if acc == "cpu" or (acc == "auto" and count == 0):
        if acc == "cpu" and isinstance(devices, (list, tuple)):
            raise ConfigError(f"accelerator 'cpu' takes a process count as devices, not indices {devices!r}")
        return torch.device("cpu")
    if count == 0:
        raise ConfigError(f"accelerator={accelerator!r} asks for a GPU, but CUDA is not available here "
                          "(torch.cuda.is_available() is False: no NVIDIA GPU, no driver, or a CPU-only PyTorch); "
                          "use accelerator='cpu' or 'auto'")
    return torch.device("cuda", _device_indices(devices, count, "CUDA")[0])


def lightning_placement(device: torch.device) -> dict:
    """``Trainer`` arguments that train on ``device`` (one process)."""
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index or 0]}
    return {"accelerator": "cpu", "devices": 1}
