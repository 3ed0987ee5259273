"""Sensitivity-aware routing: context above a deployment's clearance never reaches it.

Scripted OpenAI-compatible servers on loopback record every request they receive; the
gateway routes over them with clearances, MNPI flags, champion/challenger weights and
scripted failures. Attacks: failover after the cleared deployment fails, an uncleared
champion, an unknown sensitivity label, MNPI at a level the deployment is cleared for.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from strongroom.cli.models import app as models_app
from strongroom.errors import NoDeploymentAvailable, NotCleared, RequestRejected
from strongroom.llm.clearance import ContextClearance, context_clearance
from strongroom.llm.deployments import build_deployment, load_deployments
from strongroom.llm.gateway import Gateway
from strongroom.llm.routing import RetryPolicy, Route, StaticRoutes, Target
from strongroom.llm.types import SENSITIVITY_LEVELS, ChatRequest, Sensitivity, cleared
from strongroom.testing.generator_contract import hit
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from strongroom.types import DocumentVersion, frozen_meta

from .helpers import http

ONCE = RetryPolicy(attempts=1)
RESTRICTED_TEXT = "WALL-CROSSED: Project Falcon bids 41.50 per share"


def two(external: FakeOpenAIServer, internal: FakeOpenAIServer, *, weights: tuple[float, float] = (50, 50)) -> Gateway:
    """Route 'chat': an external API cleared public and the bank's own server cleared restricted + MNPI."""
    route = Route("chat", 1, (Target("external", weights[0]), Target("internal", weights[1])))
    return Gateway(
        StaticRoutes([route]),
        [http("external", external), http("internal", internal, clearance="restricted", mnpi=True)],
        retry=ONCE,
    )


def said(server: FakeOpenAIServer) -> str:
    return "\n".join(str(m.get("content")) for body in server.requests for m in body["messages"])


@pytest.fixture
def servers() -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    with FakeOpenAIServer(Reply.stream("external answer")) as ext, FakeOpenAIServer(Reply.stream("internal")) as inn:
        yield ext, inn


async def _ask(gateway: Gateway, request: ChatRequest) -> str:
    try:
        return (await gateway.chat(request)).deployment
    finally:
        await gateway.aclose()


def test_public_context_may_go_to_either(servers: tuple[FakeOpenAIServer, FakeOpenAIServer]) -> None:
    ext, inn = servers
    served = {asyncio.run(_ask(two(ext, inn), ChatRequest.of(f"public question {i}", model="chat", request_id=str(i))))
              for i in range(12)}  # fmt: skip
    assert served == {"external", "internal"}  # the 50/50 split reaches both


def test_restricted_context_goes_only_to_the_cleared_deployment(
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer],
) -> None:
    ext, inn = servers
    for i in range(12):  # the draw lands on external about half the time: it is never tried
        request = ChatRequest.of(RESTRICTED_TEXT, model="chat", request_id=str(i), sensitivity="restricted", mnpi=True)
        assert asyncio.run(_ask(two(ext, inn), request)) == "internal"
    assert ext.requests == [] and len(inn.requests) == 12


def test_no_fallback_to_a_less_cleared_deployment_when_the_cleared_one_fails(
    servers: tuple[FakeOpenAIServer, FakeOpenAIServer],
) -> None:
    ext, inn = servers
    inn.default = Reply.error(503, "internal is down")
    request = ChatRequest.of(RESTRICTED_TEXT, model="chat", sensitivity="restricted", mnpi=True)
    with pytest.raises(NoDeploymentAvailable) as failed:
        asyncio.run(_ask(two(ext, inn, weights=(100, 0)), request))
    assert "not cleared for this context, so not tried: external" in str(failed.value)
    assert len(inn.requests) == 1 and ext.requests == []
    assert RESTRICTED_TEXT not in said(ext)


