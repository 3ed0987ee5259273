"""Build hostile files for the sandbox tests and benchmarks/hostile_bench.py.

Each builder makes a real file of the kind an attacker would upload: zip bombs that
expand one small package into hundreds of MB of XML, entity ("billion laughs") bombs, a
zip whose header lies about a member's size, a package of many members, a PDF whose
content stream inflates to hundreds of MB, a PDF page that parses at once but takes
minutes to draw, and a spreadsheet a few hundred KB long that the Excel parser turns into
hundreds of millions of cells. Nothing here is simulated.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator

from docx.document import Document as DocxDocument

from tests.ingest.office_fixtures import docx_bytes, xlsx_bytes

MB = 1024 * 1024
_CHUNK = 4 * MB
_LOL = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
ENTITY_DTD = f'<!DOCTYPE lolz [<!ENTITY lol0 "lol">{_LOL}]>'
_SHEET = "xl/worksheets/sheet1.xml"
_DOCUMENT = "word/document.xml"


def _replace(
    package: bytes, member: str, chunks: bytes | Iterable[bytes], *, method: int = zipfile.ZIP_DEFLATED
) -> bytes:
    """``package`` with ``member`` rewritten from ``chunks`` (bytes, or an iterable of bytes)."""
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            if info.filename != member:
                target.writestr(info.filename, source.read(info.filename))
                continue
            entry = zipfile.ZipInfo(member, date_time=info.date_time)
            entry.compress_type = method
            with target.open(entry, "w") as stream:
                for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
                    stream.write(chunk)
    return out.getvalue()


def _repeat(head: bytes, unit: bytes, tail: bytes, size: int) -> Iterator[bytes]:
    block = unit * max(1, _CHUNK // len(unit))
    yield head
    written = 0
    while written < size:
        yield block
        written += len(block)
    yield tail


def _docx_parts() -> tuple[bytes, bytes, bytes]:
    document = zipfile.ZipFile(io.BytesIO(docx_bytes(lambda d: d.add_paragraph("marker")))).read(_DOCUMENT)
    head, tail = document.split(b"<w:body>")
    return docx_bytes(lambda d: d.add_paragraph("marker")), head + b"<w:body>", tail


def zip_bomb_docx(expanded_mb: int = 200) -> bytes:
    """A Word file whose document.xml is ``expanded_mb`` MB of one repeated paragraph
    (the reported attack: 570 KB expanding to 200 MB of XML). Compresses about 1000:1."""
    package, head, tail = _docx_parts()
    unit = b"<w:p><w:r><w:t>" + b"A" * 1000 + b"</w:t></w:r></w:p>"
    return _replace(
        package, _DOCUMENT, _repeat(head, unit, b"</w:body>" + tail.split(b"</w:body>", 1)[1], expanded_mb * MB)
    )


def zip_bomb_xlsx(expanded_mb: int = 200) -> bytes:
    """An Excel file whose first sheet is ``expanded_mb`` MB of one repeated row."""
    package = xlsx_bytes({"S": [["marker", 1]]})
    sheet = zipfile.ZipFile(io.BytesIO(package)).read(_SHEET)
    head, rest = sheet.split(b"<sheetData>")
    tail = rest.split(b"</sheetData>", 1)[1]
    unit = b'<row r="2"><c r="A2" t="n"><v>1</v></c></row>'
    return _replace(package, _SHEET, _repeat(head + b"<sheetData>", unit, b"</sheetData>" + tail, expanded_mb * MB))


def many_members_docx(members: int) -> bytes:
    """A valid Word file padded with ``members`` tiny extra files."""
    source = zipfile.ZipFile(io.BytesIO(docx_bytes(lambda d: d.add_paragraph("marker"))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))
        for i in range(members):
            target.writestr(f"customXml/pad{i}.bin", b"")
    return out.getvalue()


def lying_header_docx(expanded_mb: int = 200, declared: int = 1000) -> bytes:
    """A Word file whose document.xml inflates to ``expanded_mb`` MB while both its local
    and its central-directory header declare ``declared`` bytes, so any check that trusts
    the header passes it."""
    return _declare_size(zip_bomb_docx(expanded_mb), _DOCUMENT, declared)


def bzip2_lying_docx(expanded_mb: int = 200, declared: int = 1000) -> bytes:
    """As :func:`lying_header_docx`, compressed with bzip2, which zipfile inflates in one
    unbounded call (bzip2 packs a run of one byte more than 10,000:1)."""
    package, head, tail = _docx_parts()
    unit = b"<w:p><w:r><w:t>" + b"A" * 1000 + b"</w:t></w:r></w:p>"
    bomb = _repeat(head, unit, b"</w:body>" + tail.split(b"</w:body>", 1)[1], expanded_mb * MB)
    return _declare_size(_replace(package, _DOCUMENT, bomb, method=zipfile.ZIP_BZIP2), _DOCUMENT, declared)


def _declare_size(package: bytes, member: str, declared: int) -> bytes:
    data = bytearray(package)
    archive = zipfile.ZipFile(io.BytesIO(package))
    info = archive.getinfo(member)
    assert data[info.header_offset : info.header_offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, info.header_offset + 22, declared)
    offset = archive.start_dir
    while data[offset : offset + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        if data[offset + 46 : offset + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, offset + 24, declared)
            return bytes(data)
        offset += 46 + name_len + extra_len + comment_len
    raise AssertionError(f"{member} not in the central directory")


def entity_bomb_docx() -> bytes:
    """A Word file whose document.xml declares the billion-laughs entities and uses them."""
    package, head, tail = _docx_parts()
    document = head + b"<w:p><w:r><w:t>marker &lol9;</w:t></w:r></w:p>" + tail
    document = document.replace(b"?>", b"?>" + ENTITY_DTD.encode(), 1)
    return _replace(package, _DOCUMENT, document)


def entity_bomb_xlsx() -> bytes:
    """An Excel file whose sheet declares the billion-laughs entities and uses them."""
    package = xlsx_bytes({"S": [["marker", 1]]})
    sheet = zipfile.ZipFile(io.BytesIO(package)).read(_SHEET)
    return _replace(package, _SHEET, ENTITY_DTD.encode() + sheet.replace(b">marker<", b">marker &lol9;<"))


def entity_bomb_html() -> bytes:
    """XHTML with the billion-laughs entities: 10^9 "lol"s if a parser expanded them."""
    return f'<?xml version="1.0"?>{ENTITY_DTD}<html><body><p>marker &lol9;</p></body></html>'.encode()


def wide_xlsx(rows: int) -> bytes:
    """A valid workbook of ``rows`` rows that each hold one number in the last column (XFD):
    a few hundred KB that the parser expands to 16,384 cells a row (200 KB for 20,000 rows:
    about 30 s and several GB in-process). Both slow and a memory hog."""
    package = xlsx_bytes({"S": [["marker", 1]]})
    sheet = zipfile.ZipFile(io.BytesIO(package)).read(_SHEET)
    head, rest = sheet.split(b"<sheetData>")
    tail = rest.split(b"</sheetData>", 1)[1]
    body = b"".join(b'<row r="%d"><c r="XFD%d"><v>%d</v></c></row>' % (i, i, i) for i in range(1, rows + 1))
    return _replace(
        package, _SHEET, head.replace(b'ref="A1:B1"', b'ref="A1"') + b"<sheetData>" + body + b"</sheetData>" + tail
    )


def pdf_content_bomb(expanded_mb: int = 500) -> bytes:
    """A one-page PDF whose content stream (FlateDecode) inflates to ``expanded_mb`` MB of
    text-drawing operators; about 1 MB on disk for 500 MB."""
    line = b"BT /F1 12 Tf 72 720 Td (0123456789 abcdefghij) Tj ET\n"
    compressor = zlib.compressobj(9)
    block = line * (_CHUNK // len(line))
    parts = [compressor.compress(block) for _ in range(max(1, expanded_mb * MB // len(block)))]
    return _one_page_pdf(b"".join(parts) + compressor.flush())


def pdf_render_stall(fills: int = 200_000) -> bytes:
    """A one-page PDF that parses in milliseconds (one line of text) but stalls a renderer:
    ``fills`` full-page rectangles, each filled in turn; about 9 KB, minutes to draw."""
    content = b"BT /F1 12 Tf 72 720 Td (Quarterly figures) Tj ET\n" + b"0 0 612 792 re f\n" * fills
    return _one_page_pdf(zlib.compress(content, 9))


def _one_page_pdf(stream: bytes) -> bytes:
    """A one-page PDF (Helvetica as /F1) whose content is ``stream``, FlateDecode'd."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def long_docx(pages: int = 200) -> bytes:
    """A genuine long report: per page a heading, eight paragraphs and a 10x5 table."""
    words = "revenue increased quarter fiscal operating income net loss tax share million segment".split()

    def build(document: DocxDocument) -> None:
        for page in range(pages):
            document.add_heading(f"Section {page}", 1)
            for paragraph in range(8):
                text = " ".join(words[(page * 7 + paragraph * 3 + i) % len(words)] for i in range(60))
                document.add_paragraph(f"{page}.{paragraph} {text}")
            table = document.add_table(rows=10, cols=5)
            for r, row in enumerate(table.rows):
                for c, cell in enumerate(row.cells):
                    cell.text = str(page * 1000 + r * 10 + c)

    return docx_bytes(build)
