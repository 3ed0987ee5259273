"""Tables as data: header, rows and cells with their page and character span.

Two shapes are recognised in parsed page text:

* **pipe tables**: what the DOCX, HTML, XLSX and CSV parsers (and Markdown) write, one
  ``a | b | c`` line per row, the first row being the header;
* **figure tables**: what a PDF statement becomes, a label followed by two or more
  figures per line (``Services 21,213 19,604 62,886``); the PDF text carries no header
  cells, so the header is empty and the columns are numbered.

Every cell's ``start``/``end`` index the page text, so a computed figure can be cited.
Figures are also parsed (``(265)`` is -265, ``$ 1.27`` is 1.27, ``—`` is absent).

    >>> from strongroom.types import Page, ParsedDocument
    >>> doc = ParsedDocument((Page(1, "item | q1\\nRevenue | 100\\nCosts | 50"),), "text/csv")
    >>> t = extract_tables(doc)[0]
    >>> t.header, [c.number for c in t.column(1)]
    (('item', 'q1'), [100.0, 50.0])
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from strongroom.types import ParsedDocument

__all__ = ["Cell", "Table", "extract_tables", "figure_row", "parse_figure", "pipe_cells"]


@dataclass(frozen=True)
class Cell:
    """One cell: its text, its figure when it is one, and where it is (page, characters)."""

    text: str
    row: int
    col: int
    page: int
    start: int
    end: int
    number: float | None = None


@dataclass(frozen=True)
class Table:
    """A table on one page: ``header`` texts (empty when the source has none) and rows of cells."""

    page: int
    start: int
    end: int
    kind: str
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    @property
    def columns(self) -> int:
        return max((len(r) for r in self.rows), default=len(self.header))

    def column(self, index: int) -> list[Cell]:
        """The cells of column ``index`` (0-based) in the body rows that have one."""
        return [r[index] for r in self.rows if len(r) > index]

    def as_dict(self, *, cells: bool = False) -> dict[str, object]:
        """The table as a record; ``cells``: with each cell's text, figure, page and span."""
        found: dict[str, object] = {
            "page": self.page,
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "header": list(self.header),
            "rows": [[c.text for c in row] for row in self.rows],
        }
        if cells:
            found["cells"] = [
                [{"text": c.text, "number": c.number, "page": c.page, "start": c.start, "end": c.end} for c in row]
                for row in self.rows
            ]
        return found

    def records(self) -> list[dict[str, str]]:
        """The body rows as records keyed by column: its header text, else its number (a
        repeated header text gets its number too)."""
        names = [self.header[i] if i < len(self.header) else "" for i in range(self.columns)]
        keys = [n if n and names.count(n) == 1 else f"{n} ({i})" if n else str(i) for i, n in enumerate(names)]
        return [{k: c.text for k, c in zip(keys, row, strict=False)} for row in self.rows]

    def summary(self) -> dict[str, object]:
        """Where the table is, its kind and size, and its first row's texts."""
        first = [c.text for c in self.rows[0]] if self.rows else []
        return {"page": self.page, "kind": self.kind, "rows": len(self.rows), "columns": self.columns, "first": first}


def parse_figure(text: str) -> float | None:
    """A figure as printed in a statement: ``1,234`` 1234.0, ``(265)`` -265.0, ``$ 1.27`` 1.27, ``12%`` 12.0."""
    t = text.strip().replace("$", "").replace("€", "").replace("£", "").replace(" ", "")
    negative = t.startswith("(") and t.endswith(")")
    t = t.strip("()").rstrip("%").replace(",", "")
    try:
        value = float(t)
    except ValueError:
        return None
    return -value if negative else value


def _lines(text: str) -> Iterator[tuple[int, str]]:
    pos = 0
    for line in text.split("\n"):
        yield pos, line
        pos += len(line) + 1


def pipe_cells(line: str, offset: int) -> list[tuple[str, int, int]]:
    """The cells of an ``a | b | c`` line as ``(text, start, end)``, offsets from ``offset``."""
    cells = []
    pos = 0
    for part in line.split("|"):
        stripped = part.strip()
        lead = len(part) - len(part.lstrip())
        cells.append((stripped, offset + pos + lead, offset + pos + lead + len(stripped)))
        pos += len(part) + 1
    if line.strip().startswith("|"):
        cells = cells[1:]
    if line.strip().endswith("|"):
        cells = cells[:-1]
    return cells


