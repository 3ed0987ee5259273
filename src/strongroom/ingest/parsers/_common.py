"""Helpers shared by the format adapters: text normalisation, decoding, dates, table rows.

Everything here is pure. The page text a parser returns is the canonical text that chunks
and citations point into, so every adapter ends with :func:`normalize_text`.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from strongroom.errors import CorruptDocument

# C0 controls other than \t and \n (form feed included: callers split pages on it first), and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]+")
_MANY_BLANK_LINES = re.compile(r"\n{4,}")
_NUL_SNIFF_BYTES = 8192


def normalize_text(text: str) -> str:
    """Canonical page text: ``\\n`` line ends, no control characters, no trailing spaces.

    Runs of three or more blank lines become two, and blank lines at the start and end go.
    U+FFFE, which pdfium emits where a line ended in a hyphen, becomes ``-`` so that
    "stock-based" stays searchable.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "-").replace("\uffff", "")
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _MANY_BLANK_LINES.sub("\n\n\n", text).strip("\n")


def one_line(text: str) -> str:
    """Collapse all whitespace (line breaks included) to single spaces: a table cell or a heading."""
    return " ".join(text.split())


def decode_text(data: bytes, name: str) -> str:
    """Decode a plain-text file: UTF-8 (BOM stripped), UTF-16 with a BOM, else Windows-1252.

    Raises :class:`CorruptDocument` for binary data (a NUL in the first 8 KiB) and for bytes
    that are neither UTF-8 nor Windows-1252.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CorruptDocument(
                f"{name}: damaged UTF-16 text (odd byte count or broken surrogates); "
                "re-save it as UTF-8 and ingest again"
            ) from exc
    if b"\x00" in data[:_NUL_SNIFF_BYTES]:
        raise CorruptDocument(
            f"{name}: binary data, not text; check the file type (a renamed PDF, Office or image file?)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise CorruptDocument(
            f"{name}: text is neither UTF-8 nor Windows-1252; re-save it as UTF-8 and ingest again"
        ) from exc


def as_utc(value: datetime | None) -> datetime | None:
    """A timezone-aware datetime: naive values are taken to be UTC (as OOXML and PDF say)."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_cell(value: object) -> str:
    """One spreadsheet value as text: ints without ``.0``, dates ISO, one line, stripped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        # 15 significant digits is what Excel shows; it hides binary noise like 0.30000000000000004.
        return format(value, ".15g")
    if isinstance(value, datetime):
        if value.time() == time(0, 0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return one_line(str(value))


def table_lines(rows: Iterable[Sequence[str]]) -> tuple[list[str], int]:
    """Render table rows as ``a | b | c`` lines, the first row being the header.

    Fully empty rows are skipped, and so are columns that are empty in every row at either
    edge (a sheet whose data starts in column B, formatting that reaches past the data).
    Returns the lines and the column count.
    """
    kept: list[list[str]] = []
    for row in rows:
        cells = list(row)
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            kept.append(cells)
    lead = min((next(i for i, cell in enumerate(row) if cell) for row in kept), default=0)
    lines = [" | ".join(row[lead:]) for row in kept]
    return lines, max((len(row) - lead for row in kept), default=0)
