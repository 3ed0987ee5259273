"""Retention policies and legal holds, as operations: who may set, place, release and apply them,
and the audit record of each.

Every operation needs the ``admin`` role. Policies and holds are kept by a
:class:`~strongroom.service.hold_store.HoldStore`; the rules (what a hold covers, what has
expired) are :mod:`strongroom.governance.holds` and :mod:`strongroom.governance.retention`.

- **Policies**: :meth:`Retention.set_policy`, :meth:`~Retention.remove_policy`,
  :meth:`~Retention.policies` (records ``retention.set|remove|list``).
- **Holds**: :meth:`Retention.place`, :meth:`~Retention.holds`, :meth:`~Retention.release`
  (records ``holds.place|list|release``). A hold is never deleted, only released.
- **Four-eyes**: with ``four_eyes`` on, setting or removing a policy and releasing a hold are
  made only through an approved proposal (kinds ``retention.set``, ``retention.remove``,
  ``holds.release`` of :mod:`strongroom.service.approvals`, applied by :meth:`Retention.appliers`);
  a direct call is refused. Placing a hold never waits: it only ever keeps more.
- **Apply**: :meth:`Retention.apply` deletes every expired document no active hold covers,
  through the same removal as ``strongroom delete`` (content, vectors, kept originals; the
  version rows stay marked deleted). One ``retention.delete`` record per document deleted
  (its policy) and one ``retention.apply`` summary; ``dry_run`` deletes nothing. The service
  runs it every ``retention_interval_hours`` as :data:`SYSTEM`.

Deleting by hand refuses a held document too (:meth:`Operations.not_held
<strongroom.service.operations.Operations.not_held>`).

    retention = Retention(ops, open_hold_store(settings))
    retention.set_policy(admin, RetentionPolicy("research-7y", years=7, doc_type="research_report")).result()
    retention.place(admin, "M-2026-001", "litigation", document_id=doc).result()
    retention.apply(admin, dry_run=True).result().describe()   # {'deleted': [...], 'held': [...], ...}
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from strongroom.audit import AuditEvent
from strongroom.errors import NotFound, QueryError
from strongroom.governance.holds import Hold, document_hold, query_terms
from strongroom.governance.retention import RetentionPlan, RetentionPolicy, plan
from strongroom.service.hold_store import HoldStore
from strongroom.service.operations import Operations, Outcome
from strongroom.types import DocumentVersion, Principal, frozen_meta, utcnow

__all__ = ["KINDS", "SYSTEM", "Retention", "RetentionReport", "normalised_change"]

#: the four-eyes kinds this module applies (see :data:`strongroom.service.approvals.KINDS`)
KINDS = ("retention.set", "retention.remove", "holds.release")
#: the principal the service's schedule applies retention as
SYSTEM = Principal("system:retention", frozenset(), frozenset({"admin"}), "schedule")
_MAX_TEXT = 2000
_LISTED = 1000  # document ids a summary record lists, at most
_BATCH = 1000  # documents deleted per store call (and transaction)


def normalised_change(kind: str, change: Mapping[str, Any]) -> dict[str, Any]:
    """A retention change in its one canonical form (so equal changes hash alike); QueryError if malformed."""
    try:
        if kind == "retention.set":
            return RetentionPolicy.from_dict(change).describe()
        if kind == "retention.remove":
            return {"id": RetentionPolicy(str(change["id"]), days=1, doc_type="-").id}
        if kind == "holds.release":
            hold_id = str(change["hold_id"]).strip()
            if not hold_id:
                raise QueryError("give the id of the hold to release")
            return {"hold_id": hold_id}
    except (KeyError, TypeError) as exc:
        raise QueryError(f"the {kind} change is malformed ({exc}); see `strongroom retention --help`") from exc
    raise QueryError(f"no retention change kind {kind!r}")


@dataclass(frozen=True)
class RetentionReport:
    """What one retention run did (or, ``dry_run``, would do)."""

    at: datetime
    dry_run: bool
    documents: int
    deleted: tuple[tuple[str, str], ...]  # (document id, policy id)
    held: tuple[tuple[str, str, str], ...]  # (document id, matter id, hold id)
    kept: int
    versions: int  # versions deleted

    def describe(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "dry_run": self.dry_run,
            "documents": self.documents,
            "deleted": len(self.deleted),
            "held": len(self.held),
            "kept": self.kept,
            "versions_deleted": self.versions,
            "deleted_documents": [{"document_id": d, "policy": p} for d, p in self.deleted],
            "held_documents": [{"document_id": d, "matter_id": m, "hold_id": h} for d, m, h in self.held],
        }


class Retention:
    """Retention policies, legal holds and retention runs over one store; each an :class:`Outcome`."""

    def __init__(self, ops: Operations, store: HoldStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.ops = ops
        self.store = store
        self.clock = clock

    def close(self) -> None:
        self.store.close()

    def _admin(self, principal: Principal) -> None:
        self.ops.require(principal, "admin")

    # -- policies --------------------------------------------------------------------------

    def set_policy(
        self,
        principal: Principal,
        policy: RetentionPolicy | Mapping[str, Any],
        *,
        approved: bool = False,
        reason: str = "",
    ) -> Outcome[RetentionPolicy]:
        """Add or replace a policy (admins; with four-eyes on, only ``approved``); ``reason`` is
        the record's detail."""
        asked = policy.describe() if isinstance(policy, RetentionPolicy) else dict(policy)

        def body() -> tuple[RetentionPolicy, dict[str, object]]:
            self._admin(principal)
            self.ops.four_eyes(approved)
            new = policy if isinstance(policy, RetentionPolicy) else RetentionPolicy.from_dict(policy)
            old = self.store.set_policy(new)
            before = old.describe() if old else None
            facts = {"target": new.id, "filters": {"before": before, "after": new.describe()}}
            return new, {**facts, "detail": reason.strip()[:500]}

        fields: dict[str, object] = {"target": str(asked.get("id", ""))[:100], "filters": {"after": asked}}
        return self.ops.run_audited(principal, "retention.set", fields, body)

    def remove_policy(
        self, principal: Principal, policy_id: str, *, approved: bool = False, reason: str = ""
    ) -> Outcome[RetentionPolicy]:
        """Remove a policy (admins; with four-eyes on, only ``approved``); NotFound if there is none.
        ``reason`` is the record's detail."""

        def body() -> tuple[RetentionPolicy, dict[str, object]]:
            self._admin(principal)
            self.ops.four_eyes(approved)
            old = self.store.remove_policy(policy_id)
            if old is None:
                raise NotFound(f"no retention policy {policy_id!r}; see `strongroom retention list`")
            return old, {"filters": {"before": old.describe()}, "detail": reason.strip()[:500]}

        return self.ops.run_audited(principal, "retention.remove", {"target": policy_id[:100]}, body)

    def policies(self, principal: Principal) -> Outcome[list[RetentionPolicy]]:
        """Every policy, by name (admins)."""

        def body() -> tuple[list[RetentionPolicy], dict[str, object]]:
            self._admin(principal)
            found = self.store.policies()
            return found, {"detail": f"{len(found)} policies"}

        return self.ops.run_audited(principal, "retention.list", {}, body)

    # -- holds -----------------------------------------------------------------------------

    def place(
        self,
        principal: Principal,
        matter_id: str,
        reason: str,
        *,
        document_id: str = "",
        source: str = "",
        query: Iterable[str] | Mapping[str, str] | None = None,
    ) -> Outcome[Hold]:
        """Place a legal hold on a document, a source prefix or a query (admins). Never waits for
        four-eyes: a hold only keeps more."""

        def body() -> tuple[Hold, dict[str, object]]:
            self._admin(principal)
            if len(matter_id) > 200 or len(reason) > _MAX_TEXT or len(source) > 500 or len(document_id) > 200:
                raise QueryError(f"a matter id is at most 200 characters, a reason {_MAX_TEXT}, a source 500")
            hold = Hold(
                id=secrets.token_hex(8),  # hex: never starts with "-", which a CLI reads as an option
                matter_id=matter_id.strip(),
                creator=principal.name,
                reason=reason.strip(),
                created_at=self.clock(),
                document_id=document_id.strip(),
                source=source.strip(),
                query=query_terms(query) if query is not None else frozen_meta(),
            )
            if hold.document_id and not self.ops.store.versions(hold.document_id):
                # a hold on a typo, a file name or a version id would cover nothing and keep nothing
                raise NotFound(
                    f"no document {hold.document_id!r}: give a document id (`strongroom documents`); "
                    "the CLI also takes a file name or version id"
                )
            self.store.add(hold)
            return hold, {"target": hold.id, "filters": self._facts(hold)}

        fields: dict[str, object] = {"filters": {"matter_id": matter_id[:200]}}
        return self.ops.run_audited(principal, "holds.place", fields, body)

    @staticmethod
    def _facts(hold: Hold) -> dict[str, object]:
        return {"matter_id": hold.matter_id, "target": hold.target()[:600], "creator": hold.creator}

    def holds(self, principal: Principal, *, active_only: bool = False) -> Outcome[list[Hold]]:
        """Every hold, oldest first, or only those in force (admins)."""

        def body() -> tuple[list[Hold], dict[str, object]]:
            self._admin(principal)
            found = self.store.holds(active_only=active_only)
            return found, {"detail": f"{len(found)} holds"}

        return self.ops.run_audited(principal, "holds.list", {"filters": {"active_only": active_only}}, body)

    def release(self, principal: Principal, hold_id: str, *, approved: bool = False, reason: str = "") -> Outcome[Hold]:
        """Release a hold in force (admins; with four-eyes on, only ``approved``); ``reason`` is
        the record's detail."""

        def body() -> tuple[Hold, dict[str, object]]:
            self._admin(principal)
            self.ops.four_eyes(approved)
            hold = self.store.get(hold_id)
            if hold is None:
                raise NotFound(f"no legal hold {hold_id!r}; see `strongroom holds list`")
            now = self.clock()
            if not self.store.release(hold_id, principal.name, now):
                raise QueryError(f"hold {hold_id} was released already (by {hold.released_by or 'someone else'})")
            done = replace(hold, released_at=now, released_by=principal.name)
            return done, {"filters": self._facts(done), "detail": reason.strip()[:500]}

        return self.ops.run_audited(principal, "holds.release", {"target": hold_id[:100]}, body)

    def change(
        self, principal: Principal, kind: str, change: Mapping[str, Any], *, approved: bool = False, reason: str = ""
    ) -> Outcome[Any]:
        """Make one change of :data:`KINDS` (``approved``: through an approved proposal)."""
        if kind == "retention.set":
            return self.set_policy(principal, change, approved=approved, reason=reason)
        if kind == "retention.remove":
            return self.remove_policy(principal, str(change.get("id", "")), approved=approved, reason=reason)
        if kind == "holds.release":
            return self.release(principal, str(change.get("hold_id", "")), approved=approved, reason=reason)
        return self.ops.refused(principal, kind, QueryError(f"no retention change kind {kind!r}"))

    def appliers(self) -> dict[str, Callable[[Principal, Mapping[str, Any]], Outcome[Any]]]:
        """How an approved proposal of each of :data:`KINDS` is applied (as its maker, re-checked)."""
        return {kind: functools.partial(self._approved, kind) for kind in KINDS}

    def checks(self) -> dict[str, Callable[[Principal, Mapping[str, Any]], None]]:
        """What a proposal of :data:`KINDS` must pass when it is made: a release names a hold in
        force (applying checks it again), and the proposal's change gets the hold's matter and
        target, read from the hold (an approver who may not list holds sees what is released)."""
        return {"holds.release": self._check_release}

    def _check_release(self, principal: Principal, change: Mapping[str, Any]) -> None:
        hold = self.store.get(str(change.get("hold_id", "")))
        if hold is None:
            raise NotFound(f"no legal hold {change.get('hold_id')!r}; see `strongroom holds list`")
        if not hold.active:
            raise QueryError(f"hold {hold.id} was released already (by {hold.released_by or 'someone else'})")
        if isinstance(change, dict):  # the canonical change, before it is hashed and kept
            change.update({"matter_id": hold.matter_id, "target": hold.target()[:600]})

    def _approved(self, kind: str, principal: Principal, change: Mapping[str, Any]) -> Outcome[Any]:
        return self.change(principal, kind, change, approved=True)

    # -- applying --------------------------------------------------------------------------

    def _plan(self, now: datetime) -> RetentionPlan:
        return plan(self.store.policies(), self.store.active(), self.ops.store.versions(), now)

    def _held_now(self, batch: Iterable[tuple[str, RetentionPolicy]]) -> dict[str, Hold]:
        """The documents of a batch a hold covers now: a hold placed (by any process) while
        earlier batches ran is honoured from the next batch on."""
        holds = self.store.active()
        if not holds:
            return {}
        wanted = {document_id for document_id, _ in batch}
        by_doc: dict[str, list[DocumentVersion]] = {}
        for v in self.ops.store.versions():
            if v.document_id in wanted:
                by_doc.setdefault(v.document_id, []).append(v)
        found = {}
        for document_id, versions in by_doc.items():
            if (hold := document_hold(holds, versions)) is not None:
                found[document_id] = hold
        return found

    def apply(
        self, principal: Principal, now: datetime | None = None, *, dry_run: bool = False
    ) -> Outcome[RetentionReport]:
        """Delete every expired document no hold covers (admins), as of ``now`` (default: the
        clock; never later than it, so nothing goes early). Call it on the store's thread."""
        events: list[AuditEvent] = []

        def body() -> tuple[RetentionReport, dict[str, object]]:
            self._admin(principal)
            clock = self.clock()
            at = now or clock
            if at.tzinfo is None:
                raise QueryError("give the time retention is applied as with a time zone (e.g. UTC)")
            if at > clock + timedelta(seconds=5):
                raise QueryError("retention cannot be applied as of a time still to come")
            planned = self._plan(at)
            versions = 0
            if not dry_run and planned.delete:
                deleted: list[tuple[str, RetentionPolicy]] = []
                held = list(planned.held)
                # the holds are read again before each batch; a batch's records are made before the
                # next batch runs and written with the run's outcome: a run that fails part-way
                # records what it deleted; a killed process does not
                for i in range(0, len(planned.delete), _BATCH):
                    late = self._held_now(planned.delete[i : i + _BATCH])
                    held += [(d, p, late[d]) for d, p in planned.delete[i : i + _BATCH] if d in late]
                    batch = [(d, p) for d, p in planned.delete[i : i + _BATCH] if d not in late]
                    deleted += batch
                    gone = self.ops.remove_documents(d for d, _ in batch)
                    for document_id, policy in batch:
                        versions += len(gone.get(document_id, ()))
                        events.append(
                            self.ops.record(
                                principal,
                                "retention.delete",
                                target=document_id,
                                filters={"policy": policy.describe()},
                                detail=f"versions {','.join(gone.get(document_id, ()))}",
                            )
                        )
                planned = replace(planned, delete=tuple(deleted), held=tuple(held))
            report = RetentionReport(
                at=at,
                dry_run=dry_run,
                documents=planned.documents,
                deleted=tuple((d, p.id) for d, p in planned.delete),
                held=tuple((d, h.matter_id, h.id) for d, _, h in planned.held),
                kept=planned.kept,
                versions=versions,
            )
            filters = {
                "dry_run": dry_run,
                "at": at.isoformat(),
                "deleted": [d for d, _ in report.deleted][:_LISTED],
                "held": [{"document_id": d, "matter_id": m} for d, m, _ in report.held][:_LISTED],
            }
            detail = f"{len(report.deleted)} deleted, {len(report.held)} held, {report.kept} kept"
            return report, {"filters": filters, "detail": detail}

        outcome = self.ops.run_audited(principal, "retention.apply", {"filters": {"dry_run": dry_run}}, body)
        return replace(outcome, events=(*events, *outcome.events))
