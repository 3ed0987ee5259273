"""The contract every :class:`~strongroom.llm.routing.RouteSource` passes.

A source's test subclasses :class:`RouteSourceContract` and supplies ``routes``: a factory
that returns the source holding exactly the routes given (each a name and its targets, as
the active version)::

    class TestStatic(RouteSourceContract):
        @pytest.fixture
        def routes(self): return lambda table: StaticRoutes(Route(n, 1, t) for n, t in table.items())
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from strongroom.llm.routing import RouteSource, Target

__all__ = ["RouteSourceContract", "Routes"]

Routes = Callable[[Mapping[str, tuple[Target, ...]]], RouteSource]
TABLE = {
    "chat": (Target("vllm-a", 90), Target("vllm-b", 10), Target("extractive")),
    "embed": (Target("tei", 100),),
}


class RouteSourceContract:
    """What every route source must do."""

    def test_each_route_is_found_by_name_with_its_targets_in_order(self, routes: Routes) -> None:
        source = routes(TABLE)
        for name, targets in TABLE.items():
            route = source.get(name)
            assert route is not None and route.name == name and route.targets == targets
            assert route.version >= 1

    def test_names_lists_every_route_once_sorted(self, routes: Routes) -> None:
        assert routes(TABLE).names() == ["chat", "embed"]

    def test_an_unknown_route_is_none(self, routes: Routes) -> None:
        source = routes(TABLE)
        assert source.get("nope") is None and source.get("") is None and source.get("Chat") is None
