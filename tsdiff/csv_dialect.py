"""The dialect of a user's CSV file: its encoding, separator and records, with the exact text of each cell.

``tsdiff impute`` writes its output by copying the input's text and replacing only the
missing cells, so everything else (quotes, spaces, line endings, ``#`` comment lines, the
byte-order mark, the encoding) comes back byte for byte. For that this module reads the file
itself instead of through ``csv`` / pandas:

- :func:`decode`: the encoding from a byte-order mark (UTF-8, UTF-16, UTF-32), UTF-16 without
  one from its NUL bytes, else UTF-8; a file that is not UTF-8 is read as Windows-1252 / Latin-1
  with a warning, unless ``encoding`` names it.
- :func:`sniff_delimiter`: ``,``, ``;``, tab or ``|``: the one that splits the header and the
  first rows into the same number (at least 2) of cells (rows of separators only aside); of
  several, the one that reads the most records (a quote opening inside a cell for a wrong
  separator merges lines), then the first in that order.
- :func:`split_records`: records with the span of every cell in the text; quoted cells may hold
  the separator, doubled quotes and line breaks. As in RFC 4180 and Python's ``csv``, a quote
  opens a quoted cell only at the start of the cell; inside a cell (``5" pipe``) it is text.
  Blank lines and lines starting with ``#`` are records without cells (kept, never parsed).
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass

from tsdiff.errors import ConfigError, DataError

#: separators tried, in order of preference
DELIMITERS = (",", ";", "\t", "|")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_EOL = re.compile(r"\r\n|\n|\r")


class InputWarning(UserWarning):
    """Something in a user's file was read in a way worth knowing (encoding guessed, rows ignored)."""


@dataclass
class Record:
    """One record of the text: ``text[start:end]`` its content, ``text[end:stop]`` its line ending.
    ``skipped``: a blank or ``#`` comment line (no cells). ``cells``: the ``(start, end)`` span of
    each cell of a record with quotes (others are split when needed, see :func:`cell_spans`)."""

    start: int
    end: int
    stop: int
    line: int
    skipped: bool = False
    cells: list[tuple[int, int]] | None = None


def decode(data: bytes, where: str, encoding: str | None = None) -> tuple[str, str, bytes, str | None]:
    """Decode a CSV file's bytes.

    Returns:
        ``(text, encoding, bom, note)``: writing ``bom + text.encode(encoding)`` gives ``data``
        back; ``note`` says how a non-UTF-8 encoding was guessed (None otherwise).
    Raises:
        ConfigError: an unknown ``encoding``, or one that contradicts the file's byte-order mark.
        DataError: the bytes are not text in the encoding (named, with the offset of the bad byte).
    """
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(f"--encoding {encoding!r} is not an encoding Python knows; use e.g. utf-8, "
                              "latin-1, cp1252 or utf-16") from None
    for bom, name in _BOMS:
        if data.startswith(bom):
            if encoding is not None and not codecs.lookup(encoding).name.startswith(name[:6]):
                raise ConfigError(f"{where} starts with a {name[:6].upper()} byte-order mark but --encoding "
                                  f"{encoding!r} was given; drop --encoding (the mark says how it is encoded)")
            return _strict(data[len(bom):], name, where), name, bom, None
    if encoding is not None:
        return _strict(data, encoding, where), encoding, b"", None
    head = data[:4096]
    if b"\x00" in head:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if max(even, odd) > len(head) // 4:  # ASCII text as UTF-16 without a byte-order mark
            name = "utf-16-le" if odd > even else "utf-16-be"
            return _strict(data, name, where), name, b"", f"{where} has no byte-order mark; read it as {name}"
        raise DataError(f"{where} holds NUL bytes: it is not a text CSV file (a spreadsheet or other binary "
                        "file?); export it as CSV, or give its encoding with --encoding")
    try:
        return data.decode("utf-8"), "utf-8", b"", None
    except UnicodeDecodeError as exc:
        first = exc
    for name in ("cp1252", "latin-1"):
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            continue
        return text, name, b"", (f"{where} is not UTF-8 (byte 0x{data[first.start]:02x} at offset {first.start}); "
                                 f"read it as {name} (Windows/Latin-1). If that is wrong, give the file's encoding "
                                 "with --encoding")
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _strict(data: bytes, name: str, where: str) -> str:
    try:
        return data.decode(name)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{where} is not valid {name} text (byte 0x{data[exc.start]:02x} at offset {exc.start}, "
                        f"line {line}); give the file's encoding with --encoding (e.g. latin-1, cp1252, "
                        "utf-16)") from None


