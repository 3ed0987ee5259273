"""Property tests of the application layer: no path leaks, and everything admitted is found.

A small reference model of the rules (documents, versions with publication and ingestion
times and ACLs, deletions, ACL changes, write entitlements) runs beside a real
:class:`~strongroom.service.Platform` over random histories. Each write is checked as it
happens (the model says whether it is allowed; a refused write changes nothing and is
audited); then random principals read at random clocks on every path of the application
layer (``search``, ``ask``, ``documents``, ``document``, ``page``, ``find_document``) and
must see exactly what the model admits: nothing they may not read, nothing deleted, nothing
not knowable at the (clamped) clocks, nothing superseded, and all the rest.

The same scope rules are then held equal across implementations: the catalog paths
(:func:`~strongroom.service.visibility.visible_documents`) against the index search mask
(:class:`~strongroom.store.scope.VersionTable`), and PostgreSQL against the embedded store.

Times are whole days from the start of a run (``t0``), so no query clock falls near the
moment a version was ingested through the platform (which uses the real clock).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from strongroom.audit import AuditLog
from strongroom.config import Settings
from strongroom.errors import NotFound, PermissionDenied
from strongroom.service import AskRequest, DocumentsRequest, IngestRequest, Platform, SearchRequest, View
from strongroom.service.visibility import visible_documents
from strongroom.store.base import Catalog
from strongroom.store.postgres import PostgresStore
from strongroom.store.scope import VersionTable
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.types import DocumentVersion, Principal, Scope, document_id_for, frozen_meta, sha256_hex
from tests.store import conftest as store_fixtures

PROPERTIES = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("strongroom-properties", PROPERTIES)

GROUPS = ("public", "research", "ops", "legal", "deals")
DOCS = ("alder", "birch", "cedar")
VARIANTS = ("amber", "cobalt", "indigo")
SOURCE = "prop"
EMBEDDER = HashEmbedder(64)
#: days from t0 at which versions are published or ingested (past and future)
VERSION_DAYS = (-400, -30, -10, -3, -1, 1, 30)
#: days from t0 a query clock may name: the version days (boundaries) and days between them
QUERY_DAYS = (-500, -400, -200, -30, -20, -10, -5, -3, -2, -1, 1, 30)
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)
EVERY_ROLE = frozenset({"reader", "ingester", "admin"})
#: homes in memory where there is a tmpfs: each read appends an audit record, and its fsyncs
#: are not what these tests are about (3-4 times faster)
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


# -- the model -------------------------------------------------------------------------------


def source_of(doc: str) -> str:
    return f"{SOURCE}/{doc}.txt"


def doc_id(doc: str) -> str:
    return document_id_for(source_of(doc))


def marker(doc: str, variant: str) -> str:
    """A word found only in versions of ``doc`` written with ``variant``."""
    return f"{doc}{variant}"


def ingested_text(doc: str, variant: str) -> str:
    """The bytes of a file ingested through the platform (one page)."""
    return f"{doc.title()} filing. The {marker(doc, variant)} figure is reported in this filing. Harbor ledger note."


def written_pages(doc: str, variant: str) -> tuple[str, str]:
    """The pages of a version written through the store (two pages)."""
    word = marker(doc, variant)
    return (
        f"{doc.title()} memo. The {word} figure is reported in this memo. Harbor ledger note.",
        f"Appendix of the {word} memo, second page. Harbor ledger annex.",
    )


@dataclass
class MVersion:
    id: str
    doc: str
    variant: str
    pages: tuple[str, ...]
    acl: frozenset[str]
    published: datetime
    ingested: datetime
    seq: int
    deleted: bool = False
    doc_type: str = "document"  # make_version's; an ingested version's is what the store says
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def order(self) -> tuple[datetime, datetime, int]:
        return (self.published, self.ingested, self.seq)


#: how a query may narrow what it sees: a document type, or a metadata filter (ingested
#: versions carry ``source: prop``, versions written through the store no metadata)
NARROW: dict[str, tuple[frozenset[str], dict[str, str]]] = {
    "": (frozenset(), {}),
    "document": (frozenset({"document"}), {}),
    "other": (frozenset({"other", "report"}), {}),
    "ingested": (frozenset(), {"source": SOURCE}),
}


def matches(v: MVersion, narrow: str) -> bool:
    doc_types, filters = NARROW[narrow]
    return (not doc_types or v.doc_type in doc_types) and all(v.metadata.get(k) == x for k, x in filters.items())


@dataclass
class Seen:
    """What the model says a principal sees of one document at some clocks."""

    current: MVersion
    history: list[MVersion]


@dataclass
class Model:
    """The rules, written plainly: the reference the platform is held to."""

    versions: list[MVersion] = field(default_factory=list)

    def live(self, doc: str | None = None) -> list[MVersion]:
        return [v for v in self.versions if not v.deleted and (doc is None or v.doc == doc)]

    def live_id(self, version_id: str) -> MVersion | None:
        return next((v for v in self.live() if v.id == version_id), None)

    def add(self, version: MVersion) -> None:
        self.versions.append(version)

    def ahead(self, doc: str, now: datetime) -> list[MVersion]:
        """The version current now (by publication) and those published to supersede it later."""
        out = []
        for v in sorted(self.live(doc), key=lambda v: v.order, reverse=True):
            out.append(v)
            if v.published <= now:
                break
        return out

    def document_acl(self, doc: str, now: datetime) -> frozenset[str] | None:
        """The ACL a new version of ``doc`` must carry: its current version's (or, if none is
        published yet, the first one to be)."""
        ahead = self.ahead(doc, now)
        return ahead[-1].acl if ahead else None

    def may_write(self, groups: frozenset[str], doc: str, now: datetime) -> bool:
        return all(groups & v.acl for v in self.ahead(doc, now))

    def ingest_outcome(
        self, who: Who, doc: str, version_id: str, acl: frozenset[str], now: datetime
    ) -> tuple[str, str]:
        """What ingesting these bytes does (role, denied, duplicate, ingested), and why."""
        if "ingester" not in who.roles:
            return "role", "not an ingester"
        existing = self.live_id(version_id)
        if existing is not None:
            if not who.groups & existing.acl:
                return "denied", "stored bytes it may not read"
            return ("duplicate", "") if existing.acl == acl else ("denied", "stored bytes, another ACL")
        ahead = self.ahead(doc, now)
        if ahead and not who.groups & ahead[-1].acl:
            return "denied", "may not read the current version"
        if not self.may_write(who.groups, doc, now):
            return "denied", "may not read a version to come"
        current = self.document_acl(doc, now)
        return ("denied", "another ACL") if current is not None and current != acl else ("ingested", "")

    def admin_outcome(self, who: Who, doc: str, now: datetime) -> str:
        if "admin" not in who.roles:
            return "role"
        return "ok" if self.live(doc) and self.may_write(who.groups, doc, now) else "not_found"

    def view(
        self,
        groups: frozenset[str],
        as_of: datetime | None,
        known_at: datetime | None,
        *,
        clamp: bool = True,
        fallback: bool = False,
        narrow: str = "",
    ) -> dict[str, Seen]:
        """Per document id: what ``groups`` sees at the two clocks, each clamped to now.
        (``clamp=False`` and ``fallback``: what a look-ahead, or a fallback to an older version
        the principal may read, would show, to tell whether a query could catch one.)
        ``narrow``: the document type or metadata filter (see :class:`Query`), applied to the
        current version (a document whose current version does not match is not seen)."""
        now = datetime.now(UTC)
        published = min(as_of or now, now) if clamp else as_of or now
        ingested = min(known_at or now, now) if clamp else known_at or now
        out = {}
        for doc in sorted({v.doc for v in self.versions}):
            knowable = sorted(
                (
                    v
                    for v in self.live(doc)
                    if v.published <= published and v.ingested <= ingested and (not fallback or groups & v.acl)
                ),
                key=lambda v: v.order,
                reverse=True,
            )
            if knowable and groups & knowable[0].acl and matches(knowable[0], narrow):
                out[doc_id(doc)] = Seen(knowable[0], [v for v in knowable if groups & v.acl])
        return out


# -- operations of a history -----------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    """A writer with ``groups``; an ``insider`` also holds a group that may read each version
    of the document it writes to that is current or published later (``all``), or only the
    current one (``current``: it may not read what is to come)."""

    groups: frozenset[str]
    roles: frozenset[str]
    insider: str = "none"  # none | current | all

    def resolve(self, model: Model, doc: str, now: datetime) -> Who:
        ahead = model.ahead(doc, now)
        if self.insider == "current":
            ahead = ahead[-1:]
        elif self.insider != "all":
            return self
        return Who(self.groups | frozenset(sorted(v.acl)[0] for v in ahead), self.roles)

    def principal(self, name: str = "writer") -> Principal:
        return Principal(name, self.groups, self.roles)


@dataclass(frozen=True)
class Write:
    """A version written through the store, with any publication and ingestion day (as an
    earlier ingestion or another process would have)."""

    doc: str
    variant: str
    acl: frozenset[str]
    published: int
    ingested: int


@dataclass(frozen=True)
class Ingest:
    """A file ingested through the platform now. ``acl`` None: the document's own ACL."""

    who: Who
    doc: str
    variant: str
    acl: frozenset[str] | None
    published: int


