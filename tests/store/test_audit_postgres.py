"""The audit log and the API keys on PostgreSQL (a real server, see conftest): the audit
contract and tamper matrix, one chain from processes appending at once, and revocations
that reach another replica's cache at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest

from strongroom.audit import open_audit_log
from strongroom.audit.postgres import PostgresAuditLog
from strongroom.auth import Authenticator, ServiceSettings, open_key_store
from strongroom.auth.apikeys_postgres import PostgresApiKeyStore
from strongroom.config import Settings
from strongroom.testing.audit_contract import AuditLogContract, Backend

pytestmark = pytest.mark.integration


def _postgres_backend(url: str, home: Path) -> Backend:
    settings = Settings(home=home, store_url=_as_url(url))

    def sql(statements: list[tuple[str, tuple[object, ...]]]) -> None:
        with psycopg.connect(url, autocommit=True) as db:
            if db.execute("SELECT to_regclass('audit_log') IS NOT NULL").fetchone() == (True,):
                db.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
            for statement, params in statements:
                db.execute(statement.replace("?", "%s"), params)

    def stored() -> bytes:
        with psycopg.connect(url, autocommit=True) as db:
            row = db.execute("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM audit_log t").fetchone()
        return str(row[0] if row else "").encode()

    return Backend(lambda: open_audit_log(settings), sql, "audit_log", home / "audit-anchor.jsonl", stored)


def _as_url(conninfo: str) -> str:
    """A postgresql:// URL for Settings (the fixtures give a conninfo string)."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(conninfo)
    return f"postgresql://{p['user']}@/{p['dbname']}?host={p['host']}&port={p.get('port', 5432)}"


class TestPostgresAuditLog(AuditLogContract):
    @pytest.fixture
    def backend(self, database_url: str, tmp_path: Path) -> Backend:
        return _postgres_backend(database_url, tmp_path)


def test_the_tables_refuse_updates_deletes_and_truncation(database_url: str, tmp_path: Path) -> None:
    log = _postgres_backend(database_url, tmp_path).open()
    log.append_many([])
    assert log.append_many(log_events(2)) == [1, 2]
    log.close()
    with psycopg.connect(database_url, autocommit=True) as db:
        for statement in ("UPDATE audit_log SET body = '{}'", "DELETE FROM audit_log", "TRUNCATE audit_log",
                          "DELETE FROM audit_checkpoints"):  # fmt: skip
            with pytest.raises(psycopg.Error, match="append-only"):
                db.execute(statement)
        for statement in ("UPDATE audit_log SET erasable = '{}' WHERE seq = 1",
                          "UPDATE audit_log SET erasable = NULL WHERE seq = 1",
                          "UPDATE audit_log SET erasable = NULL, erasable_salt = NULL, body = '{}' WHERE seq = 1",
                          "UPDATE audit_log SET erasable = NULL, erasable_salt = NULL, erasable_sha256 = NULL"):  # fmt: skip
            with pytest.raises(psycopg.Error, match="append-only"):
                db.execute(statement)
        db.execute("UPDATE audit_log SET erasable = NULL, erasable_salt = NULL WHERE seq = 2")  # an erasure
        assert db.execute("SELECT seq FROM audit_log WHERE erasable IS NULL").fetchall() == [(2,)]


_ISSUE_15_SCHEMA = """
CREATE TABLE audit_log (
    seq bigint PRIMARY KEY, at text NOT NULL, prev text NOT NULL, hash text NOT NULL, body text NOT NULL,
    format smallint NOT NULL);
CREATE FUNCTION strongroom_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION strongroom_audit_append_only();
"""


