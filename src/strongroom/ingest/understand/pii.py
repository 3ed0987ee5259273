"""Sensitive-data detection with validation, and redaction that leaves no detected secret.

A regex proposes a candidate; a validator (Luhn, mod-97, SSN ranges, ABA checksum, key
shape) or nearby context decides, and sets the confidence. Financial identifiers are in
:mod:`identifiers`, credentials (through detect-secrets) in :mod:`credentials`; e-mail,
phone and configured names are here. A :class:`Finding` records the type, the page and
character span, the confidence and a masked preview; it never holds the secret itself, so
findings can be stored and logged.

    >>> [f.type for f in detect_text("Card 4111 1111 1111 1111, mail a@b.com", page=1)]
    ['card', 'email']
    >>> redact_text("Card 4111 1111 1111 1111.", detect_text("Card 4111 1111 1111 1111.", page=1))
    'Card [REDACTED:CARD].'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from strongroom.ingest.understand.credentials import credentials
from strongroom.ingest.understand.identifiers import Raw, accounts, cards, ibans, routing_numbers, ssns
from strongroom.ingest.understand.policy import FindingType, Policy

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


_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_PHONE = re.compile(
    # not inside a longer run of digit groups (a card or account number), on either side
    r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}"
    r"(?![\w-])(?![ .]\d)"
)
_MARKER = re.compile(r"\[REDACTED:[A-Z_]+\]")
# Identifier types whose other spellings (run together, lower case) are redacted with them.
_SPELLED: frozenset[FindingType] = frozenset({"card", "iban", "ssn", "aba_routing", "account_number"})
_SPELLING_SEPARATORS = re.compile(r"[\s.\-]+")
_ACTION_RANK = {"flag": 0, "redact": 1, "reject": 2}
# A redacted value is also removed where it appears elsewhere unlabelled, if it is at least this long;
# shorter ones (a labelled four-letter password) only where a word boundary surrounds them.
_REPEAT_ANYWHERE = 12
_REPEAT_AS_WORD = 6


def _mask(value: str) -> str:
    compact = re.sub(r"\s", "", value)
    return "****" + compact[-4:] if len(compact) > 6 else "****"


def _emails(text: str) -> Iterable[Raw]:
    for m in _EMAIL.finditer(text):
        yield "email", m.start(), m.end(), 0.95


def _phones(text: str) -> Iterable[Raw]:
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 10 <= len(digits) <= 15:
            yield "phone", m.start(), m.end(), 0.8 if m.group().startswith(("+", "(")) else 0.65


def _names(text: str, names: Sequence[str]) -> Iterable[Raw]:
    for name in names:
        if not name.strip():
            continue
        words = [re.escape(w) for w in name.split()]
        pattern = re.compile(r"\b" + r"\s+".join(words) + r"\b", re.IGNORECASE)
        for m in pattern.finditer(text):
            yield "person_name", m.start(), m.end(), 0.9 if m.group() == name else 0.75


def _resolve(raw: list[Raw], policy: Policy) -> list[Raw]:
    """One finding per stretch of text. The strongest candidate (the policy's harsher action first,
    then confidence, then length) names the stretch, and the stretch covers every candidate that
    overlaps it, so a redaction never leaves the part of a secret a weaker candidate saw."""
    ranked = sorted(
        (r for r in raw if r[3] >= policy.min_confidence),
        key=lambda r: (-_ACTION_RANK[policy.action_for(r[0])], -r[3], -(r[2] - r[1]), r[1]),
    )
    kept: list[tuple[FindingType, float]] = []
    spans: list[list[int]] = []
    for kind, start, end, confidence in ranked:
        for span in spans:
            if start < span[1] and end > span[0]:
                span[0], span[1] = min(span[0], start), max(span[1], end)
                break
        else:
            kept.append((kind, confidence))
            spans.append([start, end])
    # Widened stretches may now overlap each other: merge them, the stronger one naming the result.
    merged: list[Raw] = []
    for (kind, confidence), (start, end) in sorted(zip(kept, spans, strict=True), key=lambda ks: ks[1][0]):
        if merged and start < merged[-1][2]:
            last = merged[-1]
            merged[-1] = (last[0], last[1], max(last[2], end), last[3])
        else:
            merged.append((kind, start, end, confidence))
    return merged


def detect_text(text: str, page: int, policy: Policy | None = None) -> list[Finding]:
    """All findings on one page's text, sorted by position, at or above the policy's confidence.

    Overlapping candidates become one finding (see :func:`_resolve`), so an IBAN's digits are
    not also reported as a phone number, and a password inside a connection string that also
    looks like an e-mail address is redacted, not merely flagged. Redaction markers already in
    the text are never findings, nor labels of one: redacting redacted text changes nothing.
    """
    policy = policy or Policy()
    if "[REDACTED:" in text:  # mask markers, same length: "PASSWORD]: x" inside one is no label
        text = _MARKER.sub(lambda m: "[" + "#" * (len(m.group()) - 2) + "]", text)
    raw = [
        *credentials(text),
        *cards(text),
        *ibans(text),
        *ssns(text),
        *routing_numbers(text),
        *accounts(text),
        *_emails(text),
        *_phones(text),
        *_names(text, policy.person_names),
    ]
    if not raw:
        return []
    return [Finding(t, page, s, e, c, _mask(text[s:e])) for t, s, e, c in _resolve(raw, policy)]


def redaction_marker(finding_type: FindingType) -> str:
    """The text that replaces a redacted finding, e.g. ``[REDACTED:CARD]``."""
    return f"[REDACTED:{finding_type.upper()}]"


def _spellings(value: str, finding_type: FindingType) -> set[str]:
    spellings = {value.strip()}
    if finding_type in _SPELLED:
        spellings.add(_SPELLING_SEPARATORS.sub("", value))
        spellings.add(_SPELLING_SEPARATORS.sub(" ", value))
    return {s for s in spellings if len(s) >= _REPEAT_AS_WORD}


def redact_text(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with every finding replaced by its marker, and every other occurrence of a
    redacted value too (so a secret repeated where the detector missed it is still gone):
    in any letter case, an identifier also run together, and a value under twelve characters
    only as a whole word (a short labelled password must not blank every word that holds it).
    """
    if not findings:
        return text
    pieces: list[str] = []
    pos = 0
    repeats: dict[str, FindingType] = {}
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < pos:
            continue
        pieces.append(text[pos : f.start])
        pieces.append(redaction_marker(f.type))
        for spelling in _spellings(text[f.start : f.end], f.type):
            repeats.setdefault(spelling.lower(), f.type)
        pos = f.end
    pieces.append(text[pos:])
    result = "".join(pieces)
    lowered = result.lower()
    repeats = {spelling: kind for spelling, kind in repeats.items() if spelling in lowered}
    if not repeats:  # the common case: no value occurs again, and no pattern need be built
        return result
    alternatives = []
    for spelling in sorted(repeats, key=len, reverse=True):
        escaped = re.escape(spelling)
        alternatives.append(
            escaped if len(spelling) >= _REPEAT_ANYWHERE else rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])"
        )
    pattern = re.compile("|".join(alternatives), re.IGNORECASE)
    return pattern.sub(lambda m: redaction_marker(repeats[m.group().lower()]), result)


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
