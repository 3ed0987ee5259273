"""Parsers turn bytes into canonical page text, or fail with an error a user can act on."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from docx.document import Document as DocxDocument
from docx.oxml import parse_xml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.errors import CorruptDocument, IngestError, UnsupportedFormat
from strongroom.ingest.parsers import parse, supported_suffixes
from strongroom.ingest.parsers.pdf import parse_pdf_date
from strongroom.types import ParsedDocument
from tests.ingest.office_fixtures import docx_bytes, xlsx_bytes, zip_bytes
from tests.ingest.pdf_fixtures import make_pdf

SEC10Q = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "sec10q" / "docs"
_NOT_CANONICAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\r\ufffe]|[ \t]\n|[ \t]$")


def corpus_pdf(name: str) -> bytes:
    path = SEC10Q / name
    if not path.is_file():
        pytest.skip(f"sec10q corpus not available at {SEC10Q} (shared checkout only)")
    return path.read_bytes()


def assert_canonical(document: ParsedDocument) -> None:
    """What the chunker relies on: 1-based consecutive pages of normalised text."""
    assert [page.number for page in document.pages] == list(range(1, len(document.pages) + 1))
    for page in document.pages:
        assert not _NOT_CANONICAL.search(page.text), repr(page.text[:200])
        assert "\n\n\n\n" not in page.text


# --- dispatch -------------------------------------------------------------------------------


def test_supported_suffixes_are_the_documented_ones() -> None:
    assert supported_suffixes() == {
        ".pdf",
        ".docx",
        ".xlsx",
        ".html",
        ".htm",
        ".md",
        ".markdown",
        ".txt",
        ".csv",
    }


@pytest.mark.parametrize("name", ["deck.pptx", "scan.tiff", "archive.tar.gz", "README"])
def test_unsupported_suffix_names_the_supported_types(name: str) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        parse(b"anything", name)
    message = str(caught.value)
    assert message.startswith(name)
    assert all(suffix in message for suffix in supported_suffixes())


def test_suffix_is_case_insensitive_and_name_may_be_a_path() -> None:
    assert parse(b"hello", "C:\\Reports\\NOTES.TXT").pages[0].text == "hello"
    assert parse(b"# Title\n", "inbox/2024/q3.Markdown").title == "Title"


@pytest.mark.parametrize("suffix", sorted(supported_suffixes()))
@pytest.mark.parametrize("data", [b"", b"  \r\n\t "], ids=["zero-bytes", "whitespace"])
def test_empty_file_is_an_empty_document(suffix: str, data: bytes) -> None:
    with pytest.raises(CorruptDocument, match="empty document"):
        parse(data, f"empty{suffix}")


# --- PDF ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aapl() -> ParsedDocument:
    return parse(corpus_pdf("2022 Q3 AAPL.pdf"), "2022 Q3 AAPL.pdf")


def test_sec10q_pdf_keeps_table_rows_on_one_line(aapl: ParsedDocument) -> None:
    assert len(aapl.pages) == 28
    assert "Total net sales 82,959 81,434 304,182 282,457" in aapl.pages[3].text.split("\n")
    assert aapl.media_type == "application/pdf"
    assert_canonical(aapl)


def test_sec10q_pdf_metadata(aapl: ParsedDocument) -> None:
    assert aapl.published_at == datetime(2022, 7, 29, 6, 3, 21, tzinfo=timezone(timedelta(hours=-4)))
    assert aapl.published_at.date() == date(2022, 7, 29)
    assert aapl.title is None  # the Info Title is the accession number 0000320193-22-000070
    assert aapl.metadata["pdf.subject"] == "Form 10-Q filed on 2022-07-29 for the period ending 2022-06-25"
    assert set(aapl.metadata) == {"pdf.subject", "pdf.author", "pdf.keywords", "pdf.producer"}


def test_sec10q_pdf_line_end_hyphens_become_hyphens() -> None:
    document = parse(corpus_pdf("2022 Q3 AMZN.pdf"), "2022 Q3 AMZN.pdf")
    assert len(document.pages) == 50
    assert "stock-based compensation forfeiture rates" in document.pages[6].text
    assert document.title is None
    assert_canonical(document)


def test_sec10q_pdf_descriptive_title_is_kept() -> None:
    document = parse(corpus_pdf("2022 Q3 MSFT.pdf"), "2022 Q3 MSFT.pdf")
    assert document.title == "Form 10-Q for Microsoft Corp filed 10/24/2022"


def test_pdf_pages_text_and_info() -> None:
    data = make_pdf(
        ["Revenue 1,234\nNet (loss) (5)", "", "Outlook"],
        {"Title": "Quarterly report", "CreationDate": "D:20240102030405", "Author": "Risk team"},
    )
    document = parse(data, "q.pdf")
    assert [(page.number, page.text) for page in document.pages] == [
        (1, "Revenue 1,234\nNet (loss) (5)"),
        (2, ""),
        (3, "Outlook"),
    ]
    assert document.title == "Quarterly report"
    assert document.published_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert dict(document.metadata) == {"pdf.author": "Risk team"}


@pytest.mark.parametrize(
    ("title", "kept"),
    [
        ("0000320193-22-000070", False),
        ("20220729", False),
        ("12-34/56", False),
        ("Q3-report", True),
        ("Annual Report 2023", True),
        ("", False),
    ],
)
def test_pdf_identifier_titles_are_dropped(title: str, kept: bool) -> None:
    document = parse(make_pdf(["x"], {"Title": title} if title else None), "t.pdf")
    assert document.title == (title if kept else None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("D:20220729060321-04'00'", datetime(2022, 7, 29, 6, 3, 21, tzinfo=timezone(timedelta(hours=-4)))),
        ("D:20220729060321+05'30", datetime(2022, 7, 29, 6, 3, 21, tzinfo=timezone(timedelta(hours=5.5)))),
        ("D:20220729060321Z", datetime(2022, 7, 29, 6, 3, 21, tzinfo=UTC)),
        ("D:2022", datetime(2022, 1, 1, tzinfo=UTC)),
        ("20220729", datetime(2022, 7, 29, tzinfo=UTC)),
        ("D:20221399000000", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_pdf_dates(raw: str, expected: datetime | None) -> None:
    assert parse_pdf_date(raw) == expected


def test_encrypted_pdf_says_decrypt_it() -> None:
    data = make_pdf(["Secret numbers 42"], user_password="secret")
    opened = pdfium.PdfDocument(data, password="secret")  # the fixture is a real encrypted PDF
    try:
        assert opened[0].get_textpage().get_text_range() == "Secret numbers 42"
    finally:
        opened.close()
    with pytest.raises(CorruptDocument, match=r"encrypted\.pdf: encrypted PDF.*qpdf --decrypt"):
        parse(data, "encrypted.pdf")


def test_permission_only_encryption_still_parses() -> None:
    data = make_pdf(["Open but restricted"], user_password="")
    assert parse(data, "restricted.pdf").pages[0].text == "Open but restricted"


def test_zero_page_pdf() -> None:
    with pytest.raises(CorruptDocument, match="zero pages"):
        parse(make_pdf([]), "blank.pdf")


def test_pdf_without_text_needs_ocr() -> None:
    with pytest.raises(CorruptDocument, match="no extractable text: scanned images need OCR first"):
        parse(make_pdf(["", ""]), "scan.pdf")


@pytest.mark.parametrize(
    "data",
    [
        make_pdf(["Revenue"])[:150],
        make_pdf(["Revenue"])[:-60],
        b"%PDF-1.7\n" + bytes(range(256)) * 4,
    ],
    ids=["truncated", "truncated-xref", "garbage"],
)
def test_damaged_pdf(data: bytes) -> None:
    with pytest.raises(CorruptDocument, match=r"damaged or truncated PDF.*download or export it again"):
        parse(data, "bad.pdf")


def test_truncated_sec10q_pdf() -> None:
    data = corpus_pdf("2022 Q3 AAPL.pdf")
    with pytest.raises(CorruptDocument, match="damaged or truncated"):
        parse(data[: len(data) // 2], "2022 Q3 AAPL.pdf")


@pytest.mark.parametrize("data", [b"<html>404 Not Found</html>", b"PK\x03\x04 a zip", b"hello %PDF"[:5]])
def test_pdf_suffix_with_other_bytes(data: bytes) -> None:
    with pytest.raises(CorruptDocument, match="not a PDF"):
        parse(data, "report.pdf")


# --- DOCX -----------------------------------------------------------------------------------


def _credit_memo(document: DocxDocument) -> None:
    document.add_heading("Credit Memo", level=0)
    document.add_heading("Summary", level=1)
    document.add_paragraph("The borrower requests a  facility.")
    document.add_paragraph("Strong cash flow", style="List Bullet")
    document.add_paragraph("Low leverage", style="List Bullet 2")
    table = document.add_table(rows=3, cols=3)
    for row, values in enumerate([("Metric", "2022", "2023"), ("Revenue", "82,959", "81,434")]):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    table.cell(2, 0).merge(table.cell(2, 2)).text = "Audited by\nKPMG"
    document.add_heading("Risks", level=2)
    document.add_paragraph("")
    document.add_paragraph("FX exposure.")
    document.core_properties.title = "Memo 7"
    document.core_properties.subject = "Credit"
    document.core_properties.created = datetime(2023, 5, 1, 9, 30)


def test_docx_renders_headings_lists_and_tables_in_order() -> None:
    document = parse(docx_bytes(_credit_memo), "memo.docx")
    assert document.pages[0].text == (
        "# Credit Memo\n\n"
        "# Summary\n\n"
        "The borrower requests a  facility.\n\n"
        "- Strong cash flow\n"
        "- Low leverage\n\n"
        "Metric | 2022 | 2023\n"
        "Revenue | 82,959 | 81,434\n"
        "Audited by KPMG\n\n"
        "## Risks\n\n"
        "FX exposure."
    )
    assert document.title == "Memo 7"
    assert document.published_at == datetime(2023, 5, 1, 9, 30, tzinfo=UTC)
    assert document.metadata["docx.subject"] == "Credit"
    assert document.media_type.endswith("wordprocessingml.document")
    assert_canonical(document)


def test_docx_text_inside_content_controls_is_kept() -> None:
    def build(document: DocxDocument) -> None:
        document.add_paragraph("Before")
        document.element.body.insert(
            1,
            parse_xml(
                '<w:sdt xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
                "<w:sdtContent><w:p><w:r><w:t>Inside a control</w:t></w:r></w:p></w:sdtContent></w:sdt>"
            ),
        )
        document.add_paragraph("After")

    assert parse(docx_bytes(build), "form.docx").pages[0].text == "Before\n\nInside a control\n\nAfter"


def test_docx_without_text_is_empty() -> None:
    with pytest.raises(CorruptDocument, match="empty document"):
        parse(docx_bytes(), "blank.docx")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"plain text, not a package", "not a .docx file"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "password-protected or legacy"),
        (zip_bytes({"hello.txt": b"hi"}), "not a readable Word document"),
        (xlsx_bytes({"S": [["a"]]}), "not a readable Word document"),
        (docx_bytes(_credit_memo)[:3000], "not a .docx file|not a readable Word document"),
    ],
    ids=["not-zip", "ole", "other-zip", "xlsx-as-docx", "truncated"],
)
def test_bad_docx(data: bytes, message: str) -> None:
    with pytest.raises(CorruptDocument, match=message) as caught:
        parse(data, "memo.docx")
    assert "save it as .docx" in str(caught.value) or "remove the password" in str(caught.value)


# --- XLSX -----------------------------------------------------------------------------------


def test_xlsx_one_page_per_non_empty_sheet() -> None:
    data = xlsx_bytes(
        {
            "Income": [
                ["Item", "Q3 2022", "Period end", None],
                ["Total net sales", 82959.0, datetime(2022, 6, 25), None],
                [None, None, None],
                ["Margin", 0.1 + 0.2, date(2022, 6, 25), "  two\nlines "],
                ["Flag", True, None, None],
            ],
            "Empty": [],
            "Notes": [[None, "Unaudited"], [None, 12.5]],
        },
        title="Model",
    )
    document = parse(data, "model.xlsx")
    assert [(page.number, page.text) for page in document.pages] == [
        (
            1,
            "# Sheet: Income\nItem | Q3 2022 | Period end\nTotal net sales | 82959 | 2022-06-25\n"
            "Margin | 0.3 | 2022-06-25 | two lines\nFlag | TRUE",
        ),
        (2, "# Sheet: Notes\nUnaudited\n12.5"),
    ]
    assert document.title == "Model"
    assert document.published_at is not None and document.published_at.tzinfo is not None
    assert_canonical(document)


def test_xlsx_with_only_empty_sheets() -> None:
    with pytest.raises(CorruptDocument, match="empty document: no sheet has any rows"):
        parse(xlsx_bytes({"A": [], "B": [[None, None]]}), "blank.xlsx")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Item,Amount\n", "not a .xlsx file"),
        (xlsx_bytes({"S": [["a", 1]]})[:2000], "not a .xlsx file|not a readable Excel workbook"),
        (docx_bytes(_credit_memo), "not a readable Excel workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "password-protected or legacy"),
    ],
    ids=["csv-as-xlsx", "truncated", "docx-as-xlsx", "ole"],
)
def test_bad_xlsx(data: bytes, message: str) -> None:
    with pytest.raises(CorruptDocument, match=message):
        parse(data, "model.xlsx")


# --- CSV ------------------------------------------------------------------------------------


def test_csv_rows_become_lines() -> None:
    data = b'Item,Q3 2022,Q3 2021\r\nTotal net sales,"82,959","81,434"\r\n,,\r\n Services ,19604.0,\r\n'
    document = parse(data, "income.csv")
    assert document.pages[0].text == ("Item | Q3 2022 | Q3 2021\nTotal net sales | 82,959 | 81,434\nServices | 19604.0")
    assert dict(document.metadata) == {"table.rows": "2", "table.columns": "3"}
    assert document.media_type == "text/csv"


def test_csv_dialect_is_sniffed() -> None:
    data = "\ufeffPosition;Betrag\nKredit A;1.234,50\nKredit B;99,00\n".encode()
    assert parse(data, "de.csv").pages[0].text == "Position | Betrag\nKredit A | 1.234,50\nKredit B | 99,00"


def test_csv_in_windows_1252() -> None:
    assert parse("Währung,Kurs\n€,1.08\n".encode("cp1252"), "fx.csv").pages[0].text == ("Währung | Kurs\n€ | 1.08")


def test_csv_without_values() -> None:
    with pytest.raises(CorruptDocument, match="empty document"):
        parse(b",,\n , \n", "blank.csv")


def test_csv_with_binary_data() -> None:
    with pytest.raises(CorruptDocument, match="binary data, not text"):
        parse(b"a,b\n\x00\x01\x02", "dump.csv")


# --- HTML -----------------------------------------------------------------------------------

PAGE = b"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Q3  Results | Bank</title>
<meta property="article:published_time" content="2022-07-28T16:30:00-04:00">
<style>body { color: red }</style><script>var token = "do-not-index";</script></head>
<body><header><h1>Site banner</h1></header><nav><a href="/">Home</a> <a href="/x">Markets</a></nav>
<main><h1>Quarterly   results</h1><p>Revenue <b>rose</b> 4%<br>year on year.</p><!-- a comment -->
<h2>Segments</h2><ul><li>Retail</li><li><p>Wholesale</p></li></ul>
<table><caption>Income statement</caption>
<thead><tr><th>Item</th><th>Q3 2022</th><th>Q3 2021</th></tr></thead>
<tbody><tr><td>Total net sales</td><td>82,<span>959</span></td><td>81,434</td></tr><tr><td></td></tr>
</tbody></table>
<div hidden>invisible</div><noscript>enable javascript</noscript><template><p>template</p></template>
<svg><text>chart label</text></svg><div>Div one</div><div>Div two</div></main>
<footer>Copyright 2022</footer></body></html>"""


