"""Answers from table cells: the rows of the retrieved statements that name what the
question asks for, labelled by line item, period and unit, each cited to its characters.

Most financial questions ask for a line item in a period. The retrieved chunks hold the
statement rows ("Total net sales 81,797 82,959 293,787 304,182"); what a reader needs is
what each figure is, which the page prints above the row: the statement's title, its
column periods ("Three Months Ended ... July 1, 2023 ...") and its scale ("In millions").
This module reads them from the page, matches row labels to the question through the
curated synonyms of :mod:`strongroom.finance`, and writes one claim per table:

    Total net sales (2023 Q3 AAPL, income statement, in millions): three months ended
    July 1, 2023: 81,797; three months ended June 25, 2022: 82,959; ... Change, three
    months ended July 1, 2023 vs June 25, 2022: 81,797 - 82,959 = -1,162 (-1.4%).

Computed values (a change, a share of a total) show their inputs and the formula, in exact
decimals. When no row matches, :func:`figure_claims` returns nothing and the caller falls
back to quoting sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from strongroom.finance import (
    STATEMENT_NAMES,
    is_period_header,
    items_in,
    periods,
    scale_of,
    statement_of,
    statements_asked,
    synonym_terms,
)
from strongroom.ingest.understand.tables import figure_row, pipe_cells
from strongroom.rag.base import cite
from strongroom.text import classify_lines, row_label, tokenize
from strongroom.types import Claim, Hit

__all__ = ["PageReader", "Row", "figure_claims", "kind_asked", "rows_of"]

#: the text of a page of a version, or None (the store's ``page_text``)
PageReader = Callable[[str, int], "str | None"]

_CHANGE = re.compile(
    r"\b(chang|compar|trend|grow|growth|increas|decreas|declin|fluctuat|shift|evolv|vari|differ|move)", re.I
)
_SHARE = re.compile(
    r"\b(proportion|percentage|share of|ratio|portion|fraction|relate|against|measure up|contribut)", re.I
)
_NO_SCALE = re.compile(r"per share|per rsu|\bshares\b|\brate\b|percentage|%|\bratio\b|\bdays\b", re.I)
_LOOKBACK_LINES = 60
_WINDOW = 20_000  # characters of a page read above a chunk
_KINDS = (
    (re.compile(r"\bnine[- ]months?\b|\bfirst three quarters\b|\byear[- ]to[- ]date\b|\bYTD\b", re.I), "nine months"),
    (re.compile(r"\bsix[- ]months?\b|\bfirst half\b|\bhalf[- ]year\b|\bH1\b", re.I), "six months"),
    (re.compile(r"\bquarter(?:ly)?\b|\bthree months\b|\bQ[1-4]\b", re.I), "three months"),
    (re.compile(r"\b(?:fiscal |full[- ])year\b|\bannual\b|\btwelve months\b", re.I), "year"),
)
_CAPITALISED = re.compile(r"\b[A-Z][\w&.'\u2019-]*")
_NOT_NAMES = frozenset(
    """what how which who whom whose when where why did does do is are was were can could has have had in
    for from of the and or to on at by with as compare examine analyze analyse describe explain list
    give show tell please q1 q2 q3 q4 h1 h2 fy ytd yoy qoq 10-q 10-k 8-k r&d sg&a eps pp&e capex ebitda
    gaap ceo cfo us usd eur gbp""".split()
)
# words that qualify a line item without naming one ("Total" alone answers nothing)
_GENERIC = frozenset(tokenize("total net other gross"))
# words that name a period, not a line item ("Balance as of July" is not about July)
_PERIOD_WORDS = frozenset(
    tokenize(
        "january february march april may june july august september october november december "
        "quarter quarters month months year years fiscal ended ending period three six nine twelve"
    )
)


@dataclass(frozen=True)
class Row:
    """A table row of a hit: where it is in the chunk, what it is, its cells and their periods."""

    hit_index: int
    start: int
    end: int
    label: str
    section: str
    cells: tuple[tuple[str, int, int], ...]  # (text, start, end) in the chunk's text
    periods: tuple[str, ...]
    scale: str | None
    statement: str | None
    table: int  # page offset of the table's header (rows of one table share it)


@dataclass(frozen=True)
class _Page:
    text: str  # the page up to the chunk's end, from at most _WINDOW characters before it
    offset: int  # where the chunk's text starts in ``text``
    base: int  # the page offset of ``text[0]``
    lines: list[tuple[int, int, str]]  # (start, end, kind) of the page's lines


def _page_of(hit: Hit, pages: PageReader | None) -> _Page:
    """The text above and of a hit's chunk: from its page when the page still holds the
    chunk at its offsets, else (no reader, or a page that changed) the chunk alone."""
    chunk = hit.chunk
    text = pages(chunk.version_id, chunk.page) if pages else None
    if text is None or text[chunk.char_start : chunk.char_end] != chunk.text:
        text, offset = f"{chunk.context}\n{chunk.text}", len(chunk.context) + 1
        base = chunk.char_start - offset
    else:
        base = max(0, chunk.char_start - _WINDOW)  # a huge page costs no more than its window
        text, offset = text[base : chunk.char_end], chunk.char_start - base
    return _Page(text, offset, base, [(line.start, line.end, line.kind) for line in classify_lines(text)])


def _pipe_header(page: _Page, line_index: int, columns: int) -> tuple[str, ...]:
    """The column names of a pipe table's row: its table's first line, when that is another
    line with as many columns."""
    first = line_index
    while first > 0 and page.lines[first - 1][2] == "row" and "|" in page.text[slice(*page.lines[first - 1][:2])]:
        first -= 1
    if first == line_index:
        return ()
    start, end, _ = page.lines[first]
    names = tuple(t for t, _, _ in pipe_cells(page.text[start:end], start)[1:])
    return names if len(names) == columns and all(names) else ()


def _context(page: _Page, line_index: int) -> tuple[str, str, int, str | None, str | None]:
    """For the row at ``line_index``: its section line, its header's periods text and start,
    the scale and the statement stated above it on the page."""
    section = ""
    header: list[str] = []
    header_start = -1
    lines = page.lines
    stop = max(0, line_index - _LOOKBACK_LINES)
    for i in range(line_index - 1, stop - 1, -1):
        start, end, kind = lines[i]
        body = page.text[start:end]
        if is_period_header(body):
            header.append(body)
            header_start = start
            continue
        if header:  # the header block above the table ended
            break
        if kind != "row" and not section and body.endswith(":"):
            section = body.rstrip(":")
    above = page.text[: header_start if header_start >= 0 else lines[line_index][0]]
    tail = above[-1200:]
    return section, " ".join(reversed(header)), header_start, scale_of(tail), _last_statement(above)


def _last_statement(text: str) -> str | None:
    for line in reversed(text.splitlines()[-80:]):
        found = statement_of(line)
        if found:
            return found
    return None


def rows_of(
    hits: Sequence[Hit], pages: PageReader | None = None, keep: Callable[[Hit], bool] | None = None
) -> list[Row]:
    """Every table row in the hits' chunks (those ``keep`` admits), with what the page says
    about its columns."""
    rows: list[Row] = []
    for i, hit in enumerate(hits):
        if keep is not None and not keep(hit):
            continue  # its page is not even read
        page = _page_of(hit, pages)
        chunk_end = page.offset + len(hit.chunk.text)
        for n, (start, end, kind) in enumerate(page.lines):
            if kind != "row" or start < page.offset or end > chunk_end:
                continue
            line = page.text[start:end]
            if " | " in line or line.startswith("|"):
                parts = pipe_cells(line, start)
                label, cells = (parts[0][0], parts[1:]) if parts else ("", [])
            else:
                split = figure_row(line, start)
                if split is None:
                    continue
                label, cells = split[0][0], split[1]
            if not cells:
                continue
            section, header, header_start, scale, statement = _context(page, n)
            found = periods(header) if header else list(_pipe_header(page, n, len(cells)))
            rows.append(
                Row(
                    i, start - page.offset, end - page.offset, row_label(label) or label, section,
                    tuple((t, s - page.offset, e - page.offset) for t, s, e in cells),
                    tuple(found) if len(found) == len(cells) else (), scale, statement, page.base + header_start,
                )
            )  # fmt: skip
    return rows


def _score(
    row: Row, asked: frozenset[str], expanded: frozenset[str], statements: frozenset[str], title: frozenset[str]
) -> float:
    """How well a row answers: the share of its label the question says (its own words
    count fully, the synonyms of its line items 0.6), its section, statement and rank.
    Words of the document's title (the company) and of periods do not count: a page
    footer "Apple Inc." or a row "Balance as of July" is not what a question is about."""
    label = frozenset(tokenize(row.label)) - _PERIOD_WORDS - title
    if not any(len(t) > 2 and t.isalpha() and t not in _GENERIC for t in label & expanded):
        return 0.0
    own, other = len(label & asked), len(label & (expanded - asked))
    cover = (own + 0.6 * other) / len(label)
    named = any(item.named_by(label) for item in items_in(row.label))
    if cover < 0.5 and not named:
        return 0.0
    section = frozenset(tokenize(row.section))
    return (
        cover
        + (0.3 * len(section & expanded) / len(section) if section else 0.0)
        + (0.3 if row.statement in statements else 0.0)
        + 0.2 / (1 + row.hit_index)
    )


def _number(text: str) -> Decimal | None:
    t = text.replace("$", "").replace(",", "").replace(" ", "").rstrip("%")
    negative = t.startswith("(") and t.endswith(")")
    try:
        value = Decimal(t.strip("()"))
    except InvalidOperation:
        return None
    return -value if negative else value


def _fmt(value: Decimal, places: int = 0) -> str:
    return f"{value:,.{places}f}".replace("-", "\u2212")


def _figure(text: str) -> str:
    return text.replace("$", "").strip()


def _date(period: str) -> datetime | None:
    try:
        return datetime.strptime(period.split(" ended ")[-1], "%B %d, %Y")
    except ValueError:
        return None


def _places(*texts: str) -> int:
    return max((len(t.rsplit(".", 1)[1].rstrip(")%")) if "." in t else 0 for t in texts), default=0)


def _kind(period: str) -> str:
    """A period's kind: "three months", "nine months", "year"; "" for a bare date."""
    return period.rsplit(" ended ", 1)[0] if " ended " in period else ""


