"""Audit records as the application layer writes them: who, what, with which clocks and
filters, what came back, and a query that holds no secret.

A query is stored redacted (secrets the sensitive-data detector finds are replaced by
markers) together with a keyed hash (HMAC-SHA256) of the original text: an auditor who
holds the key and a suspected query can prove it was asked, and nobody who reads the audit
log learns a secret someone pasted into a search box. The key is a file kept outside the
catalog (``Settings.query_hash_key``), created owner-only on first use.

The request id is taken from :data:`REQUEST_ID`, which the HTTP service sets per request.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path

from strongroom.audit import AuditEvent
from strongroom.config import Settings
from strongroom.errors import ConfigError
from strongroom.ingest.understand.redaction import query_digest, redact_query
from strongroom.store.sqlite import private_dir
from strongroom.types import Hit, Principal

__all__ = ["REQUEST_ID", "QueryRedactor", "bus_key", "chunk_refs", "event", "load_secret"]

#: the id of the HTTP request being served, if any (the service's middleware sets it)
REQUEST_ID: ContextVar[str] = ContextVar("strongroom_request_id", default="")


def load_secret(path: Path, nbytes: int = 32) -> bytes:
    """The secret in ``path``; created (random, 0600, in a 0700 folder) if missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        private_dir(path.parent)
        data = secrets.token_bytes(nbytes)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile: use theirs
            return path.read_bytes()
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise ConfigError(f"cannot read the secret {path}: {exc.strerror or exc}; check its permissions") from exc
    if len(data) < 16:
        raise ConfigError(f"the secret {path} is too short ({len(data)} bytes); delete it to make a new one")
    return data


def bus_key(settings: Settings) -> bytes:
    """The deployment's bus key (``HOME/keys/bus.key``, made on first use): jobs are sealed
    with it when queued and checked with it by the workers, which share the home."""
    return load_secret(settings.home / "keys" / "bus.key")


class QueryRedactor:
    """Turns query text into what the audit log may keep: redacted text and a keyed hash."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_settings(cls, settings: Settings) -> QueryRedactor:
        """The redactor with the deployment's query key (``Settings.query_hash_key``, made if missing)."""
        return cls(load_secret(settings.query_hash_key_path))

    def redact(self, text: str) -> tuple[str, str]:
        """(redacted text, HMAC-SHA256 of the original); ("", "") for no text."""
        if not text:
            return "", ""
        redacted, _ = redact_query(text)
        return redacted, query_digest(text, self._key)


def chunk_refs(hits: Sequence[Hit]) -> tuple[tuple[str, str], ...]:
    """(chunk id, version id) of each hit: what the record says was retrieved."""
    return tuple((h.chunk.id, h.version.id) for h in hits)


def event(
    principal: Principal,
    action: str,
    redactor: QueryRedactor,
    *,
    outcome: str = "ok",
    query: str = "",
    filters: Mapping[str, object] | None = None,
    target: str = "",
    chunks: tuple[tuple[str, str], ...] = (),
    generator: str = "",
    answer_sha256: str = "",
    detail: str = "",
) -> AuditEvent:
    """One audit record of ``principal`` doing ``action``."""
    redacted, digest = redactor.redact(query)
    return AuditEvent(
        principal=principal.name,
        groups=tuple(sorted(principal.groups)),
        action=action,
        outcome=outcome,
        auth=f"{principal.auth}:{principal.key_id}" if principal.key_id else principal.auth,
        request_id=REQUEST_ID.get(),
        query=redacted,
        query_hmac=digest,
        filters=dict(filters or {}),
        target=target,
        chunks=chunks,
        generator=generator,
        answer_sha256=answer_sha256,
        detail=detail,
    )
