"""The dataset catalogue behind ``tsdiff datasets list | info NAME | verify [NAME ...]``.

Registered protocol names (``DATASETS``) and dataset file specs
(:data:`~tsdiff.data.datasets.FILE_SPECS`) are both valid ``NAME`` s.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from tsdiff.errors import DatasetNotFoundError, UnknownNameError

CARDS_DIR = Path(__file__).resolve().parents[2] / "datasets"


def _protocol_summary(builder) -> str:
    doc = inspect.getdoc(builder) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def _options(builder) -> dict:
    return {name: p.default for name, p in inspect.signature(builder).parameters.items() if name != "data_dir"}


def list_lines() -> list[str]:
    """One line per registered protocol: name, description, files, task and PROTOCOLS.md number."""
    from tsdiff.data.protocol import DATASETS
    from tsdiff.data.datasets import SPECS, protocol_number

    out = []
    for name in DATASETS.names():
        if name not in SPECS:  # reads the user's own file
            out.append(f"{name}: {_protocol_summary(DATASETS.get(name))} (your file: data.options.path)")
            continue
        spec = SPECS[name]
        number = protocol_number(name)
        tag = f" (PROTOCOLS.md {number})" if number else ""
        out.append(f"{name}: {spec.description} [{', '.join(f.name for f in spec.files)}]{tag}")
    return out


def info_lines(name: str, data_dir=None) -> list[str]:
    """Everything known about a protocol or dataset: files, checksums, source, licence, card, options."""
    from tsdiff.data.paths import data_dir as resolve
    from tsdiff.data.protocol import DATASETS
    from tsdiff.data.datasets import FILE_SPECS, SPECS, protocol_number

    if name in DATASETS and name not in SPECS:  # a protocol on the user's own file
        builder = DATASETS.get(name)
        opts = ", ".join(f"{k}={v!r}" for k, v in _options(builder).items())
        return [f"{name}: {_protocol_summary(builder)}", f"  options (data.options): {opts}",
                f"  module: {builder.__module__} (its docstring explains the protocol)"]
    if name in SPECS:
        spec, builder = SPECS[name], DATASETS.get(name)
    elif name in FILE_SPECS:
        spec, builder = FILE_SPECS[name], None
    else:
        valid = sorted(set(SPECS) | set(FILE_SPECS))
        raise UnknownNameError(f"unknown dataset {name!r}; valid dataset names are: {', '.join(valid)}")
    base, origin = resolve(data_dir)
    lines = [f"{name}: {spec.description}"]
    if builder is not None:
        number = protocol_number(name)
        summary = _protocol_summary(builder)
        tag = f" (PROTOCOLS.md {number})" if number and "PROTOCOLS.md" not in summary else ""
        lines.append(f"  protocol: {summary}{tag}")
        opts = ", ".join(f"{k}={v!r}" for k, v in _options(builder).items())
        lines.append(f"  options (data.options): {opts}")
    lines.append(f"  folder: {base / spec.folder} ({origin})")
    for f in spec.files:
        lines.append(f"  file: {f.name}  sha256: {f.sha256 or '(no published checksum)'}")
    lines.append(f"  source: {spec.source}")
    lines.append(f"  licence: {spec.licence}")
    if spec.card:
        lines.append(f"  card: {CARDS_DIR / spec.card}")
    return lines


def verify(names: list[str] | None = None, data_dir=None) -> tuple[list[str], int]:
    """Check the files of the named datasets (default: every known dataset).

    Returns:
        ``(lines, exit_code)``: 0 when every present file matches its published
        checksum, 1 on a mismatch.
    Raises:
        DatasetNotFoundError: a named dataset misses files, or (no names given) no
            dataset file at all is in the data directory.
        UnknownNameError: an unknown name.
    """
    from tsdiff.data.paths import data_dir as resolve
    from tsdiff.data.datasets import FILE_SPECS, SPECS
    from tsdiff.data.datasets.base import locate_files, verify_files

    if names:
        specs = []
        for n in names:
            spec = SPECS.get(n) or FILE_SPECS.get(n)
            if spec is None:
                valid = sorted(set(SPECS) | set(FILE_SPECS))
                raise UnknownNameError(f"unknown dataset {n!r}; valid dataset names are: {', '.join(valid)}")
            locate_files(spec, data_dir)  # raises, naming the missing files and their source
            specs.append(spec)
    else:
        specs = list(FILE_SPECS.values())
    lines, code, present = [], 0, 0
    for spec in specs:
        statuses = verify_files(spec, data_dir)
        have = [s for s in statuses if s.status != "missing"]
        present += len(have)
        if not have:
            lines.append(f"{spec.name}: not present (source: {spec.source})")
            continue
        if any(s.status == "mismatch" for s in statuses):
            code = 1
        worst = next((k for k in ("mismatch", "missing", "unknown") if any(s.status == k for s in statuses)), "ok")
        label = {"ok": "ok", "unknown": "present (no published checksum)", "missing": "INCOMPLETE",
                 "mismatch": "CHECKSUM MISMATCH"}[worst]
        lines.append(f"{spec.name}: {label} ({statuses[0].path.parent})")
        for s in statuses:
            if s.status != "ok":
                detail = {"missing": "missing", "unknown": f"sha256 {s.sha256} (no published checksum)",
                          "mismatch": f"sha256 {s.sha256}, published {s.expected}"}[s.status]
                lines.append(f"  {s.name}: {detail}")
    if not present:
        base, origin = resolve(data_dir)
        raise DatasetNotFoundError(
            f"no dataset files found in {base} ({origin}): missing file(s) of every dataset. "
            "Put each dataset in its own folder there (tsdiff datasets info NAME says which files and where "
            "they come from), or set TSDIFF_DATA / --data-dir to the data directory"
        )
    return lines, code


def datasets_command(action: str, names: list[str], data_dir=None) -> int:
    """Run ``tsdiff datasets ACTION [NAME ...]``; returns the exit code."""
    from tsdiff.errors import ConfigError

    if action == "list":
        print("\n".join(list_lines()))
        return 0
    if action == "info":
        if len(names) != 1:
            raise ConfigError("tsdiff datasets info takes one dataset NAME (see tsdiff datasets list)")
        print("\n".join(info_lines(names[0], data_dir)))
        return 0
    lines, code = verify(names, data_dir)  # verify / check
    print("\n".join(lines))
    return code
