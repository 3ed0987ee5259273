"""Rule-based document type: fast, explainable, and with a confidence.

Each document type has weighted evidence rules (a phrase on the first pages, a pattern
repeated through the text, a word in the file name). The scores are summed per type; the
best type wins when its score passes a threshold, else ``other``. The confidence grows
with the winning score and with its margin over the runner-up, and the rules that fired
are returned, so a reviewer can see why.

    >>> from strongroom.types import Page, ParsedDocument
    >>> doc = ParsedDocument((Page(1, "Operator: Welcome to the Q3 earnings call."),), "text/plain")
    >>> classify(doc, "call.txt").doc_type
    'earnings_call_transcript'
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from strongroom.types import ParsedDocument

__all__ = ["DOC_TYPES", "Classification", "Rule", "classify", "classify_text", "confusion_matrix"]

DOC_TYPES: tuple[str, ...] = (
    "regulatory_filing",
    "earnings_call_transcript",
    "term_sheet",
    "prospectus",
    "research_report",
    "correspondence",
    "other",
)


@dataclass(frozen=True)
class Rule:
    """One piece of evidence: ``pattern`` searched in the ``where`` region, adding ``weight``.

    ``where``: ``head`` (first 6,000 characters), ``body`` (first 60,000), ``name`` (file
    name). ``min_count`` > 1 asks for repeated matches in the region.
    """

    doc_type: str
    name: str
    pattern: re.Pattern[str]
    weight: float
    where: str = "head"
    min_count: int = 1


def _r(doc_type: str, name: str, pattern: str, weight: float, where: str = "head", min_count: int = 1) -> Rule:
    return Rule(doc_type, name, re.compile(pattern, re.IGNORECASE | re.MULTILINE), weight, where, min_count)


RULES: tuple[Rule, ...] = (
    # Filings: the SEC cover page is unmistakable.
    _r("regulatory_filing", "sec-header", r"SECURITIES\s+AND\s+EXCHANGE\s+COMMISSION", 2.0),
    _r("regulatory_filing", "form-number", r"\bFORM\s+(?:10-Q|10-K|8-K|20-F|6-K|40-F|S-1|S-3|DEF\s*14A)\b", 2.0),
    _r("regulatory_filing", "registrant", r"exact name of registrant|commission file number", 2.0),
    _r("regulatory_filing", "exchange-act", r"pursuant to section 1[35](?:\(d\))? of the securities exchange act", 1.5),
    _r("regulatory_filing", "file-name", r"\b(?:10-?[QK]|8-?K|20-?F)\b", 1.0, "name"),
    # Earnings calls: a moderated call with speakers and Q&A.
    _r("earnings_call_transcript", "call-words", r"\b(?:earnings|conference)\s+call\b", 2.0),
    _r("earnings_call_transcript", "operator", r"\boperator\b", 1.0),
    _r(
        "earnings_call_transcript",
        "speaker-turns",
        r"(?:^|\s)(?:speaker\s+\d+|operator|[A-Z][a-z]+ [A-Z][a-z]+)\s*:",
        2.0,
        "body",
        5,
    ),
    _r(
        "earnings_call_transcript",
        "q-and-a",
        r"question[- ]and[- ]answer session|open (?:up )?the (?:call|line) for questions",
        1.5,
        "body",
    ),
    _r("earnings_call_transcript", "file-name", r"transcript|earnings[-_ ]call", 1.0, "name"),
    # Term sheets: a product's terms, defined field by field.
    _r("term_sheet", "title", r"\b(?:indicative\s+|final\s+)?term\s*sheet\b|\bfinal terms\b|\bindicative terms\b", 2.5),
    _r("term_sheet", "isin", r"\bISIN\b", 1.0),
    _r("term_sheet", "dates", r"\b(?:trade|strike|issue|maturity|valuation)\s+date\b", 0.5, "head", 3),
    _r(
        "term_sheet",
        "economics",
        r"\b(?:coupon|barrier|autocall|strike|denomination|notional|issue price)\b",
        1.5,
        "head",
        3,
    ),
    _r(
        "term_sheet",
        "product",
        r"\b(?:autocallable|reverse convertible|barrier notes?|structured notes?|"
        r"fixed rate notes?|floating rate notes?)\b",
        1.0,
    ),
    _r("term_sheet", "file-name", r"term[-_ ]?sheet|\bts[-_]", 1.0, "name"),
    # Prospectuses and offering documents.
    _r("prospectus", "title", r"\b(?:base\s+)?prospectus(?:\s+supplement)?\b|offering\s+(?:memorandum|circular)", 2.0),
    _r("prospectus", "rule-424", r"\bRule\s+424\(b\)|\b424B\d\b", 1.5),
    _r("prospectus", "risk-factors", r"\brisk factors\b", 0.5),
    _r(
        "prospectus",
        "use-of-proceeds",
        r"\buse of proceeds\b|\bplan of distribution\b|\bunderwriting\b",
        1.0,
        "body",
        2,
    ),
    # Research reports.
    _r(
        "research_report",
        "rating",
        r"\b(?:rating|recommendation)\s*:?\s*(?:buy|sell|hold|overweight|underweight|"
        r"neutral|outperform|underperform)\b",
        2.0,
    ),
    _r("research_report", "price-target", r"\b(?:price|target)\s+(?:target|price)\b", 1.5),
    _r(
        "research_report", "analyst", r"\banalyst certification\b|\bequity research\b|\bresearch analyst\b", 2.0, "body"
    ),
    _r(
        "research_report",
        "estimates",
        r"\b(?:we (?:reiterate|maintain|upgrade|downgrade|initiate))\b|\bEPS estimate",
        1.0,
    ),
    # Correspondence: letters and e-mails.
    _r("correspondence", "salutation", r"^\s*(?:dear\s+\w+|hi\s+\w+,)", 1.5),
    _r(
        "correspondence",
        "closing",
        r"^\s*(?:sincerely|kind regards|best regards|regards|yours (?:truly|faithfully)),?\s*$",
        1.5,
        "body",
    ),
    _r("correspondence", "headers", r"^\s*(?:from|to|subject|sent|cc)\s*:", 1.0, "head", 3),
)

_THRESHOLD = 2.0


@dataclass(frozen=True)
class Classification:
    """A document type with a confidence in [0, 1] and the rules that fired."""

    doc_type: str
    confidence: float
    evidence: tuple[str, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()


def classify_text(text: str, name: str = "", rules: Sequence[Rule] = RULES) -> Classification:
    """Classify raw text (first pages first) and an optional file name."""
    regions = {"head": text[:6000], "body": text[:60000], "name": name}
    scores: dict[str, float] = dict.fromkeys(DOC_TYPES, 0.0)
    evidence: list[str] = []
    for rule in rules:
        region = regions.get(rule.where, "")
        if rule.min_count <= 1:
            hit = rule.pattern.search(region) is not None
        else:
            hit = (
                sum(1 for _ in zip(range(rule.min_count), rule.pattern.finditer(region), strict=False))
                >= rule.min_count
            )
        if hit:
            scores[rule.doc_type] += rule.weight
            evidence.append(f"{rule.doc_type}:{rule.name}")
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    ordered = tuple((k, round(v, 3)) for k, v in ranked if v > 0)
    if top < _THRESHOLD:
        return Classification("other", round(0.5 + 0.1 * (_THRESHOLD - top), 3), tuple(evidence), ordered)
    strength = 1.0 - math.exp(-top / 2.0)
    margin = (top - second) / top
    confidence = 0.5 + 0.5 * strength * margin
    winning = tuple(e for e in evidence if e.startswith(best + ":"))
    return Classification(best, round(confidence, 3), winning, ordered)


def classify(parsed: ParsedDocument, name: str = "", rules: Sequence[Rule] = RULES) -> Classification:
    """Classify a parsed document from its first pages and its file name."""
    text_parts: list[str] = []
    size = 0
    for page in parsed.pages:
        text_parts.append(page.text)
        size += len(page.text)
        if size >= 60000:
            break
    text = "\n".join(text_parts)
    if parsed.title:
        text = parsed.title + "\n" + text
    return classify_text(text, name, rules)


def confusion_matrix(pairs: Sequence[tuple[str, str]], labels: Sequence[str] = DOC_TYPES) -> list[list[int]]:
    """Counts ``[true][predicted]`` over ``(true, predicted)`` pairs, rows and columns in ``labels`` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for true, predicted in pairs:
        matrix[index[true]][index[predicted]] += 1
    return matrix
