"""Attack: the research agent's tools (issue 19) from outside, the way a hostile model, a
document that gives orders or a bank's own agent would use them: through the toolbox (Python),
through MCP over real HTTP at ``/mcp`` and over stdio (``strongroom mcp`` as a subprocess),
each with the official ``mcp`` client.

The world: ``prices`` (research; a row valid after every ``as_of`` below), ``trades``
(research), ``positions`` (risk), and a dataset version stamped in the far future, as a
replica whose clock runs ahead would stamp it; a public filing with a second version learned
after ``BEFORE_V2``, and a research note the analyst may not read.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from strongroom.agent.calculator import calculate
from strongroom.api import create_app
from strongroom.api.mcp import HEADER_AS_OF, HEADER_KNOWN_AT
from strongroom.audit import open_audit_log
from strongroom.audit.log import records
from strongroom.config import Settings
from strongroom.data import open_datasets
from strongroom.errors import NotFound, QueryError
from strongroom.service import IngestRequest, Platform
from strongroom.service.agent_tools import EntitledToolbox, toolbox_for
from strongroom.service.datasets import DatasetLoad
from strongroom.types import Principal, utcnow
from tests.api.conftest import ROLE_GROUPS, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

pytestmark = pytest.mark.integration

ANA = Principal("ana", frozenset({"public", "research"}), frozenset({"reader"}), "python")
LOADER = Principal(
    "loader", frozenset({"public", "research", "risk", "readers"}), frozenset({"reader", "ingester", "admin"})
)
AS_OF = "2024-01-05"
FUTURE_ROW = "FUTUREROWSECRET"  # prices: valid after AS_OF
SKEWED = "SKEWEDCLOCKSECRET"  # a load stamped in 2999
HIDDEN = "KRAKENCOSECRET"  # positions
NOTE_TEXT = "The osprey desk will short the kestrel bond"  # the research note's words
V2_TEXT = "restated revenue of 9182 million"  # the filing's second version
SECRETS = (FUTURE_ROW, SKEWED, HIDDEN, NOTE_TEXT, V2_TEXT, "777.125", "9917.03")
PRICES = (
    f"ticker,day,close,note\nZQXW,2024-01-02,101.25,a\nZQXW,2024-01-03,102.5,b\nZQXW,2030-01-04,777.125,{FUTURE_ROW}\n"
)
TRADES = "ticker,day,qty\nZQXW,2024-01-03,100\nZQXW,2024-01-04,5\n"
POSITIONS = f"book,day,counterparty,notional\nrates,2024-01-02,{HIDDEN},9917.03\n"
SKEW = f"ticker,day,close,note\nZQXW,2024-01-02,1.5,{SKEWED}\n"
FILING_V1 = "Alphacorp quarterly report\n\nTotal net sales were 4242 million dollars in the quarter.\n"
FILING_V2 = f"Alphacorp quarterly report, amended\n\nThe amendment reports {V2_TEXT} for the quarter.\n"
NOTE = f"Research note\n\n{NOTE_TEXT} next week.\n"


@dataclass
class World:
    settings: Settings
    files: Path
    before_v2: str  # known_at before the filing's second version
    v2_id: str
    note_id: str
    note_version: str
    keys: dict[str, str]


def _ingest(p: Platform, path: Path, acl: str, published: str, source: str) -> tuple[str, str]:
    report = p.ingest(LOADER, IngestRequest((path,), frozenset({acl}), published, source=source))
    assert report.ingested == 1, report
    return report.files[0].document_id, report.files[0].version_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("agent-tools-attacks")
    files = root / "files"
    for folder in ("v1", "v2"):
        (files / folder).mkdir(parents=True)
    settings = Settings(home=root / "home", embedder="hash")
    for name, text in (("prices", PRICES), ("trades", TRADES), ("positions", POSITIONS), ("skew", SKEW)):
        (files / f"{name}.csv").write_text(text)
    (files / "v1" / "alphacorp.txt").write_text(FILING_V1)
    (files / "v2" / "alphacorp.txt").write_text(FILING_V2)
    (files / "note.txt").write_text(NOTE)
    with Platform.open(settings) as p:
        for name, acl, key in (
            ("prices", "research", ("ticker",)),
            ("trades", "research", ()),
            ("positions", "risk", ()),
        ):
            p.load_dataset(LOADER, DatasetLoad(files / f"{name}.csv", name, frozenset({acl}), "day", key))
        _ingest(p, files / "v1" / "alphacorp.txt", "public", "2024-01-02", "corpus/alphacorp.txt")
        before_v2 = utcnow()
        _, v2 = _ingest(p, files / "v2" / "alphacorp.txt", "public", "2024-01-03", "corpus/alphacorp.txt")
        note_id, note_version = _ingest(p, files / "note.txt", "risk", "2024-01-02", "corpus/note.txt")
        grants = {"desk-app": ["public", "research", "readers"], "spare-app": ["public", "research", "readers"]}
        keys = {owner: p.create_key(LOADER, owner, groups, days=30).secret for owner, groups in grants.items()}
    # a version stamped in 2999: a replica whose clock runs ahead, or an operator's typo
    store = open_datasets(settings)
    try:
        far = datetime(2999, 1, 1, tzinfo=UTC)
        store.load("prices", files / "skew.csv", acl=frozenset({"research"}), valid_time_column="day",
                   key_columns=["ticker"], loaded_at=far)  # fmt: skip
    finally:
        store.close()
    return World(settings, files, before_v2.isoformat(), v2, note_id, note_version, keys)


@pytest.fixture(scope="module")
def platform(world: World) -> Iterator[Platform]:
    with Platform.open(world.settings) as p:
        yield p


def tools(p: Platform, **clocks: str) -> EntitledToolbox:
    clocks.setdefault("as_of", AS_OF)
    return toolbox_for(p, ANA, run_id="attack", **clocks)  # type: ignore[arg-type]


def refusal(box: EntitledToolbox, name: str, arguments: dict[str, Any], error: type[Exception] = QueryError) -> str:
    with pytest.raises(error) as caught:
        box.call(name, arguments)
    message = str(caught.value)
    assert not any(s in message for s in SECRETS), message
    return message


# -- arguments that smuggle who or when --------------------------------------------------------

SMUGGLED = [
    {"sql": "SELECT * FROM positions", "principal": "root"},
    {"sql": "SELECT * FROM prices", "as_of": "2999-12-31"},
    {"sql": "SELECT * FROM prices", "known_at": "2999-12-31"},
    {"sql": "SELECT * FROM prices", "groups": ["risk"]},
    {"sql": "SELECT * FROM prices", "AS_OF": "2999-12-31"},
    {"sql": "SELECT * FROM prices", "max_rows": 10**9},
]


@pytest.mark.parametrize("arguments", SMUGGLED, ids=lambda a: next(k for k in a if k != "sql"))
def test_a_call_cannot_name_its_own_principal_clocks_or_limits(platform: Platform, arguments: dict[str, Any]) -> None:
    refusal(tools(platform), "query_data", arguments)


def test_a_toolbox_bound_in_the_future_reads_now_and_never_a_load_stamped_later(platform: Platform) -> None:
    box = tools(platform, as_of="2999-12-31", known_at="2999-12-31")
    assert box.as_of <= utcnow() and box.known_at <= utcnow()
    listed = box.call("list_datasets", {}).content["datasets"]
    assert {d["name"]: d["version"] for d in listed} == {"prices": 1, "trades": 1}  # type: ignore[index,union-attr]
    out = box.call("query_data", {"sql": "SELECT close, note FROM prices ORDER BY day"})
    joined = box.call("asof_join", {"left": "trades", "right": "prices", "by": ["ticker"], "columns": ["note"]})
    assert not any(s in json.dumps([out.content, joined.content]) for s in SECRETS)


# -- asof_join's where, and SQL through the tools -----------------------------------------------

WHERES = [
    "qty > 0) UNION ALL SELECT * FROM positions --",
    "ticker IN (SELECT book FROM positions)",
    "r.note IS NOT NULL",
    "positions.notional > 0",
    "strongroom_data.positions.notional > 0",
    'day >= "current_date" - INTERVAL 30 DAY',
    "length(repeat(ticker, 100000000)) > 0",
    "read_csv('/etc/passwd') IS NULL",
    "EXISTS (FROM positions)",
    " OR ".join(["qty > 0"] * 300),
]


@pytest.mark.parametrize("where", WHERES)
def test_asof_join_where_reads_nothing_but_the_left_datasets_columns(platform: Platform, where: str) -> None:
    arguments = {"left": "trades", "right": "prices", "by": ["ticker"], "where": where}
    refusal(tools(platform), "asof_join", arguments)


def test_asof_join_names_are_checked_like_sql(platform: Platform) -> None:
    box = tools(platform)
    for arguments in (
        {"left": "trades", "right": "positions"},
        {"left": "positions", "right": "prices"},
        {"left": "trades", "right": "prices", "by": ['ticker"; --']},
        {"left": "trades", "right": "prices", "columns": ["counterparty"]},
        {"left": "trades", "right": "prices", "right_time": "_loaded_at"},
    ):
        refusal(box, "asof_join", arguments)
    hidden = refusal(box, "asof_join", {"left": "trades", "right": "positions"})
    missing = refusal(box, "asof_join", {"left": "trades", "right": "nosuchdata"})
    assert hidden.replace("positions", "X") == missing.replace("nosuchdata", "X")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + "+".join(["close"] * 3000) + " FROM prices",
        'SELECT "current_date"',
        "SELECT string_agg(note, ',') OVER (ORDER BY day) FROM prices",
    ],
    ids=["deep", "clock", "window"],
)
def test_sql_through_the_tool_is_refused_with_a_reason_not_an_internal_error(platform: Platform, sql: str) -> None:
    refusal(tools(platform), "query_data", {"sql": sql})


# -- documents -----------------------------------------------------------------------------------


def test_filing_table_and_term_sheet_reach_no_document_the_run_may_not_read(platform: Platform, world: World) -> None:
    box = tools(platform, known_at=world.before_v2)
    missing = refusal(box, "filing_table", {"document": "nosuchdocument", "page": 1}, NotFound)
    for name in (world.note_id, world.note_version, world.note_version[:8], "note.txt", "corpus/note.txt"):
        assert refusal(box, "filing_table", {"document": name, "page": 1}, NotFound) == missing.replace(
            "nosuchdocument", name
        )
    # the filing's second version, learned after the run's known_at, by its id or a prefix
    for name in (world.v2_id, world.v2_id[:12]):
        assert refusal(box, "filing_table", {"document": name, "page": 1}, NotFound)
    now = tools(platform).call("filing_table", {"document": world.v2_id[:12], "line_item": "revenue"})
    assert now.content["version_id"] == world.v2_id  # it is there once known
    sheets = box.call("term_sheet", {"name": "note"}).content
    assert sheets["term_sheets"] == [] and sheets["matched"] == 0  # type: ignore[index]
    found = box.call("search_documents", {"query": "osprey kestrel short amendment restated", "k": 20})
    assert not any(s in json.dumps(found.content) for s in SECRETS)


# -- the calculator ------------------------------------------------------------------------------

BOMBS = [
    "9**9**9",
    "10**1000000",
    "2**64**64",
    "1e999",
    "-" * 400 + "1",
    "abs(" * 40 + "1" + ")" * 40,
    "x ** 64 ** 2",
    "round(x, 12)",
    "sum(" + ",".join(["x"] * 101) + ")",
    "__import__('os').system('id')",
    "().__class__.__bases__",
    "(lambda: 1)()",
    "[1][0]",
    "x if x else 1",
    "x > 1",
    "(y := 1)",
    "f'{x}'",
    "max(*[1, 2])",
    "sum(x for x in [1])",
    "pct_change(0, x)",
    "x / 0",
    "0 ** -1",
]


@pytest.mark.parametrize("expression", BOMBS)
def test_the_calculator_refuses_what_would_burn_cpu_or_escape(expression: str) -> None:
    with pytest.raises(QueryError):
        calculate(expression, {"x": "1" + "0" * 58})


@pytest.mark.parametrize(
    "inputs",
    [{"x": "1e999999999"}, {"x": "9" * 101}, {"x": "NaN"}, {"x": "Infinity"}, {"x": "$1e400 billion"}, {"x": "0x10"}],
)
def test_calculator_inputs_are_plain_finite_numbers(platform: Platform, inputs: dict[str, str]) -> None:
    refusal(tools(platform), "calculate", {"expression": "x * 1", "variables": inputs})


# -- MCP over real HTTP and stdio ----------------------------------------------------------------


@dataclass
class Served:
    url: str
    world: World


@pytest.fixture(scope="module")
def served(world: World, platform: Platform, provider: Provider) -> Iterator[Served]:
    platform.close()  # the service holds the home from here on
    app = create_app(world.settings, service_settings(provider))
    with live_server(app) as url:
        yield Served(url, world)


@asynccontextmanager
async def over_http(served: Served, secret: str, **headers: str) -> AsyncIterator[Client]:
    headers["Authorization"] = f"Bearer {secret}"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{served.url}/mcp", http_client=http)) as client,
    ):
        yield client


def _text(result: CallToolResult) -> str:
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


def test_mcp_http_clocks_in_the_future_and_at_the_calendars_edge(served: Served) -> None:
    secret = served.world.keys["desk-app"]

    async def far() -> CallToolResult:
        future = {HEADER_AS_OF: "2999-12-31", HEADER_KNOWN_AT: "2999-12-31T23:59:59+14:00"}
        async with over_http(served, secret, **future) as client:
            return await client.call_tool("query_data", {"sql": "SELECT close, note FROM prices ORDER BY day"})

    result = asyncio.run(far())
    assert not result.is_error and not any(s in _text(result) for s in SECRETS)
    for header in (HEADER_AS_OF, HEADER_KNOWN_AT):
        with httpx2.Client(timeout=30) as http:
            r = http.post(
                f"{served.url}/mcp",
                headers={
                    "Authorization": f"Bearer {secret}",
                    "Accept": "application/json, text/event-stream",
                    header: "0001-01-01T00:00:00+14:00",
                },
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            )
        assert r.status_code == 422, (header, r.status_code, r.text[:200])


def test_mcp_http_a_session_id_carries_nobody_else(served: Served) -> None:
    """The endpoint is stateless: a session id (anyone's, or made up) neither authenticates a
    request nor lends it another caller's identity."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_datasets", "arguments": {}}}
    accept = {"Accept": "application/json, text/event-stream", "Mcp-Session-Id": "0" * 32}
    with httpx2.Client(timeout=30) as http:
        anonymous = http.post(f"{served.url}/mcp", headers=accept, json=body)
        forged = http.post(f"{served.url}/mcp", headers={**accept, "Authorization": "Bearer sr_forged"}, json=body)
    assert anonymous.status_code == 401 and forged.status_code == 401


def _stdio_params(world: World, secret: str) -> StdioServerParameters:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")},
        "STRONGROOM_HOME": str(world.settings.home),
        "STRONGROOM_EMBEDDER": "hash",
        "HF_HUB_OFFLINE": "1",
        "SR_MCP_KEY": secret,
        "STRONGROOM_ROLE_GROUPS": json.dumps(ROLE_GROUPS),
    }
    return StdioServerParameters(
        command=sys.executable, args=["-m", "strongroom.cli", "mcp", "--api-key-env", "SR_MCP_KEY"], env=env
    )


