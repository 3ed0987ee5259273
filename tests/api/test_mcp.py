"""The agent's tools over MCP, driven by the official ``mcp`` client over both transports:
streamable HTTP at ``/mcp`` of a real service (uvicorn on a free port, real HTTP) and stdio
(``python -m strongroom.cli mcp`` as a real subprocess over a real home).

The home holds a public and a research document, and a public and a research dataset. Every
call runs as the caller (an API key's owner, an OIDC token's subject, the CLI's principal),
is audited by the toolbox, and sees only what that caller may read at the caller's clocks.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from strongroom.api import create_app
from strongroom.api.mcp import HEADER_AS_OF, HEADER_KNOWN_AT
from strongroom.audit import open_audit_log
from strongroom.audit.log import records
from strongroom.config import Settings
from strongroom.service import IngestRequest, Platform
from strongroom.service.datasets import DatasetLoad
from strongroom.service.tool_args import TOOL_SPECS
from tests.api.conftest import ROLE_GROUPS, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

pytestmark = pytest.mark.integration

READER = ["public", "readers"]  # the reader role comes from the group "readers" (conftest's ROLE_GROUPS)
RESEARCH = ["public", "research", "readers"]
PUBLISHED = "2024-01-02"
DOCS = {"alphacorp": frozenset({"public"}), "zephyr": frozenset({"research"})}
PRICES = "date,ticker,close\n2024-01-02,AAA,10.5\n2024-01-03,AAA,11.25\n2024-01-04,AAA,12.0\n"
POSITIONS = "date,book,notional\n2024-01-02,rates,1000000\n2024-01-03,rates,1250000\n"
PRICES_SQL = "SELECT date, close FROM prices ORDER BY date"


@dataclass
class World:
    url: str
    provider: Provider
    home: Path  # the HTTP service's
    stdio_home: Path  # a copy for `strongroom mcp` (an embedded store has one process at a time)
    keys: dict[str, str]  # owner -> secret


def _doc(marker: str) -> str:
    return f"{marker.title()} quarterly report\n\nThe {marker} revenue rose to 42 million dollars in the quarter.\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mcp")
    home, files = root / "home", root / "files"
    files.mkdir()
    settings = Settings(home=home, embedder="hash")
    with Platform.open(settings) as platform:
        loader = platform.principal("loader", ["public", "research", "readers", "admins"])  # the CLI's roles: all
        for marker, acl in DOCS.items():
            (files / f"{marker}.txt").write_text(_doc(marker))
            request = IngestRequest((files / f"{marker}.txt",), acl, PUBLISHED, source="corpus")
            assert platform.ingest(loader, request).ok
        for name, text, acl in (("prices", PRICES, "public"), ("positions", POSITIONS, "research")):
            (files / f"{name}.csv").write_text(text)
            platform.load_dataset(loader, DatasetLoad(files / f"{name}.csv", name, frozenset({acl}), "date"))
        grants = {"desk-app": READER, "research-app": RESEARCH, "no-role-app": ["public"], "audit-app": ["admins"]}
        keys = {owner: platform.create_key(loader, owner, groups, days=30).secret for owner, groups in grants.items()}
    stdio_home = root / "stdio-home"
    shutil.copytree(home, stdio_home)
    app = create_app(settings, service_settings(provider))
    with live_server(app) as url:
        yield World(url, provider, home, stdio_home, keys)


# -- the official client ---------------------------------------------------------------------


@asynccontextmanager
async def over_http(world: World, secret: str | None, **headers: str) -> AsyncIterator[Client]:
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{world.url}/mcp", http_client=http)) as client,
    ):
        yield client


def _stdio_env(home: Path, **extra: str) -> dict[str, str]:
    return {"STRONGROOM_HOME": str(home), "STRONGROOM_EMBEDDER": "hash", "HF_HUB_OFFLINE": "1", **extra}


@asynccontextmanager
async def over_stdio(world: World, *args: str, errlog: Path, **env: str) -> AsyncIterator[Client]:
    command = [*args, "--home", str(world.stdio_home)]
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "strongroom.cli", "mcp", *command], env=_stdio_env(world.stdio_home, **env)
    )
    with errlog.open("a") as log:
        async with Client(stdio_client(params, errlog=log)) as client:
            yield client


def result_of(result: CallToolResult) -> dict[str, Any]:
    """A successful call's JSON: the text content and the structured content say the same."""
    assert not result.is_error, result.content
    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    data: dict[str, Any] = json.loads(result.content[0].text)
    assert data == result.structured_content
    return data


def refusal_of(result: CallToolResult) -> str:
    assert result.is_error
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


