"""Two service processes (`strongroom serve`) over one PostgreSQL store: one audit chain for
both, appended to concurrently under load, with no fork and no gap, that verifies against
both replicas' anchors; and a key revoked through one replica is refused by the other."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.api.live import serve_process
from tests.store.conftest import fresh_database, server_url  # noqa: F401 - a fixture, used by name

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_two_replicas_append_one_chain(tmp_path: Path, server_url: str) -> None:  # noqa: F811
    parts = conninfo_to_dict(fresh_database(server_url))
    store_url = f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}&port={parts.get('port', 5432)}"
    signing_key = tmp_path / "secrets" / "audit-signing.key"  # a secret mount both replicas share
    homes = [tmp_path / "replica-a", tmp_path / "replica-b"]
    base = {
        **os.environ,
        "STRONGROOM_EMBEDDER": "hash",
        "STRONGROOM_STORE_URL": store_url,
        "STRONGROOM_AUDIT_SIGNING_KEY": str(signing_key),
        "STRONGROOM_KEY_GRANTABLE_GROUPS": '["strongroom-readers"]',
    }
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "q1.txt").write_text("Quarterly revenue was 1,234 million, up 5%.\n")
    assert _cli({**base, "STRONGROOM_HOME": str(homes[0])}, "ingest", str(docs)).returncode == 0

    with serve_process(homes[0], base, "--dev") as (_, url_a), serve_process(homes[1], base, "--dev") as (_, url_b):

        def search(i: int) -> int:
            url = (url_a, url_b)[i % 2]
            r = httpx.post(f"{url}/v1/search", json={"query": f"quarterly revenue {i}"}, timeout=60)
            return r.status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(search, range(200)))
        assert statuses == [200] * 200
        with httpx.Client(timeout=60) as c:
            made = c.post(f"{url_a}/v1/keys", json={"owner": "bot", "groups": ["public", "strongroom-readers"]}).json()
            key = made["key"]
            assert c.post(f"{url_b}/v1/search", json={"query": "revenue"}, headers=_bearer(key)).status_code == 200
            assert c.delete(f"{url_a}/v1/keys/{made['id']}").status_code == 200
            assert c.post(f"{url_b}/v1/search", json={"query": "revenue"}, headers=_bearer(key)).status_code == 401
            records = [json.loads(line) for line in c.get(f"{url_b}/v1/audit?limit=100000").text.splitlines()]

    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, len(seqs) + 1))  # one chain: no gap, no duplicate
    assert sum(r["action"] == "search" for r in records) == 201
    assert all(r["prev"] == p["hash"] for p, r in itertools.pairwise(records))
    verified = _cli(
        {**base, "STRONGROOM_HOME": str(homes[0])},
        "audit", "verify", "--json", "--anchor", str(homes[1] / "audit-anchor.jsonl"),
    )  # fmt: skip
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["ok"], report["problems"][:5]
    assert report["records"] >= len(records)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
