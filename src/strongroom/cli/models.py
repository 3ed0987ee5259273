"""``strongroom models ...``: versioned model routes and the deployments they name.

    strongroom models list
    strongroom models show chat
    strongroom models set-deployment vllm-a --backend openai-compatible \\
        --url http://gpu1:8000/v1 --model meta-llama/Llama-3.1-8B-Instruct --api-key-env VLLM_A_KEY
    strongroom models set-route chat -d vllm-a:90 -d vllm-b:10 -d extractive --note "canary b"
    strongroom models rollback chat

Mounted by ``strongroom.cli`` as ``app.add_typer(models_app, name="models")``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from strongroom.cli.common import GroupsOpt, UserOpt, exit_code
from strongroom.errors import StrongroomError
from strongroom.llm.deployments import BACKENDS, DeploymentSpec, load_deployments, save_deployment
from strongroom.llm.route_config import RouteStore, parse_target
from strongroom.llm.routing import Route

__all__ = ["app"]

app = typer.Typer(
    name="models",
    no_args_is_help=True,
    add_completion=False,
    help="Model gateway: versioned routes (champion/challenger, rollback) and deployments.",
)
out = Console()
err = Console(stderr=True)

#: deployments registered in code rather than in deployments.json
BUILT_IN = ("extractive",)

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data folder (default: $STRONGROOM_HOME, else ~/.strongroom).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


T = TypeVar("T")


def _audited(
    home: Path | None,
    user: str | None,
    groups: str | None,
    action: str,
    target: str,
    change: Callable[[], T],
    detail: str,
) -> T:
    """Make a change to what answers through the application layer (admins; an audit record)."""
    from strongroom.cli.common import platform_session

    with platform_session(home, user, groups, create=True) as (platform, principal):
        return platform.change_models(principal, action, target, change, detail)


def _home(home: Path | None) -> Path:
    if home is not None:
        return home.expanduser()
    return Path(os.environ.get("STRONGROOM_HOME") or "~/.strongroom").expanduser()


def _fail(exc: StrongroomError) -> typer.Exit:
    """An error and the CLI's exit status for it (2: bad input or settings; 1: refused)."""
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(exit_code(exc))


def _targets(route: Route) -> str:
    total = sum(t.weight for t in route.targets)
    parts = []
    for t in route.targets:
        share = f"{100 * t.weight / total:.0f}%" if t.weight and total else "fallback"
        parts.append(f"{t.deployment} ({share})")
    return ", ".join(parts)


def _route_json(route: Route) -> dict[str, object]:
    return {
        "name": route.name,
        "version": route.version,
        "note": route.note,
        "targets": [{"deployment": t.deployment, "weight": t.weight} for t in route.targets],
    }


