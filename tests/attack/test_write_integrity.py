"""Attack: write integrity (issue 15, "Why"). Nobody changes what they may not read, who may read
a document changes only through the audited ACL operation, a deleted document can come back,
and an admin key cannot mint keys beyond what its holder holds or without an end.

Over a real server (OIDC tokens and API keys) and the real command line (its own home).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strongroom.types import document_id_for, sha256_hex
from tests.attack.conftest import Server, audit_export, cli, cli_json, cli_many, serve
from tests.auth.oidc_provider import Provider

pytestmark = pytest.mark.integration

DEALS_INGESTER = ["deals", "ingesters"]
DEALS_READER = ["deals", "readers"]
PUBLIC_INGESTER = ["public", "ingesters"]
PUBLIC_READER = ["public", "readers"]
DEALS_ADMIN = ["deals", "admins"]
PUBLIC_ADMIN = ["public", "admins"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("writes") / "home", provider) as s:
        yield s


def _deals_doc(server: Server, name: str, text: str) -> dict[str, Any]:
    job = server.upload(DEALS_INGESTER, name, text.encode(), sub="dana", acl="deals", source="desk")
    assert job["status"] == "done" and job["files"][0]["status"] == "ingested", job
    entry: dict[str, Any] = job["files"][0]
    return entry


def _hits(server: Server, groups: list[str], query: str) -> list[dict[str, Any]]:
    with server.client(groups, sub="reader") as c:
        r = c.post("/v1/search", json={"query": query, "k": 20})
    assert r.status_code == 200, r.text
    hits: list[dict[str, Any]] = r.json()["hits"]
    return hits


def _document(server: Server, groups: list[str], document_id: str) -> Any:
    with server.client(groups, sub="reader") as c:
        r = c.get(f"/v1/documents/{document_id}")
    return r.json() if r.status_code == 200 else r.status_code


@pytest.mark.parametrize("published", [None, "2030-01-01", "2001-01-01"], ids=["now", "future", "past"])
def test_http_an_ingester_of_another_group_cannot_replace_a_deals_document(
    server: Server, published: str | None
) -> None:
    """The outside attack: same source and name as a deals document, acl=public. Published later
    (it would become current in 2030) or earlier, it must be refused and change nothing."""
    name = f"plan-{published or 'now'}.txt"
    original = _deals_doc(server, name, f"Deals plan {published}: the kiwi acquisition closes in May.\n")
    hijack = f"Hijack {published}: the mango offer.\n".encode()
    job = server.upload(
        PUBLIC_INGESTER, name, hijack, sub="pat", acl="public", source="desk", published=published or ""
    )
    assert job["status"] == "failed" and job["files"][0]["status"] == "failed", job
    refusal = json.dumps(job)
    assert "kiwi" not in refusal and "deals" not in refusal  # nothing about the document leaks to the writer
    doc = _document(server, DEALS_READER, original["document_id"])
    assert [v["version_id"] for v in doc["versions"]] == [original["version_id"]]  # the readers keep their document
    assert doc["current"]["acl"] == ["deals"]
    assert original["version_id"] in {h["version_id"] for h in _hits(server, DEALS_READER, "kiwi acquisition")}
    assert not [h for h in _hits(server, DEALS_READER, "mango offer hijack") if "mango" in h["text"]]
    assert not [h for h in _hits(server, PUBLIC_READER, "mango offer hijack") if h["document_id"] == doc["document_id"]]
    assert _document(server, PUBLIC_READER, original["document_id"]) == 404
    refused = [
        r
        for r in server.audit()
        if r["action"] == "documents.write" and r["principal"] == "pat" and r["target"] == original["document_id"]
    ]
    assert refused and refused[-1]["outcome"] == "denied"  # the refused write is audited


def test_http_the_same_bytes_again_with_another_acl_is_never_a_silent_no_op(server: Server) -> None:
    data = b"Deals term sheet: the walnut facility pays SOFR plus 310.\n"
    first = server.upload(DEALS_INGESTER, "walnut.txt", data, acl="deals", source="desk")
    assert first["status"] == "done"
    again = server.upload(["deals", "public", "ingesters"], "walnut.txt", data, acl="public", source="desk")
    assert again["status"] == "failed", again
    assert "strongroom acl set" in again["files"][0]["error"]  # the error names the operation that changes an ACL
    doc = _document(server, DEALS_READER, first["files"][0]["document_id"])
    assert doc["current"]["acl"] == ["deals"]
    assert not [h for h in _hits(server, PUBLIC_READER, "walnut facility SOFR") if "walnut" in h["text"]]


def test_http_a_new_version_cannot_change_who_may_read_the_document(server: Server) -> None:
    original = _deals_doc(server, "pecan.txt", "Pecan memo, first draft: fees at 2%.\n")
    v2 = server.upload(
        ["deals", "public", "ingesters"],
        "pecan.txt",
        b"Pecan memo, second draft: fees at 3%.\n",
        acl="public",
        source="desk",
    )
    assert v2["status"] == "failed" and "strongroom acl set" in v2["files"][0]["error"], v2
    assert _document(server, PUBLIC_READER, original["document_id"]) == 404
    assert not [h for h in _hits(server, PUBLIC_READER, "pecan memo draft fees") if "Pecan" in h["text"]]


def test_http_a_deleted_document_can_be_ingested_again_and_found(server: Server) -> None:
    data = b"Deals memo: the almond buyout is priced at 9x EBITDA.\n"
    first = _deals_doc(server, "almond.txt", data.decode())
    with server.client(DEALS_ADMIN, sub="root") as c:
        r = c.delete(f"/v1/documents/{first['document_id']}")
    assert r.status_code == 200, r.text
    assert first["version_id"] not in {h["version_id"] for h in _hits(server, DEALS_READER, "almond buyout EBITDA")}
    again = server.upload(DEALS_INGESTER, "almond.txt", data, acl="deals", source="desk")
    assert again["status"] == "done" and again["files"][0]["status"] == "ingested", again
    found = _hits(server, DEALS_READER, "almond buyout EBITDA")
    assert first["version_id"] in {h["version_id"] for h in found}


# -- ACL changes --------------------------------------------------------------------------------


def _put_acl(server: Server, groups: list[str], document_id: str, acl: list[str]) -> Any:
    with server.client(groups, sub="root") as c:
        return c.put(f"/v1/documents/{document_id}/acl", json={"acl": acl})


def test_http_an_acl_change_by_an_admin_who_may_read_is_audited_with_before_and_after(server: Server) -> None:
    doc = _deals_doc(server, "cashew.txt", "Cashew note: the cashew bridge loan is repaid.\n")
    r = _put_acl(server, DEALS_ADMIN, doc["document_id"], ["deals", "credit"])
    assert r.status_code == 200, r.text
    assert r.json()["before"] == ["deals"] and r.json()["after"] == ["credit", "deals"]
    assert [h for h in _hits(server, ["credit", "readers"], "cashew bridge loan") if "cashew" in h["text"]]
    records = [r for r in server.audit() if r["action"] == "acl.set" and r["target"] == doc["document_id"]]
    assert records and records[-1]["outcome"] == "ok"
    assert records[-1]["filters"]["before"] == ["deals"] and records[-1]["filters"]["after"] == ["credit", "deals"]


def test_http_an_acl_change_by_a_non_admin_is_refused_and_changes_nothing(server: Server) -> None:
    doc = _deals_doc(server, "hazel.txt", "Hazel note: the hazel swap is novated.\n")
    for groups in (DEALS_READER, DEALS_INGESTER):
        r = _put_acl(server, groups, doc["document_id"], ["public"])
        assert r.status_code == 403, r.text
    assert _document(server, PUBLIC_READER, doc["document_id"]) == 404


def test_http_an_admin_who_may_not_read_a_document_gets_the_404_of_a_missing_one(server: Server) -> None:
    doc = _deals_doc(server, "chestnut.txt", "Chestnut note: the chestnut notes are called.\n")
    refused = _put_acl(server, PUBLIC_ADMIN, doc["document_id"], ["public"])
    missing = _put_acl(server, PUBLIC_ADMIN, "0" * 32, ["public"])
    assert refused.status_code == missing.status_code == 404
    assert refused.json() == missing.json()  # nothing tells the two apart
    attempts = [r for r in server.audit() if r["action"] == "acl.set" and r["target"] == doc["document_id"]]
    assert attempts and attempts[-1]["outcome"] == "not_found" and attempts[-1]["principal"] == "root"
    assert _document(server, PUBLIC_READER, doc["document_id"]) == 404
    with server.client(PUBLIC_ADMIN, sub="root") as c:
        deleted = c.delete(f"/v1/documents/{doc['document_id']}")
    assert deleted.status_code == 404 and _document(server, DEALS_READER, doc["document_id"]) != 404


# -- API keys -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin_key(server: Server) -> str:
    """An API key of an admin who holds ``public`` (and the admin role) only."""
    with server.client(PUBLIC_ADMIN, sub="root") as c:
        r = c.post("/v1/keys", json={"owner": "ops-bot", "groups": PUBLIC_ADMIN})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def _mint(server: Server, key: str, body: dict[str, Any]) -> Any:
    with server.client(bearer=key) as c:
        return c.post("/v1/keys", json={"owner": "minted", **body})


def test_http_an_admin_key_cannot_mint_a_key_holding_groups_it_does_not_hold(server: Server, admin_key: str) -> None:
    for groups in (["deals"], ["public", "deals"], ["public", "admins", "deals"]):
        r = _mint(server, admin_key, {"groups": groups})
        assert r.status_code == 403, r.text
    with server.client(bearer=admin_key) as c:
        listed = c.get("/v1/keys").json()
    assert not [k for k in listed if "deals" in k["groups"]]


def test_http_an_admin_key_cannot_mint_a_key_that_never_expires(server: Server, admin_key: str) -> None:
    r = _mint(server, admin_key, {"groups": ["public"]})
    assert r.status_code == 201, r.text
    expires = r.json()["expires_at"]
    assert expires is not None  # keys expire by default
    assert datetime.fromisoformat(expires) <= datetime.now(UTC) + timedelta(days=366)
    for body in ({"expires_at": None}, {"no_expiry": True}, {"days": None}):
        r = _mint(server, admin_key, {"groups": ["public"], **body})
        assert r.status_code != 201 or r.json()["expires_at"] is not None, r.text


def test_http_an_admin_key_cannot_mint_a_key_past_the_maximum_lifetime(server: Server, admin_key: str) -> None:
    for body in ({"days": 366}, {"days": 3650}, {"expires_at": "2999-01-01T00:00:00Z"}):
        r = _mint(server, admin_key, {"groups": ["public"], **body})
        assert r.status_code in (403, 422), r.text


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A deals document ingested with the CLI; then the attacks, two at a time where independent."""
    root = tmp_path_factory.mktemp("cli-writes")
    home = root / "home"
    for folder, text in [
        ("deals", "Deals plan: the kiwi acquisition closes in May.\n"),
        ("hijack", "The mango offer.\n"),
    ]:
        (root / folder).mkdir()
        (root / folder / "plan.txt").write_text(text)
    cli_json(home, "ingest", str(root / "deals"), "--source", "desk", "--acl", "deals", "--groups", "deals")
    doc = {
        "document_id": document_id_for("desk/plan.txt"),
        "version_id": sha256_hex(b"Deals plan: the kiwi acquisition closes in May.\n"),
    }
    writes = cli_many({
        "hijack": lambda: cli(home, "ingest", str(root / "hijack"), "--source", "desk", "--acl", "public",
                              "--groups", "public", "--user", "pat"),
        "same bytes, other acl": lambda: cli(home, "ingest", str(root / "deals"), "--source", "desk", "--acl",
                                             "public", "--groups", "deals,public"),
    })  # fmt: skip
    reads = cli_many({
        "deals": lambda: cli(home, "documents", "--groups", "deals", "--json"),
        "public": lambda: cli(home, "documents", "--groups", "public", "--json"),
        "acl by a reader": lambda: cli(home, "acl", "set", doc["document_id"], "--acl", "public", "--groups", "deals",
                                       STRONGROOM_CLI_ROLES='["reader"]'),
        "acl by an outsider": lambda: cli(home, "acl", "set", doc["document_id"], "--acl", "public", "--groups",
                                          "public"),
        "acl of nothing": lambda: cli(home, "acl", "set", "f" * 32, "--acl", "public", "--groups", "public"),
    })  # fmt: skip
    changed = cli(
        home, "acl", "set", doc["document_id"], "--acl", "deals,credit", "--groups", "deals", "--user", "root"
    )
    yield {"home": home, "doc": doc, "changed": changed, "records": audit_export(home), **writes, **reads}