def test_html_keeps_structure_and_drops_chrome() -> None:
    document = parse(PAGE, "q3.html")
    assert document.pages[0].text == (
        "# Quarterly results\n\n"
        "Revenue rose 4%\nyear on year.\n\n"
        "## Segments\n\n"
        "- Retail\n- Wholesale\n\n"
        "Income statement\n"
        "Item | Q3 2022 | Q3 2021\n"
        "Total net sales | 82,959 | 81,434\n\n"
        "Div one\nDiv two"
    )
    assert document.title == "Q3 Results | Bank"
    assert document.published_at == datetime(2022, 7, 28, 16, 30, tzinfo=timezone(timedelta(hours=-4)))
    assert document.media_type == "text/html"


def test_html_title_falls_back_to_h1_and_dates_to_dc_date() -> None:
    page = b'<meta name="DC.date" content="2023-03-01"><h1>Rate <i>decision</i></h1><p>Held.</p>'
    document = parse(page, "rates.htm")
    assert document.title == "Rate decision"
    assert document.published_at == datetime(2023, 3, 1, tzinfo=UTC)


def test_html_unparseable_date_is_ignored() -> None:
    page = b'<meta name="date" content="last Tuesday"><p>Text</p>'
    assert parse(page, "a.html").published_at is None


def test_html_declared_charset_is_used() -> None:
    page = '<meta charset="windows-1252"><p>Price: 5 €, Zürich</p>'.encode("cp1252")
    assert parse(page, "a.html").pages[0].text == "Price: 5 €, Zürich"