@app.command("list")
def list_routes(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List routes (active version and split) and configured deployments."""
    root = _home(home)
    try:
        store = RouteStore(root)
        routes = [r for r in (store.get(n) for n in store.names()) if r is not None]
        deployments = load_deployments(root)
    except StrongroomError as exc:
        raise _fail(exc) from exc
    if as_json:
        data = {
            "routes": [_route_json(r) for r in routes],
            "deployments": {n: s.model_dump(mode="json", exclude_defaults=True) for n, s in deployments.items()},
        }
        out.print_json(json.dumps(data))
        return
    table = Table(title=f"routes in {store.path}")
    for col in ("route", "active", "deployments (failover order)", "note"):
        table.add_column(col)
    for r in routes:
        table.add_row(r.name, f"v{r.version}", _targets(r), r.note)
    out.print(table if routes else "no routes yet: create one with `strongroom models set-route`")
    if deployments:
        dt = Table(title="deployments")
        for col in ("deployment", "backend", "where", "model", "api key from"):
            dt.add_column(col)
        for name, s in sorted(deployments.items()):
            where = s.url if s.backend == "openai-compatible" else s.path
            dt.add_row(name, s.backend, where or "", s.model or "", f"${s.api_key_env}" if s.api_key_env else "")
        out.print(dt)


@app.command()
def show(name: str, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Show every version of route NAME and its activation history."""
    try:
        store = RouteStore(_home(home))
        active = store.get(name)
        versions = store.versions(name)
        history = store.history(name)
    except StrongroomError as exc:
        raise _fail(exc) from exc
    assert active is not None
    if as_json:
        data = {
            "name": name,
            "active": active.version,
            "versions": [_route_json(v) for v in versions],
            "history": [h.model_dump(mode="json") for h in history],
        }
        out.print_json(json.dumps(data))
        return
    table = Table(title=f"route {name}: v{active.version} active")
    for col in ("", "version", "deployments (failover order)", "note"):
        table.add_column(col)
    for v in versions:
        table.add_row("*" if v.version == active.version else "", f"v{v.version}", _targets(v), v.note)
    out.print(table)
    for h in history:
        out.print(f"  {h.at:%Y-%m-%d %H:%M:%S}Z  {h.action:<9} -> v{h.version}", highlight=False)


@app.command("set-route")
def set_route(
    name: str,
    deployment: Annotated[
        list[str],
        typer.Option("--deployment", "-d", help="NAME[:WEIGHT], repeat in failover order; no weight = fallback only."),
    ],
    note: Annotated[str, typer.Option("--note", help="Why this version exists.")] = "",
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Create a new version of route NAME and make it active (admins; audited)."""
    root = _home(home)
    targets = [parse_target(d) for d in deployment]
    try:
        known = set(load_deployments(root)) | set(BUILT_IN)
        detail = f"{', '.join(f'{t.deployment}:{t.weight:g}' for t in targets)}; {note}"
        route = _audited(home, user, groups, "models.set-route", name, lambda: RouteStore(root).set_route(
            name, targets, note=note), detail)  # fmt: skip
    except StrongroomError as exc:
        raise _fail(exc) from exc
    out.print(f"route {name}: v{route.version} active: {_targets(route)}", highlight=False)
    for t in targets:
        if t.deployment not in known:
            err.print(
                f"warning: deployment {t.deployment!r} is not configured; add it with "
                "`strongroom models set-deployment` or register it in code",
                highlight=False,
            )


@app.command()
def rollback(
    name: str,
    to: Annotated[int | None, typer.Option("--to", min=1, help="Version to activate (default: the previous).")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Re-activate the previous version of route NAME (instant; a second rollback undoes it; admins; audited)."""
    try:
        root = _home(home)
        route = _audited(
            home, user, groups, "models.rollback", name, lambda: RouteStore(root).rollback(name, to=to), f"to {to}"
        )
    except StrongroomError as exc:
        raise _fail(exc) from exc
    out.print(f"route {name}: rolled back to v{route.version}: {_targets(route)}", highlight=False)


@app.command("set-deployment")
def set_deployment(
    name: str,
    backend: Annotated[str, typer.Option("--backend", help=f"One of: {', '.join(BACKENDS)}.")],
    url: Annotated[str | None, typer.Option("--url", help="OpenAI-compatible base URL, ending in /v1.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model id the server expects.")] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", help="Environment variable holding the API key (never the key)."),
    ] = None,
    path: Annotated[str | None, typer.Option("--path", help="Local transformers model directory.")] = None,
    max_concurrency: Annotated[int | None, typer.Option("--max-concurrency", min=1)] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Add or replace deployment NAME (the routes refer to it by name; admins; audited)."""
    try:
        spec = DeploymentSpec.model_validate(
            {"backend": backend, "url": url, "model": model, "api_key_env": api_key_env,
             "path": path, "max_concurrency": max_concurrency}
        )  # fmt: skip
    except ValueError as exc:
        err.print(f"[bold red]error:[/] invalid deployment {name!r}: {exc}", highlight=False)
        raise typer.Exit(2) from exc
    try:
        root = _home(home)
        detail = f"{backend} {url or path or ''} {model or ''}".strip()
        _audited(home, user, groups, "models.set-deployment", name, lambda: save_deployment(root, name, spec), detail)
    except StrongroomError as exc:
        raise _fail(exc) from exc
    out.print(f"deployment {name}: {backend} saved", highlight=False)
