"""A scripted OpenAI-compatible server on loopback, for tests, contract suites and benchmarks.

It speaks just enough HTTP/1.1 (keep-alive, chunked SSE) to serve ``/v1/chat/completions``
and ``/v1/models``, and answers each request with the next scripted :class:`Reply`:
a normal stream, tool calls (whole or in fragments), a slow first token, an error status,
a 429, a dropped connection, a malformed event, or no answer at all::

    with FakeOpenAIServer(Reply.stream("Hello world.")) as server:
        server.script(Reply.error(500), Reply.rate_limited())
        backend = OpenAICompatible(server.url, "fake")
        ...                     # 1st call: 500, 2nd: 429, then "Hello world." for good
        server.requests[0]      # the JSON bodies received, in order

A script entry may also be a function of the request's JSON body that returns a Reply,
for a model that reacts to the tool results it is sent::

    def model(body: dict) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply.stream("The ratio is 14.2%.")
        return Reply.calls(tool_call("sql", {"query": "select ratio"}), split=5)

    server = FakeOpenAIServer(model)

Run it alone (the benchmark does) with ``python -m strongroom.testing.openai_server --port 0``;
it prints ``LISTENING <port>`` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from strongroom.llm.types import ToolCall

__all__ = ["FakeOpenAIServer", "Reply", "Responder"]

_WORDS = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``drop_after``/``malformed_after``/``cut_after``: events sent
    before the connection is cut, a garbage event is sent, or the body ends cleanly with
    no finish reason and no [DONE]; ``hang``: never answer.

    ``tool_calls`` stream after the text, each in fragments of ``split`` characters of its
    arguments (the first fragment brings the id and name), or whole in one event when
    ``split`` is None; ``interleave`` sends parallel calls' fragments in turn;
    ``send_ids=False`` leaves ids out, as some servers do. A call with an empty id gets
    ``call_1``, ``call_2``, ... from the server. Events are the text tokens, then the tool
    fragments: the ``*_after`` counts run over both.
    """

    tokens: tuple[str, ...] = ("Hello", " world", ".")
    status: int = 200
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    drop_after: int | None = None
    malformed_after: int | None = None
    hang: bool = False
    done: bool = True
    usage: bool = True
    finish_reason: str = "stop"
    tool_calls: tuple[ToolCall, ...] = ()
    split: int | None = None
    interleave: bool = False
    send_ids: bool = True
    cut_after: int | None = None

    @classmethod
    def stream(cls, text: str, **kw: Any) -> Reply:
        """Stream ``text`` one word (with its trailing space) per event."""
        return cls(tokens=tuple(_WORDS.findall(text)), **kw)

    @classmethod
    def calls(cls, *calls: ToolCall, text: str = "", **kw: Any) -> Reply:
        """Call ``calls`` (in parallel when there are several), after ``text`` if any, with
        ``finish_reason="tool_calls"`` unless ``kw`` says otherwise."""
        kw.setdefault("finish_reason", "tool_calls")
        return cls(tokens=tuple(_WORDS.findall(text)), tool_calls=tuple(calls), **kw)

    @classmethod
    def error(cls, status: int = 500, message: str = "scripted failure") -> Reply:
        return cls(status=status, message=message)

    @classmethod
    def rate_limited(cls, retry_after: float | None = 0.0) -> Reply:
        headers = (("retry-after", f"{retry_after:g}"),) if retry_after is not None else ()
        return cls(status=429, message="scripted rate limit", headers=headers)


#: a script entry that answers a request's JSON body (run on the server's thread)
Responder: TypeAlias = Callable[[dict[str, Any]], Reply]


