"""The HTTP service and its administration: ``strongroom serve``; ``strongroom keys
create|list|revoke`` (API keys; the secret is printed once); ``strongroom audit
verify|export`` (check the hash chain; JSON lines for a SIEM)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from strongroom.auth import ServiceSettings
from strongroom.cli.approvals import proposing
from strongroom.cli.common import (
    GroupsOpt,
    HomeOpt,
    JsonOpt,
    UserOpt,
    emit,
    err,
    exits_on_error,
    platform_session,
    say,
    settings_for,
)
from strongroom.service import parse_instant, views
from strongroom.service.admin import verify_audit_log
from strongroom.service.requests import parse_groups

__all__ = ["audit_app", "keys_app", "serve_command"]

keys_app = typer.Typer(help="API keys for service accounts (stored only as hashes).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log: verify it, export it.", no_args_is_help=True)

GRANT_HELP = (
    "Comma-separated groups the key carries (entitlements and roles): only groups you hold, or those "
    "STRONGROOM_KEY_GRANTABLE_GROUPS allows"
)
NO_EXPIRY_HELP = "Never expire (only where STRONGROOM_KEY_ALLOW_NO_EXPIRY is set)"
TRUST_KEY_HELP = (
    "A public signing key to trust (base64 of the raw 32-byte Ed25519 key; repeat). Default: the deployment's own "
    "key, when its key file is here; else the keys the anchor files declare."
)


def serve_command(
    home: HomeOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    dev: Annotated[bool, typer.Option("--dev", help="DEVELOPMENT ONLY: accept calls without credentials")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the HTTP service (OpenAPI at /docs). Callers authenticate with OIDC tokens or API keys."""
    from strongroom.api.server import serve

    service = ServiceSettings(dev_mode=True) if dev else ServiceSettings()
    serve(settings_for(home), service, host=host, port=port, log_level=log_level)


@keys_app.command("create")
def keys_create(
    owner: Annotated[str, typer.Option(help="Who answers for the key (a person or a service)")],
    grant: Annotated[str, typer.Option("--grant", help=GRANT_HELP)],
    expires: Annotated[str | None, typer.Option(help="Expiry, ISO date (midnight UTC) or datetime")] = None,
    days: Annotated[int | None, typer.Option(min=1, help="Expire after this many days (default 90)")] = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help=NO_EXPIRY_HELP)] = False,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key (admins). The secret is printed once; only its hash is stored."""
    with exits_on_error():
        until, members = parse_instant(expires, "--expires", bare_date="start"), parse_groups(grant, "--grant")
    key = proposing(home, user, groups, as_json, lambda p, who: p.create_key(
        who, owner, members, days=days, expires_at=until, no_expiry=no_expiry), create=True)  # fmt: skip
    if key is None:
        return
    created = views.new_key_record(key)
    if as_json:
        return emit(created, as_json)
    say(f"created key {key.id} for {owner} (groups: {', '.join(sorted(key.groups))})")
    say(f"expires: {created['expires_at'] or 'never'}")
    say("key (shown once; store it in a secret manager):", err)
    say(key.secret)


@keys_app.command("list")
def keys_list(user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List keys (admins; never their secrets)."""
    with platform_session(home, user, groups) as (platform, principal):
        keys = platform.list_keys(principal)
    now = datetime.now(UTC)
    emit([views.key_record(k, now) for k in keys], as_json, title="API keys")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (from keys list)")],
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key at once (admins)."""
    with platform_session(home, user, groups) as (platform, principal):
        platform.revoke_key(principal, key_id)
    if as_json:
        return emit({"revoked": key_id}, as_json)
    say(f"revoked {key_id}")


@audit_app.command("verify")
def audit_verify(
    home: HomeOpt = None,
    as_json: JsonOpt = False,
    anchor: Annotated[list[Path] | None, typer.Option("--anchor", help="Another replica's anchor (repeat)")] = None,
    trust_key: Annotated[list[str] | None, typer.Option("--trust-key", help=TRUST_KEY_HELP)] = None,
) -> None:
    """Check the hash chain and its signed checkpoints: exit 0 when intact, 1 with every problem
    (edited, deleted, reordered, truncated, wiped, dropped, rewritten, unanchored, forged) and its record."""
    with exits_on_error():  # a home that holds no store (a mistyped --home) is a usage error: 2
        report = verify_audit_log(settings_for(home), anchor or (), trust_key or ())
    anchored = "no anchor" if report.anchored is None else f"signed checkpoints up to record {report.anchored}"
    if as_json:
        emit(views.verify_record(report), as_json)
    elif report.ok:
        erased = f" ({report.erased} erased)" if report.erased else ""
        say(f"audit log intact: {report.records} records{erased}; {anchored} (keys {', '.join(report.key_ids)})")
    else:
        say(f"audit log TAMPERED: {len(report.problems)} problem(s) in {report.records} records; {anchored}")
        for p in report.problems:
            say(f"  record {p.seq}: {p.kind}: {p.message}")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    since: Annotated[str | None, typer.Option(help="Only records at or after (ISO date or datetime)")] = None,
    out: Annotated[Path | None, typer.Option(help="Write JSON lines here (default: stdout)")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --out: print the count and file as JSON.")] = False,
) -> None:
    """Write audit records as JSON lines for a SIEM (admins; the export itself is audited)."""
    with exits_on_error():
        start = parse_instant(since, "--since", bare_date="start")
    with platform_session(home, user, groups) as (platform, principal):
        n = platform.export_audit(principal, out if out is not None else sys.stdout, start)
    if out is not None and as_json:
        emit({"records": n, "out": str(out)}, as_json)
    elif out is not None:
        say(f"wrote {n} records to {out}", err)
