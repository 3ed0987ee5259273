"""Lineage of an answer: from one audit record (an ask, a conversation's ask, a search, an
agent's tool call or model turn), everything it came from, as a
:class:`~strongroom.governance.lineage.Lineage`.

- **From the record**: the chunks and versions it retrieved, the model actually used (after
  any failover) with its route version, the prompt template version, the principal's groups.
- **From the store**: each live chunk's page and span, each live version's document, source,
  title, both clocks, ACL, and its metadata: the ingestion job (``ingest_job``) and the parser
  version (``parser``) the pipeline keeps there.
- **From the audit log** (one streamed pass, reading only the records that name one of the
  versions or documents): the ingestion record that wrote each version (who, which job, the ACL
  asked for), the ACL changes since (so the ACL *at the time of the record* is reported, not
  today's) and the record that deleted or erased a version. A removed version is reported by
  its hashes only.
- **From configuration**: the route's deployments at the recorded version, the deployment's
  configuration (current: deployments are not versioned), the embedder (the store's model id).

Who may read a lineage: an ``admin`` or ``auditor``, or the person who made the request (by
person: a key's owner is its owner). Anyone else, a record that does not exist, and one past
the log's head are the same :class:`~strongroom.errors.NotFound`. An owner who may no longer read
a version sees it withheld (hashes only). Every read is audited (``lineage.read``).

    >>> with Platform.open(settings) as p:                                    # doctest: +SKIP
    ...     lineage(p.ops, p.audit, principal, "42").result().as_dict()["versions"][0]["ingestion"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from strongroom.audit import AuditLog, AuditRecord
from strongroom.auth.authenticator import KEY_OWNER_PREFIX
from strongroom.errors import NotFound, QueryError, StrongroomError
from strongroom.governance.lineage import (
    AclEvent,
    ChunkLineage,
    Ingestion,
    Lineage,
    ModelLineage,
    Removal,
    Status,
    VersionLineage,
    acl_at,
)
from strongroom.governance.registry import ModelEntry
from strongroom.llm.deployments import load_deployments
from strongroom.llm.route_config import RouteStore
from strongroom.service.hold_store import HoldStore
from strongroom.service.operations import Operations, Outcome
from strongroom.service.registry_store import RegistryStore
from strongroom.types import DocumentVersion, Principal

__all__ = ["LINEAGE_ROLES", "PolicyHook", "RegistryHook", "lineage", "registry_entries", "retention_in_force"]

#: the roles that may read any record's lineage (others: only their own requests')
LINEAGE_ROLES = frozenset({"admin", "auditor"})
#: more policies in force for the live versions at the record's time (``retention`` and ``holds``:
#: :func:`retention_in_force`); returns JSON values keyed by policy name
PolicyHook = Callable[[Sequence[DocumentVersion], datetime], Mapping[str, object]]
#: the model registry's entries bound to the generator and to the store's embedder, with their
#: stage at the record's time (:func:`registry_entries`)
RegistryHook = Callable[[str, str, datetime], Mapping[str, object]]
_REMOVALS = ("documents.delete", "retention.delete", "erasure.erase")  # actions that remove a version
_ERASURE = "erasure.erase"
_RUN, _TOOL, _TURN = "agent.run.", "agent.tool.", "agent.run.model"  # an agent run's records
_MAX_SEQ = 2**53 - 1


def _person(name: str) -> str:
    return name.removeprefix(KEY_OWNER_PREFIX)


def _seq(record_id: str | int) -> int:
    text = str(record_id).strip()
    if not text.isdigit() or len(text) > 16 or not 0 < int(text) <= _MAX_SEQ:
        raise QueryError(f"a record id is a positive whole number (an audit record's seq), not {text[:40]!r}")
    return int(text)


def _record(log: AuditLog, seq: int) -> AuditRecord:
    if seq > log.head().seq:
        raise NotFound(f"no audit record {seq} that you may see")
    found = next(iter(log.read(after_seq=seq - 1, limit=1)), None)
    if found is None or found.seq != seq:
        raise NotFound(f"no audit record {seq} that you may see")
    return found


def _text(rec: AuditRecord) -> str:
    """All a record's stored text: its body and, where the log keeps one apart, its erasable part."""
    return rec.body + str(getattr(rec, "erasable", None) or "")


def _strings(value: object) -> tuple[str, ...]:
    return tuple(sorted(str(v) for v in value)) if isinstance(value, list) else ()


