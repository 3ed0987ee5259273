"""What a financial statement is: its line items and their synonyms, the statement a page
holds, the periods of its columns and the scale of its figures.

Vocabulary for retrieval and answers, with no model and no network: the line items come
from a small curated table (``terms.toml`` beside this module), statements and periods are
read from the words filings print ("CONDENSED CONSOLIDATED BALANCE SHEETS", "Three Months
Ended July 1, 2023", "(In millions)").

>>> [i.name for i in items_in("How much did Apple spend on capex and R&D?")]
['research and development', 'capital expenditures']
>>> statement_of("CONDENSED CONSOLIDATED STATEMENTS OF CASH FLOWS (Unaudited)")
'cash_flow'
>>> periods("Three Months Ended Nine Months Ended July 1, 2023 June 25, 2022 July 1, 2023 June 25, 2022")[:2]
['three months ended July 1, 2023', 'three months ended June 25, 2022']
>>> scale_of("(In millions, except per share amounts)")
'millions'
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from strongroom.text import tokenize

__all__ = [
    "STATEMENT_NAMES",
    "LineItem",
    "Statement",
    "is_period_header",
    "items_in",
    "line_items",
    "periods",
    "scale_of",
    "statement_of",
    "statements_asked",
    "synonym_terms",
    "synonyms",
]

Statement = Literal["income", "balance", "cash_flow", "equity", "comprehensive"]

#: how each statement is named in an answer
STATEMENT_NAMES: dict[str, str] = {
    "income": "income statement",
    "balance": "balance sheet",
    "cash_flow": "cash flow statement",
    "equity": "statement of shareholders' equity",
    "comprehensive": "statement of comprehensive income",
}

# Titles as filings print them; the first that matches wins, so "comprehensive income"
# is tested before "income".
_TITLES: tuple[tuple[Statement, re.Pattern[str]], ...] = (
    ("comprehensive", re.compile(r"statements? of comprehensive (?:income|loss)|comprehensive income statement", re.I)),
    ("cash_flow", re.compile(r"statements? of cash flows?|cash flows? statements?", re.I)),
    ("balance", re.compile(r"balance sheets?|statements? of financial (?:position|condition)", re.I)),
    ("equity", re.compile(r"statements? of (?:changes in )?(?:share|stock)holders.? equity", re.I)),
    ("income", re.compile(r"statements? of (?:operations|income|earnings)|income statements?", re.I)),
)
# What a question says when it names a statement itself rather than a line item in it.
_ASKED: tuple[tuple[Statement, re.Pattern[str]], ...] = (
    ("cash_flow", re.compile(r"\bcash[- ]flows?\b|\bliquidity\b", re.I)),
    ("balance", re.compile(r"\bbalance sheet\b|\bfinancial position\b", re.I)),
    ("income", re.compile(r"\bincome statement\b|\bprofit and loss\b|\bP&L\b", re.I)),
)

_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_DATE_PART = re.compile(rf"({_MONTH}\s+\d{{1,2}}),?|\b((?:19|20)\d\d)\b")
_GROUP = re.compile(
    r"\b(three|six|nine|twelve|3|6|9|12)\s+months\s+ended|\b(thirteen|twenty-six|thirty-nine|fifty-two)\s+weeks\s+ended"
    r"|\b(quarters?|years?|fiscal years?|periods?)\s+ended",
    re.I,
)
_SCALE = re.compile(r"\bin\s+(millions|thousands|billions)\b", re.I)
_HEADER_NOISE = re.compile(
    rf"{_GROUP.pattern}|{_MONTH}|\b(?:19|20)\d\d\b|\d{{1,2}},|\bas of\b|\bunaudited\b|[(),\s]", re.I
)


@dataclass(frozen=True)
class LineItem:
    """A line item: its name, the statement that reports it, the words for it, and the
    labels some filers print for it in their tables (used for rows, not for searching)."""

    name: str
    statement: Statement
    terms: tuple[str, ...]
    labels: tuple[str, ...] = ()

    @functools.cached_property
    def term_sets(self) -> tuple[frozenset[str], ...]:
        return tuple(frozenset(tokenize(t)) for t in self.terms + self.labels)

    def named_by(self, terms: frozenset[str]) -> bool:
        """Whether a text with these index terms names this item (all words of one term)."""
        return any(t and t <= terms for t in self.term_sets)


@functools.cache
def line_items() -> tuple[LineItem, ...]:
    """The curated table of line items (``finance/terms.toml``)."""
    table = tomllib.loads((Path(__file__).parent / "terms.toml").read_text(encoding="utf-8"))
    return tuple(
        LineItem(i["name"], i["statement"], tuple(i["terms"]), tuple(i.get("labels", ()))) for i in table["item"]
    )


def items_in(text: str) -> list[LineItem]:
    """The line items ``text`` names, in the table's order."""
    terms = frozenset(tokenize(text))
    return [item for item in line_items() if item.named_by(terms)]