def test_a_format_2_log_gains_the_erasable_columns_and_an_erasure_guard(database_url: str, tmp_path: Path) -> None:
    from strongroom.audit.records import GENESIS, event_body, record_hash
    from strongroom.errors import NotErasable
    from strongroom.testing.audit_contract import NEEDLE, personal

    at, body = "2026-01-01T00:00:00.000000+00:00", event_body(personal(1)).decode()
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(_ISSUE_15_SCHEMA)
        db.execute(
            "INSERT INTO audit_log VALUES (1, %s, %s, %s, %s, 2)",
            (at, GENESIS, record_hash(2, 1, at, GENESIS, body), body),
        )
    log = _postgres_backend(database_url, tmp_path).open()
    log.append_many([personal(2)])
    assert [r.format for r in log.read()] == [2, 3] and log.find_text([NEEDLE]) == [1, 2]
    with pytest.raises(NotErasable) as refused:
        log.erase([1, 2])
    assert refused.value.legacy == (1,)
    assert log.erase([2]) == [2] and log.verify().ok and log.verify().erased == 1
    log.close()
    with psycopg.connect(database_url, autocommit=True) as db:
        with pytest.raises(psycopg.Error, match="append-only"):
            db.execute("UPDATE audit_log SET erasable = NULL, erasable_salt = NULL WHERE seq = 1")
        with pytest.raises(psycopg.Error, match="append-only"):
            db.execute("DELETE FROM audit_log WHERE seq = 2")


def log_events(n: int, who: str = "user") -> list[object]:
    from strongroom.audit import AuditEvent

    return [AuditEvent(principal=f"{who}{i}", groups=("g",), action="search", query=f"q{i}") for i in range(n)]


_APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from strongroom.audit import AuditEvent, open_audit_log
    from strongroom.config import Settings

    url, home, who, rounds, size = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    log = open_audit_log(Settings(home=home, store_url=url))
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for r in range(rounds):
        events = [AuditEvent(principal=f"{who}-{r}-{i}", groups=("g",), action="search") for i in range(size)]
        log.append_many(events)
    log.close()
    print("done", flush=True)
    """
)


def test_two_processes_appending_at_once_make_one_unbroken_chain(database_url: str, tmp_path: Path) -> None:
    url = _as_url(database_url)
    PostgresAuditLog(url).close()  # nothing to make yet: the first append makes the tables, under the lock
    rounds, size = 60, 5  # 300 records from each process, in 60 group commits
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, url, str(tmp_path), who, str(rounds), str(size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "done"
    log = open_audit_log(Settings(home=tmp_path, store_url=url))
    records = list(log.read())
    assert [r.seq for r in records] == list(range(1, 2 * rounds * size + 1))  # no gap, no fork
    names = [str(r.event()["principal"]) for r in records]
    assert sorted(names) == sorted(f"{w}-{r}-{i}" for w in "ab" for r in range(rounds) for i in range(size))
    for who in "ab":  # each process's group commits stay together and in order
        mine = [n for n in names if n.startswith(f"{who}-")]
        assert mine == [f"{who}-{r}-{i}" for r in range(rounds) for i in range(size)]
    report = log.verify()
    log.close()
    assert report.ok, report.problems
    assert report.records == 600 and report.anchored == 600 and report.checkpoints >= 2 * rounds
    interleaved = sum(1 for x, y in pairwise(names) if x[0] != y[0])
    assert interleaved > 1  # they did run at once


def test_a_replica_verifies_records_another_replica_anchored(database_url: str, tmp_path: Path) -> None:
    """Replicas sharing the signing key (a secret mount) but each with its own anchor file:
    the database's signed copies of the checkpoints anchor the other's records."""
    url = _as_url(database_url)
    key = tmp_path / "secret" / "audit-signing.key"
    one = open_audit_log(Settings(home=tmp_path / "one", store_url=url, audit_signing_key=key))
    two = open_audit_log(Settings(home=tmp_path / "two", store_url=url, audit_signing_key=key))
    one.append_many(log_events(3, "one"))
    two.append_many(log_events(2, "two"))
    assert one.verify().ok and one.verify().anchored == 5
    stranger = open_audit_log(Settings(home=tmp_path / "three", store_url=url))  # a key of its own
    report = stranger.verify(grace_s=0)
    assert [p.kind for p in report.problems] == ["unanchored"]  # not vouched for by a key it trusts
    both = one.verify(anchors=[tmp_path / "two" / "audit-anchor.jsonl"])
    assert both.ok and both.checkpoints == 2  # one per group commit, wherever it is kept
    for log in (one, two, stranger):
        log.close()


# -- API keys --------------------------------------------------------------------------------


@pytest.fixture
def keys_url(database_url: str) -> str:
    return _as_url(database_url)


def test_keys_live_in_postgres_and_move_between_backends(keys_url: str, tmp_path: Path) -> None:
    store = open_key_store(Settings(home=tmp_path, store_url=keys_url))
    assert isinstance(store, PostgresApiKeyStore)
    key, secret = store.create("etl", frozenset({"research", "r"}))
    revoked, _ = store.create("old", frozenset({"r"}))
    assert store.revoke(revoked.id) and not store.revoke(revoked.id) and not store.revoke("nope")
    assert store.check(secret).id == key.id
    assert {k.id: k.revoked_at is not None for k in store.list()} == {key.id: False, revoked.id: True}
    with psycopg.connect(keys_url) as db:
        stored = db.execute("SELECT * FROM api_keys WHERE id = %s", (key.id,)).fetchone()
    assert stored is not None and secret.split("_", 2)[2] not in repr(stored)  # salted hashes only
    lite = open_key_store(Settings(home=tmp_path, store_url=""))
    assert lite.adopt(store.export_rows()) == 2 and lite.adopt(store.export_rows()) == 0
    assert lite.check(secret).id == key.id
    assert [k.revoked_at is not None for k in sorted(lite.list(), key=lambda k: k.owner)] == [False, True]
    again = PostgresApiKeyStore(keys_url)
    assert again.adopt(lite.export_rows()) == 0
    for closeable in (store, lite, again):
        closeable.close()


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return condition()


def test_a_revocation_on_one_replica_voids_another_replica_s_cache(keys_url: str) -> None:
    here, there = PostgresApiKeyStore(keys_url), PostgresApiKeyStore(keys_url)
    auth = Authenticator(ServiceSettings(api_key_cache_s=60.0), there, None)
    key, secret = here.create("bot", frozenset({"r"}))
    header = f"Bearer {secret}"
    auth.authenticate(header)
    assert auth.cached(header) is not None
    before = there.revocations()
    assert here.revoke(key.id)
    # NOTIFY arrives on the other replica's listening connection moments after the commit
    assert _wait_for(lambda: there.revocations() != before)
    assert auth.cached(header) is None
    with pytest.raises(Exception, match="not valid"):
        auth.authenticate(header)
    stamp = here.revocations()
    assert here.revoke(here.create("x", frozenset({"r"}))[0].id) and here.revocations() != stamp  # its own: at once
    here.close()
    there.close()


def test_a_lost_listener_voids_the_cache_and_comes_back(keys_url: str) -> None:
    """A revocation could go unheard while the listening connection is down: the stamp moves
    (a new one on every read while down, and once more when it is back)."""
    store = PostgresApiKeyStore(keys_url)
    before = store.revocations()
    with psycopg.connect(keys_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
        )
    assert _wait_for(lambda: store.revocations() != before)
    assert _wait_for(lambda: store.revocations() == store.revocations())  # listening again
    after = store.revocations()
    other = PostgresApiKeyStore(keys_url)
    assert other.revoke(other.create("k", frozenset({"r"}))[0].id)
    assert _wait_for(lambda: store.revocations() != after)  # and hears revocations again
    other.close()
    store.close()


def test_migrate_to_postgres_copies_the_chain_and_the_keys(keys_url: str, tmp_path: Path) -> None:
    pilot = tmp_path / "pilot"
    log = open_audit_log(Settings(home=pilot, store_url=""))
    log.append_many(log_events(4))
    keys = open_key_store(Settings(home=pilot, store_url=""))
    _, secret = keys.create("svc", frozenset({"r"}))
    shared = Settings(home=tmp_path / "shared", store_url=keys_url)
    target, target_keys = open_audit_log(shared), open_key_store(shared)
    assert target.adopt(log.chain()) == 4 and target_keys.adopt(keys.export_rows()) == 1
    assert target.verify().ok and target_keys.check(secret).owner == "svc"
    assert json.loads(json.dumps([r.hash for r in target.read()])) == [r.hash for r in log.read()]
    for closeable in (log, keys, target, target_keys):
        closeable.close()
