"""Write entitlements, as a wrapper around the store that ingestion writes through.

Ingestion (the CLI, uploads, bus workers, Ray) writes versions through an
:class:`EntitledTarget`, which implements the same ``Writable`` protocol as a store and
refuses, per file (the batch goes on):

* a new version of an existing document, unless the writer may read the document's
  current version and every version published to supersede it later; otherwise the same
  answer as for any write it may not make (nothing says what the document holds);
* a version whose ACL differs from the document's current one: who may read a document
  changes only through ``strongroom acl set`` (an audited admin operation). A version the
  sensitive-data policy restricted (MNPI markers: ``acl_added`` in its metadata) is the
  exception, as long as its ACL holds nothing but the document's groups and the policy's;
* the same bytes again with another ACL: never a silent no-op.

>>> target = EntitledTarget(store, principal, requested_acl=frozenset({"research"}))  # doctest: +SKIP
>>> ingest(paths, target, embedder, options)                                         # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from strongroom.errors import WriteDenied
from strongroom.service.visibility import governing
from strongroom.store.base import Catalog, NewVersion
from strongroom.types import DocumentVersion, Principal

__all__ = ["Denial", "EntitledTarget"]

#: what a writer without entitlement is told: the same whether or not the document exists
#: as something it may see, and nothing about who may read it
NOT_YOURS = (
    "refused: you may not write to this document (it does not exist as a document you may read); "
    "ask its owners to ingest it, or ingest under another --source"
)


def _acl_words(acl: frozenset[str]) -> str:
    return ",".join(sorted(acl))


def _policy_narrowed(version: DocumentVersion, current: frozenset[str]) -> bool:
    """Whether the sensitive-data policy, not the writer, set this version apart: its ACL holds
    only the document's current groups and the groups the policy added (MNPI markers)."""
    added = frozenset(g for g in version.metadata.get("acl_added", "").split(",") if g)
    return bool(added) and version.acl <= current | added


@dataclass(frozen=True)
class Denial:
    """A refused write, for the audit log: which document and why (never its content)."""

    document_id: str
    version_id: str
    reason: str


@dataclass
class EntitledTarget:
    """A :class:`~strongroom.store.base.Writable` that applies the write rules of the principal ``principal``.

    ``requested_acl``: the ACL the batch asked for (``--acl``); identical bytes already
    stored under another ACL are refused with the command that changes an ACL.
    """

    store: Catalog
    principal: Principal
    requested_acl: frozenset[str]
    denials: list[Denial] = field(default_factory=list)

    def _deny(self, version: DocumentVersion, reason: str, message: str) -> WriteDenied:
        self.denials.append(Denial(version.document_id, version.id, reason))
        return WriteDenied(message)

    def has_version(self, version_id: str) -> bool:
        existing = self.store.version(version_id)
        if existing is None:
            return False
        if not self.principal.may_read(existing.acl):
            raise self._deny(existing, "not entitled", NOT_YOURS)
        if existing.acl != self.requested_acl and "acl_added" not in existing.metadata:
            raise self._deny(
                existing,
                "another ACL",
                f"these bytes are already stored (version {existing.id[:12]} of {existing.name}), readable by "
                f"{_acl_words(existing.acl)}, not {_acl_words(self.requested_acl)}; to change who may read it "
                f"run `strongroom acl set {existing.document_id} --acl {_acl_words(self.requested_acl)}` "
                "as an admin who may read it",
            )
        return True

    def write(self, new: NewVersion) -> bool:
        v = new.version
        live = self.store.versions(v.document_id)
        if live:
            current = governing(live, self.principal.groups, time.time())
            if current is None:
                raise self._deny(v, "not entitled", NOT_YOURS)
            if v.acl != current.acl and not _policy_narrowed(v, current.acl):
                raise self._deny(
                    v,
                    "another ACL",
                    f"{v.name} is readable by {_acl_words(current.acl)}; this version would be readable by "
                    f"{_acl_words(v.acl)}. Ingest it with --acl {_acl_words(current.acl)}, or change who may "
                    f"read the document first: `strongroom acl set {v.document_id} --acl {_acl_words(v.acl)}` "
                    "(as an admin who may read it)",
                )
        return self.store.write(new)

    def get_vectors(self, keys: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        return self.store.get_vectors(keys)
