"""The audit log's hash chain: intact passes; an edit, a deletion and a reordering are pinpointed."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from strongroom.api.cli import audit_app
from strongroom.audit import AuditEvent, AuditLog


def _log(tmp_path: Path, n: int = 6) -> Path:
    catalog = tmp_path / "catalog.sqlite3"
    log = AuditLog(catalog)
    for i in range(n):
        log.append(
            AuditEvent(
                principal=f"user{i}", groups=("research",), action="search", query=f"q{i}", chunks=((f"c{i}", f"v{i}"),)
            )
        )
    log.close()
    return catalog


def _tamper(catalog: Path, *statements: str) -> None:
    with sqlite3.connect(catalog) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        for sql in statements:
            db.execute(sql)


def _verify(catalog: Path) -> list[tuple[int, str]]:
    log = AuditLog(catalog)
    try:
        return [(p.seq, p.kind) for p in log.verify().problems]
    finally:
        log.close()


def test_an_intact_log_verifies(tmp_path: Path) -> None:
    catalog = _log(tmp_path)
    log = AuditLog(catalog)
    report = log.verify()
    assert report.ok and report.records == 6
    records = log.records()
    assert records[0]["prev"] == "0" * 64 and records[1]["prev"] == records[0]["hash"]
    log.close()


def test_the_table_refuses_updates_and_deletes(tmp_path: Path) -> None:
    catalog = _log(tmp_path)
    with sqlite3.connect(catalog) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET body = '{}' WHERE seq = 1")
    with sqlite3.connect(catalog) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit WHERE seq = 1")


def test_an_edited_record_is_pinpointed(tmp_path: Path) -> None:
    catalog = _log(tmp_path)
    with sqlite3.connect(catalog) as db:
        body = json.loads(db.execute("SELECT body FROM audit WHERE seq = 3").fetchone()[0])
    body["query"] = "something innocent"
    _tamper(catalog, f"UPDATE audit SET body = '{json.dumps(body)}' WHERE seq = 3")
    assert _verify(catalog) == [(3, "edited")]


def test_a_deleted_record_is_pinpointed(tmp_path: Path) -> None:
    catalog = _log(tmp_path)
    _tamper(catalog, "DELETE FROM audit WHERE seq = 4")
    assert _verify(catalog) == [(5, "deleted")]


def test_a_deleted_last_record_cannot_hide_behind_renumbering(tmp_path: Path) -> None:
    catalog = _log(tmp_path)
    _tamper(catalog, "DELETE FROM audit WHERE seq = 2", "UPDATE audit SET seq = seq - 1 WHERE seq > 2")
    assert _verify(catalog) == [(2, "deleted")]


def test_a_reordered_record_is_pinpointed(tmp_path: Path) -> None:
    catalog = _log(tmp_path)
    _tamper(
        catalog,
        "UPDATE audit SET seq = 100 WHERE seq = 2",
        "UPDATE audit SET seq = 2 WHERE seq = 3",
        "UPDATE audit SET seq = 3 WHERE seq = 100",
    )
    problems = _verify(catalog)
    assert problems and {kind for _, kind in problems} == {"reordered"}
    assert {seq for seq, _ in problems} <= {2, 3, 4}


def test_export_since_writes_json_lines(tmp_path: Path) -> None:
    catalog = _log(tmp_path, 3)
    log = AuditLog(catalog)
    out = tmp_path / "siem.jsonl"
    lines = log.export(out, since=datetime.now(UTC) - timedelta(minutes=5))
    assert len(lines) == 3 and out.read_text().count("\n") == 3
    assert json.loads(lines[0])["principal"] == "user0"
    assert log.export(since=datetime.now(UTC) + timedelta(minutes=5)) == []
    log.close()


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    return app


def test_cli_verify_passes_then_reports_each_tampering(tmp_path: Path) -> None:
    catalog = _log(tmp_path, 8)
    runner = CliRunner()
    ok = runner.invoke(_cli(), ["audit", "verify", "--home", str(tmp_path)])
    assert ok.exit_code == 0 and "intact: 8 records" in ok.output
    with sqlite3.connect(catalog) as db:
        body = json.loads(db.execute("SELECT body FROM audit WHERE seq = 2").fetchone()[0])
    body["principal"] = "someone-else"
    _tamper(
        catalog,
        f"UPDATE audit SET body = '{json.dumps(body)}' WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 4",
        "UPDATE audit SET seq = 100 WHERE seq = 6",
        "UPDATE audit SET seq = 6 WHERE seq = 7",
        "UPDATE audit SET seq = 7 WHERE seq = 100",
    )
    bad = runner.invoke(_cli(), ["audit", "verify", "--home", str(tmp_path)])
    assert bad.exit_code == 1
    assert "record 2: edited" in bad.output
    assert "record 5: deleted" in bad.output
    assert "record 6: reordered" in bad.output
    out = runner.invoke(_cli(), ["audit", "export", "--home", str(tmp_path), "--since", "2000-01-01"])
    assert out.exit_code == 0 and len(out.output.strip().splitlines()) == 7


def test_a_group_commit_chains_each_record_to_the_one_before(tmp_path: Path) -> None:
    catalog = _log(tmp_path, 2)
    log = AuditLog(catalog)
    events = [AuditEvent(principal=f"batch{i}", groups=(), action="search", query=f"b{i}") for i in range(5)]
    assert log.append_many(events) == [3, 4, 5, 6, 7]
    assert log.append(AuditEvent(principal="after", groups=(), action="ask")) == 8
    records = log.records()
    assert [r["principal"] for r in records] == ["user0", "user1", *(f"batch{i}" for i in range(5)), "after"]
    assert all(records[i]["prev"] == records[i - 1]["hash"] for i in range(1, len(records)))
    assert log.verify().ok
    log.close()
    _tamper(catalog, "DELETE FROM audit WHERE seq = 5")
    assert _verify(catalog) == [(6, "deleted")]


def test_a_stored_record_holds_exactly_the_event_s_fields(tmp_path: Path) -> None:
    event = AuditEvent(
        principal="key:bot", groups=("public", "readers"), action="search", auth="api-key", query="net sales",
        filters={"k": 10, "as_of": None, "doc_types": ["10-Q"], "filters": {"ticker": "AAPL"}},
        chunks=(("c1", "v1"), ("c2", "v2")), detail="ünïcode",
    )  # fmt: skip
    log = AuditLog(tmp_path / "catalog.sqlite3")
    log.append(event)
    (record,) = log.records()
    log.close()
    expected = json.loads(json.dumps(asdict(event)))
    assert {k: v for k, v in record.items() if k not in ("seq", "at", "prev", "hash")} == expected