def audit_of(home: Path) -> list[dict[str, Any]]:
    log = open_audit_log(Settings(home=home, embedder="hash"))
    try:
        return records(log)
    finally:
        log.close()


def _sources(data: dict[str, Any]) -> set[str]:
    return {p["source"].rsplit("/", 1)[-1] for p in data["content"]["passages"]}


# -- streamable HTTP ---------------------------------------------------------------------------


def test_http_lists_the_tools_with_their_schemas(world: World) -> None:
    async def scenario() -> None:
        async with over_http(world, world.keys["desk-app"]) as client:
            listed = (await client.list_tools()).tools
        assert [t.name for t in listed] == [s.name for s in TOOL_SPECS]
        assert {t.name: t.input_schema for t in listed} == {s.name: s.parameters for s in TOOL_SPECS}
        assert all(t.description and t.annotations and t.annotations.read_only_hint for t in listed)
        search = next(t for t in listed if t.name == "search_documents").input_schema
        assert "query" in search["required"] and search["properties"]["k"]["maximum"] == 20

    asyncio.run(scenario())


def test_http_search_runs_as_the_key_owner_and_sees_only_their_documents(world: World) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        args = {"query": "revenue quarterly report", "k": 5}
        async with over_http(world, world.keys["desk-app"]) as desk, over_http(world, world.keys["research-app"]) as rs:
            return result_of(await desk.call_tool("search_documents", args)), result_of(
                await rs.call_tool("search_documents", args)
            )

    desk, research = asyncio.run(scenario())
    assert _sources(desk) == {"alphacorp.txt"}
    assert _sources(research) == {"alphacorp.txt", "zephyr.txt"}
    assert desk["evidence"] and {e["kind"] for e in desk["evidence"]} == {"page"}
    assert all("zephyr" not in e["text"] for e in desk["evidence"])
    mine = [r for r in audit_of(world.home) if r["action"] == "agent.tool.search_documents"]
    assert {r["principal"] for r in mine} >= {"key:desk-app", "key:research-app"}
    assert all(r["auth"].startswith("api-key:") for r in mine)
    assert all(r["request_id"] and r["target"] == f"mcp-{r['request_id']}" for r in mine)  # one run per request


def test_http_query_data_as_a_reader_and_refused_for_an_outsider(world: World) -> None:
    async def scenario() -> tuple[dict[str, Any], str, str, dict[str, Any]]:
        async with over_http(world, world.keys["desk-app"]) as desk, over_http(world, world.keys["research-app"]) as rs:
            prices = result_of(await desk.call_tool("query_data", {"sql": PRICES_SQL}))
            theirs = refusal_of(await desk.call_tool("query_data", {"sql": "SELECT * FROM positions"}))
            nobody = refusal_of(await desk.call_tool("query_data", {"sql": "SELECT * FROM nosuch"}))
            allowed = result_of(await rs.call_tool("query_data", {"sql": "SELECT sum(notional) AS n FROM positions"}))
            return prices, theirs, nobody, allowed

    prices, theirs, nobody, allowed = asyncio.run(scenario())
    assert [row[1] for row in prices["content"]["rows"]] == [10.5, 11.25, 12.0]
    (evidence,) = prices["evidence"]
    assert evidence["kind"] == "query" and evidence["ref"]["datasets"][0][0] == "prices"
    # a dataset that is not theirs reads exactly as one that does not exist
    assert theirs.replace("positions", "X") == nobody.replace("nosuch", "X")
    assert allowed["content"]["rows"] == [[2250000]]


def test_http_clocks_come_from_the_request_headers(world: World) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        key = world.keys["research-app"]
        async with over_http(world, key, **{HEADER_AS_OF: "2024-01-03"}) as client:
            early = result_of(await client.call_tool("query_data", {"sql": PRICES_SQL}))
        async with over_http(world, key, **{HEADER_AS_OF: "2024-01-01"}) as client:
            before = result_of(await client.call_tool("search_documents", {"query": "revenue"}))
        async with over_http(world, key, **{HEADER_AS_OF: "2999-01-01", HEADER_KNOWN_AT: "2999-01-01"}) as client:
            later = result_of(await client.call_tool("query_data", {"sql": PRICES_SQL}))
        return early, before, later

    early, before, later = asyncio.run(scenario())
    assert later["content"]["as_of"] < "2999" and later["content"]["known_at"] < "2999"  # never past now
    assert [row[1] for row in early["content"]["rows"]] == [10.5, 11.25]  # no row after as_of
    assert early["content"]["as_of"].startswith("2024-01-03T23:59:59")
    assert before["content"]["passages"] == []  # published on 2024-01-02: not yet knowable


