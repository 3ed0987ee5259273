"""HTML adapter over BeautifulSoup + lxml: readable text with Markdown-like structure.

Headings become ``# Heading`` lines (the chunker's section markers), list items ``- item``,
and each table row one ``a | b | c`` line, so a figure stays on the line of its label.
Navigation, scripts, styles and other page chrome are dropped.
"""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

from strongroom.errors import CorruptDocument
from strongroom.ingest.parsers._common import as_utc, normalize_text, one_line, table_lines
from strongroom.types import Page, ParsedDocument

MEDIA_TYPE = "text/html"

_DROP = tuple("script style noscript template svg nav footer header head iframe object".split())
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Blocks set off by a blank line, and blocks that only start a new line.
_PARAGRAPHS = frozenset(
    "p blockquote ul ol dl section article aside figure hr main form fieldset details address".split()
)
_LINES = frozenset("div dt dd figcaption caption summary center body html tr td th option legend".split())
_DATE_KEYS = ("article:published_time", "og:published_time", "dc.date", "dcterms.date", "date")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)
# The HTML standard reads these labels as windows-1252 and ignores a UTF-16 label in a <meta>.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "utf-16": "utf-8",
    "utf-16le": "utf-8",
    "utf-16be": "utf-8",
}


def parse_html(data: bytes, name: str) -> ParsedDocument:
    """Parse an HTML page into one page of text; title from ``<title>`` or the first ``<h1>``.

    ``published_at`` comes from ``article:published_time``, ``og:published_time``,
    ``dc.date`` or ``date`` meta tags when one parses as a date.
    """
    markup = _decode(data, name)
    with warnings.catch_warnings():
        # A short page that looks like a file name or XHTML is still a page to parse.
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(markup, "lxml")
    published_at = _published_at(soup)
    title_tag = soup.find("title")
    title = one_line(title_tag.get_text()) if title_tag is not None else ""
    for tag in soup.find_all(list(_DROP)):
        tag.decompose()
    for tag in soup.find_all(hidden=True):
        tag.decompose()
    out = _Lines()
    try:
        if not title and (h1 := soup.find("h1")) is not None:
            title = _inline(h1)
        _walk(soup, out)
    except RecursionError as exc:  # only tables and headings nested in one another recurse
        raise CorruptDocument(
            f"{name}: HTML nested too deeply to read (tables in tables); save the page as PDF and ingest that"
        ) from exc
    text = normalize_text(out.text())
    if not text:
        raise CorruptDocument(
            f"{name}: empty document: the page has no visible text (a script-rendered page? save the rendered HTML)"
        )
    return ParsedDocument(pages=(Page(1, text),), media_type=MEDIA_TYPE, title=title or None, published_at=published_at)


def _decode(data: bytes, name: str) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    if b"\x00" in data[:8192]:
        raise CorruptDocument(f"{name}: binary data, not HTML; check the file type")
    match = _META_CHARSET.search(data[:4096])
    if match is not None:
        label = match.group(1).decode("ascii").lower()
        try:
            return data.decode(_CHARSET_ALIASES.get(label, label))
        except (LookupError, ValueError):  # UnicodeError is a ValueError
            pass  # a wrong or unknown label: the HTML standard falls back too
    return data.decode("utf-8", "replace")


def _published_at(soup: BeautifulSoup) -> datetime | None:
    found: dict[str, str] = {}
    for meta in soup.find_all("meta"):
        key = meta.get("property") or meta.get("name") or meta.get("itemprop")
        content = meta.get("content")
        if isinstance(key, str) and isinstance(content, str):
            found.setdefault(key.strip().lower(), content)
    for key in _DATE_KEYS:
        if key in found and (when := _parse_date(found[key])) is not None:
            return when
    return None


def _parse_date(raw: str) -> datetime | None:
    raw = raw.strip()
    try:
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        pass
    try:
        return as_utc(parsedate_to_datetime(raw))  # RFC 2822, as in HTTP headers
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class _Lines:
    """Accumulates inline text into lines; blocks end lines or insert one blank line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._inline: list[str] = []
        self.prefix = ""
        self.in_list_item = 0  # inside <li>, blocks only break lines: "- item" stays together

    def inline(self, text: str) -> None:
        self._inline.append(text)

    def newline(self) -> None:
        line = one_line("".join(self._inline))
        self._inline.clear()
        if line:
            self.lines.append(self.prefix + line)
            self.prefix = ""

    def paragraph(self) -> None:
        self.newline()
        if self.lines and self.lines[-1] and not self.in_list_item:
            self.lines.append("")

    def start_list_item(self) -> None:
        self.newline()
        self.prefix = "- "
        self.in_list_item += 1

    def end_list_item(self) -> None:
        self.newline()
        self.prefix = ""
        self.in_list_item -= 1

    def verbatim(self, line: str) -> None:
        self.newline()
        self.lines.append(line)

    def text(self) -> str:
        self.newline()
        return "\n".join(self.lines)


def _walk(root: Tag, out: _Lines) -> None:
    """Render the children of ``root`` into ``out``.

    Iterative, because unclosed ``<font>`` or ``<b>`` tags in old pages nest thousands deep.
    """
    stack: list[PageElement | Callable[[], None]] = list(reversed(root.contents))
    while stack:
        item = stack.pop()
        if not isinstance(item, PageElement):
            item()  # the end of an element whose children are done
        elif isinstance(item, NavigableString):
            if not isinstance(item, PreformattedString):  # comments, doctype, CDATA
                out.inline(str(item))
        elif isinstance(item, Tag):
            descend, on_exit = _enter(item, out)
            if on_exit is not None:
                stack.append(on_exit)
            if descend:
                stack.extend(reversed(item.contents))


def _enter(tag: Tag, out: _Lines) -> tuple[bool, Callable[[], None] | None]:
    """Start rendering ``tag``: whether to walk its children, and what to do after them."""
    name = tag.name
    if name == "br":
        out.newline()
    elif name in _HEADINGS:
        out.paragraph()
        if text := _inline(tag):
            out.verbatim("#" * _HEADINGS[name] + " " + text)
        out.paragraph()
    elif name == "table":
        out.paragraph()
        if (caption := tag.find("caption", recursive=False)) is not None:
            out.verbatim(_inline(caption))
        lines, _ = table_lines(
            [_inline(cell) for cell in row.find_all(["td", "th"], recursive=False)] for row in _rows(tag)
        )
        for line in lines:
            out.verbatim(line)
        out.paragraph()
    elif name == "pre":
        out.paragraph()
        for line in tag.get_text().split("\n"):
            out.verbatim(line)
        out.paragraph()
    elif name == "li":
        out.start_list_item()
        return True, out.end_list_item
    elif name in _PARAGRAPHS:
        out.paragraph()
        return True, out.paragraph
    elif name in _LINES:
        out.newline()
        return True, out.newline
    else:
        return True, None
    return False, None


def _inline(tag: Tag) -> str:
    """The text of an element on one line: headings and table cells."""
    sub = _Lines()
    _walk(tag, sub)
    return one_line(sub.text())


def _rows(table: Tag) -> list[Tag]:
    """The rows of this table in document order, not those of tables nested in its cells."""
    rows: list[Tag] = []
    for child in table.children:
        if not isinstance(child, Tag):
            continue
        if child.name == "tr":
            rows.append(child)
        elif child.name in ("thead", "tbody", "tfoot"):
            rows.extend(tr for tr in child.find_all("tr", recursive=False))
    return rows