def kind_asked(question: str) -> str | None:
    """The period kind a question names ("first half": six months), if any."""
    for pattern, kind in _KINDS:
        if pattern.search(question):
            return kind
    return None


def _columns(row: Row, kind: str | None) -> list[int]:
    """The columns of the asked kind of period, else of the row's first kind."""
    if not row.periods:
        return list(range(len(row.cells)))
    wanted = kind if kind is not None and any(_kind(p) == kind for p in row.periods) else _kind(row.periods[0])
    return [i for i, p in enumerate(row.periods) if _kind(p) == wanted]


def _change(row: Row, kind: str | None = None) -> str:
    """The change from the earlier to the later of the first two columns of one period
    kind (filings print the newer period first or last, so the dates decide)."""
    columns = _columns(row, kind)
    if len(columns) < 2:
        return ""
    (ta, _, _), (tb, _, _) = row.cells[columns[0]], row.cells[columns[1]]
    a, b = _number(ta), _number(tb)
    if a is None or b is None:
        return ""
    if row.periods:
        pa, pb = row.periods[columns[0]], row.periods[columns[1]]
        da, db = _date(pa), _date(pb)
        if da is None or db is None or da == db:
            return ""
        if da < db:
            (pa, ta, a), (pb, tb, b) = (pb, tb, b), (pa, ta, a)
        what = f"{pa} vs {pb.split(' ended ')[-1]}"
    else:
        what = "first two columns"
    places = _places(ta, tb)
    pct = f" ({_fmt((a - b) / abs(b) * 100, 1)}%)" if b else ""
    return f"Change, {what}: {_figure(ta)} \u2212 {_figure(tb)} = {_fmt(a - b, places)}{pct}."