def test_html_invalid_utf8_is_replaced_not_fatal() -> None:
    assert parse(b"<p>caf\xe9 au lait</p>", "a.html").pages[0].text == "caf\ufffd au lait"


@pytest.mark.parametrize("label", ["no-such-charset", "undefined", "rot13"])
def test_html_unusable_charset_label_falls_back_to_utf8(label: str) -> None:
    page = f'<meta charset="{label}"><p>Zürich</p>'.encode()
    assert parse(page, "a.html").pages[0].text == "Zürich"


def test_html_with_thousands_of_unclosed_tags() -> None:
    page = b"<p>" + b"<font><b>x" * 5000 + b"</p>"
    assert parse(page, "old.html").pages[0].text == "x" * 5000


def test_html_tables_nested_beyond_reason() -> None:
    page = b"<table><tr><td>x" * 2000 + b"</td></tr></table>" * 2000
    with pytest.raises(CorruptDocument, match="nested too deeply"):
        parse(page, "nested.html")


def test_html_with_only_scripts_is_empty() -> None:
    with pytest.raises(CorruptDocument, match=r"empty document.*no visible text"):
        parse(b"<html><script>render()</script><nav>Menu</nav></html>", "app.html")


def test_html_with_binary_data() -> None:
    with pytest.raises(CorruptDocument, match="binary data"):
        parse(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.html")


# --- text and Markdown ----------------------------------------------------------------------


def test_txt_form_feeds_split_pages() -> None:
    data = b"Page one\r\nline two   \r\n\fPage two\x07\n\n\n\n\n\nend\f\n"
    document = parse(data, "report.txt")
    assert [(page.number, page.text) for page in document.pages] == [
        (1, "Page one\nline two"),
        (2, "Page two\n\n\nend"),
    ]
    assert document.media_type == "text/plain"


def test_markdown_is_kept_as_written() -> None:
    source = "# Outlook 2024\n\nRates *stay* high.\n\n## Risks\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    document = parse(("\ufeff" + source).encode(), "outlook.md")
    assert document.pages[0].text == source.rstrip("\n")
    assert document.title == "Outlook 2024"
    assert document.media_type == "text/markdown"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("Zürich café".encode("cp1252"), "Zürich café"),
        ("Zürich café".encode("utf-16"), "Zürich café"),
        ("Zürich café".encode("utf-8-sig"), "Zürich café"),
    ],
    ids=["cp1252", "utf-16-bom", "utf-8-bom"],
)
def test_text_encodings(data: bytes, text: str) -> None:
    assert parse(data, "note.txt").pages[0].text == text