def test_mcp_stdio_a_key_revoked_while_the_process_runs_stops_working_at_once(world: World, tmp_path: Path) -> None:
    """``strongroom mcp --api-key-env`` checked its key once, at start: revoked by an admin, it
    went on answering as the key's owner for as long as the process lived."""
    secret = world.keys["spare-app"]

    async def scenario() -> tuple[CallToolResult, CallToolResult, CallToolResult]:
        with (tmp_path / "stderr").open("w") as log:
            async with Client(stdio_client(_stdio_params(world, secret), errlog=log)) as client:
                before = await client.call_tool("calculate", {"expression": "2 * 21"})
                # a query the checker logs a warning about (sqlglot): stdout must stay the protocol's
                noisy = await client.call_tool("query_data", {"sql": "EXPLAIN SELECT 1"})
                await asyncio.to_thread(_revoke, world, "spare-app")
                after = await client.call_tool("calculate", {"expression": "2 * 21"})
                return before, noisy, after

    before, noisy, after = asyncio.run(scenario())
    assert not before.is_error and json.loads(_text(before))["content"]["value"] == "42"
    assert noisy.is_error and "only SELECT" in _text(noisy)
    assert after.is_error and "revoked" in _text(after), _text(after)
    assert secret not in (tmp_path / "stderr").read_text()
    log = open_audit_log(world.settings)
    try:
        mine = [r for r in records(log) if r["principal"] == "key:spare-app" and r["action"] == "agent.tool.calculate"]
    finally:
        log.close()
    assert [r["outcome"] for r in mine] == ["ok", "denied"] and "refused" in str(mine[-1]["detail"])
    assert secret not in json.dumps(mine)


def _revoke(world: World, owner: str) -> None:
    """An admin revokes ``owner``'s key (``strongroom keys revoke``, in a process of its own)."""
    with Platform.open(world.settings) as p:
        (key,) = [k for k in p.list_keys(LOADER) if k.owner == owner]
        p.revoke_key(LOADER, key.id)


def test_the_audit_log_holds_every_attack_and_no_secret(served: Served) -> None:
    log = open_audit_log(served.world.settings)
    try:
        found = records(log)
    finally:
        log.close()
    tools_used = {r["action"] for r in found if str(r["action"]).startswith("agent.tool.")}
    assert {"agent.tool.query_data", "agent.tool.asof_join", "agent.tool.calculate"} <= tools_used
    refused = [r for r in found if str(r["action"]).startswith("agent.tool.") and r["outcome"] != "ok"]
    assert len(refused) >= len(SMUGGLED) + len(WHERES)
    assert not any(s in json.dumps(found, default=str) for s in SECRETS)
