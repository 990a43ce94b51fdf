"""`tsdiff datasets list | info | verify` and the dataset cards behind them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tsdiff.cli import main
from tsdiff.data import DATASETS
from tsdiff.data.datasets import FILE_SPECS, SPECS

CARDS = Path(__file__).resolve().parents[1] / "datasets"


def test_list_shows_every_protocol_and_its_number(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split(":")[0] for line in out]
    assert names == DATASETS.names()
    for name in ("electricity", "traffic", "solar", "metr_la_full", "pems_bay", "pems04", "pems08", "etth1"):
        assert name in names
    line = {n: l for n, l in zip(names, out)}
    assert line["etth1"].endswith("(PROTOCOLS.md 6)") and "[ETTh1.csv]" in line["etth1"]
    assert line["metr_la_impute"].endswith("(PROTOCOLS.md 4)") and "PROTOCOLS" not in line["pems04"]


def test_info(capsys, data_dir):
    assert main(["datasets", "info", "etth1", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066" in out
    assert "licence: CC BY-ND 4.0" in out and "zhouhaoyi/ETDataset" in out
    assert "context=96, horizon=24" in out and f"folder: {data_dir / 'ett'}" in out
    assert re.search(r"card: .*datasets/etth1\.md", out)
    assert main(["datasets", "info", "pems_bay_graph"]) == 0  # a file spec without a protocol
    assert "adj_mx_bay.pkl" in capsys.readouterr().out
    assert main(["datasets", "info", "electricity"]) == 0
    assert "electricity.txt.gz  sha256: (no published checksum)" in capsys.readouterr().out
    assert main(["datasets", "info", "etth2"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'etth2'" in err and "etth1" in err
    assert main(["datasets", "info"]) == 2
    assert "takes one dataset NAME" in capsys.readouterr().err


def test_verify_real_directory(capsys, data_dir):
    assert main(["datasets", "verify", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    for name in ("aqi36", "physionet2012", "exchange_rate", "etth1", "metr_la", "era5_uk_t2m", "pems04_graph"):
        assert f"{name}: ok ({data_dir}" in out
    assert "electricity: not present (source: https://github.com/laiguokun" in out
    assert "metr-la.h5: missing" in out
    assert main(["datasets", "verify", "aqi36", "etth1", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"aqi36: ok ({data_dir / 'aqi36'})", f"etth1: ok ({data_dir / 'ett'})"]
    # a named dataset whose file is not there: the error says where to get it
    assert main(["datasets", "verify", "metr_la_full", "--data-dir", str(data_dir)]) == 2
    assert "missing file(s) metr-la.h5" in capsys.readouterr().err


def test_verify_mismatch_unknown_and_empty(capsys, tmp_path, data_dir):
    (tmp_path / "ett").mkdir()
    changed = tmp_path / "ett" / "ETTh1.csv"
    shutil.copy(data_dir / "ett" / "ETTh1.csv", changed)
    with open(changed, "a") as fh:
        fh.write("\n")
    (tmp_path / "traffic").mkdir()
    (tmp_path / "traffic" / "traffic.txt.gz").write_bytes(b"0.1,0.2\n")
    assert main(["datasets", "verify", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"etth1: CHECKSUM MISMATCH ({tmp_path / 'ett'})" in out
    assert "published f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066" in out
    assert "traffic: present (no published checksum)" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["datasets", "verify", "--data-dir", str(empty)]) == 2
    assert "no dataset files found" in capsys.readouterr().err


@pytest.mark.parametrize("spec", sorted(FILE_SPECS.values(), key=lambda s: s.name), ids=lambda s: s.name)
def test_every_dataset_has_a_card(spec):
    """Each card names the files, checksums (where known), source, licence, shape, frequency, protocol."""
    assert spec.card, f"{spec.name} has no card"
    text = (CARDS / spec.card).read_text()
    for f in spec.files:
        assert f.name in text, (spec.card, f.name)
        if f.sha256:
            assert f.sha256 in text, (spec.card, f.name)
    for field in ("| source", "| licence", "| shape", "| frequency"):
        assert field in text, (spec.card, field)
    protocols = [name for name, s in SPECS.items() if s is spec]
    for name in protocols:
        assert f"`{name}`" in text, (spec.card, name)
    if protocols:
        assert "| protocol" in text or "## Evaluation protocol" in text, spec.card
