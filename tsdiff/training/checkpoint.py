"""Model files: config + weights + scaler + data signature, loaded without executing code.

Model files are written atomically and read with ``torch.load(weights_only=True)``,
which only reconstructs tensors and plain containers, so a tampered file cannot run
code when loaded.

Each file stores ``checksum``: the SHA-256 of its weights (every tensor's name, dtype,
shape and bytes) and of its settings (hparams, ``extra``, ``eps_sq_norm``), verified on
load, so a corrupted file (a flipped bit) is refused instead of giving wrong output.
Files written before checksums existed (no ``checksum`` entry) still load, unverified.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from tsdiff._version import __version__
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


def _weights_digest(state_dict: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state_dict entry {name!r} is not a tensor")
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _settings_digest(payload: dict) -> str:
    meta = {k: payload.get(k) for k in ("hparams", "extra", "eps_sq_norm")}
    return hashlib.sha256(json.dumps(meta, sort_keys=True, default=repr).encode()).hexdigest()


def _checksum(payload: dict) -> dict:
    return {"algorithm": "sha256", "weights": _weights_digest(payload["state_dict"]),
            "settings": _settings_digest(payload)}


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
    payload["checksum"] = _checksum(payload)
    return atomic_write(path, lambda fh: torch.save(payload, fh))


def _load_failure(exc: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` failed (torch's own text spans a page)."""
    import pickle

    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in text:
        return ("it holds Python objects other than tensors and plain data, which tsdiff never writes "
                "and does not run (safe loading); only load model files written by tsdiff")
    if isinstance(exc, PermissionError):
        return f"it cannot be read ({exc.strerror or exc}); fix its permissions"
    # anything else (a text file, another program's pickle, a truncated copy: torch raises OSError
    # 'Invalid argument') fails somewhere inside torch.load
    return (f"the file is not a torch checkpoint, or is damaged, e.g. truncated ({type(exc).__name__}); pass a "
            "file written by Imputer.save / Forecaster.save, --save-model or `tsdiff fit`")


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[DiffusionModule, dict]:
    """Load a model file written by :func:`save_model`.

    Returns:
        ``(module, extra)`` with the module in eval mode.
    Raises:
        TsdiffError: the file does not exist (or is a directory), is not a tsdiff model file,
            is unsafe, is corrupted (its checksum does not match) or is incomplete (no weights,
            or weights of the wrong names / shapes for its settings).
    """
    path = Path(path)
    if path.is_dir():
        raise TsdiffError(f"model path {str(path)!r} is a directory, not a model file; pass the file itself "
                          "(e.g. the model.pt inside the run directory)")
    if not path.is_file():
        raise TsdiffError(f"model file {str(path)!r} does not exist; train one with `tsdiff fit CONFIG`")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling of anything but tensors/containers is refused
        raise TsdiffError(f"{path} is not a loadable tsdiff model file: {_load_failure(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TsdiffError(f"{path} is not a tsdiff model file (expected format {FORMAT!r})")
    module = _rebuild(path, payload)
    module.eps_sq_norm = payload.get("eps_sq_norm")
    module.eval()
    return module, payload.get("extra", {})


def _rebuild(path: Path, payload: dict) -> DiffusionModule:
    """The module of a loaded payload, after checking that it is complete and uncorrupted."""
    missing = [k for k in ("hparams", "state_dict") if not isinstance(payload.get(k), dict)]
    if missing:
        raise TsdiffError(f"{path} is an incomplete tsdiff model file: it has no {' and no '.join(missing)} "
                          "(a dict); the file is damaged or was not written by tsdiff, train or save the model again")
    stored = payload.get("checksum")
    if stored is not None:  # files from before checksums existed load unverified
        try:
            actual = _checksum(payload)
        except (TypeError, RuntimeError) as exc:
            raise TsdiffError(f"{path} is a damaged tsdiff model file ({exc}); save the model again") from None
        if not isinstance(stored, dict) or any(stored.get(k) != actual[k] for k in ("weights", "settings")):
            bad = [k for k in ("weights", "settings") if not isinstance(stored, dict) or stored.get(k) != actual[k]]
            raise TsdiffError(f"{path} is corrupted: the checksum of its {' and '.join(bad)} does not match the one "
                              "stored when it was saved (the file changed since, e.g. a damaged copy or disk); use "
                              "an intact copy or save the model again")
    try:
        module = DiffusionModule(**payload["hparams"])
    except TsdiffError:
        raise
    except Exception as exc:
        raise TsdiffError(f"{path}: the model's settings (hparams) cannot rebuild a model "
                          f"({type(exc).__name__}: {exc}); the file is damaged or from an incompatible tsdiff "
                          "version") from None
    expected = module.state_dict()
    state = payload["state_dict"]
    absent = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    wrong = []
    for k, v in expected.items():
        t = state.get(k)
        if k in state and not isinstance(t, torch.Tensor):
            wrong.append(f"weight {k!r} is a {type(t).__name__}, not a tensor")
        elif k in state and tuple(t.shape) != tuple(v.shape):
            wrong.append(f"weight {k!r} has shape {list(t.shape)} where the model needs {list(v.shape)}")
    if absent or unknown or wrong:
        parts = ([f"{len(absent)} missing weight(s) (e.g. {absent[0]!r})"] if absent else []) + \
                ([f"{len(unknown)} unexpected weight(s) (e.g. {unknown[0]!r})"] if unknown else []) + wrong[:1]
        raise TsdiffError(f"{path}: the weights do not fit the model described by its settings: {'; '.join(parts)}; "
                          "the file is damaged or was edited, save the model again")
    module.load_state_dict(state)
    return module


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
