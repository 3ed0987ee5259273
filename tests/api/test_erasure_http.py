"""Erasure over real HTTP: ``POST /v1/erasures`` (admins only) erases an identifier uploaded in a
document and asked about, ``POST /v1/erasures/{id}/verify`` proves it with the identifier in the
body (a wrong one is refused), ``GET /v1/erasures`` lists erasures without identifiers; bad input
is a 4xx JSON error that erases nothing; no answer repeats the identifier; with the service
still running, no file under the home holds it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from strongroom.config import Settings
from strongroom.governance.erasure import Needles
from strongroom.service.erasure import search_files
from tests.api.served import Served, served
from tests.auth.oidc_provider import Provider

ROLES = {"reader": ["readers"], "ingester": ["ingesters"], "admin": ["admins"]}


@dataclass
class World(Served):
    home: Path
    name: str
    letter: Path

    def login(self, sub: str, *groups: str) -> httpx.Client:
        return self.client(sub=sub, groups=groups, timeout=60)


@pytest.fixture
def world(tmp_path: Path, provider: Provider) -> Iterator[World]:
    name = f"Quilla{secrets.token_hex(3)} Fenwarth{secrets.token_hex(2)}"
    letter = tmp_path / "letter.txt"
    letter.write_text(f"Dear {name},\n\nyour overdraft facility was renewed until 2027.\n")
    settings = Settings(home=tmp_path / "home", embedder="hash")
    with served(settings, provider, ROLES) as url:
        yield World(url, provider, settings.home, name, letter)


def _holding(world: World) -> dict[str, int]:
    return {path: n for path, n in search_files(world.home, Needles.of(world.name)) if n}


def test_erasure_over_http(world: World) -> None:
    with world.login("ana", "readers", "ingesters", "research") as ana:
        with world.letter.open("rb") as fh:
            up = ana.post("/v1/documents", files={"file": ("letter.txt", fh)}, data={"acl": "research", "wait": "true"})
        assert up.status_code == 202 and up.json()["status"] == "done", up.text
        assert ana.post("/v1/ask", json={"question": f"What did we renew for {world.name}?"}).status_code == 200
        refused = ana.post("/v1/erasures", json={"identifier": world.name, "reason": "DSAR 3"})
        assert refused.status_code == 403 and "admin" in refused.text
    assert _holding(world)  # the grep can fail: the name is in the files now

    with world.login("root", "admins", "research") as root:
        for bad in ({"identifier": "ab", "reason": "r"}, {"identifier": world.name}, {"reason": "r"},
                    {"identifier": world.name, "reason": "r", "extra": 1}):  # fmt: skip
            got = root.post("/v1/erasures", json=bad)
            assert 400 <= got.status_code < 500 and got.json(), got.text
            assert world.name.lower() not in got.text.lower()
        assert _holding(world)  # nothing was erased by a refused request

        done = root.post("/v1/erasures", json={"identifier": world.name.upper(), "reason": f"DSAR {world.name}"})
        assert done.status_code == 200, done.text
        report = done.json()
        assert report["erased"]["store.pages"] == 1 and report["erased"]["audit"] >= 1
        assert world.name.lower() not in done.text.lower()
        assert _holding(world) == {}  # while the service runs: the catalog, its WAL, the snapshot

        erasure_id = report["erasure_id"]
        wrong = root.post(f"/v1/erasures/{erasure_id}/verify", json={"identifier": "Somebody Else"})
        assert wrong.status_code == 403
        none = root.post(f"/v1/erasures/{erasure_id}/verify", json={})  # an identifier erasure needs it again
        assert 400 <= none.status_code < 500 and "identifier" in none.text, none.text
        proof = root.post(f"/v1/erasures/{erasure_id}/verify", json={"identifier": world.name})
        assert proof.status_code == 200 and proof.json()["proven"] is True, proof.text
        assert root.post("/v1/erasures/nope/verify", json={"identifier": world.name}).status_code == 404
        listed = root.get("/v1/erasures")
        assert listed.status_code == 200 and [e["erasure_id"] for e in listed.json()] == [erasure_id]
        assert world.name.lower() not in listed.text.lower()
        found = root.post("/v1/search", json={"query": "overdraft facility renewed"})
        assert found.status_code == 200 and "[erased]" in found.text and world.name.lower() not in found.text.lower()
    assert _holding(world) == {}
