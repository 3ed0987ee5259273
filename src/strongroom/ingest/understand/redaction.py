"""Redaction beyond a document's pages: file names, source keys, metadata values and queries.

A secret is as readable in a file name, a PDF's Subject or a search query as in the body,
and each of them reaches the catalog, the keyword indexes, the audit log or a listing. The
same detectors (:func:`strongroom.ingest.understand.pii.detect_text`) run on each, and whatever the
policy does not merely ``flag`` is replaced by its marker. Every function is deterministic:
the same input always gives the same output, so a re-ingested file keeps its document.

    >>> redact_name("db_password=hunter2.pdf")[0]
    'db_password=[REDACTED:PASSWORD].pdf'
    >>> redact_query("why was AKIAIOSFODNN7EXAMPLE refused?")[0]
    'why was [REDACTED:API_KEY] refused?'
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import replace
from pathlib import PurePosixPath

from strongroom.errors import ConfigError
from strongroom.ingest.understand.pii import Finding, detect_text, redact_text
from strongroom.ingest.understand.policy import Policy

__all__ = [
    "query_digest",
    "redact_metadata",
    "redact_name",
    "redact_query",
    "redact_source",
    "redact_value",
]

# A file name keeps its extension when it is one of these (so "key=abc.pdf" stays a PDF);
# any other suffix may be part of the secret and goes through detection with the rest.
_DOCUMENT_SUFFIXES = frozenset(
    {".pdf", ".docx", ".xlsx", ".txt", ".md", ".markdown", ".html", ".htm", ".csv", ".tsv", ".json", ".xml", ".eml"}
)
_MIN_DIGEST_KEY = 16


def redact_value(text: str, policy: Policy | None = None) -> tuple[str, list[Finding]]:
    """``text`` with every finding that the policy does not merely flag replaced by its marker,
    and every finding (page 0). A ``reject`` finding is redacted too: where the text is not a
    document, redacting it is the safe reading of "this must not be kept"."""
    if not text:
        return text, []
    policy = policy or Policy()
    findings = detect_text(text, 0, policy)
    hidden = [f for f in findings if policy.action_for(f.type) != "flag"]
    return (redact_text(text, hidden) if hidden else text), findings


def redact_name(name: str, policy: Policy | None = None) -> tuple[str, list[Finding]]:
    """A file name with its secrets redacted and its document extension kept."""
    suffix = PurePosixPath(name).suffix
    if suffix.lower() not in _DOCUMENT_SUFFIXES or len(suffix) == len(name):
        return redact_value(name, policy)
    redacted, findings = redact_value(name[: -len(suffix)], policy)
    return redacted + suffix, findings


def redact_source(source: str, policy: Policy | None = None) -> str:
    """A source key (a path or URI) redacted part by part, then as a whole (a credential in a URI,
    ``s3://user:pass@bucket/...``, spans parts). Two files whose names differ only in a redacted
    secret get the same key, and so become versions of one document: the price of not keeping
    the secret in the key or in a hash of it that could be guessed."""
    parts = [redact_name(part, policy)[0] for part in source.split("/")]
    return redact_value("/".join(parts), policy)[0]


def redact_metadata(meta: Mapping[str, str], policy: Policy | None = None) -> tuple[dict[str, str], list[Finding]]:
    """Every key and value redacted; a value is read as written after its key, so that
    ``db_password`` = ``hunter2`` is the labelled password it is. Findings are on page 0."""
    policy = policy or Policy()
    out: dict[str, str] = {}
    found: list[Finding] = []
    for key, value in meta.items():
        shown_key, key_findings = redact_value(key, policy)
        labelled = f"{key}: {value}"
        offset = len(key) + 2
        _, findings = redact_value(labelled, policy)
        in_value = [
            replace(f, start=max(f.start, offset) - offset, end=f.end - offset)
            for f in findings
            if f.end > offset and policy.action_for(f.type) != "flag"
        ]
        out[shown_key] = redact_text(value, in_value) if in_value else value
        found.extend(key_findings)
        found.extend(f for f in findings if f.end > offset)
    return out, found


def redact_query(text: str, policy: Policy | None = None) -> tuple[str, list[Finding]]:
    """A query as the audit log and any log may keep it: every secret replaced by its marker.

    Returns the redacted text and the findings (page 0, spans in the original query, masked
    previews), so the caller can also refuse a query whose finding the policy would ``reject``.
    Cost: tens of microseconds for a query of a sentence or two (detectors run only where
    their literal hints occur).

        >>> text, findings = redact_query("card 4111 1111 1111 1111 limit")
        >>> text, [(f.type, f.start, f.end, f.preview) for f in findings]
        ('card [REDACTED:CARD] limit', [('card', 5, 24, '****1111')])
    """
    return redact_value(text, policy)


def query_digest(text: str, key: bytes) -> str:
    """HMAC-SHA256 of ``text`` (UTF-8) under ``key``, hex: what the audit log keeps of the original
    query beside its redacted text, so a record can be matched to a query later by whoever holds
    the key, while a guessable secret in it cannot be confirmed by hashing guesses without the key.

        >>> query_digest("total net sales", b"k" * 32)[:16]
        '9e7da8fa22db927e'
    """
    if len(key) < _MIN_DIGEST_KEY:
        raise ConfigError(f"a query digest needs a key of at least {_MIN_DIGEST_KEY} bytes, not {len(key)}")
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
