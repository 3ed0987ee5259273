"""Term-sheet field extraction: typed values with their source span and a confidence.

Two passes over each page. The *line* pass reads ``Label: value`` rows, which is what
two-column tables (``Label | value`` once parsed), bullet lists and padded text become.
The *prose* pass looks for fields the line pass did not find in running sentences
(``The Maturity Date is 15 March 2029``, ``issued by X (the "Issuer")``). A value must
parse as its type (a date, an amount with a currency, a percentage, an identifier whose
check digit is right); when it does not, the field is absent rather than guessed.

    >>> from strongroom.types import Page, ParsedDocument
    >>> doc = ParsedDocument((Page(1, "ISIN: US0378331005\\nMaturity Date: 15 March 2029"),), "text/plain")
    >>> {f.name: f.canonical for f in extract_termsheet(doc)}
    {'isin': 'US0378331005', 'maturity_date': '2029-03-15'}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from strongroom.errors import QueryError, StoreError
from strongroom.ingest.understand.checkdigits import cusip_valid, isin_valid
from strongroom.types import DocumentVersion, ParsedDocument

__all__ = [
    "FIELDS",
    "Amount",
    "FieldValue",
    "TermSheetField",
    "extract_termsheet",
    "fields_as_metadata",
    "select_term_sheets",
    "stored_fields",
]


@dataclass(frozen=True)
class Amount:
    """A money amount: ISO currency code and a decimal value."""

    currency: str
    value: Decimal


FieldValue = str | date | float | Amount | tuple[str, ...]


@dataclass(frozen=True)
class TermSheetField:
    """One extracted field: typed ``value``, the ``text`` it came from, where, and how sure.

    ``start``/``end`` index the text of page ``page`` (1-based) and cover the value.
    """

    name: str
    value: FieldValue
    text: str
    page: int
    start: int
    end: int
    confidence: float

    @property
    def canonical(self) -> str:
        """The value as a canonical string: ISO dates, ``USD 1000000.00``, ``5.25``, ``A; B``."""
        return canonical(self.value)

    def as_dict(self) -> dict[str, object]:
        """The field as a record: ``field``, canonical ``value``, source ``text``, ``page``, span, ``confidence``."""
        return {"field": self.name, "value": self.canonical, "text": self.text, "page": self.page,
                "start": self.start, "end": self.end, "confidence": self.confidence}  # fmt: skip


def _num(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def canonical(value: FieldValue) -> str:
    """The canonical string of a field value (how it is stored as metadata and compared in evals)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Amount):
        return f"{value.currency} {value.value:.2f}"
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, tuple):
        return "; ".join(value)
    return value


# --- value parsers: (value text) -> (typed value, start, end within the text) or None ---------

Parsed = tuple[FieldValue, int, int] | None
_MONTHS = {
    m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
}
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE_PATTERNS = (
    re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?[\s-]+(?P<m>" + _MONTH + r")[\s-]+(?P<y>\d{4})\b", re.I),
    re.compile(r"\b(?P<m>" + _MONTH + r")\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})\b", re.I),
    re.compile(r"\b(?P<y>\d{4})-(?P<mn>\d{2})-(?P<d>\d{2})\b"),
)


def parse_date(text: str) -> Parsed:
    """The first date in ``text`` (``15 March 2029``, ``March 15, 2029``, ``2029-03-15``, ``15-Mar-2029``)."""
    best: Parsed = None
    for pattern in _DATE_PATTERNS:
        m = pattern.search(text)
        if not m or (best is not None and best[1] <= m.start()):
            continue
        groups = m.groupdict()
        month = int(groups["mn"]) if groups.get("mn") else _MONTHS[groups["m"][:3].lower()]
        try:
            best = (date(int(groups["y"]), month, int(groups["d"])), m.start(), m.end())
        except ValueError:
            continue
    return best


_PCT = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s*(?:%|per\s*cent\.?|percent)", re.I)


def parse_percent(text: str) -> Parsed:
    """The first percentage in ``text`` as a number (``5.25%`` and ``5.25 per cent.`` give 5.25)."""
    m = _PCT.search(text)
    return (float(m.group(1)), m.start(), m.end()) if m else None


