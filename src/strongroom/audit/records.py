"""What an audit record is and how its hash is computed (both formats).

Format 2 (every record written since issue 15) hashes the RFC 8785 canonical JSON (JCS)
of the whole record, with its format and seq::

    hash = sha256(JCS({"format": 2, "seq": seq, "at": at, "prev": prev, "body": body})).hexdigest()

``body`` is the event (:class:`AuditEvent`'s fields as JSON values) and is stored as its
own JCS text, so the bytes hashed are the stored bytes, in this order (JCS sorts keys)::

    {"at":<JCS(at)>,"body":<stored body>,"format":2,"prev":<JCS(prev)>,"seq":<seq>}

Format 1 (the records written before) hashed ``json.dumps({"prev": prev, "at": at,
**body}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, without the seq or
the format; such records still verify, and a log holds them before its format-2 ones.
``docs/audit-format.md`` has the details and worked examples for other languages' verifiers.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import rfc8785

__all__ = [
    "FORMAT",
    "GENESIS",
    "AuditEvent",
    "AuditHead",
    "AuditRecord",
    "answer_hash",
    "canonical_json",
    "event_body",
    "record_hash",
]

#: the "previous hash" of the first record
GENESIS = "0" * 64
#: the format new records are written in
FORMAT = 2
_MAX_SAFE_INT = 2**53 - 1  # JCS numbers are IEEE doubles


def answer_hash(text: str) -> str:
    """The SHA-256 of an answer's text, as kept in the audit record (not the text itself)."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    """What one request did. Never holds a token, a key or a secret.

    ``query`` holds what may be kept of the query (the application layer redacts it) and
    ``query_hmac`` a keyed hash of the original, so a key holder can prove what was asked.
    """

    principal: str
    groups: tuple[str, ...]
    action: str
    outcome: str = "ok"
    auth: str = ""
    request_id: str = ""
    query: str = ""
    filters: dict[str, object] = field(default_factory=dict)
    target: str = ""
    chunks: tuple[tuple[str, str], ...] = ()
    generator: str = ""
    answer_sha256: str = ""
    detail: str = ""
    query_hmac: str = ""


class AuditHead(NamedTuple):
    """The newest record's seq and hash; ``(0, GENESIS)`` for an empty log."""

    seq: int
    hash: str


class AuditRecord(NamedTuple):
    """One stored record, as it is in the database (``body`` is the stored JSON text)."""

    seq: int
    at: str
    prev: str
    hash: str
    body: str
    format: int = FORMAT

    def event(self) -> dict[str, object]:
        """The event's fields, parsed from the stored body."""
        value = json.loads(self.body)
        return value if isinstance(value, dict) else {"body": value}

    def as_dict(self) -> dict[str, object]:
        """The record as a SIEM reads it: the event's fields with seq, at, prev, hash and format."""
        return {
            "seq": self.seq,
            "at": self.at,
            **self.event(),
            "prev": self.prev,
            "hash": self.hash,
            "format": self.format,
        }


class _Plain:
    """Turns a value into JSON values JCS accepts: tuples become lists, keys strings, and what
    JSON cannot hold (NaN, integers past 2**53, dates, other objects) its ``str``. Notes whether
    it met what Python's ``json`` writes differently from JCS: floats (JCS writes them as
    ECMAScript does) and non-ASCII keys (JCS sorts keys by UTF-16 code units)."""

    def __init__(self) -> None:
        self.simple = True

    def __call__(self, value: object) -> Any:
        if value is None or isinstance(value, (str, bool)):
            return value
        if isinstance(value, int):
            return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
        if isinstance(value, float):
            self.simple = False
            return value if math.isfinite(value) else str(value)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key = k if isinstance(k, str) else str(k)
                if not key.isascii():
                    self.simple = False
                out[key] = self(v)
            return out
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return str(value)


def canonical_json_value(value: object) -> Any:
    """``value`` made plain for JCS (see :class:`_Plain`)."""
    return _Plain()(value)


def canonical_json(value: object) -> bytes:
    """The RFC 8785 (JCS) bytes of ``value`` made plain (see :class:`_Plain`).

    Without floats or non-ASCII keys, JCS is exactly what ``json.dumps`` writes with sorted
    keys, no spaces and no ASCII escaping (the same string escapes: ``\\b \\t \\n \\f \\r``,
    ``\\"``, ``\\\\`` and lower-case ``\\u00xx``), and ``json`` is C: 10x faster than
    the ``rfc8785`` package, which writes everything else (a test holds them equal)."""
    plain = _Plain()
    data = plain(value)
    if plain.simple:
        try:
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        except UnicodeEncodeError:  # a lone surrogate: let rfc8785 say what it says
            pass
    return rfc8785.dumps(data)


_STRINGS = tuple(f.name for f in fields(AuditEvent) if f.name not in ("groups", "filters", "chunks"))


def _typed(event: AuditEvent) -> bool:
    """Whether every field but ``filters`` holds what its type says (so needs no walk)."""
    return (
        all(type(getattr(event, name)) is str for name in _STRINGS)
        and all(type(g) is str for g in event.groups)
        and all(len(c) == 2 and type(c[0]) is str and type(c[1]) is str for c in event.chunks)
    )


def event_body(event: AuditEvent) -> bytes:
    """The stored body of ``event``: the JCS bytes of its fields."""
    body = dict(vars(event))  # shallow: asdict's deep copy took 56 µs a record
    if not _typed(event):
        return canonical_json(body)
    plain = _Plain()
    body["filters"] = plain(event.filters)  # only the free-form field is walked
    if plain.simple:
        try:
            return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        except UnicodeEncodeError:
            pass
    return rfc8785.dumps(canonical_json_value(body))


def _string(text: str) -> bytes:
    """The JCS form of a string (fast for the plain ASCII of times and hex hashes)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + text.encode() + b'"'
    return rfc8785.dumps(text)


def canonical_record(seq: int, at: str, prev: str, body: bytes) -> bytes:
    """The bytes a format-2 record's hash covers: JCS of ``{"format": 2, "seq", "at", "prev", "body"}``,
    built from the stored (canonical) body."""
    return b"".join(
        (b'{"at":', _string(at), b',"body":', body, b',"format":2,"prev":', _string(prev), b',"seq":', b"%d}" % seq)
    )


def _legacy_hash(prev: str, at: str, body: str) -> str | None:
    try:
        content = json.loads(body)
    except ValueError:
        return None
    if not isinstance(content, dict):
        return None
    text = json.dumps(
        {"prev": prev, "at": at, **content}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def record_hash(fmt: int, seq: int, at: str, prev: str, body: str) -> str | None:
    """The hash a record of format ``fmt`` with these values must carry (None: not computable,
    e.g. an unknown format or a body that is not JSON)."""
    if fmt == 2:
        if not 0 < seq <= _MAX_SAFE_INT:
            return None
        try:
            data = body.encode()
        except UnicodeEncodeError:
            return None
        return hashlib.sha256(canonical_record(seq, at, prev, data)).hexdigest()
    if fmt == 1:
        return _legacy_hash(prev, at, body)
    return None
