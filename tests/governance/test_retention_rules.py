"""The pure rules of retention and legal holds: properties over generated stores, and the edges."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import QueryError
from strongroom.governance.holds import Hold, document_hold, hold_on, query_terms
from strongroom.governance.retention import RetentionPolicy, expired, governing_policy, parse_keep, plan
from strongroom.types import DocumentVersion, frozen_meta

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TYPES = ("research_report", "term_sheet", "regulatory_filing")
SOURCES = ("s3://bank/research/", "s3://bank/deals/", "file:///inbox/")
LEVELS = ("public", "internal", "confidential", "restricted")


def version(
    doc: str,
    n: int = 0,
    *,
    published: datetime = datetime(2010, 1, 1, tzinfo=UTC),
    doc_type: str = "research_report",
    source: str = "s3://bank/research/",
    sensitivity: str = "internal",
    title: str = "Apple Q3 note",
) -> DocumentVersion:
    return DocumentVersion(
        id=f"{doc}-v{n}",
        document_id=doc,
        source=f"{source}{doc}.pdf",
        title=title,
        media_type="application/pdf",
        doc_type=doc_type,
        acl=frozenset({"research"}),
        published_at=published,
        ingested_at=published,
        size=10,
        pages=1,
        metadata=frozen_meta({"sensitivity": sensitivity, "ticker": "AAPL"}),
    )


def hold(hid: str = "h1", **target: object) -> Hold:
    return Hold(hid, "M-1", "ana", "litigation", NOW, **target)  # type: ignore[arg-type]


# -- generated stores -------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))
versions_st = st.lists(
    st.builds(
        version,
        st.sampled_from([f"d{i}" for i in range(8)]),
        st.integers(0, 3),
        published=instants,
        doc_type=st.sampled_from(TYPES),
        source=st.sampled_from(SOURCES),
        sensitivity=st.sampled_from(LEVELS),
    ),
    max_size=20,
    unique_by=lambda v: v.id,
)
policies_st = st.lists(
    st.builds(
        RetentionPolicy,
        st.sampled_from([f"p{i}" for i in range(6)]),
        st.integers(0, 12),
        st.integers(1, 400),
        doc_type=st.sampled_from(("", *TYPES)),
        source=st.sampled_from(SOURCES),
        sensitivity=st.sampled_from(("", *LEVELS)),
    ),
    max_size=5,
    unique_by=lambda p: p.id,
)
holds_st = st.lists(
    st.one_of(
        st.builds(hold, st.just("hd"), document_id=st.sampled_from([f"d{i}" for i in range(8)])),
        st.builds(hold, st.just("hs"), source=st.sampled_from(SOURCES)),
        st.builds(hold, st.just("hq"), query=st.sampled_from([query_terms([f"meta.sensitivity={s}"]) for s in LEVELS])),
    ),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(versions_st, policies_st, holds_st, instants)
def test_a_held_document_is_never_deleted(
    versions: list[DocumentVersion], policies: list[RetentionPolicy], holds: list[Hold], now: datetime
) -> None:
    result = plan(policies, holds, versions, now)
    for document_id, _ in result.delete:
        of_doc = [v for v in versions if v.document_id == document_id]
        assert all(hold_on(holds, v) is None for v in of_doc)
    for document_id, _, h in result.held:
        assert any(h.covers(v) for v in versions if v.document_id == document_id)
    # every expired document is either deleted or held, never both
    due = {d for d, _ in expired(policies, versions, now)}
    assert {d for d, _ in result.delete} | {d for d, _, _ in result.held} == due
    assert not {d for d, _ in result.delete} & {d for d, _, _ in result.held}
    assert result.kept == len({v.document_id for v in versions}) - len(due)


@settings(max_examples=200, deadline=None)
@given(versions_st, policies_st, instants)
def test_the_longest_matching_policy_decides(
    versions: list[DocumentVersion], policies: list[RetentionPolicy], now: datetime
) -> None:
    due = dict(expired(policies, versions, now))
    for document_id in {v.document_id for v in versions}:
        of_doc = [v for v in versions if v.document_id == document_id]
        newest = max(of_doc, key=lambda v: (v.published_at, v.ingested_at))
        matching = [p for p in policies if p.matches(newest)]
        if not matching:
            assert document_id not in due  # no policy: never expires
            continue
        # every version's longest policy counts (deleting a document deletes every version)
        latest = max(p.expires(v.published_at) for v in of_doc for p in policies if p.matches(v))
        assert (document_id in due) == (now >= latest)
        if document_id in due:  # the policy reported is one that keeps it longest
            assert any(due[document_id].expires(v.published_at) == latest for v in of_doc)


@settings(max_examples=200, deadline=None)
@given(versions_st, policies_st, instants)
def test_a_version_published_after_now_never_expires(
    versions: list[DocumentVersion], policies: list[RetentionPolicy], now: datetime
) -> None:
    due = {d for d, _ in expired(policies, versions, now)}
    future = {v.document_id for v in versions if v.published_at > now}
    assert not due & future  # the newest version of such a document is in the future too


@settings(max_examples=100, deadline=None)
@given(versions_st, holds_st)
def test_a_released_hold_covers_nothing(versions: list[DocumentVersion], holds: list[Hold]) -> None:
    released = [replace(h, released_at=NOW, released_by="bo") for h in holds]
    assert all(hold_on(released, v) is None for v in versions)
    assert document_hold(released, versions) is None


# -- edges ------------------------------------------------------------------------------------


def test_an_old_version_does_not_expire_a_document_with_a_new_one() -> None:
    policy = RetentionPolicy("research", years=7, doc_type="research_report")
    old = version("d", 0, published=datetime(2001, 1, 1, tzinfo=UTC))
    new = version("d", 1, published=datetime(2025, 1, 1, tzinfo=UTC))
    assert expired([policy], [old], NOW) == [("d", policy)]
    assert expired([policy], [old, new], NOW) == []


def test_the_keep_period_counts_calendar_years_from_publication() -> None:
    policy = RetentionPolicy("research", years=7, doc_type="research_report")
    v = version("d", published=datetime(2019, 6, 1, tzinfo=UTC))
    assert expired([policy], [v], NOW - timedelta(seconds=1)) == []
    assert expired([policy], [v], NOW) == [("d", policy)]
    leap = RetentionPolicy("leap", years=1, sensitivity="internal")
    assert leap.expires(datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2025, 2, 28, tzinfo=UTC)


def test_a_policy_names_every_criterion_it_matches() -> None:
    both = RetentionPolicy("both", days=1, doc_type="term_sheet", sensitivity="restricted")
    assert not both.matches(version("d", doc_type="term_sheet", sensitivity="internal"))
    assert both.matches(version("d", doc_type="term_sheet", sensitivity="restricted"))
    by_source = RetentionPolicy("deals", days=1, source="s3://bank/deals/")
    assert by_source.matches(version("d", source="s3://bank/deals/"))
    assert not by_source.matches(version("d", source="s3://bank/research/"))
    assert governing_policy([by_source], version("d")) is None


@pytest.mark.parametrize(("text", "keep"), [("7y", (7, 0)), ("90d", (0, 90)), ("1y30d", (1, 30)), ("2Y", (2, 0))])
def test_keep_periods(text: str, keep: tuple[int, int]) -> None:
    assert parse_keep(text) == keep


@pytest.mark.parametrize("text", ["", "7", "y", "-1y", "7 years", "1d1y"])
def test_bad_keep_periods_are_refused(text: str) -> None:
    with pytest.raises(QueryError):
        parse_keep(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": "p", "years": 1},  # no criterion
        {"id": "p", "doc_type": "x"},  # keeps nothing
        {"id": "-p", "years": 1, "doc_type": "x"},  # a name that reads as an option
        {"id": "p", "years": 10_000, "doc_type": "x"},
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(QueryError):
        RetentionPolicy(**kwargs)  # type: ignore[arg-type]


def test_policies_round_trip() -> None:
    p = RetentionPolicy("research-7y", years=7, days=3, doc_type="research_report", sensitivity="internal")
    assert RetentionPolicy.from_dict(p.describe()) == p
    assert RetentionPolicy.from_dict({"id": "x", "keep": "90d", "source": "s3://a/"}).days == 90


def test_hold_targets() -> None:
    v = version("d", source="s3://bank/research/", title="Apple Q3 note")
    assert hold(document_id="d").covers(v) and not hold(document_id="e").covers(v)
    assert hold(source="s3://bank/").covers(v) and not hold(source="s3://bank/deals/").covers(v)
    assert hold(query=query_terms(["title=apple", "meta.ticker=AAPL"])).covers(v)
    assert not hold(query=query_terms(["title=apple", "meta.ticker=MSFT"])).covers(v)
    assert hold(query=query_terms({"doc_type": "research_report"})).covers(v)
    assert hold_on([hold("a", document_id="e"), hold("b", source="s3://")], v).id == "b"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "terms", [[], ["ticker=AAPL"], ["meta.=x"], ["doc_type="], ["title"], ["source=a", "source=b"]]
)
def test_bad_queries_are_refused(terms: list[str]) -> None:
    with pytest.raises(QueryError):
        query_terms(terms)


def test_a_hold_has_one_target_a_matter_and_a_reason() -> None:
    with pytest.raises(QueryError):
        Hold("h", "M-1", "ana", "why", NOW)
    with pytest.raises(QueryError):
        Hold("h", "M-1", "ana", "why", NOW, document_id="d", source="s3://")
    with pytest.raises(QueryError):
        Hold("h", " ", "ana", "why", NOW, document_id="d")
    with pytest.raises(QueryError):
        Hold("h", "M-1", "ana", "", NOW, document_id="d")
