"""Office Open XML adapters: Word (python-docx) and Excel (openpyxl).

A Word document becomes one page in reading order, paragraphs and tables interleaved as
they appear in the body. A workbook becomes one page per non-empty sheet, one line per row.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime

import docx
import openpyxl
from docx.document import Document
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from strongroom.errors import CorruptDocument, IngestError
from strongroom.ingest.parsers._common import as_utc, format_cell, normalize_text, one_line, table_lines
from strongroom.types import Page, ParsedDocument, frozen_meta

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADING_STYLE = re.compile(r"^Heading ([1-9])$")
_BODY_P, _BODY_TBL, _BODY_SDT, _SDT_CONTENT = qn("w:p"), qn("w:tbl"), qn("w:sdt"), qn("w:sdtContent")


def parse_docx(data: bytes, name: str) -> ParsedDocument:
    """Parse a Word ``.docx`` into one page: ``# Heading`` lines, ``- item`` lists, table rows.

    Title and creation time come from the core properties (naive times are UTC).
    """
    _require_zip(data, name, "Word", ".docx")
    try:
        document = docx.Document(io.BytesIO(data))
        text = normalize_text(_docx_text(document))
        props = document.core_properties
        title, created = props.title, props.created
        meta = {"docx.author": props.author, "docx.subject": props.subject, "docx.keywords": props.keywords}
    except (IngestError, MemoryError):  # a MemoryError is the sandbox's to report
        raise
    except Exception as exc:  # python-docx and lxml raise a zoo of types on damaged packages
        raise CorruptDocument(
            f"{name}: not a readable Word document ({type(exc).__name__}); "
            "open it in Word, save it as .docx and ingest again"
        ) from exc
    if not text:
        raise CorruptDocument(f"{name}: empty document: the Word file has no text; check the file")
    return ParsedDocument(
        pages=(Page(1, text),),
        media_type=DOCX_MEDIA_TYPE,
        title=one_line(title or "") or None,
        published_at=as_utc(created),
        metadata=frozen_meta({k: one_line(v) for k, v in meta.items() if v and one_line(v)}),
    )


def parse_xlsx(data: bytes, name: str) -> ParsedDocument:
    """Parse an Excel ``.xlsx`` workbook: one page per non-empty sheet, in workbook order.

    Each page starts with ``# Sheet: NAME``, then the header row and one ``a | b`` line per
    data row. Cached formula results are read (``data_only``), so a workbook that was never
    opened and saved by Excel may show empty formula cells.
    """
    _require_zip(data, name, "Excel", ".xlsx")
    sheets: list[str] = []
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            for sheet in workbook.worksheets:
                sheet.reset_dimensions()  # stored dimensions are often wrong; read what is there
                rows = ([format_cell(value) for value in row] for row in sheet.iter_rows(values_only=True))
                lines, _ = table_lines(rows)
                if lines:
                    sheets.append(normalize_text("\n".join([f"# Sheet: {one_line(sheet.title)}", *lines])))
            title, created = workbook.properties.title, workbook.properties.created
        finally:
            workbook.close()
    except (IngestError, MemoryError):  # a MemoryError is the sandbox's to report
        raise
    except Exception as exc:  # openpyxl, zipfile and lxml raise many types on damaged packages
        raise CorruptDocument(
            f"{name}: not a readable Excel workbook ({type(exc).__name__}); "
            "open it in Excel, save it as .xlsx and ingest again"
        ) from exc
    if not sheets:
        raise CorruptDocument(f"{name}: empty document: no sheet has any rows; check it is the right file")
    return ParsedDocument(
        pages=tuple(Page(i + 1, text) for i, text in enumerate(sheets)),
        media_type=XLSX_MEDIA_TYPE,
        title=one_line(title or "") or None,
        published_at=as_utc(created) if isinstance(created, datetime) else None,
    )


def _require_zip(data: bytes, name: str, app: str, suffix: str) -> None:
    if data.startswith(_ZIP_MAGIC) and zipfile.is_zipfile(io.BytesIO(data)):
        return
    if data.startswith(_OLE_MAGIC):
        raise CorruptDocument(
            f"{name}: a password-protected or legacy (97-2003) {app} file, not {suffix}: "
            f"remove the password or save it as {suffix} in {app}, then ingest again"
        )
    raise CorruptDocument(
        f"{name}: not a {suffix} file (not a zip package); it is damaged or "
        f"renamed: save it as {suffix} in {app} and ingest again"
    )


def _docx_text(document: Document) -> str:
    blocks: list[tuple[str, str]] = []  # (kind, text); kind decides the separator
    for block in _iter_blocks(document, document.element.body):
        if isinstance(block, Table):
            if rows := _table_lines(block):
                blocks.append(("table", "\n".join(rows)))
        elif rendered := _paragraph(block):
            blocks.append(rendered)
    parts: list[str] = []
    for i, (kind, text) in enumerate(blocks):
        if i:
            parts.append("\n" if kind == "list" and blocks[i - 1][0] == "list" else "\n\n")
        parts.append(text)
    return "".join(parts)


def _iter_blocks(document: Document, parent: object) -> Iterator[Paragraph | Table]:
    for child in parent.iterchildren():  # type: ignore[attr-defined]
        if child.tag == _BODY_P:
            yield Paragraph(child, document)
        elif child.tag == _BODY_TBL:
            yield Table(child, document)
        elif child.tag == _BODY_SDT:  # a content control wraps ordinary paragraphs and tables
            for content in child.iterchildren(_SDT_CONTENT):
                yield from _iter_blocks(document, content)


def _paragraph(paragraph: Paragraph) -> tuple[str, str] | None:
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    if style == "Title" or (heading := _HEADING_STYLE.match(style)):
        text = one_line(paragraph.text)
        level = 1 if style == "Title" else int(heading.group(1)) if heading else 1
        return ("heading", "#" * level + " " + text) if text else None
    text = paragraph.text.strip()
    if not text:
        return None
    numbered = bool(paragraph._p.xpath("./w:pPr/w:numPr"))
    if style.startswith("List") or numbered:
        levels = paragraph._p.xpath("./w:pPr/w:numPr/w:ilvl/@w:val")
        level = min(int(levels[0]), 8) if levels and str(levels[0]).isdigit() else 0
        return "list", "  " * level + "- " + one_line(text)
    return "paragraph", text


def _table_lines(table: Table) -> list[str]:
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:  # a horizontally merged cell repeats once per grid column
                continue
            previous = cell._tc
            cells.append(one_line(cell.text))
        rows.append(cells)
    lines, _ = table_lines(rows)
    return lines
