"""Model routes and the deployments they name: read as records, and changed through the
application layer (admins only; each change is an audit record naming what it set).

    spec = deployment("vllm-a", {"backend": "openai-compatible", "url": URL, "model": "llama"})
    with Platform.open(Settings(), create=True) as platform:
        set_deployment(platform, admin, "vllm-a", spec)
        route, unknown = set_route(platform, admin, "chat", ["vllm-a:90", "vllm-b:10", "extractive"])
        rollback_route(platform, admin, "chat")          # the version active before, at once
    route_history(Settings(), "chat").active.version
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from strongroom.config import Settings
from strongroom.errors import ConfigError
from strongroom.llm.deployments import DeploymentSpec, deployment_spec, load_deployments, save_deployment, unconfigured
from strongroom.llm.route_config import NAME_PATTERN, Activation, RouteStore, parse_target
from strongroom.llm.routing import Route
from strongroom.service.platform import Platform
from strongroom.types import Principal

__all__ = [
    "ModelsConfig",
    "RouteHistory",
    "deployment",
    "models_config",
    "rollback_route",
    "route_history",
    "set_deployment",
    "set_route",
]


@dataclass(frozen=True)
class ModelsConfig:
    """What answers under a home: the active version of every route (by name) and every
    configured deployment."""

    routes: list[Route]
    deployments: dict[str, DeploymentSpec]

    def as_dict(self) -> dict[str, object]:
        specs = {n: s.model_dump(mode="json", exclude_defaults=True) for n, s in self.deployments.items()}
        return {"routes": [r.as_dict() for r in self.routes], "deployments": specs}


@dataclass(frozen=True)
class RouteHistory:
    """Every version of one route (oldest first), the active one, and every activation."""

    active: Route
    versions: list[Route]
    history: list[Activation]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.active.name,
            "active": self.active.version,
            "versions": [v.as_dict() for v in self.versions],
            "history": [h.model_dump(mode="json") for h in self.history],
        }


def models_config(settings: Settings) -> ModelsConfig:
    """The routes and deployments configured under ``settings.home`` (none yet: both empty)."""
    home = settings.home
    return ModelsConfig(RouteStore(home).routes(), dict(sorted(load_deployments(home).items())))


def route_history(settings: Settings, name: str) -> RouteHistory:
    """Route ``name`` under ``settings.home``; no such route is a :class:`ConfigError` naming those there are."""
    store = RouteStore(settings.home)
    versions, history, active = store.versions(name), store.history(name), store.get(name)
    if active is None:  # the routes file changed between the reads
        raise ConfigError(f"route {name!r} changed while it was read; run the command again")
    return RouteHistory(active, versions, history)


def set_route(
    platform: Platform, principal: Principal, name: str, deployments: Sequence[str], note: str = ""
) -> tuple[Route, list[str]]:
    """A new version of route ``name`` over ``deployments`` (``NAME[:WEIGHT]`` in failover
    order; no weight: fallback only), made active; and those of its deployments that nothing
    configures (a warning: the gateway fails over past them)."""
    targets = [parse_target(d) for d in deployments]
    if platform.settings.four_eyes:  # what answers changes only once a second person approves
        change = {"name": name, "deployments": [f"{t.deployment}:{t.weight:g}" for t in targets], "note": note}
        platform.proposed(principal, "models.set-route", change, note)
    detail = f"{', '.join(f'{t.deployment}:{t.weight:g}' for t in targets)}; {note}"
    route = platform.change_models(
        principal, "models.set-route", name, lambda: platform.routes.set_route(name, targets, note=note), detail
    )
    return route, unconfigured(platform.settings.home, [t.deployment for t in targets])


def rollback_route(platform: Platform, principal: Principal, name: str, to: int | None = None) -> Route:
    """Re-activate version ``to`` of route ``name`` (default: the one active before)."""
    if platform.settings.four_eyes:
        platform.proposed(principal, "models.rollback", {"name": name, "to": to}, "")
    return platform.change_models(
        principal, "models.rollback", name, lambda: platform.routes.rollback(name, to=to), f"to {to}"
    )


def deployment(name: str, fields: Mapping[str, object]) -> DeploymentSpec:
    """Deployment ``name`` as given (``backend``, ``url``, ``model``, ``api_key_env`` (the
    variable that holds the key, never the key), ``path`` ...), validated before anything is
    opened or written: a bad name or spec is a :class:`ConfigError`."""
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(f"invalid deployment name {name!r}: it must match {NAME_PATTERN}")
    return deployment_spec(name, fields)


def set_deployment(platform: Platform, principal: Principal, name: str, spec: DeploymentSpec) -> DeploymentSpec:
    """Add or replace deployment ``name`` (see :func:`deployment`)."""
    if platform.settings.four_eyes:
        fields = spec.model_dump(mode="json", exclude_defaults=True)
        platform.proposed(principal, "models.set-deployment", {"name": name, "spec": fields}, "")
    detail = f"{spec.backend} {spec.url or spec.path or ''} {spec.model or ''}".strip()
    home = platform.settings.home
    platform.change_models(principal, "models.set-deployment", name, lambda: save_deployment(home, name, spec), detail)
    return spec