def _is_skipped(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def sniff_delimiter(text: str, where: str, delimiter: str | None = None) -> str:
    """The separator of the file (see the module's docstring); ``delimiter`` forces one."""
    if delimiter is not None:
        if len(delimiter) != 1 or delimiter in "\"\r\n":
            raise ConfigError(f"--sep must be one character other than a quote or a line break, got "
                              f"{delimiter!r}; e.g. --sep ';' or --sep tab")
        return delimiter
    lines = [ln for ln in _EOL.split(text[:65536])[:200] if not _is_skipped(ln)][:50]
    if len(lines) > 1 and len(text) > 65536:
        lines = lines[:-1]  # possibly cut
    if not lines:
        return ","
    fallback, best = None, None
    for d in DELIMITERS:
        # rows of separators only (',,,') are ignored by the reader: they do not count against d
        mine = [ln for ln in lines if ln.replace(d, "").strip()] or lines
        widths = [len(row) for row in csv.reader(mine, delimiter=d)]
        if widths and widths[0] >= 2 and all(w == widths[0] for w in widths):
            # a quote that opens inside a cell for the wrong separator merges lines into one
            # record: among consistent separators the one that reads the most records wins
            if best is None or len(widths) > best[1]:
                best = (d, len(widths))
        if fallback is None and widths and widths[0] >= 2:
            fallback = d
    return best[0] if best else (fallback or ",")


def split_records(text: str, delimiter: str, where: str) -> list[Record]:
    """Every record of ``text`` with its cells' spans (see :class:`Record`).

    Raises:
        DataError: a quoted cell that never closes (naming its line).
    """
    records: list[Record] = []
    pos, n, line = 0, len(text), 1
    while pos < n:
        m = _EOL.search(text, pos)
        end, stop = (m.start(), m.end()) if m else (n, n)
        raw = text[pos:end]
        if _is_skipped(raw):
            records.append(Record(pos, end, stop, line, skipped=True))
        elif '"' not in raw:
            records.append(Record(pos, end, stop, line))
        else:
            end, stop, cells = _scan_quoted(text, pos, delimiter, where, line)
            records.append(Record(pos, end, stop, line, cells=cells))
        line += len(_EOL.findall(text, pos, stop))
        pos = stop
    return records


def _scan_quoted(text: str, pos: int, delimiter: str, where: str, line: int):
    """Scan one record that holds quotes, character by character: ``(end, stop, cells)``."""
    n = len(text)
    cells, start, i, quoted = [], pos, pos, False
    while i < n:
        c = text[i]
        if quoted:
            if c == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 2
                    continue
                quoted = False
            i += 1
        elif c == '"' and not text[start:i].strip():  # a quote opens a cell (spaces before it aside);
            quoted = True                                 # inside a cell (5" pipe) it is a character
            i += 1
        elif c == delimiter:
            cells.append((start, i))
            start = i = i + 1
        elif c in "\r\n":
            cells.append((start, i))
            stop = i + 2 if text.startswith("\r\n", i) else i + 1
            return i, stop, cells
        else:
            i += 1
    if quoted:
        raise DataError(f"{where}: a quoted cell opened on line {line} never closes; add the closing '\"' "
                        "(a quote inside a quoted cell is written twice: \"\")")
    cells.append((start, n))
    return n, n, cells


def cell_text(text: str, span: tuple[int, int]) -> str:
    """A cell's value: its text without surrounding spaces and quotes (``""`` inside quotes is ``"``)."""
    raw = text[span[0]: span[1]].strip()
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        return raw[1:-1].replace('""', '"')
    return raw


def cell_spans(text: str, record: Record, delimiter: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` span in ``text`` of each cell of ``record``."""
    if record.cells is not None:
        return record.cells
    spans, a = [], record.start
    for part in text[record.start: record.end].split(delimiter):
        spans.append((a, a + len(part)))
        a += len(part) + 1
    return spans


def record_texts(text: str, record: Record, delimiter: str) -> list[str]:
    """:func:`cell_text` of every cell of ``record`` (fast for records without quotes)."""
    raw = text[record.start: record.end]
    if record.cells is None:
        return [x.strip() for x in raw.split(delimiter)]
    return [cell_text(text, c) for c in record.cells]


def quote_cell(value: str, delimiter: str) -> str:
    """``value`` as a cell of a new row (quoted when it holds the separator, a quote or a line break)."""
    if any(ch in value for ch in (delimiter, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value
