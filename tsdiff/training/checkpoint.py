"""Model files: config + weights + scaler + data signature, loaded without executing code.

Model files are written atomically and read with ``torch.load(weights_only=True)``,
which only reconstructs tensors and plain containers, so a tampered file cannot run
code when loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tsdiff import __version__
from tsdiff.diffusion.samplers.ddim import check_eps_sq_norm
from tsdiff.errors import DataError, TsdiffError
from tsdiff.io import atomic_write
from tsdiff.training.module import DiffusionModule

FORMAT = "tsdiff-model-v1"


def _plain(obj):
    """Convert containers to plain dict/list so the file loads under weights_only."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def save_model(module: DiffusionModule, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Save a trained module (weights + everything needed to rebuild it)."""
    payload = {
        "format": FORMAT,
        "tsdiff_version": __version__,
        "hparams": _plain(dict(module.hparams)),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "extra": _plain(extra or {}),
    }
    if module.eps_sq_norm is not None:  # the analytic sampler variance's statistic (calibrate-variance)
        payload["eps_sq_norm"] = [float(v) for v in module.eps_sq_norm]
    return atomic_write(path, lambda fh: torch.save(payload, fh))


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[DiffusionModule, dict]:
    """Load a model file written by :func:`save_model`.

    Returns:
        ``(module, extra)`` with the module in eval mode.
    Raises:
        TsdiffError: the file does not exist, is not a tsdiff model file, or is unsafe.
    """
    path = Path(path)
    if not path.is_file():
        raise TsdiffError(f"model file {str(path)!r} does not exist; train one with `tsdiff fit CONFIG`")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling of anything but tensors/containers is refused
        raise TsdiffError(f"{path} is not a loadable tsdiff model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TsdiffError(f"{path} is not a tsdiff model file (expected format {FORMAT!r})")
    module = DiffusionModule(**payload["hparams"])
    module.load_state_dict(payload["state_dict"])
    module.eps_sq_norm = payload.get("eps_sq_norm")
    module.eval()
    return module, payload.get("extra", {})


def store_eps_sq_norm(path: str | os.PathLike, values, out: str | os.PathLike | None = None) -> Path:
    """Write the model file ``path`` again with ``values`` as its stored ``eps_sq_norm`` (one
    ``Gamma_t`` per diffusion step, see :func:`tsdiff.training.evaluate.estimate_eps_sq_norm`),
    to ``out`` or in place. Weights, config, scaler and ``extra`` are written unchanged.

    Raises:
        TsdiffError: ``path`` is not a model file.
        ConfigError: ``values`` is not one finite number per step of the model's DDPM process.
    """
    module, extra = load_model(path)
    module.eps_sq_norm = check_eps_sq_norm(values, module.process)
    return save_model(module, path if out is None else out, extra=extra)


def check_signature(trained: dict, data: dict) -> None:
    """Refuse data that does not match what the model was trained on."""
    for key in ("num_nodes", "num_channels", "node_names", "channel_names"):
        if trained.get(key) != data.get(key):
            a, b = trained.get(key), data.get(key)
            if isinstance(a, list) and isinstance(b, list):
                a, b = f"{len(a)} names starting {a[:3]}", f"{len(b)} names starting {b[:3]}"
            raise DataError(
                f"the data does not match the trained model: {key} is {b} in the data but {a} in the model; "
                "use data with the same series/channels or train a new model"
            )
