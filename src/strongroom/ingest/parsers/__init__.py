"""Document parsers: bytes and a file name in, a :class:`~strongroom.types.ParsedDocument` out.

    parse(data, name)
      ├── .pdf                 pdf.parse_pdf        pypdfium2, one page per PDF page
      ├── .docx                office.parse_docx    python-docx, one page
      ├── .xlsx                office.parse_xlsx    openpyxl, one page per non-empty sheet
      ├── .html .htm           web.parse_html       BeautifulSoup + lxml, one page
      ├── .md .markdown        text.parse_markdown  kept as written, one page
      ├── .txt                 text.parse_txt       pages split on form feeds
      └── .csv                 text.parse_csv       one page, one line per row

The page text is canonical: chunks are exact substrings of it and citations point into it.
Bad input raises :class:`~strongroom.errors.UnsupportedFormat` or
:class:`~strongroom.errors.CorruptDocument` (both :class:`~strongroom.errors.IngestError`)
with a message that says what to do; parsers never log document text. A zip package (of
any suffix) over the :class:`~strongroom.ingest.parsers.limits.ParseLimits` raises
:class:`~strongroom.errors.TooLarge` before it is opened. :func:`parse` runs in the calling
process: for untrusted files use :func:`strongroom.ingest.sandbox.parse_bounded`, which
also bounds time and memory.

    >>> doc = parse(b"# Q3 results\\n\\nRevenue rose 4%.", "q3.md")
    >>> doc.title, doc.pages[0].number
    ('Q3 results', 1)
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from pathlib import PurePosixPath

from strongroom.errors import CorruptDocument, UnsupportedFormat
from strongroom.ingest.parsers.limits import ParseLimits, check_zip
from strongroom.ingest.parsers.office import parse_docx, parse_xlsx
from strongroom.ingest.parsers.pdf import parse_pdf
from strongroom.ingest.parsers.text import parse_csv, parse_markdown, parse_txt
from strongroom.ingest.parsers.web import parse_html
from strongroom.types import ParsedDocument

__all__ = ["ParseLimits", "parse", "parser_version", "supported_suffixes"]

_PARSERS: dict[str, Callable[[bytes, str], ParsedDocument]] = {
    ".pdf": parse_pdf,
    ".docx": parse_docx,
    ".xlsx": parse_xlsx,
    ".html": parse_html,
    ".htm": parse_html,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": parse_txt,
    ".csv": parse_csv,
}


#: the library each parser reads its format with (its installed version is part of the parser's)
_LIBRARIES = {"pdf": "pypdfium2", "office": "python-docx", "web": "beautifulsoup4"}


def parser_version(name: str) -> str:
    """Which parser reads a file named ``name``, and at which versions: strongroom's and its
    library's (e.g. ``pdf.parse_pdf strongroom-0.1.0 pypdfium2-4.30.0``), as lineage keeps it."""
    parser = _PARSERS.get(PurePosixPath(name.replace("\\", "/")).suffix.lower())
    if parser is None:
        return ""
    module = parser.__module__.rsplit(".", 1)[-1]
    parts = [f"{module}.{parser.__name__}", f"strongroom-{_installed('strongroom')}"]
    library = "openpyxl" if parser is parse_xlsx else _LIBRARIES.get(module)
    if library:
        parts.append(f"{library}-{_installed(library)}")
    return " ".join(parts)


def _installed(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def supported_suffixes() -> frozenset[str]:
    """The lower-case file suffixes :func:`parse` accepts, e.g. ``".pdf"``."""
    return frozenset(_PARSERS)


def parse(data: bytes, name: str, limits: ParseLimits | None = None) -> ParsedDocument:
    """Extract the text of one file, choosing the parser by the suffix of ``name``.

    ``name`` is the file name (a path is fine); its suffix is matched case-insensitively and
    the name appears in error messages. The bytes must match the suffix: a ``.pdf`` must
    carry a PDF header and a ``.docx``/``.xlsx`` must be a zip package.

    Raises :class:`UnsupportedFormat` for a suffix no parser handles,
    :class:`CorruptDocument` for bytes that are damaged, encrypted, empty or hold no text,
    and :class:`TooLarge` for a zip package that would expand past ``limits`` (default:
    :class:`ParseLimits`' defaults). Time and memory are not bounded here: see
    :func:`strongroom.ingest.sandbox.parse_bounded`.

    >>> parse(b"a,b\\n1,2\\n", "t.csv").pages[0].text
    'a | b\\n1 | 2'
    """
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    parser = _PARSERS.get(suffix)
    if parser is None:
        what = f"unsupported file type {suffix!r}" if suffix else "no file extension"
        raise UnsupportedFormat(
            f"{name}: {what}; supported: {', '.join(sorted(_PARSERS))}. "
            "Convert it to one of these (e.g. save as PDF) and ingest again"
        )
    if not data.strip():
        raise CorruptDocument(f"{name}: empty document: the file is empty; export or download it again")
    check_zip(data, name, limits or ParseLimits())  # any zip, whatever its suffix says
    document = parser(data, name)
    if not any(page.text.strip() for page in document.pages):
        raise CorruptDocument(f"{name}: empty document: no text could be extracted; check the file")
    return document
