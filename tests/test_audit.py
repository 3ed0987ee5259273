"""The audit log on SQLite: the contract and tamper matrix, the canonical format (with the
worked example of docs/audit-format.md), legacy records, the anchor's key, the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rfc8785
import typer
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import strongroom.audit as audit_log
from strongroom.audit import GENESIS, AuditEvent, SqliteAuditLog, open_audit_log
from strongroom.audit.anchor import SigningKey
from strongroom.audit.records import (
    AuditRecord,
    canonical_json,
    canonical_record,
    canonical_record3,
    erasable_digest,
    event_body,
    event_parts,
    record_hash,
)
from strongroom.audit.verify import check
from strongroom.cli.serve import audit_app
from strongroom.config import Settings
from strongroom.errors import NotErasable
from strongroom.testing.audit_contract import NEEDLE, AuditLogContract, Backend, event, filled, personal, problems


def _sqlite_backend(home: Path) -> Backend:
    settings = Settings(home=home, store_url="")
    catalog = settings.catalog_path

    def sql(statements: list[tuple[str, tuple[object, ...]]]) -> None:
        with sqlite3.connect(catalog) as db:
            db.execute("DROP TRIGGER IF EXISTS audit_no_update")
            db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
            for statement, params in statements:
                db.execute(statement, params)

    def stored() -> bytes:
        return b"".join(path.read_bytes() for path in sorted(home.glob("catalog.sqlite3*")))

    return Backend(lambda: open_audit_log(settings), sql, "audit", home / "audit-anchor.jsonl", stored)


class TestSqliteAuditLog(AuditLogContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return _sqlite_backend(tmp_path)


def test_the_table_refuses_updates_and_deletes(tmp_path: Path) -> None:
    filled(_sqlite_backend(tmp_path), 2)
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET body = '{}' WHERE seq = 1")
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit WHERE seq = 1")


def test_the_one_update_allowed_is_an_erasure_of_a_format_3_record(tmp_path: Path) -> None:
    backend = _sqlite_backend(tmp_path)
    records = filled(backend, 2)
    refused = [
        "UPDATE audit SET erasable = '{}' WHERE seq = 1",  # other text
        "UPDATE audit SET erasable = NULL WHERE seq = 1",  # the salt left
        "UPDATE audit SET erasable = NULL, erasable_salt = NULL, body = '{}' WHERE seq = 1",
        "UPDATE audit SET erasable = NULL, erasable_salt = NULL, erasable_sha256 = NULL WHERE seq = 1",
        "UPDATE audit SET erasable = NULL, erasable_salt = NULL, hash = 'x' WHERE seq = 1",
    ]
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as db:
        for statement in refused:
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
        db.execute("UPDATE audit SET erasable = NULL, erasable_salt = NULL WHERE seq = 2")
    assert [r.erased for r in SqliteAuditLog(tmp_path / "catalog.sqlite3").read()] == [False, True]
    assert records[1].erasable is not None


def test_deleting_a_record_and_renumbering_the_rest_is_caught_where_it_starts(tmp_path: Path) -> None:
    backend = _sqlite_backend(tmp_path)
    filled(backend)
    backend.sql([("DELETE FROM audit WHERE seq = 2", ()), ("UPDATE audit SET seq = seq - 1 WHERE seq > 2", ())])
    found = problems(backend)
    assert found[0] == (2, "deleted") and (6, "truncated") in found


def test_a_record_replaced_with_a_recomputed_hash_is_caught(tmp_path: Path) -> None:
    backend = _sqlite_backend(tmp_path)
    records = filled(backend)
    body = records[2].body.replace('"q2"', '"q-other"')
    digest = record_hash(2, 3, records[2].at, records[2].prev, body)
    backend.sql([("UPDATE audit SET body = ?, hash = ? WHERE seq = 3", (body, digest))])
    assert problems(backend) == [(3, "edited")]


# -- the format ------------------------------------------------------------------------------

WORKED_EVENT = AuditEvent(
    principal="ana", groups=("research",), action="search", auth="oidc", request_id="req-1",
    query="net sales [REDACTED]", filters={"k": 10, "as_of": None, "ratio": 0.5}, chunks=(("c1", "v1"),),
    query_hmac="9f" * 32, detail="ünïcode € 😀",
)  # fmt: skip
WORKED_AT = "2026-01-02T03:04:05.678901+00:00"
#: docs/audit-format.md quotes these values; a change of the format must change the doc too
WORKED_BODY = (
    '{"action":"search","answer_sha256":"","auth":"oidc","chunks":[["c1","v1"]],"detail":"ünïcode € 😀",'
    '"filters":{"as_of":null,"k":10,"ratio":0.5},"generator":"","groups":["research"],"outcome":"ok",'
    '"principal":"ana","query":"net sales [REDACTED]","query_hmac":"' + "9f" * 32 + '","request_id":"req-1",'
    '"target":""}'
)
WORKED_HASH_1 = "34f5a6fbbabd35ed3fb508372d34093d422a382b3933c712422922caee8e2662"
WORKED_HASH_2 = "765c3967e05639f1d9ecaf226f5656c064a139a7b0e089a12d4f053a60ce42b9"
#: the same event in format 3: its body, erasable part, salt (the bytes 32..63), digest and hashes
WORKED3_BODY = (
    '{"action":"search","answer_sha256":"","auth":"oidc","chunks":[["c1","v1"]],"generator":"",'
    '"groups":["research"],"outcome":"ok","principal":"ana","query_hmac":"' + "9f" * 32 + '","request_id":"req-1"}'
)
WORKED3_ERASABLE = (
    '{"detail":"ünïcode € 😀","filters":{"as_of":null,"k":10,"ratio":0.5},"query":"net sales [REDACTED]","target":""}'
)
WORKED3_SALT = bytes(range(32, 64)).hex()
WORKED3_SHA = "db524e54c2433a0644a474dbc7c6f119d36378a576dd84153bb903eae62f3e7a"
WORKED3_HASH_1 = "5a370488f08946ca97a2eb46e56afaf3bf6ea77b05089b88ae103d63a8d0a40c"
WORKED3_HASH_2 = "0f6db7b4acaee4e81802817f1992ef9082e59739dfe7b1e96e99635da64a2979"


def test_the_body_is_canonical_json_of_the_event() -> None:
    assert event_body(WORKED_EVENT).decode() == WORKED_BODY


def test_the_record_hash_is_sha256_of_jcs_of_the_whole_record() -> None:
    body = event_body(WORKED_EVENT)
    whole = {"format": 2, "seq": 1, "at": WORKED_AT, "prev": GENESIS, "body": json.loads(body)}
    assert canonical_record(1, WORKED_AT, GENESIS, body) == rfc8785.dumps(whole)
    first = record_hash(2, 1, WORKED_AT, GENESIS, body.decode())
    assert first == hashlib.sha256(rfc8785.dumps(whole)).hexdigest()
    second = record_hash(2, 2, WORKED_AT, str(first), body.decode())
    print(f"worked example: hash[1] = {first}, hash[2] = {second}")
    assert (first, second) == (WORKED_HASH_1, WORKED_HASH_2)


def test_a_format_3_record_hashes_its_body_and_its_salted_erasable_part() -> None:
    body, erasable = event_parts(WORKED_EVENT)
    assert (body.decode(), erasable.decode()) == (WORKED3_BODY, WORKED3_ERASABLE)
    assert len(body) == 246 and len(erasable) == 118
    sealed = erasable_digest(WORKED3_SALT, erasable.decode())
    assert sealed == hashlib.sha256(bytes.fromhex(WORKED3_SALT) + erasable).hexdigest() == WORKED3_SHA
    whole = {"format": 3, "seq": 1, "at": WORKED_AT, "prev": GENESIS, "body": json.loads(body),
             "erasable_sha256": sealed}  # fmt: skip
    assert canonical_record3(1, WORKED_AT, GENESIS, body, sealed) == rfc8785.dumps(whole)
    first = record_hash(3, 1, WORKED_AT, GENESIS, body.decode(), sealed)
    assert first == hashlib.sha256(rfc8785.dumps(whole)).hexdigest()
    second = record_hash(3, 2, WORKED_AT, str(first), body.decode(), sealed)
    print(f"worked example (format 3): hash[1] = {first}, hash[2] = {second}")
    assert (first, second) == (WORKED3_HASH_1, WORKED3_HASH_2)
    assert record_hash(3, 1, WORKED_AT, GENESIS, body.decode()) is None  # no digest: no hash
    kept = [
        AuditRecord(1, WORKED_AT, GENESIS, WORKED3_HASH_1, WORKED3_BODY, 3, WORKED3_ERASABLE, WORKED3_SALT, sealed),
        AuditRecord(
            2, WORKED_AT, WORKED3_HASH_1, WORKED3_HASH_2, WORKED3_BODY, 3, WORKED3_ERASABLE, WORKED3_SALT, sealed
        ),
    ]
    assert check(kept).ok and check(kept).erased == 0
    erased = [kept[0]._replace(erasable=None, erasable_salt=None), kept[1]]
    assert check(erased).ok and check(erased).erased == 1  # the chain verifies without the text
    assert erased[0].event() == json.loads(WORKED3_BODY)
    assert kept[0].event() == json.loads(event_body(WORKED_EVENT))  # the whole event, as in format 2
    guessed = [kept[0]._replace(erasable=WORKED3_ERASABLE.replace("net sales", "gross sales")), kept[1]]
    assert [(p.seq, p.kind) for p in check(guessed).problems] == [(1, "edited")]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=_json, groups=st.lists(st.text(max_size=5), max_size=3), detail=st.text())
def test_the_fast_canonical_form_is_rfc8785(value: object, groups: list[str], detail: str) -> None:
    """JCS through Python's json where that writes the same bytes, the rfc8785 package elsewhere."""
    assume(all(not 0xD800 <= ord(c) <= 0xDFFF for c in detail + "".join(groups)))
    assert canonical_json(value) == rfc8785.dumps(value)
    e = AuditEvent(principal="p", groups=tuple(groups), action="a", filters={"v": value}, detail=detail)
    assert event_body(e) == rfc8785.dumps(json.loads(event_body(e), parse_int=float))  # JSON numbers: doubles
    for part in event_parts(e):
        assert part == rfc8785.dumps(json.loads(part, parse_int=float))