@pytest.mark.parametrize("suffix", [".txt", ".md"])
def test_binary_text_file(suffix: str) -> None:
    with pytest.raises(CorruptDocument, match="binary data, not text"):
        parse(b"\x7fELF\x02\x01\x01\x00\x00\x00", f"program{suffix}")


def test_text_in_no_known_encoding() -> None:
    with pytest.raises(CorruptDocument, match=r"neither UTF-8 nor Windows-1252.*re-save it as UTF-8"):
        parse(b"abc \x81\x8d\x90", "odd.txt")


def test_text_of_control_characters_only_is_empty() -> None:
    with pytest.raises(CorruptDocument, match="empty document"):
        parse(b"\x1b\x1b\f\f\x07", "bell.txt")


# --- any bytes ------------------------------------------------------------------------------


@cache
def valid_sample(suffix: str) -> bytes:
    samples: dict[str, Callable[[], bytes]] = {
        ".pdf": lambda: make_pdf(["Total net sales 82,959", "Page two"], {"Title": "T"}),
        ".docx": lambda: docx_bytes(_credit_memo),
        ".xlsx": lambda: xlsx_bytes({"S": [["Item", "Value"], ["Sales", 1.5]]}),
        ".html": lambda: PAGE,
        ".htm": lambda: PAGE,
        ".md": lambda: b"# Title\n\nBody text\n",
        ".markdown": lambda: b"# Title\n\n- item\n",
        ".txt": lambda: b"one\ftwo\n",
        ".csv": lambda: b"a,b\n1,2\n",
    }
    return samples[suffix]()


