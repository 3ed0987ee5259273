"""Financial identifiers in text, in the spellings people actually write, decided by check digits.

A card, IBAN or SSN is found whether it is printed in groups, run together, separated by
spaces, dots or hyphens, written in lower case, or wrapped across a line break. A regex
proposes a run of digit (or letter) groups; a validator from :mod:`checkdigits` (Luhn,
mod-97 with the country's registered length, SSN ranges, ABA checksum) and the shape of
the groups decide, so a row of table figures ("118 468 461 468 476") or a year column is
not a card.

Each detector yields ``(type, start, end, confidence)`` over the text it is given.

    >>> [t for t, *_ in cards("card 4111.1111.1111.1111")], [t for t, *_ in ibans("gb82west12345698765432")]
    (['card'], ['iban'])
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from strongroom.ingest.understand.checkdigits import IBAN_LENGTHS, aba_valid, iban_valid, luhn_valid, ssn_valid
from strongroom.ingest.understand.policy import FindingType

__all__ = ["Raw", "accounts", "cards", "ibans", "routing_numbers", "ssns"]

Raw = tuple[FindingType, int, int, float]

# Between two groups: one space, dot or hyphen, or a line break (a hyphen may end the first line).
_GAP = r"(?:[ .\-]|[ \t]*-?[ \t]*\r?\n[ \t]*)"
_GAP_RE = re.compile(_GAP)
_LINE_BREAK = re.compile(r"[ \t]*-?[ \t]*\r?\n[ \t]*")

_CARD = re.compile(rf"(?<![\d.\-])\d(?:{_GAP}?\d){{12,18}}(?![\d\-])")
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9])|35")
_IBAN = re.compile(rf"(?<![A-Za-z0-9])[A-Za-z]{{2}}[ .\-]?\d{{2}}(?:{_GAP}?[A-Za-z0-9]){{10,30}}")
_SSN = re.compile(rf"(?<![\d.\-])\d{{3}}({_GAP})\d{{2}}({_GAP})\d{{4}}(?![\d\-])")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|social security|taxpayer|tin)\b|\bss(?:#|\s+no\b)", re.IGNORECASE)
_SSN_BARE = re.compile(r"\b(?:SSN|social security(?: number| no\.?)?)\s*[:#]?\s*(\d{9})\b", re.IGNORECASE)
_NINE = re.compile(r"(?<![\d-])\d{9}(?![\d-])")
_ROUTING_CONTEXT = re.compile(r"\b(?:ABA|routing|RTN|transit)\b", re.IGNORECASE)
_ACCOUNT = re.compile(r"\b(?:account|acct\.?)\s*(?:number|no\.?|#)\s*[:#]?\s*(\d[\d -]{4,18}\d)\b", re.IGNORECASE)


def _separators(run: str) -> tuple[set[str], int]:
    """The separator characters used between groups (line breaks aside) and the number of line breaks."""
    kinds: set[str] = set()
    breaks = 0
    for gap in _GAP_RE.findall(run):
        if "\n" in gap:
            breaks += 1
        else:
            kinds.add(gap)
    return kinds, breaks


def _grouped(groups: list[int]) -> bool:
    if len(groups) == 1:
        return True
    # 4-6-5 (Amex), 4-6-4 (Diners), 8-8 (a wrapped run whose line break became a space), or fours
    return groups in ([4, 6, 5], [4, 6, 4], [8, 8]) or (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4)


def _card_grouping(candidate: str) -> bool:
    """Cards print as one run or in groups of four (Amex 4-6-5, Diners 4-6-4), with one kind of
    separator; a line break may split a group (a wrapped number). A row of table figures does not."""
    kinds, breaks = _separators(candidate)
    if len(kinds) > 1 or breaks > 1:
        return False
    if _grouped([len(g) for g in _GAP_RE.split(candidate)]):
        return True
    return breaks == 1 and _grouped([len(g) for g in _GAP_RE.split(_LINE_BREAK.sub("", candidate))])


def _card_in(run: str) -> tuple[int, int] | None:
    """The longest valid card number in a run of digit groups, aligned on group boundaries."""
    gaps = [(m.start(), m.end()) for m in _GAP_RE.finditer(run)]
    starts = [0] + [end for _, end in gaps]
    ends = [start for start, _ in gaps] + [len(run)]
    best: tuple[int, int] | None = None
    for start in starts:
        for end in ends:
            if end <= start or (best is not None and end - start <= best[1] - best[0]):
                continue
            digits = re.sub(r"\D", "", run[start:end])
            if not 13 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits):
                continue
            if luhn_valid(digits) and _card_grouping(run[start:end]):
                best = (start, end)
    return best


def cards(text: str) -> Iterable[Raw]:
    """Payment card numbers that pass the Luhn check, with an issuer prefix and a card's grouping."""
    pos = 0
    while m := _CARD.search(text, pos):
        if span := _card_in(m.group()):
            yield "card", m.start() + span[0], m.start() + span[1], 0.95
            pos = m.start() + span[1]
        else:  # the run may have started with figures that are not part of a card: try its next group
            pos = m.start() + 1


