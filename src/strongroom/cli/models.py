"""``strongroom models list|show|set-route|rollback|set-deployment``: versioned model routes
and the deployments they name (:mod:`strongroom.llm.route_config`, :mod:`strongroom.llm.deployments`).
Changes go through :mod:`strongroom.service.model_routes` (admins; audited). Errors exit 2 for
bad input or settings, 1 for a refusal, as every command's.

    strongroom models set-route chat -d vllm-a:90 -d vllm-b:10 -d extractive --note "canary b"
"""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom.cli.approvals import proposing
from strongroom.cli.common import GroupsOpt, HomeOpt, JsonOpt, UserOpt, emit, err, exits_on_error, say, settings_for
from strongroom.llm.deployments import BACKENDS
from strongroom.llm.routing import Route
from strongroom.service import model_routes

__all__ = ["app"]

app = typer.Typer(
    name="models",
    no_args_is_help=True,
    add_completion=False,
    help="Model gateway: versioned routes (champion/challenger, rollback) and deployments.",
)


def _said(route: Route, what: str, as_json: bool) -> None:
    if as_json:
        emit(route.as_dict(), True)
    else:
        say(f"route {route.name}: {what}: {route.split()}")


@app.command("list")
def list_routes(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List routes (active version and split) and configured deployments."""
    with exits_on_error():
        found = model_routes.models_config(settings_for(home))
    if as_json:
        return emit(found.as_dict(), True)
    emit([{"route": r.name, "active": f"v{r.version}", "deployments (failover order)": r.split(), "note": r.note}
          for r in found.routes], False, title="routes",
         empty="no routes yet: create one with `strongroom models set-route`")  # fmt: skip
    emit([{"deployment": n, "backend": s.backend, "where": s.url or s.path, "model": s.model,
           "api key from": f"${s.api_key_env}" if s.api_key_env else "",
           "cleared for": s.clearance + (" + MNPI" if s.mnpi else "")}
          for n, s in found.deployments.items()], False, title="deployments")  # fmt: skip


@app.command()
def show(name: str, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Show every version of route NAME and its activation history."""
    with exits_on_error():
        found = model_routes.route_history(settings_for(home), name)
    if as_json:
        return emit(found.as_dict(), True)
    active = found.active.version
    emit([{"active": "*" if v.version == active else "", "version": f"v{v.version}",
           "deployments (failover order)": v.split(), "note": v.note} for v in found.versions], False,
         title=f"route {name}: v{active} active")  # fmt: skip
    emit([{"at": f"{h.at:%Y-%m-%d %H:%M:%S}Z", "action": h.action, "version": f"v{h.version}"} for h in found.history],
         False, title="history")  # fmt: skip


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
    as_json: JsonOpt = False,
) -> None:
    """Create a new version of route NAME and make it active (admins; audited)."""
    made = proposing(home, user, groups, as_json, lambda p, who: model_routes.set_route(p, who, name, deployment, note),
                     create=True)  # fmt: skip
    if made is None:
        return
    route, missing = made
    _said(route, f"v{route.version} active", as_json)
    for unknown in missing:
        say(f"warning: deployment {unknown!r} is not configured; add it with `strongroom models set-deployment` "
            "or register it in code", err)  # fmt: skip


@app.command()
def rollback(
    name: str,
    to: Annotated[int | None, typer.Option("--to", min=1, help="Version to activate (default: the previous).")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-activate the previous version of route NAME (instant; a second rollback undoes it; admins; audited)."""
    route = proposing(home, user, groups, as_json, lambda p, who: model_routes.rollback_route(p, who, name, to),
                      create=True)  # fmt: skip
    if route is not None:
        _said(route, f"rolled back to v{route.version}", as_json)


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
    clearance: Annotated[
        str,
        typer.Option(
            "--clearance",
            help="Highest sensitivity of context it may see: public (default), internal, confidential or restricted.",
        ),
    ] = "public",
    mnpi: Annotated[bool, typer.Option("--mnpi", help="It may see material non-public information.")] = False,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or replace deployment NAME (the routes refer to it by name; admins; audited)."""
    fields = {"backend": backend, "url": url, "model": model, "api_key_env": api_key_env, "path": path,
              "max_concurrency": max_concurrency, "clearance": clearance, "mnpi": mnpi}  # fmt: skip
    with exits_on_error():  # a bad spec is refused before a new home is made
        spec = model_routes.deployment(name, fields)
    saved = proposing(home, user, groups, as_json, lambda p, who: model_routes.set_deployment(p, who, name, spec),
                      create=True)  # fmt: skip
    if saved is None:
        return
    if as_json:
        emit({"name": name, **spec.model_dump(mode="json", exclude_defaults=True)}, True)
    else:
        say(f"deployment {name}: {backend} saved")
