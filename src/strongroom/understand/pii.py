"""Sensitive-data detection with validation, and redaction that leaves no detected secret.

A regex proposes a candidate; a validator (Luhn, mod-97, SSN ranges, ABA checksum, key
shape) or nearby context decides, and sets the confidence. A :class:`Finding` records the
type, the page and character span, the confidence and a masked preview; it never holds
the secret itself, so findings can be stored and logged.

    >>> [f.type for f in detect_text("Card 4111 1111 1111 1111, mail a@b.com", page=1)]
    ['card', 'email']
    >>> redact_text("Card 4111 1111 1111 1111.", detect_text("Card 4111 1111 1111 1111.", page=1))
    'Card [REDACTED:CARD].'
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from strongroom.understand.checkdigits import aba_valid, iban_valid, luhn_valid, ssn_valid
from strongroom.understand.policy import FindingType, Policy

__all__ = ["Finding", "detect_text", "find_markers", "redact_text", "redaction_marker"]


@dataclass(frozen=True)
class Finding:
    """One piece of sensitive data: its type, where it is, and how sure the detector is.

    ``start``/``end`` index the page text as parsed (before redaction). ``preview`` is a
    masked rendering (``****1111``), never the value.
    """

    type: FindingType
    page: int
    start: int
    end: int
    confidence: float
    preview: str


_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9])|35")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
_SSN_BARE = re.compile(r"\b(?:SSN|social security(?: number| no\.?)?)\s*[:#]?\s*(\d{9})\b", re.IGNORECASE)
_NINE = re.compile(r"(?<![\d-])\d{9}(?![\d-])")
_ROUTING_CONTEXT = re.compile(r"\b(?:ABA|routing|RTN|transit)\b", re.IGNORECASE)
_ACCOUNT = re.compile(r"\b(?:account|acct\.?)\s*(?:number|no\.?|#)\s*[:#]?\s*(\d[\d -]{4,18}\d)\b", re.IGNORECASE)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_PHONE = re.compile(
    # not inside a longer run of digit groups (a card or account number), on either side
    r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}"
    r"(?![\w-])(?![ .]\d)"
)
_API_KEYS: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), 0.95),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), 0.95),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), 0.9),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), 0.9),
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}\b"), 0.95),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"), 0.85),
)
_GENERIC_SECRET = re.compile(
    r"\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password)\b\s*[:=]\s*['\"]?"
    r"([A-Za-z0-9_\-+/=.]{16,})",
    re.IGNORECASE,
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----|\Z)", re.DOTALL
)


def _mask(value: str) -> str:
    compact = re.sub(r"\s", "", value)
    return "****" + compact[-4:] if len(compact) > 6 else "****"


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


def _card_grouping(candidate: str) -> bool:
    """Cards print as one run or in groups of four (Amex 4-6-5, Diners 4-6-4); a row of table figures does not."""
    groups = [len(g) for g in re.split(r"[ -]", candidate)]
    if len(groups) == 1:
        return True
    return groups in ([4, 6, 5], [4, 6, 4]) or (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4)


def _card_in(run: str) -> tuple[int, int] | None:
    """The longest valid card number in a run of digit groups, aligned on group boundaries."""
    starts = [0] + [i + 1 for i, ch in enumerate(run) if ch in " -"]
    ends = [i for i, ch in enumerate(run) if ch in " -"] + [len(run)]
    best: tuple[int, int] | None = None
    for start in starts:
        for end in ends:
            if end <= start or (best is not None and end - start <= best[1] - best[0]):
                continue
            digits = re.sub(r"[ -]", "", run[start:end])
            if not _card_grouping(run[start:end]):
                continue
            if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn_valid(digits):
                best = (start, end)
    return best


def _cards(text: str) -> Iterable[tuple[FindingType, int, int, float]]:
    for m in _CARD.finditer(text):
        if span := _card_in(m.group()):
            yield "card", m.start() + span[0], m.start() + span[1], 0.95


def _ibans(text: str) -> Iterable[tuple[FindingType, int, int, float]]:
    for m in _IBAN.finditer(text):
        # The pattern may swallow a trailing word; try the longest valid prefix.
        value = m.group()
        while value:
            if iban_valid(value):
                yield "iban", m.start(), m.start() + len(value), 0.98
                break
            cut = value.rfind(" ")
            if cut <= 4:
                break
            value = value[:cut]


def _ssns(text: str) -> Iterable[tuple[FindingType, int, int, float]]:
    for m in _SSN.finditer(text):
        if ssn_valid(m.group()):
            context = text[max(0, m.start() - 40) : m.start()].lower()
            yield "ssn", m.start(), m.end(), 0.95 if ("ssn" in context or "social security" in context) else 0.8
    for m in _SSN_BARE.finditer(text):
        if ssn_valid(m.group(1)):
            yield "ssn", m.start(1), m.end(1), 0.9


def _routing(text: str) -> Iterable[tuple[FindingType, int, int, float]]:
    for m in _NINE.finditer(text):
        if aba_valid(m.group()) and _ROUTING_CONTEXT.search(text[max(0, m.start() - 60) : m.start()]):
            yield "aba_routing", m.start(), m.end(), 0.9


def _accounts(text: str) -> Iterable[tuple[FindingType, int, int, float]]:
    for m in _ACCOUNT.finditer(text):
        digits = re.sub(r"[ -]", "", m.group(1))
        if 6 <= len(digits) <= 17:
            yield "account_number", m.start(1), m.end(1), 0.75


def _emails(text: str) -> Iterable[tuple[FindingType, int, int, float]]:
    for m in _EMAIL.finditer(text):
        yield "email", m.start(), m.end(), 0.95


def _phones(text: str) -> Iterable[tuple[FindingType, int, int, float]]:
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 10 <= len(digits) <= 15:
            yield "phone", m.start(), m.end(), 0.8 if m.group().startswith(("+", "(")) else 0.65


def _api_keys(text: str) -> Iterable[tuple[FindingType, int, int, float]]:
    for pattern, confidence in _API_KEYS:
        for m in pattern.finditer(text):
            yield "api_key", m.start(), m.end(), confidence
    for m in _GENERIC_SECRET.finditer(text):
        value = m.group(1)
        if _entropy(value) >= 3.5 and any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            yield "api_key", m.start(1), m.end(1), 0.7


def _private_keys(text: str) -> Iterable[tuple[FindingType, int, int, float]]:
    for m in _PRIVATE_KEY.finditer(text):
        yield "private_key", m.start(), m.end(), 0.99


def _names(text: str, names: Sequence[str]) -> Iterable[tuple[FindingType, int, int, float]]:
    for name in names:
        if not name.strip():
            continue
        words = [re.escape(w) for w in name.split()]
        pattern = re.compile(r"\b" + r"\s+".join(words) + r"\b", re.IGNORECASE)
        for m in pattern.finditer(text):
            yield "person_name", m.start(), m.end(), 0.9 if m.group() == name else 0.75


def detect_text(text: str, page: int, policy: Policy | None = None) -> list[Finding]:
    """All findings on one page's text, sorted by position, at or above the policy's confidence.

    Where two findings overlap, the more confident (then the longer) one wins, so an IBAN's
    digits are not also reported as a phone number.
    """
    policy = policy or Policy()
    raw = [
        *_private_keys(text),
        *_api_keys(text),
        *_cards(text),
        *_ibans(text),
        *_ssns(text),
        *_routing(text),
        *_accounts(text),
        *_emails(text),
        *_phones(text),
        *_names(text, policy.person_names),
    ]
    raw.sort(key=lambda r: (-r[3], -(r[2] - r[1]), r[1]))
    kept: list[tuple[FindingType, int, int, float]] = []
    for cand in raw:
        if cand[3] < policy.min_confidence:
            continue
        if all(cand[2] <= k[1] or cand[1] >= k[2] for k in kept):
            kept.append(cand)
    kept.sort(key=lambda r: r[1])
    return [Finding(t, page, s, e, c, _mask(text[s:e])) for t, s, e, c in kept]


def redaction_marker(finding_type: FindingType) -> str:
    """The text that replaces a redacted finding, e.g. ``[REDACTED:CARD]``."""
    return f"[REDACTED:{finding_type.upper()}]"


def redact_text(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with every finding replaced by its marker, and every other occurrence of a
    redacted value too (so a secret repeated where the detector missed it is still gone).
    """
    if not findings:
        return text
    values = {text[f.start : f.end]: f.type for f in findings}
    pieces: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < pos:
            continue
        pieces.append(text[pos : f.start])
        pieces.append(redaction_marker(f.type))
        pos = f.end
    pieces.append(text[pos:])
    result = "".join(pieces)
    for value, finding_type in sorted(values.items(), key=lambda kv: -len(kv[0])):
        if value and value in result:
            result = result.replace(value, redaction_marker(finding_type))
    return result


def find_markers(text: str, markers: Sequence[str]) -> list[tuple[str, int, int]]:
    """Case-insensitive phrase matches of ``markers`` (e.g. MNPI markers): (marker, start, end)."""
    found: list[tuple[str, int, int]] = []
    for marker in markers:
        words = [re.escape(w) for w in re.split(r"[\s-]+", marker) if w]
        if not words:
            continue
        pattern = re.compile(r"\b" + r"[\s-]+".join(words) + r"\b", re.IGNORECASE)
        found.extend((marker, m.start(), m.end()) for m in pattern.finditer(text))
    unique = {(start, end): marker for marker, start, end in reversed(found)}
    return sorted(((marker, start, end) for (start, end), marker in unique.items()), key=lambda x: x[1])
