"""`tsdiff impute` / `tsdiff forecast` on hostile files: outputs that would destroy the input or cannot
be written (refused before any training), integer and day-first time columns, encodings, CSV dialects,
UTC offsets changing with daylight saving time, quoting, and temporaries left by killed writers.

Either a clear error (exit 2, the input named, no traceback) or an output whose observed cells are
the input's bytes and whose gaps are finite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdiff.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = "model_options={layers: 1, channels: 8, heads: 2, ff_dim: 8, diffusion_embedding_dim: 16, " \
       "time_embedding_dim: 8, feature_embedding_dim: 4}"
FAST = ["max_steps=2", "n_samples=2", "sampling_steps=2", "window=8", TINY]
FC = ["max_steps=2", "n_samples=2", "sampling_steps=2", TINY, "--prediction-length", "3", "--context-length", "4"]


def _table(labels, seed=0, gaps=True):
    """Rows ``(label, a, b)`` with every 5th ``a`` and every 7th ``b`` missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, t in enumerate(labels):
        a = "" if gaps and i % 5 == 2 else f"{rng.normal():.3f}"
        b = "" if gaps and i % 7 == 4 else f"{rng.normal():.3f}"
        rows.append((str(t), a, b))
    return rows


def _csv(path, rows, header=("time", "a", "b"), sep=",", eol="\n", encoding="utf-8", head="", tail=""):
    text = head + eol.join(sep.join(r) for r in [header, *rows]) + eol + tail
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def no_training(monkeypatch):
    """Training raises: a command that is refused must be refused before it trains."""
    import tsdiff.api.fitting

    def boom(*args, **kwargs):
        raise AssertionError("training ran although the command should have been refused first")

    monkeypatch.setattr(tsdiff.api.fitting, "_train", boom)


@pytest.fixture(scope="module")
def model_ab(tmp_path_factory):
    """A tiny imputer saved for tables with columns a, b (so most tests only sample)."""
    d = tmp_path_factory.mktemp("model")
    src = _csv(d / "train.csv", _table(pd.date_range("2024-01-01", periods=40, freq="h")))
    assert main(["impute", str(src), *FAST, "-o", str(d / "out.csv"), "--save-model", str(d / "m.pt")]) == 0
    return d / "m.pt"


def _refused(capsys, argv, *fragments):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tsdiff {argv[0]}: error:") and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
    return err


def _check_copy(src: Path, out: Path, encoding="utf-8", skip=()):
    """Observed cells (and every other byte) of ``src`` are in ``out``; missing cells are finite numbers."""
    a = src.read_bytes().decode(encoding).splitlines(keepends=True)
    b = out.read_bytes().decode(encoding).splitlines(keepends=True)
    a = [x for i, x in enumerate(a) if i not in skip]
    assert len(a) == len(b)
    n = 0
    for x, y in zip(a, b):
        if x == y:
            continue
        sep = ";" if ";" in x else ("\t" if "\t" in x else ",")
        cx, cy = x.rstrip("\r\n").split(sep), y.rstrip("\r\n").split(sep)
        assert x[len(x.rstrip("\r\n")):] == y[len(y.rstrip("\r\n")):]  # the same line ending
        for u, v in zip(cx, cy):
            if u != v:
                assert u.strip() in ("", "NaN", "NA") and np.isfinite(float(v))
                n += 1
    return n


