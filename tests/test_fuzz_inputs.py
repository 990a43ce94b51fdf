"""Property-based fuzzing of users' input: ``tsdiff impute`` on CSV files and ``Imputer.transform``
on arrays and DataFrames.

The invariant, for every generated input: either a clear tsdiff error (a
:class:`~tsdiff.errors.TsdiffError`; the CLI exits 2 with a short ``tsdiff impute: error: ...``
and no traceback), or an output whose observed cells are the input's text byte for byte
(the Python API: the input's values bit for bit) and whose gaps are finite numbers.

CSV files vary the separator (``,`` ``;`` tab ``|``), line endings (LF, CRLF, CR, with or
without a final one), quoting (cells with separators, quotes and line breaks, quoted numbers
and missing markers, quotes inside cells), ``#`` comment lines and blank lines anywhere, rows
of separators only, the encoding (UTF-8, UTF-8 with BOM, Latin-1, UTF-16), the first column
(steps, ISO and day-first dates, epoch seconds, free text), number formats (integers, floats,
magnitudes from 5e-324 to 1e300, signs, exponents, spaces) and missing markers (empty cells
and the NA strings the reader accepts); a few files hold a cell that is not a finite number
(``1,5``, ``inf``, ``?``), which must be refused. Arrays vary the dtype (ints, unsigned,
floats of every width, bool, nullable and object columns), magnitudes up to 1e300, and the
missing markers (NaN, masked entries, ``pd.NA``, ``None``).

The regression tests at the end pin what the fuzzing found (see tests/test_bad_input_matrix.py
for the errors).

No model is trained per example: one tiny imputer per column count is trained once
(:func:`models`) and every example only samples with it (``--model``). Examples are
derandomized (the same ones on every run, so CI is reproducible) and bounded in number.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tsdiff.errors import TsdiffError

#: examples per test (TSDIFF_FUZZ_EXAMPLES=500 for a longer local search); derandomized: the same
#: examples on every run, so CI is reproducible and never meets a new one
FUZZ = settings(max_examples=int(os.environ.get("TSDIFF_FUZZ_EXAMPLES", 40)), deadline=None, derandomize=True,
                database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TINY = dict(layers=1, channels=8, heads=2, ff_dim=8, diffusion_embedding_dim=16, time_embedding_dim=8,
            feature_embedding_dim=4)
#: the trained models: name -> (column count, scale of the training data, prior). A model trained
#: on values of about 1 refuses values beyond 1e18 (its float32 network would overflow); one trained
#: on values of about 1e299 takes everything from 5e-324 to the float64 maximum. The interpolation
#: prior runs on every table sampled with it (the default cross_series prior fits a regression
#: before training, too slow here: 30 s on 2 cores for 16 rows).
MODELS = {"2": (2, 1.0, "interpolation"), "2-huge": (2, 1e299, "interpolation"), "1": (1, 1.0, "none")}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """``{name: (model file, loaded Imputer)}`` (see :data:`MODELS`): tiny imputers trained once on
    arrays (no column names, so tables with any header can use them)."""
    from tsdiff.api import Imputer

    d = tmp_path_factory.mktemp("fuzz-models")
    out = {}
    for name, (width, scale, prior) in MODELS.items():
        X = np.random.default_rng(width).normal(size=(16, width)) * scale
        X[3::5, 0] = np.nan
        imp = Imputer(window=8, max_steps=1, n_samples=1, sampling_steps=1, model_options=TINY, prior=prior,
                      device="cpu", random_state=0).fit(X)
        path = imp.save(d / f"imputer{name}.pt")
        out[name] = (path, Imputer.load(path, device="cpu"))
    return out


# --------------------------------------------------------------------------- CSV files
SEPS = (",", ";", "\t", "|")
EOLS = ("\n", "\r\n", "\r")
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "utf-16")
#: missing-cell texts the reader accepts (tsdiff.userfiles.NA_TEXTS), as written in files
NA_CELLS = ("", "NA", "NaN", "nan", "null", "NULL", "N/A", "n/a", "#N/A", "None", "<NA>", "-nan", "-NaN", "1.#QNAN")
#: header and label characters every tested encoding can hold (Latin-1), separators, quotes and
#: line breaks included
TEXT = st.lists(st.sampled_from(list("abcxyzAZ019 _-.:/()é°µüßÆ¿") + [",", ";", "\t", "|", '"', "\n", "\r\n"]),
                max_size=8).map("".join)

SLOT = object()  # a missing cell: replaced in the output


def _number() -> st.SearchStrategy[str]:
    """An observed cell's text: numbers as people and programs write them."""
    ints = st.integers(-10**18, 10**18).map(str)
    floats = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300).map(repr)
    fixed = st.sampled_from(["0", "-0", "+1.5", ".5", "5.", "1E5", "1e300", "-1e300", "1.5e+300", "1e-300",
                             "5e-324", "2.2250738585072014e-308", "-0.0", "123456789012345678", "007"])
    sci = st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: f"{x:.3e}")
    return st.one_of(ints, floats, fixed, sci)