class _History:
    """What the audit log says about some versions and their documents (one streamed pass)."""

    def __init__(self, log: AuditLog, versions: Mapping[str, str]) -> None:
        self.documents = dict(versions)  # version -> document ("": removed, learnt from its ingestion)
        self.ingested: dict[str, tuple[Ingestion, tuple[str, ...]]] = {}  # version -> ingestion, ACL asked
        self.acl: dict[str, list[AclEvent]] = {}  # document -> changes
        self.removed: dict[str, Removal] = {}  # version -> removal
        self.erasures: list[int] = []  # every erasure's seq (one of an identifier names no document)
        needles = {*versions, *(d for d in versions.values() if d), f'"action":"{_ERASURE}"'}
        for rec in log.read():
            text = _text(rec)
            if any(n in text for n in needles):  # most records name none: skip the parse
                self._note(rec, text, rec.event())
                needles.update(d for d in self.documents.values() if d)

    def _note(self, rec: AuditRecord, text: str, ev: Mapping[str, Any]) -> None:
        action, target = str(ev.get("action", "")), str(ev.get("target", ""))
        if ev.get("outcome") != "ok":
            return
        filters = ev.get("filters") if isinstance(ev.get("filters"), dict) else {}
        assert isinstance(filters, dict)
        versions = self.documents
        if action == "ingest":  # its chunks are (document, version) pairs; they are in the body, never erased
            for pair in ev.get("chunks") or ():
                if len(pair) == 2 and pair[1] in versions and pair[1] not in self.ingested:
                    who = Ingestion(rec.seq, rec.at, target, str(ev.get("principal", "")), "")
                    self.ingested[pair[1]] = (who, _strings(filters.get("acl")))
                    versions[pair[1]] = versions[pair[1]] or str(pair[0])
        elif action == "acl.set" and target in versions.values():
            change = AclEvent(rec.seq, _strings(filters.get("before")), _strings(filters.get("after")))
            self.acl.setdefault(target, []).append(change)
        elif action in _REMOVALS:
            if action == _ERASURE:
                self.erasures.append(rec.seq)
            removal = Removal(rec.seq, rec.at, action, str(ev.get("principal", "")))
            for version, document in versions.items():
                named = bool(document) and (target == document or document in text)
                if named or version in text:  # the latest: a version may be deleted, ingested again, deleted
                    self.removed[version] = removal


def _version(
    record: AuditRecord,
    version_id: str,
    document_id: str,
    live: DocumentVersion | None,
    history: _History,
    shown: bool,
) -> VersionLineage:
    asked = history.ingested.get(version_id)
    ingestion = asked[0] if asked else None
    if live is not None:
        job = live.metadata.get("ingest_job", "") or (ingestion.job_id if ingestion else "")
        base = ingestion or Ingestion(None, live.ingested_at.isoformat(), job, "", "")
        ingestion = Ingestion(base.seq, base.at, job, base.principal, live.metadata.get("parser", ""))
    then = acl_at(
        record.seq,
        live=live.acl if live is not None else None,
        ingested=frozenset(asked[1]) if asked else None,
        changes=history.acl.get(document_id, ()),
    )
    removal = history.removed.get(version_id) if live is None else None
    status: Status = "erased" if removal and removal.action == _ERASURE else "deleted"
    acl_then = tuple(sorted(then or ()))
    if live is not None and not shown:  # its owner may no longer read it: hashes only
        return VersionLineage(version_id, document_id, "withheld", acl_then)
    if live is None:
        return VersionLineage(version_id, document_id, status, acl_then, ingestion=ingestion, removal=removal)
    return VersionLineage(
        version_id,
        live.document_id,
        "live",
        acl_then,
        acl_now=tuple(sorted(live.acl)),
        source=live.source,
        title=live.title,
        media_type=live.media_type,
        doc_type=live.doc_type,
        sensitivity=live.metadata.get("sensitivity", ""),
        published_at=live.published_at.isoformat(),
        ingested_at=live.ingested_at.isoformat(),
        size=live.size,
        ingestion=ingestion,
    )


