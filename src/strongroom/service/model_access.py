"""Who may have answers from which model route, and how a change to what answers is made.

A gateway route answers a principal only where its groups meet the route's entry in
``route_groups`` (deny by default; a route not granted is as absent as one that does not
exist). A change to a route or deployment (``models.set-route``, ``models.rollback``,
``models.set-deployment``) is for admins only, audited, and with four-eyes on made only
through an approved proposal: :func:`model_appliers` is how such a proposal is applied.
:class:`~strongroom.service.platform.Platform` re-exports the route checks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from strongroom.config import Settings
from strongroom.errors import ConfigError
from strongroom.llm.deployments import deployment_spec, save_deployment
from strongroom.llm.route_config import NAME_PATTERN, RouteStore, parse_target
from strongroom.rag import EXTRACTIVE_VERSION
from strongroom.service.approvals import Applier
from strongroom.service.operations import Operations, Outcome
from strongroom.service.proposal_store import canonical
from strongroom.service.requests import EXTRACTIVE_MODEL, RouteView
from strongroom.types import Principal

__all__ = ["model_appliers", "models_change", "models_for", "route_allowed", "route_usable"]

T = TypeVar("T")


def route_allowed(settings: Settings, principal: Principal, route: str) -> bool:
    """Whether ``principal`` may have answers written by gateway route ``route``: its groups
    meet the route's entry in ``route_groups`` (or the ``*`` entry). Deny by default."""
    granted = settings.route_groups.get(route, settings.route_groups.get("*", []))
    return not principal.groups.isdisjoint(granted)


def route_usable(settings: Settings, routes: RouteStore, principal: Principal, route: str) -> bool:
    """Whether route ``route`` exists and ``principal`` is granted it (the two look the same
    from outside: a route not granted is as absent as one that does not exist)."""
    return route_allowed(settings, principal, route) and routes.get(route) is not None


def models_for(settings: Settings, principal: Principal, routes: RouteStore) -> list[RouteView]:
    """The extractive generator, then each gateway route ``principal`` is granted."""
    out = [RouteView(EXTRACTIVE_MODEL, f"retrieval + {EXTRACTIVE_VERSION} generator, with citations (no model)")]
    for name in routes.names():
        route = routes.get(name)
        if route is not None and route_allowed(settings, principal, name):
            out.append(RouteView(name, f"retrieval + gateway route {name} v{route.version}", route.version))
    return out


def models_change(
    ops: Operations,
    principal: Principal,
    action: str,
    target: str,
    change: Callable[[], T],
    detail: str,
    *,
    approved: bool,
) -> Outcome[T]:
    """Run ``change`` as ``action`` (admins, audited); with four-eyes on, only ``approved``."""

    def run() -> T:
        ops.four_eyes(approved)
        return change()

    return ops.audited(principal, action, run, target=target, detail=detail)


def model_appliers(ops: Operations, routes: RouteStore, home: Path) -> dict[str, Applier]:
    """How an approved ``models.*`` proposal is applied (as its maker, re-validated)."""

    def set_route(who: Principal, c: Mapping[str, Any]) -> Outcome[Any]:
        def run() -> object:
            targets = [parse_target(str(d)) for d in c["deployments"]]
            return routes.set_route(str(c["name"]), targets, note=str(c.get("note", "")))

        return models_change(ops, who, "models.set-route", str(c["name"]), run, canonical(c), approved=True)

    def rollback(who: Principal, c: Mapping[str, Any]) -> Outcome[Any]:
        to = c.get("to")
        run = functools.partial(routes.rollback, str(c["name"]), to=None if to is None else int(to))
        return models_change(ops, who, "models.rollback", str(c["name"]), run, f"to {to}", approved=True)

    def set_deployment(who: Principal, c: Mapping[str, Any]) -> Outcome[Any]:
        name = str(c["name"])

        def run() -> object:
            if not re.match(NAME_PATTERN, name):
                raise ConfigError(f"invalid deployment name {name!r}: it must match {NAME_PATTERN}")
            save_deployment(home, name, deployment_spec(name, dict(c["spec"])))
            return name

        return models_change(ops, who, "models.set-deployment", name, run, canonical(c), approved=True)

    return {"models.set-route": set_route, "models.rollback": rollback, "models.set-deployment": set_deployment}
