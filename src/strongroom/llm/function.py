"""An in-process ChatModel around a plain function, e.g. the RAG layer's extractive generator.

Registered as a deployment with weight 0 at the end of a route, it is the last-resort
fallback that needs no model weights and no network.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from strongroom.errors import BackendUnavailable, GatewayError
from strongroom.llm.protocol import refuse_tools
from strongroom.llm.types import ChatRequest, Delta

__all__ = ["FunctionModel"]

_PIECES = re.compile(r"\S+\s*|\s+")


class FunctionModel:
    """Serve the text a function returns as a stream of word-sized deltas.

    ``fn`` takes the :class:`ChatRequest` and returns a string, or an awaitable of one::

        def extractive(request: ChatRequest) -> str:
            return "Revenue grew 4% [q3.pdf p.2]"

        model = FunctionModel(extractive, name="extractive")
        gateway.register(Deployment("extractive", model))

    An exception from ``fn`` becomes :class:`BackendUnavailable` so the gateway can fail
    over; a :class:`GatewayError` passes through as it is. It reports no usage (the gateway
    estimates it). It cannot call tools: a request with tools is refused (BackendRejected),
    and the gateway sends it none. To script a model in tests, use
    :class:`strongroom.testing.ScriptedChatModel`.
    """

    supports_tools = False

    def __init__(self, fn: Callable[[ChatRequest], str | Awaitable[str]], *, name: str = "function") -> None:
        self._fn = fn
        self.name = name

    def __repr__(self) -> str:
        return f"FunctionModel(name={self.name!r})"

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        refuse_tools(request, f"in-process model {self.name!r}")
        try:
            out = self._fn(request)
            text = await out if inspect.isawaitable(out) else out
        except GatewayError:
            raise
        except Exception as exc:
            raise BackendUnavailable(
                f"in-process model {self.name!r} failed: {type(exc).__name__}: {exc}; "
                "see the traceback in the log and fix the function"
            ) from exc
        if not isinstance(text, str):
            raise BackendUnavailable(
                f"in-process model {self.name!r} returned {type(text).__name__}, not str; "
                "make the function return the answer text"
            )
        for piece in _PIECES.findall(text):
            yield Delta(piece)
        yield Delta("", finish_reason="stop")