@dataclass(frozen=True)
class SetAcl:
    """An ACL change of a document that exists (``doc`` < 4: the ``doc``-th one), else of DOCS[doc % 3]."""

    who: Who
    doc: int
    acl: frozenset[str]


@dataclass(frozen=True)
class Delete:
    """A deletion of a document that exists (``doc`` < 4: the ``doc``-th one), else of DOCS[doc % 3]."""

    who: Who
    doc: int


@dataclass(frozen=True)
class Again:
    """The bytes of an ingested version (the ``pick``-th such, deleted or not) ingested again,
    with ``acl`` (None: the document's)."""

    who: Who
    pick: int
    published: int
    deleted: bool
    acl: frozenset[str] | None = None


Op = Write | Ingest | SetAcl | Delete | Again

groups_st = st.frozensets(st.sampled_from(GROUPS), max_size=3)
acl_st = st.frozensets(st.sampled_from(GROUPS), min_size=1, max_size=2)
roles_st = st.sampled_from(
    [EVERY_ROLE] * 4 + [frozenset({"reader", "ingester"}), frozenset({"admin"}), frozenset({"reader"})]
)
who_st = st.builds(Who, groups_st, roles_st, st.sampled_from(["all", "all", "current", "none"]))
days_st = st.sampled_from(VERSION_DAYS)
past_days_st = st.sampled_from([d for d in VERSION_DAYS if d < 0])
doc_st = st.sampled_from([DOCS[0], DOCS[0], *DOCS])  # alder often: long histories of one document
variant_st = st.sampled_from(VARIANTS)
write_st = st.builds(Write, doc_st, variant_st, acl_st, days_st, st.one_of(past_days_st, past_days_st, days_st))
ingest_st = st.builds(Ingest, who_st, doc_st, variant_st, st.none() | st.none() | acl_st, days_st)
op_st: st.SearchStrategy[Op] = st.one_of(
    write_st,
    write_st,
    ingest_st,
    ingest_st,
    st.builds(SetAcl, who_st, st.integers(0, 4), acl_st),
    st.builds(Delete, who_st, st.integers(0, 4)),
    st.builds(Delete, who_st, st.integers(0, 4)),
    st.builds(Again, who_st, st.integers(0, 3), days_st, st.booleans(), st.none() | acl_st),
)


