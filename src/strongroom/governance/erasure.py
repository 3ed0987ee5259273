"""Erasure, as pure rules: which strings an identifier stands for, how text is scrubbed of it,
and the values an erasure produces (its plan, its report, its proof).

An identifier (a customer's name, an account number) is turned into :class:`Needles`: the
forms the platform may have stored it in, matched case-insensitively.

What is matched:

- the identifier as given, and with its whitespace collapsed: between its whitespace-separated
  parts any run of whitespace, none included (``Jane Quixote``, ``jane   quixote``,
  ``Jane\\nQuixote`` as a PDF line break left it, ``GB29NWBK60161331926819`` for
  ``GB29 NWBK 6016 1331 9268 19``), in any letter case;
- its Unicode NFC and NFKC forms (a composed and a decomposed ``ü``), and its case-folded
  form; ``ss`` also matches ``ß`` (upper case turns ``Strauß`` into ``STRAUSS``, so erasing
  either finds both);
- its JSON-escaped form (``M\\u00fcller``), which is how ``json.dumps`` writes a non-ASCII
  name into a metadata column or a JSON-lines file;
- anywhere inside longer text: ``Quixoteville`` loses its ``Quixote`` (erasing too much of
  the identifier is the safe side; erasing a word that merely contains it is the price).

What is not matched (say so to whoever asks for an erasure, and erase each form that matters
by its own request): other spellings, initials (``J. Quixote``), the parts alone (``Quixote``
without ``Jane``), punctuation inside the identifier that was not in the request
(``6016-1331`` for ``6016 1331``), transliterations, and hashes of text that held it (content
addresses such as version ids are SHA-256 of a file's bytes: they name, they do not contain).

An identifier must hold at least :data:`MIN_LENGTH` characters that are not whitespace, and
no square bracket: every prefix and suffix of the :data:`MARKER` holds one, so text beside a
marker can never spell the identifier again, and one pass of :func:`scrub` leaves none.

    >>> needles = Needles.of("Jane Quixote")
    >>> needles.scrub("Dear JANE  QUIXOTE, re: jane quixote's account")
    "Dear [erased], re: [erased]'s account"
    >>> needles.count("no one here")
    0
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from strongroom.errors import QueryError

__all__ = [
    "MARKER",
    "MIN_LENGTH",
    "ErasurePlan",
    "ErasureReport",
    "Needles",
    "VerifyReport",
    "identifier_digest",
    "normalise",
    "scrub",
]

#: what every occurrence of an erased identifier becomes
MARKER = "[erased]"
#: fewer characters than this (whitespace aside) would erase common words: refused
MIN_LENGTH = 4
_MAX_LENGTH = 200
_MAX_ROUNDS = 64


def normalise(identifier: str) -> str:
    """The identifier as hashed and compared: NFKC, whitespace collapsed, case folded."""
    return " ".join(unicodedata.normalize("NFKC", identifier).split()).casefold()


def identifier_digest(identifier: str, key: bytes) -> str:
    """A keyed hash (HMAC-SHA256, hex) of the normalised identifier: what the audit log and the
    erasure register keep, so a later ``verify`` can check the identifier it is given is the
    one erased, and nobody without the key can confirm a guess."""
    return hmac.new(key, normalise(identifier).encode(), hashlib.sha256).hexdigest()


def _forms(identifier: str) -> tuple[str, ...]:
    base = " ".join(identifier.split())
    forms: set[str] = set()
    nfkc = unicodedata.normalize("NFKC", base)
    for form in (base, unicodedata.normalize("NFC", base), nfkc, nfkc.casefold()):
        forms.add(form)
        escaped = json.dumps(form)[1:-1]  # ensure_ascii: é as \u00e9
        forms.add(escaped)
    return tuple(sorted(forms, key=lambda f: (-len(f), f)))


def _pattern_text(form: str) -> str:
    # "ss" also matches the sharp s: upper case and case folding turn "Strauß" into "STRAUSS"/"strauss"
    return r"\s*".join(_SHARP_S.sub("(?:ss|ß|ẞ)", re.escape(part)) for part in form.split())


_SHARP_S = re.compile("ss", re.IGNORECASE)
_SHARP_S_BYTES = re.compile(b"ss", re.IGNORECASE)


@dataclass(frozen=True)
class Needles:
    """The forms of one identifier, and the two things done with them: count, and scrub.

    Build it with :meth:`of`, which checks the identifier.
    """

    forms: tuple[str, ...]
    pattern: re.Pattern[str] = field(repr=False, compare=False)
    byte_pattern: re.Pattern[bytes] = field(repr=False, compare=False)

    @classmethod
    def of(cls, identifier: str) -> Needles:
        """The needles of ``identifier``; :class:`QueryError` for one too short, too long or
        part of the marker."""
        solid = "".join(identifier.split())
        if len(solid) < MIN_LENGTH:
            raise QueryError(f"an identifier to erase needs at least {MIN_LENGTH} characters besides spaces")
        if len(identifier) > _MAX_LENGTH:
            raise QueryError(f"an identifier to erase is at most {_MAX_LENGTH} characters")
        if any(unicodedata.category(c) == "Cc" and not c.isspace() for c in identifier):
            raise QueryError("an identifier to erase holds no control characters")
        if "[" in identifier or "]" in identifier:  # only then could text beside a marker spell it again
            raise QueryError("an identifier to erase holds no square brackets (the erasure marker's)")
        forms = _forms(identifier)
        return cls(
            forms=forms,
            pattern=re.compile("|".join(_pattern_text(f) for f in forms), re.IGNORECASE),
            byte_pattern=_bytes_pattern(forms),
        )

    def count(self, text: str) -> int:
        """How many times the identifier occurs in ``text`` (any form, any case)."""
        return sum(1 for _ in self.pattern.finditer(text)) if text else 0

    def count_bytes(self, data: bytes) -> int:
        """How many times it occurs in raw bytes (UTF-8, its JSON escape; ASCII letters in any
        case, other letters as lower, upper, title or given case)."""
        return sum(1 for _ in self.byte_pattern.finditer(data)) if data else 0

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence replaced by :data:`MARKER` (see :func:`scrub`)."""
        return scrub(text, self)

    def scrub_value(self, value: object) -> object:
        """A JSON value (metadata) with every string in it, keys included, scrubbed."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, Mapping):
            return {self.scrub(str(k)): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_value(v) for v in value]
        return value

    def count_value(self, value: object) -> int:
        """Occurrences in every string of a JSON value, keys included."""
        if isinstance(value, str):
            return self.count(value)
        if isinstance(value, Mapping):
            return sum(self.count(str(k)) + self.count_value(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return sum(self.count_value(v) for v in value)
        return 0


def _bytes_pattern(forms: tuple[str, ...]) -> re.Pattern[bytes]:
    variants: set[str] = set()
    for form in forms:
        variants.update((form, form.lower(), form.upper(), form.title(), form.casefold()))
    sharp = b"(?:ss|" + "ß".encode() + b"|" + "ẞ".encode() + b")"
    parts = [rb"\s*".join(_SHARP_S_BYTES.sub(sharp, re.escape(p.encode())) for p in v.split()) for v in variants]
    parts.sort(key=len, reverse=True)
    return re.compile(b"|".join(parts), re.IGNORECASE)


def scrub(text: str, needles: Needles) -> str:
    """``text`` with every occurrence of the identifier replaced by :data:`MARKER`.

    Matches are replaced left to right, so the text between two markers held no match; and an
    identifier holds no bracket, so none can start or end inside a marker. One pass leaves no
    occurrence; the loop is a second lock on the same door. Idempotent.
    """
    out = text
    for _ in range(_MAX_ROUNDS):
        new = needles.pattern.sub(MARKER, out)
        if new == out:
            return out
        out = new
    raise QueryError("the identifier keeps reappearing next to the erasure marker; choose a longer identifier")


def _counts(counts: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(sorted(counts.items())))


@dataclass(frozen=True)
class ErasurePlan:
    """What one erasure request asks: an identifier's digest (never the identifier), or a
    document; who asked, when, and why (the reason scrubbed of the identifier)."""

    erasure_id: str
    identifier_sha: str  # identifier_digest, empty for a document erasure
    document_id: str
    reason: str
    requested_by: str
    requested_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "erasure_id": self.erasure_id,
            "identifier_hmac": self.identifier_sha,
            "document_id": self.document_id,
            "reason": self.reason,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
        }


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure did: occurrences found before and erased, per place (``versions``,
    ``pages``, ``chunks``, ``audit``, ``conversations``...), the documents kept by a legal
    hold, the originals removed, and the places it could not reach (``pending``)."""

    plan: ErasurePlan
    found: Mapping[str, int]
    erased: Mapping[str, int]
    held: tuple[str, ...] = ()
    originals_removed: int = 0
    pending: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "found", _counts(self.found))
        object.__setattr__(self, "erased", _counts(self.erased))

    def as_dict(self) -> dict[str, object]:
        return {
            **self.plan.as_dict(),
            "found": dict(sorted(self.found.items())),
            "erased": dict(sorted(self.erased.items())),
            "held": list(self.held),
            "originals_removed": self.originals_removed,
            "pending": list(self.pending),
        }


@dataclass(frozen=True)
class VerifyReport:
    """Where the identifier of an erasure still occurs: occurrences per place (a file's path
    under the home, ``postgres:schema.table.column``, a store's own search); ``proven`` when
    every count is zero and no place was left unsearched."""

    erasure_id: str
    found: Mapping[str, int]
    searched: int  # how many places (files, columns, stores) were searched
    unsearched: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "found", _counts({k: v for k, v in self.found.items() if v}))

    @property
    def proven(self) -> bool:
        return not self.found and not self.unsearched

    def as_dict(self) -> dict[str, object]:
        return {
            "erasure_id": self.erasure_id,
            "proven": self.proven,
            "found": dict(sorted(self.found.items())),
            "searched": self.searched,
            "unsearched": list(self.unsearched),
        }