def test_odd_values_are_stored_as_json_can_hold_them() -> None:
    odd = AuditEvent(
        principal="p", groups=(), action="a", filters={"nan": float("nan"), "big": 2**60, 3: datetime(2026, 1, 1)}
    )
    assert json.loads(event_body(odd))["filters"] == {"nan": "nan", "big": str(2**60), "3": "2026-01-01 00:00:00"}


def _legacy_catalog(catalog: Path, n: int) -> None:
    """A catalog as the strongroom before format 2 wrote it (no format column, format-1 hashes)."""
    with sqlite3.connect(catalog) as db:
        db.executescript(
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, "
            "body TEXT NOT NULL);"
        )
        prev = GENESIS
        for seq in range(1, n + 1):
            body = {"principal": f"old{seq}", "groups": ["r"], "action": "search", "query": "q"}
            at = f"2025-01-0{seq}T00:00:00+00:00"
            text = json.dumps(
                {"prev": prev, "at": at, **body}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
            digest = hashlib.sha256(text.encode()).hexdigest()
            db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?)", (seq, at, prev, digest, json.dumps(body)))
            prev = digest


def test_a_legacy_catalog_is_migrated_in_place_and_keeps_verifying(tmp_path: Path) -> None:
    backend = _sqlite_backend(tmp_path)
    _legacy_catalog(tmp_path / "catalog.sqlite3", 3)
    log = backend.open()
    assert [r.format for r in log.read()] == [1, 1, 1]
    assert [p.kind for p in log.verify(grace_s=0).problems] == ["unanchored"]  # nothing signed it yet
    audit_log.append(log, event(9))  # the first checkpoint vouches for the legacy records too
    records = list(log.read())
    assert [r.format for r in records] == [1, 1, 1, 3] and records[3].prev == records[2].hash
    assert log.verify().ok
    log.close()
    body = json.loads(records[1].body) | {"query": "edited"}
    backend.sql([("UPDATE audit SET body = ? WHERE seq = 2", (json.dumps(body),))])
    assert problems(backend) == [(2, "edited")]


