"""The vocabulary of text every layer shares: index terms, token estimates and line kinds.

Pure functions, no I/O. Ingestion chunks by line kind, both stores index :func:`tokenize`'s
terms, retrieval and answering read the same lines and terms, so they live below all of them.

>>> [line.kind for line in classify_lines("# Results\nRevenue 10 20\nCosts rose.")]
['heading', 'row', 'text']
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal

import Stemmer

from strongroom.types import Chunk

__all__ = ["Line", "LineKind", "classify_lines", "dense_text", "estimate_tokens", "row_label", "tokenize"]

LineKind = Literal["heading", "row", "text"]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"(?<![\w.])\(?\$?\d[\d,]*(?:\.\d+)?%?\)?(?![\w])")

# A number keeps its thousands separators and decimals ("82,959", "1.20", and "1.20" out of
# "1.20x"); any other run of letters and digits is a word ("q3", "fy2023").
_TERM = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")

_STOPWORDS = frozenset(
    """a about after again all am an and any are as at be because been before being both but
    by can could did do does doing during each few for from further had has have having he her
    here hers him his how i if in into is it its itself just me more most my no nor not of off
    on once only or other our ours out own s same she should so some such t than that the their
    theirs them then there these they this those through to too very was we were what when where
    which while who whom why will with would you your yours""".split()
)

_TERM_CACHE_SIZE = 500_000
_local = threading.local()  # Stemmer objects are not thread-safe: one stemmer and cache per thread


def _term_cache() -> dict[str, str]:
    """Per-thread map from a lowercased word to its term ("" for a stopword)."""
    cache: dict[str, str] | None = getattr(_local, "cache", None)
    if cache is None or len(cache) > _TERM_CACHE_SIZE:
        cache = _local.cache = dict.fromkeys(_STOPWORDS, "")
        _local.stemmer = Stemmer.Stemmer("english")
    return cache


def tokenize(text: str) -> list[str]:
    """Index terms of ``text``: lowercased, stopwords dropped, words stemmed, numbers kept whole.

    A number with thousands separators is emitted twice, as written and as digits only, so a
    query for ``82959`` finds ``82,959``. Word order is kept; the extra number forms come last.

    >>> tokenize("Revenues were (2,028) million, up 1.20%")
    ['revenu', '2,028', 'million', 'up', '1.20', '2028']
    """
    words = _TERM.findall(text.lower())
    cache = _term_cache()
    terms = list(map(cache.get, words))
    if None in terms:  # words not seen before: stem them in one call (digit strings pass unchanged)
        missing = list(dict.fromkeys(w for w, t in zip(words, terms, strict=True) if t is None))
        cache.update(zip(missing, _local.stemmer.stemWords(missing), strict=True))
        terms = list(map(cache.__getitem__, words))
    out = [t for t in terms if t]
    if "," in text:
        out.extend(w.replace(",", "") for w in words if "," in w)  # only numbers hold a comma
    return out


def estimate_tokens(text: str) -> int:
    """A fast estimate of word-piece tokens: words, punctuation, long words count twice."""
    return sum(2 if len(t) > 8 else 1 for t in _TOKEN.findall(text))


@dataclass(frozen=True)
class Line:
    start: int
    end: int
    kind: LineKind
    tokens: int


def _kind(text: str) -> LineKind:
    stripped = text.strip()
    if stripped.startswith("#"):
        return "heading"
    if " | " in stripped or (stripped.startswith("|") and stripped.endswith("|")):
        return "row"  # a table row as the DOCX, HTML, XLSX, CSV and Markdown parsers render it
    # The cheap tests come first in each condition: most lines of prose fail them.
    if len(stripped) < 400 and not stripped.endswith((".", ",", ";")) and not stripped[0].islower():
        numbers = _NUMBER.findall(stripped)
        if len(numbers) >= 2 and _NUMBER.search(stripped[-16:]):  # not lowercase: not a wrapped continuation
            label_words = sum(any(c.isalpha() for c in w) for w in stripped.split())
            if label_words <= 12 or len(numbers) * 3 >= label_words:
                return "row"
    words = stripped.split()
    if (
        0 < len(words) <= 12
        and sum(c.isalpha() for c in stripped) >= 0.6 * len(stripped.replace(" ", ""))
        and not stripped.endswith((".", ",", ";", ":"))
        and (stripped.isupper() or sum(w[0].isupper() for w in words if w[0].isalpha()) >= 0.7 * len(words))
    ):
        return "heading"
    return "text"


def classify_lines(text: str) -> list[Line]:
    """Non-blank lines of ``text`` with their offsets, kind and token estimate."""
    lines: list[Line] = []
    pos = 0
    for raw in text.split("\n"):
        start, end = pos, pos + len(raw)
        pos = end + 1
        body = raw.strip()
        if not body:
            continue
        lead = len(raw) - len(raw.lstrip())
        lines.append(Line(start + lead, start + lead + len(body), _kind(body), estimate_tokens(body)))
    return lines


def row_label(row: str) -> str:
    """A table row without its figures: "Research and development $ 1,875 $ 1,618" ->
    "Research and development"."""
    return " ".join(_NUMBER.sub(" ", row).replace("$", " ").replace("|", " ").split())


def dense_text(chunk: Chunk) -> str:
    """What the embedder reads for a chunk: its context, then its text with table rows cut
    down to their labels.

    A sentence embedding of "Research and development 2,040 1,987 3,999" is mostly noise
    from the figures, and a table of such rows drowns its labels, so prose outranks the
    table that actually holds the answer. Figures stay in the keyword indexes, which match
    them exactly; repeated labels are kept once, lines without a letter not at all.
    """
    out = [chunk.context]
    seen: set[str] = set()
    for line in classify_lines(chunk.text):
        body = chunk.text[line.start : line.end]
        if line.kind == "row":
            body = row_label(body)
            if body in seen:
                continue
            seen.add(body)
        if any(c.isalpha() for c in body):  # a bare page number or year says nothing
            out.append(body)
    return "\n".join(out)
