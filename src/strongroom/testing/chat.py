"""A scripted ChatModel: the fake to call instead of a model server, in tests and smoke runs.

It answers each request with the next entry of its script, then with its default, streaming
the text a word at a time as a backend would::

    model = ScriptedChatModel(["Revenue grew 4%.", BackendTimeout("scripted")], default="No answer.")
    await complete(model, ChatRequest.of("q"))   # "Revenue grew 4%."
    await complete(model, ChatRequest.of("q"))   # raises BackendTimeout
    await complete(model, ChatRequest.of("q"))   # "No answer.", from now on
    model.requests                               # the three requests, in order

Unlike :class:`~strongroom.llm.function.FunctionModel`, which serves a real function in
production, it fails on cue with any gateway error, counts its tokens, honours
``max_tokens`` and records what it was asked and which streams are still open.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable

from strongroom.errors import GatewayError
from strongroom.llm.types import ChatRequest, Delta, Usage, prompt_tokens_estimate

__all__ = ["ScriptedChatModel"]

_WORDS = re.compile(r"\S+\s*|\s+")


class ScriptedChatModel:
    """A ChatModel answering from a script of texts and errors (a token is a word here).

    A scripted :class:`~strongroom.errors.GatewayError` is raised before any text, as a
    backend failing to answer would. A request's ``max_tokens`` cuts the answer with
    ``finish_reason="length"``. ``usage=False`` reports no usage, as some servers do.
    """

    def __init__(
        self,
        replies: Iterable[str | GatewayError] = (),
        *,
        default: str | GatewayError = "Hello world.",
        usage: bool = True,
        name: str = "scripted",
    ) -> None:
        self._script: deque[str | GatewayError] = deque(replies)
        self.default = default
        self.usage = usage
        self.name = name
        self.requests: list[ChatRequest] = []
        self.open_streams = 0  # streams started and not yet finished or closed

    def __repr__(self) -> str:
        return f"ScriptedChatModel(name={self.name!r})"

    def script(self, *replies: str | GatewayError) -> None:
        """Answer the next requests with ``replies``, in order, then with the default again."""
        self._script.extend(replies)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        reply = self._script.popleft() if self._script else self.default
        self.open_streams += 1
        try:
            if isinstance(reply, GatewayError):
                raise reply
            words = _WORDS.findall(reply)
            finish = "stop"
            if request.max_tokens is not None and len(words) > request.max_tokens:
                words, finish = words[: request.max_tokens], "length"
            for word in words:
                await asyncio.sleep(0)  # a real backend waits between tokens: let others run
                yield Delta(word)
            usage = Usage(prompt_tokens_estimate(request.messages), len(words)) if self.usage else None
            yield Delta("", finish, usage)
        finally:
            self.open_streams -= 1
