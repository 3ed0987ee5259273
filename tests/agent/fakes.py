"""Fakes for the agent's tests: a toolbox over a few passages and tables that refuses tables
its principal may not read, and a scripted research model that reacts to the tool results
it is sent (so a run can be resumed by a fresh model in another process)."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from strongroom.agent.base import Evidence, ToolOutput
from strongroom.errors import PermissionDenied, QueryError
from strongroom.llm.types import ChatRequest, ToolSpec
from strongroom.testing.chat import ScriptedReply, tool_call

PASSAGE = (
    "CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS (Unaudited) (In millions)\n"
    "Three Months Ended July 1, 2023 June 25, 2022\nTotal net sales 81,797 82,959"
)
TABLES: dict[str, list[tuple[str, str]]] = {
    "net_sales": [("2023-04-01", "94836"), ("2023-07-01", "81797")],
    "secret": [("2023-07-01", "31337")],  # no principal of these tests may read it
}
SEARCH = ToolSpec(
    "search",
    "Search the documents the user may read.",
    {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1},
            "k": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
)
SQL = ToolSpec(
    "sql",
    "Run a read-only SQL query over the datasets the user may read.",
    {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    },
)
_FROM = re.compile(r"\bfrom\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


class FakeToolbox:
    """``search`` returns :data:`PASSAGE` (or ``passage``); ``sql`` reads :data:`TABLES`,
    refusing any table not in ``allowed`` (as the application layer's entitlement check
    does). Each completed call is appended to ``log`` (a file, fsynced: it outlives a killed
    process). ``block`` is called with the tool's name before it runs (to hang a call)."""

    def __init__(
        self,
        *,
        allowed: Sequence[str] = ("net_sales",),
        passage: str = PASSAGE,
        log: Path | None = None,
        block: Callable[[str], None] | None = None,
        fail: Mapping[str, Exception] | None = None,
    ) -> None:
        self.allowed = tuple(allowed)
        self.passage = passage
        self.log = log
        self.block = block
        self.fail = dict(fail or {})
        self.calls: list[tuple[str, dict[str, object]]] = []
        self.returned: list[ToolOutput] = []
        self._lock = threading.Lock()

    def specs(self) -> Sequence[ToolSpec]:
        return (SEARCH, SQL)

    def call(self, name: str, arguments: Mapping[str, object]) -> ToolOutput:
        with self._lock:
            self.calls.append((name, dict(arguments)))
        if self.block is not None:
            self.block(name)
        if name in self.fail:
            raise self.fail[name]
        if name == "search":
            out = ToolOutput(
                {"hits": 1},
                (Evidence("page", {"document_id": "aapl-10q", "version_id": "v1", "page": 4}, self.passage),),
            )
        elif name == "sql":
            query = str(arguments["query"])
            found = _FROM.search(query)
            if found is None:
                raise QueryError("the query names no table; write SELECT ... FROM a dataset")
            table = found.group(1)
            if table not in self.allowed or table not in TABLES:
                raise PermissionDenied(f"dataset {table!r} is not one you may read; ask for an entitlement")
            rows = TABLES[table]
            out = ToolOutput(
                {"columns": ["date", "value"], "rows": rows},
                (
                    Evidence(
                        "query",
                        {"sql": query, "datasets": [[table, 1, "sha"]]},
                        "\n".join(f"{d} {v}" for d, v in rows),
                        tuple(v for _, v in rows),
                    ),
                ),
            )
        else:  # pragma: no cover - the agent only calls listed tools
            raise AssertionError(f"unexpected tool {name}")
        self.returned.append(out)
        if self.log is not None:
            with self.log.open("a") as f:
                f.write(json.dumps({"tool": name, "arguments": dict(arguments)}) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return out


def tool_messages(request: ChatRequest) -> list[dict[str, object]]:
    """The JSON of each tool message of a request, in order."""
    return [json.loads(m.content) for m in request.messages if m.role == "tool"]


ANSWER = (
    "Total net sales were $81.8 billion in the quarter [1], down from 94,836 million in the previous "
    "quarter [2], a fall of 13.7% [3]."
)


def research_turn(request: ChatRequest) -> ScriptedReply | str:
    """The model of a research run: search, then SQL, then calculate, then answer with
    citations; it decides by the tool results it has been sent, so any process can play it."""
    done = len(tool_messages(request))
    if done == 0:
        return ScriptedReply.calls(tool_call("search", {"query": "Apple total net sales Q3 2023"}))
    if done == 1:
        return ScriptedReply.calls(tool_call("sql", {"query": "SELECT date, value FROM net_sales ORDER BY date"}))
    if done == 2:
        inputs = {"q3": {"value": "81,797", "evidence": 1}, "q2": {"value": "94836", "evidence": 2}}
        return ScriptedReply.calls(tool_call("calculate", {"expression": "pct_change(q2, q3)", "inputs": inputs}))
    return ANSWER