def _listed(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def test_cli_an_ingester_of_another_group_cannot_replace_a_deals_document(cli_home: dict[str, Any]) -> None:
    hijack = cli_home["hijack"]
    assert hijack.returncode != 0, hijack.stdout
    assert "kiwi" not in hijack.stdout + hijack.stderr
    [deals] = _listed(cli_home["deals"])
    assert deals["version_id"] == cli_home["doc"]["version_id"] and deals["acl"] == ["deals"]
    assert _listed(cli_home["public"]) == []


def test_cli_the_same_bytes_again_with_another_acl_exits_non_zero_naming_acl_set(cli_home: dict[str, Any]) -> None:
    again = cli_home["same bytes, other acl"]
    assert again.returncode != 0, again.stdout
    assert "strongroom acl set" in " ".join((again.stdout + again.stderr).split())
    assert _listed(cli_home["public"]) == []


def test_cli_acl_set_is_refused_to_a_non_admin_and_to_an_admin_who_may_not_read(cli_home: dict[str, Any]) -> None:
    by_reader, outsider, nothing = (cli_home[k] for k in ("acl by a reader", "acl by an outsider", "acl of nothing"))
    assert by_reader.returncode != 0 and "admin" in by_reader.stderr
    assert outsider.returncode == nothing.returncode != 0
    # the outsider learns nothing a missing document would not tell (the id differs, the words do not)
    assert outsider.stderr.replace(cli_home["doc"]["document_id"], "ID") == nothing.stderr.replace("f" * 32, "ID")


def test_cli_acl_set_by_an_admin_who_may_read_is_audited_with_before_and_after(cli_home: dict[str, Any]) -> None:
    assert cli_home["changed"].returncode == 0, cli_home["changed"].stderr
    records = [r for r in cli_home["records"] if r["action"] == "acl.set" and r["outcome"] == "ok"]
    assert len(records) == 1 and records[0]["principal"] == "root"
    assert records[0]["filters"]["before"] == ["deals"] and records[0]["filters"]["after"] == ["credit", "deals"]
    refused = [r for r in cli_home["records"] if r["action"] == "acl.set" and r["outcome"] != "ok"]
    # each refused attempt is an audited acl.set, as over HTTP: the reader's, the outsider's, the missing id's
    assert len(refused) == 3, [(r["principal"], r["groups"], r["outcome"]) for r in refused]


def test_cli_keys_expire_by_default_and_carry_only_groups_their_creator_holds(cli_home: dict[str, Any]) -> None:
    home = cli_home["home"]
    runs = cli_many({
        "default": lambda: cli(home, "keys", "create", "--owner", "svc", "--grant", "public", "--json"),
        "foreign": lambda: cli(home, "keys", "create", "--owner", "svc", "--grant", "deals", "--json"),
        "too long": lambda: cli(home, "keys", "create", "--owner", "svc", "--grant", "public", "--days", "5000"),
        "forever": lambda: cli(home, "keys", "create", "--owner", "svc", "--grant", "public", "--no-expiry"),
    })  # fmt: skip
    assert runs["default"].returncode == 0, runs["default"].stderr
    expires = json.loads(runs["default"].stdout)["expires_at"]
    assert expires is not None and datetime.fromisoformat(expires) <= datetime.now(UTC) + timedelta(days=366)
    for case in ("foreign", "too long", "forever"):
        assert runs[case].returncode != 0, (case, runs[case].stdout)
        assert "Traceback" not in runs[case].stderr