_CCY = r"USD|EUR|GBP|CHF|JPY|CAD|AUD|HKD|SGD|SEK|NOK|DKK|CNY|CNH"
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
_AMOUNT = re.compile(
    r"(?:(?P<ccy>" + _CCY + r")\s*|(?P<sym>[$€£¥])\s*)(?P<num>\d[\d,]*(?:\.\d+)?)"
    r"(?:\s*(?P<mult>million|mn|mm|m|billion|bn)\b)?"
    r"|(?P<num2>\d[\d,]*(?:\.\d+)?)(?:\s*(?P<mult2>million|mn|mm|billion|bn))?\s*(?P<ccy2>" + _CCY + r")\b"
)
_MULT = {"million": 10**6, "mn": 10**6, "mm": 10**6, "m": 10**6, "billion": 10**9, "bn": 10**9}


def parse_amount(text: str) -> Parsed:
    """The first amount with a currency (``USD 10,000,000``, ``$10,000,000``, ``EUR 5 million``)."""
    m = _AMOUNT.search(text)
    if not m:
        return None
    ccy = m.group("ccy") or _SYMBOLS.get(m.group("sym") or "", "") or m.group("ccy2")
    number = m.group("num") or m.group("num2")
    mult = (m.group("mult") or m.group("mult2") or "").lower()
    try:
        value = Decimal(number.replace(",", "")) * _MULT.get(mult, 1)
    except InvalidOperation:
        return None
    return Amount(ccy, value), m.start(), m.end()


def parse_currency(text: str) -> Parsed:
    """An ISO currency code standing alone (``USD``)."""
    m = re.search(r"\b(" + _CCY + r")\b", text)
    return (m.group(1), m.start(), m.end()) if m else None


def parse_isin(text: str) -> Parsed:
    """An ISIN whose check digit is right."""
    for m in re.finditer(r"\b[A-Z]{2}[A-Z0-9]{9}\d\b", text):
        if isin_valid(m.group()):
            return m.group(), m.start(), m.end()
    return None


def parse_cusip(text: str) -> Parsed:
    """A CUSIP whose check digit is right."""
    for m in re.finditer(r"\b[A-Z0-9]{8}\d\b", text):
        if cusip_valid(m.group()):
            return m.group(), m.start(), m.end()
    return None


def parse_number(text: str) -> Parsed:
    """The first plain number (``4,512.35``)."""
    m = re.search(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\d%])", text)
    if not m:
        return None
    try:
        return float(m.group().replace(",", "")), m.start(), m.end()
    except ValueError:
        return None


