"""The job the bus carries: one file to ingest, with its options and who queued it.

A job is sealed by whoever queues it (the CLI's ``ingest --bus``, the HTTP service's
uploads) with the deployment's bus key, an HMAC-SHA256 over every field: a worker acts only
on a job whose seal it can check, so someone who can write to the bus but does not hold the
key cannot queue a file as another principal, name a file of the server's, or have a
worker delete a folder. Parsing is strict: a field of the wrong type makes the message
poison, never a worker crash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from strongroom.ingest.pipeline import IngestOptions
from strongroom.types import Principal, frozen_meta

__all__ = ["IngestJob"]


@dataclass(frozen=True)
class IngestJob:
    """One file to ingest with its options. ``roots``: what ``source`` keys are relative to."""

    path: str
    acl: tuple[str, ...]
    published: str | None = None
    doc_type: str | None = None
    source: str | None = None
    meta: Mapping[str, str] = field(default_factory=frozen_meta)
    roots: tuple[str, ...] = ()
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    delete_after: bool = False  # an upload's private copy: the worker removes its folder when done
    #: who submitted it: the worker writes with this principal's write entitlements
    principal: str = ""
    groups: tuple[str, ...] = ()
    seal: str = ""  # HMAC-SHA256 of the other fields under the deployment's bus key (hex)

    @classmethod
    def for_file(
        cls,
        path: Path,
        options: IngestOptions,
        roots: Sequence[Path],
        *,
        id: str | None = None,
        delete_after: bool = False,
        principal: Principal | None = None,
    ) -> IngestJob:
        return cls(
            path=str(path.resolve()),
            acl=tuple(sorted(options.acl)),
            published=options.published.isoformat() if options.published else None,
            doc_type=options.doc_type,
            source=options.source,
            meta=frozen_meta(options.meta),
            roots=tuple(str(r.resolve()) for r in roots),
            id=id or uuid.uuid4().hex,
            delete_after=delete_after,
            principal=principal.name if principal else "",
            groups=tuple(sorted(principal.groups)) if principal else (),
        )

    def options(self, base: IngestOptions) -> IngestOptions:
        """``base`` (the worker's limits and chunking) with this job's document options."""
        return IngestOptions(
            acl=frozenset(self.acl),
            published=datetime.fromisoformat(self.published) if self.published else None,
            doc_type=self.doc_type,
            source=self.source,
            meta=frozen_meta(self.meta),
            max_file_bytes=base.max_file_bytes,
            chunk_tokens=base.chunk_tokens,
            policy=base.policy,
        )

    def _fields(self) -> dict[str, object]:
        return {
            "id": self.id,
            "path": self.path,
            "acl": list(self.acl),
            "published": self.published,
            "doc_type": self.doc_type,
            "source": self.source,
            "meta": dict(self.meta),
            "roots": list(self.roots),
            "delete_after": self.delete_after,
            "principal": self.principal,
            "groups": list(self.groups),
        }

    def _mac(self, key: bytes) -> str:
        body = json.dumps(self._fields(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()

    def sealed(self, key: bytes) -> IngestJob:
        """This job with its seal under ``key``: what a publisher puts on the bus."""
        return replace(self, seal=self._mac(key))

    def sealed_by(self, key: bytes) -> bool:
        """Whether the seal is this deployment's (``key``) over exactly these fields."""
        return bool(self.seal) and hmac.compare_digest(self.seal, self._mac(key))

    def to_json(self) -> str:
        return json.dumps({**self._fields(), "seal": self.seal})

    @classmethod
    def from_json(cls, text: str) -> IngestJob:
        """A job from its JSON; anything malformed or of the wrong type is a ValueError (the
        message is poison)."""
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not an ingestion job: {exc}") from exc
        if not isinstance(obj, dict):
            raise ValueError("not an ingestion job: not a JSON object")
        published = _text(obj, "published", optional=True)
        if published is not None:
            try:
                datetime.fromisoformat(published)
            except ValueError as exc:
                raise ValueError(f"not an ingestion job: published {published[:40]!r} is not an ISO time") from exc
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise ValueError("not an ingestion job: meta is not a map of strings")
        delete_after = obj.get("delete_after", False)
        if not isinstance(delete_after, bool):
            raise ValueError("not an ingestion job: delete_after is not true or false")
        acl = _texts(obj, "acl")
        if not acl:
            raise ValueError("not an ingestion job: acl is empty")
        return cls(
            path=_text(obj, "path") or "",
            acl=acl,
            published=published,
            doc_type=_text(obj, "doc_type", optional=True),
            source=_text(obj, "source", optional=True),
            meta=frozen_meta(meta),
            roots=_texts(obj, "roots", optional=True),
            id=_text(obj, "id") or "",
            delete_after=delete_after,
            principal=_text(obj, "principal", optional=True) or "",
            groups=_texts(obj, "groups", optional=True),
            seal=_text(obj, "seal", optional=True) or "",
        )


def _text(obj: Mapping[str, object], name: str, *, optional: bool = False) -> str | None:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not optional and not value) or "\x00" in value:
        raise ValueError(f"not an ingestion job: {name} is not a string")
    return value


def _texts(obj: Mapping[str, object], name: str, *, optional: bool = False) -> tuple[str, ...]:
    value = obj.get(name)
    if value is None and optional:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and "\x00" not in v for v in value):
        raise ValueError(f"not an ingestion job: {name} is not a list of strings")
    return tuple(value)