def snapshot(store: Catalog) -> tuple[object, ...]:
    versions = [(v.id, v.document_id, sorted(v.acl), v.published_at, v.ingested_at) for v in store.versions()]
    return (versions, store.counts())


def audit_seq(log: AuditLog) -> int:
    return log.head().seq


def new_records(log: AuditLog, after: int) -> list[dict[str, object]]:
    return [r.as_dict() for r in log.read(after_seq=after)]


class History:
    """Runs operations on a platform and on the model side by side, checking each write."""

    def __init__(self, platform: Platform, files: Path, t0: datetime, *, events: bool = True) -> None:
        self.platform = platform
        self.events = events  # hypothesis statistics (only inside a test)
        self.store: Catalog = platform.runtime.store  # type: ignore[assignment]
        self.files = files
        self.t0 = t0
        self.model = Model()
        self.seq = 0

    def day(self, days: int) -> datetime:
        return self.t0 + timedelta(days=days)

    def event(self, text: str) -> None:
        if self.events:
            event(text)

    def run(self, op: Op) -> None:
        self.seq += 1
        if isinstance(op, Write):
            self.write(op)
        elif isinstance(op, Ingest):
            self.ingest(op)
        elif isinstance(op, Again):
            candidates = [v for v in self.model.versions if v.deleted == op.deleted and len(v.pages) == 1]
            if not candidates:
                self.event("again: nothing to ingest again")
                return
            v = candidates[op.pick % len(candidates)]
            self.ingest(Ingest(op.who, v.doc, v.variant, op.acl, op.published))
        else:
            self.admin(op)

    def write(self, op: Write) -> None:
        pages = written_pages(op.doc, op.variant)
        new = make_version(
            EMBEDDER, source_of(op.doc), pages, acl=sorted(op.acl),
            published=self.day(op.published), ingested=self.day(op.ingested),
        )  # fmt: skip
        expected = self.model.live_id(new.version.id) is None
        assert self.store.write(new) is expected
        if expected:
            self.model.add(
                MVersion(new.version.id, op.doc, op.variant, pages, op.acl,
                         self.day(op.published), self.day(op.ingested), self.seq)
            )  # fmt: skip
        self.event("write: stored" if expected else "write: already stored")

    def ingest(self, op: Ingest) -> None:
        now = datetime.now(UTC)
        op = replace(op, who=op.who.resolve(self.model, op.doc, now))
        acl = op.acl or self.model.document_acl(op.doc, now) or frozenset({"research"})
        text = ingested_text(op.doc, op.variant)
        path = self.files / f"{op.doc}.txt"
        path.write_text(text)
        version_id = sha256_hex(text.encode())
        expected, why = self.model.ingest_outcome(op.who, op.doc, version_id, acl, now)
        redo = any(v.id == version_id and v.deleted for v in self.model.versions)
        again = "(deleted bytes again)" if redo and expected == "ingested" else ""
        self.event(" ".join(w for w in ("ingest:", expected, why, again) if w))
        before, seq = snapshot(self.store), audit_seq(self.platform.audit)
        request = IngestRequest(paths=(path,), acl=acl, source=SOURCE, published=self.day(op.published))
        started = datetime.now(UTC)
        try:
            report = self.platform.ingest(op.who.principal(), request)
        except PermissionDenied:
            status = "role"
        else:
            assert len(report.files) == 1, report.files
            status = {"failed": "denied"}.get(report.files[0].status, report.files[0].status)
            error = report.files[0].error
            assert status != "denied" or "refused" in error or "acl set" in error, f"{op}: failed, {error}"
        assert status == expected, f"{op}: the platform said {status}, the model {expected}"
        if expected == "ingested":
            stored = self.store.version(version_id)
            assert stored is not None and stored.acl == acl
            assert started <= stored.ingested_at <= datetime.now(UTC)
            assert stored.published_at == self.day(op.published)
            self.model.add(
                MVersion(
                    version_id, op.doc, op.variant, (text,), acl, stored.published_at, stored.ingested_at, self.seq,
                    doc_type=stored.doc_type, metadata=dict(stored.metadata),
                )
            )  # fmt: skip
            return
        assert snapshot(self.store) == before, f"{op} ({expected}) changed the store"
        if expected != "duplicate":
            records = new_records(self.platform.audit, seq)
            action = "ingest" if expected == "role" else "documents.write"
            target = "" if expected == "role" else doc_id(op.doc)
            assert any(
                r["action"] == action and r["outcome"] == "denied" and (not target or r["target"] == target)
                for r in records
            ), f"{op}: the refused write was not audited: {records}"

    def admin(self, op: SetAcl | Delete) -> None:
        now = datetime.now(UTC)
        docs = sorted({v.doc for v in self.model.live()})
        doc = docs[op.doc % len(docs)] if docs and op.doc < 4 else DOCS[op.doc % len(DOCS)]
        who = op.who.resolve(self.model, doc, now)
        expected = self.model.admin_outcome(who, doc, now)
        self.event(f"{type(op).__name__}: {expected}")
        live = {v.id for v in self.model.live(doc)}
        before, seq = snapshot(self.store), audit_seq(self.platform.audit)
        try:
            if isinstance(op, SetAcl):
                change = self.platform.set_acl(who.principal(), doc_id(doc), op.acl)
                assert change.before == self.model.document_acl(doc, now) and change.after == op.acl
                assert set(change.versions) == live
            else:
                assert set(self.platform.delete(who.principal(), doc_id(doc))) == live
            outcome = "ok"
        except PermissionDenied:
            outcome = "role"
        except NotFound:
            outcome = "not_found"
        assert outcome == expected, f"{op} on {doc}: the platform said {outcome}, the model {expected}"
        if outcome == "ok":
            for v in self.model.live(doc):
                if isinstance(op, SetAcl):
                    v.acl = op.acl
                else:
                    v.deleted = True
            return
        assert snapshot(self.store) == before, f"{op} on {doc} ({expected}) changed the store"
        action = "acl.set" if isinstance(op, SetAcl) else "documents.delete"
        records = new_records(self.platform.audit, seq)
        assert any(
            r["action"] == action and r["outcome"] in ("denied", "not_found") and r["target"] == doc_id(doc)
            for r in records
        ), f"{op} on {doc}: the refused write was not audited: {records}"