_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
# A label, then two or more figures separated by spaces (a "$" may stand apart from its figure).
_FIGURE_TOKEN = re.compile(r"(?:[$€£]\s?)?\(?-?\d[\d,]*(?:\.\d+)?\)?%?|(?<=\s)[—\u2013](?=\s|$)")


def figure_row(line: str, offset: int) -> tuple[tuple[str, int, int], list[tuple[str, int, int]]] | None:
    """A statement line split into its label and its figures, each ``(text, start, end)``
    with offsets from ``offset``; None unless the line is a label then two or more figures."""
    matches = list(_FIGURE_TOKEN.finditer(line))
    if len(matches) < 2:
        return None
    # the figures must be the tail of the line, the label its head
    tail_start = matches[0].start()
    i = len(matches) - 1
    while i > 0 and not line[matches[i - 1].end() : matches[i].start()].strip():
        i -= 1
    if i > 0 and line[matches[i - 1].end() : matches[i].start()].strip():
        matches = matches[i:]
        tail_start = matches[0].start()
    if len(matches) < 2 or line[matches[-1].end() :].strip():
        return None
    label = line[:tail_start].rstrip()
    if not label or not re.search(r"[A-Za-z]", label):
        return None
    cells = [(m.group(), offset + m.start(), offset + m.end()) for m in matches]
    return (label.strip(), offset + len(line) - len(line.lstrip()), offset + len(label)), cells


def _pipe_tables(text: str, page: int) -> list[Table]:
    tables: list[Table] = []
    block: list[list[tuple[str, int, int]]] = []
    bounds: list[tuple[int, int]] = []

    def flush() -> None:
        if len(block) >= 2:
            header = tuple(c[0] for c in block[0])
            rows = tuple(
                tuple(Cell(t, r, c, page, s, e, parse_figure(t)) for c, (t, s, e) in enumerate(cells))
                for r, cells in enumerate(block[1:])
            )
            tables.append(Table(page, bounds[0][0], bounds[-1][1], "pipe", header, rows))
        block.clear()
        bounds.clear()

    for offset, line in _lines(text):
        if _SEPARATOR.match(line) and block:
            continue
        if " | " in line or (line.strip().startswith("|") and line.count("|") >= 2):
            cells = pipe_cells(line, offset)
            if len(cells) >= 2:
                block.append(cells)
                bounds.append((offset, offset + len(line)))
                continue
        flush()
    flush()
    return tables


def _figure_tables(text: str, page: int, min_rows: int = 3) -> list[Table]:
    tables: list[Table] = []
    rows: list[tuple[tuple[str, int, int], list[tuple[str, int, int]]]] = []
    gap = 0

    def flush() -> None:
        if len(rows) >= min_rows:
            width = Counter(len(cells) for _, cells in rows).most_common(1)[0][0]
            kept = [r for r in rows if len(r[1]) == width]
            if len(kept) >= min_rows:
                body = tuple(
                    (
                        Cell(label[0], r, 0, page, label[1], label[2]),
                        *(Cell(t, r, c + 1, page, s, e, parse_figure(t)) for c, (t, s, e) in enumerate(cells)),
                    )
                    for r, (label, cells) in enumerate(kept)
                )
                tables.append(Table(page, kept[0][0][1], kept[-1][1][-1][2], "figures", (), body))
        rows.clear()

    for offset, line in _lines(text):
        if " | " in line:
            flush()
            continue
        row = figure_row(line, offset)
        if row is not None:
            rows.append(row)
            gap = 0
        elif rows and gap < 2 and len(line) < 80:
            gap += 1  # a section line ("Operating expenses:") inside the table
        else:
            flush()
            gap = 0
    flush()
    return tables


def extract_tables(parsed: ParsedDocument) -> list[Table]:
    """All pipe tables and figure tables, page by page, in reading order."""
    found: list[Table] = []
    for page in parsed.pages:
        tables = _pipe_tables(page.text, page.number) + _figure_tables(page.text, page.number)
        found.extend(sorted(tables, key=lambda t: t.start))
    return found
