"""Attack: the audit log (issue 15, "Why"). Deleting the newest records, deleting them all,
editing one and recomputing every later hash, or appending a forged record must each make the
real ``strongroom audit verify`` exit 1 naming the problem; refused logins are recorded (in
aggregate); the CLI's search and ask are recorded; ``/v1/audit`` pages forward by seq without
skipping a record appended meanwhile.

The tampering is done to the real SQLite file with the append-only triggers dropped, as someone
with write access to the catalog would.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from strongroom.audit import open_audit_log
from strongroom.audit.records import record_hash
from strongroom.config import Settings
from tests.attack.conftest import Server, audit_export, audit_page, cli, cli_json, cli_many, serve, wait_for
from tests.auth.oidc_provider import Provider

pytestmark = pytest.mark.integration


# -- the chain, tampered with, checked by the real CLI ----------------------------------------------


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose audit log the real CLI wrote: an ingest, a search, an ask, a listing."""
    root = tmp_path_factory.mktemp("audit-cli")
    (root / "docs").mkdir()
    (root / "docs" / "rates.txt").write_text(
        "Rates note. The Example Bank notes pay a coupon of 4.25% semi-annually.\n"
    )
    home = root / "home"
    cli_json(home, "ingest", str(root / "docs"), "--acl", "rates", "--groups", "rates")
    runs = cli_many({
        "search": lambda: cli(home, "search", "coupon notes", "--groups", "rates", "--user", "sam"),
        "ask": lambda: cli(home, "ask", "What coupon do the notes pay?", "--groups", "rates", "--user", "alex"),
        "documents": lambda: cli(home, "documents", "--groups", "rates"),
    })  # fmt: skip
    for done in runs.values():
        assert done.returncode == 0, done.stderr
    return home


def test_cli_search_and_ask_write_audit_records(cli_home: Path) -> None:
    records = audit_export(cli_home)
    [search] = [r for r in records if r["action"] == "search"]
    [ask] = [r for r in records if r["action"] == "ask"]
    assert search["principal"] == "sam" and search["groups"] == ["rates"] and search["query"] == "coupon notes"
    assert search["chunks"]  # what was retrieved is named
    assert ask["principal"] == "alex" and ask["query"] == "What coupon do the notes pay?"
    assert ask["chunks"] and ask["generator"] and len(ask["answer_sha256"]) == 64


def _sql(home: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        db.execute("DROP TRIGGER IF EXISTS audit_no_update")
        db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for statement, params in statements:
            db.execute(statement, params)


def _rows(home: Path) -> list[tuple[int, str, str, str, str, int, str | None]]:
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        return list(db.execute("SELECT seq, at, prev, hash, body, format, erasable_sha256 FROM audit ORDER BY seq"))


def _delete_newest(home: Path) -> int:
    last = _rows(home)[-1][0]
    _sql(home, ("DELETE FROM audit WHERE seq = ?", (last,)))
    return last


def _delete_all(home: Path) -> int:
    _sql(home, ("DELETE FROM audit", ()))
    return 1


def _rewrite(home: Path) -> int:
    """Edit record 2 (who asked) and recompute its hash and every later one: a consistent chain."""
    rows = _rows(home)
    statements = []
    prev = rows[0][3]
    for seq, at, _, _, body, fmt, sealed in rows[1:]:
        if seq == 2:
            body = json.dumps({**json.loads(body), "principal": "nobody"}, sort_keys=True, separators=(",", ":"))
        digest = record_hash(fmt, seq, at, prev, body, sealed)
        statements.append(("UPDATE audit SET body = ?, prev = ?, hash = ? WHERE seq = ?", (body, prev, digest, seq)))
        prev = str(digest)
    _sql(home, *statements)
    return 2


def _forge(home: Path) -> int:
    """Append a well-formed record, chained to the head, by someone without the signing key."""
    seq, at, _, head, body, fmt, sealed = _rows(home)[-1]
    forged = json.dumps({**json.loads(body), "principal": "mallory"}, sort_keys=True, separators=(",", ":"))
    row = (seq + 1, at, head, record_hash(fmt, seq + 1, at, head, forged, sealed), forged, fmt, sealed)
    insert = "INSERT INTO audit (seq, at, prev, hash, body, format, erasable_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)"
    _sql(home, (insert, row))
    return seq + 1


TAMPERS: dict[str, tuple[Callable[[Path], int], str]] = {
    "delete the newest records": (_delete_newest, "truncated"),
    "delete every record": (_delete_all, "wiped"),
    "edit one and recompute every later hash": (_rewrite, "rewritten"),
    "append a forged record": (_forge, "unanchored"),
}


@pytest.fixture(scope="module")
def verified(cli_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, Any]]:
    """``strongroom audit verify`` on an untouched copy of the home and on one copy per tampering."""
    where: dict[str, tuple[int, Path]] = {}
    untouched: tuple[Callable[[Path], int], str] = (lambda home: 0, "")
    for name, (tamper, _) in [("intact", untouched), *TAMPERS.items()]:
        copy = tmp_path_factory.mktemp("tampered") / "home"
        shutil.copytree(cli_home, copy)
        where[name] = (tamper(copy), copy)
    runs = cli_many({name: partial(cli, home, "audit", "verify") for name, (_, home) in where.items()})
    return {name: (where[name][0], runs[name]) for name in where}


