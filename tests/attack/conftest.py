"""What the attack suite (issue 15) stands on: a real OIDC provider, real uvicorn servers over
a real home folder, and the real ``strongroom`` command run as a subprocess.

Each module replays the cases of one promise from issue 15's "Why", from outside, the way an
attacker or a new user would: over HTTP with tokens and API keys, and on the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.testing import HashEmbedder
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider, serve_provider


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    with serve_provider() as p:
        yield p


@dataclass
class Server:
    """A running strongroom service and a way to call it as anyone."""

    url: str
    provider: Provider
    home: Path
    settings: Settings

    def token(self, groups: list[str], sub: str = "ana") -> str:
        return self.provider.token(sub=sub, groups=groups)

    def client(self, groups: list[str] | None = None, *, sub: str = "ana", bearer: str | None = None) -> httpx.Client:
        """A client holding an OIDC token for ``groups`` (or the raw ``bearer`` credential)."""
        credential = bearer if bearer is not None else (self.token(groups, sub) if groups is not None else None)
        headers = {"Authorization": f"Bearer {credential}"} if credential is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def upload(
        self,
        groups: list[str],
        name: str,
        data: bytes,
        *,
        sub: str = "ingester",
        wait: bool = True,
        **form: str,
    ) -> dict[str, Any]:
        """Upload one file as a caller in ``groups``; the job as the service reports it."""
        with self.client(groups, sub=sub) as c:
            r = c.post("/v1/documents", files={"file": (name, data)}, data={"wait": str(wait).lower(), **form})
        assert r.status_code == 202, r.text
        job: dict[str, Any] = r.json()
        return job

    def audit(self, after_seq: int = 0, limit: int = 100_000) -> list[dict[str, Any]]:
        """The audit log as an admin reads it over HTTP (JSON lines)."""
        with self.client(["admins"], sub="auditor") as c:
            return audit_page(c, after_seq, limit)


def audit_page(client: httpx.Client, after_seq: int = 0, limit: int = 100_000) -> list[dict[str, Any]]:
    r = client.get("/v1/audit", params={"after_seq": after_seq, "limit": limit})
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines() if line]


@contextmanager
def serve(home: Path, provider: Provider, **service_overrides: object) -> Iterator[Server]:
    """A real uvicorn server over ``home`` (hash embedder, role groups as above)."""
    settings = Settings(home=home, embedder="hash")
    app = create_app(settings, service_settings(provider, **service_overrides), embedder=HashEmbedder(64))
    with live_server(app) as url:
        yield Server(url, provider, home, settings)


# -- the command line ------------------------------------------------------------------------


def _umask_022() -> None:
    os.umask(0o022)  # a common default: the CLI must make its files private itself


def cli(
    home: Path | None, *args: str, embedder: str = "hash", python_flags: Sequence[str] = (), **env_extra: str
) -> subprocess.CompletedProcess[str]:
    """``python -m strongroom.cli ARGS`` with ``STRONGROOM_HOME`` (unless None) and the hash embedder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env.update({"STRONGROOM_EMBEDDER": embedder, "COLUMNS": "200", **env_extra})
    if home is not None:
        env["STRONGROOM_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "strongroom.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_umask_022,
    )


def cli_json(home: Path | None, *args: str, **env_extra: str) -> Any:
    """Run a command with ``--json`` that must succeed; its parsed output."""
    done = cli(home, *args, "--json", **env_extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def cli_many(
    calls: dict[str, Callable[[], subprocess.CompletedProcess[str]]],
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run independent CLI calls two at a time (each is mostly interpreter start-up)."""
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        return {name: f.result() for name, f in futures.items()}


def audit_export(home: Path) -> list[dict[str, Any]]:
    """Every audit record under ``home``, as ``strongroom audit export`` writes them."""
    done = cli(home, "audit", "export")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)
