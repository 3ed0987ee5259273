from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from strongroom.api import create_app
from strongroom.auth import ServiceSettings
from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from tests.api.live import live_server
from tests.auth.oidc_provider import AUDIENCE, Provider, serve_provider

ROLE_GROUPS = {"reader": ["readers"], "ingester": ["ingesters"], "admin": ["admins"]}
ENTITLEMENTS = ("public", "research", "ops", "legal")
#: marker word -> the document's ACL. Every document also says "revenue" and "net sales",
#: so every query below matches every document and only entitlements can tell them apart.
DOCS: dict[str, frozenset[str]] = {
    "alphacorp": frozenset({"public"}),
    "zephyr": frozenset({"research"}),
    "kestrel": frozenset({"ops"}),
    "meridian": frozenset({"research", "ops"}),
    "obsidian": frozenset({"legal"}),
}


def doc_text(marker: str) -> str:
    return (
        f"{marker.title()} quarterly report\n\n"
        f"The {marker} revenue rose to 42 million dollars in the quarter. "
        f"{marker.title()} net sales and the {marker} margin improved. "
        f"Analysts expect {marker} revenue growth to continue.\n"
    )


@dataclass
class Env:
    url: str
    provider: Provider
    home: Path
    settings: Settings
    doc_ids: dict[str, str]
    version_ids: dict[str, str]

    def token(self, groups: list[str], sub: str = "ana", **extra: Any) -> str:
        return self.provider.token(sub=sub, groups=groups, **extra)

    def client(self, groups: list[str] | None = None, token: str | None = None, sub: str = "ana") -> httpx.Client:
        headers = {}
        if token is None and groups is not None:
            token = self.token(groups, sub=sub)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def audit_records(client: httpx.Client, after_seq: int = 0, limit: int = 100_000) -> list[dict[str, Any]]:
    """The audit log as an admin reads it over HTTP: JSON lines, paged forward by seq."""
    r = client.get("/v1/audit", params={"after_seq": after_seq, "limit": limit})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in r.text.splitlines() if line]


def service_settings(provider: Provider, **overrides: object) -> ServiceSettings:
    values: dict[str, object] = {
        "oidc_issuer": provider.issuer,
        "oidc_audience": AUDIENCE,
        "oidc_leeway_s": 5,
        "oidc_jwks_min_refresh_s": 0,
        "role_groups": ROLE_GROUPS,
        "rate_per_s": 100_000,
        "rate_burst": 100_000,
    }
    values.update(overrides)
    return ServiceSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    with serve_provider() as p:
        yield p


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("home")
    files = tmp_path_factory.mktemp("docs")
    settings = Settings(home=home, embedder="hash")
    runtime = open_runtime(settings, HashEmbedder(64))
    doc_ids, version_ids = {}, {}
    try:
        for marker, acl in DOCS.items():
            path = files / f"{marker}.txt"
            path.write_text(doc_text(marker))
            report = ingest([path], runtime.store, runtime.embedder, IngestOptions(acl=acl, source="corpus"))
            assert report.ok and report.ingested == 1
            version = runtime.store.versions()[-1]
            doc_ids[marker], version_ids[marker] = version.document_id, version.id
    finally:
        runtime.close()
    app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
    with live_server(app) as url:
        yield Env(url, provider, home, settings, doc_ids, version_ids)