# -- clocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """A query clock as a caller gives it: absent, an instant (days from t0, as a datetime or
    ISO text), a bare date (the end of that day, UTC) or the far future."""

    kind: str  # none | datetime | iso | date | far
    days: float = 0

    def instant(self, t0: datetime) -> datetime | None:
        if self.kind == "none":
            return None
        if self.kind == "far":
            return FAR_FUTURE
        moment = t0 + timedelta(days=self.days)
        if self.kind == "date":
            return datetime.combine(moment.date(), datetime.max.time(), UTC)
        return moment

    def value(self, t0: datetime) -> str | datetime | None:
        moment = self.instant(t0)
        if moment is None or self.kind == "datetime":
            return moment
        if self.kind == "date":
            return moment.date().isoformat()
        return moment.isoformat().replace("+00:00", "Z")

    def http(self, t0: datetime) -> str | None:
        value = self.value(t0)
        return value.isoformat() if isinstance(value, datetime) else value


far_st = st.sampled_from([Clock("far"), Clock("iso", 365 * 900), Clock("date", 365 * 900), Clock("datetime", 30)])
clock_st = st.one_of(
    st.just(Clock("none")),
    st.just(Clock("none")),
    far_st,
    st.builds(Clock, st.sampled_from(["datetime", "iso"]), st.sampled_from(QUERY_DAYS)),
    st.builds(Clock, st.just("datetime"), st.just(-1 / 24)),  # an hour before t0
    st.builds(Clock, st.just("date"), st.sampled_from([d for d in QUERY_DAYS if d < 0 or d > 1])),
    far_st,
)


@dataclass(frozen=True)
class Query:
    """A reader: its ``groups`` and, if ``reads`` is set, a group that may read the
    ``reads``-th live version (maybe not the current one: where a fallback would leak)."""

    groups: frozenset[str]
    as_of: Clock
    known_at: Clock
    reads: int | None = None
    narrow: str = ""  # a key of NARROW

    def groups_in(self, model: Model) -> frozenset[str]:
        live = model.live()
        if self.reads is None or not live:
            return self.groups
        return self.groups | {sorted(live[self.reads % len(live)].acl)[0]}


reader_groups_st = st.one_of(
    st.frozensets(st.sampled_from(GROUPS), min_size=1, max_size=1),
    st.frozensets(st.sampled_from(GROUPS), min_size=1, max_size=2),
    st.frozensets(st.sampled_from(GROUPS), max_size=4),
)
query_st = st.builds(
    Query,
    reader_groups_st,
    clock_st,
    clock_st,
    st.none() | st.integers(0, 11),
    st.sampled_from(["", "", "", *NARROW]),
)
#: every group, now and in the far future: whatever a history left visible, these see, and
#: anything published or learned later is what a look-ahead would show them
EVERYONE_NOW = Query(frozenset(GROUPS), Clock("none"), Clock("none"))
EVERYONE_FAR = Query(frozenset(GROUPS), Clock("iso", 365 * 900), Clock("far"))


# -- the checks on every path ----------------------------------------------------------------


def check_hit_versions(what: str, got: list[DocumentVersion], currents: dict[str, MVersion]) -> None:
    """0 leaks: each passage comes from the current version, at the clocks, of a document
    the principal may read, with that version's ACL as it is now."""
    for v in got:
        allowed = currents.get(v.id)
        assert allowed is not None, f"{what}: returned version {v.id[:12]} of {v.source}, not admitted"
        assert v.acl == allowed.acl, f"{what}: version {v.id[:12]} shown with ACL {sorted(v.acl)}"


