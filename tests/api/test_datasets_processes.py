"""One home, several processes, one DuckDB datasets file: while the HTTP service answers
dataset queries in a loop, ``strongroom data load`` (a real CLI process) loads a correction
and ``strongroom mcp`` (stdio, a real process) queries the same home. Everything succeeds, and
the service's queries see the new version once the load is done."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.service import Platform
from strongroom.service.datasets import DatasetLoad
from strongroom.testing import HashEmbedder
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

pytestmark = pytest.mark.integration

READER = ["readers", "research"]
SQL = "SELECT close FROM prices WHERE ticker = 'ZQXW' AND day = DATE '2024-01-03'"


@dataclass
class Service:
    url: str
    home: Path
    files: Path
    token: str


@dataclass
class Loop:
    """Queries the service in a loop on a thread until stopped: every answer's status, and the
    version and close of each 200."""

    service: Service
    answers: list[tuple[int, int, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.service.token}"}
        with httpx.Client(base_url=self.service.url, headers=headers, timeout=60) as http:
            while not self.stop.is_set():
                r = http.post("/v1/datasets/query", json={"sql": SQL})
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text}")
                    continue
                body = r.json()
                self.answers.append((r.status_code, body["datasets"][0]["version"], body["rows"][0][0]))


@pytest.fixture
def service(tmp_path: Path, provider: Provider) -> Iterator[Service]:
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    (files / "prices.csv").write_text("ticker,day,close\nZQXW,2024-01-02,101.25\nZQXW,2024-01-03,102.5\n")
    (files / "fix.csv").write_text("ticker,day,close\nZQXW,2024-01-03,103.75\n")
    settings = Settings(home=home, embedder="hash")
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        loader = p.principal("loader", ["research"])
        p.load_dataset(loader, DatasetLoad(files / "prices.csv", "prices", frozenset({"research"}), "day", ("ticker",)))
    app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
    with live_server(app) as url:
        yield Service(url, home, files, provider.token(sub="ana", groups=READER))


@pytest.fixture
def loop(service: Service) -> Iterator[Loop]:
    queries = Loop(service)
    thread = threading.Thread(target=queries.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not queries.answers and not queries.failures:  # the service has the file open
        assert time.monotonic() < deadline, "the service never answered"
        time.sleep(0.01)
    yield queries
    queries.stop.set()
    thread.join(timeout=120)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "STRONGROOM_HOME": str(home), "STRONGROOM_EMBEDDER": "hash", "HF_HUB_OFFLINE": "1"}


def test_a_cli_load_while_the_service_queries_in_a_loop(service: Service, loop: Loop) -> None:
    loaded = subprocess.run(
        [sys.executable, "-m", "strongroom.cli", "data", "load", str(service.files / "fix.csv"), "--dataset", "prices",
         "--acl", "research", "--valid-time-column", "day", "--key", "ticker", "--groups", "research", "--json"],
        env=_env(service.home), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["version"] == 2
    seen = len(loop.answers)
    deadline = time.monotonic() + 60
    while not (len(loop.answers) > seen and loop.answers[-1][1] == 2):  # an answer begun after the load
        assert time.monotonic() < deadline and not loop.failures, loop.failures
        time.sleep(0.01)
    loop.stop.set()
    assert loop.failures == []
    assert loop.answers[0][1:] == (1, 102.5) and loop.answers[-1][1:] == (2, 103.75)
    versions = [v for _, v, _ in loop.answers]
    assert versions == sorted(versions)  # never back to the old version once the new one was seen


def test_strongroom_mcp_over_stdio_reads_the_home_the_service_holds(service: Service, loop: Loop) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "strongroom.cli", "mcp", "--groups", "research", "--home", str(service.home)],
        env=_env(service.home),
    )

    async def scenario() -> dict[str, Any]:
        async with Client(stdio_client(params)) as client:
            result = await client.call_tool("query_data", {"sql": SQL})
            assert not result.is_error, result.content
            return dict(result.structured_content or {})

    answered = asyncio.run(scenario())
    assert answered["content"]["rows"] == [[102.5]]
    assert loop.failures == [] and loop.answers