def test_http_known_at_before_the_loads_sees_no_dataset(world: World) -> None:
    async def scenario() -> tuple[dict[str, Any], str]:
        async with over_http(world, world.keys["research-app"], **{HEADER_KNOWN_AT: "2020-01-01"}) as client:
            listed = result_of(await client.call_tool("list_datasets", {}))
            refused = refusal_of(await client.call_tool("query_data", {"sql": PRICES_SQL}))
            return listed, refused

    listed, refused = asyncio.run(scenario())
    assert listed["content"]["datasets"] == []
    assert "prices" in refused


def test_http_a_bad_clock_header_is_refused_before_any_tool(world: World) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Authorization": f"Bearer {world.keys['desk-app']}", HEADER_AS_OF: "last tuesday"}
    r = httpx.post(f"{world.url}/mcp", json=body, headers=_mcp_headers(headers), timeout=30)
    assert r.status_code == 422
    assert HEADER_AS_OF in r.json()["error"]["message"]


def _mcp_headers(extra: dict[str, str]) -> dict[str, str]:
    return {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18", **extra}


def test_http_without_credentials_is_401(world: World) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    for headers in ({}, {"Authorization": "Bearer sr_not_a_key"}, {"Authorization": "Basic YTpi"}):
        r = httpx.post(f"{world.url}/mcp", json=initialize, headers=_mcp_headers(headers), timeout=30)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"]["type"] == "authentication_error"
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.get(f"{world.url}/mcp", headers={"Accept": "text/event-stream"}, timeout=30)
    assert r.status_code == 401

    async def scenario() -> None:
        async with over_http(world, None) as client:
            await client.list_tools()

    with pytest.raises(ExceptionGroup) as refused:  # the official client gives up at its first request
        asyncio.run(scenario())
    assert refused.group_contains(MCPError, depth=None)


def test_http_oidc_token_runs_as_its_subject(world: World) -> None:
    token = world.provider.token(sub="olga", groups=RESEARCH)

    async def scenario() -> dict[str, Any]:
        async with over_http(world, token) as client:
            return result_of(await client.call_tool("list_datasets", {}))

    listed = asyncio.run(scenario())
    assert [d["name"] for d in listed["content"]["datasets"]] == ["positions", "prices"]
    mine = [r for r in audit_of(world.home) if r["principal"] == "olga"]
    assert any(r["action"] == "agent.tool.list_datasets" and r["auth"] == "oidc" for r in mine)


def test_http_each_key_sees_only_its_own_entitlements(world: World) -> None:
    async def scenario() -> tuple[list[str], list[str], str]:
        async with (
            over_http(world, world.keys["desk-app"]) as desk,
            over_http(world, world.keys["research-app"]) as research,
            over_http(world, world.keys["no-role-app"]) as no_role,
        ):
            mine = result_of(await desk.call_tool("list_datasets", {}))["content"]["datasets"]
            theirs = result_of(await research.call_tool("list_datasets", {}))["content"]["datasets"]
            refused = refusal_of(await no_role.call_tool("list_datasets", {}))
            return [d["name"] for d in mine], [d["name"] for d in theirs], refused

    mine, theirs, refused = asyncio.run(scenario())
    assert mine == ["prices"]
    assert theirs == ["positions", "prices"]
    assert "reader role" in refused


def test_http_unknown_tool_is_a_protocol_error_and_recorded(world: World) -> None:
    async def scenario() -> str:
        async with over_http(world, world.keys["desk-app"]) as client:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("drop_table", {"name": "prices"})
            return str(refused.value)

    message = asyncio.run(scenario())
    assert "unknown tool 'drop_table'" in message and "search_documents" in message
    unknown = [r for r in audit_of(world.home) if r["action"] == "agent.tool.unknown"]
    assert unknown and unknown[-1]["principal"] == "key:desk-app" and unknown[-1]["outcome"] == "error"


def test_http_bad_arguments_are_a_tool_error_with_the_reason(world: World) -> None:
    async def scenario() -> tuple[str, str]:
        async with over_http(world, world.keys["desk-app"]) as client:
            bad_k = refusal_of(await client.call_tool("search_documents", {"query": "revenue", "k": 500}))
            write = refusal_of(await client.call_tool("query_data", {"sql": "DELETE FROM prices"}))
            return bad_k, write

    bad_k, write = asyncio.run(scenario())
    assert "k" in bad_k
    assert write  # refused before it ran, with the reason

    async def after() -> dict[str, Any]:
        async with over_http(world, world.keys["desk-app"]) as client:
            return result_of(await client.call_tool("query_data", {"sql": "SELECT count(*) FROM prices"}))

    assert asyncio.run(after())["content"]["rows"] == [[3]]


# -- stdio -----------------------------------------------------------------------------------


def test_stdio_runs_as_the_cli_principal(world: World, tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], dict[str, Any], str, str, dict[str, Any]]:
        async with over_stdio(world, "--user", "stella", "--groups", "public", errlog=tmp_path / "err") as client:
            names = [t.name for t in (await client.list_tools()).tools]
            found = result_of(await client.call_tool("search_documents", {"query": "revenue quarterly report"}))
            theirs = refusal_of(await client.call_tool("query_data", {"sql": "SELECT * FROM positions"}))
            nobody = refusal_of(await client.call_tool("query_data", {"sql": "SELECT * FROM nosuch"}))
            prices = result_of(await client.call_tool("query_data", {"sql": PRICES_SQL}))
            return names, found, theirs, nobody, prices

    names, found, theirs, nobody, prices = asyncio.run(scenario())
    assert names == [s.name for s in TOOL_SPECS]
    assert _sources(found) == {"alphacorp.txt"}
    assert theirs.replace("positions", "X") == nobody.replace("nosuch", "X")
    assert [row[1] for row in prices["content"]["rows"]] == [10.5, 11.25, 12.0]
    mine = [r for r in audit_of(world.stdio_home) if r["principal"] == "stella"]
    tools = [r["action"] for r in mine if str(r["action"]).startswith("agent.tool.")]
    assert tools == ["agent.tool.search_documents"] + ["agent.tool.query_data"] * 3
    assert len({r["target"] for r in mine if str(r["action"]).startswith("agent.tool.")}) == 1  # one run: the process