def _model(ops: Operations, ev: Mapping[str, Any]) -> ModelLineage:
    filters = ev.get("filters") if isinstance(ev.get("filters"), dict) else {}
    assert isinstance(filters, dict)
    by = filters.get("answered_by")
    meta: Mapping[str, Any] = by if isinstance(by, dict) else filters
    route = str(meta.get("model") or filters.get("model") or filters.get("route") or "")
    version = meta.get("route_version")
    route_version = int(str(version)) if str(version).isdigit() else None
    deployment = str(meta.get("deployment") or "")
    home = ops.settings.home
    deployments: tuple[str, ...] = ()
    config: dict[str, Any] = {}
    try:
        if route and route_version is not None:
            found = [r for r in RouteStore(home).versions(route) if r.version == route_version]
            deployments = tuple(t.deployment for t in found[0].targets) if found else ()
        spec = load_deployments(home).get(deployment) if deployment else None
        if spec is not None:  # never its key's variable or URL: what it is, and what it is cleared for
            config = spec.model_dump(include={"backend", "model", "path", "clearance", "mnpi"})
    except (StrongroomError, OSError, ValueError):
        pass  # a route or deployment since removed: the record's names stand
    failovers = meta.get("failovers")
    return ModelLineage(
        generator=str(ev.get("generator", "")),
        route=route,
        route_version=route_version,
        route_deployments=deployments,
        deployment=deployment,
        deployment_config=config,
        prompt_template_version=str(meta.get("prompt_template_version") or filters.get("prompt_version") or ""),
        failovers=int(str(failovers)) if str(failovers).isdigit() else None,
        failed_over_from=str(meta.get("failed_over_from") or ""),
    )


