"""The agent's ``filing_table`` tool: rows of a stored filing's tables, each labelled with what
the page says about its figures (the statement, the column periods, the scale), read through
the application layer at the run's clocks.

The document is found as the principal may see it (``find_document``), its tables are read
from its stored page text (``tables``: cells with spans into the page), and only the pages
whose tables hold a row naming the line item are read again (``page``, at most
:data:`MAX_PAGES`) for the words above each table. A row names a line item through the
curated finance vocabulary (``capex`` is "Payments for acquisition of property, plant and
equipment"; a row's most specific item must be the one asked for, so "Cost of revenue" is
not "revenue"), else by holding every word asked (a product, a segment).

    rows = filing_table(ctx, FilingTableArgs(document="2023 Q3 AAPL.pdf", line_item="total net sales"))
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from strongroom.agent.base import Evidence, ToolOutput
from strongroom.errors import QueryError
from strongroom.finance import (
    STATEMENT_NAMES,
    is_period_header,
    items_in,
    periods,
    scale_of,
    statement_of,
    statements_asked,
)
from strongroom.ingest.understand.tables import Cell, Table
from strongroom.service.requests import DocumentView
from strongroom.service.tool_args import FilingTableArgs
from strongroom.service.tool_backends import ToolContext
from strongroom.service.tool_output import Done, clearance_ref, fit
from strongroom.text import tokenize
from strongroom.types import DocumentVersion

__all__ = ["MAX_PAGES", "MAX_ROWS", "LabelledRow", "filing_table", "labelled_rows"]

#: pages read again for the words above their tables, at most
MAX_PAGES = 6
#: rows returned, at most (the best first)
MAX_ROWS = 60
_LOOKBACK_LINES = 60
_GENERIC = frozenset(tokenize("total net other"))
_NO_SCALE = re.compile(r"per share|\bshares\b|%|\bratio\b|\brate\b|\bdays\b|percentage", re.I)


@dataclass(frozen=True)
class LabelledRow:
    """A table row and what labels its figures: ``columns`` (the periods, or a pipe table's
    header names) line up with ``row[1:]``."""

    table: int  # its table's index among the version's tables
    row: tuple[Cell, ...]
    section: str
    columns: tuple[str, ...]
    by_period: bool  # whether ``columns`` are periods
    statement: str | None
    scale: str | None

    @property
    def label(self) -> str:
        return self.row[0].text

    @property
    def figures(self) -> tuple[Cell, ...]:
        return self.row[1:]


def _lines(text: str) -> Iterator[tuple[int, int, str]]:
    pos = 0
    for line in text.split("\n"):
        yield pos, pos + len(line), line.strip()
        pos += len(line) + 1


def labelled_rows(tables: list[tuple[int, Table]], text: str) -> list[LabelledRow]:
    """The rows of ``tables`` (index, table; all on the page whose text is ``text``), each with
    the statement, column periods and scale the page prints above its table. Pure."""
    lines = list(_lines(text))
    out: list[LabelledRow] = []
    for index, table in tables:
        above = [line for line in lines if line[1] <= table.start]
        header: list[tuple[int, int, str]] = []
        for line in reversed(above[-_LOOKBACK_LINES:]):
            if line[2] and is_period_header(line[2]):
                header.append(line)
            elif header:  # the header block above the table ended
                break
        width = max((len(r) - 1 for r in table.rows), default=0)
        found = tuple(periods(" ".join(b for _, _, b in reversed(header)))) if header else ()
        by_period = len(found) == width
        columns = found if by_period else table.header[1:] if len(table.header) == width + 1 else ()
        statement = next((s for _, _, b in reversed(above[-80:]) if (s := statement_of(b))), None)
        scale = scale_of(text[max(0, table.start - 1200) : table.start])
        # a section line ("Net sales:") sits between the header (or the line above the
        # table) and a row, or between two rows
        floor = header[0][1] if header else (above[-2][1] if len(above) > 1 else 0)
        section = ""
        for row in table.rows:
            if not row:
                continue
            between = [b for s, e, b in lines if floor <= s and e <= row[0].start]
            section = next((b.rstrip(":") for b in reversed(between) if b.endswith(":")), section)
            floor = row[-1].end
            row_scale = None if _NO_SCALE.search(row[0].text) else scale
            out.append(LabelledRow(index, row, section, columns, by_period, statement, row_scale))
            if row[0].text.lower().startswith("total"):
                section = ""  # a total closes its section
    return out


class _Wanted:
    """Which labels name a line item (see the module's docstring)."""

    def __init__(self, line_item: str) -> None:
        self.text = " ".join(tokenize(line_item))
        self.items = {i.name for i in items_in(line_item)}
        self.words = frozenset(tokenize(line_item)) - _GENERIC
        self.statements = statements_asked(line_item)

    def score(self, label: str, statement: str | None = None) -> float:
        """3: the label is the line item; 2: its most specific vocabulary item is one asked
        for; 1: it holds every word asked (outside the vocabulary); 0: none. Half a point
        more in a statement the line item names."""
        words = frozenset(tokenize(label))
        if not words:
            return 0.0
        bonus = 0.5 if statement in self.statements else 0.0
        if " ".join(tokenize(label)) == self.text:
            return 3.0 + bonus
        if self.items:
            named = [(max(len(t) for t in i.term_sets if t <= words), i.name) for i in items_in(label)]
            return 2.0 + bonus if named and max(named)[1] in self.items else 0.0
        return 1.0 + bonus if self.words and self.words <= words else 0.0


def _version_of(doc: DocumentView, name: str) -> DocumentVersion:
    """The version ``name`` names (a version id prefix), else the document's current one."""
    if len(name) >= 8 and not doc.document_id.startswith(name):
        found = [v for v in doc.versions if v.id.startswith(name)]
        if len(found) == 1:
            return found[0]
    return doc.current


def _pages_to_read(tables: list[tuple[int, Table]], wanted: _Wanted | None) -> list[int]:
    """The pages whose text is read, in page order: those of ``tables`` (for one page), or the
    :data:`MAX_PAGES` whose tables' first cells best name the line item."""
    if wanted is None:
        return sorted({t.page for _, t in tables})[:MAX_PAGES]
    best: dict[int, float] = {}
    for _, table in tables:
        score = max((wanted.score(row[0].text) for row in table.rows if row), default=0.0)
        if score > 0:
            best[table.page] = max(score, best.get(table.page, 0.0))
    return sorted(sorted(best, key=lambda p: (-best[p], p))[:MAX_PAGES])


def _row_text(row: LabelledRow, statement: str | None) -> str:
    """The row as the page prints it, then what labels its figures (statement, scale, the
    columns), so a citation check knows that "81,797" is in millions."""
    labels = [statement or "", f"in {row.scale}" if row.scale else "", "; ".join(row.columns)]
    said = ", ".join(label for label in labels if label)
    cells = " ".join(c.text for c in row.figures)
    return f"{row.label} {cells}" + (f" ({said})" if said else "")


def filing_table(ctx: ToolContext, args: FilingTableArgs) -> Done:
    """Rows of a filing's tables: those naming ``line_item`` (on ``page`` if given), or every
    row of the tables on ``page``, labelled by statement, period and scale."""
    view = ctx.view()
    doc = ctx.backend.find_document(ctx.principal, args.document, view)
    version = _version_of(doc, args.document)
    if args.page > version.pages:
        raise QueryError(f"page {args.page}: {version.name} has {version.pages} pages")
    tables = list(enumerate(ctx.backend.tables(ctx.principal, doc.document_id, version.id, view).tables))
    tables = [(i, t) for i, t in tables if not args.page or t.page == args.page]
    wanted = _Wanted(args.line_item) if args.line_item else None
    pages = _pages_to_read(tables, wanted)
    found: list[tuple[float, LabelledRow]] = []
    for page in pages:
        text = ctx.backend.page(ctx.principal, doc.document_id, version.id, page, view).text
        for row in labelled_rows([(i, t) for i, t in tables if t.page == page], text):
            score = 1.0 if wanted is None else wanted.score(row.label, row.statement)
            if score > 0:
                found.append((score, row))
    found.sort(key=lambda f: (-f[0], f[1].row[0].page, f[1].row[0].start))
    rows: list[object] = []
    evidence: list[Evidence] = []
    for _, row in found[:MAX_ROWS]:
        key = "period" if row.by_period else "column"
        names = row.columns if len(row.columns) == len(row.figures) else ("",) * len(row.figures)
        values = [{key: name or None, "value": c.text} for name, c in zip(names, row.figures, strict=True)]
        statement = STATEMENT_NAMES.get(row.statement or "")
        page = row.row[0].page
        rows.append(
            {"page": page, "table": row.table, "label": row.label, "section": row.section or None}
            | {"statement": statement, "scale": row.scale, "values": values}
        )
        ref = {"document_id": doc.document_id, "version_id": version.id, "source": version.source, "page": page}
        ref |= {"table": row.table, "start": row.row[0].start, "end": row.row[-1].end, **clearance_ref(version)}
        evidence.append(Evidence("table", ref, _row_text(row, statement), tuple(c.text for c in row.figures)))
    content: dict[str, object] = {
        "document": version.name,
        "document_id": doc.document_id,
        "version_id": version.id,
        "title": version.title,
        "rows": rows,
        "matched": len(found),
        "as_of": ctx.as_of.isoformat(),
        "known_at": ctx.known_at.isoformat(),
    }
    if not found:
        what = f"names {args.line_item!r}" if args.line_item else "is in a table"
        content["note"] = f"no row {what}{f' on page {args.page}' if args.page else ''}; try other words or a page"
    elif len(found) > MAX_ROWS:
        content["cut"] = f"only the best {MAX_ROWS} of {len(found)} rows are shown; name the line item or a page"
    content, kept = fit(content, "rows", "rows", "name the line item more exactly, or a page")
    facts: dict[str, object] = {"document_id": doc.document_id, "version_id": version.id, "pages": pages}
    shown = evidence[:kept]
    if not shown:  # the title and ids still come from the version: they carry its clearance
        ref = {"document_id": doc.document_id, "version_id": version.id, "source": version.source}
        shown = [Evidence("document", {**ref, **clearance_ref(version)}, f"{version.name}: {version.title or ''}")]
    return Done(ToolOutput(content, tuple(shown)), f"{len(found)} rows", facts=facts)
