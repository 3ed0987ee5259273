"""What the governance HTTP tests (approvals, retention, registry, erasure, lineage) share: the
service over a home, live (:func:`served`); its callers, who log in with an OIDC token or an API
key (:class:`Served`); and ana's two API keys, the maker's and her second (:func:`maker_keys`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from strongroom.api import create_app
from strongroom.auth import open_key_store
from strongroom.config import Settings
from strongroom.testing import HashEmbedder
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider


@dataclass
class Served:
    """A live service and the OIDC provider its callers log in with."""

    url: str
    provider: Provider

    def client(
        self, *, token: str = "", sub: str = "", groups: Sequence[str] = (), timeout: float = 30
    ) -> httpx.Client:
        """A client that sends ``token`` (an API key), else an OIDC token for ``sub`` in ``groups``."""
        bearer = token or self.provider.token(sub=sub, groups=list(groups))
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {bearer}"}, timeout=timeout)


@contextmanager
def served(settings: Settings, provider: Provider, roles: Mapping[str, list[str]]) -> Iterator[str]:
    """The service over ``settings`` (a 64-dimension hash embedder; ``roles``: role -> groups), live: its URL."""
    app = create_app(settings, service_settings(provider, role_groups=roles), embedder=HashEmbedder(64))
    with live_server(app) as url:
        yield url


def maker_keys(settings: Settings) -> tuple[str, str]:
    """Two API keys of ana's, valid for a day: one in admins (the maker's) and one in approvers
    (her second), both also in research."""
    keys = open_key_store(settings)
    until = datetime.now(UTC) + timedelta(days=1)
    try:
        _, maker = keys.create("ana", frozenset({"admins", "research"}), until)
        _, second = keys.create("ana", frozenset({"approvers", "research"}), until)
    finally:
        keys.close()
    return maker, second
