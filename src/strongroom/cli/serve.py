"""CLI pieces of the service, mounted by :mod:`strongroom.cli`::

    app.command("serve")(serve_command)
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")

``strongroom serve`` runs the HTTP service; ``strongroom keys create|list|revoke`` manages
API keys (the secret is printed once); ``strongroom audit verify|export`` checks the
hash chain and writes JSON lines for a SIEM.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from strongroom.audit import open_audit_log
from strongroom.auth import ServiceSettings
from strongroom.cli.common import GroupsOpt, UserOpt, exit_code, fail, platform_session, settings_for
from strongroom.config import Settings
from strongroom.errors import StoreError, StrongroomError
from strongroom.service.platform import check_home

__all__ = ["audit_app", "configure_logging", "keys_app", "serve_command"]

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Store folder (default: STRONGROOM_HOME or ~/.strongroom)")
]
keys_app = typer.Typer(help="API keys for service accounts (stored only as hashes).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log: verify it, export it.", no_args_is_help=True)


def _settings(home: Path | None) -> Settings:
    return Settings(home=home) if home else Settings()


def _when(value: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        typer.echo(f"error: {option} takes an ISO date or datetime, got {value!r}", err=True)
        raise typer.Exit(2) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the service's loggers (and uvicorn's errors)."""
    from strongroom.api.middleware import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("strongroom", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def serve_command(
    home: HomeOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    dev: Annotated[
        bool, typer.Option("--dev", help="DEVELOPMENT ONLY: accept calls without credentials (logs a warning)")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the HTTP service (OpenAPI at /docs). Callers authenticate with OIDC tokens or API keys."""
    import uvicorn

    from strongroom.api.app import create_app

    configure_logging(log_level.upper())
    service = ServiceSettings(dev_mode=True) if dev else ServiceSettings()
    if not service.oidc_issuer and not service.dev_mode:
        logging.getLogger("strongroom.api").warning(
            "no OIDC issuer configured (STRONGROOM_OIDC_ISSUER): only API keys are accepted"
        )
    app = create_app(_settings(home), service)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=math.ceil(service.shutdown_grace_s),  # SIGTERM: in-flight requests get this long
    )


@keys_app.command("create")
def keys_create(
    owner: Annotated[str, typer.Option(help="Who answers for the key (a person or a service)")],
    grant: Annotated[
        str,
        typer.Option(
            "--grant",
            help="Comma-separated groups the key carries (entitlements and roles): only groups you hold, "
            "or those STRONGROOM_KEY_GRANTABLE_GROUPS allows",
        ),
    ],
    expires: Annotated[str | None, typer.Option(help="Expiry, ISO date or datetime")] = None,
    days: Annotated[
        int | None,
        typer.Option(min=1, help="Expire after this many days (default STRONGROOM_KEY_DEFAULT_DAYS, 90)"),
    ] = None,
    no_expiry: Annotated[
        bool, typer.Option("--no-expiry", help="Never expire (only where STRONGROOM_KEY_ALLOW_NO_EXPIRY is set)")
    ] = False,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a key (admins). The secret is printed once; only its hash is stored."""
    members = [g for g in grant.split(",") if g.strip()]
    until = _when(expires, "--expires") if expires else None
    with platform_session(home, user, groups, create=True) as (platform, principal):
        key = platform.create_key(principal, owner, members, days=days, expires_at=until, no_expiry=no_expiry)
    expiry = key.expires_at.isoformat() if key.expires_at else None
    if as_json:
        typer.echo(json.dumps({"id": key.id, "owner": key.owner, "groups": sorted(key.groups), "expires_at": expiry,
                               "key": key.secret}))  # fmt: skip
        return
    typer.echo(f"created key {key.id} for {owner} (groups: {', '.join(sorted(key.groups))})")
    typer.echo(f"expires: {expiry or 'never'}")
    typer.echo("key (shown once; store it in a secret manager):", err=True)
    typer.echo(key.secret)


@keys_app.command("list")
def keys_list(
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List keys (admins; never their secrets)."""
    with platform_session(home, user, groups) as (platform, principal):
        keys = platform.list_keys(principal)
    now = datetime.now(UTC)
    rows = [
        {
            "id": k.id,
            "owner": k.owner,
            "groups": sorted(k.groups),
            "created_at": k.created_at.isoformat(),
            "expires_at": k.expires_at.isoformat() if k.expires_at else None,
            "status": "revoked" if k.revoked_at else ("active" if k.active(now) else "expired"),
        }
        for k in keys
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for k, r in zip(keys, rows, strict=True):
        typer.echo(f"{k.id}  {r['status']:<8} {k.owner:<24} {','.join(sorted(k.groups))}  expires {r['expires_at']}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (from keys list)")],
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke a key at once (admins)."""
    with platform_session(home, user, groups) as (platform, principal):
        platform.revoke_key(principal, key_id)
    typer.echo(f"revoked {key_id}")


@audit_app.command("verify")
def audit_verify(
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    anchor: Annotated[
        list[Path] | None, typer.Option("--anchor", help="Another replica's anchor file to check against (repeat)")
    ] = None,
    trust_key: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-key",
            help="A public signing key to trust (base64 of the raw 32-byte Ed25519 key; repeat). Default: the "
            "deployment's own key, when its key file is here; else the keys the anchor files declare.",
        ),
    ] = None,
) -> None:
    """Check the hash chain and its signed checkpoints: exit 0 when intact, 1 with every problem
    (edited, deleted, reordered, truncated, wiped, dropped, rewritten, unanchored, forged) and its record."""
    settings = settings_for(home)
    try:
        check_home(settings, create=False)
    except StoreError as exc:
        raise fail(str(exc)) from exc  # as every read command: a mistyped --home is a usage error
    try:
        trusted = [_public_key(k) for k in trust_key] if trust_key else None
        log = open_audit_log(settings)
        try:
            report = log.verify(anchors=anchor or (), public_keys=trusted)
        finally:
            log.close()
    except StrongroomError as exc:
        raise fail(str(exc), exit_code(exc)) from exc
    anchored = "no anchor" if report.anchored is None else f"signed checkpoints up to record {report.anchored}"
    if as_json:
        problems = [{"seq": p.seq, "kind": p.kind, "message": p.message} for p in report.problems]
        typer.echo(
            json.dumps(
                {
                    "records": report.records,
                    "ok": report.ok,
                    "head": {"seq": report.head.seq, "hash": report.head.hash},
                    "anchored": report.anchored,
                    "checkpoints": report.checkpoints,
                    "key_ids": list(report.key_ids),
                    "problems": problems,
                }
            )
        )
    elif report.ok:
        typer.echo(f"audit log intact: {report.records} records; {anchored} (keys {', '.join(report.key_ids)})")
    else:
        typer.echo(f"audit log TAMPERED: {len(report.problems)} problem(s) in {report.records} records; {anchored}")
        for p in report.problems:
            typer.echo(f"  record {p.seq}: {p.kind}: {p.message}")
    if not report.ok:
        raise typer.Exit(1)


def _public_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise fail(f"--trust-key: {text!r} is not base64") from exc
    if len(raw) != 32:
        raise fail(f"--trust-key: an Ed25519 public key is 32 bytes, not {len(raw)}")
    return raw


@audit_app.command("export")
def audit_export(
    since: Annotated[str | None, typer.Option(help="Only records at or after (ISO date or datetime)")] = None,
    out: Annotated[Path | None, typer.Option(help="Write JSON lines here (default: stdout)")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Write audit records as JSON lines for a SIEM (admins; the export itself is audited)."""
    start = _when(since, "--since") if since else None
    with platform_session(home, user, groups) as (platform, principal):
        n = platform.export_audit(principal, out if out is not None else sys.stdout, start)
    if out is not None:
        typer.echo(f"wrote {n} records to {out}", err=True)