def _shares(rows: Sequence[Row]) -> str:
    """Each row as a share of the table's total (the matched row that is the largest)."""
    firsts = [(r, _number(r.cells[0][0])) for r in rows]
    valued = [(r, v) for r, v in firsts if v is not None and v > 0]
    if len(valued) < 2:
        return ""
    total_row, total = max(valued, key=lambda rv: rv[1])
    when = f", {total_row.periods[0]}" if total_row.periods else ""
    parts = [
        f"{r.label} / {total_row.label}{when}: {_figure(r.cells[0][0])} / {_figure(total_row.cells[0][0])} = "
        f"{_fmt(v / total * 100, 1)}%"
        for r, v in valued
        if r is not total_row
    ]
    return "; ".join(parts) + "."


def _describe(rows: Sequence[Row], hit: Hit, change: bool, kind: str | None) -> str:
    first = rows[0]
    where = [hit.version.title]
    if first.statement:
        where.append(STATEMENT_NAMES[first.statement])
    where.append(f"page {hit.chunk.page}")
    lines = []
    for row in rows:
        unit = f", in {row.scale}" if row.scale and not _NO_SCALE.search(row.label) else ""
        values = (
            "; ".join(f"{p}: {_figure(t)}" for p, (t, _, _) in zip(row.periods, row.cells, strict=True))
            if row.periods
            else " | ".join(_figure(t) for t, _, _ in row.cells)
        )
        section = f"{row.section}: " if row.section and row.section.lower() not in row.label.lower() else ""
        lines.append(f"{section}{row.label}{unit}: {values}." + (f" {_change(row, kind)}" if change else ""))
    return f"{'; '.join(where)}. " + " ".join(lines)


