"""Both route sources pass the route source contract: routes fixed in code, and the
versioned routes file an operator edits with ``strongroom models``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from strongroom.llm.route_config import RouteStore
from strongroom.llm.routing import Route, RouteSource, StaticRoutes, Target
from strongroom.testing.route_contract import Routes, RouteSourceContract


class TestStaticRoutes(RouteSourceContract):
    @pytest.fixture
    def routes(self) -> Routes:
        return lambda table: StaticRoutes(Route(name, 1, targets) for name, targets in table.items())


class TestRouteStore(RouteSourceContract):
    @pytest.fixture
    def routes(self, tmp_path: Path) -> Routes:
        def make(table: Mapping[str, tuple[Target, ...]]) -> RouteSource:
            store = RouteStore(tmp_path / "models")
            for name, targets in table.items():
                store.set_route(name, (Target("old", 100),))  # an earlier version, then the active one
                store.set_route(name, targets)
            return RouteStore(tmp_path / "models")  # another process reading the file

        return make