_WHERE = st.sampled_from(["query", "target", "detail", "filter value", "filter key", "nested filter"])


@settings(max_examples=40, deadline=None)
@given(
    core=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=3, max_size=12),
    where=st.lists(_WHERE, min_size=1, max_size=4),
    around=st.text(max_size=30),
    upper=st.booleans(),
)
def test_any_identifier_anywhere_in_the_erasable_part_is_found_and_erased_from_the_file(
    tmp_path_factory: pytest.TempPathFactory, core: str, where: list[str], around: str, upper: bool
) -> None:
    needle = "ΩΩ" + core  # Ω: in nothing else the log holds
    assume(needle.strip() == needle and needle.casefold().upper().casefold() == needle.casefold())
    home = tmp_path_factory.mktemp("erase")
    written = needle.upper() if upper else needle
    text = around + written + around
    fields: dict[str, object] = {"query": "", "target": "", "detail": "", "filters": {}}
    for place in where:
        if place in ("query", "target", "detail"):
            fields[place] = text
        else:
            filters = dict(fields["filters"])  # type: ignore[call-overload]
            key = {"filter value": "k", "filter key": text, "nested filter": "n"}[place]
            filters[key] = {"deep": [text]} if place == "nested filter" else (text if place == "filter value" else 1)
            fields["filters"] = filters
    log = SqliteAuditLog(home / "catalog.sqlite3")
    log.append_many([event(0), AuditEvent(principal="p", groups=(), action="ask", **fields), event(2)])  # type: ignore[arg-type]
    files = lambda: b"".join(f.read_bytes() for f in sorted(home.glob("catalog.sqlite3*")))  # noqa: E731
    as_stored = canonical_json(written)[1:-1]  # as the erasable part's JSON text holds it
    assert as_stored in files()  # the check below can fail
    assert log.find_text([needle]) == [2]
    assert log.erase([2]) == [2] and log.find_text([needle]) == []
    assert log.verify().ok and log.verify().erased == 1
    log.close()
    stored = files()
    assert as_stored not in stored and written.encode() not in stored and needle.encode() not in stored