def check_every_path(platform: Platform, model: Model, query: Query, t0: datetime) -> None:
    """Every read path of the application layer, for one principal at one pair of clocks."""
    groups = query.groups_in(model)
    who = Principal("reader", groups, frozenset({"reader"}))
    as_of, known_at = query.as_of.value(t0), query.known_at.value(t0)
    doc_types, filters = NARROW[query.narrow]
    lens = {"as_of": as_of, "known_at": known_at, "doc_types": doc_types, "filters": frozen_meta(filters)}
    view = View(**lens)
    expected = model.view(groups, query.as_of.instant(t0), query.known_at.instant(t0), narrow=query.narrow)
    currents = {seen.current.id: seen.current for seen in expected.values()}
    event(f"visible documents: {len(expected)}")
    if (
        model.view(groups, query.as_of.instant(t0), query.known_at.instant(t0), clamp=False, narrow=query.narrow)
        != expected
    ):
        event("a look-ahead would show more")
    if (
        model.view(groups, query.as_of.instant(t0), query.known_at.instant(t0), fallback=True, narrow=query.narrow)
        != expected
    ):
        event("a fallback to an older readable version would show more")
    if query.narrow and model.view(groups, query.as_of.instant(t0), query.known_at.instant(t0)) != expected:
        event(f"narrowed to {query.narrow!r}: less is seen")
    what = f"{sorted(groups)} as_of={as_of} known_at={known_at} narrow={query.narrow!r}"

    # documents and document: exactly the admitted documents, current version and history
    listed = platform.documents(who, DocumentsRequest(**lens, limit=1000))
    for d in listed:
        seen = expected.get(d.document_id)
        assert seen is not None, f"{what}: documents listed {d.source}, not admitted"
        assert d.current.id == seen.current.id, f"{what}: {d.source} shows a version that is not current"
        assert [v.id for v in d.versions] == [v.id for v in seen.history], f"{what}: history of {d.source}"
        check_hit_versions(f"{what} documents", [d.current], currents)
    assert {d.document_id for d in listed} == set(expected), f"{what}: documents misses some it may read"
    for doc in [*DOCS, "nothing"]:
        seen = expected.get(doc_id(doc))
        try:
            got = platform.document(who, doc_id(doc), view)
        except NotFound:
            assert seen is None, f"{what}: document {doc} not found, but admitted"
            continue
        assert seen is not None, f"{what}: document {doc} returned, not admitted"
        assert got.current.id == seen.current.id and [v.id for v in got.versions] == [v.id for v in seen.history]

    # pages: of every version ever written, visible or not, deleted or not
    for version_id in dict.fromkeys(v.id for v in model.versions):
        live = model.live_id(version_id)
        doc = next(v.doc for v in model.versions if v.id == version_id)
        seen = expected.get(doc_id(doc))
        admitted = live is not None and seen is not None and any(v.id == version_id for v in seen.history)
        pages = len(live.pages) if live else 2
        for page in range(1, pages + 2):
            try:
                shown = platform.page(who, doc_id(doc), version_id, page, view)
            except NotFound:
                assert not (admitted and live and page <= len(live.pages)), f"{what}: page {page} of {doc} hidden"
                continue
            assert admitted and live is not None, f"{what}: page {page} of version {version_id[:12]} leaked"
            assert shown.text == live.pages[page - 1] and shown.version.acl == live.acl
        other = doc_id(DOCS[(DOCS.index(doc) + 1) % len(DOCS)])
        with pytest.raises(NotFound):
            platform.page(who, other, version_id, 1, view)

    # search: a common phrase finds every admitted document's current version, and only those
    hits = platform.search(who, SearchRequest(query="harbor ledger", k=50, **lens)).hits
    check_hit_versions(f"{what} search", [h.version for h in hits], currents)
    assert {h.version.id for h in hits} == set(currents), f"{what}: search misses an admitted document"
    for h in hits:
        assert h.chunk.text in currents[h.version.id].pages[h.chunk.page - 1]
    markers = dict.fromkeys(marker(v.doc, v.variant) for v in model.versions)
    for word in markers:
        owner = next((v for v in currents.values() if marker(v.doc, v.variant) == word), None)
        hits = platform.search(who, SearchRequest(query=word, k=3, **lens)).hits
        check_hit_versions(f"{what} search {word}", [h.version for h in hits], currents)
        if owner is not None:
            assert any(h.version.id == owner.id and word in h.chunk.text for h in hits), f"{what}: {word} not found"
        else:
            assert not any(word in h.chunk.text for h in hits), f"{what}: search {word} leaked"
        answer = platform.ask(who, AskRequest(question=word, k=3, **lens))
        check_hit_versions(f"{what} ask {word}", [h.version for h in answer.hits], currents)
        cited = [currents.get(c.version_id) for c in answer.citations]
        assert all(cited), f"{what}: ask {word} cites a version not admitted"
        if owner is not None:
            assert answer.found and owner.id in {c.version_id for c in answer.citations}, f"{what}: ask {word}"
        else:
            assert word not in answer.text, f"{what}: ask {word} leaked"

    # find_document: by id, source, file name, id prefix and version-id prefix
    for doc in DOCS:
        seen = expected.get(doc_id(doc))
        names = [doc_id(doc), source_of(doc), f"{doc}.txt", doc_id(doc)[:10]]
        names += [v.id[:12] for v in model.versions if v.doc == doc]
        for name in names:
            hidden = seen is None or (len(name) == 12 and name not in {v.id[:12] for v in seen.history})
            try:
                found = platform.find_document(who, name, view)
            except NotFound:
                assert hidden, f"{what}: find_document {name!r} ({doc}) not found, but admitted"
                continue
            assert not hidden, f"{what}: find_document {name!r} ({doc}) found, not admitted"
            assert found.document_id == doc_id(doc)


