"""Units of authentication: roles from groups, the groups claim, key caching, API keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from strongroom.auth import Authenticator, OidcVerifier, ServiceSettings, groups_from_claims, roles_for
from strongroom.auth.apikeys import SqliteApiKeyStore
from strongroom.cli.serve import keys_app
from strongroom.errors import AuthenticationError
from tests.auth.oidc_provider import AUDIENCE, Provider, serve_provider

ROLES = {"reader": ["r"], "ingester": ["i"], "admin": ["a"]}


@pytest.mark.parametrize(
    ("groups", "roles"),
    [
        (set(), set()),
        ({"research"}, set()),
        ({"r"}, {"reader"}),
        ({"i"}, {"reader", "ingester"}),
        ({"a", "research"}, {"reader", "ingester", "admin"}),
    ],
)
def test_roles_from_groups_are_ordered(groups: set[str], roles: set[str]) -> None:
    assert roles_for(groups, ROLES) == roles


def test_groups_claim_forms() -> None:
    assert groups_from_claims({"groups": ["a", "b"]}, "groups") == {"a", "b"}
    assert groups_from_claims({"scope": "a b"}, "scope") == {"a", "b"}
    assert groups_from_claims({"realm_access": {"roles": ["x"]}}, "realm_access.roles") == {"x"}
    with pytest.raises(AuthenticationError, match="no 'groups' claim"):
        groups_from_claims({"sub": "x"}, "groups")
    with pytest.raises(AuthenticationError, match="not a list"):
        groups_from_claims({"groups": [1, 2]}, "groups")


def test_verifier_refuses_symmetric_algorithms_in_its_configuration() -> None:
    with pytest.raises(Exception, match="not allowed"):
        OidcVerifier(ServiceSettings(oidc_issuer="http://x", oidc_audience="y", oidc_algorithms=["HS256"]))


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with serve_provider() as p:
        yield p


def test_keys_are_cached_and_refetched_only_for_unknown_kids(provider: Provider) -> None:
    settings = ServiceSettings(oidc_issuer=provider.issuer, oidc_audience=AUDIENCE, oidc_jwks_min_refresh_s=3600)
    verifier = OidcVerifier(settings)
    try:
        for _ in range(5):
            assert verifier.verify(provider.token(groups=["g"]))["sub"] == "ana"
        assert verifier.fetches == 1
        ghost = provider.add_key("RS256", publish=False)
        for _ in range(3):  # an unknown kid cannot make the service hammer the provider
            with pytest.raises(AuthenticationError, match="not one of the issuer's keys"):
                verifier.verify(provider.token(groups=["g"], kid=ghost))
        assert verifier.fetches == 1
    finally:
        verifier.close()


def test_discovery_must_name_the_same_issuer(provider: Provider) -> None:
    verifier = OidcVerifier(ServiceSettings(oidc_issuer=provider.issuer + "/", oidc_audience=AUDIENCE))
    try:
        with pytest.raises(AuthenticationError):
            verifier.verify(provider.token(groups=["g"]))
    finally:
        verifier.close()


def test_api_key_store_and_authenticator(tmp_path: Path) -> None:
    keys = SqliteApiKeyStore(tmp_path / "catalog.sqlite3")
    auth = Authenticator(ServiceSettings(role_groups=ROLES), keys, None)
    key, secret = keys.create("bot", frozenset({"r", "research"}), datetime.now(UTC) + timedelta(days=1))
    caller = auth.authenticate(f"Bearer {secret}")
    assert caller.name == "key:bot" and caller.roles == {"reader"} and caller.may_read({"research"})
    assert caller.method == "api-key" and caller.key_id == key.id
    with pytest.raises(AuthenticationError, match="no OIDC issuer"):
        auth.authenticate("Bearer eyJhbGciOi.x.y")
    with pytest.raises(AuthenticationError, match="authentication required"):
        auth.authenticate(None)
    keys.revoke(key.id)
    with pytest.raises(AuthenticationError):
        auth.authenticate(f"Bearer {secret}")
    keys.close()


def test_verified_keys_are_cached_briefly_and_revocations_reach_the_cache(tmp_path: Path) -> None:
    keys = SqliteApiKeyStore(tmp_path / "catalog.sqlite3")
    now = [100.0]
    auth = Authenticator(ServiceSettings(role_groups=ROLES, api_key_cache_s=2.0), keys, None, clock=lambda: now[0])
    key, secret = keys.create("bot", frozenset({"r"}))
    other, other_secret = keys.create("etl", frozenset({"r"}))
    header = f"Bearer {secret}"
    assert auth.cached(header) is None  # never verified yet: the caller goes to authenticate()
    caller = auth.authenticate(header)
    assert auth.cached(header) == caller
    assert auth.cached(f"Bearer {secret}x") is None and auth.cached(None) is None  # exact header only
    assert all(secret not in repr(k) for k in auth._verified)  # kept as a hash, never the key

    now[0] += 2.0  # trusted for api_key_cache_s, then read again
    assert auth.cached(header) is None
    assert auth.authenticate(header) == caller and auth.cached(header) == caller

    auth.authenticate(f"Bearer {other_secret}")
    elsewhere = SqliteApiKeyStore(tmp_path / "catalog.sqlite3")  # another process: the CLI, say
    assert elsewhere.revoke(other.id) and not elsewhere.revoke(other.id)
    elsewhere.close()
    assert auth.cached(f"Bearer {other_secret}") is None and auth.cached(header) is None  # at once, all
    with pytest.raises(AuthenticationError):
        auth.authenticate(f"Bearer {other_secret}")
    assert auth.authenticate(header) == caller and auth.cached(header) == caller
    keys.revoke(key.id)
    assert auth.cached(header) is None

    _, secret2 = keys.create("ops", frozenset({"r"}), datetime.now(UTC) + timedelta(seconds=1))
    auth.authenticate(f"Bearer {secret2}")
    assert auth.cached(f"Bearer {secret2}") is not None
    now[0] += 1.0  # the key has expired (its second is up), though the cache's 2 s are not
    assert auth.cached(f"Bearer {secret2}") is None

    off = Authenticator(ServiceSettings(role_groups=ROLES, api_key_cache_s=0), keys, None)
    _, secret3 = keys.create("nocache", frozenset({"r"}))
    off.authenticate(f"Bearer {secret3}")
    assert off.cached(f"Bearer {secret3}") is None
    keys.close()


def test_keys_cli_create_list_revoke(tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(keys_app, name="keys")
    runner = CliRunner()
    home = ["--home", str(tmp_path)]
    beyond = runner.invoke(app, ["keys", "create", "--owner", "etl", "--grant", "r,research", "--groups", "r", *home])
    assert beyond.exit_code == 1 and "research" in beyond.output  # a group the creator does not hold
    forever = runner.invoke(
        app, ["keys", "create", "--owner", "etl", "--grant", "r", "--groups", "r", "--no-expiry", *home]
    )
    assert forever.exit_code == 1 and "never expire" in forever.output
    made = runner.invoke(
        app,
        ["keys", "create", "--owner", "etl", "--grant", "r,research", "--groups", "r,research", "--days", "30",
         "--json", *home],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    assert created["key"].startswith("sr_") and created["groups"] == ["r", "research"]
    listed = runner.invoke(app, ["keys", "list", "--json", *home])
    (row,) = json.loads(listed.output)
    assert row["id"] == created["id"] and row["status"] == "active" and "key" not in row
    assert created["key"] not in listed.output
    assert runner.invoke(app, ["keys", "revoke", created["id"], *home]).exit_code == 0
    assert json.loads(runner.invoke(app, ["keys", "list", "--json", *home]).output)[0]["status"] == "revoked"
    assert runner.invoke(app, ["keys", "revoke", created["id"], *home]).exit_code == 1
