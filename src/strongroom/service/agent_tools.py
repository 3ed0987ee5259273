"""The research agent's tools as entitled, audited operations of the application layer.

An :class:`EntitledToolbox` implements :class:`~strongroom.agent.base.Toolbox` for one run:
it is bound when made to **one principal** and **one pair of clocks** (``as_of``,
``known_at``: parsed like every other entry point's, and fixed at the instant the toolbox is
made if later or absent, so a run reads the same world from its first step to its last and
never past the time it started). Whatever a document or a row says, a call does only what
its arguments say, under that principal's entitlements: the tools read through the same
operations as the CLI and HTTP (:mod:`strongroom.service.tool_backends`), which check the
role, the entitlements and the clocks and write their own audit records.

Each call is audited once more as itself, ``agent.tool.<name>`` (refusals and bad arguments
too): the run id, the clocks, the arguments as a redacted query with its keyed hash (like a
search), and what came back as counts and ids, never document text or row values.

    toolbox = toolbox_for(platform, ana, as_of="2023-09-30", run_id="run-1")
    out = toolbox.call("search_documents", {"query": "total net sales", "k": 3})
    out.content["passages"][0]["text"], out.evidence[0].ref["version_id"]

The tools, their arguments and results are listed in :data:`~strongroom.service.tool_args.TOOL_SPECS`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

from strongroom.agent.base import ToolOutput
from strongroom.errors import NotFound, PermissionDenied, StrongroomError
from strongroom.ingest.understand.redaction import redact_value
from strongroom.llm.types import ToolSpec
from strongroom.service.async_platform import AsyncPlatform
from strongroom.service.clock import Clocks, TimeInput
from strongroom.service.platform import Platform
from strongroom.service.tool_args import TOOL_SPECS, parse_arguments
from strongroom.service.tool_backends import AsyncPlatformBackend, PlatformBackend, ToolBackend, ToolContext
from strongroom.service.tool_data import asof_join, calculate, list_datasets, query_data
from strongroom.service.tool_documents import search_documents, term_sheet
from strongroom.service.tool_output import Done
from strongroom.service.tool_tables import filing_table
from strongroom.types import Principal

__all__ = ["TOOL_ACTION", "EntitledToolbox", "toolbox_for"]

#: the audit action of a tool call is this prefix and the tool's name
TOOL_ACTION = "agent.tool."
_MAX_ARGUMENT_CHARS = 20_000

_TOOLS: dict[str, Callable[[ToolContext, Any], Done]] = {
    "search_documents": search_documents,
    "list_datasets": list_datasets,
    "query_data": query_data,
    "asof_join": asof_join,
    "calculate": calculate,
    "term_sheet": term_sheet,
    "filing_table": filing_table,
}


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, PermissionDenied):
        return "denied"
    return "error"


def _detail(exc: StrongroomError, checked: bool, refused_by: str) -> str:
    """What a refusal's record says: the message of a refusal of the call itself (its role,
    its arguments) or of a uniform not-found or denial; for anything else, only what refused
    it, since an engine's message may quote a row ("could not convert 'X'")."""
    if not checked or isinstance(exc, NotFound | PermissionDenied):
        return redact_value(str(exc))[0][:500]
    where = f"the {refused_by} operation" if refused_by else "the tool"
    return f"{type(exc).__name__} from {where} (the message went to the caller: it may quote data)"


class _Watched:
    """A run's backend for one call, noting which operation refused it (if one did)."""

    def __init__(self, backend: ToolBackend) -> None:
        self._backend = backend
        self.refused_by = ""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._backend, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except StrongroomError:
                self.refused_by = name
                raise

        return watched


