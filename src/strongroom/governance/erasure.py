"""Erasure, as pure rules: which strings an identifier stands for, how text is scrubbed of it,
and the values an erasure produces (its plan, its report, its proof).

An identifier (a customer's name, an account number) is turned into :class:`Needles`: the
forms the platform may have stored it in, matched case-insensitively.

What is matched:

- the identifier's characters in order, in any letter case, with any run of whitespace (or
  none) between any two of them: ``Jane Quixote``, ``jane   quixote``, ``Jane\\nQuixote`` as a
  PDF line break left it; ``GB29NWBK60161331926819`` and ``GB29 NWBK 6016 1331 9268 19`` find
  each other whichever is given;
- its Unicode NFC and NFKC forms (a composed and a decomposed ``ü``), and its case-folded
  form; ``ss`` also matches ``ß`` (upper case turns ``Strauß`` into ``STRAUSS``, so erasing
  either finds both);
- its JSON-escaped forms (``M\\u00fcller``), which is how ``json.dumps`` writes a non-ASCII
  name into a metadata column or a JSON-lines file, at any depth (``M\\\\u00fcller``: JSON
  inside a JSON string, as a model's tool-call arguments are kept);
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
    """The identifier as hashed and compared: NFKC, without whitespace (matching ignores it),
    case folded; so ``GB29 NWBK 6016`` and ``gb29nwbk6016`` are one identifier."""
    return "".join(unicodedata.normalize("NFKC", identifier).split()).casefold()


def identifier_digest(identifier: str, key: bytes) -> str:
    """A keyed hash (HMAC-SHA256, hex) of the normalised identifier: what the audit log and the
    erasure register keep, so a later ``verify`` can check the identifier it is given is the
    one erased, and nobody without the key can confirm a guess."""
    return hmac.new(key, normalise(identifier).encode(), hashlib.sha256).hexdigest()


def _plain_forms(identifier: str) -> tuple[str, ...]:
    base = " ".join(identifier.split())
    nfkc = unicodedata.normalize("NFKC", base)
    forms = {base, unicodedata.normalize("NFC", base), nfkc, nfkc.casefold()}
    return tuple(sorted(forms, key=lambda f: (-len(f), f)))


def _forms(identifier: str) -> tuple[str, ...]:
    """The plain forms and their JSON escapes, as strings (for substring searches elsewhere)."""
    plain = _plain_forms(identifier)
    escaped = {json.dumps(f)[1:-1] for f in plain}  # ensure_ascii: é as \u00e9
    return tuple(sorted({*plain, *escaped}, key=lambda f: (-len(f), f)))


def _escaped(char: str) -> str:
    r"""``char``'s JSON escape as a pattern, at any depth of JSON in JSON (``\u00fc``,
    ``\\u00fc``, ...): one or more backslashes before each ``u``."""
    return "".join(r"\\+u" + re.escape(unit) for unit in json.dumps(char)[1:-1].split("\\u")[1:])


def _char(char: str) -> str:
    """What one character of the identifier matches: itself in any case and its JSON escapes."""
    variants = {char, char.lower(), char.upper(), char.casefold(), char.title()}
    out = {re.escape(v) for v in variants}
    out.update(_escaped(v) for v in variants if len(v) == 1 and not v.isascii())
    if len(out) == 1:
        return out.pop()
    return "(?:" + "|".join(sorted(out, key=lambda a: (-len(a), a))) + ")"


#: "ss" also matches the sharp s (upper case and case folding turn "Strauß" into "STRAUSS"), escaped too
_SHARP = r"(?:s\s*s|ß|ẞ|" + _escaped("ß") + "|" + _escaped("ẞ") + ")"


def _pattern_text(form: str) -> str:
    """One form as a pattern: its characters in order (each in any case, or JSON-escaped at any
    depth), any whitespace (or none) between any two of them."""
    chars = "".join(form.split())
    pieces, i = [], 0
    while i < len(chars):
        if chars[i : i + 2].casefold() == "ss":
            pieces.append(_SHARP)
            i += 2
        else:
            pieces.append(_char(chars[i]))
            i += 1
    return r"\s*".join(pieces)


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
        text = "|".join(_pattern_text(f) for f in _plain_forms(identifier))
        return cls(
            forms=_forms(identifier),
            pattern=re.compile(text, re.IGNORECASE),
            byte_pattern=re.compile(text.encode(), re.IGNORECASE),  # case variants of non-ASCII letters are spelt out
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
    identifier_hmac: str  # identifier_digest, empty for a document erasure
    document_id: str
    reason: str
    requested_by: str
    requested_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "erasure_id": self.erasure_id,
            "identifier_hmac": self.identifier_hmac,
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
