"""Switching a store to another embedder (e.g. a fine-tuned one) while the old home keeps serving."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import strongroom.audit as audit_log
from strongroom.audit import AuditEvent, open_audit_log
from strongroom.auth.apikeys import SqliteApiKeyStore
from strongroom.config import Settings
from strongroom.store.sqlite import SqliteStore
from tests.test_cli import run


def _audit(home: Path, action: str) -> None:
    log = open_audit_log(Settings(home=home))
    audit_log.append(log, AuditEvent(principal="ana", groups=("desk",), action=action))
    log.close()


def test_reembed_copies_into_a_new_home_and_catches_up(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new, link = tmp_path / "old", tmp_path / "new", tmp_path / "current"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rates.md").write_text("# Rates desk\nThe 2031 senior notes pay a 4.25% coupon.\n")
    (docs / "memo.txt").write_text("Treasury memo. The liquidity coverage ratio stood at 131%.\n")
    assert run(old, "ingest", str(docs), "--acl", "desk").returncode == 0
    keys = SqliteApiKeyStore(old / "catalog.sqlite3")
    key, secret = keys.create("svc", frozenset({"desk"}))
    keys.close()
    _audit(old, "search")

    args = ("reembed", "--to", str(new), "--embedder", "sentence-transformers", "--embedder-model", tiny_model)
    first = run(old, *args, "--link", str(link), "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    # audit records: the ingestion (the CLI audits it) and the search
    assert (report["copied"], report["api_keys"], report["audit_records"]) == (2, 1, 2)
    assert report["problems"] == [] and report["audit_chain_ok"] is True
    assert link.resolve() == new.resolve()
    assert json.loads((new / "embedder.json").read_text())["embedder_model"] == tiny_model

    # the new home serves with the new embedder: same documents, new vectors, the same keys
    switched = SqliteStore.open_existing(new)
    assert switched.dim == 32 and sorted(v.name for v in switched.versions()) == ["memo.txt", "rates.md"]
    switched.close()
    moved_keys = SqliteApiKeyStore(new / "catalog.sqlite3")
    assert moved_keys.check(secret).id == key.id
    moved_keys.close()
    # the old home is untouched and still serves with its own embedder
    assert run(old, "search", "liquidity coverage", "--groups", "desk").returncode == 0
    assert SqliteStore.open_existing(old).dim != 32

    # what the old home took in meanwhile comes over on the next run; nothing twice
    (docs / "late.txt").write_text("Late note. The leverage ratio was 5.1%.\n")
    assert run(old, "ingest", str(docs / "late.txt"), "--acl", "desk").returncode == 0
    _audit(old, "ask")
    again = run(old, *args, "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    # audit records since: the search of the old home above, the late ingestion and the ask
    assert (report["copied"], report["already_there"], report["audit_records"], report["api_keys"]) == (1, 2, 3, 0)
    assert report["versions"] == 3

    # the services roll onto the link: the new home serves with the new embedder (and audits
    # on its own chain from here, which is why it takes no more from the old home verbatim)
    monkeypatch.setenv("STRONGROOM_EMBEDDER_MODEL", tiny_model)
    found = run(link, "search", "senior notes coupon", "--groups", "desk", "--json", embedder="sentence-transformers")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["hits"][0]["document"] == "rates.md"
    monkeypatch.delenv("STRONGROOM_EMBEDDER_MODEL")
    assert run(old, "search", "leverage ratio", "--groups", "desk").returncode == 0
    forked = run(old, *args, "--json")
    assert forked.returncode != 0 and "audit" in forked.stderr


def test_reembed_refuses_what_it_cannot_do(tiny_model: str, tmp_path: Path) -> None:
    old = tmp_path / "old"
    (tmp_path / "a.txt").write_text("Alpha revenue rose.\n")
    assert run(old, "ingest", str(tmp_path / "a.txt")).returncode == 0
    same = run(old, "reembed", "--to", str(old), "--embedder-model", tiny_model)
    assert same.returncode == 2 and "new folder" in same.stderr
    missing = run(old, "reembed", "--to", str(tmp_path / "new"), "--embedder-model", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "cannot load the new embedder" in " ".join(missing.stderr.split())
    unchanged = run(old, "reembed", "--to", str(tmp_path / "new2"), "--embedder", "hash")
    assert unchanged.returncode == 2 and "already uses" in " ".join(unchanged.stderr.split())
    assert "Traceback" not in missing.stderr + unchanged.stderr + same.stderr
    assert not os.path.exists(tmp_path / "new2" / "embedder.json")


def test_reembed_refuses_a_model_whose_lineage_it_cannot_read(tiny_model: str, tmp_path: Path) -> None:
    import shutil

    old, model = tmp_path / "old", tmp_path / "model"
    (tmp_path / "a.txt").write_text("Alpha revenue rose.\n")
    assert run(old, "ingest", str(tmp_path / "a.txt")).returncode == 0
    shutil.copytree(tiny_model, model)
    (model / "strongroom-lineage.json").write_text('{"model": "cut off')
    broken = run(old, "reembed", "--to", str(tmp_path / "new"), "--embedder-model", str(model))
    assert broken.returncode == 2 and "cannot read the model's lineage" in " ".join(broken.stderr.split())
    assert "Traceback" not in broken.stderr
    assert not (tmp_path / "new").exists()  # refused before anything was copied