# -- the tests -------------------------------------------------------------------------------


@contextmanager
def fresh_platform() -> Iterator[tuple[Platform, Path]]:
    """A platform over a new embedded home, and a folder for the files it ingests."""
    with tempfile.TemporaryDirectory(prefix="sr-props-", dir=SCRATCH) as tmp:
        files = Path(tmp) / "files"
        files.mkdir()
        platform = Platform.open(Settings(home=Path(tmp) / "home", embedder="hash"), embedder=HashEmbedder(64))
        try:
            yield platform, files
        finally:
            platform.close()


def start() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


R, P, OPS, L = (frozenset({g}) for g in ("research", "public", "ops", "legal"))
#: every kind of write, refused and allowed, deleted bytes ingested again, a future version
EVERY_WRITE = [
    Ingest(Who(R, EVERY_ROLE), "alder", "amber", R, -10),
    Write("alder", "cobalt", R, 30, -1),  # published next month: its writers must read it too
    Ingest(Who(P, EVERY_ROLE), "alder", "indigo", None, -1),  # refused: may not read alder
    Ingest(Who(R, EVERY_ROLE), "alder", "indigo", P, -1),  # refused: another ACL
    Ingest(Who(R, EVERY_ROLE), "alder", "amber", P, -1),  # refused: the same bytes with another ACL
    Write("birch", "amber", OPS, -30, -30),
    Write("birch", "cobalt", L, -3, -3),
    SetAcl(Who(OPS, EVERY_ROLE), 1, P),  # refused: ops may not read birch's current version
    SetAcl(Who(L | OPS, EVERY_ROLE), 1, P | OPS),
    Delete(Who(R, frozenset({"reader", "ingester"})), 0),  # refused: not an admin
    Delete(Who(R, EVERY_ROLE), 0),
    Again(Who(R, EVERY_ROLE), 0, -2, deleted=True),
]
#: the two clocks: a version learned late, no fallback to an older readable version, the future
CLOCKS = [
    Write("alder", "amber", P, -400, -400),
    Write("alder", "cobalt", P, -30, -3),  # published a month ago, learned three days ago
    Write("alder", "indigo", R, -10, -10),  # the current one: public readers lose alder
    Ingest(Who(P | R, EVERY_ROLE), "alder", "amber", R, -5),  # ingested: not a "document" (its type)
    Ingest(Who(P | R, EVERY_ROLE), "birch", "amber", P, 1),  # published tomorrow
    Ingest(Who(P, EVERY_ROLE), "birch", "cobalt", None, -1),
    Write("birch", "indigo", R, 30, -1),  # to be published next month, for research only
    Ingest(Who(P, EVERY_ROLE), "birch", "indigo", None, -1),  # refused: may not read what is to come
    Write("cedar", "amber", P, -1, 30),  # learned next month
]


@PROPERTIES
@example(EVERY_WRITE, [Query(R, Clock("none"), Clock("none")), Query(OPS | L, Clock("date", -20), Clock("iso", -2))])
@example(
    CLOCKS,
    [
        Query(P, Clock("iso", -20), Clock("none")),
        Query(P, Clock("none"), Clock("datetime", -5)),
        Query(P, Clock("far"), Clock("far")),
        Query(R, Clock("date", -5), Clock("datetime", -1 / 24)),
        Query(R, Clock("none"), Clock("none"), narrow="document"),  # alder's current is not one
    ],
)
@given(ops=st.lists(op_st, min_size=4, max_size=12), queries=st.lists(query_st, min_size=2, max_size=3))
def test_no_path_leaks_and_everything_admitted_is_found(ops: list[Op], queries: list[Query]) -> None:
    """(a) 0 leaks and (b) everything admitted is found, on every read path, after a random
    history; (c) each write the model refuses is refused, changes nothing and is audited,
    and each one it allows happens (checked as the history runs)."""
    note(f"history: {ops!r}\nqueries: {queries!r}")  # this hypothesis prints no arguments
    with fresh_platform() as (platform, files):
        history = History(platform, files, start())
        for op in ops:
            history.run(op)
        for query in [*queries, EVERYONE_NOW, EVERYONE_FAR]:
            check_every_path(platform, history.model, query, history.t0)


# -- the scope rules agree across implementations --------------------------------------------