def _overwrite(draw: st.DrawFn, data: bytes) -> bytes:
    mutable = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if mutable:
            mutable[draw(st.integers(0, len(mutable) - 1))] = draw(st.integers(0, 255))
    return bytes(mutable)


@st.composite
def damaged(draw: st.DrawFn, suffix: str) -> bytes:
    """Arbitrary bytes, or a valid file of the type cut short or with bytes overwritten.

    For the zip formats a damaged XML part is also re-packed into a valid zip, so that the
    XML readers see the damage rather than the zip checksum.
    """
    valid = valid_sample(suffix)
    kinds = ["random", "truncated", "overwritten"] + (["part"] if suffix in (".docx", ".xlsx") else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "random":
        return draw(st.binary(max_size=2048))
    if kind == "truncated":
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if kind == "overwritten":
        return _overwrite(draw, valid)
    with zipfile.ZipFile(io.BytesIO(valid)) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    target = draw(st.sampled_from(sorted(parts)))
    parts[target] = _overwrite(draw, parts[target])[: draw(st.integers(0, len(parts[target])))]
    return zip_bytes(parts)


@pytest.mark.parametrize("suffix", sorted(supported_suffixes()))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_bytes_parse_or_raise_an_ingest_error(suffix: str, data: st.DataObject) -> None:
    payload = data.draw(damaged(suffix))
    try:
        document = parse(payload, f"input{suffix}")
    except IngestError as exc:
        assert str(exc).startswith(f"input{suffix}: ")
        return
    assert document.text_length > 0
    assert_canonical(document)