_Table = list[tuple[float, Row]]


def _spread(tables: list[tuple[tuple[str, int, int], _Table]], n: int) -> list[_Table]:
    """The ``n`` best tables, a further table of an already chosen document counting 0.15
    less per table chosen from it: a question over several filings gets each of them."""
    chosen: list[_Table] = []
    per_version: dict[str, int] = {}
    left = [(max(s for s, _ in rows), min(r.hit_index for _, r in rows), key, rows) for key, rows in tables]
    while left and len(chosen) < n:
        best = min(left, key=lambda t: (-(t[0] - 0.15 * per_version.get(t[2][0], 0)), t[1]))
        left.remove(best)
        chosen.append(best[3])
        per_version[best[2][0]] = per_version.get(best[2][0], 0) + 1
    return chosen


def _latest(row: Row, kind: str | None) -> int:
    """The column of the row's latest date of the asked period kind (the current period)."""
    dated = [(d, i) for i in _columns(row, kind) if i < len(row.periods) and (d := _date(row.periods[i]))]
    return max(dated)[1] if dated else 0


def _series(best: Row, rows: Sequence[Row], hits: Sequence[Hit], kind: str | None) -> Claim | None:
    """The best row's line item across the filings that print it, each at its current
    period, oldest first: how a figure moved over time, in one claim."""
    label = best.label.lower()
    per_version: dict[str, Row] = {}
    for row in rows:  # best first: the first row of each filing with this label is its best
        version = hits[row.hit_index].version.id
        if row.label.lower() == label and row.periods and version not in per_version:
            per_version[version] = row
    if len(per_version) < 2 or hits[best.hit_index].version.id not in per_version:
        return None
    points = []
    for row in per_version.values():
        column = _latest(row, kind)
        points.append((_date(row.periods[column]) or datetime.min, row, column))
    points.sort(key=lambda p: p[0])
    unit = f" (in {best.scale})" if best.scale and not _NO_SCALE.search(best.label) else ""
    parts = [
        f"{row.periods[col]}: {_figure(row.cells[col][0])} ({hits[row.hit_index].version.title.split(' — ')[0]}, "
        f"page {hits[row.hit_index].chunk.page})"
        for _, row, col in points
    ]
    (_, first, i), (_, last, j) = points[0], points[-1]
    old, new = first.cells[i][0], last.cells[j][0]
    a, b = _number(new), _number(old)
    moved = ""
    if a is not None and b is not None:
        pct = f" ({_fmt((a - b) / abs(b) * 100, 1)}%)" if b else ""
        span = f"{first.periods[i].split(' ended ')[-1]} to {last.periods[j].split(' ended ')[-1]}"
        moved = f" Change from {span}: {_figure(new)} \u2212 {_figure(old)} = {_fmt(a - b, _places(new, old))}{pct}."
    citations = tuple(cite(hits[row.hit_index], row.cells[col][1], row.cells[col][2]) for _, row, col in points)
    return Claim(f"{best.label}{unit} over the filings: " + "; ".join(parts) + "." + moved, citations)