# --------------------------------------------------------------------------- 1. an output that is the input
def test_an_output_that_is_the_input_is_refused_before_any_work(tmp_path, capsys, no_training):
    src = _csv(tmp_path / "d.csv", _table(range(30)))
    before = src.read_bytes()
    (tmp_path / "sub").mkdir()
    os.symlink(src, tmp_path / "link.csv")
    os.link(src, tmp_path / "hard.csv")
    for out in (src, tmp_path / "sub" / ".." / "d.csv", tmp_path / "link.csv", tmp_path / "hard.csv"):
        _refused(capsys, ["impute", str(src), "-o", str(out)], "is the same file as input", "would destroy")
    _refused(capsys, ["impute", str(src), "-o", str(tmp_path / "o.csv"), "--uncertainty", str(src)],
             "--uncertainty", "same file as input")
    _refused(capsys, ["impute", str(src), "-o", str(tmp_path / "o.csv"), "--save-model", str(src)],
             "--save-model", "same file as input")
    _refused(capsys, ["forecast", str(src), "-o", str(src)], "same file as input")
    _refused(capsys, ["impute", str(src), "-o", str(tmp_path / "o.csv"), "--uncertainty", str(tmp_path / "o.csv")],
             "output and --uncertainty are the same file")
    assert src.read_bytes() == before
    grid = tmp_path / "g.nc"
    grid.write_bytes(b"not even read")
    _refused(capsys, ["impute", str(grid), "-o", str(grid)], "same file as input")
    assert grid.read_bytes() == b"not even read"


# --------------------------------------------------------------------------- 2. unwritable outputs
def test_unwritable_outputs_are_refused_before_training(tmp_path, capsys, no_training):
    src = _csv(tmp_path / "d.csv", _table(range(30)))
    (tmp_path / "dir.csv").mkdir()
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / "o.csv")
    _refused(capsys, ["impute", str(src), "-o", str(tmp_path / "dir.csv")], "is a directory")
    _refused(capsys, ["impute", str(src), "-o", str(tmp_path / "file" / "o.csv")], "is a file, not a folder")
    _refused(capsys, ["impute", str(src), "-o", out, "--uncertainty", str(tmp_path / "file" / "u" / "u.csv")],
             "--uncertainty", "is a file, not a folder")
    _refused(capsys, ["impute", str(src), "-o", out, "--save-model", str(tmp_path)], "--save-model", "is a directory")
    _refused(capsys, ["forecast", str(src), "-o", out, "--plot", str(tmp_path / "file" / "p.png")], "--plot")
    _refused(capsys, ["impute", str(src), "-o", out, "--uncertainty", str(tmp_path / "u.txt")], "--uncertainty")
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            _refused(capsys, ["impute", str(src), "-o", str(ro / "o.csv")], "is not writable")
        finally:
            ro.chmod(0o700)
    assert not Path(out).exists()


def test_read_only_folders_are_refused_before_training_also_when_running_as_root(tmp_path, capsys, no_training,
                                                                               monkeypatch):
    """Root writes into read-only folders, so the test above skips them there: here the folder refuses
    every new file (as a read-only folder or mount does), for each output of both commands."""
    import errno
    import tempfile

    import tsdiff.io

    src = _csv(tmp_path / "d.csv", _table(range(30)))
    ro = tmp_path / "ro"
    ro.mkdir()
    mkstemp = tempfile.mkstemp

    def refusing(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == ro.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(ro))
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tsdiff.io.tempfile, "mkstemp", refusing)
    out = str(tmp_path / "o.csv")
    for argv, role in [(["impute", str(src), "-o", str(ro / "o.csv")], "output"),
                       (["impute", str(src), "-o", out, "--uncertainty", str(ro / "new" / "u.csv")], "--uncertainty"),
                       (["impute", str(src), "-o", out, "--save-model", str(ro / "m.pt")], "--save-model"),
                       (["forecast", str(src), "-o", str(ro / "f.csv")], "output"),
                       (["forecast", str(src), "-o", out, "--plot", str(ro / "p.png")], "--plot")]:
        _refused(capsys, argv, f"{role} '{ro}", "is not writable (Permission denied); choose another folder")
    assert not Path(out).exists() and list(ro.iterdir()) == []


