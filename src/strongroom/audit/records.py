"""What an audit record is and how its hash is computed (both formats).

Format 2 (written since strongroom 0.1 + issue 15) hashes a canonical form, RFC 8785
JSON (JCS), of the whole record::

    hash = sha256(JCS({"format": 2, "seq": seq, "at": at, "prev": prev, "body": body})).hexdigest()

``body`` is the event (:class:`AuditEvent`'s fields as JSON values) and is stored as its own
JCS text, so the bytes hashed are the stored bytes, in this order (JCS sorts the keys)::

    {"at":<at>,"body":<stored body>,"format":2,"prev":<prev>,"seq":<seq>}

Format 1 (the records written before) hashed ``json.dumps({"prev": prev, "at": at,
**body}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, without the seq or
the format; such records still verify. ``docs/audit-format.md`` has worked examples.
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


def _plain(value: object) -> Any:
    """``value`` as JSON values JCS accepts: tuples become lists, keys strings, and what JSON
    cannot hold (NaN, integers past 2**53, dates, other objects) its ``str``."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def event_body(event: AuditEvent) -> bytes:
    """The stored body of ``event``: the JCS bytes of its fields."""
    # a shallow dict, made plain: asdict's deep copy took 56 µs a record
    return rfc8785.dumps({f.name: _plain(getattr(event, f.name)) for f in fields(event)})


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
