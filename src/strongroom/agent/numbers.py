"""Numbers as a financial text writes them: "1,234.5", "(1,234)", "4.25%", "$81.8 billion".

Pure functions shared by the calculator (its inputs are numbers copied from evidence) and the
citation check (an answer's numbers must be stated by the evidence it cites).

>>> parse_figure("$81.8 billion").amount
Decimal('81800000000.0')
>>> [f.text for f in find_figures("Net sales were $81,797 million on July 1, 2023 [1], up 4.25%.")]
['$81,797 million', '4.25%']

What is not a figure to check: dates ("July 1, 2023", "2023-07-01", a bare year such as
2023), citation markers ("[1]"), references ("page 4", "Note 5", "Item 7"), period lengths
("12 months ended"), numbers glued to letters ("Q3", "10-Q", "CET1", "3rd") and bare
single-digit integers ("Tier 1", "Stage 2", "3 segments": too ambiguous to check).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = ["SCALES", "Figure", "find_figures", "parse_figure", "same_figure"]

#: what a scale word multiplies by
SCALES: dict[str, int] = {
    "thousand": 10**3,
    "thousands": 10**3,
    "k": 10**3,
    "million": 10**6,
    "millions": 10**6,
    "mn": 10**6,
    "mm": 10**6,
    "m": 10**6,
    "billion": 10**9,
    "billions": 10**9,
    "bn": 10**9,
    "b": 10**9,
    "trillion": 10**12,
    "trillions": 10**12,
    "tn": 10**12,
}

_FIGURE = re.compile(
    r"""
    (?<![\w.,/-])                                  # not inside a word, a number or a date
    (?P<minus>[-\u2212])?
    (?P<open>\()?
    (?P<currency>(?:US\$|[$\u20ac\u00a3\u00a5]|USD|EUR|GBP|CHF|JPY)\s?)?
    (?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    (?P<close>\))?
    (?:
        \s?(?P<percent>%|\bper\s?cent\b|\bpercent\b)
      | (?P<glued>[kKmMbB]|bn|mn|mm|tn)\b         # $5m, 2.1bn: a scale letter glued on
      | \s(?P<word>thousand|million|billion|trillion)s?\b
      | \s(?P<abbr>bn|mn|tn)\b
    )?
    (?![\w%])(?!-[A-Za-z])(?![.,]\d)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
# Dates, markers and references: one \b, then letter-led or digit-led forms (factored so the
# engine tries little at each position: this runs over every evidence text).
_NOT_FIGURES = re.compile(
    rf"\b(?:"
    rf"{_MONTH}(?:\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|,?\s+\d{{4}})"  # July 1, 2023 / July 1 / July 2023
    r"|(?:pages?|pp?\.|notes?|items?|sections?|tables?|figures?|exhibits?|parts?|rules?|articles?|steps?|"
    r"levels?|tiers?|stages?|pillars?|basel|quarters?|Q)\s*\d+(?:\.\d+)*"  # page 4, Note 5, Q3
    r"|\d(?:\d{3}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"  # 2023-07-01
    r"|\d?/\d{1,2}/\d{2,4}"  # 7/1/2023
    rf"|\d?(?:st|nd|rd|th)?\s+{_MONTH}(?:,?\s+\d{{4}})?"  # 1 July 2023
    r"|\d*\s+(?:months?|weeks?)\s+ended)"  # 12 months ended
    r")\b"
    r"|\[\s*(?:(?:sources?|src|refs?)\s*)?\d+(?:\s*[,;]\s*(?:(?:sources?|src|refs?)\s*)?\d+)*\s*\]",  # [1], [1, 2]
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Figure:
    """A number as written. ``value`` is the number without its scale or percent sign, its
    sign applied ("(1,234)" is -1234); ``scale`` the multiplier a word states (1 without
    one); ``places`` the decimals written; ``start``/``end`` its span in the text read."""

    text: str
    value: Decimal
    scale: int = 1
    percent: bool = False
    places: int = 0
    start: int = 0
    end: int = 0

    @property
    def amount(self) -> Decimal:
        """What the figure means as one number: "$81.8 billion" is 81,800,000,000; "12%" is 0.12."""
        if self.percent:
            return self.value / 100
        return self.value * self.scale


def _figure(m: re.Match[str], offset: int = 0) -> Figure | None:
    digits = m.group("digits")
    negative = bool(m.group("minus"))
    if m.group("open") and m.group("close"):
        negative = True
    elif m.group("open") or m.group("close"):
        return None  # "(see 4" or "4)": a bracket, not accounting's negative
    try:
        value = Decimal(digits.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        return None
    scale_word = (m.group("glued") or m.group("word") or m.group("abbr") or "").lower()
    places = len(digits.split(".", 1)[1]) if "." in digits else 0
    start, end = m.start() + offset, m.end() + offset
    return Figure(
        m.group(0).strip(),
        -value if negative else value,
        SCALES.get(scale_word, 1),
        bool(m.group("percent")),
        places,
        start,
        end,
    )


def parse_figure(text: str) -> Figure | None:
    """The one number ``text`` is ("1,234.5", "12%", "(81.2)", "$81.8 billion", "-3"), or
    None when it is not exactly one number."""
    stripped = text.strip()
    m = _FIGURE.fullmatch(stripped)
    if m is None:
        return None
    return _figure(m)


def _is_plain_small(f: Figure) -> bool:
    """A bare integer below 10 ("Tier 1", "3 segments"): too ambiguous to check."""
    return not f.percent and f.scale == 1 and f.places == 0 and abs(f.value) < 10 and f.text.lstrip("-\u2212").isdigit()


def _is_year(f: Figure) -> bool:
    return f.text.isdigit() and len(f.text) == 4 and 1900 <= int(f.text) <= 2099


def find_figures(text: str, *, every: bool = False) -> list[Figure]:
    """The figures ``text`` states, in order, skipping dates, markers and references (see the
    module's docstring). ``every`` keeps years and single digits too (for evidence, where a
    number an answer might repeat should be found whatever it looks like)."""
    masked = [(m.start(), m.end()) for m in _NOT_FIGURES.finditer(text)]
    out: list[Figure] = []
    for m in _FIGURE.finditer(text):
        if any(s < m.end() and m.start() < e for s, e in masked):
            continue
        f = _figure(m)
        if f is None:
            continue
        if not every and (_is_year(f) or _is_plain_small(f)):
            continue
        out.append(f)
    return out


def _close(value: Decimal, target: Decimal, places: int) -> bool:
    """``value`` rounds to ``target`` at ``places`` decimals (half a unit of the last place)."""
    return abs(value - target) <= Decimal(5).scaleb(-(places + 1))


def same_figure(stated: Figure, source: Figure, source_scale: int = 1) -> bool:
    """Whether ``stated`` (an answer's number) says what ``source`` (a number of the
    evidence) says, allowing other formats and rounding to the places ``stated`` shows.

    Signs are compared as magnitudes (prose says "a loss of 1,234" where a table prints
    "(1,234)"). ``source_scale`` is what the evidence says its plain figures are in ("(In
    millions)"), so "$81.8 billion" is supported by "81,797" there; without a stated scale
    on either side the numbers are compared as written ("81,797" and "81797" agree).
    """
    target = abs(stated.value)
    raw = abs(source.value)
    src_scale = source.scale if source.scale != 1 else source_scale
    # As written: "81,797" / "81797"; a percent against a rate column ("4.25" or 0.0425).
    if stated.scale == 1 or src_scale == 1:
        if _close(raw, target, stated.places):
            return True
        if stated.percent and not source.percent and _close(raw * 100, target, stated.places):
            return True
    if stated.percent or source.percent:
        return False
    # Scaled: both as absolute amounts, in the unit the answer wrote.
    return _close(raw * src_scale / stated.scale, target, stated.places)