def test_cli_audit_verify_passes_an_untouched_log(verified: dict[str, tuple[int, Any]]) -> None:
    done = verified["intact"][1]
    assert done.returncode == 0 and "intact" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_cli_audit_verify_catches_tampering_and_names_it(verified: dict[str, tuple[int, Any]], tamper: str) -> None:
    seq, done = verified[tamper]
    kind = TAMPERS[tamper][1]
    assert done.returncode == 1, done.stdout + done.stderr
    assert "TAMPERED" in done.stdout and f"record {seq}: {kind}" in done.stdout, done.stdout


# -- over HTTP: refused logins, paging ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("audit-http") / "home"
    with serve(home, provider, auth_refusal_window_s=0.2) as s:
        job = s.upload(
            ["desk", "ingesters"], "note.txt", b"Desk note. The falcon fund returned 7% in May.\n", acl="desk"
        )
        assert job["status"] == "done"
        yield s


def _refuse(url: str, credentials: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        for credential in credentials:
            r = c.post("/v1/search", json={"query": "falcon"}, headers={"Authorization": f"Bearer {credential}"})
            assert r.status_code == 401, r.text


def test_http_refused_logins_are_recorded_in_aggregate(server: Server, provider: Provider) -> None:
    wrong_key = "sr_deadbeef0001_NotTheSecretAtAll0123456789"
    bad_tokens = [
        "not-a-jwt",
        provider.unsigned(provider.published[0], provider.claims(groups=["desk", "readers"])),
        provider.token(groups=["desk", "readers"], exp=1),  # expired long ago
    ]
    _refuse(server.url, [wrong_key, wrong_key, *bad_tokens])

    def refused() -> list[dict[str, Any]]:
        records = [r for r in server.audit() if r["action"] == "auth.refused"]
        by_key = sum(r["filters"]["count"] for r in records if r["auth"] == "api-key:deadbeef0001")
        by_token = sum(r["filters"]["count"] for r in records if r["auth"] == "bearer")
        return records if by_key >= 2 and by_token >= 3 else []

    records = wait_for(refused, "auth.refused records")
    assert all(r["outcome"] == "denied" for r in records)
    text = json.dumps(records)
    assert "NotTheSecretAtAll" not in text and bad_tokens[1] not in text  # never the credential itself


def test_http_refused_logins_are_aggregated_and_flushed_at_shutdown(tmp_path: Path, provider: Provider) -> None:
    """A flood of one bad key is one record with its count (the disk does not fill), written at the stop."""
    home = tmp_path / "home"
    with serve(home, provider, auth_refusal_window_s=3600) as s:
        _refuse(s.url, ["sr_cafebabe0002_wrong"] * 40 + ["garbage"])
    log = open_audit_log(Settings(home=home, embedder="hash"))
    try:
        refused = [r.event() for r in log.read() if r.event()["action"] == "auth.refused"]
    finally:
        log.close()
    [flood] = [r for r in refused if r["auth"] == "api-key:cafebabe0002"]
    assert flood["filters"]["count"] == 40  # type: ignore[index]
    assert [r for r in refused if r["auth"] == "bearer"]


def test_http_audit_pages_forward_by_seq_without_skipping(server: Server) -> None:
    """A SIEM reads three records at a time while others keep appending: every seq arrives once."""
    seen: list[int] = []
    after = 0
    with server.client(["admins"], sub="siem") as siem, server.client(["desk", "readers"], sub="busy") as busy:
        for _ in range(6):
            page = audit_page(siem, after, limit=3)
            assert page, "a page came back empty while records were being appended"
            seen += [r["seq"] for r in page]
            after = page[-1]["seq"]
            for q in ("falcon fund", "May return"):
                assert busy.post("/v1/search", json={"query": q}).status_code == 200
        rest = audit_page(siem, after)
    seen += [r["seq"] for r in rest]
    assert seen == list(range(1, seen[-1] + 1))  # in order, none skipped, none twice


def test_http_only_admins_read_the_audit_log(server: Server) -> None:
    """The log holds everyone's queries: a reader or an ingester gets 403, and nothing of it."""
    for groups in (["desk", "readers"], ["desk", "ingesters"]):
        with server.client(groups, sub="nosy") as c:
            r = c.get("/v1/audit", params={"after_seq": 0})
        assert r.status_code == 403, r.text[:300]
        assert "falcon" not in r.text and '"seq"' not in r.text