_ISSUE_15_GUARDS = """
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def test_a_format_2_catalog_gains_the_erasable_columns_and_an_erasure_guard(tmp_path: Path) -> None:
    """A catalog as strongroom wrote it from issue 15 to 20: format-2 records, no erasable columns,
    an update guard that allows nothing. Opened: migrated in place; new records can be erased."""
    catalog = tmp_path / "catalog.sqlite3"
    with sqlite3.connect(catalog) as db:
        db.executescript(
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, "
            "body TEXT NOT NULL, format INTEGER NOT NULL DEFAULT 1);" + _ISSUE_15_GUARDS
        )
        body = event_body(personal(1)).decode()
        digest = record_hash(2, 1, "2026-01-01T00:00:00+00:00", GENESIS, body)
        db.execute("INSERT INTO audit VALUES (1, '2026-01-01T00:00:00+00:00', ?, ?, ?, 2)", (GENESIS, digest, body))
    backend = _sqlite_backend(tmp_path)
    log = backend.open()
    audit_log.append(log, personal(2))
    assert [r.format for r in log.read()] == [2, 3] and log.verify().ok
    assert log.find_text([NEEDLE]) == [1, 2]
    with pytest.raises(NotErasable, match="format 1 or 2"):
        log.erase([1])
    assert log.erase([2]) == [2] and log.verify().ok and log.verify().erased == 1
    log.close()
    with sqlite3.connect(catalog) as db:
        (guard,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_no_update'").fetchone()
        assert "erasable" in guard
        for statement in ("UPDATE audit SET body = '{}' WHERE seq = 2",
                          "UPDATE audit SET erasable = NULL, erasable_salt = NULL WHERE seq = 1"):  # fmt: skip
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)


def test_export_and_the_cli_show_an_erased_record_as_erased(tmp_path: Path) -> None:
    backend = _sqlite_backend(tmp_path)
    filled(backend, 2)
    log = backend.open()
    audit_log.append(log, personal(3))
    assert log.erase(log.find_text([NEEDLE])) == [3]
    log.close()
    runner = CliRunner()
    ok = runner.invoke(_cli(), ["audit", "verify", "--home", str(tmp_path)])
    assert ok.exit_code == 0 and "intact: 3 records (1 erased)" in ok.output, ok.output
    as_json = json.loads(runner.invoke(_cli(), ["audit", "verify", "--home", str(tmp_path), "--json"]).output)
    assert as_json["ok"] is True and as_json["erased"] == 1
    out = runner.invoke(_cli(), ["audit", "export", "--home", str(tmp_path), "--since", "2000-01-01"])
    assert out.exit_code == 0 and NEEDLE not in out.output
    lines = [json.loads(line) for line in out.output.strip().splitlines()]
    assert [(line["seq"], line["erased"]) for line in lines[:3]] == [(1, False), (2, False), (3, True)]
    assert lines[0]["query"] == "q0" and "query" not in lines[2] and lines[2]["action"] == "ask"
    assert lines[2]["erasable_sha256"] and lines[2]["hash"]


def test_a_log_without_an_anchor_checks_the_chain_alone(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "catalog.sqlite3")
    log.append_many([event(i) for i in range(3)])
    report = log.verify()
    assert report.ok and report.anchored is None and report.records == 3
    log.close()


def test_the_signing_key_is_made_private_once_and_pinning_refuses_other_keys(tmp_path: Path) -> None:
    backend = _sqlite_backend(tmp_path)
    assert not (tmp_path / "keys").exists()  # opening and verifying makes no key
    assert problems(backend) == []
    filled(backend, 2)
    key = tmp_path / "keys" / "audit-signing.key"
    assert key.stat().st_mode & 0o777 == 0o600 and (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert SigningKey.load_or_create(key).public_key == SigningKey.load_public(key)
    log = backend.open()
    assert log.verify(public_keys=[SigningKey.load_public(key)]).ok
    stranger = SigningKey.generate().public_key
    assert {p.kind for p in log.verify(public_keys=[stranger], grace_s=0).problems} >= {"forged_checkpoint"}
    log.close()


def test_records_since_and_export_stream_json_lines(tmp_path: Path) -> None:
    filled(_sqlite_backend(tmp_path), 3)
    log = open_audit_log(Settings(home=tmp_path))
    out = tmp_path / "siem.jsonl"
    assert audit_log.export(log, out, since=datetime.now(UTC) - timedelta(minutes=5)) == 3
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["principal"] == "user0"
    assert audit_log.records(log, since=datetime.now(UTC) + timedelta(minutes=5)) == []
    assert [r["seq"] for r in audit_log.records(log, since=datetime.now(UTC) - timedelta(minutes=5))] == [1, 2, 3]
    log.close()


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    return app


def test_cli_verify_passes_then_reports_each_problem_where_it_is(tmp_path: Path) -> None:
    backend = _sqlite_backend(tmp_path)
    records = filled(backend, 8)
    runner = CliRunner()
    ok = runner.invoke(_cli(), ["audit", "verify", "--home", str(tmp_path)])
    assert ok.exit_code == 0 and "intact: 8 records" in ok.output and "up to record 8" in ok.output
    body = {**records[1].event(), "principal": "someone-else"}
    backend.sql([
        ("UPDATE audit SET body = ? WHERE seq = 2", (json.dumps(body),)),
        ("DELETE FROM audit WHERE seq = 4", ()),
        ("DELETE FROM audit WHERE seq = 8", ()),
    ])  # fmt: skip
    bad = runner.invoke(_cli(), ["audit", "verify", "--home", str(tmp_path)])
    assert bad.exit_code == 1, bad.output
    assert "record 2: edited" in bad.output
    assert "record 4: deleted" in bad.output
    assert "record 8: truncated" in bad.output
    as_json = runner.invoke(_cli(), ["audit", "verify", "--home", str(tmp_path), "--json"])
    report = json.loads(as_json.output)
    assert as_json.exit_code == 1 and report["ok"] is False and report["anchored"] == 8
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [(2, "edited"), (4, "deleted"), (8, "truncated")]
    out = runner.invoke(_cli(), ["audit", "export", "--home", str(tmp_path), "--since", "2000-01-01"])
    assert out.exit_code == 0 and len(out.output.strip().splitlines()) == 6


WORKED_SEED = bytes(range(32))  # the worked example's Ed25519 private key (never use it for real)
WORKED_KEY_ID = "56475aa75463474c"
WORKED_SIG = "+/FYPmjlw4VY0ZOj9ud4XHI/wK6S/u7eFNqCTnG8iR0qvfgIWprgNducdt/fw1d00r46pndIHUrrjbQAdpCNCQ=="


def test_the_worked_checkpoint_signature() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from strongroom.audit.anchor import Checkpoint, verify_checkpoint

    key = SigningKey(Ed25519PrivateKey.from_private_bytes(WORKED_SEED))
    assert key.key_id == WORKED_KEY_ID
    unsigned = Checkpoint(2, WORKED_HASH_2, "2026-01-02T03:04:05.700000+00:00", key.key_id)
    assert unsigned.message() == (
        b'{"at":"2026-01-02T03:04:05.700000+00:00","hash":"' + WORKED_HASH_2.encode() + b'",'
        b'"key_id":"56475aa75463474c","seq":2,"type":"checkpoint"}'
    )
    import base64

    assert base64.b64encode(key.sign(unsigned.message())).decode() == WORKED_SIG  # Ed25519 is deterministic
    signed = Checkpoint(2, WORKED_HASH_2, unsigned.at, key.key_id, WORKED_SIG)
    assert verify_checkpoint(signed, key.public_key)
    assert not verify_checkpoint(Checkpoint(3, WORKED_HASH_2, unsigned.at, key.key_id, WORKED_SIG), key.public_key)


def test_the_format_doc_quotes_the_pinned_values() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "audit-format.md").read_text()
    assert WORKED_BODY in doc.splitlines() and len(WORKED_BODY.encode()) == 363
    for value in (WORKED_AT, WORKED_HASH_1, WORKED_HASH_2, WORKED_KEY_ID, WORKED_SIG):
        assert value in doc
    lines = doc.splitlines()
    assert WORKED3_BODY in lines and WORKED3_ERASABLE in lines
    for value in (WORKED3_SALT, WORKED3_SHA, WORKED3_HASH_1, WORKED3_HASH_2):
        assert value in doc
    erased = AuditRecord(1, WORKED_AT, GENESIS, WORKED3_HASH_1, WORKED3_BODY, 3, None, None, WORKED3_SHA)
    out = io.StringIO()

    class Log:  # what export reads: one erased record
        def read(self, since: datetime | None = None) -> list[AuditRecord]:
            return [erased]

    assert audit_log.export(Log(), out) == 1  # type: ignore[arg-type]
    assert out.getvalue().strip() in lines  # the exported line the doc shows


def test_a_configured_signing_key_that_goes_missing_is_never_replaced(tmp_path: Path) -> None:
    """A secret mount that failed after the deployment signed: audited operations stop, rather
    than signing with a new key that would make the old checkpoints look forged."""
    from strongroom.audit import open_audit_log
    from strongroom.config import Settings
    from strongroom.errors import ConfigError

    key = tmp_path / "secrets" / "audit-signing.key"
    settings = Settings(home=tmp_path / "home", audit_signing_key=key)
    log = open_audit_log(settings)
    audit_log.append(log, AuditEvent(principal="ana", groups=("research",), action="search"))  # first start: made
    log.close()
    assert key.is_file()
    key.unlink()
    log = open_audit_log(settings)
    try:
        with pytest.raises(ConfigError, match="is missing"):
            audit_log.append(log, AuditEvent(principal="ana", groups=("research",), action="search"))
    finally:
        log.close()
    assert not key.exists()