#: observed cells that are not numbers (or not finite): the file must be refused
BAD_CELLS = ("1,5", "?", "-", "1_000", "0x1A", "inf", "-Infinity", "1e999", "12 345", "n.a.")


@st.composite
def _cell(draw, sep: str, missing: bool, bad: bool = False):
    """A value cell's text, maybe with spaces around and quotes."""
    if missing or bad:
        text = draw(st.sampled_from(NA_CELLS if missing else BAD_CELLS))
    else:
        text = draw(_number())
    if sep in text or draw(st.booleans()) and draw(st.booleans()):
        text = '"' + text + '"'
    if draw(st.booleans()) and draw(st.booleans()) and sep != "\t":
        text = " " + text + draw(st.sampled_from(["", " "]))
    return text


def _quoted(text: str, sep: str, force: bool) -> str:
    """``text`` as a cell: quoted when it must be (or ``force``); a quote inside it (5" pipe) may stay."""
    if force or any(c in text for c in (sep, "\n", "\r")) or text.strip().startswith('"'):
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def _labels(draw, n: int) -> list[str]:
    kind = draw(st.sampled_from(["steps", "iso", "dmy", "epoch", "text"]))
    if kind == "steps":
        a, s = draw(st.integers(-5, 100)), draw(st.integers(1, 3))
        return [str(a + s * i) for i in range(n)]
    if kind == "iso":
        return list(pd.date_range("2024-03-30", periods=n, freq="h").strftime("%Y-%m-%d %H:%M"))
    if kind == "dmy":
        return list(pd.date_range("2024-01-10", periods=n, freq="D").strftime("%d/%m/%Y"))
    if kind == "epoch":
        return [str(1_700_000_000 + 3600 * i) for i in range(n)]
    # free text, non-empty and not a comment
    return [draw(TEXT.filter(lambda t: t.strip() and not t.strip().startswith("#"))) for _ in range(n)]


@st.composite
def csv_files(draw):
    """``(model, encoding, data bytes, expected pieces, bad)``: the pieces are the output's text with
    ``SLOT`` where a missing cell is filled; ``bad``: a cell is not a finite number (must be refused)."""
    model = draw(st.sampled_from(sorted(MODELS)))
    width = MODELS[model][0]
    sep, eol = draw(st.sampled_from(SEPS)), draw(st.sampled_from(EOLS))
    encoding = draw(st.sampled_from(ENCODINGS))
    n = draw(st.integers(1, 10))
    labels = draw(_labels(n))
    names = [draw(TEXT) for _ in range(width + 1)]
    names[0] = names[0].replace("#", "")
    if not any(x.strip() for x in names):
        names[0] = "time"
    force = draw(st.booleans())
    header = sep.join(_quoted(x, sep, force and draw(st.booleans())) for x in names)
    lines: list[list] = [[header, eol]]  # each: pieces of one line (with its end)
    bad = False
    for i, label in enumerate(labels):
        pieces = [_quoted(label, sep, draw(st.booleans()) and draw(st.booleans()))]
        for _ in range(width):
            kind = draw(st.sampled_from("ooooooomb" if i == 0 else "ooooooom"))  # observed, missing, bad (row 0)
            pieces += [sep, (SLOT, draw(_cell(sep, True))) if kind == "m" else draw(_cell(sep, False, kind == "b"))]
            bad |= kind == "b"
        lines.append(pieces + [eol])
    # comment and blank lines anywhere; rows of separators only after the first line (one that ends up
    # before the header, after a leading comment, is read as the header: a clear error)
    for _ in range(draw(st.integers(0, 3))):
        text = draw(st.sampled_from(["", "   ", "# units: K", '# a "quoted", comment;', "#", "  # indented"]))
        lines.insert(draw(st.integers(0, len(lines))), [text, eol])
    dropped = []
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(1, len(lines)))
        row = [sep * draw(st.integers(1, width + 1)), eol]
        lines.insert(at, row)
        dropped.append(row)
    final_eol = draw(st.booleans())
    source, expected = [], []
    for k, line in enumerate(lines):
        if k == len(lines) - 1 and not final_eol:
            line = line[:-1]
        blank = not "".join(p for p in line if isinstance(p, str)).strip()  # e.g. a row of tabs: a blank line
        keep = not any(lines[k] is r for r in dropped) or blank
        for p in line:
            source.append(p[1] if isinstance(p, tuple) else p)
            if keep:
                expected.append(SLOT if isinstance(p, tuple) else p)
    text = "".join(source)
    return model, encoding, text.encode(encoding), expected, bad