def _fragments(reply: Reply, calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    """The ``delta`` objects that stream ``calls`` as ``reply`` says."""
    per_call: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        args = call.arguments
        size = reply.split or max(1, len(args))
        pieces = [args[i : i + size] for i in range(0, len(args), size)] or [""]
        first: dict[str, Any] = {"index": index, "type": "function", "function": {"name": call.name}}
        if reply.send_ids:
            first["id"] = call.id
        first["function"]["arguments"] = pieces[0]
        frags = [first] + [{"index": index, "function": {"arguments": p}} for p in pieces[1:]]
        per_call.append([{"tool_calls": [f]} for f in frags])
    if not reply.interleave:
        return [d for frags in per_call for d in frags]
    out: list[dict[str, Any]] = []
    for i in range(max((len(f) for f in per_call), default=0)):
        out.extend(frags[i] for frags in per_call if i < len(frags))
    return out


@dataclass
class _Stats:
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(obj: object) -> bytes:
    return _chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


class FakeOpenAIServer:
    """Serve scripted replies on 127.0.0.1 from a background thread (its own event loop)."""

    def __init__(self, default: Reply | Responder | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.default: Reply | Responder = default or Reply()
        self.host = host
        self.port = port
        self._script: deque[Reply | Responder] = deque()
        self._call_ids = 0
        self.failures: list[str] = []  # what scripted functions raised (each answered 500)
        self._stats = _Stats()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()

    # -- scripting and inspection (any thread) --------------------------------------------

    @property
    def url(self) -> str:
        """The OpenAI-style base URL, ending in ``/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *replies: Reply | Responder) -> None:
        """Answer the next requests with ``replies``, in order, then with the default again."""
        with self._lock:
            self._script.extend(replies)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The JSON bodies received, in order (tools, tool_choice and messages as sent)."""
        with self._lock:
            return list(self._stats.requests)

    @property
    def headers(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._stats.headers)

    @property
    def connections(self) -> int:
        return self._stats.connections

    @property
    def max_in_flight(self) -> int:
        return self._stats.max_in_flight

    def _next(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            entry = self._script.popleft() if self._script else self.default
        if isinstance(entry, Reply):
            return entry
        try:
            reply = entry(request)
            if not isinstance(reply, Reply):
                raise TypeError(f"the scripted function returned {type(reply).__name__}, not Reply")
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return Reply.error(500, f"the scripted function failed: {type(exc).__name__}: {exc}")
        return reply

    def _with_ids(self, calls: tuple[ToolCall, ...]) -> tuple[ToolCall, ...]:
        out = []
        for call in calls:
            if not call.id:
                with self._lock:
                    self._call_ids += 1
                    call = replace(call, id=f"call_{self._call_ids}")
            out.append(call)
        return tuple(out)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(target=self._serve_thread, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start within 10s")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._shutdown()))
            thread.join(10)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve_thread(self) -> None:
        asyncio.run(self._serve(self._ready))

    async def _serve(self, ready: threading.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if ready is not None:
            ready.set()
        try:
            await self._server.serve_forever()
        except asyncio.CancelledError:
            pass

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    # -- HTTP ------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._stats.connections += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        keep_alive = headers.get("connection", "").lower() != "close"
        if method == "GET" and path.rstrip("/").endswith("/models"):
            await self._json(writer, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
            return keep_alive
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await self._json(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return keep_alive
        request = json.loads(body or b"{}")
        stats = self._stats
        with self._lock:
            stats.requests.append(request)
            stats.headers.append(headers)
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            return await self._answer(writer, request, self._next(request)) and keep_alive
        finally:
            stats.in_flight -= 1

    async def _json(self, writer: asyncio.StreamWriter, status: int, obj: object, extra: str = "") -> None:
        data = json.dumps(obj).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
            f"{extra}\r\n".encode()
            + data
        )
        await writer.drain()

    async def _answer(self, writer: asyncio.StreamWriter, request: dict[str, Any], reply: Reply) -> bool:
        """Write ``reply``; False when the connection must not be reused."""
        if reply.hang:
            await asyncio.sleep(3600)
            return False
        if reply.status != 200:
            extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers)
            err = {"error": {"message": reply.message, "type": "scripted", "code": reply.status}}
            await self._json(writer, reply.status, err, extra)
            return True
        model = request.get("model", "fake")
        prompt_chars = sum(len(str(m.get("content") or "")) for m in request.get("messages", []))
        calls = self._with_ids(reply.tool_calls)
        deltas: list[dict[str, Any]] = [{"content": token} for token in reply.tokens]
        deltas += _fragments(reply, calls)
        usage = {
            "prompt_tokens": max(1, prompt_chars // 4),
            "completion_tokens": len(deltas),
            "total_tokens": max(1, prompt_chars // 4) + len(deltas),
        }
        if not request.get("stream"):
            text = "".join(reply.tokens)
            await asyncio.sleep(reply.first_token_delay)
            message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
            if calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in calls
                ]
            choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
            await self._json(writer, 200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                                           "model": model, "choices": [choice], "usage": usage})  # fmt: skip
            return True

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                    "model": model, "choices": [choice]}  # fmt: skip

        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + _event(chunk({"role": "assistant", "content": ""}))
        )
        await writer.drain()
        if reply.first_token_delay:
            await asyncio.sleep(reply.first_token_delay)
        for i, delta in enumerate(deltas):
            if reply.drop_after is not None and i >= reply.drop_after:
                writer.transport.abort()
                return False
            if reply.malformed_after is not None and i >= reply.malformed_after:
                writer.write(_chunk(b"data: {this is not json\n\n"))
                await writer.drain()
                break
            if reply.cut_after is not None and i >= reply.cut_after:
                writer.write(b"0\r\n\r\n")  # the body ends cleanly, mid-answer
                await writer.drain()
                return True
            if i and reply.token_delay:
                await asyncio.sleep(reply.token_delay)
            writer.write(_event(chunk(delta)))
            await writer.drain()
        else:
            if reply.drop_after is not None:
                writer.transport.abort()
                return False
            if reply.cut_after is not None:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return True
            writer.write(_event(chunk({}, reply.finish_reason)))
            options = request.get("stream_options") or {}
            if reply.usage and options.get("include_usage"):
                final = chunk({})
                final["choices"], final["usage"] = [], usage
                writer.write(_event(final))
        if reply.done:
            writer.write(_chunk(b"data: [DONE]\n\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def main(argv: list[str] | None = None) -> None:
    """Serve a fixed reply until killed (used by benchmarks/gateway_bench.py)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=16, help="tokens in the fixed reply")
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    reply = Reply(tokens=tuple(f"tok{i} " for i in range(args.tokens)), token_delay=args.token_delay)
    server = FakeOpenAIServer(reply, port=args.port)

    async def run() -> None:
        ready = threading.Event()
        serving = asyncio.ensure_future(server._serve(ready))
        while not ready.is_set():
            await asyncio.sleep(0.01)
        print(f"LISTENING {server.port}", flush=True)
        await serving

    asyncio.run(run())


if __name__ == "__main__":
    main()