EPOCH = 1_700_000_000.0
#: the throwaway PostgreSQL + pgvector of the store tests (module scope), as a fixture here
postgres_url = store_fixtures.server_url


@dataclass(frozen=True)
class Row:
    doc: int
    published: int  # days after EPOCH
    ingested: int
    acl: frozenset[str]
    doc_type: str
    desk: str
    deleted: bool


FEW_GROUPS = ("public", "research", "ops")
row_st = st.builds(
    Row,
    st.integers(0, 3),
    st.integers(0, 5),  # few days: ties in publication and ingestion are common
    st.integers(0, 5),
    st.frozensets(st.sampled_from(FEW_GROUPS), min_size=1, max_size=2),
    st.sampled_from(["report", "memo"]),
    st.sampled_from(["rates", "fx"]),
    st.booleans(),
)
instant_st = st.none() | st.integers(-1, 7).map(lambda d: datetime.fromtimestamp(EPOCH + d * 86400 + 3600, UTC))


def table_of(rows: list[Row], versions: list[DocumentVersion]) -> VersionTable:
    acl_sets = list(dict.fromkeys(v.acl for v in versions))
    return VersionTable(
        seqs=np.arange(len(rows), dtype=np.int64),
        doc=np.array([r.doc for r in rows], dtype=np.int64),
        published=np.array([v.published_at.timestamp() for v in versions], dtype=np.float64),
        ingested=np.array([v.ingested_at.timestamp() for v in versions], dtype=np.float64),
        deleted=np.array([r.deleted for r in rows], dtype=bool),
        acl_set=np.array([acl_sets.index(v.acl) for v in versions], dtype=np.int64),
        acl_sets=acl_sets,
        doc_types=[v.doc_type for v in versions],
        metadata=[dict(v.metadata) for v in versions],
    )


@dataclass(frozen=True)
class Lens:
    """The clocks and filters of a scope (the groups: every subset of FEW_GROUPS)."""

    as_of: datetime | None
    known_at: datetime | None
    doc_types: frozenset[str]
    filters: dict[str, str]


lens_st = st.builds(
    Lens,
    instant_st,
    instant_st,
    st.sampled_from([frozenset(), frozenset(), frozenset({"report"}), frozenset({"report", "memo"})]),
    st.sampled_from([{}, {}, {"desk": "rates"}]),
)
GROUP_SETS = [frozenset(c) for n in range(len(FEW_GROUPS) + 1) for c in itertools.combinations(FEW_GROUPS, n)]


def model_admits(live: list[DocumentVersion], scope: Scope, now: float) -> dict[str, tuple[str, list[str]]]:
    """Per document: the current version and the history the scope admits, written plainly:
    knowable at the clamped clocks, latest by (published, ingested, write order) per document,
    then the groups, the document type and the filters on that one (never a fallback)."""
    bound_p = min(scope.as_of.timestamp() if scope.as_of else now, now)
    bound_i = min(scope.known_at.timestamp() if scope.known_at else now, now)
    out: dict[str, tuple[str, list[str]]] = {}
    for d in {v.document_id for v in live}:
        knowable = [
            (v.published_at, v.ingested_at, i, v)
            for i, v in enumerate(live)
            if v.document_id == d and v.published_at.timestamp() <= bound_p and v.ingested_at.timestamp() <= bound_i
        ]
        if not knowable:
            continue
        knowable.sort(key=lambda item: item[:3], reverse=True)
        current = knowable[0][3]
        if not scope.groups & current.acl or (scope.doc_types and current.doc_type not in scope.doc_types):
            continue
        if all(current.metadata.get(k) == value for k, value in scope.filters.items()):
            out[d] = (current.id, [v.id for *_, v in knowable if scope.groups & v.acl])
    return out


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(row_st, max_size=16), lenses=st.lists(lens_st, min_size=1, max_size=4), now_day=st.integers(2, 6))
def test_catalog_paths_and_the_index_mask_admit_the_same_versions(
    rows: list[Row], lenses: list[Lens], now_day: int
) -> None:
    """``visible_documents`` (lists, versions, pages) and ``VersionTable`` (the index search
    mask) admit the same current versions as the model, on random version tables with ties,
    deletions, future versions, document types and metadata filters, for every set of groups."""
    note(f"rows: {rows!r}\nlenses: {lenses!r}")
    versions = [
        DocumentVersion(
            id=f"v{i}", document_id=f"d{r.doc}", source=f"d{r.doc}", title="", media_type="text/plain",
            doc_type=r.doc_type, acl=r.acl, published_at=datetime.fromtimestamp(EPOCH + r.published * 86400, UTC),
            ingested_at=datetime.fromtimestamp(EPOCH + r.ingested * 86400, UTC), size=1, pages=1,
            metadata=frozen_meta({"desk": r.desk}),
        )
        for i, r in enumerate(rows)
    ]  # fmt: skip
    now = EPOCH + now_day * 86400 + 1800
    live = [v for v, r in zip(versions, rows, strict=True) if not r.deleted]
    table = table_of(rows, versions)
    for lens in lenses:
        for groups in GROUP_SETS:
            scope = Scope(groups, lens.as_of, lens.doc_types, frozen_meta(lens.filters), lens.known_at)
            expected = model_admits(live, scope, now)
            by_index = {versions[i].id for i in np.flatnonzero(table.version_mask(scope, now))}
            by_catalog = visible_documents(live, scope, now)
            assert by_index == {c for c, _ in expected.values()}, f"the index mask, {scope}"
            got = {d: (s.current.id, [v.id for v in s.history]) for d, s in by_catalog.items()}
            assert got == expected, f"the catalog paths, {scope}"


