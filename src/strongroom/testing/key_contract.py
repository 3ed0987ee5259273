"""The contract every API key store passes (:class:`~strongroom.auth.apikeys.KeyBackend`).

A backend's test subclasses :class:`KeyStoreContract` and supplies ``keys``: a factory
that opens a handle on one empty store each time it is called (a second call is another
process's handle on the same keys)::

    class TestSqliteKeys(KeyStoreContract):
        @pytest.fixture
        def keys(self, tmp_path): return lambda: SqliteApiKeyStore(tmp_path / "catalog.sqlite3")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from strongroom.auth.apikeys import KeyBackend, parse_presented
from strongroom.errors import AuthenticationError

__all__ = ["KeyStoreContract", "Opener"]

Opener = Callable[[], KeyBackend]


class KeyStoreContract:
    """What every key store must do, through the protocol only."""

    @pytest.fixture
    def store(self, keys: Opener) -> Iterator[KeyBackend]:
        store = keys()
        yield store
        store.close()

    def test_a_created_key_checks_and_its_secret_is_not_kept(self, store: KeyBackend) -> None:
        key, secret = store.create("etl-bot", frozenset({"research"}))
        assert store.check(secret) == key
        assert (key.owner, key.groups) == ("etl-bot", frozenset({"research"}))
        stored = repr(store.export_rows())
        _, hidden = parse_presented(secret)  # the secret after the key id (it may itself hold "_")
        assert secret not in stored and hidden not in stored  # salted hashes only

    def test_anything_else_is_refused(self, store: KeyBackend) -> None:
        _, secret = store.create("etl-bot", frozenset({"research"}))
        for presented in ("", "nonsense", secret[:-1], secret + "x", secret.upper()):
            with pytest.raises(AuthenticationError):
                store.check(presented)

    def test_a_revoked_key_is_refused_everywhere_at_once(self, store: KeyBackend, keys: Opener) -> None:
        key, secret = store.create("etl-bot", frozenset({"research"}))
        other = keys()  # another replica or the CLI
        try:
            before = other.revocations()
            assert store.revoke(key.id)
            assert not store.revoke(key.id) and not store.revoke("no-such-key")
            with pytest.raises(AuthenticationError):
                other.check(secret)
            assert other.revocations() != before or store.revocations() != before
        finally:
            other.close()

    def test_an_expired_key_is_refused(self, store: KeyBackend) -> None:
        _, secret = store.create("temp", frozenset({"r"}), expires_at=datetime.now(UTC) - timedelta(seconds=1))
        with pytest.raises(AuthenticationError):
            store.check(secret)
        _, later = store.create("temp", frozenset({"r"}), expires_at=datetime.now(UTC) + timedelta(days=1))
        assert store.check(later).owner == "temp"

    def test_list_shows_every_key_with_its_state(self, store: KeyBackend) -> None:
        active, _ = store.create("a", frozenset({"r"}))
        revoked, _ = store.create("b", frozenset({"r"}))
        store.revoke(revoked.id)
        assert {k.id: k.revoked_at is not None for k in store.list()} == {active.id: False, revoked.id: True}

    def test_a_key_records_who_created_it(self, store: KeyBackend, keys: Opener) -> None:
        made, secret = store.create("zed", frozenset({"r"}), created_by=frozenset({"ana", "bo"}))
        unknown, _ = store.create("etl", frozenset({"r"}))  # no creator given: unknown, not "nobody"
        assert made.created_by == {"ana", "bo"} and unknown.created_by == frozenset()
        other = keys()  # another replica reads what was recorded
        try:
            assert other.check(secret).created_by == {"ana", "bo"}
            assert {k.id: k.created_by for k in other.list()} == {made.id: {"ana", "bo"}, unknown.id: frozenset()}
        finally:
            other.close()

    def test_the_creator_moves_with_the_keys_and_an_older_export_is_unknown(self, store: KeyBackend) -> None:
        made, _ = store.create("zed", frozenset({"r"}), created_by=frozenset({"ana"}))
        (row,) = store.export_rows()
        assert len(row) == 9 and row[0] == made.id and "ana" in str(row[8])
        older = ("0ld0ld0ld0ld", *row[1:8])  # a row exported before keys recorded their creator
        assert store.adopt([older]) == 1
        assert {k.id: k.created_by for k in store.list()} == {made.id: {"ana"}, "0ld0ld0ld0ld": frozenset()}

    def test_keys_move_to_another_store_and_again_adds_nothing(self, store: KeyBackend, keys: Opener) -> None:
        key, secret = store.create("a", frozenset({"r"}))
        gone, _ = store.create("b", frozenset({"r"}))
        rows = store.export_rows()
        store.revoke(gone.id)
        assert store.adopt(rows) == 0  # both already here
        assert len(store.export_rows()) == 2 and {k.id for k in store.list()} == {key.id, gone.id}
        assert [k.revoked_at is not None for k in sorted(store.list(), key=lambda k: k.owner)] == [False, True]
        assert store.check(secret) == key
