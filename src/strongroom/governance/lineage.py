"""Lineage records: where an answer came from, as values (no I/O; :mod:`strongroom.service.lineage`
gathers them from the audit log, the store and the model configuration).

A :class:`Lineage` names, for one audit record (an ask, a search, an agent's step): the chunks
it retrieved (page and character span), their versions (document, SHA-256 of the bytes, source,
title, both clocks, the ACL in force when the record was written), the ingestion that wrote each
version (job, who, parser version), the embedder, the chat model actually used (after failover)
with its route version and deployment, the prompt template version and the policies in force.
A version deleted or erased since is reported by its hashes only, with the record that removed it.

    >>> acl_at(10, live=frozenset({"b"}), ingested=frozenset({"a"}), changes=[AclEvent(12, ("a",), ("b",))])
    frozenset({'a'})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "AclEvent",
    "ChunkLineage",
    "Ingestion",
    "Lineage",
    "ModelLineage",
    "Removal",
    "Status",
    "VersionLineage",
    "acl_at",
]

Status = Literal["live", "deleted", "erased", "withheld"]  # withheld: its reader may no longer read it


@dataclass(frozen=True)
class AclEvent:
    """One recorded ACL change of a document: the audit record's seq, the ACL before and after."""

    seq: int
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True)
class Ingestion:
    """The ingestion that wrote a version: its audit record, job, who ran it, and the parser."""

    seq: int | None
    at: str
    job_id: str
    principal: str
    parser: str


@dataclass(frozen=True)
class Removal:
    """The record that deleted (or erased) a version since."""

    seq: int
    at: str
    action: str
    principal: str


@dataclass(frozen=True)
class ChunkLineage:
    """One retrieved chunk; ``page`` and the span are None once its version is gone (a chunk id
    is a hash of version, page and span: it cannot be reversed, and nothing else is kept)."""

    chunk_id: str
    version_id: str
    status: Status
    page: int | None = None
    char_start: int | None = None
    char_end: int | None = None


@dataclass(frozen=True)
class VersionLineage:
    """One version a record retrieved from. Once removed, only its hashes, the ACL the log
    recorded and the removal are left (``title``, ``source`` and the clocks are empty)."""

    version_id: str
    document_id: str
    status: Status
    acl_at_record: tuple[str, ...]
    acl_now: tuple[str, ...] = ()
    source: str = ""
    title: str = ""
    media_type: str = ""
    doc_type: str = ""
    sensitivity: str = ""
    published_at: str = ""
    ingested_at: str = ""
    size: int | None = None
    ingestion: Ingestion | None = None
    removal: Removal | None = None


@dataclass(frozen=True)
class ModelLineage:
    """What wrote the answer: the generator or deployment actually used (after any failover,
    ``failed_over_from`` the deployments that failed first), the route and its version with that
    version's deployments, the prompt template version, and the deployment's configuration
    (current: deployments are not versioned)."""

    generator: str
    route: str = ""
    route_version: int | None = None
    route_deployments: tuple[str, ...] = ()
    deployment: str = ""
    deployment_config: Mapping[str, Any] = field(default_factory=dict)
    prompt_template_version: str = ""
    failovers: int | None = None
    failed_over_from: str = ""


@dataclass(frozen=True)
class Lineage:
    """Everything one audit record's answer came from (see the module docstring)."""

    seq: int
    at: str
    hash: str
    action: str
    principal: str
    groups: tuple[str, ...]
    outcome: str
    answer_sha256: str
    query_hmac: str
    chunks: tuple[ChunkLineage, ...]
    versions: tuple[VersionLineage, ...]
    model: ModelLineage
    embedder: Mapping[str, str]
    policies: Mapping[str, Any]
    #: erasures carried out since the record (their seqs): one of an identifier may have changed
    #: the text of a live chunk it retrieved, and names no document
    erasures_since: tuple[int, ...] = ()
    #: the model registry's entries for the generator and the store's embedder (stage then and now)
    registry: Mapping[str, Any] = field(default_factory=dict)
    #: for a research agent's run: the seqs of its tool calls and model turns the lineage gathers
    steps: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The lineage as JSON values (the CLI's ``--json`` and the HTTP answer)."""
        return asdict(self)


def acl_at(
    seq: int, *, live: frozenset[str] | None, ingested: frozenset[str] | None, changes: Iterable[AclEvent]
) -> frozenset[str] | None:
    """The ACL a document had when record ``seq`` was written: the ``after`` of the last recorded
    change before it, else the ``before`` of the first change after it, else the live ACL (no change
    since), else the ACL its ingestion recorded; None when nothing says."""
    ordered = sorted(changes, key=lambda c: c.seq)
    earlier = [c for c in ordered if c.seq < seq]
    if earlier:
        return frozenset(earlier[-1].after)
    later = [c for c in ordered if c.seq > seq]
    if later:
        return frozenset(later[0].before)
    return live if live is not None else ingested
