"""Plain-text adapters: ``.txt`` (pages split on form feeds), Markdown kept as is, and CSV.

Markdown is not rendered: its ``#`` heading lines are exactly what the chunker uses for
section context, so the normalised source is the page text.
"""

from __future__ import annotations

import csv
import io
import re

from strongroom.errors import CorruptDocument
from strongroom.ingest.parsers._common import decode_text, normalize_text, table_lines
from strongroom.types import Page, ParsedDocument, frozen_meta

# csv.Sniffer's quote regex is quadratic in the sample: 64 KiB of ,"a took 22 s, 8 KiB takes 0.4 s.
_SNIFF_CHARS = 8 * 1024
_MD_TITLE = re.compile(r"^# +(.+?)(?: +#+)?$", re.MULTILINE)


def parse_txt(data: bytes, name: str) -> ParsedDocument:
    """Parse a text file; each form feed (``\\f``) starts a new page, as printers do."""
    raw_pages = decode_text(data, name).split("\f")
    while len(raw_pages) > 1 and not raw_pages[-1].strip():
        raw_pages.pop()  # a trailing form feed ends the last page, it does not open a new one
    pages = tuple(Page(i + 1, normalize_text(text)) for i, text in enumerate(raw_pages))
    _require_text(pages, name)
    return ParsedDocument(pages=pages, media_type="text/plain")


def parse_markdown(data: bytes, name: str) -> ParsedDocument:
    """Parse Markdown as one page; the title is the first level-1 ``#`` heading."""
    text = normalize_text(decode_text(data, name))
    pages = (Page(1, text),)
    _require_text(pages, name)
    match = _MD_TITLE.search(text)
    return ParsedDocument(pages=pages, media_type="text/markdown", title=match.group(1).strip() if match else None)


def parse_csv(data: bytes, name: str) -> ParsedDocument:
    """Parse CSV as one page: the header line once, then one ``a | b | c`` line per row.

    The dialect (comma, semicolon, tab or pipe) is sniffed from the first 8 KiB; metadata
    ``table.rows`` (data rows, header excluded) and ``table.columns`` describe the table.
    """
    text = decode_text(data, name)
    if not text.strip():
        raise CorruptDocument(f"{name}: empty document: the CSV file has no rows; export it again")
    try:
        rows = [
            [" ".join(cell.split()) for cell in row]
            for row in csv.reader(io.StringIO(text, newline=""), _dialect(text))
        ]
    except csv.Error as exc:
        raise CorruptDocument(f"{name}: malformed CSV ({exc}); check quoting and re-export it as standard CSV") from exc
    lines, columns = table_lines(rows)
    if not lines:
        raise CorruptDocument(f"{name}: empty document: the CSV file has no rows; export it again")
    page_text = normalize_text("\n".join(lines))
    return ParsedDocument(
        pages=(Page(1, page_text),),
        media_type="text/csv",
        metadata=frozen_meta({"table.rows": str(len(lines) - 1), "table.columns": str(columns)}),
    )


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # a cut-off last line confuses the sniffer
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _require_text(pages: tuple[Page, ...], name: str) -> None:
    if not any(page.text for page in pages):
        raise CorruptDocument(f"{name}: empty document: the file holds only whitespace; check it is the right file")
