"""Structure-aware, token-bounded chunking of page text. Pure functions, no I/O.

A page is read as lines, each classified as heading, table row or text. Lines are packed
into chunks of at most ``max_tokens`` estimated tokens; a chunk breaks before a heading,
keeps a table's rows together when the table fits in one chunk, and never crosses a page,
so every chunk is an exact ``[start:end]`` span of one page's text.

>>> from strongroom.types import Page
>>> spans = chunk_pages([Page(1, "# Results\\nRevenue 10 20\\nCosts 5 6")], max_tokens=50)
>>> [(s.page, s.heading) for s in spans]
[(1, 'Results')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from strongroom.text import Line, classify_lines, estimate_tokens
from strongroom.types import Chunk, Page

__all__ = ["Span", "chunk_pages", "make_chunks"]

_SENTENCE_END = re.compile(r"(?<=[.;:!?])\s+")


@dataclass(frozen=True)
class Span:
    """A chunk's place: ``page_text[start:end]`` of ``page``, under section ``heading``."""

    page: int
    start: int
    end: int
    heading: str


def _split_long(text: str, start: int, end: int, max_tokens: int) -> Iterator[tuple[int, int]]:
    """Split one over-long line at sentence ends, then at spaces, into bounded pieces."""
    cuts = [m.end() for m in _SENTENCE_END.finditer(text, start, end)]  # finditer positions are absolute
    pieces: list[tuple[int, int]] = []
    prev = start
    for cut in [*cuts, end]:
        pieces.append((prev, cut))
        prev = cut
    cur_start, cur_end, cur_tokens = pieces[0][0], pieces[0][0], 0
    for p_start, p_end in pieces:
        p_tokens = estimate_tokens(text[p_start:p_end])
        if p_tokens > max_tokens:
            if cur_tokens:
                yield cur_start, cur_end
            yield from _split_words(text, p_start, p_end, max_tokens)
            cur_start, cur_end, cur_tokens = p_end, p_end, 0
            continue
        if cur_tokens + p_tokens > max_tokens and cur_tokens:
            yield cur_start, cur_end
            cur_start, cur_tokens = p_start, 0
        cur_end, cur_tokens = p_end, cur_tokens + p_tokens
    if cur_tokens:
        yield cur_start, cur_end


def _split_words(text: str, start: int, end: int, max_tokens: int) -> Iterator[tuple[int, int]]:
    piece_start, tokens = start, 0
    for m in re.finditer(r"\S+", text[start:end]):
        w_tokens = estimate_tokens(m.group())
        if tokens + w_tokens > max_tokens and tokens:
            yield piece_start, start + m.start()
            piece_start, tokens = start + m.start(), 0
        tokens += w_tokens
    if tokens:
        yield piece_start, end


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _heading_text(text: str) -> str:
    return text.strip().lstrip("#").strip()


def chunk_page(page: Page, max_tokens: int, heading: str = "") -> tuple[list[Span], str]:
    """Chunks of one page, and the heading in force at its end (carried to the next page)."""
    text = page.text
    lines = classify_lines(text)
    spans: list[Span] = []
    cur: list[Line] = []
    cur_tokens = 0
    latest = heading  # the most recent heading seen
    cur_heading = heading  # the heading in force where the current chunk starts

    def flush() -> None:
        nonlocal cur, cur_tokens
        if cur:
            s, e = _trim(text, cur[0].start, cur[-1].end)
            if e > s:
                spans.append(Span(page.number, s, e, cur_heading))
        cur, cur_tokens = [], 0

    for i, line in enumerate(lines):
        if line.kind == "heading":
            if cur and cur_tokens > max_tokens // 4:
                flush()
            latest = _heading_text(text[line.start : line.end])[:200]
        if line.tokens > max_tokens:
            flush()
            for s, e in _split_long(text, line.start, line.end, max_tokens):
                s, e = _trim(text, s, e)
                if e > s:
                    spans.append(Span(page.number, s, e, latest))
            continue
        if line.kind == "row" and (i == 0 or lines[i - 1].kind != "row"):
            run = 0
            for nxt in lines[i:]:
                if nxt.kind != "row":
                    break
                run += nxt.tokens
            if cur_tokens + run > max_tokens >= run:
                flush()
        if cur_tokens + line.tokens > max_tokens:
            flush()
        if not cur:
            cur_heading = latest
        cur.append(line)
        cur_tokens += line.tokens
    flush()
    return spans, latest


def make_chunks(version_id: str, pages: Iterable[Page], spans: Iterable[Span], title: str) -> tuple[Chunk, ...]:
    """The chunks of a version from its spans; each chunk's context is title and heading."""
    texts = {p.number: p.text for p in pages}
    return tuple(
        Chunk(
            id=Chunk.make_id(version_id, s.page, s.start, s.end),
            version_id=version_id,
            ordinal=i,
            page=s.page,
            char_start=s.start,
            char_end=s.end,
            text=texts[s.page][s.start : s.end],
            context=f"{title} — {s.heading}" if s.heading else title,
        )
        for i, s in enumerate(spans)
    )


def chunk_pages(pages: Iterable[Page], max_tokens: int = 200) -> list[Span]:
    """Chunk every page in order; a section heading carries over page breaks."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    spans: list[Span] = []
    heading = ""
    for page in pages:
        page_spans, heading = chunk_page(page, max_tokens, heading)
        spans.extend(page_spans)
    return spans