def test_none_cleared_is_refused_and_nothing_is_sent(servers: tuple[FakeOpenAIServer, FakeOpenAIServer]) -> None:
    ext, inn = servers
    route = Route("chat", 4, (Target("external", 1), Target("internal")))
    gateway = Gateway(StaticRoutes([route]), [http("external", ext), http("internal", inn, clearance="confidential")])
    request = ChatRequest.of(RESTRICTED_TEXT, model="chat", sensitivity="confidential", mnpi=True)
    with pytest.raises(NotCleared) as refused:
        asyncio.run(_ask(gateway, request))
    assert isinstance(refused.value, RequestRejected)
    message = str(refused.value)
    assert "confidential (MNPI)" in message and "route 'chat' v4" in message
    assert "external (cleared public)" in message and "internal (cleared confidential)" in message
    assert ext.requests == [] and inn.requests == []


def test_an_unknown_sensitivity_label_counts_as_the_highest() -> None:
    assert not cleared("confidential", True, "top-secret", False)
    assert cleared("restricted", False, "top-secret", False)
    assert not cleared("no-such-level", True, None, False)  # an unknown clearance clears nothing
    assert not cleared("restricted", False, "public", True)  # MNPI needs the MNPI flag at any level


def labelled(version: DocumentVersion, **meta: str) -> DocumentVersion:
    return dataclasses.replace(version, metadata=frozen_meta({**version.metadata, **meta}))


def test_acl_mnpi_group_makes_the_context_mnpi() -> None:
    version = hit("deal.txt", 1, RESTRICTED_TEXT, 0).version
    walled = dataclasses.replace(version, acl=frozenset({"restricted-mnpi"}))
    assert context_clearance([walled]) == ContextClearance("public", True, (walled.id,))
    assert context_clearance([walled], mnpi_group="wall").mnpi is False
    odd = labelled(version, sensitivity="eyes-only")  # a label from elsewhere: the highest, never lower
    assert context_clearance([odd]).sensitivity == "restricted"


def test_context_clearance_names_the_versions_that_forced_it() -> None:
    public = hit("filing.txt", 1, "Revenue rose.", 0).version
    internal = labelled(hit("note.txt", 1, "Desk view.", 0).version, sensitivity="internal")
    secret = labelled(hit("deal.txt", 1, RESTRICTED_TEXT, 0).version, sensitivity="restricted",
                      mnpi_markers="wall-crossed")  # fmt: skip
    need = context_clearance([public, internal, secret])
    assert need == ContextClearance("restricted", True, (secret.id,))
    assert need.metadata() == {"context_clearance": "restricted (MNPI)", "clearance_forced_by": secret.id}
    assert context_clearance([public]).metadata() == {}
    assert context_clearance([public, internal]).forced_by == (internal.id,)
    request = need.apply(ChatRequest.of("q", model="chat"))
    assert (request.sensitivity, request.mnpi) == ("restricted", True)


# -- the property: random routes, clearances, context and failures over real HTTP ---------------

DEPLOYMENTS = ("d0", "d1", "d2", "d3")
FATES = {"ok": Reply.stream("answer"), "down": Reply.error(503, "down"), "refuses": Reply.error(400, "no")}
EXAMPLES = 300
Scenario = tuple[list[tuple[str, float, Sensitivity, bool, str]], Sensitivity | None, bool, str]
LEAKS: list[str] = []
CASES: list[str] = []
CONTESTED: list[str] = []  # cases whose route holds a deployment not cleared for the context


