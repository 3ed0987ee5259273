"""Running a random history on a real Platform beside the model, and reading it back on every
path of the application layer at random clocks (the checks of the property tests)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import event
from hypothesis import strategies as st

from strongroom.audit import AuditLog
from strongroom.config import Settings
from strongroom.errors import NotFound, PermissionDenied
from strongroom.service import AskRequest, DocumentsRequest, IngestRequest, Platform, SearchRequest, View
from strongroom.store.base import Catalog
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.types import DocumentVersion, Principal, frozen_meta, sha256_hex
from tests.service.rules_model import (
    DOCS,
    EMBEDDER,
    FAR_FUTURE,
    GROUPS,
    NARROW,
    QUERY_DAYS,
    SCRATCH,
    SOURCE,
    Again,
    Delete,
    Ingest,
    Model,
    MVersion,
    Op,
    SetAcl,
    Write,
    doc_id,
    ingested_text,
    marker,
    source_of,
    written_pages,
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
