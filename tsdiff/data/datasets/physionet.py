"""PhysioNet/CinC Challenge 2012, set A: ICU stays for the CSDI imputation benchmark.

``set-a.tar.gz`` holds ``set-a/<RecordID>.txt`` files in long format
``Time,Parameter,Value`` (``HH:MM`` since admission). Following CSDI (Tashiro et al.
2021, Sec. 5.1), each stay becomes 48 hourly steps (step h holds measurements with
hour ``h``; the last value within the hour wins) x 35 time-varying variables (the
37 minus ``MechVent`` and ``Weight``). Static descriptors are dropped; measurements
at or after 48:00 are dropped. Patients are split 70/10/20 with a fixed seed.

The archive is read member by member in memory; a member with an absolute path or
``..`` is refused (:mod:`tsdiff.data.safe_io`).
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tsdiff.data.safe_io import safe_tar_members
from tsdiff.data.series import Series
from tsdiff.data.datasets.base import DataFile, DatasetSpec, checksums, locate_files
from tsdiff.data.splits import entity_split
from tsdiff.errors import DataError

SPEC = DatasetSpec(
    name="physionet2012",
    folder="physionet2012",
    files=(
        DataFile("set-a.tar.gz", "5e4b3896a796169d576292570866f39a9042ae4875b5c46148d330bd650294b0"),
        DataFile("Outcomes-a.txt", "2613ea60ccda29f87571a7d6b09ad130858a8ccd66325bd073365925026883c2"),
    ),
    source="https://physionet.org/content/challenge-2012/1.0.0/ (set-a.tar.gz, Outcomes-a.txt)",
    licence="ODC-By 1.0",
    description="PhysioNet 2012 set A: 4000 ICU stays, 48 h, 35 time-varying variables",
    card="physionet2012.md",
)

#: The 35 time-varying variables, alphabetical (37 in the challenge minus MechVent, Weight).
VARIABLES: tuple[str, ...] = (
    "ALP", "ALT", "AST", "Albumin", "BUN", "Bilirubin", "Cholesterol", "Creatinine", "DiasABP",
    "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "MAP", "Mg", "NIDiasABP",
    "NIMAP", "NISysABP", "Na", "PaCO2", "PaO2", "Platelets", "RespRate", "SaO2", "SysABP",
    "Temp", "TroponinI", "TroponinT", "Urine", "WBC", "pH",
)
NUM_HOURS = 48


@dataclass
class PhysioNetData:
    """Stays as one array.

    Attributes:
        values: float64 ``[S, 48, 35]`` (stays, hours, variables), NaN = not measured.
        record_ids: ``[S]`` RecordIDs, sorted.
        variables: the 35 variable names (:data:`VARIABLES`).
        outcomes: ``Outcomes-a.txt`` indexed by RecordID (or None).
    """

    values: np.ndarray
    record_ids: np.ndarray
    variables: list[str]
    outcomes: pd.DataFrame | None = None
    attrs: dict = field(default_factory=dict)

    @property
    def observed_mask(self) -> np.ndarray:
        return ~np.isnan(self.values)

    def missing_rate(self) -> float:
        return float(np.isnan(self.values).mean())

    def stay(self, i: int) -> Series:
        """Stay ``i`` as Series ``[48, 35, 1]``; the time index counts hours from 1970-01-01 (relative time)."""
        index = pd.date_range("1970-01-01", periods=NUM_HOURS, freq="h", name="hours_since_admission")
        return Series(self.values[i][:, :, None], index, list(self.variables), ["value"],
                      attrs={"record_id": int(self.record_ids[i])})

    def split(self, fractions=(0.7, 0.1, 0.2), seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded patient split ``{"train", "val", "test"} -> stay positions``."""
        return entity_split(self.record_ids, fractions, seed=seed)


def parse_stay(text: str, where: str = "") -> tuple[int, np.ndarray]:
    """One stay file -> ``(record_id, values [48, 35])`` (last value within each hour)."""
    col = {v: j for j, v in enumerate(VARIABLES)}
    out = np.full((NUM_HOURS, len(VARIABLES)), np.nan)
    record_id = None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "Time,Parameter,Value":
        raise DataError(f"{where}: expected a 'Time,Parameter,Value' header")
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            t, name, value = line.split(",")
            hour = int(t.split(":")[0])
            value = float(value)
        except ValueError:
            raise DataError(f"{where} line {n}: cannot parse {line!r} as HH:MM,Parameter,Value") from None
        if name == "RecordID":
            record_id = int(value)
        elif hour < NUM_HOURS and name in col:
            out[hour, col[name]] = value  # rows are in time order: the last one in the hour wins
    if record_id is None:
        raise DataError(f"{where}: no RecordID line")
    return record_id, out


def read_physionet_archive(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read every ``*.txt`` stay of a PhysioNet 2012 tar archive.

    Returns:
        ``(record_ids [S], values [S, 48, 35])`` sorted by RecordID.
    Raises:
        DataError: a member name is absolute or has ``..``, or a file is malformed.
    """
    ids, arrays = [], []
    with tarfile.open(path, "r:*") as tar:
        for member in safe_tar_members(tar, str(path)):
            if not member.name.endswith(".txt"):
                continue
            text = tar.extractfile(member).read().decode("utf-8")
            rid, arr = parse_stay(text, f"{path}:{member.name}")
            ids.append(rid)
            arrays.append(arr)
    if not ids:
        raise DataError(f"{path}: no stay files (*.txt) in the archive")
    order = np.argsort(ids)
    return np.asarray(ids, dtype=np.int64)[order], np.stack(arrays)[order]


def load_physionet2012(data_dir=None) -> PhysioNetData:
    """PhysioNet 2012 set A as ``[4000, 48, 35]`` (about 80% missing)."""
    paths = locate_files(SPEC, data_dir)
    sums = checksums(SPEC, paths)
    ids, values = read_physionet_archive(paths["set-a.tar.gz"])
    outcomes = pd.read_csv(paths["Outcomes-a.txt"]).set_index("RecordID")
    return PhysioNetData(values, ids, list(VARIABLES), outcomes, {"checksums": sums, "dataset": "physionet2012"})