def test_stdio_clocks_hold_for_the_process(world: World, tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        args = ("--groups", "public", "--as-of", "2024-01-03")
        async with over_stdio(world, *args, errlog=tmp_path / "err") as client:
            return result_of(await client.call_tool("query_data", {"sql": PRICES_SQL}))

    assert [row[1] for row in asyncio.run(scenario())["content"]["rows"]] == [10.5, 11.25]


def test_stdio_with_an_api_key_runs_as_its_owner(world: World, tmp_path: Path) -> None:
    secret = world.keys["research-app"]

    async def scenario(**env: str) -> CallToolResult:
        async with over_stdio(world, "--api-key-env", "SR_MCP_KEY", errlog=tmp_path / "err", **env) as client:
            return await client.call_tool("list_datasets", {})

    # the key's groups map to roles by the service's settings: the same as the HTTP service's
    listed = result_of(asyncio.run(scenario(SR_MCP_KEY=secret, STRONGROOM_ROLE_GROUPS=json.dumps(ROLE_GROUPS))))
    assert [d["name"] for d in listed["content"]["datasets"]] == ["positions", "prices"]
    # by the default mapping, its group "readers" grants no role: refused
    assert "reader role" in refusal_of(asyncio.run(scenario(SR_MCP_KEY=secret)))
    mine = [r for r in audit_of(world.stdio_home) if r["action"] == "agent.tool.list_datasets"]
    assert mine[-1]["principal"] == "key:research-app" and mine[-1]["auth"].startswith("api-key:")
    assert secret not in (tmp_path / "err").read_text()


def _mcp(world: World, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli", "mcp", *args, "--home", str(world.stdio_home)],
        env={**os.environ, **_stdio_env(world.stdio_home, **env)},
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stdio_refuses_a_bad_key_without_printing_it(world: World) -> None:
    forged = world.keys["desk-app"][:-4] + "AAAA"
    done = _mcp(world, "--api-key-env", "SR_MCP_KEY", SR_MCP_KEY=forged)
    assert done.returncode == 1
    assert "API key is not valid" in done.stderr
    assert done.stdout == ""  # stdout is the protocol's alone
    assert forged not in done.stderr and forged[-12:] not in done.stderr
    assert _mcp(world, "--api-key-env", "SR_MCP_UNSET").returncode == 2
    both = _mcp(world, "--api-key-env", "SR_MCP_KEY", "--groups", "research", SR_MCP_KEY=world.keys["desk-app"])
    assert both.returncode == 2 and "leave out --user and --groups" in both.stderr
    assert _mcp(world, "--as-of", "someday").returncode == 2


def test_http_concurrent_calls_leave_the_service_its_threads(world: World) -> None:
    """Tool calls wait on the service's operations from threads of their own: a burst of them
    never holds the threads those operations need (reading tables, checking an API key)."""

    async def scenario() -> list[CallToolResult]:
        async with over_http(world, world.keys["research-app"]) as client:
            calls = [client.call_tool("filing_table", {"document": "alphacorp.txt", "page": 1}) for _ in range(16)]
            return await asyncio.gather(*calls)

    results = asyncio.run(scenario())
    assert [result_of(r)["content"]["document"] for r in results] == ["alphacorp.txt"] * 16
