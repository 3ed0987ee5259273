"""A principal's own conversation, with tools, through a model-gateway route it is granted:
what the OpenAI-compatible front serves to a bank's agents.

Nothing is retrieved here: the caller sends its context, so no document entitlement
applies. What applies is the role (``reader``), the route grant (a route not granted is as
absent as one that does not exist, as for an ask), the principal's budget (the gateway's
``user``), and one audit record per call, refusals included: the route, the deployment that
answered, the tokens, the names of the tools offered and called, and the last user message
redacted (as an ask's question). Tool arguments, tool results and the answer are never
recorded, only the answer's SHA-256: they can hold document text.

Clearance: the conversation may carry what strongroom's tools returned (an MCP
``search_documents`` result pasted back as a ``tool`` message). Its clearance is the highest
of the labels those results carry (:func:`~strongroom.service.tool_output.carried_clearance`:
their ``clearance`` marker, evidence refs, labelled passages) and of what the caller declares
(``request.sensitivity``/``mnpi``: never lowered by it); the gateway sends it only to
deployments cleared for that, failover included, and refuses with :class:`NotCleared` when
the route has none. The record names the clearance and what forced it (version ids,
``dataset:NAME@VERSION``, ``request``), never text.

    calls = ModelCalls(ops, settings, routes, gateway=lambda: gw, commit=platform_done)
    async for delta in calls.stream(principal, ChatRequest(messages, model="chat", tools=tools)):
        ...
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from strongroom.config import Settings
from strongroom.errors import NotCleared, NotFound, StrongroomError
from strongroom.llm.clearance import ContextClearance
from strongroom.llm.gateway import Gateway
from strongroom.llm.route_config import RouteStore
from strongroom.llm.types import SENSITIVITY_LEVELS, ChatRequest, ChatResult, Delta, Sensitivity
from strongroom.service.operations import Operations, Outcome
from strongroom.service.platform import route_usable
from strongroom.service.tool_output import carried_clearance
from strongroom.types import Principal

__all__ = ["CHAT_ACTION", "ModelCalls", "clearance_of"]

#: the audit action of a conversation sent through a route
CHAT_ACTION = "chat.completion"
_QUERY_CHARS = 4000
_FORCED_CHARS = 2000  # of the forcing ids kept in a record


def _question(request: ChatRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user" and message.content.strip():
            return message.content.strip()[:_QUERY_CHARS]
    return ""


def clearance_of(request: ChatRequest) -> ContextClearance:
    """What ``request``'s conversation needs: the highest of what the caller declares
    (forced by ``request``) and of the strongroom tool results among its messages."""
    raw = request.sensitivity or "public"
    level: Sensitivity = raw if raw in SENSITIVITY_LEVELS else "restricted"  # unknown: the highest
    declared = ContextClearance()
    if level != "public" or request.mnpi:
        declared = ContextClearance(level, request.mnpi, ("request",))
    return declared.join(carried_clearance(m.content for m in request.messages))


def _answer_hash(result: ChatResult) -> str:
    calls = [[c.name, c.arguments] for c in result.tool_calls]
    body = json.dumps([result.text, calls], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class ModelCalls:
    """Stream a principal's conversation through a route it is granted, audited.

    ``gateway`` returns the platform's gateway (opened on first use); ``commit`` writes an
    outcome's records and returns its value or raises its error.
    """

    def __init__(
        self,
        ops: Operations,
        settings: Settings,
        routes: RouteStore,
        *,
        gateway: Callable[[], Gateway],
        commit: Callable[[Outcome[Any]], Awaitable[Any]],
    ) -> None:
        self.ops = ops
        self.settings = settings
        self.routes = routes
        self._gateway = gateway
        self._commit = commit

    @staticmethod
    def _fields(request: ChatRequest, need: ContextClearance) -> dict[str, Any]:
        filters: dict[str, Any] = {
            "model": request.model,
            "messages": len(request.messages),
            "tools": [t.name for t in request.tools],
            "tool_choice": request.tool_choice or "",
        }
        for key, value in need.metadata().items():  # above public: the level, and what forced it
            filters[key] = value[:_FORCED_CHARS]
        return {"query": _question(request), "filters": filters}

    async def stream(self, principal: Principal, request: ChatRequest) -> AsyncIterator[Delta]:
        """The deltas of the route's answer (whole tool calls among them). Raises NotFound
        for a route the principal may not use and PermissionDenied without the reader role,
        before anything is sent to a model; a gateway error after the record is written
        (NotCleared, saying what forced the clearance, when no deployment of the route is
        cleared for the conversation)."""
        need = clearance_of(request)
        request = need.apply(request)  # the gateway strikes out every deployment not cleared for it
        fields = self._fields(request, need)
        try:
            self.ops.require(principal, "reader")
            if not route_usable(self.settings, self.routes, principal, request.model):
                raise NotFound(
                    f"no model route {request.model!r} that you may use (GET /v1/models lists yours); "
                    "an administrator grants routes in STRONGROOM_ROUTE_GROUPS"
                )
        except StrongroomError as exc:
            await self._commit(self.ops.refused(principal, CHAT_ACTION, exc, **fields))
            raise
        request = replace(request, user=principal.name)  # budgets are the principal's, whatever was sent
        recorded = False
        try:
            async with self._gateway().stream(request) as deltas:
                async for delta in deltas:
                    if delta.finish_reason is not None:
                        recorded = True
                        await self._commit(self._record(principal, fields, deltas.result))
                    yield delta
        except NotCleared as exc:  # the record keeps the gateway's words; the caller learns what forced it
            try:
                await self._commit(self.ops.refused(principal, CHAT_ACTION, exc, **fields))
            except NotCleared:
                pass  # commit raises the refusal it recorded
            raise NotCleared(_not_cleared(request.model, need)) from exc
        except StrongroomError as exc:
            if not recorded:
                await self._commit(self.ops.refused(principal, CHAT_ACTION, exc, **fields))
            raise

    def _record(self, principal: Principal, fields: dict[str, Any], result: ChatResult) -> Outcome[None]:
        filters = dict(fields["filters"])
        filters["answered_by"] = {
            "deployment": result.deployment,
            "route_version": str(result.route_version),
            "finish_reason": result.finish_reason,
            "prompt_tokens": str(result.usage.prompt_tokens),
            "completion_tokens": str(result.usage.completion_tokens),
            "tool_calls": [c.name for c in result.tool_calls],
        }
        record = self.ops.record(
            principal,
            CHAT_ACTION,
            query=fields["query"],
            filters=filters,
            generator=result.deployment,
            answer_sha256=_answer_hash(result),
            detail=f"{result.finish_reason}; {len(result.tool_calls)} tool call(s)",
        )
        return Outcome(None, None, (record,))


def _not_cleared(route: str, need: ContextClearance) -> str:
    forced = ", ".join(need.forced_by[:10]) + (
        f" and {len(need.forced_by) - 10} more" if len(need.forced_by) > 10 else ""
    )
    return (
        f"this conversation holds {need.label} content (from {forced}); no deployment of model route "
        f"{route!r} is cleared for it, so it was sent nowhere: name a route with a deployment cleared "
        f"for {need.label} (an administrator sets clearances), or leave that content out"
    )