def test_refusals_of_the_inputs_data_name_the_input_file(tmp_path, capsys, no_training):
    """The API's data errors say 'X' or 'the data'; on the command line they name INPUT (issue 30)."""
    short = _csv(tmp_path / "short.csv", _table(range(10)))
    _refused(capsys, ["forecast", str(short), "-o", str(tmp_path / "f.csv")],
             f"error: {short}: the data has 10 time steps but one training window needs")
    rows = [(t, a, "") for t, a, _ in _table(range(30))]
    empty = _csv(tmp_path / "empty_b.csv", rows)
    _refused(capsys, ["impute", str(empty), "-o", str(tmp_path / "i.csv")],
             f"error: {empty}: feature 'b' has no observed value (all NaN)")
    _refused(capsys, ["forecast", str(empty), "--prediction-length", "3", "--context-length", "4",
                      "-o", str(tmp_path / "f.csv")], f"error: {empty}: series 'b' has no observed value (all NaN)")
    bad = tmp_path / "bad.csv"
    bad.write_bytes("time,caf\xe9\n1,2\n".encode("latin-1"))  # already named: not named twice
    err = _refused(capsys, ["impute", str(bad), "--encoding", "utf-8", "-o", str(tmp_path / "i.csv")],
                   f"error: {bad} is not valid utf-8 text")
    assert err.count("bad.csv") == 1, err


