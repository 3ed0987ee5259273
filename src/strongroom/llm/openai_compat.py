"""A ChatModel for any server speaking OpenAI's ``/v1/chat/completions`` with SSE streaming:
vLLM, TGI, Ollama, llama.cpp's server, hosted endpoints.

Errors map to the gateway tree: connect errors, 5xx, drops and timeouts are retryable;
429 is RateLimited (retryable, with the server's Retry-After); other 4xx are not retryable;
malformed SSE is BadBackendResponse. The API key is sent as a bearer token and never
appears in a repr, a log line or an error message.

The HTTP layer is httpcore's connection pool (httpx's own engine) without httpx's client on
top: the gateway needs neither cookies, redirects, auth flows nor URL merging, and skipping
them takes about a fifth off the CPU each streamed call costs the caller (BENCHMARKS.md §5).
Events that arrive in the same network read go to the caller as one delta.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol

import httpcore
import httpx

from strongroom.errors import BackendTimeout, BackendUnavailable, BadBackendResponse
from strongroom.llm.sse import DONE, SSEDecoder, error_from_body, parse_event
from strongroom.llm.tool_calls import (
    ToolCallAssembler,
    ToolChunk,
    message_to_wire,
    tool_choice_to_wire,
    tools_to_wire,
)
from strongroom.llm.types import ChatRequest, Delta, ToolCall, Usage
from strongroom.llm.watchdog import Watchdog

__all__ = ["OpenAICompatible", "Timeouts", "Transport"]

log = logging.getLogger("strongroom.llm.openai")

_ERROR_BODY_LIMIT = 2048

# httpcore's failures share no base class but Exception
_TRANSPORT_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException, httpcore.ProxyError)


class Transport(Protocol):
    """What the adapter sends requests through: httpcore's connection pool, or a test double."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed to connect, to the first token, between tokens, and for the whole answer.

    Before the first token a timeout is retryable and the gateway may fail over; after it,
    the gateway does not fail over unless the request allows it.
    """

    connect: float = 5.0
    first_token: float = 30.0
    idle: float = 60.0
    total: float = 600.0


def _public_url(url: str) -> str:
    """``url`` without user info, so credentials in a URL never reach a message."""
    u = httpx.URL(url)
    return str(u.copy_with(username=None, password=None)) if u.userinfo else str(u)


def _retry_after(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header in seconds from ``now``: delta-seconds or an HTTP date (RFC 9110).

    >>> _retry_after("2.5"), _retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)
    (2.5, 10.0)
    """
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # unreadable: the gateway's own backoff applies
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _header(response: httpcore.Response, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case) in ``response``, as text."""
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _decompressed(chunks: AsyncIterator[bytes], encoding: str, who: str) -> AsyncIterator[bytes]:
    """Undo a gzip or deflate content encoding (servers may ignore ``accept-encoding: identity``)."""
    if encoding == "gzip":
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    else:
        raise BadBackendResponse(
            f"{who}: the event stream is compressed with {encoding!r}, which the gateway cannot read; "
            "configure the server (or the proxy in front of it) to send it uncompressed"
        )
    try:
        async for chunk in chunks:
            if out := decoder.decompress(chunk):
                yield out
        if out := decoder.flush():
            yield out
    except zlib.error as exc:
        raise BadBackendResponse(f"{who}: the {encoding} event stream is corrupt ({exc})") from exc


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        return text[:200] or "(empty body)"
    err = obj.get("error", obj) if isinstance(obj, dict) else obj
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or err)[:200]
    return str(err)[:200]


class OpenAICompatible:
    """Stream chat completions from an OpenAI-compatible server over a pool of keep-alive connections.

        backend = OpenAICompatible("http://vllm:8000/v1", "meta-llama/Llama-3.1-8B-Instruct",
                                   api_key=os.environ["VLLM_KEY"], name="vllm-a")
        async for delta in backend.stream(ChatRequest.of("Summarise the 10-Q")):
            print(delta.text, end="")
        await backend.aclose()

    ``base_url`` ends where OpenAI's does, at ``/v1``. ``stream_usage`` asks the server for
    a final usage chunk (``stream_options.include_usage``); turn it off for servers that
    reject unknown fields, and the gateway estimates usage instead.

    Tools (``request.tools``, ``tool_choice``) are sent in OpenAI's shape. Streamed
    tool-call fragments are joined and the whole calls come once, on the last delta, with
    ``finish_reason="tool_calls"`` (also when a server says ``stop``); their arguments are
    the text the model wrote, never parsed here. A body that ends in the middle of a tool
    call is BadBackendResponse.
    """

    #: this backend passes tools to the server (the gateway checks it before sending tools)
    supports_tools = True

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        name: str | None = None,
        timeouts: Timeouts = Timeouts(),
        max_connections: int = 100,
        headers: Mapping[str, str] | None = None,
        stream_usage: bool = True,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = name or model
        self.timeouts = timeouts
        self.stream_usage = stream_usage
        self.max_connections = max_connections
        self._where = _public_url(self.base_url)
        url = httpx.URL(f"{self.base_url}/chat/completions")
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"{self._where!r} is not an http(s) URL; give the server's base URL, e.g. http://vllm:8000/v1"
            )
        self._url = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
        hostname = b"[%b]" % url.raw_host if b":" in url.raw_host else url.raw_host  # an IPv6 literal
        host = hostname if url.port is None else b"%b:%d" % (hostname, url.port)
        # identity: a compressed event stream would be buffered
        extra = {k.lower(): v for k, v in (headers or {}).items()}
        if api_key:
            extra["authorization"] = f"Bearer {api_key}"
        if url.userinfo and "authorization" not in extra:  # what httpx did with user:pw@ in a URL
            pair = f"{url.username}:{url.password}".encode()
            extra["authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        fields = {
            "host": host.decode("ascii"),
            "content-type": "application/json",
            "accept": "text/event-stream",
            "accept-encoding": "identity",
            **extra,
        }
        self._headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in fields.items()]
        # connect has its own limit; the first-token deadline bounds pool waits, writes and headers
        self._extensions = {"timeout": {"connect": timeouts.connect, "read": None, "write": None, "pool": None}}
        self._transport = transport
        self._pool: Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatible(name={self.name!r}, base_url={self._where!r}, model={self.model!r})"

    def _get_pool(self) -> Transport:
        # A pooled connection belongs to the event loop that opened it.
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            self._pool = self._transport or httpcore.AsyncConnectionPool(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
                keepalive_expiry=5.0,
            )
            self._loop = loop
        return self._pool

    async def aclose(self) -> None:
        """Close pooled connections. The backend opens a new pool if used again."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.aclose()

    async def __aenter__(self) -> OpenAICompatible:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body sent for ``request`` (the deployment's model id replaces the route name)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": m.role, "content": m.content}
                if not m.tool_calls and m.tool_call_id is None
                else message_to_wire(m)
                for m in request.messages
            ],
            "stream": True,
        }
        if request.tools:
            body["tools"] = tools_to_wire(request.tools)
        if request.tool_choice is not None:
            body["tool_choice"] = tool_choice_to_wire(request.tool_choice)
        for key in ("max_tokens", "temperature", "top_p", "seed", "user"):
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        if request.stop:
            body["stop"] = list(request.stop)
        if self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    async def _send(self, request: ChatRequest, first_deadline: float) -> httpcore.Response:
        """Send ``request`` and return the response once its headers arrived."""
        pool = self._get_pool()
        content = json.dumps(self.body(request), separators=(",", ":")).encode()
        http_request = httpcore.Request(
            b"POST",
            self._url,
            headers=[*self._headers, (b"content-length", b"%d" % len(content))],
            content=content,
            extensions=self._extensions,
        )
        t = self.timeouts
        try:
            async with asyncio.timeout_at(first_deadline):
                return await pool.handle_async_request(http_request)
        except TimeoutError as exc:
            raise BackendTimeout(
                f"{self.name}: no response from {self._where} within the first-token timeout "
                f"({t.first_token:g}s); the gateway retries and fails over; check the backend's load"
            ) from exc
        except httpcore.ConnectTimeout as exc:
            raise BackendTimeout(
                f"{self.name}: could not connect to {self._where} within {t.connect:g}s; "
                "check that the server is up and reachable"
            ) from exc
        except httpcore.TimeoutException as exc:
            raise BackendTimeout(f"{self.name}: timed out talking to {self._where}: {type(exc).__name__}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise BackendUnavailable(
                f"{self.name}: cannot reach {self._where} ({type(exc).__name__}); "
                "check that the server is up and the URL is right"
            ) from exc

    async def _raise_for_status(self, response: httpcore.Response, deadline: float) -> None:
        body = b""
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in response.aiter_stream():
                    body += chunk
                    if len(body) >= _ERROR_BODY_LIMIT:
                        break
        except (TimeoutError, *_TRANSPORT_ERRORS):
            pass  # the status alone is enough to classify the failure
        raise error_from_body(
            response.status,
            _error_text(body),
            who=self.name,
            retry_after=_retry_after(_header(response, b"retry-after")),
        )

    def _timeout(self, phase: str) -> BackendTimeout:
        return BackendTimeout(
            f"{self.name}: stream from {self._where} timed out {phase}; "
            "check the backend's load or raise the deployment's timeouts"
        )

    def _dropped(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"{self.name}: connection to {self._where} dropped mid-stream ({type(exc).__name__}); "
            "the gateway fails over only if no text reached the caller"
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        t = self.timeouts
        start = loop.time()
        total_deadline = start + t.total
        first_deadline = min(start + t.first_token, total_deadline)
        response = await self._send(request, first_deadline)
        dog: Watchdog | None = None
        try:
            if response.status != 200:
                await self._raise_for_status(response, first_deadline)
            # One timer for the whole body when we can reach the socket, else one per read.
            dog = Watchdog.attach(response, loop, first_deadline, total_deadline, t.idle)
            chunks = response.aiter_stream()
            encoding = (_header(response, b"content-encoding") or "identity").strip().lower()
            if encoding != "identity":
                chunks = _decompressed(chunks, encoding, self.name)
            decoder = SSEDecoder()
            tools: ToolCallAssembler | None = None  # made at the first tool-call fragment
            got_token = False
            finish: str | None = None
            usage: Usage | None = None
            ended = False
            deadline = first_deadline
            while not ended:
                try:
                    if dog is not None:
                        dog.chunk(got_token=got_token)  # the idle window starts as we wait
                        chunk = await anext(chunks)
                    else:
                        # the timeout wraps only the read, never a yield (a timeout scope
                        # spanning a yield would cancel the caller's code instead of ours)
                        deadline = min(total_deadline, loop.time() + t.idle) if got_token else first_deadline
                        async with asyncio.timeout_at(deadline):
                            chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    if not got_token:
                        raise self._timeout("before the first token") from exc
                    phase = "past the total timeout" if deadline >= total_deadline else "between tokens"
                    raise self._timeout(phase) from exc
                except _TRANSPORT_ERRORS as exc:
                    if dog is not None and dog.expired:
                        raise self._timeout(dog.expired) from exc
                    raise self._dropped(exc) from exc
                try:
                    events = decoder.feed_bytes(chunk)
                except UnicodeDecodeError as exc:
                    raise BadBackendResponse(f"{self.name}: the event stream is not UTF-8 text") from exc
                texts: list[str] = []  # the events of one read reach the caller as one delta
                for data in events:
                    if data == DONE:
                        ended = True
                        break
                    got = parse_event(data)
                    if type(got) is str:  # the common chunk: text and nothing else
                        texts.append(got)
                        continue
                    if got is None:
                        continue
                    if type(got) is ToolChunk:
                        if tools is None:
                            tools = ToolCallAssembler()
                        tools.feed(got.pieces)
                        got_token = True  # the model is writing: the idle timeout applies now
                        got = got.delta
                    assert isinstance(got, Delta)
                    if got.finish_reason is not None or got.usage is not None:
                        finish = got.finish_reason or finish  # it goes on the last delta
                        usage = got.usage or usage
                    if got.text:
                        texts.append(got.text)
                if texts:
                    got_token = True
                    yield Delta(texts[0] if len(texts) == 1 else "".join(texts))
            if ended:
                await self._drain(chunks, None if dog else min(total_deadline, loop.time() + t.idle))
            else:
                finish, usage, tools = self._tail(decoder, finish, usage, tools)
            if finish is None and not got_token and usage is None:
                raise BadBackendResponse(f"{self.name}: the backend sent [DONE] without any answer")
            calls: tuple[ToolCall, ...] = ()
            if tools is not None:
                calls = tools.calls()
                if finish is None or finish == "stop":
                    finish = "tool_calls"
            yield Delta("", finish or "stop", usage, calls)
        finally:
            if dog is not None:
                dog.cancel()
            await response.aclose()

    def _tail(
        self, decoder: SSEDecoder, finish: str | None, usage: Usage | None, tools: ToolCallAssembler | None
    ) -> tuple[str | None, Usage | None, ToolCallAssembler | None]:
        """The body ended without [DONE]: accept it only if the answer had finished."""
        try:
            tail = decoder.flush()
        except UnicodeDecodeError as exc:
            raise BadBackendResponse(f"{self.name}: the event stream is not UTF-8 text") from exc
        if tail is not None and tail != DONE and (got := parse_event(tail)) is not None:
            delta = Delta(got) if isinstance(got, str) else got
            if isinstance(delta, ToolChunk):
                if delta.delta.finish_reason is None:
                    raise self._cut_in_call()
                tools = tools or ToolCallAssembler()
                tools.feed(delta.pieces)
                delta = delta.delta
            if delta.text:
                raise BackendUnavailable(f"{self.name}: the stream ended inside an event; the connection was cut")
            finish = delta.finish_reason or finish
            usage = delta.usage or usage
        if finish is None and tools is not None:
            raise self._cut_in_call()
        if finish is None:
            raise BackendUnavailable(
                f"{self.name}: stream from {self._where} ended without a finish reason or [DONE]; "
                "the connection was probably cut"
            )
        return finish, usage, tools

    def _cut_in_call(self) -> BadBackendResponse:
        return BadBackendResponse(
            f"{self.name}: the stream from {self._where} ended in the middle of a tool call "
            "(no finish reason, no [DONE]); the call's arguments may be cut, so none is passed on"
        )

    @staticmethod
    async def _drain(chunks: AsyncIterator[bytes], deadline: float | None) -> None:
        """Read the body to its end so the connection goes back to the pool (the watchdog,
        when there is one, still bounds the wait: ``deadline`` is None then)."""
        try:
            if deadline is None:
                async for _ in chunks:
                    pass
                return
            async with asyncio.timeout_at(deadline):
                async for _ in chunks:
                    pass
        except (TimeoutError, BadBackendResponse, *_TRANSPORT_ERRORS):
            pass  # the answer is complete; the connection is closed instead of reused
