from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.errors import ConfigError
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.testing.store_contract import PinnableContract, StoreContract
from strongroom.types import Scope


class TestSqliteStore(StoreContract, PinnableContract):
    @pytest.fixture
    def store(self, tmp_path: Path, embedder: HashEmbedder) -> SqliteStore:
        return SqliteStore(tmp_path / "home", model_id=embedder.model_id, dim=embedder.dim)


def test_snapshot_reload_and_catch_up(tmp_path: Path, embedder: HashEmbedder) -> None:
    home = tmp_path / "home"
    store = SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)
    store.write(make_version(embedder, "a.txt", ["alpha revenue"]))
    store.save_indexes()
    store.close()
    # a second process writes after the snapshot; a third opens and must see both
    writer = SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)
    writer.write(make_version(embedder, "b.txt", ["beta revenue"]))
    writer.close()
    reader = SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)
    found = reader.fetch([c for c, _ in reader.keyword_search("revenue", Scope(frozenset({"public"})), 10)])
    assert {v.source for _, v in found} == {"a.txt", "b.txt"}


def test_corrupt_snapshot_is_rebuilt(tmp_path: Path, embedder: HashEmbedder) -> None:
    home = tmp_path / "home"
    store = SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)
    store.write(make_version(embedder, "a.txt", ["alpha revenue"]))
    store.save_indexes()
    store.close()
    (home / "index" / "keyword.npz").write_bytes(b"garbage")
    reader = SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)
    assert len(reader.keyword_search("alpha", Scope(frozenset({"public"})), 5)) == 1


def test_other_model_is_refused(tmp_path: Path, embedder: HashEmbedder) -> None:
    SqliteStore(tmp_path, model_id=embedder.model_id, dim=embedder.dim).close()
    with pytest.raises(ConfigError, match="same embedder"):
        SqliteStore(tmp_path, model_id="another-model", dim=embedder.dim)


WORDS = ["revenue", "margin", "guidance", "cash", "debt", "coupon"]
GROUPS = ["public", "desk", "legal", "board"]
EMB = HashEmbedder(dim=32)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(
        st.tuples(
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=5),
            st.sets(st.sampled_from(GROUPS), min_size=1, max_size=2),
            st.integers(min_value=0, max_value=10),
        ),
        min_size=1,
        max_size=12,
    ),
    groups=st.sets(st.sampled_from(GROUPS), min_size=1, max_size=3),
    as_of_day=st.none() | st.integers(min_value=0, max_value=10),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)
def test_no_principal_sees_outside_entitlements_or_after_as_of(
    tmp_path_factory: pytest.TempPathFactory,
    docs: list[tuple[list[str], set[str], int]],
    groups: set[str],
    as_of_day: int | None,
    query: list[str],
) -> None:
    store = SqliteStore(tmp_path_factory.mktemp("h"), model_id=EMB.model_id, dim=EMB.dim)
    for i, (words, acl, day) in enumerate(docs):
        published = datetime(2024, 1, 1 + day, tzinfo=UTC)
        store.write(make_version(EMB, f"d{i}.txt", [" ".join(words)], acl=sorted(acl), published=published))
    as_of = None if as_of_day is None else datetime(2024, 1, 1 + as_of_day, 12, tzinfo=UTC)
    scope = Scope(frozenset(groups), as_of=as_of)
    text = " ".join(query)
    for ids in (store.keyword_search(text, scope, 50), store.vector_search(EMB.embed([text])[0], scope, 50)):
        for _, version in store.fetch([c for c, _ in ids]):
            assert version.acl & groups
            if as_of is not None:
                assert version.published_at <= as_of
    # and everything admitted is findable: entitled docs matching a query word are returned
    admitted = {
        f"d{i}.txt"
        for i, (words, acl, day) in enumerate(docs)
        if acl & groups
        and set(words) & set(query)
        and (as_of is None or datetime(2024, 1, 1 + day, tzinfo=UTC) <= as_of)
    }
    found = {v.source for _, v in store.fetch([c for c, _ in store.keyword_search(text, scope, 50)])}
    assert found == admitted
    store.close()
