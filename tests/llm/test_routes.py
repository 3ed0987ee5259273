"""Versioned routes on disk: append-only versions, instant rollback, validation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from strongroom.errors import ConfigError
from strongroom.llm.gateway import Gateway
from strongroom.llm.route_config import RouteStore, parse_target
from strongroom.llm.routing import Target
from strongroom.llm.types import ChatResult
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.llm.helpers import FAST_RETRY, ask, function, http


def test_set_route_appends_versions_and_activates_the_newest(tmp_path: Path) -> None:
    store = RouteStore(tmp_path)
    assert store.get("chat") is None and store.names() == []
    v1 = store.set_route("chat", [Target("a", 100)], note="first")
    v2 = store.set_route("chat", [Target("a", 90), Target("b", 10), Target("extractive")], note="canary b")
    assert (v1.version, v2.version) == (1, 2)
    assert store.get("chat") == v2
    assert [v.version for v in store.versions("chat")] == [1, 2]
    assert store.versions("chat")[0] == v1  # older versions are kept as they were
    assert (tmp_path / "models" / "routes.json").exists()


def test_rollback_is_instant_and_a_second_rollback_undoes_it(tmp_path: Path) -> None:
    store = RouteStore(tmp_path)
    for targets in ([Target("a", 1)], [Target("b", 1)], [Target("c", 1)]):
        store.set_route("chat", targets)
    assert store.rollback("chat").version == 2
    assert store.get("chat").version == 2  # type: ignore[union-attr]
    assert store.rollback("chat").version == 3
    assert store.rollback("chat", to=1).version == 1
    assert [(h.action, h.version) for h in store.history("chat")] == [
        ("set-route", 1), ("set-route", 2), ("set-route", 3),
        ("rollback", 2), ("rollback", 3), ("rollback", 1),
    ]  # fmt: skip
    assert len(store.versions("chat")) == 3  # rollback never rewrites or adds versions


def test_rollback_errors_say_what_to_do(tmp_path: Path) -> None:
    store = RouteStore(tmp_path)
    with pytest.raises(ConfigError, match="no route named 'chat'"):
        store.rollback("chat")
    store.set_route("chat", [Target("a", 1)])
    with pytest.raises(ConfigError, match="nothing to roll back to"):
        store.rollback("chat")
    with pytest.raises(ConfigError, match="no version 7"):
        store.rollback("chat", to=7)


@pytest.mark.parametrize(
    ("name", "targets", "message"),
    [
        ("chat", [], "at least one"),
        ("chat", [Target("a"), Target("a")], "twice"),
        ("chat", [Target("a", -5)], ">= 0"),
        ("bad name!", [Target("a")], "must match"),
        ("chat", [Target("bad deployment")], "deployment: String should match pattern"),
    ],
)
def test_invalid_routes_are_refused(tmp_path: Path, name: str, targets: list[Target], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RouteStore(tmp_path).set_route(name, targets)
    assert not (tmp_path / "models" / "routes.json").exists()


def test_a_hand_broken_file_is_reported_with_where(tmp_path: Path) -> None:
    store = RouteStore(tmp_path)
    store.set_route("chat", [Target("a", 1)])
    data = json.loads(store.path.read_text())
    data["routes"]["chat"]["active"] = 9
    store.path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"not a valid routes file: routes\.chat: .*active version 9"):
        RouteStore(tmp_path).get("chat")
    store.path.write_text("{not json")
    with pytest.raises(ConfigError, match="restore a backup"):
        RouteStore(tmp_path).get("chat")


def test_parse_target() -> None:
    assert parse_target("vllm-a:90") == Target("vllm-a", 90)
    assert parse_target("extractive") == Target("extractive", 0)
    assert parse_target("ollama:llama3") == Target("ollama:llama3", 0)  # a colon in a name
    assert parse_target("ollama:llama3:25") == Target("ollama:llama3", 25)


def test_a_running_gateway_follows_set_route_and_rollback(
    tmp_path: Path, make_server: Callable[..., FakeOpenAIServer]
) -> None:
    old, new = make_server(Reply.stream("old model")), make_server(Reply.stream("new model"))
    store = RouteStore(tmp_path)
    store.set_route("chat", [Target("old", 1)], note="champion")
    gw = Gateway(RouteStore(tmp_path), [http("old", old), http("new", new)], retry=FAST_RETRY)

    async def main() -> list[ChatResult]:
        results = [await gw.chat(ask())]
        store.set_route("chat", [Target("new", 1), Target("old")], note="promote new")
        results.append(await gw.chat(ask()))
        store.rollback("chat")
        results.append(await gw.chat(ask()))
        await gw.aclose()
        return results

    results = asyncio.run(main())
    assert [(r.route_version, r.deployment, r.text) for r in results] == [
        (1, "old", "old model"),
        (2, "new", "new model"),
        (1, "old", "old model"),  # rolled back: the very next call, and it says v1
    ]


def test_function_deployment_as_last_resort_in_a_stored_route(tmp_path: Path) -> None:
    RouteStore(tmp_path).set_route("chat", [Target("missing", 1), Target("extractive")])
    gw = Gateway(RouteStore(tmp_path), [function("extractive", "Revenue grew 4% [q3.pdf p.2]")])
    result = asyncio.run(gw.chat(ask()))
    assert (result.deployment, result.text) == ("extractive", "Revenue grew 4% [q3.pdf p.2]")