def test_save_into_a_directory_is_a_clear_error(tmp_path):
    from tsdiff import Imputer
    from tsdiff.errors import ConfigError

    X = np.random.default_rng(0).normal(size=(20, 2))
    imp = Imputer(max_steps=1, window=4, n_samples=1, sampling_steps=1, model_options={
        "layers": 1, "channels": 8, "heads": 2, "ff_dim": 8, "diffusion_embedding_dim": 16,
        "time_embedding_dim": 8, "feature_embedding_dim": 4}).fit(X)
    with pytest.raises(ConfigError, match="is a directory; give a file name inside it"):
        imp.save(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="cannot write"):
        imp.save(tmp_path / "f" / "m.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_missing_folders_of_every_output_are_created(tmp_path, model_ab, capsys):
    src = _csv(tmp_path / "d.csv", _table(range(20)))
    out, unc = tmp_path / "a" / "o.csv", tmp_path / "b" / "c" / "u.csv"
    assert main(["impute", str(src), "-o", str(out), "--model", str(model_ab), "--uncertainty", str(unc)]) == 0, \
        capsys.readouterr().err
    assert _check_copy(src, out) == len(pd.read_csv(unc)) > 0


# --------------------------------------------------------------------------- 3. integer time columns
def test_forecast_integer_labels_are_steps_unless_a_unit_is_given(tmp_path, capsys):
    rows = _table([1700000000 + 3600 * i for i in range(30)], gaps=False)
    src = _csv(tmp_path / "epoch.csv", rows, header=("t", "a", "b"))
    out = tmp_path / "f.csv"
    assert main(["forecast", str(src), *FC, "-o", str(out)]) == 0, capsys.readouterr().err
    res = pd.read_csv(out, index_col=0)
    assert list(res.index) == [1700000000 + 3600 * (30 + k) for k in range(3)] and res.index.name == "t"
    assert "1970" not in out.read_text()
    assert main(["forecast", str(src), *FC, "-o", str(out), "--time-unit", "s"]) == 0, capsys.readouterr().err
    res = pd.read_csv(out, index_col=0, parse_dates=True)
    assert list(res.index) == list(pd.to_datetime([1700000000 + 3600 * (30 + k) for k in range(3)], unit="s"))
    assert str(res.index[0]) == "2023-11-16 04:13:20"
    _csv(src, _table([0, 1, 2, 4, 5, 6, 7, 8, 9, 10]), header=("t", "a", "b"))
    _refused(capsys, ["forecast", str(src), "-o", str(out)], "step counter", "constant step", "--time-unit")


# --------------------------------------------------------------------------- 4. day-first dates
def test_day_first_dates_need_dayfirst_and_ambiguity_is_an_error(tmp_path, capsys, model_ab):
    days = pd.date_range("2024-01-01", periods=30, freq="D")
    src = _csv(tmp_path / "dmy.csv", _table(days.strftime("%d/%m/%Y")))
    out = tmp_path / "f.csv"
    err = _refused(capsys, ["forecast", str(src), "-o", str(out)], "'13/01/2024' (line 14) has month 13",
                   "--dayfirst")
    assert "not sorted" not in err
    amb = _csv(tmp_path / "amb.csv", _table(pd.date_range("2024-01-01", periods=10, freq="MS").strftime("%d/%m/%Y")))
    _refused(capsys, ["forecast", str(amb), "-o", str(out)], "ambiguous", "--dayfirst", "--date-format")
    _refused(capsys, ["forecast", str(src), "-o", str(out), "--dayfirst", "--date-format", "%d/%m/%Y"], "not both")
    assert main(["forecast", str(src), *FC, "-o", str(out), "--dayfirst"]) == 0, capsys.readouterr().err
    assert list(pd.read_csv(out, index_col=0, parse_dates=True).index) == list(
        pd.date_range("2024-01-31", periods=3, freq="D"))
    # imputation only needs the row order: the labels are kept as they are
    filled = tmp_path / "o.csv"
    assert main(["impute", str(src), "-o", str(filled), "--model", str(model_ab)]) == 0, capsys.readouterr().err
    assert _check_copy(src, filled) > 0


# --------------------------------------------------------------------------- 5. encodings
@pytest.mark.parametrize("encoding,bom", [("latin-1", b""), ("utf-16", b"\xff\xfe"), ("utf-8-sig", b"\xef\xbb\xbf")])
def test_non_utf8_files_are_read_and_written_back_in_their_encoding(tmp_path, capsys, model_ab, encoding, bom):
    src = _csv(tmp_path / "enc.csv", _table([f"jour {i} é" for i in range(20)]), header=("température", "a", "b"),
               encoding=encoding)
    out = tmp_path / "o.csv"
    assert main(["impute", str(src), "-o", str(out), "--model", str(model_ab)]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert ("is not UTF-8" in err) == (encoding == "latin-1")
    assert out.read_bytes().startswith(bom)
    assert _check_copy(src, out, encoding=encoding.replace("utf-8-sig", "utf-8")) > 0


def test_undecodable_or_binary_files_are_clear_errors(tmp_path, capsys, no_training):
    src = _csv(tmp_path / "l1.csv", _table(["é"] * 5), encoding="latin-1")
    _refused(capsys, ["impute", str(src), "-o", str(tmp_path / "o.csv"), "--encoding", "utf-8"],
             "is not valid utf-8 text", "--encoding")
    _refused(capsys, ["impute", str(src), "-o", str(tmp_path / "o.csv"), "--encoding", "klingon"], "--encoding")
    (tmp_path / "x.csv").write_bytes(b"PK\x03\x04\x00\x00\x01\x02" * 40)
    _refused(capsys, ["impute", str(tmp_path / "x.csv"), "-o", str(tmp_path / "o.csv")], "NUL bytes")


# --------------------------------------------------------------------------- 6. and 9. dialects and quoting
def test_dialects_line_endings_comments_quotes_and_separator_rows(tmp_path, capsys, model_ab):
    labels = pd.date_range("2024-01-01", periods=20, freq="h").strftime("%Y-%m-%d %H:%M")
    rows = [(t, f'"{a}"' if a and i % 3 == 0 else a, b) for i, (t, a, b) in enumerate(_table(labels))]
    cases = {
        "crlf": dict(eol="\r\n"),
        "semicolon": dict(sep=";", head="# exported by a logger; units: K\n"),
        "tab": dict(sep="\t", head="# comment\n\n"),
        "trailing": dict(tail=",,\n,,\n", head='# a "quoted" comment\n'),
    }
    for name, kw in cases.items():
        src = _csv(tmp_path / f"{name}.csv", rows, **kw)
        out = tmp_path / f"{name}.out.csv"
        capsys.readouterr()
        assert main(["impute", str(src), "-o", str(out), "--model", str(model_ab)]) == 0, capsys.readouterr().err
        skip = ()
        if name == "trailing":
            assert "ignored 2 row(s) of separators only (line(s) 23, 24)" in capsys.readouterr().err
            skip = (22, 23)
        assert _check_copy(src, out, skip=skip) > 0, name
        text = out.read_bytes().decode()
        assert ('"' in text) and text.count('"') == src.read_bytes().decode().count('"')  # quotes kept
        if name == "crlf":
            assert text.count("\r\n") == text.count("\n") == 21
        sep = kw.get("sep", ",")
        back = pd.read_csv(out, sep=sep, index_col=0, comment="#")
        assert back.shape == (20, 2) and np.isfinite(back.to_numpy()).all()


# --------------------------------------------------------------------------- 7. temporaries of killed writers
def test_repeated_or_empty_column_names_are_renamed_with_a_warning(tmp_path, capsys, model_ab):
    from tsdiff.csv_dialect import InputWarning
    from tsdiff.userfiles import read_csv_table

    src = _csv(tmp_path / "d.csv", [(*r, r[1]) for r in _table(range(12))], header=("time", "a", "a", ""))
    with pytest.warns(InputWarning, match=r"repeats or leaves out column names; tsdiff calls them 'a' -> 'a.1', "
                                          r"\(empty\) -> 'Unnamed: 3'"):
        table = read_csv_table(src)
    assert list(table.frame.columns) == ["a", "a.1", "Unnamed: 3"]
    capsys.readouterr()
    assert main(["impute", str(src), "--model", str(model_ab), "-o", str(tmp_path / "o.csv")]) == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"tsdiff impute: warning: {src}: the header repeats or leaves out column names")
    assert error.startswith(f"tsdiff impute: error: {src}: the table has 3 columns but the model"), error


def _int64_grid(path, offset):
    import xarray as xr

    v = np.random.default_rng(0).integers(0, 1000, size=(12, 2, 3)).astype(np.int64) + offset
    v[3, 0, 1] = -1  # the fill value: missing
    coords = {"time": pd.date_range("2020-01-01", periods=12, freq="h"),
              "lat": xr.DataArray([50.0, 51.0], dims="lat", attrs={"units": "degrees_north"}),
              "lon": xr.DataArray([0.0, 1.0, 2.0], dims="lon", attrs={"units": "degrees_east"})}
    xr.DataArray(v, dims=("time", "lat", "lon"), coords=coords, name="count").to_netcdf(
        path, encoding={"count": {"_FillValue": -1, "dtype": "int64"}})
    return path, v


def test_grids_with_a_numeric_time_without_units_are_refused_with_the_fix(tmp_path, capsys):
    """Issue 30 #3 for grids: epoch seconds without CF units are never read as 1970 nanoseconds."""
    import xarray as xr

    src, _ = _int64_grid(tmp_path / "g.nc", 0)
    with xr.open_dataset(src) as ds:
        epoch = ds.load().assign_coords(time=1_700_000_000 + 3600 * np.arange(12))
    epoch.to_netcdf(tmp_path / "epoch.nc")
    for command in ("impute", "forecast"):
        _refused(capsys, [command, str(tmp_path / "epoch.nc"), "-o", str(tmp_path / "o.nc")],
                 "cannot recognise the time dimension(s)", "'seconds since 1970-01-01'")
    epoch.time.attrs["units"] = "seconds since 1970-01-01"
    epoch.to_netcdf(tmp_path / "cf.nc")
    assert main(["forecast", str(tmp_path / "cf.nc"), *FC, "-o", str(tmp_path / "f.nc")]) == 0
    with xr.open_dataset(tmp_path / "f.nc") as out:
        assert str(out.time.values[0]).startswith("2023-11-15T")  # 1700000000 + 12 h, not 1970


def test_int64_grids_beyond_2_to_the_53_are_refused_before_training(tmp_path, capsys, no_training):
    """xarray reads an int64 variable with a fill value as float64: counts above 2**53 came back changed
    in the imputed grid (issue 30 #13, the netCDF path)."""
    src, _ = _int64_grid(tmp_path / "big.nc", 2**53 + 1)
    for command in ("impute", "forecast"):
        _refused(capsys, [command, str(src), "-o", str(tmp_path / "o.nc")],
                 f"error: {src}: variable 'count': ", "integer value(s) (e.g. ", "exceed 2**53")
    assert not (tmp_path / "o.nc").exists()


def test_int64_grids_float64_holds_exactly_come_back_exactly(tmp_path, capsys):
    import xarray as xr

    src, v = _int64_grid(tmp_path / "small.nc", 2**52)
    assert main(["impute", str(src), *FAST, "-o", str(tmp_path / "o.nc")]) == 0
    with xr.open_dataset(tmp_path / "o.nc", mask_and_scale=False) as out:
        back = out["count"].values
    assert back.dtype == np.int64 and np.array_equal(back[v != -1], v[v != -1]) and back[3, 0, 1] != -1


def test_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    from tsdiff.io import atomic_write

    target = tmp_path / "out.nc"
    script = textwrap.dedent(f"""
        import os
        from tsdiff.io import atomic_write
        def write(fh):
            fh.write(b"partial")
            fh.flush()
            os._exit(9)
        atomic_write({str(target)!r}, write)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr[-2000:]
    orphans = [p.name for p in tmp_path.iterdir()]
    assert len(orphans) == 1 and orphans[0].startswith(".out.nc.tsdiff-") and orphans[0].endswith(".tmp")
    old, recent = tmp_path / ".out.nc.abcd1234.tmp", tmp_path / ".out.nc.efgh5678.tmp"  # older tsdiff versions
    old.write_bytes(b"x")
    recent.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    alive = tmp_path / f".out.nc.tsdiff-{os.getpid()}-abcdefgh.tmp"  # a writer that still runs
    alive.write_bytes(b"x")
    other = tmp_path / ".other.nc.tsdiff-999999999-abcdefgh.tmp"  # another output's: not ours to clean
    other.write_bytes(b"x")
    atomic_write(target, lambda fh: fh.write(b"done"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, recent.name, other.name, "out.nc"])


# --------------------------------------------------------------------------- 8. UTC offsets and daylight saving time
def test_timestamps_whose_offset_changes_with_daylight_saving_time(tmp_path, capsys, model_ab):
    idx = pd.date_range("2024-03-30 12:00", periods=24, freq="h", tz="Europe/Paris")
    labels = [t.isoformat() for t in idx]
    assert labels[0].endswith("+01:00") and labels[-1].endswith("+02:00")
    src = _csv(tmp_path / "dst.csv", _table(labels))
    out = tmp_path / "f.csv"
    assert main(["forecast", str(src), *FC, "-o", str(out)]) == 0, capsys.readouterr().err
    res = pd.read_csv(out, index_col=0)
    assert list(res.index) == [str(t) for t in pd.date_range(idx[-1], periods=4, freq="h")[1:].tz_convert("+02:00")]
    filled = tmp_path / "o.csv"
    assert main(["impute", str(src), "-o", str(filled), "--model", str(model_ab)]) == 0, capsys.readouterr().err
    assert _check_copy(src, filled) > 0
    naive = _csv(tmp_path / "mixed.csv", _table(labels[:3] + ["2024-03-31 12:00"]))
    _refused(capsys, ["forecast", str(naive), "-o", str(out)], "has a UTC offset but", "has none")