def _pattern(expected: list) -> re.Pattern:
    out = "".join(r"([-+0-9.eE]+|inf|-inf|nan)" if p is SLOT else re.escape(p) for p in expected)
    return re.compile(out, re.DOTALL)


def _run_cli(argv: list[str]) -> tuple[int, str]:
    from tsdiff.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def assert_clear_cli_error(code: int, err: str, command: str = "impute") -> None:
    """Exit status 2 and a short ``tsdiff CMD: error: ...`` as the last line of stderr, no traceback."""
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    last = err.rstrip("\n").splitlines()[-1] if err.strip() else ""
    assert last.startswith(f"tsdiff {command}: error: ") and 30 < len(last) < 1500, err


@FUZZ
@given(csv_files())
def test_fuzzed_csv_files_are_copied_byte_for_byte_or_refused_clearly(models, case):
    model, encoding, data, expected, bad = case
    with tempfile.TemporaryDirectory(prefix="tsdiff-fuzz-") as d:
        src, out = Path(d) / "in.csv", Path(d) / "out.csv"
        src.write_bytes(data)
        code, err = _run_cli(["impute", str(src), "-o", str(out), "--model", str(models[model][0])])
        if code != 0 or bad:
            assert_clear_cli_error(code, err)
            event("refused: " + re.sub(r"'[^']*'|\d+", "_", err.splitlines()[-1].split("in.csv: ")[-1])[:60])
            assert not out.exists()
            return
        assert "Traceback" not in err, err
        written = out.read_bytes()
    bom = {"utf-8-sig": codecs.BOM_UTF8, "utf-16": codecs.BOM_UTF16}.get(encoding, b"")
    assert written.startswith(bom) and (bom or not written.startswith(codecs.BOM_UTF8))
    text = written.decode(encoding)
    m = _pattern(expected).fullmatch(text)
    assert m is not None, f"output differs from the input outside the gaps:\n{data!r}\n->\n{written!r}"
    gaps = [float(g) for g in m.groups()]
    assert all(np.isfinite(gaps)), gaps


# --------------------------------------------------------------------------- arrays and DataFrames
def _values(dtype: np.dtype):
    if dtype.kind == "f":
        fmax = float(np.finfo(dtype).max)
        return st.floats(allow_nan=False, allow_infinity=False, width=8 * dtype.itemsize,
                         min_value=-min(fmax, 1e300), max_value=min(fmax, 1e300))
    if dtype.kind == "b":
        return st.booleans()
    info = np.iinfo(dtype)
    return st.one_of(st.integers(int(info.min), int(info.max)), st.integers(max(int(info.min), -100), 100))


DTYPES = ("float64", "float32", "float16", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "bool")