def _iban_shape(candidate: str) -> bool:
    """One letter case throughout, at most one line break, and at most two groups of letters only
    (a bank code such as WEST): prose ("at 20 percent of the ...") fails."""
    letters = [ch for ch in candidate if ch.isalpha()]
    if not (all(ch.isupper() for ch in letters) or all(ch.islower() for ch in letters)):
        return False
    if candidate.count("\n") > 1:
        return False
    # The first group holds the country code (alone, as in "GB 82 ...", or with the check digits).
    return sum(1 for g in _GAP_RE.split(candidate)[1:] if g.isalpha()) <= 2


def ibans(text: str) -> Iterable[Raw]:
    """IBANs of a registered country and length whose mod-97 check is right, in any case and spacing."""
    pos = 0
    while m := _IBAN.search(text, pos):
        pos = m.start() + 1  # a rejected run may hold an IBAN that starts at one of its later words
        run = m.group()
        length = IBAN_LENGTHS.get(run[:2].upper())
        if length is None:
            continue
        alnum = [i for i, ch in enumerate(run) if ch.isalnum()]
        if len(alnum) < length:
            continue
        end = alnum[length - 1] + 1
        if end < len(run) and run[end].isalnum():  # the IBAN must end where a group ends
            continue
        candidate = run[:end]
        if _iban_shape(candidate) and iban_valid(candidate):
            yield "iban", m.start(), m.start() + end, 0.98
            pos = m.start() + end


def ssns(text: str) -> Iterable[Raw]:
    """US SSNs in an issuable range: ``123-45-6789``, spaced, dotted or wrapped; nine digits when labelled."""
    lowered = text.lower()
    for m in _SSN.finditer(text):
        first, second = m.group(1), m.group(2)
        if not ssn_valid(m.group()):
            continue
        kinds = {g for g in (first, second) if "\n" not in g}
        if len(kinds) > 1:
            continue
        labelled = _SSN_CONTEXT.search(lowered, max(0, m.start() - 40), m.start()) is not None
        if kinds == {"-"}:
            yield "ssn", m.start(), m.end(), 0.95 if labelled else 0.8
        else:  # spaces, dots or a line break: ordinary figures look like this more often
            yield "ssn", m.start(), m.end(), 0.9 if labelled else 0.6
    if "ssn" in lowered or "social security" in lowered:
        for m in _SSN_BARE.finditer(text):
            if ssn_valid(m.group(1)):
                yield "ssn", m.start(1), m.end(1), 0.9


def routing_numbers(text: str) -> Iterable[Raw]:
    """ABA routing numbers: nine digits with a valid checksum and a routing word just before."""
    for m in _NINE.finditer(text):
        if aba_valid(m.group()) and _ROUTING_CONTEXT.search(text, max(0, m.start() - 60), m.start()):
            yield "aba_routing", m.start(), m.end(), 0.9


def accounts(text: str) -> Iterable[Raw]:
    """Account numbers written after an "account number" label."""
    if "acc" not in text.lower():
        return
    for m in _ACCOUNT.finditer(text):
        digits = re.sub(r"[ -]", "", m.group(1))
        if 6 <= len(digits) <= 17:
            yield "account_number", m.start(1), m.end(1), 0.75
