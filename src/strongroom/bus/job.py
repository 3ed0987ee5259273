"""The job the bus carries: one file to ingest, with its options and who queued it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

    def to_json(self) -> str:
        return json.dumps(
            {
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
        )

    @classmethod
    def from_json(cls, text: str) -> IngestJob:
        """A job from its JSON; anything malformed is a ValueError (the message is poison)."""
        try:
            obj = json.loads(text)
            return cls(
                path=str(obj["path"]),
                acl=tuple(str(g) for g in obj["acl"]),
                published=obj.get("published"),
                doc_type=obj.get("doc_type"),
                source=obj.get("source"),
                meta=frozen_meta({str(k): str(v) for k, v in (obj.get("meta") or {}).items()}),
                roots=tuple(str(r) for r in obj.get("roots") or ()),
                id=str(obj["id"]),
                delete_after=bool(obj.get("delete_after", False)),
                principal=str(obj.get("principal") or ""),
                groups=tuple(str(g) for g in obj.get("groups") or ()),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not an ingestion job: {exc}") from exc
