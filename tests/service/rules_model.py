"""The reference model of the application layer's rules that the property tests hold the real one to:
documents, versions with publication and ingestion days and ACLs, write entitlements, and the
random operations (writes, ingests, ACL changes, deletions, re-ingestions) of a history."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from strongroom.testing import HashEmbedder
from strongroom.types import Principal, document_id_for

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
