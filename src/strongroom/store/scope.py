"""Which chunks a :class:`~strongroom.types.Scope` admits, as a boolean mask over chunk rows.

Decided per version (few) and spread to chunks (many) with one gather, so the mask is
cheap enough to compute inside every search. The rules, in order:

1. A version is *knowable* when ``published_at <= as_of`` and ``ingested_at <= known_at``
   (each clock is now when not given, and never later than now: see ``Scope.instants``)
   and it is not deleted.
2. Per document, the *current* version is the knowable one with the latest
   ``published_at`` (then ``ingested_at``, then insertion order). Older ones are hidden.
3. The current version is admitted only if its ACL intersects the principal's groups.
   A caller never falls back to an older version it may read: that version is superseded.
4. ``doc_types``, metadata ``filters`` (equality) and ``published_from`` (the current
   version's ``published_at`` at or after it) narrow it further.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from strongroom.types import Scope

__all__ = ["VersionTable", "current_versions"]

BoolArray = npt.NDArray[np.bool_]


def current_versions(
    doc: npt.NDArray[np.int64],
    published: npt.NDArray[np.float64],
    ingested: npt.NDArray[np.float64],
    knowable: BoolArray,
) -> BoolArray:
    """Mark, per document, the latest knowable version (rules 1-2 above). Pure."""
    out = np.zeros(len(doc), dtype=bool)
    idx = np.flatnonzero(knowable)
    if len(idx) == 0:
        return out
    order = idx[np.lexsort((idx, ingested[idx], published[idx], doc[idx]))]
    d = doc[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = d[1:] != d[:-1]
    out[order[last]] = True
    return out


@dataclass
class VersionTable:
    """All versions as parallel arrays, in insertion (``seq``) order."""

    seqs: npt.NDArray[np.int64]
    doc: npt.NDArray[np.int64]
    published: npt.NDArray[np.float64]
    ingested: npt.NDArray[np.float64]
    deleted: BoolArray
    acl_set: npt.NDArray[np.int64]
    acl_sets: list[frozenset[str]]
    doc_types: list[str]
    metadata: list[dict[str, str]]
    _masks: OrderedDict[tuple[object, ...], BoolArray] = field(default_factory=OrderedDict)

    @classmethod
    def load(cls, db: sqlite3.Connection) -> VersionTable:
        rows = db.execute(
            "SELECT seq, document_id, published_at, ingested_at, deleted, acl, doc_type, metadata "
            "FROM versions ORDER BY seq"
        ).fetchall()
        docs: dict[str, int] = {}
        acls: dict[frozenset[str], int] = {}
        return cls(
            seqs=np.array([r[0] for r in rows], dtype=np.int64),
            doc=np.array([docs.setdefault(r[1], len(docs)) for r in rows], dtype=np.int64),
            published=np.array([r[2] for r in rows], dtype=np.float64),
            ingested=np.array([r[3] for r in rows], dtype=np.float64),
            deleted=np.array([bool(r[4]) for r in rows], dtype=bool),
            acl_set=np.array([acls.setdefault(frozenset(json.loads(r[5])), len(acls)) for r in rows], dtype=np.int64),
            acl_sets=list(acls),
            doc_types=[r[6] for r in rows],
            metadata=[json.loads(r[7]) for r in rows],
        )

    def position(self, seqs: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Positions in this table of the given version seqs (which must exist)."""
        return np.searchsorted(self.seqs, seqs).astype(np.int64)

    def version_mask(self, scope: Scope, now: float | None = None) -> BoolArray:
        published, ingested = scope.instants(now)
        knowable = (self.published <= published) & (self.ingested <= ingested) & ~self.deleted
        ok = current_versions(self.doc, self.published, self.ingested, knowable)
        entitled = np.array([bool(s & scope.groups) for s in self.acl_sets], dtype=bool)
        ok &= entitled[self.acl_set]
        if scope.doc_types:
            ok &= np.array([d in scope.doc_types for d in self.doc_types], dtype=bool)
        for key, value in scope.filters.items():
            ok &= np.array([m.get(key) == value for m in self.metadata], dtype=bool)
        if scope.published_from is not None:
            ok &= self.published >= scope.published_floor()
        return ok

    def chunk_mask(self, scope: Scope, chunk_version: npt.NDArray[np.int64]) -> BoolArray:
        """The admitted chunk rows; cached per scope (the table is rebuilt on every write)."""
        # A clock left at now is cached by the second: a mask made now serves the rest of this
        # second (every write makes a new table, so what a write adds is seen at once). A clock
        # in the past is part of the key as given.
        now = time.time()

        def clock(value: datetime | None) -> float | None:
            if value is None:
                return None
            moment = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
            return None if moment >= now else moment

        key = (
            scope.groups,
            clock(scope.as_of),
            clock(scope.known_at),
            float(int(now)),
            scope.doc_types,
            tuple(sorted(scope.filters.items())),
            scope.published_floor(),
            len(chunk_version),
        )
        mask = self._masks.get(key)
        if mask is None:
            mask = self.version_mask(scope, now)[chunk_version] if len(self.seqs) else np.zeros(0, dtype=bool)
            self._masks[key] = mask
            if len(self._masks) > 32:
                self._masks.popitem(last=False)
        return mask