@functools.lru_cache(maxsize=4096)
def synonyms(text: str) -> tuple[str, ...]:
    """The other names of the line items ``text`` names, as written in the table, each one
    whose words ``text`` does not already hold: "capex" gives "purchases of property, plant
    and equipment", and so on."""
    own = frozenset(tokenize(text))
    found: list[str] = []
    for item in items_in(text):
        found.extend(term for term, words in zip(item.terms, item.term_sets, strict=False) if not words <= own)
    return tuple(found)


@functools.lru_cache(maxsize=4096)
def synonym_terms(text: str) -> tuple[str, ...]:
    """Index terms of the other names of the line items ``text`` names, not already in it:
    "capex" gives the terms of "purchases of property, plant and equipment", and so on."""
    own = set(tokenize(text))
    extra: dict[str, None] = {}
    for item in items_in(text):
        for words in item.term_sets:
            extra.update(dict.fromkeys(sorted(words - own)))
    return tuple(extra)


def statements_asked(text: str) -> frozenset[Statement]:
    """The statements a question is about: those it names, else those of its line items."""
    named = frozenset(kind for kind, pattern in _ASKED if pattern.search(text))
    return named or frozenset(item.statement for item in items_in(text))


def statement_of(text: str) -> Statement | None:
    """The statement whose title ``text`` carries (a page's or a chunk's heading), if any."""
    for kind, pattern in _TITLES:
        if pattern.search(text):
            return kind
    return None


def scale_of(text: str) -> str | None:
    """ "millions", "thousands" or "billions" when ``text`` states the scale of its figures."""
    found = _SCALE.search(text)
    return found.group(1).lower() if found else None


def is_period_header(line: str) -> bool:
    """Whether a line holds only column periods ("Three Months Ended", "July 1,", "2023 2022")."""
    return bool(_DATE_PART.search(line) or _GROUP.search(line)) and not _HEADER_NOISE.sub("", line).strip()


def _singular(group: str) -> str:
    return re.sub(r"\b(quarter|year|period)s\b", r"\1", group)


def periods(header: str) -> list[str]:
    """The column periods a statement's header names, left to right; [] when unclear.

    Dates may be printed whole ("July 1, 2023 June 25, 2022"), month and day above their
    years ("April 30, May 1," then "2023 2022") or one date over several years
    ("September 30, 2022 2021"); groups ("Three Months Ended Nine Months Ended") span the
    dates evenly.
    """
    days: list[str] = []
    years: list[str] = []
    for m in _DATE_PART.finditer(header):
        (days if m.group(1) else years).append(m.group(1) or m.group(2))
    groups = [_singular(" ".join(m.group(0).lower().split())) for m in _GROUP.finditer(header)]
    if not years:
        return []
    if not days:
        dates = years
    elif len(days) == len(years):
        dates = [f"{d}, {y}" for d, y in zip(days, years, strict=True)]
    elif len(years) % len(days) == 0:
        span = len(years) // len(days)
        dates = [f"{days[i // span]}, {y}" for i, y in enumerate(years)]
    else:
        return []
    if not groups:
        return dates
    if len(dates) % len(groups) or (days and len(days) < len(groups)):  # a date shared by groups: unclear
        return []
    span = len(dates) // len(groups)
    return [f"{groups[i // span]} {d}" for i, d in enumerate(dates)]