def _chunk_pairs(ev: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs = ev.get("chunks") or []
    return [(str(p[0]), str(p[1])) for p in pairs if isinstance(p, list) and len(p) == 2]


def lineage(
    ops: Operations,
    log: AuditLog,
    principal: Principal,
    record_id: str | int,
    *,
    policies: PolicyHook | None = None,
    registry: RegistryHook | None = None,
) -> Outcome[Lineage]:
    """The lineage of audit record ``record_id`` (its seq) for ``principal``, audited as ``lineage.read``."""

    def body() -> tuple[Lineage, dict[str, object]]:
        seq = _seq(record_id)
        record = _record(log, seq)
        ev = record.event()
        auditor = bool(principal.roles & LINEAGE_ROLES)
        if not auditor and _person(str(ev.get("principal", ""))) != _person(principal.name):
            raise NotFound(f"no audit record {seq} that you may see")
        action = str(ev.get("action", ""))
        pairs = [] if action == "ingest" else _chunk_pairs(ev)
        model_ev: Mapping[str, Any] = ev
        steps: tuple[int, ...] = ()
        if action.startswith(_RUN) and ev.get("target"):  # a research agent's run: every step of it
            pairs, model_ev, steps = _run(log, str(ev["target"]), ev)
        if not pairs and not model_ev.get("generator"):
            raise QueryError(f"record {seq} is a {action!r} record; lineage is for answers, searches and agent steps")
        lineage = _assemble(ops, log, principal, record, ev, pairs, auditor, policies, registry, model_ev)
        return replace(lineage, steps=steps), {"filters": {"record": seq, "action": action}}

    return ops.run_audited(principal, "lineage.read", {"target": str(record_id)[:40]}, body)


def _assemble(
    ops: Operations,
    log: AuditLog,
    principal: Principal,
    record: AuditRecord,
    ev: Mapping[str, Any],
    pairs: Sequence[tuple[str, str]],
    auditor: bool,
    policies: PolicyHook | None,
    registry: RegistryHook | None,
    model_ev: Mapping[str, Any],
) -> Lineage:
    store = ops.store
    version_ids = list(dict.fromkeys(v for _, v in pairs))
    live = {v: found for v in version_ids if (found := store.version(v)) is not None}
    chunks = {c.id: c for c, _ in store.fetch([c for c, _ in pairs])}
    shown = {v for v, found in live.items() if auditor or principal.may_read(found.acl)}
    history = _History(log, {v: live[v].document_id if v in live else "" for v in version_ids})
    documents = history.documents  # a removed version's document: from the record that ingested it
    versions = tuple(_version(record, v, documents[v], live.get(v), history, v in shown) for v in version_ids)
    chunk_rows = []
    for chunk_id, version_id in pairs:
        c = chunks.get(chunk_id)
        if c is None or version_id not in shown:
            status = next(x.status for x in versions if x.version_id == version_id)
            chunk_rows.append(ChunkLineage(chunk_id, version_id, "deleted" if status == "live" else status))
        else:
            chunk_rows.append(ChunkLineage(chunk_id, version_id, "live", c.page, c.char_start, c.char_end))
    model = _model(ops, model_ev)
    settings = ops.settings
    in_force: dict[str, object] = {
        "acl_at_record": {v.version_id: list(v.acl_at_record) for v in versions},
        "principal_groups": list(ev.get("groups") or []),
        "four_eyes": settings.four_eyes,
        "route_groups": list(settings.route_groups.get(model.route, settings.route_groups.get("*", [])))
        if model.route
        else [],
        "retention": None,  # filled by ``policies`` (retention_in_force)
        "holds": None,
    }
    at = datetime.fromisoformat(record.at)
    if policies is not None:
        in_force.update(policies([live[v] for v in version_ids if v in live], at))
    embedder = {
        "setting": settings.embedder,
        "model": settings.embedder_model,
        "store_model_id": str(getattr(store, "model_id", "")),
    }
    return Lineage(
        seq=record.seq,
        at=record.at,
        hash=record.hash,
        action=str(ev.get("action", "")),
        principal=str(ev.get("principal", "")),
        groups=tuple(str(g) for g in ev.get("groups") or ()),
        outcome=str(ev.get("outcome", "")),
        answer_sha256=str(ev.get("answer_sha256", "")),
        query_hmac=str(ev.get("query_hmac", "")),
        chunks=tuple(chunk_rows),
        versions=versions,
        model=model,
        embedder=embedder,
        policies=in_force,
        erasures_since=tuple(s for s in history.erasures if s > record.seq),
        registry=registry(model.generator, embedder["store_model_id"], at) if registry is not None else {},
    )


def _run(
    log: AuditLog, run_id: str, ev: Mapping[str, Any]
) -> tuple[list[tuple[str, str]], Mapping[str, Any], tuple[int, ...]]:
    """An agent run's lineage from its records (their target is the run): the chunks its tool calls
    retrieved, its last model turn (with the prompt version the run's end record keeps) and the
    seqs of the steps."""
    pairs: list[tuple[str, str]] = []
    turn: Mapping[str, Any] = {}
    steps: list[int] = []
    for rec in log.read():
        if run_id not in _text(rec):
            continue
        step = rec.event()
        action = str(step.get("action", ""))
        if step.get("target") != run_id or step.get("outcome") != "ok":
            continue
        if action.startswith(_TOOL):
            pairs.extend(_chunk_pairs(step))
            steps.append(rec.seq)
        elif action == _TURN:
            turn = step
            steps.append(rec.seq)
    filters = ev.get("filters") if isinstance(ev.get("filters"), dict) else {}
    assert isinstance(filters, dict)
    model_ev = dict(turn)
    if filters.get("prompt_version") and isinstance(turn.get("filters"), dict):
        model_ev["filters"] = {**turn["filters"], "prompt_version": filters["prompt_version"]}
    return list(dict.fromkeys(pairs)), model_ev, tuple(steps)


def retention_in_force(holds: HoldStore) -> PolicyHook:
    """The retention policies that match each live version (as configured now: policies keep no
    history, their changes are in the audit log as ``retention.set|remove``) and the legal holds
    that covered it when the record was written (placed before, not yet released then)."""

    def in_force(versions: Sequence[DocumentVersion], at: datetime) -> Mapping[str, object]:
        policies = holds.policies()
        then = [h for h in holds.holds() if h.created_at <= at and (h.released_at is None or h.released_at > at)]
        return {
            "retention": {v.id: [p.describe() for p in policies if p.matches(v)] for v in versions},
            "holds": {v.id: [h.describe() for h in then if replace(h, released_at=None).covers(v)] for v in versions},
        }

    return in_force


def registry_entries(store: RegistryStore) -> RegistryHook:
    """The registry entries bound to a record's generator (a deployment's name) and to the store's
    embedder, each with its stage when the record was written and now, its owner, risk tier and lineage."""

    def entries(generator: str, embedder: str, at: datetime) -> Mapping[str, object]:
        everything = store.entries()

        def row(e: ModelEntry) -> dict[str, object]:
            return {
                "ref": e.ref,
                "kind": e.kind,
                "binding": e.binding,
                "owner": e.owner,
                "risk_tier": e.risk_tier,
                "lineage": e.lineage.as_dict(),
                "stage_then": e.stage_at(at),
                "stage_now": e.stage,
            }

        models = [row(e) for e in everything if generator and e.kind != "embedder" and e.binding == generator]
        embedders = [row(e) for e in everything if embedder and e.kind == "embedder" and e.binding == embedder]
        return {"models": models, "embedders": embedders}

    return entries
