"""Where tsdiff looks for dataset files.

Order: an explicit ``data_dir`` argument (or config ``data.data_dir``), then the
``TSDIFF_DATA`` environment variable, then a per-user cache folder
(``$XDG_CACHE_HOME/tsdiff/datasets``, by default ``~/.cache/tsdiff/datasets``).
Each dataset lives in its own sub-folder, e.g. ``$TSDIFF_DATA/aqi36/pm25_ground.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "TSDIFF_DATA"


def cache_dir() -> Path:
    """Per-user cache folder for downloaded datasets."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "tsdiff" / "datasets"


def data_dir(override: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Return the data directory and a short description of where it came from."""
    if override:
        return Path(override).expanduser(), "given explicitly (data.data_dir)"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser(), f"from the {ENV_VAR} environment variable"
    return cache_dir(), f"the per-user cache ({ENV_VAR} is not set)"
