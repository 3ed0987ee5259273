"""Migrating a deployment to another store, and checking that nothing was lost or altered."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import strongroom.audit as audit_log
from strongroom.audit import AuditEvent, SqliteAuditLog, open_audit_log
from strongroom.config import Settings
from strongroom.service.deployment import migrate_deployment, verify_deployment
from strongroom.service.transfer import check, content_digest, migrate
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.types import Scope
from tests.test_cli import run


def _deployment(home: Path, embedder: HashEmbedder) -> SqliteStore:
    store = SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)
    store.write(make_version(embedder, "a.txt", ["Alpha revenue rose to 10,000.", "Alpha margin fell."]))
    store.write(make_version(embedder, "b.txt", ["Beta coupon 4.25%."], acl=("desk",)))
    store.write(make_version(embedder, "gone.txt", ["To be deleted."]))
    store.delete_document(store.versions()[-1].document_id)
    audit = open_audit_log(Settings(home=home))  # anchored, as the service writes it
    for action in ("search", "ask", "documents.delete"):
        audit_log.append(audit, AuditEvent(principal="ana", groups=("desk",), action=action))
    audit.close()
    return store


def test_migrate_copies_everything_once_and_the_digests_agree(tmp_path: Path, embedder: HashEmbedder) -> None:
    source = _deployment(tmp_path / "a", embedder)
    target = SqliteStore(tmp_path / "b", model_id=embedder.model_id, dim=embedder.dim)
    src_audit = SqliteAuditLog(tmp_path / "a" / "catalog.sqlite3")
    dst_audit = SqliteAuditLog(tmp_path / "b" / "catalog.sqlite3")
    first = migrate(source, target, source_audit=src_audit, target_audit=dst_audit)
    again = migrate(source, target, source_audit=src_audit, target_audit=dst_audit)
    assert (first.copied, first.audit_records, first.problems) == (2, 3, [])  # the deleted document stays deleted
    assert (again.copied, again.already_there, again.audit_records) == (0, 2, 0)
    assert content_digest(source.iter_versions()) == content_digest(target.iter_versions())
    assert dst_audit.verify().ok and list(dst_audit.chain()) == list(src_audit.chain())
    assert check(target.iter_versions(), embedder.dim) == []
    scope = Scope(frozenset({"desk"}))
    assert target.keyword_search("coupon", scope, 5) == source.keyword_search("coupon", scope, 5)
    for closeable in (source, target, src_audit, dst_audit):
        closeable.close()


def test_the_digest_and_the_check_see_an_altered_chunk(tmp_path: Path, embedder: HashEmbedder) -> None:
    store = _deployment(tmp_path / "a", embedder)
    before = content_digest(store.iter_versions())
    store.close()
    with sqlite3.connect(tmp_path / "a" / "catalog.sqlite3") as db:
        db.execute("UPDATE chunks SET text = 'Alpha revenue rose to 99,000.' WHERE text LIKE 'Alpha revenue%'")
    store = SqliteStore.open_existing(tmp_path / "a")
    assert content_digest(store.iter_versions()) != before
    assert any("its text is not page 1" in p for p in check(store.iter_versions(), embedder.dim))
    store.close()


def test_cli_migrate_and_verify_store(tmp_path: Path, embedder: HashEmbedder) -> None:
    _deployment(tmp_path / "a", embedder).close()
    moved = run(
        tmp_path / "a", "migrate", "--from", f"sqlite://{tmp_path / 'a'}", "--to", str(tmp_path / "b"), "--json"
    )
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout) | {"same_content": True} == json.loads(moved.stdout)
    verified = run(tmp_path / "a", "verify-store", "--against", str(tmp_path / "b"), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["same_content"] is True
    with sqlite3.connect(tmp_path / "b" / "catalog.sqlite3") as db:
        db.execute("DROP TRIGGER audit_no_delete")
        db.execute("DELETE FROM audit WHERE seq = 2")
    broken = run(tmp_path / "a", "verify-store", "--against", str(tmp_path / "b"), "--json")
    assert broken.returncode == 1 and json.loads(broken.stdout)["against"]["audit_chain_ok"] is False
    missing = run(tmp_path / "a", "migrate", "--from", str(tmp_path / "nowhere"), "--to", str(tmp_path / "c"))
    assert missing.returncode != 0 and "no strongroom store" in missing.stderr


def test_verify_deployment_names_the_store_and_the_difference(tmp_path: Path, embedder: HashEmbedder) -> None:
    _deployment(tmp_path / "a", embedder).close()
    settings = Settings(home=tmp_path / "a")
    assert migrate_deployment(settings, str(tmp_path / "a"), str(tmp_path / "b")).ok
    assert verify_deployment(settings, against=str(tmp_path / "b")).failures == []
    with sqlite3.connect(tmp_path / "b" / "catalog.sqlite3") as db:
        db.execute("UPDATE chunks SET text = 'Alpha revenue rose to 99,000.' WHERE text LIKE 'Alpha revenue%'")
    found = verify_deployment(settings, against=str(tmp_path / "b"))
    assert not found.ok and found.as_dict()["same_content"] is False
    assert any(f.startswith("against: ") and "its text is not page 1" in f for f in found.failures)
    assert "the stores do not hold the same content" in found.failures
    assert not any(f.startswith("store: ") for f in found.failures)  # the source is intact
