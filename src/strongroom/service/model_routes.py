"""Changing what answers: model routes and the deployments they name, through the
application layer (admins only; each change is an audit record naming what it set).

    with Platform.open(Settings(), create=True) as platform:
        route, unknown = set_route(platform, admin, "chat", ["vllm-a:90", "vllm-b:10", "extractive"])
        rollback_route(platform, admin, "chat")          # the version active before, at once
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from strongroom.llm.deployments import DeploymentSpec, deployment_spec, save_deployment, unconfigured
from strongroom.llm.route_config import parse_target
from strongroom.llm.routing import Route
from strongroom.service.platform import Platform
from strongroom.types import Principal

__all__ = ["rollback_route", "set_deployment", "set_route"]


def set_route(
    platform: Platform, principal: Principal, name: str, deployments: Sequence[str], note: str = ""
) -> tuple[Route, list[str]]:
    """A new version of route ``name`` over ``deployments`` (``NAME[:WEIGHT]`` in failover
    order; no weight: fallback only), made active; and those of its deployments that nothing
    configures (a warning: the gateway fails over past them)."""
    targets = [parse_target(d) for d in deployments]
    detail = f"{', '.join(f'{t.deployment}:{t.weight:g}' for t in targets)}; {note}"
    route = platform.change_models(
        principal, "models.set-route", name, lambda: platform.routes.set_route(name, targets, note=note), detail
    )
    return route, unconfigured(platform.settings.home, [t.deployment for t in targets])


def rollback_route(platform: Platform, principal: Principal, name: str, to: int | None = None) -> Route:
    """Re-activate version ``to`` of route ``name`` (default: the one active before)."""
    return platform.change_models(
        principal, "models.rollback", name, lambda: platform.routes.rollback(name, to=to), f"to {to}"
    )


def set_deployment(platform: Platform, principal: Principal, name: str, fields: Mapping[str, object]) -> DeploymentSpec:
    """Add or replace deployment ``name`` (``backend``, ``url``, ``model``, ``api_key_env``
    (the variable that holds the key, never the key), ``path`` ...)."""
    spec = deployment_spec(name, fields)
    detail = f"{spec.backend} {spec.url or spec.path or ''} {spec.model or ''}".strip()
    home = platform.settings.home
    platform.change_models(principal, "models.set-deployment", name, lambda: save_deployment(home, name, spec), detail)
    return spec
