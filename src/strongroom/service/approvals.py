"""Four-eyes approval (maker-checker): a change that alters who sees what is proposed by one
person and takes effect only when a different person with the ``approver`` role approves it.

The changes that go through it (:data:`KINDS`): ``acl.set`` (who may read a document) and
``keys.create`` (an API key, which always carries entitlement groups); the ``models.*`` and
``registry.*`` changes, and ``retention.set``, ``retention.remove`` and ``holds.release`` (a
retention policy, a legal hold lifted: :mod:`strongroom.service.retention` applies them). A proposal keeps the
exact change as canonical JSON with its SHA-256; it expires after ``proposal_ttl_hours``.

- **The same person** is the owner, not the credential: ``key:ana`` (any of Ana's API keys)
  and ``ana`` (her token or CLI name) are one maker, so a second key never makes a checker.
  A key also counts as whoever created it (who saw its secret; recorded on the key), so a key
  Ana gives a made-up owner ``zed`` is Ana too: :func:`persons_of` is the set of persons behind
  a principal, and a checker (or reviewer) is refused when theirs meets the maker's.
- **Approve** (approver role; never the maker) moves the proposal out of ``proposed`` by a
  compare-and-set, so of two approvers racing exactly one applies it, once. The change is
  applied *as the maker proposed it* (the maker's principal of the time, audited with
  ``auth`` ``four-eyes:<proposal id>``), so it is re-checked then: a document the maker may
  no longer change, or groups no longer grantable, make the proposal ``failed``, not applied.
- **Expired** proposals do nothing: approving one marks it ``expired`` and refuses.
- **Break glass** (admin, a non-empty reason; never for a hold release, :data:`NO_BREAK_GLASS`)
  applies a change at once without a checker;
  the proposal and its records say ``break_glass: true`` and it is listed by :meth:`Approvals.unreviewed`
  until an approver reviews it.

Every step is an audit record (``approvals.propose|approve|reject|expire|apply|break-glass|review``)
whose target is the proposal id and whose filters hold the kind, the maker and the change's hash.

    approvals = Approvals(ops, open_proposal_store(settings), keys)
    p = approvals.propose(ana, "acl.set", {"document_id": d, "acl": ["research"]}, "desk move").result()
    approvals.approve(bo, p.id).result().proposal.status   # 'applied'
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from strongroom.audit import AuditEvent
from strongroom.auth.apikeys import ApiKeyStore
from strongroom.auth.authenticator import KEY_OWNER_PREFIX, persons_of
from strongroom.errors import NotFound, PermissionDenied, QueryError, StoreError, StrongroomError
from strongroom.governance.holds import Hold
from strongroom.governance.retention import RetentionPolicy
from strongroom.service import views
from strongroom.service.clock import parse_instant
from strongroom.service.key_operations import grantable, key_expiry
from strongroom.service.operations import Operations, Outcome
from strongroom.service.proposal_store import Proposal, ProposalStore, Status, canonical, change_hash
from strongroom.service.requests import AclChange, KeyCreated
from strongroom.service.retention import KINDS as RETENTION_KINDS
from strongroom.service.retention import normalised_change
from strongroom.types import Principal, utcnow

__all__ = ["KINDS", "NO_BREAK_GLASS", "Applied", "Applier", "Approvals", "person_of", "persons_of"]

#: the changes that go through four-eyes, and the role proposing (or breaking glass on) each needs;
#: the ``models.*`` kinds are applied by the driver that holds the routes (an :data:`Applier`)
KINDS: Mapping[str, str] = {
    "acl.set": "admin",
    "keys.create": "admin",
    "models.set-route": "admin",
    "models.rollback": "admin",
    "models.set-deployment": "admin",
    "retention.set": "admin",
    "retention.remove": "admin",
    "holds.release": "admin",
    "registry.promote": "admin",  # a model registry stage move: only ever by proposal (service/registry.py)
}
#: the kinds break glass never makes: a legal hold is released only by an approved proposal
NO_BREAK_GLASS = frozenset({"holds.release"})
#: applies one change (as given, canonical) as a principal; it validates the change itself
Applier = Callable[[Principal, Mapping[str, Any]], Outcome[Any]]
#: checks a change of an applier's kind when it is proposed (raises a StrongroomError to refuse it);
#: it may add facts read from the store to the canonical change (a hold's matter), hashed after it
Check = Callable[[Principal, Mapping[str, Any]], None]
_MAX_CHANGE = 16_000  # characters of canonical JSON
_MAX_REASON = 2000


def person_of(principal: Principal) -> str:
    """The person behind a principal: an API key's owner (``key:ana`` -> ``ana``), else its name.
    Two credentials of one person are one maker (and a key's creator is one too: :func:`persons_of`)."""
    return principal.name.removeprefix(KEY_OWNER_PREFIX)


@dataclass(frozen=True)
class Applied:
    """A proposal once decided, and what applying it returned (an :class:`AclChange`, or a
    :class:`KeyCreated` whose secret is shown this once, to whoever applied it)."""

    proposal: Proposal
    result: AclChange | KeyCreated | object

    def describe(self) -> dict[str, Any]:
        """The JSON record (CLI ``--json`` and HTTP): the proposal, and the new key (with its
        secret), the ACL change, or the model route's result."""
        out: dict[str, Any] = {"proposal": self.proposal.describe()}
        if isinstance(self.result, KeyCreated):
            out["key"] = views.new_key_record(self.result)
        elif isinstance(self.result, AclChange):
            out["change"] = views.acl_record(self.result)
        elif hasattr(self.result, "as_dict"):  # a model route
            out["result"] = self.result.as_dict()
        elif isinstance(self.result, RetentionPolicy | Hold):  # a retention policy, a released hold
            out["result"] = self.result.describe()
        return out


def _names(value: object) -> list[object]:
    """A list of group names as a change gives it (a bare string is not a list of groups)."""
    if not isinstance(value, list | tuple) or len(value) > 100:
        raise TypeError("groups are a list of at most 100 names")
    return list(value)


class Approvals:
    """Propose, approve, reject, break glass and review; each an :class:`Outcome` with its records."""

    def __init__(
        self,
        ops: Operations,
        store: ProposalStore,
        keys: ApiKeyStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        appliers: Mapping[str, Applier] | None = None,
        checks: Mapping[str, Check] | None = None,
    ) -> None:
        self.ops = ops
        self.store = store
        self.keys = keys
        self.clock = clock
        self.appliers = dict(appliers or {})
        self.checks = dict(checks or {})

    # -- the changes -----------------------------------------------------------------------

    def _normalised(self, kind: str, change: Mapping[str, Any]) -> dict[str, Any]:
        """The change in its one canonical form (so equal changes hash alike); QueryError if malformed."""
        if kind not in KINDS:
            raise QueryError(f"no change kind {kind!r}; four-eyes covers {', '.join(sorted(KINDS))}")
        try:
            if kind.startswith(("models.", "registry.")):
                if kind not in self.appliers:
                    raise QueryError(f"{kind} changes cannot be applied here; use the CLI or Python on the home")
                if len(canonical(change)) > _MAX_CHANGE:
                    raise QueryError(f"the change is over {_MAX_CHANGE} characters")
                return dict(json.loads(canonical(change)))
            if kind in RETENTION_KINDS:
                if kind not in self.appliers:
                    raise QueryError(f"{kind} changes cannot be applied here; use the CLI or Python on the home")
                return normalised_change(kind, change)
            if kind == "acl.set":
                groups = sorted({str(g).strip() for g in _names(change["acl"]) if str(g).strip()})
                if not groups:
                    raise QueryError("acl: give at least one group")
                return {"document_id": str(change["document_id"]), "acl": groups}
            groups = sorted({str(g).strip() for g in _names(change["groups"]) if str(g).strip()})
            until = parse_instant(change.get("expires_at"), "expires_at")
            no_expiry = bool(change.get("no_expiry", False))
            days = change.get("days")
            if until is None and not no_expiry:  # fixed now, so the approver sees the exact expiry
                until = key_expiry(self.ops.settings, int(days) if days is not None else None, None, False)
            return {
                "owner": str(change["owner"]).strip(),
                "groups": groups,
                "expires_at": None if no_expiry or until is None else until.isoformat(),
                "no_expiry": no_expiry,
            }
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise QueryError(f"the {kind} change is malformed ({exc}); see `strongroom approvals --help`") from exc

    def _apply(self, proposal: Proposal, as_of: Principal, approved: bool = True) -> Outcome[Any]:
        """Apply the proposal's change as ``as_of`` (the maker then): the operation re-checks it."""
        if change_hash(proposal.change) != proposal.change_sha256:
            exc = StoreError(
                f"proposal {proposal.id}'s change does not match its hash: it was altered after it was proposed; "
                "reject it and propose the change again"
            )
            return Outcome(None, exc, ())
        c = proposal.change
        if proposal.kind in self.appliers:
            return self.appliers[proposal.kind](as_of, c)
        if proposal.kind == "acl.set":
            return self.ops.set_acl(as_of, c["document_id"], frozenset(c["acl"]), approved=approved)
        until = parse_instant(c["expires_at"], "expires_at") if c["expires_at"] else None
        return self.ops.create_key(
            as_of, self.keys, c["owner"], c["groups"], expires_at=until, no_expiry=c["no_expiry"], approved=approved
        )

    def _check(self, principal: Principal, kind: str, change: dict[str, Any]) -> None:
        """What can be checked of a change before anyone approves it (the apply checks it again)."""
        self.ops.require(principal, KINDS[kind])
        if kind in self.checks:
            self.checks[kind](principal, change)
        if kind == "acl.set":
            self.ops._writable(principal, change["document_id"])
        elif kind == "keys.create":
            if not change["owner"]:
                raise QueryError("give the key an owner")
            if not change["groups"]:
                raise QueryError("give the key at least one group")
            grantable(self.ops.settings, principal, frozenset(change["groups"]))

    # -- records ---------------------------------------------------------------------------

    def _record(self, principal: Principal, action: str, p: Proposal, **fields: Any) -> AuditEvent:
        facts = {"kind": p.kind, "maker": p.maker, "change_sha256": p.change_sha256, "break_glass": p.break_glass}
        return self.ops.record(principal, action, target=p.id, filters=facts, **fields)

    def _refused(
        self, principal: Principal, action: str, exc: StrongroomError, p: Proposal | None, target: str
    ) -> Outcome[Any]:
        if p is None:
            return self.ops.refused(principal, action, exc, target=target)
        word = "not_found" if isinstance(exc, NotFound) else "denied" if isinstance(exc, PermissionDenied) else "error"
        return Outcome(None, exc, (self._record(principal, action, p, outcome=word, detail=str(exc)[:500]),))

    def _proposal(self, proposal_id: str) -> Proposal:
        p = self.store.get(proposal_id)
        if p is None:
            raise NotFound(f"no proposal {proposal_id!r}; see `strongroom approvals list`")
        return p

    def _expire(self, principal: Principal, p: Proposal, now: datetime) -> tuple[Proposal, tuple[AuditEvent, ...]]:
        """Mark ``p`` expired if its time has passed (and it still waits): with its record."""
        if not p.expired(now) or not self.store.transition(p.id, "proposed", "expired", checker="", at=now):
            return p, ()
        done = replace(p, status="expired", decided_at=now)
        return done, (
            self._record(principal, "approvals.expire", done, detail=f"expired at {p.expires_at.isoformat()}"),
        )

    # -- operations ------------------------------------------------------------------------

    def propose(
        self, principal: Principal, kind: str, change: Mapping[str, Any], reason: str = ""
    ) -> Outcome[Proposal]:
        """Keep a change for a second person to approve (the role the change needs: admin)."""
        try:
            normal = self._normalised(kind, change)
            self._check(principal, kind, normal)
            if len(reason) > _MAX_REASON:
                raise QueryError(f"a reason is at most {_MAX_REASON} characters")
        except StrongroomError as exc:
            return self.ops.refused(principal, "approvals.propose", exc, filters={"kind": kind})
        now = self.clock()
        p = Proposal(
            id=secrets.token_hex(12),  # hex: an id never starts with "-", which a CLI reads as an option
            kind=kind,
            change=normal,
            change_sha256=change_hash(normal),
            maker=person_of(principal),
            maker_persons=persons_of(principal, self.keys),
            maker_principal=principal.name,
            maker_groups=principal.groups,
            maker_roles=principal.roles,
            reason=reason.strip(),
            created_at=now,
            expires_at=now + timedelta(hours=self.ops.settings.proposal_ttl_hours),
        )
        try:
            self.store.add(p)
        except StoreError as exc:
            return self.ops.refused(principal, "approvals.propose", exc, filters={"kind": kind})
        return Outcome(p, None, (self._record(principal, "approvals.propose", p, detail=canonical(normal)[:500]),))

    def proposals(self, principal: Principal, *, status: Status | None = None) -> Outcome[list[Proposal]]:
        """Approvers see every proposal; anyone else their own. Expired ones are marked so first."""
        now = self.clock()
        try:
            if "approver" not in principal.roles and not principal.roles & set(KINDS.values()):
                raise PermissionDenied("this needs the approver or admin role; ask an administrator")
            mine = None if "approver" in principal.roles else person_of(principal)
            found = self.store.list(maker=mine)
        except StrongroomError as exc:
            return self.ops.refused(principal, "approvals.list", exc)
        events: list[AuditEvent] = []
        out = []
        for p in found:
            p, records = self._expire(principal, p, now)
            events.extend(records)
            if status is None or p.status == status:
                out.append(p)
        events.append(self.ops.record(principal, "approvals.list", detail=f"{len(out)} proposals"))
        return Outcome(out, None, tuple(events))

    def show(self, principal: Principal, proposal_id: str) -> Outcome[Proposal]:
        """One proposal: for an approver, or its maker (anyone else: NotFound)."""
        try:
            p = self._proposal(proposal_id)
            if "approver" not in principal.roles and p.maker != person_of(principal):
                raise NotFound(f"no proposal {proposal_id!r}; see `strongroom approvals list`")
        except StrongroomError as exc:
            return self.ops.refused(principal, "approvals.show", exc, target=proposal_id)
        p, records = self._expire(principal, p, self.clock())
        return Outcome(p, None, records)

    def _not_the_maker(self, principal: Principal, p: Proposal) -> None:
        """Refuse a checker any of whose persons (an API key's owner and creator) is one of the maker's."""
        shared = persons_of(principal, self.keys) & ({p.maker} | p.maker_persons)
        if shared:
            raise PermissionDenied(
                f"you proposed {p.id} (as {p.maker_principal}), or the same person answers for your credential "
                f"and the maker's ({', '.join(sorted(shared))}: an API key is its owner and whoever created it); "
                "another person with the approver role must decide it (a second key or login of yours does not count)"
            )

    def _decidable(
        self, principal: Principal, proposal_id: str, action: str
    ) -> tuple[Proposal | None, Outcome[Any] | None]:
        """The proposal ``principal`` may decide now, or the refusal (with an expiry's record)."""
        p: Proposal | None = None
        try:
            self.ops.require(principal, "approver")
            p = self._proposal(proposal_id)
            self._not_the_maker(principal, p)
            now = self.clock()
            p, expired = self._expire(principal, p, now)
            if expired:
                exc = QueryError(f"proposal {proposal_id} expired at {p.expires_at.isoformat()}; propose it again")
                refused = self._refused(principal, action, exc, p, proposal_id)
                return None, replace(refused, events=(*expired, *refused.events))
            if p.status != "proposed":
                raise QueryError(f"proposal {proposal_id} is {p.status}, not waiting for a decision")
        except StrongroomError as exc:
            return None, self._refused(principal, action, exc, p, proposal_id)
        return p, None

    def approve(self, principal: Principal, proposal_id: str) -> Outcome[Applied]:
        """Approve and apply a proposal (approver role; not its maker; before it expires), once."""
        p, refusal = self._decidable(principal, proposal_id, "approvals.approve")
        if p is None:
            assert refusal is not None
            return refusal
        now = self.clock()
        if not self.store.transition(p.id, "proposed", "approved", checker=principal.name, at=now):
            exc = QueryError(
                f"proposal {proposal_id} was decided by someone else meanwhile; see `strongroom approvals show`"
            )
            return self._refused(principal, "approvals.approve", exc, p, proposal_id)
        p = replace(p, status="approved", checker=principal.name, decided_at=now)
        events = [self._record(principal, "approvals.approve", p)]
        # the maker's persons, and the approver's: a key this creates records both as its creators (the maker
        # asked for it; the approver is shown its secret), so neither can later check the other's change with it
        answerable = p.maker_persons | persons_of(principal, self.keys)
        as_maker = Principal(p.maker_principal, p.maker_groups, p.maker_roles, "four-eyes", p.id, answerable)
        applied = self._apply(p, as_maker)
        events.extend(applied.events)
        if applied.error is not None:
            self.store.transition(p.id, "approved", "failed", checker=principal.name, at=now, detail=str(applied.error))
            p = replace(p, status="failed", detail=str(applied.error)[:500])
            events.append(self._record(principal, "approvals.apply", p, outcome="error", detail=p.detail))
            return Outcome(None, applied.error, tuple(events))
        self.store.transition(p.id, "approved", "applied", checker=principal.name, at=now)
        p = replace(p, status="applied")
        events.append(self._record(principal, "approvals.apply", p))
        return Outcome(Applied(p, applied.value), None, tuple(events))

    def reject(self, principal: Principal, proposal_id: str, reason: str = "") -> Outcome[Proposal]:
        """Reject a proposal (approver role; not its maker); it never takes effect."""
        p, refusal = self._decidable(principal, proposal_id, "approvals.reject")
        if p is None:
            assert refusal is not None
            return refusal
        now = self.clock()
        if not self.store.transition(p.id, "proposed", "rejected", checker=principal.name, at=now, detail=reason):
            exc = QueryError(
                f"proposal {proposal_id} was decided by someone else meanwhile; see `strongroom approvals show`"
            )
            return self._refused(principal, "approvals.reject", exc, p, proposal_id)
        p = replace(p, status="rejected", checker=principal.name, decided_at=now, detail=reason[:500])
        return Outcome(p, None, (self._record(principal, "approvals.reject", p, detail=reason[:500]),))

    def break_glass(self, principal: Principal, kind: str, change: Mapping[str, Any], reason: str) -> Outcome[Applied]:
        """An emergency change applied at once by one admin: it needs a reason, and it is flagged
        (``break_glass: true``) and listed by :meth:`unreviewed` until an approver reviews it."""
        try:
            if not reason.strip():
                raise QueryError("break glass needs a reason (--reason): say why this cannot wait for an approver")
            self.ops.require(principal, KINDS.get(kind, "admin"))
            if kind in NO_BREAK_GLASS:
                raise PermissionDenied(
                    f"{kind} is never made by break glass (nothing about letting held documents be deleted is "
                    "urgent, and a review after the fact restores nothing): propose it for an approver"
                )
        except StrongroomError as exc:
            facts = {"kind": kind, "break_glass": True}
            return self.ops.refused(principal, "approvals.break-glass", exc, filters=facts)
        proposed = self.propose(principal, kind, change, reason)
        if proposed.error is not None:
            return Outcome(None, proposed.error, proposed.events)
        p = proposed.result()
        now = self.clock()
        self.store.transition(p.id, "proposed", "break-glass", checker=principal.name, at=now, detail=reason)
        p = replace(p, status="break-glass", checker=principal.name, decided_at=now, break_glass=True)
        events = [*proposed.events, self._record(principal, "approvals.break-glass", p, detail=reason.strip()[:500])]
        applied = self._apply(p, principal)
        events.extend(applied.events)
        if applied.error is not None:
            self.store.transition(
                p.id, "break-glass", "failed", checker=principal.name, at=now, detail=str(applied.error)
            )
            p = replace(p, status="failed", detail=str(applied.error)[:500])
            events.append(self._record(principal, "approvals.apply", p, outcome="error", detail=p.detail))
            return Outcome(None, applied.error, tuple(events))
        events.append(self._record(principal, "approvals.apply", p))
        return Outcome(Applied(p, applied.value), None, tuple(events))

    def unreviewed(self, principal: Principal) -> Outcome[list[Proposal]]:
        """Break-glass changes no approver has reviewed yet (approvers and admins)."""

        def body() -> tuple[list[Proposal], dict[str, object]]:
            if not principal.roles & {"approver", "admin"}:
                raise PermissionDenied("this needs the approver or admin role; ask an administrator")
            found = [p for p in self.store.list() if p.break_glass and not p.reviewed_by]
            return found, {"detail": f"{len(found)} unreviewed break-glass changes"}

        return self.ops.run_audited(principal, "approvals.review-list", {}, body)

    def review(self, principal: Principal, proposal_id: str) -> Outcome[Proposal]:
        """Mark a break-glass change reviewed (approver role; not the one who broke the glass)."""
        p: Proposal | None = None
        try:
            self.ops.require(principal, "approver")
            p = self._proposal(proposal_id)
            if persons_of(principal, self.keys) & ({p.maker} | p.maker_persons):
                raise PermissionDenied(
                    f"you broke the glass on {proposal_id} (or created the key it was made with, or it created "
                    "yours); another approver must review it"
                )
            now = self.clock()
            if not self.store.review(p.id, principal.name, now):
                raise QueryError(f"proposal {proposal_id} is not an unreviewed break-glass change")
        except StrongroomError as exc:
            return self._refused(principal, "approvals.review", exc, p, proposal_id)
        p = replace(p, reviewed_by=principal.name, reviewed_at=now)
        return Outcome(p, None, (self._record(principal, "approvals.review", p),))