def _first_match(table: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> Parsed:
    """The name of the first pattern of ``table`` found in ``text``, with where it was found."""
    for name, pattern in table:
        if m := pattern.search(text):
            return name, m.start(), m.end()
    return None


_PRODUCTS = (
    ("autocallable", re.compile(r"auto-?call|phoenix|express", re.I)),
    ("reverse_convertible", re.compile(r"reverse\s+convertible", re.I)),
    ("floating_rate_note", re.compile(r"floating\s+rate|FRN", re.I)),
    ("fixed_rate_note", re.compile(r"fixed\s+rate", re.I)),
    ("barrier_note", re.compile(r"barrier", re.I)),
)


def parse_product(text: str) -> Parsed:
    """A product type from its name (``Phoenix Autocallable Notes`` gives ``autocallable``)."""
    return _first_match(_PRODUCTS, text)


_FREQUENCIES = (
    ("semi_annual", re.compile(r"semi-?\s?annual(?:ly)?|twice a year|every six months", re.I)),
    ("quarterly", re.compile(r"quarterly|every three months", re.I)),
    ("monthly", re.compile(r"monthly|every month", re.I)),
    ("annual", re.compile(r"\bannual(?:ly)?\b|once a year|every year", re.I)),
)


def parse_frequency(text: str) -> Parsed:
    """A payment frequency: ``annual``, ``semi_annual``, ``quarterly`` or ``monthly``."""
    return _first_match(_FREQUENCIES, text)


_DAY_COUNTS = (
    ("30/360", re.compile(r"30(?:E)?/360", re.I)),
    ("ACT/360", re.compile(r"(?:ACT|Actual)/360", re.I)),
    ("ACT/365F", re.compile(r"(?:ACT|Actual)/365\s*(?:\(Fixed\)|F\b|Fixed)?", re.I)),
    ("ACT/ACT", re.compile(r"(?:ACT|Actual)/(?:ACT|Actual)(?:\s*\((?:ICMA|ISDA)\))?", re.I)),
)


def parse_day_count(text: str) -> Parsed:
    """A day-count convention: ``30/360``, ``ACT/360``, ``ACT/365F`` or ``ACT/ACT``."""
    return _first_match(_DAY_COUNTS, text)


_LAWS = (
    ("England", re.compile(r"\bEngl(?:and|ish)\b", re.I)),
    ("New York", re.compile(r"\bNew York\b", re.I)),
    ("Germany", re.compile(r"\bGerman(?:y)?\b", re.I)),
    ("Switzerland", re.compile(r"\bSwi(?:tzerland|ss)\b", re.I)),
    ("France", re.compile(r"\bFr(?:ance|ench)\b", re.I)),
    ("Luxembourg", re.compile(r"\bLuxembourg\b", re.I)),
    ("Delaware", re.compile(r"\bDelaware\b", re.I)),
)


def parse_law(text: str) -> Parsed:
    """The governing law's jurisdiction named first in ``text`` (``English law`` gives ``England``)."""
    best: Parsed = None
    for name, pattern in _LAWS:
        m = pattern.search(text)
        if m and (best is None or m.start() < best[1]):
            best = (name, m.start(), m.end())
    return best


def parse_name(text: str) -> Parsed:
    """A name: the value text trimmed of surrounding punctuation."""
    stripped = text.strip().rstrip(";,")
    if not stripped or len(stripped) > 120:
        return None
    start = text.index(stripped)
    return stripped, start, start + len(stripped)


def parse_underlyings(text: str) -> Parsed:
    """One or more underlyings (``A, B and C``) as a tuple of names."""
    stripped = text.strip().rstrip(";,")
    if not stripped or len(stripped) > 240:
        return None
    start = text.index(stripped)
    parts = re.split(r",\s+(?:and\s+)?|\s+and\s+|;\s*", stripped)
    names = tuple(re.sub(r"^the\s+", "", p.strip(), flags=re.I) for p in parts if p.strip())
    return (names, start, start + len(stripped)) if names else None


_FLOATING = re.compile(
    r"(?:(?P<tenor>\d{1,2}\s?[MW])\s+)?(?P<index>SOFR|EURIBOR|SONIA|SARON|TONA|LIBOR|ESTR|€STR)(?:\s+\d{1,2}\s?M)?"
    r"\s*(?:\+|plus)\s*(?P<spread>\d+(?:\.\d+)?)\s*(?P<unit>bps|bp|basis points|%|per\s*cent\.?)",
    re.I,
)


# field name -> (label pattern, value parser)
_FIELDS: dict[str, tuple[str, Callable[[str], Parsed]]] = {
    "issuer": (r"Issuer|Issuing Entity", parse_name),
    "guarantor": (r"Guarantor", parse_name),
    "isin": (r"ISIN(?: Code)?", parse_isin),
    "cusip": (r"CUSIP(?: Number)?", parse_cusip),
    "product_type": (r"Product Type|Type of Notes|Product Name|Instrument Type", parse_product),
    "currency": (r"(?:Specified |Settlement |Issue )?Currency", parse_currency),
    "notional": (
        r"Aggregate (?:Nominal|Principal) Amount|Issue Size|Notional Amount|(?:Nominal|Principal) Amount",
        parse_amount,
    ),
    "issue_price": (r"Issue Price|Offering Price|Offer Price", parse_percent),
    "trade_date": (r"Trade Date|Pricing Date", parse_date),
    "issue_date": (r"Issue Date|Settlement Date|Original Issue Date", parse_date),
    "maturity_date": (r"(?:Final )?Maturity Date|(?:Final )?Redemption Date", parse_date),
    "coupon_rate": (r"Coupon Rate|Interest Rate|Fixed Rate|Conditional Coupon|Coupon", parse_percent),
    "floating": (r"Floating Rate|Reference Rate|Floating Rate Option", parse_name),
    "payment_frequency": (r"(?:Payment|Coupon|Interest Payment) Frequency", parse_frequency),
    "day_count": (r"Day Count(?: Fraction| Convention| Basis)?", parse_day_count),
    "underlying": (r"Underlying(?: Assets?| Indices| Index| Shares?)?|Reference Assets?", parse_underlyings),
    "initial_level": (r"Initial (?:Reference )?Level|Initial (?:Fixing )?Price|Initial Fixing Level", parse_number),
    "barrier_level": (r"Barrier Level|Knock-in Barrier|Knock-in Level|Protection Barrier|Barrier", parse_percent),
    "strike_level": (r"Strike Level|Strike Price|Strike", parse_percent),
    "autocall_level": (
        r"Autocall (?:Trigger )?Level|Early Redemption (?:Trigger )?Level|Autocall Barrier",
        parse_percent,
    ),
    "governing_law": (r"Governing Law|Applicable Law", parse_law),
}
FIELDS: tuple[str, ...] = (*(f for f in _FIELDS if f != "floating"), "floating_index", "floating_spread")

_BULLET = re.compile(r"^[ \t]*(?:[-•*▪\u2013][ \t]+)?")
_LINE_PATTERNS = {
    field: re.compile(r"(?P<label>" + label + r")\b(?:[ \t]*[:|][ \t]*|[ \t]+)(?P<value>\S.*)$", re.IGNORECASE)
    for field, (label, _) in _FIELDS.items()
}
_LABEL_PATTERNS = {field: re.compile(r"(?:" + label + r")$", re.IGNORECASE) for field, (label, _) in _FIELDS.items()}
_PROSE_CONNECTOR = r"(?:\s+of\s+the\s+Notes)?\s*(?:\bis\b|\bwill\s+be\b|\bshall\s+be\b|\bof\b|:)\s*"
_PROSE_NAMED = re.compile(  # issued by X (the "Issuer")
    r"\b(?:by|in|to)\s+(?P<value>(?:(?!\.\s+[A-Z])[^()\"“”\n])+?)\s*"
    r"\((?:the|each an?)\s+[\"“](?P<label>[^\"”]{2,40})[\"”]\)"
)


_PROSE_PHRASES: tuple[tuple[str, re.Pattern[str], Callable[[str], Parsed]], ...] = (
    ("governing_law", re.compile(r"\b(?:governed by|construed in accordance with)\b", re.I), parse_law),
    ("product_type", re.compile(r"\b(?:term sheet|describes|final terms)\b[:\s]", re.I), parse_product),
)


def _field_for_label(label: str) -> str | None:
    for field, pattern in _LABEL_PATTERNS.items():
        if pattern.match(label):
            return field
    return None


def _line_candidates(text: str) -> Iterable[tuple[str, int, str]]:
    """``(field, value offset in text, value text)`` for each ``Label: value`` line; longest label wins."""
    pos = 0
    for line in text.split("\n"):
        lead = _BULLET.match(line)
        skip = lead.end() if lead else 0
        best: tuple[int, str, re.Match[str]] | None = None
        for field, pattern in _LINE_PATTERNS.items():
            m = pattern.match(line, skip)
            if m and (best is None or len(m.group("label")) > best[0]):
                best = (len(m.group("label")), field, m)
        if best is not None:
            yield best[1], pos + best[2].start("value"), best[2].group("value").rstrip()
        pos += len(line) + 1


def _expand(
    field: str, value: FieldValue, text: str, page: int, start: int, end: int, confidence: float
) -> Iterable[TermSheetField]:
    if field != "floating":
        yield TermSheetField(field, value, text, page, start, end, confidence)
        return
    m = _FLOATING.search(text)
    if not m:
        return
    spread = float(m.group("spread"))
    if m.group("unit").lower().startswith("b"):
        spread /= 100
    index = m.group("index").upper()
    yield TermSheetField("floating_index", index, text, page, start, end, confidence)
    yield TermSheetField("floating_spread", round(spread, 6), text, page, start, end, confidence)


def _confidence(field: str, base: float) -> float:
    return 0.99 if field in {"isin", "cusip"} else base


def extract_termsheet(parsed: ParsedDocument) -> list[TermSheetField]:
    """Every term-sheet field found in the document, first occurrence wins, in :data:`FIELDS` order."""
    found: dict[str, TermSheetField] = {}

    def keep(items: Iterable[TermSheetField]) -> None:
        for item in items:
            found.setdefault(item.name, item)

    for page in parsed.pages:
        text = page.text
        for field, offset, value_text in _line_candidates(text):
            if field in found:
                continue
            parsed_value = _FIELDS[field][1](value_text)
            if parsed_value is None:
                continue
            value, s, e = parsed_value
            shown = value_text if field == "floating" else value_text[s:e]
            start, end = (offset, offset + len(value_text)) if field == "floating" else (offset + s, offset + e)
            keep(_expand(field, value, shown, page.number, start, end, _confidence(field, 0.95)))
    for page in parsed.pages:
        flat = page.text.replace("\n", " ").replace("\r", " ")
        for m in _PROSE_NAMED.finditer(flat):
            named = _field_for_label(m.group("label").strip())
            if named is not None and named in {"issuer", "guarantor", "underlying", "currency"} and named not in found:
                parsed_value = _FIELDS[named][1](m.group("value"))
                if parsed_value is not None:
                    value, s, e = parsed_value
                    start = m.start("value")
                    keep(_expand(named, value, m.group("value")[s:e], page.number, start + s, start + e, 0.85))
        for field, (label, parser) in _FIELDS.items():
            if field in found or (field == "floating" and "floating_index" in found):
                continue
            if field in {"issuer", "guarantor", "underlying"}:
                continue
            for m in re.finditer(r"\b(?:" + label + r")\b" + _PROSE_CONNECTOR, flat, re.IGNORECASE):
                window = flat[m.end() : m.end() + 120]
                if field == "floating":
                    fm = _FLOATING.match(window)
                    if fm:
                        keep(_expand(field, fm.group(), fm.group(), page.number, m.end(), m.end() + fm.end(), 0.85))
                        break
                    continue
                parsed_value = parser(window)
                if parsed_value is None or parsed_value[1] > 2:
                    continue
                value, s, e = parsed_value
                keep(
                    _expand(field, value, window[s:e], page.number, m.end() + s, m.end() + e, _confidence(field, 0.85))
                )
                break
    for page in parsed.pages:
        flat = page.text.replace("\n", " ").replace("\r", " ")
        for field, pattern, parser in _PROSE_PHRASES:
            if field in found:
                continue
            for m in pattern.finditer(flat):
                window = flat[m.end() : m.end() + 160]
                parsed_value = parser(window)
                if parsed_value is not None:
                    value, s, e = parsed_value
                    keep(_expand(field, value, window[s:e], page.number, m.end() + s, m.end() + e, 0.8))
                    break
    if "currency" not in found and "notional" in found:
        amount = found["notional"]
        if isinstance(amount.value, Amount):
            keep(
                [
                    TermSheetField(
                        "currency", amount.value.currency, amount.text, amount.page, amount.start, amount.end, 0.7
                    )
                ]
            )
    return [found[f] for f in FIELDS if f in found]


def fields_as_metadata(fields: Iterable[TermSheetField], prefix: str = "ts.") -> dict[str, str]:
    """``{"ts.maturity_date": "2029-03-15", ...}``: canonical strings usable as search filters."""
    return {prefix + f.name: f.canonical for f in fields}


def stored_fields(version: DocumentVersion) -> dict[str, str]:
    """The term-sheet fields ingestion stored in a version's metadata (:func:`fields_as_metadata`)."""
    return {k.removeprefix("ts."): v for k, v in version.metadata.items() if k.startswith("ts.")}


def select_term_sheets(
    versions: Iterable[DocumentVersion], *, underlying: str | None = None, maturing_before: str | None = None
) -> list[dict[str, str]]:
    """The term sheets among ``versions`` (by type, or by stored fields) on ``underlying`` and
    maturing before the date ``maturing_before`` (YYYY-MM-DD), each as its ``document``,
    ``version_id`` and stored fields."""
    try:
        before = date.fromisoformat(maturing_before) if maturing_before else None
    except ValueError as exc:
        raise QueryError(f"{maturing_before!r} is not a date (YYYY-MM-DD)") from exc
    rows = []
    for v in versions:
        fields = stored_fields(v)
        if v.doc_type != "term_sheet" and not fields:
            continue
        if underlying and underlying.lower() not in fields.get("underlying", "").lower().split("; "):
            continue
        if before and not (fields.get("maturity_date") and _maturity(v, fields["maturity_date"]) < before):
            continue
        rows.append({"document": v.name, "version_id": v.id, **fields})
    return rows


def _maturity(version: DocumentVersion, stored: str) -> date:
    try:
        return date.fromisoformat(stored)
    except ValueError as exc:
        raise StoreError(
            f"{version.name} (version {version.id[:12]}): its stored maturity date {stored!r} is not a date "
            "(YYYY-MM-DD); ingest it again with --meta ts.maturity_date=YYYY-MM-DD"
        ) from exc
