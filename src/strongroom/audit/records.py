"""What an audit record is and how its hash is computed (formats 1, 2 and 3).

Format 3 (every record written since issue 20) keeps the event's free-text fields, those
that may carry personal data or document text (:data:`ERASABLE_FIELDS`: ``query``,
``detail``, ``target``, ``filters``), apart from the body, as an *erasable* JCS blob with a
random 32-byte salt, and hashes the body plus the salted blob's digest::

    erasable_sha256 = sha256(salt || erasable).hexdigest()
    hash = sha256(JCS({"format": 3, "seq", "at", "prev", "body": body,
                       "erasable_sha256": erasable_sha256})).hexdigest()

so erasing a record (the blob and salt set to NULL, ``erasable_sha256`` kept) leaves the
chain verifying, and the salt, erased with the blob, stops anyone confirming a guessed
identifier against the digest afterwards.

Format 2 (the records written from issue 15 to 20) hashes the RFC 8785 canonical JSON (JCS)
of the whole record, with its format and seq::

    hash = sha256(JCS({"format": 2, "seq": seq, "at": at, "prev": prev, "body": body})).hexdigest()

``body`` is the event (:class:`AuditEvent`'s fields as JSON values) and is stored as its
own JCS text, so the bytes hashed are the stored bytes, in this order (JCS sorts keys)::

    {"at":<JCS(at)>,"body":<stored body>,"format":2,"prev":<JCS(prev)>,"seq":<seq>}

Format 1 (the records written before) hashed ``json.dumps({"prev": prev, "at": at,
**body}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, without the seq or
the format; such records still verify, and a log holds them before its format-2 ones.
Format 1 and 2 records cannot be erased (their hash covers the text itself).
``docs/audit-format.md`` has the details and worked examples for other languages' verifiers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import rfc8785

__all__ = [
    "ERASABLE_FIELDS",
    "FORMAT",
    "GENESIS",
    "AuditEvent",
    "AuditHead",
    "AuditRecord",
    "answer_hash",
    "canonical_json",
    "erasable_digest",
    "event_body",
    "event_parts",
    "new_salt",
    "record_hash",
]

#: the "previous hash" of the first record
GENESIS = "0" * 64
#: the format new records are written in
FORMAT = 3
#: the event's fields a format-3 record keeps in its erasable part: free text that may carry
#: personal data or document text (a customer's name in a query, a document's title in a
#: target, a quote in a detail, anything in the filters)
ERASABLE_FIELDS = ("detail", "filters", "query", "target")
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
    """One stored record, as it is in the database (``body`` is the stored JSON text).

    Format 3: ``erasable`` is the stored JCS text of the erasable fields and ``erasable_salt``
    its salt (hex), both None once the record was erased; ``erasable_sha256`` stays."""

    seq: int
    at: str
    prev: str
    hash: str
    body: str
    format: int = FORMAT
    erasable: str | None = None
    erasable_salt: str | None = None
    erasable_sha256: str | None = None

    @property
    def erased(self) -> bool:
        """Whether this format-3 record's erasable part was erased."""
        return self.format >= 3 and self.erasable is None

    def event(self) -> dict[str, object]:
        """The event's fields, parsed from the stored body (and, in format 3, the erasable part
        unless it was erased: then those fields are absent)."""
        value = json.loads(self.body)
        fields = value if isinstance(value, dict) else {"body": value}
        if self.format >= 3 and self.erasable is not None:
            try:
                extra = json.loads(self.erasable)
            except ValueError:  # tampered with: verify says so
                extra = None
            if isinstance(extra, dict):
                return {**extra, **fields}
        return fields

    def as_dict(self) -> dict[str, object]:
        """The record as a SIEM reads it: the event's fields with seq, at, prev, hash and
        format; in format 3 also ``erasable_sha256`` and ``erased`` (true: the erasable fields
        were erased and are absent)."""
        out: dict[str, object] = {
            "seq": self.seq,
            "at": self.at,
            **self.event(),
            "prev": self.prev,
            "hash": self.hash,
            "format": self.format,
        }
        if self.format >= 3:
            out["erasable_sha256"] = self.erasable_sha256
            out["erased"] = self.erased
        return out


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


def _dump(fields: dict[str, object], typed: bool, free: str | None) -> bytes:
    """The JCS bytes of ``fields``; ``typed``: every field but ``free`` holds its declared type."""
    if not typed:
        return canonical_json(fields)
    plain = _Plain()
    if free is not None:
        fields[free] = plain(fields[free])  # only the free-form field is walked
    if plain.simple:
        try:
            return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        except UnicodeEncodeError:
            pass
    return rfc8785.dumps(canonical_json_value(fields))


def event_parts(event: AuditEvent) -> tuple[bytes, bytes]:
    """A format-3 record's stored body and erasable part: the JCS bytes of ``event``'s fields
    but :data:`ERASABLE_FIELDS`, and of those fields."""
    body = dict(vars(event))
    erasable: dict[str, object] = {name: body.pop(name) for name in ERASABLE_FIELDS}
    typed = _typed(event)
    return _dump(body, typed, None), _dump(erasable, typed, "filters")


def new_salt() -> str:
    """A fresh random salt for one record's erasable part (32 bytes, hex)."""
    return os.urandom(32).hex()


def erasable_digest(salt: str, erasable: str) -> str | None:
    """``erasable_sha256``: SHA-256 of the 32 salt bytes then the erasable part's UTF-8 bytes
    (None: the salt is not 64 hex digits, or the text is not UTF-8)."""
    try:
        raw = bytes.fromhex(salt)
        data = erasable.encode()
    except (ValueError, UnicodeEncodeError):
        return None
    if len(raw) != 32 or len(salt) != 64:
        return None
    return hashlib.sha256(raw + data).hexdigest()


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


def canonical_record3(seq: int, at: str, prev: str, body: bytes, erasable_sha256: str) -> bytes:
    """The bytes a format-3 record's hash covers: JCS of ``{"format": 3, "seq", "at", "prev",
    "body", "erasable_sha256"}``, built from the stored (canonical) body."""
    return b"".join(
        (b'{"at":', _string(at), b',"body":', body, b',"erasable_sha256":', _string(erasable_sha256),
         b',"format":3,"prev":', _string(prev), b',"seq":', b"%d}" % seq)
    )  # fmt: skip


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


def record_hash(fmt: int, seq: int, at: str, prev: str, body: str, erasable_sha256: str | None = None) -> str | None:
    """The hash a record of format ``fmt`` with these values must carry (None: not computable,
    e.g. an unknown format, a body that is not JSON, a format-3 record without its
    ``erasable_sha256``)."""
    if fmt in (2, 3):
        if not 0 < seq <= _MAX_SAFE_INT:
            return None
        try:
            data = body.encode()
        except UnicodeEncodeError:
            return None
        if fmt == 2:
            return hashlib.sha256(canonical_record(seq, at, prev, data)).hexdigest()
        if erasable_sha256 is None:
            return None
        return hashlib.sha256(canonical_record3(seq, at, prev, data, erasable_sha256)).hexdigest()
    if fmt == 1:
        return _legacy_hash(prev, at, body)
    return None