class EntitledToolbox:
    """The tools of one run: one principal, one pair of clocks, one backend; every call audited.

    ``as_of``/``known_at`` are the instants the tools read at (the bound clocks, applied):
    keep them with the run so that a resumed run gets the same toolbox back.
    """

    def __init__(
        self,
        backend: ToolBackend,
        principal: Principal,
        *,
        as_of: TimeInput = None,
        known_at: TimeInput = None,
        run_id: str = "",
        check: Callable[[], None] | None = None,
    ) -> None:
        clocks = Clocks.parse(as_of, known_at)
        applied_as_of, applied_known_at = clocks.applied()  # each one, or now if later or absent
        self.context = ToolContext(backend, principal, applied_as_of, applied_known_at)
        self.principal = principal
        self.run_id = run_id
        self._check = check
        self._asked = clocks.describe()

    @property
    def as_of(self) -> datetime:
        return self.context.as_of

    @property
    def known_at(self) -> datetime:
        return self.context.known_at

    def specs(self) -> Sequence[ToolSpec]:
        """Every tool, as the model is told about it."""
        return TOOL_SPECS

    def call(self, name: str, arguments: Mapping[str, object]) -> ToolOutput:
        """Run tool ``name`` with ``arguments`` (checked) for the bound principal and clocks.

        Raises :class:`QueryError` for an unknown tool or bad arguments, and whatever the
        operation refuses with (``NotFound``, ``PermissionDenied``, ``QueryError``); each
        outcome is audited as ``agent.tool.<name>``.
        """
        known = name in _TOOLS
        action = TOOL_ACTION + (name if known else "unknown")
        tool = name if known else redact_value(name[:64])[0]
        fields: dict[str, object] = {
            "query": self._arguments_text(arguments),
            "target": self.run_id,
            "filters": {"run_id": self.run_id, "tool": tool, **self._asked},
        }
        checked = False
        watched = _Watched(self.context.backend)
        try:
            self._require_reader()
            if self._check is not None:
                self._check()  # e.g. the API key the run was started with: revoked since?
            args = parse_arguments(name, arguments)
            checked = True
            done = _TOOLS[name](replace(self.context, backend=cast(ToolBackend, watched)), args)
        except StrongroomError as exc:
            self._record(action, fields, outcome=_outcome(exc), detail=_detail(exc, checked, watched.refused_by))
            raise
        except Exception as exc:  # a fault, not a refusal: recorded, then raised as it was
            self._record(action, fields, outcome="error", detail=f"internal error: {type(exc).__name__}")
            raise
        filters = cast(dict[str, object], fields["filters"]) | dict(done.facts)
        self._record(action, {**fields, "filters": filters}, chunks=done.chunks, detail=done.detail)
        return done.output

    def _require_reader(self) -> None:
        if "reader" not in self.principal.roles:
            raise PermissionDenied("the agent's tools need the reader role; ask an administrator")

    def _record(self, action: str, fields: dict[str, object], **more: object) -> None:
        self.context.backend.record(self.principal, action, **fields, **more)

    @staticmethod
    def _arguments_text(arguments: Mapping[str, object]) -> str:
        """The arguments as the audit log keeps a query (redacted there), never more than a cap."""
        try:
            text = json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(arguments)
        return text[:_MAX_ARGUMENT_CHARS]


def toolbox_for(
    platform: Platform | AsyncPlatform,
    principal: Principal,
    *,
    as_of: TimeInput = None,
    known_at: TimeInput = None,
    run_id: str = "",
    loop: asyncio.AbstractEventLoop | None = None,
    timeout_s: float = 60.0,
    check: Callable[[], None] | None = None,
) -> EntitledToolbox:
    """The toolbox of one run of ``principal`` at ``as_of``/``known_at`` (default: now, fixed
    when it is made), over either driver.

    For an :class:`AsyncPlatform`, ``loop`` is the server's event loop (default: the running
    one, so call this on the loop, e.g. in a route); the toolbox must then be called from
    another thread (the run's), and each call waits at most ``timeout_s`` seconds. For a
    :class:`Platform`, call it on the thread that uses the platform. ``check``, if given, is
    called before each call and refuses it by raising (a revoked API key: PermissionDenied).
    """
    backend: ToolBackend
    if isinstance(platform, AsyncPlatform):
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError as exc:
                raise ValueError(
                    "toolbox_for(AsyncPlatform): give the server's event loop (loop=...), or call it on that loop"
                ) from exc
        backend = AsyncPlatformBackend(platform, loop, timeout_s=timeout_s)
    else:
        backend = PlatformBackend(platform)
    return EntitledToolbox(backend, principal, as_of=as_of, known_at=known_at, run_id=run_id, check=check)
