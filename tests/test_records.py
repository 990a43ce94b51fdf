"""Result records: the code version is fixed when a run starts; files are written atomically."""

import json
import os
import subprocess

from tsdiff.bench import records
from tsdiff.bench.records import git_commit, make_record, write_record


def test_git_commit_is_taken_once_per_process(monkeypatch):
    first = git_commit()
    assert first is None or len(first.split("+")[0]) == 40

    def fail(*args, **kwargs):  # a later change of the checkout must not be seen
        raise AssertionError("git was asked again")

    monkeypatch.setattr(subprocess, "run", fail)
    assert git_commit() == first


def test_record_fields_and_atomic_write(tmp_path):
    rec = make_record(task="t", protocol="p", model="m", sampler="ddim", nfe=10, n_samples=4, seed=1,
                      metrics={"crps": 0.1}, train_seconds=1.0, sample_seconds=2.0, config={"a": 1},
                      dataset_checksums={"f": "x"})
    for key in ("hardware", "tsdiff_version", "git_commit", "packages", "created"):
        assert key in rec
    assert rec["packages"]["torch"].startswith("2.")
    path = write_record(rec, tmp_path / "records")
    assert json.loads(path.read_text())["metrics"] == {"crps": 0.1}
    assert [p.name for p in (tmp_path / "records").iterdir()] == [path.name]  # no temporary files left
    hw = records.hardware()
    assert hw["cpu_count"] >= 1
    if os.path.exists("/proc/cpuinfo"):  # Linux (CI): the CPU's bfloat16 support is named, [] when it has none
        assert set(hw["cpu_bf16_flags"]) <= {"amx_bf16", "avx512_bf16"} and hw["cpu"]