@pytest.fixture(scope="module")
def fleet() -> Iterator[dict[str, FakeOpenAIServer]]:
    servers = {name: FakeOpenAIServer() for name in DEPLOYMENTS}
    for s in servers.values():
        s.start()
    yield servers
    for s in servers.values():
        s.stop()


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    names = draw(st.lists(st.sampled_from(DEPLOYMENTS), min_size=1, max_size=4, unique=True))
    targets = [
        (name, draw(st.sampled_from([0.0, 1.0, 9.0])), draw(st.sampled_from(SENSITIVITY_LEVELS)),
         draw(st.booleans()), draw(st.sampled_from(sorted(FATES))))
        for name in names
    ]  # fmt: skip
    sensitivity = draw(st.sampled_from([None, *SENSITIVITY_LEVELS]))
    return targets, sensitivity, draw(st.booleans()), draw(st.text("abcdef", min_size=1, max_size=8))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_no_uncleared_deployment_ever_receives_the_context(
    fleet: dict[str, FakeOpenAIServer], scenario: Scenario
) -> None:
    targets, sensitivity, mnpi, request_id = scenario
    marker = f"CONTEXT-{request_id}-{len(LEAKS)}-{sensitivity}-{mnpi}"
    before = {name: len(s.requests) for name, s in fleet.items()}
    deployments = []
    for name, _, clearance, may_mnpi, fate in targets:
        fleet[name].default = FATES[fate]
        deployments.append(http(name, fleet[name], clearance=clearance, mnpi=may_mnpi))
    route = Route("chat", 1, tuple(Target(name, weight) for name, weight, *_ in targets))
    gateway = Gateway(StaticRoutes([route]), deployments, retry=ONCE)
    request = ChatRequest.of(marker, model="chat", request_id=request_id, sensitivity=sensitivity, mnpi=mnpi)
    ok = [name for name, _, c, m, _ in targets if cleared(c, m, sensitivity, mnpi)]
    try:
        served = asyncio.run(_ask(gateway, request))
    except NotCleared:
        assert ok == []
        served = None
    except NoDeploymentAvailable:
        assert ok and all(dict((t[0], t[4]) for t in targets)[name] != "ok" for name in ok)
        served = None
    received = {name for name, s in fleet.items() if any(marker in str(b) for b in s.requests[before[name] :])}
    CASES.append(marker)
    if len(ok) < len(targets):
        CONTESTED.append(marker)
    LEAKS.extend(f"{marker} reached {name}" for name in received - set(ok))
    assert received <= set(ok), f"uncleared deployments received the context: {received - set(ok)}"
    if served is not None:
        assert served in ok
    if any(dict((t[0], t[4]) for t in targets)[name] == "ok" for name in ok):
        assert served is not None  # a cleared deployment that works is always found


def test_property_found_no_leaks() -> None:
    assert len(CASES) >= EXAMPLES and LEAKS == []
    assert len(CONTESTED) >= EXAMPLES // 4  # the property met the danger often, not by luck


# -- configuring clearance: the file and the CLI ----------------------------------------------


def test_the_cli_sets_and_lists_clearance_and_refuses_an_unknown_level(tmp_path: Path) -> None:
    cli = CliRunner()
    base = ["set-deployment", "--backend", "openai-compatible", "--url", "http://gpu1:8000/v1", "--model", "m"]
    done = cli.invoke(models_app, [*base[:1], "bank", *base[1:], "--clearance", "restricted", "--mnpi",
                                   "--home", str(tmp_path)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert cli.invoke(models_app, [*base[:1], "openai", *base[1:], "--home", str(tmp_path)]).exit_code == 0
    specs = load_deployments(tmp_path)
    assert (specs["bank"].clearance, specs["bank"].mnpi) == ("restricted", True)
    assert (specs["openai"].clearance, specs["openai"].mnpi) == ("public", False)  # deny by default
    built = build_deployment("bank", specs["bank"])
    assert (built.clearance, built.mnpi) == ("restricted", True)
    listed = cli.invoke(models_app, ["list", "--home", str(tmp_path)]).output
    assert "restricted + MNPI" in listed and "public" in listed
    bad = cli.invoke(models_app, [*base[:1], "x", *base[1:], "--clearance", "top-secret", "--home", str(tmp_path)])
    assert bad.exit_code == 2 and "x" not in load_deployments(tmp_path)