@st.composite
def api_inputs(draw):
    """``(model, X, values, missing)``: ``values`` float64 of the observed entries (NaN elsewhere)."""
    model = draw(st.sampled_from(sorted(MODELS)))
    width = MODELS[model][0]
    n = draw(st.integers(1, 12))
    kind = draw(st.sampled_from(["array", "masked", "frame", "nullable", "object"]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    raw = [[draw(_values(dtype)) for _ in range(width)] for _ in range(n)]
    missing = np.array([[draw(st.integers(0, 3)) == 0 for _ in range(width)] for _ in range(n)], dtype=bool)
    if kind == "array" and dtype.kind != "f":
        missing[:] = False  # integers have no NaN
    arr = np.array(raw, dtype=dtype).reshape(n, width)
    values = np.where(missing, np.nan, arr.astype(np.float64))
    if kind == "array":
        if dtype.kind == "f":
            arr = arr.copy()
            arr[missing] = np.nan
        X = arr
    elif kind == "masked":
        X = np.ma.MaskedArray(arr, mask=missing)
    elif kind == "frame":
        index = pd.date_range("2024-01-01", periods=n, freq="h") if draw(st.booleans()) else None
        X = pd.DataFrame(np.where(missing, np.nan, arr.astype(np.float64)) if missing.any() else arr, index=index,
                         columns=[f"c{j}" for j in range(width)])
    elif kind == "nullable":
        target = "boolean" if dtype.kind == "b" else ("Float64" if dtype.kind == "f" else
                                                      {"i": "Int64", "u": "UInt64"}[dtype.kind])
        X = pd.DataFrame({f"c{j}": pd.array([pd.NA if missing[t, j] else arr[t, j].item() for t in range(n)],
                                            dtype=target) for j in range(width)})
    else:
        blank = draw(st.sampled_from([None, np.nan, pd.NA]))
        X = pd.DataFrame({f"c{j}": pd.Series([blank if missing[t, j] else arr[t, j].item() for t in range(n)],
                                             dtype=object) for j in range(width)})
    return model, X, values, missing


@FUZZ
@given(api_inputs())
def test_fuzzed_arrays_keep_observed_values_bit_for_bit_or_are_refused_clearly(models, case):
    import warnings

    model, X, values, missing = case
    imp = models[model][1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "X has feature names, but Imputer was fitted without"
        try:
            out = imp.transform(X)
        except TsdiffError as exc:
            assert len(str(exc)) > 15
            event("refused: " + re.sub(r"'[^']*'|\d+", "_", str(exc))[:60])
            return
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == values.shape
    assert isinstance(out, np.ma.MaskedArray) == isinstance(X, np.ma.MaskedArray)
    out = np.asarray(out)
    obs = ~missing
    assert np.array_equal(out[obs].view(np.uint64), values[obs].view(np.uint64)), (X, out)
    assert np.isfinite(out[missing]).all(), out


# --------------------------------------------------------------------------- what the fuzzing found
def _impute(models, tmp_path, data: bytes, model: str = "2"):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(data)
    code, err = _run_cli(["impute", str(src), "-o", str(out), "--model", str(models[model][0])])
    return code, err, (out.read_bytes() if out.exists() else None)


def test_a_quote_inside_a_cell_is_text_not_the_start_of_a_quoted_cell(models, tmp_path):
    """A quote opened a quoted section anywhere in a cell: the rows ``a"b,1,`` and ``a"b,,2`` were
    read as one row (label ``'a"b,1,\\na"b'``), silently: the first row's gap stayed empty."""
    data = b't,a,b\n1,2,3\na"b,1,\na"b,,2\n5" pipe,"4",5\n'
    code, err, out = _impute(models, tmp_path, data)
    assert code == 0, err
    m = _pattern(['t,a,b\n1,2,3\na"b,1,', SLOT, '\na"b,', SLOT, ',2\n5" pipe,"4",5\n']).fullmatch(out.decode())
    assert m and np.isfinite([float(g) for g in m.groups()]).all(), out


@pytest.mark.parametrize("data,sep", [
    (b'time,,"\t"\n,\n2024-03-30 00:00,,5\n2024-03-30 01:00,1,\n', b","),  # was: tab, "the table is empty"
    (b";;,\n;\n0;;1\n1;2;\n", b";"),  # was: ',' (the row of separators made ';' look ragged): a DataError
])
def test_the_separator_is_found_despite_quoted_separators_and_separator_rows(models, tmp_path, data, sep):
    code, err, out = _impute(models, tmp_path, data)
    assert code == 0, err
    assert "ignored 1 row(s) of separators only (line(s) 2)" in err
    rows = out.replace(b"\r", b"").split(b"\n")
    assert rows[0] == data.split(b"\n")[0] and all(r.count(sep) == 2 for r in rows if r), out


@pytest.mark.parametrize("data,fragment", [
    (b"#time,a,b\n2024-01-01,1,\n2024-01-02,,3\n", "line 1 starts with '#' and so is a comment line"),
    (b"0,1.5,\n1,,2\n2,3,4\n", "the first line must name the columns"),
    (b"t,a,b\n1,2,3\n#2,,4\n3,5,6\n", "line(s) 3 start with '#' and so are comment lines"),
])
def test_rows_of_values_read_as_a_header_or_a_comment_are_warned_about(models, tmp_path, data, fragment):
    """Such rows are copied unchanged and not imputed: never silently."""
    code, err, out = _impute(models, tmp_path, data)
    assert code == 0, err
    assert "tsdiff impute: warning:" in err and fragment in err, err


def test_comments_and_numeric_column_names_give_no_warning(models, tmp_path):
    data = b"# exported, units K\ndatetime,001001,001002\n1,2,3\n# 2 hours missing\n2,,4\n"
    code, err, out = _impute(models, tmp_path, data)
    assert code == 0 and "warning" not in err, err


def test_api_values_beyond_the_models_float32_range_are_named(models):
    from tsdiff.errors import DataError

    with pytest.raises(DataError, match="too far outside the data the model was trained on"):
        models["2"][1].transform(np.array([[1.0, np.nan], [1e300, 2.0], [0.5, 0.1]]))
