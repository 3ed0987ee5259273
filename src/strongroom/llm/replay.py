"""Mid-stream failover's rule: a fallback may continue an answer only by replaying it.

When a deployment fails after part of the answer reached the caller, the gateway sends the
same request to a fallback and passes on only what comes after the part already sent: the
text, and the tool calls (matched by name and arguments; a replay has its own ids). A
fallback whose answer does not start with exactly that part cannot continue it, and the
caller never sees anything twice.

    deltas = continuation(fallback.stream(request), "The auditor is ", (), "vllm-b")
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from strongroom.errors import ContinuationMismatch
from strongroom.llm.protocol import aclose
from strongroom.llm.types import Delta, ToolCall

__all__ = ["continuation"]


async def continuation(
    deltas: AsyncIterator[Delta], already: str, calls: tuple[ToolCall, ...], name: str
) -> AsyncIterator[Delta]:
    """Replay a call on a fallback, passing on only what comes after ``already`` (the text)
    and ``calls`` (the tool calls, matched by name and arguments: a replay has its own ids);
    raise ContinuationMismatch if the fallback's answer does not start with exactly those."""
    seen = ""
    matched = False
    left = list(calls)  # calls the replay must make again before anything new passes on
    try:
        async for d in deltas:
            text, new = d.text, d.tool_calls
            if not matched:
                seen += text
                if len(seen) < len(already):
                    if not already.startswith(seen) or d.finish_reason is not None or new:
                        break
                    continue
                if not seen.startswith(already):
                    break
                matched = True
                text = seen[len(already) :]
            if left and new:
                n = min(len(left), len(new))
                if any((a.name, a.arguments) != (b.name, b.arguments) for a, b in zip(left, new[:n], strict=False)):
                    break
                del left[:n]
                new = new[n:]
            if left and (text or d.finish_reason is not None):
                break  # the replay wrote on, or ended, before making the calls already sent
            if text or new or d.finish_reason is not None:
                yield d if (text is d.text and new is d.tool_calls) else Delta(text, d.finish_reason, d.usage, new)
            if d.finish_reason is not None:
                return
    finally:
        await aclose(deltas)
    if not matched or left:
        raise ContinuationMismatch(
            f"{name} replayed the request but its answer does not start with the "
            f"{len(already)} characters and {len(calls)} tool call(s) already sent, so it cannot continue "
            "them; mid-stream failover needs deployments that answer alike (same model, temperature 0)"
        )
