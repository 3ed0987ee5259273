"""PDF adapter over pypdfium2: one :class:`Page` per PDF page, text as pdfium lays it out.

pdfium keeps a table row on one line ("Total net sales 82,959 81,434 304,182 282,457"),
which is what financial questions are answered from, so the text is only normalised,
never re-flowed. pypdf and PyMuPDF are deliberately not used (licences).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from strongroom.errors import CorruptDocument
from strongroom.ingest.parsers._common import normalize_text
from strongroom.types import Page, ParsedDocument, frozen_meta

MEDIA_TYPE = "application/pdf"
#: pdfium keeps global state and is not thread-safe: every call into it in a process holds this.
#: (A sandbox child runs one job on one thread; the lock matters for in-process callers.)
PDFIUM_LOCK = threading.Lock()

# Readers accept the header anywhere in the first KiB; some servers prepend a few bytes.
_HEADER_WINDOW = 1024
_META_KEYS = {
    "Subject": "pdf.subject",
    "Author": "pdf.author",
    "Keywords": "pdf.keywords",
    "Producer": "pdf.producer",
}
_ACCESSION = re.compile(r"^\d{10}-\d{2}-\d{6}$")
_PDF_DATE = re.compile(
    r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?"
    r"(?:[Zz]|([+-])(\d{2})'?(?:(\d{2})'?)?)?"
)


def parse_pdf(data: bytes, name: str) -> ParsedDocument:
    """Parse PDF bytes into one page per PDF page (1-based), with Info-dictionary metadata.

    Raises :class:`CorruptDocument` for bytes that are not a PDF, damaged or encrypted
    files, zero pages, and pages without any text layer (scans).
    """
    if b"%PDF" not in data[:_HEADER_WINDOW]:
        raise CorruptDocument(
            f"{name}: not a PDF (no %PDF header); check the file is not an HTML error page "
            "or a renamed file, and download or export it again"
        )
    with PDFIUM_LOCK:
        doc = _open(data, name)
        try:
            pages = tuple(Page(i + 1, _page_text(doc, i)) for i in range(len(doc)))
            info = {key: _clean(doc.get_metadata_value(key)) for key in doc.METADATA_KEYS}
        except pdfium.PdfiumError as exc:
            raise CorruptDocument(
                f"{name}: damaged PDF, a page cannot be read ({exc}); export or download it again"
            ) from exc
        finally:
            doc.close()
    if not any(page.text for page in pages):
        raise CorruptDocument(
            f"{name}: no extractable text: scanned images need OCR first (e.g. ocrmypdf), then ingest the OCR'd PDF"
        )
    return ParsedDocument(
        pages=pages,
        media_type=MEDIA_TYPE,
        title=_title(info.get("Title", "")),
        published_at=parse_pdf_date(info.get("CreationDate", "")),
        metadata=_metadata(info),
    )


def _open(data: bytes, name: str) -> pdfium.PdfDocument:
    # The raw API, because pypdfium2's constructor cannot tell "zero pages" from a stale
    # error code of an earlier failure, and it does not close the zero-page handle.
    # ``data`` outlives the handle: the caller closes the document before returning.
    raw = pdfium_c.FPDF_LoadMemDocument64(data, len(data), None)
    if not raw:
        code = pdfium_c.FPDF_GetLastError()
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise CorruptDocument(
                f"{name}: encrypted PDF (a password is needed to open it): decrypt it "
                "(qpdf --decrypt --password=... in.pdf out.pdf) and ingest again"
            )
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise CorruptDocument(
                f"{name}: PDF protected by an unsupported security handler (certificate or DRM); "
                "ask the publisher for an unprotected copy"
            )
        raise CorruptDocument(f"{name}: damaged or truncated PDF, pdfium cannot read it; download or export it again")
    if pdfium_c.FPDF_GetPageCount(raw) < 1:
        pdfium_c.FPDF_CloseDocument(raw)
        raise CorruptDocument(f"{name}: PDF has zero pages; export it again with its content")
    return pdfium.PdfDocument(raw)


def _page_text(doc: pdfium.PdfDocument, index: int) -> str:
    page = doc[index]
    try:
        textpage = page.get_textpage()
        try:
            text: str = textpage.get_text_range()
        finally:
            textpage.close()
    finally:
        page.close()
    return normalize_text(text)


def _clean(value: str) -> str:
    return " ".join(value.replace("\x00", "").split())


def _title(raw: str) -> str | None:
    """The Info Title, unless it is an identifier such as an EDGAR accession number."""
    if not raw:
        return None
    looks_like_id = (" " not in raw and not any(ch.isalpha() for ch in raw)) or _ACCESSION.match(raw)
    return None if looks_like_id else raw


def _metadata(info: Mapping[str, str]) -> Mapping[str, str]:
    return frozen_meta({meta: info[key] for key, meta in _META_KEYS.items() if info.get(key)})


def parse_pdf_date(raw: str) -> datetime | None:
    """Parse a PDF date such as ``D:20220729060321-04'00'``; UTC when it names no zone.

    Returns None when the value is missing or not a valid date, never raises.

    >>> parse_pdf_date("D:20220729060321-04'00'").isoformat()
    '2022-07-29T06:03:21-04:00'
    """
    match = _PDF_DATE.match(raw.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, sign, tz_hours, tz_minutes = match.groups()
    tz: timezone = UTC
    if sign:
        offset = timedelta(hours=int(tz_hours), minutes=int(tz_minutes or 0))
        if offset >= timedelta(hours=24):
            return None
        tz = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None
