"""Answers with citations: retrieve, then generate from what was retrieved, and nothing else.

The default generator is extractive and needs no model weights: it quotes the sentences
and table rows of the retrieved chunks that best cover the question, each with a citation
to document, version, page and characters. When nothing covers the question it says so
instead of inventing. A :class:`Generator` backed by an LLM plugs in the same way.

>>> answer("What were Apple's total net sales?", principal, store, embedder)  # doctest: +SKIP
Answer(claims=(Claim(text='Total net sales 82,959 81,434 304,182 282,457', ...),), found=True, ...)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from strongroom.embed import Embedder
from strongroom.rag.base import NOT_FOUND, Generator, cite
from strongroom.rag.figures import PageReader, figure_claims
from strongroom.retrieve import search
from strongroom.store.base import Index, VersionCatalog
from strongroom.text import classify_lines, tokenize
from strongroom.types import Answer, Claim, Hit, Scope, frozen_meta

__all__ = ["EXTRACTIVE_VERSION", "ExtractiveGenerator", "answer"]

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'$])")
#: the extractive generator's version; it has no prompt, so this is also its "template" version
EXTRACTIVE_VERSION = "extractive-v1"


@dataclass(frozen=True)
class _Unit:
    hit_index: int
    start: int
    end: int
    score: float


def _units(text: str) -> list[tuple[int, int, str]]:
    """Answerable units of a chunk, as ``(start, end, header)`` spans of ``text``.

    Table rows are units of their own (headings are not: they answer nothing). A row's
    ``header`` is the text of the non-row lines just above its table (column headings
    such as "Three Months Ended July 1, 2023"), which say what its numbers mean. Prose
    lines wrapped by the PDF are joined into paragraphs first, so a sentence is never
    cut at a line break.
    """
    spans: list[tuple[int, int, str]] = []
    lines = classify_lines(text)
    header_start = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.kind == "row":
            if i == 0 or lines[i - 1].kind != "row":
                header_start = lines[max(0, i - 6)].start
            spans.append((line.start, line.end, text[header_start : line.start]))
            i += 1
            continue
        if line.kind == "heading":  # a heading names a topic; it answers nothing by itself
            i += 1
            continue
        j = i
        while j + 1 < len(lines) and lines[j + 1].kind == "text":
            j += 1
        start, stop = line.start, lines[j].end
        for m in [*_SENTENCE_BREAK.finditer(text, start, stop), None]:
            end = m.start() if m else stop
            if end - start > 3:
                spans.append((start, end, ""))
            start = m.end() if m else end
        i = j + 1
    return spans


class ExtractiveGenerator:
    """Answers with the table cells that match the question (labelled by line item, period
    and unit), then quotes the best-covering sentences; needs no model.

    ``pages``: reads the text of a hit's page (the store's ``page_text``), where a table's
    column periods and scale are printed when the chunk starts below them; without it
    only what the chunk itself holds labels the cells.
    """

    name = EXTRACTIVE_VERSION

    def __init__(
        self,
        max_claims: int = 4,
        min_coverage: float = 0.34,
        *,
        max_tables: int = 4,
        with_tables: int = 2,
        pages: PageReader | None = None,
    ) -> None:
        self.max_claims = max_claims
        self.min_coverage = min_coverage
        self.max_tables = max_tables
        self.with_tables = with_tables  # how many sentences still follow table claims
        self.pages = pages
        self.metadata = frozen_meta({"generator": self.name, "prompt_template_version": EXTRACTIVE_VERSION})

    def generate(self, question: str, hits: Sequence[Hit]) -> Answer:
        terms = set(tokenize(question))
        if not hits or not terms:
            return Answer(question, (), tuple(hits), self.name, found=False, note=NOT_FOUND, metadata=self.metadata)
        figures = figure_claims(question, hits, self.pages, max_tables=self.max_tables) if self.max_tables else []
        sentences = self._sentences(question, terms, hits, self.with_tables if figures else self.max_claims)
        claims = (*figures, *sentences)
        if not claims:
            return Answer(question, (), tuple(hits), self.name, found=False, note=NOT_FOUND, metadata=self.metadata)
        return Answer(question, claims, tuple(hits), self.name, found=True, metadata=self.metadata)

    def _sentences(self, question: str, terms: set[str], hits: Sequence[Hit], limit: int) -> tuple[Claim, ...]:
        """The ``limit`` sentences and rows that best cover the question's terms."""
        # rarer terms across the retrieved chunks weigh more (a local idf)
        docs = [set(tokenize(f"{h.chunk.context}\n{h.chunk.text}")) for h in hits]
        weight = {t: math.log(1 + (len(docs) + 1) / (1 + sum(t in d for d in docs))) + 0.5 for t in terms}
        total = sum(weight.values())
        units: list[_Unit] = []
        for i, hit in enumerate(hits):
            context_terms = set(tokenize(hit.chunk.context)) & terms
            for start, end, header in _units(hit.chunk.text):
                unit_terms = set(tokenize(hit.chunk.text[start:end])) & terms
                if not unit_terms:
                    continue
                around = (context_terms | (set(tokenize(header)) & terms)) - unit_terms
                covered = sum(weight[t] for t in unit_terms) + 0.5 * sum(weight[t] for t in around)
                units.append(_Unit(i, start, end, covered / total + 0.05 / (i + 1)))
        units.sort(key=lambda u: -u.score)
        chosen: list[_Unit] = []
        per_hit: dict[int, int] = {}
        for unit in units:
            if unit.score < self.min_coverage or len(chosen) >= limit:
                break
            if per_hit.get(unit.hit_index, 0) >= 2:
                continue
            per_hit[unit.hit_index] = per_hit.get(unit.hit_index, 0) + 1
            chosen.append(unit)
        return tuple(
            Claim(hits[u.hit_index].chunk.text[u.start : u.end], (cite(hits[u.hit_index], u.start, u.end),))
            for u in chosen
        )


def answer(
    question: str,
    scope: Scope,
    store: Index,
    embedder: Embedder,
    generator: Generator | None = None,
    k: int = 5,
) -> Answer:
    """Retrieve what ``scope`` may read and answer from it, with citations (the default
    generator reads the hits' pages when ``store`` can give them)."""
    hits = search(store, embedder, question, scope, k)
    pages = store.page_text if isinstance(store, VersionCatalog) else None
    return (generator or ExtractiveGenerator(pages=pages)).generate(question, hits)