@dataclass(frozen=True)
class StoreAcl:
    doc: str
    acl: frozenset[str]


@dataclass(frozen=True)
class StoreDelete:
    doc: str


StoreOp = Write | StoreAcl | StoreDelete
store_op_st: st.SearchStrategy[StoreOp] = st.one_of(
    write_st, write_st, write_st, st.builds(StoreAcl, doc_st, acl_st), st.builds(StoreDelete, doc_st)
)


@pytest.mark.integration
@settings(PROPERTIES, max_examples=25)
@given(ops=st.lists(store_op_st, min_size=3, max_size=12), queries=st.lists(query_st, min_size=1, max_size=4))
def test_postgres_and_the_embedded_store_agree_on_both_clocks(
    postgres_url: str, ops: list[StoreOp], queries: list[Query]
) -> None:
    """The same history written to PostgreSQL and to the embedded store: both admit exactly
    the model's versions (with their ACLs as they are now) at random (as_of, known_at), in the
    index search and on the catalog paths, after deletions and ACL changes; and so does a
    second connection to each (another process, a replica) that kept reading meanwhile."""
    note(f"history: {ops!r}\nqueries: {queries!r}")
    url = store_fixtures.fresh_database(postgres_url)
    with tempfile.TemporaryDirectory(prefix="sr-props-", dir=SCRATCH) as tmp:
        pg = PostgresStore(url, model_id=EMBEDDER.model_id, dim=EMBEDDER.dim)
        lite = SqliteStore(Path(tmp), model_id=EMBEDDER.model_id, dim=EMBEDDER.dim)
        replicas = [
            PostgresStore(url, model_id=EMBEDDER.model_id, dim=EMBEDDER.dim),
            SqliteStore(Path(tmp), model_id=EMBEDDER.model_id, dim=EMBEDDER.dim),
        ]
        everyone = Scope(frozenset(GROUPS))
        try:
            t0, model = start(), Model()
            for seq, op in enumerate(ops):
                if isinstance(op, Write):
                    pages = written_pages(op.doc, op.variant)
                    published, ingested = t0 + timedelta(days=op.published), t0 + timedelta(days=op.ingested)
                    new = make_version(
                        EMBEDDER, source_of(op.doc), pages, acl=sorted(op.acl), published=published, ingested=ingested
                    )
                    stored = model.live_id(new.version.id) is None
                    assert pg.write(new) is stored and lite.write(new) is stored
                    if stored:
                        model.add(MVersion(new.version.id, op.doc, op.variant, pages, op.acl, published, ingested, seq))
                elif isinstance(op, StoreAcl):
                    changed = {v.id for v in model.live(op.doc)}
                    assert (
                        set(pg.set_acl(doc_id(op.doc), op.acl)) == set(lite.set_acl(doc_id(op.doc), op.acl)) == changed
                    )
                    for v in model.live(op.doc):
                        v.acl = op.acl
                else:
                    gone = {v.id for v in model.live(op.doc)}
                    assert set(pg.delete_document(doc_id(op.doc))) == set(lite.delete_document(doc_id(op.doc))) == gone
                    for v in model.live(op.doc):
                        v.deleted = True
                for replica in replicas:  # reads between writes: what they cache must not go stale
                    replica.versions_of([c for c, _ in replica.keyword_search("harbor ledger", everyone, 1000)])

            def catalog(store: Catalog) -> list[tuple[object, ...]]:
                return [(v.id, sorted(v.acl), v.published_at, v.ingested_at) for v in store.versions()]

            assert catalog(pg) == catalog(lite) == catalog(replicas[0]) == catalog(replicas[1])
            vector = EMBEDDER.embed(["harbor ledger"])[0]
            for query in [*queries, EVERYONE_NOW, EVERYONE_FAR]:
                as_of, known_at = query.as_of.instant(t0), query.known_at.instant(t0)
                groups = query.groups_in(model)
                scope = Scope(groups, as_of=as_of, known_at=known_at)
                expected = model.view(groups, as_of, known_at)
                currents = {seen.current.id: seen.current.acl for seen in expected.values()}
                event(f"postgres: visible documents: {len(expected)}")
                for store in (pg, lite, *replicas):
                    what = f"{type(store).__name__} {query}"
                    found = [c for c, _ in store.keyword_search("harbor ledger", scope, 1000)]
                    assert {v.id: v.acl for v in store.versions_of(found).values()} == currents, what
                    near = [c for c, _ in store.vector_search(vector, scope, 1000)]
                    assert {v.id: v.acl for v in store.versions_of(near).values()} == currents, what
                    assert {v.id: v.acl for _, v in store.fetch(found)} == currents, what
                    seen = visible_documents(store.versions(), scope)
                    assert {d: [v.id for v in s.history] for d, s in seen.items()} == {
                        d: [v.id for v in s.history] for d, s in expected.items()
                    }, what
        finally:
            for store in (pg, lite, *replicas):
                store.close()