def _with_section(rows: list[Row], every: Sequence[Row], hits: Sequence[Hit]) -> list[Row]:
    """A matched "Total ..." row brings the rows of its section (a total of operating
    expenses, its research and selling lines): the parts are what a reader asks next."""
    out = list(rows)
    for row in rows:
        if not row.section or not row.label.lower().startswith("total"):
            continue
        version = hits[row.hit_index].version.id
        for other in every:
            same = hits[other.hit_index].version.id == version and other.table == row.table
            if same and other.section == row.section and all(o.label != other.label for o in out):
                out.append(other)
    return out


def _entities(question: str) -> frozenset[str]:
    """The index terms of the names a question gives (capitalised words after its first:
    companies, products, segments), less question words, periods and finance acronyms."""
    words = _CAPITALISED.findall(question)[1:] if question[:1].isupper() else _CAPITALISED.findall(question)
    return frozenset(t for w in words if w.lower() not in _NOT_NAMES for t in tokenize(w)) - _PERIOD_WORDS


def _about(hit: Hit, named: frozenset[str]) -> bool:
    """Whether a hit's document or chunk mentions any name the question gives (a question
    about the Example Bank notes is not answered by NVIDIA's table of notes)."""
    if not named:
        return True
    chunk = hit.chunk
    return bool(named & frozenset(tokenize(f"{hit.version.title}\n{chunk.context}\n{chunk.text}")))


def figure_claims(
    question: str, hits: Sequence[Hit], pages: PageReader | None = None, *, max_tables: int = 4
) -> list[Claim]:
    """Claims from the table rows that name what ``question`` asks for, best table first;
    [] when none does. A question about change over several filings gets the line item's
    series first."""
    asked = frozenset(tokenize(question))
    expanded = asked | frozenset(synonym_terms(question))
    statements = frozenset(statements_asked(question))
    named = _entities(question)
    every = rows_of(hits, pages, keep=lambda hit: _about(hit, named))
    titles = [frozenset(tokenize(h.version.title)) for h in hits]
    scored = [(s, r) for r in every if (s := _score(r, asked, expanded, statements, titles[r.hit_index])) > 0]
    if not scored:
        return []
    best = max(s for s, _ in scored)
    tables: dict[tuple[str, int, int], list[tuple[float, Row]]] = {}
    seen: set[tuple[str, str, str]] = set()
    ordered = sorted(scored, key=lambda sr: (-sr[0], sr[1].hit_index, sr[1].start))
    for s, row in ordered:
        if s < 0.75 * best:
            break
        hit = hits[row.hit_index]
        key = (hit.version.id, row.label.lower(), " ".join(t for t, _, _ in row.cells))
        if key in seen:  # the same row in an overlapping chunk
            continue
        seen.add(key)
        tables.setdefault((hit.version.id, hit.chunk.page, row.table), []).append((s, row))
    ranked = _spread(list(tables.items()), max_tables)
    change, share = bool(_CHANGE.search(question)), bool(_SHARE.search(question))
    kind = kind_asked(question)
    claims = []
    if change:
        series = _series(ordered[0][1], [r for s, r in ordered if s >= 0.75 * best], hits, kind)
        claims.extend([series] if series else [])
    for group in ranked:
        matched = sorted((r for _, r in group), key=lambda r: hits[r.hit_index].chunk.char_start + r.start)
        section = _with_section(matched, every, hits)[len(matched) :]
        # what the question asked for first, then the rest of its section, in page order
        rows = (matched + sorted(section, key=lambda r: hits[r.hit_index].chunk.char_start + r.start))[:8]
        text = _describe(rows, hits[rows[0].hit_index], change, kind)
        if share and len(rows) > 1:
            text += " " + _shares(rows)
        claims.append(Claim(text, tuple(cite(hits[r.hit_index], r.start, r.end) for r in rows)))
    return claims
