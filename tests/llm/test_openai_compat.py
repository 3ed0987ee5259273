"""The OpenAI-compatible backend against a real scripted server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable

import httpcore
import pytest

from strongroom.errors import (
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BadBackendResponse,
    RateLimited,
)
from strongroom.llm.openai_compat import OpenAICompatible, Timeouts
from strongroom.llm.protocol import ChatModel, complete
from strongroom.llm.types import ChatRequest, Delta, Usage
from strongroom.testing.chat_contract import ChatModelFactory, Script, ToolCallingContract
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.llm.helpers import server_reply

pytestmark = pytest.mark.integration

SECRET = "sk-test-very-secret-0123456789"


async def collect(backend: OpenAICompatible, request: ChatRequest) -> list[Delta]:
    return [d async for d in backend.stream(request)]


class TestOpenAICompatible(ToolCallingContract):
    """Over real HTTP against the scripted server, with a pool of two connections (so that
    streams closed early and not released would leave the next call waiting, then timing out)."""

    @pytest.fixture
    def chat_model(self, make_server: Callable[..., FakeOpenAIServer]) -> ChatModelFactory:
        def make(*script: Script) -> ChatModel:
            server = make_server(server_reply(script[-1]))
            server.script(*map(server_reply, script[:-1]))
            return OpenAICompatible(server.url, "contract", max_connections=2, timeouts=Timeouts(first_token=5))

        return make


def test_streams_text_and_the_servers_usage(server: FakeOpenAIServer) -> None:
    async def main() -> list[Delta]:
        async with OpenAICompatible(server.url, "bank-llm-8b", api_key=SECRET) as backend:
            return await collect(backend, ChatRequest.of("What is the CET1 ratio?", max_tokens=50, user="alice"))

    deltas = asyncio.run(main())
    assert "".join(d.text for d in deltas) == "The bank's capital ratio is 14%."
    assert len(deltas) > 3  # streamed, not one blob
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage == Usage(prompt_tokens=5, completion_tokens=6)
    body = server.requests[0]
    assert body["model"] == "bank-llm-8b" and body["stream"] is True
    assert body["max_tokens"] == 50 and body["user"] == "alice"
    assert body["stream_options"] == {"include_usage": True}
    assert server.headers[0]["authorization"] == f"Bearer {SECRET}"


def test_reuses_pooled_connections(server: FakeOpenAIServer) -> None:
    async def main() -> None:
        async with OpenAICompatible(server.url, "m") as backend:
            for _ in range(5):
                await complete(backend, ChatRequest.of("hi"))

    asyncio.run(main())
    assert len(server.requests) == 5
    assert server.connections == 1


def test_without_stream_usage_no_usage_is_asked_or_reported(server: FakeOpenAIServer) -> None:
    async def main() -> list[Delta]:
        async with OpenAICompatible(server.url, "m", stream_usage=False) as backend:
            return await collect(backend, ChatRequest.of("hi"))

    deltas = asyncio.run(main())
    assert "stream_options" not in server.requests[0]
    assert deltas[-1].usage is None


@pytest.mark.parametrize(
    ("reply", "error", "retryable"),
    [
        (Reply.error(500), BackendUnavailable, True),
        (Reply.error(503), BackendUnavailable, True),
        (Reply.rate_limited(retry_after=2), RateLimited, True),
        (Reply.error(401, "invalid api key"), BackendRejected, False),
        (Reply.error(400, "bad parameter"), BackendRejected, False),
        (Reply(malformed_after=1), BadBackendResponse, False),
        (Reply(drop_after=0), BackendUnavailable, True),
    ],
)
def test_failures_map_to_the_gateway_tree(
    server: FakeOpenAIServer, reply: Reply, error: type[BackendError], retryable: bool
) -> None:
    server.script(reply)

    async def main() -> None:
        async with OpenAICompatible(server.url, "m") as backend:
            await complete(backend, ChatRequest.of("hi"))

    with pytest.raises(error) as info:
        asyncio.run(main())
    assert info.value.retryable is retryable
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == 2


def test_a_drop_mid_stream_comes_after_the_text_already_sent(server: FakeOpenAIServer) -> None:
    server.script(Reply.stream("one two three four", drop_after=2))
    got: list[str] = []

    async def main() -> None:
        async with OpenAICompatible(server.url, "m") as backend:
            async for d in backend.stream(ChatRequest.of("hi")):
                got.append(d.text)

    with pytest.raises(BackendUnavailable, match="dropped mid-stream"):
        asyncio.run(main())
    assert "".join(got) == "one two "


def test_a_stream_cut_after_the_last_token_is_still_an_error(server: FakeOpenAIServer) -> None:
    server.script(Reply(tokens=("a", "b"), drop_after=2))

    async def main() -> None:
        async with OpenAICompatible(server.url, "m") as backend:
            await complete(backend, ChatRequest.of("hi"))

    with pytest.raises(BackendUnavailable, match="dropped mid-stream"):
        asyncio.run(main())


def test_slow_first_token_times_out(server: FakeOpenAIServer) -> None:
    server.script(Reply(first_token_delay=2.0))

    async def main() -> None:
        async with OpenAICompatible(server.url, "m", timeouts=Timeouts(first_token=0.2)) as backend:
            await complete(backend, ChatRequest.of("hi"))

    with pytest.raises(BackendTimeout, match="before the first token") as info:
        asyncio.run(main())
    assert info.value.retryable


def test_no_response_at_all_times_out(server: FakeOpenAIServer) -> None:
    server.script(Reply(hang=True))

    async def main() -> None:
        async with OpenAICompatible(server.url, "m", timeouts=Timeouts(first_token=0.2)) as backend:
            await complete(backend, ChatRequest.of("hi"))

    with pytest.raises(BackendTimeout, match="first-token timeout"):
        asyncio.run(main())


def test_total_timeout_bounds_a_slow_stream(server: FakeOpenAIServer) -> None:
    server.script(Reply(tokens=tuple("abcdefghij"), token_delay=0.1))

    async def main() -> None:
        async with OpenAICompatible(server.url, "m", timeouts=Timeouts(total=0.35)) as backend:
            await complete(backend, ChatRequest.of("hi"))

    with pytest.raises(BackendTimeout, match="past the total timeout"):
        asyncio.run(main())


def test_idle_timeout_between_tokens(server: FakeOpenAIServer) -> None:
    server.script(Reply(tokens=("a", "b", "c"), token_delay=1.0))
    got: list[str] = []

    async def main() -> None:
        async with OpenAICompatible(server.url, "m", timeouts=Timeouts(idle=0.2)) as backend:
            async for d in backend.stream(ChatRequest.of("hi")):
                got.append(d.text)

    with pytest.raises(BackendTimeout, match="between tokens"):
        asyncio.run(main())
    assert got == ["a"]


class SlowTransport:
    """A transport without a socket: the backend falls back to timing each read."""

    def __init__(self, delays: list[float]) -> None:
        self.delays = delays

    async def _body(self) -> AsyncIterator[bytes]:
        for i, delay in enumerate(self.delays):
            await asyncio.sleep(delay)
            yield b'data: {"choices":[{"delta":{"content":"t%d "}}]}\n\n' % i
        yield b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        return httpcore.Response(200, headers=[(b"content-type", b"text/event-stream")], content=self._body())

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    ("delays", "timeouts", "phase"),
    [
        ([0.5], Timeouts(first_token=0.1), "before the first token"),
        ([0, 0.5], Timeouts(idle=0.1), "between tokens"),
        ([0, 0.1, 0.1, 0.1], Timeouts(total=0.25), "past the total timeout"),
    ],
)
def test_timeouts_without_a_socket_to_watch(delays: list[float], timeouts: Timeouts, phase: str) -> None:
    async def main() -> None:
        backend = OpenAICompatible("http://x/v1", "m", timeouts=timeouts, transport=SlowTransport(delays))
        async with backend:
            await complete(backend, ChatRequest.of("hi"))

    with pytest.raises(BackendTimeout, match=phase):
        asyncio.run(main())

    # and without timeouts in the way the same transport answers
    async def fine() -> str:
        async with OpenAICompatible("http://x/v1", "m", transport=SlowTransport(delays)) as backend:
            return (await complete(backend, ChatRequest.of("hi")))[0]

    assert asyncio.run(fine()).startswith("t0 ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_unavailable_and_names_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://user:pw@127.0.0.1:{free_port()}/v1"

    async def main() -> None:
        async with OpenAICompatible(url, "m", api_key=SECRET, name="dead") as backend:
            await complete(backend, ChatRequest.of("hi"))

    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendUnavailable, match="cannot reach") as info:
        asyncio.run(main())
    for text in (str(info.value), caplog.text, repr(OpenAICompatible(url, "m", api_key=SECRET))):
        assert SECRET not in text
        assert "pw@" not in text


def test_the_api_key_never_reaches_logs_or_errors(
    make_server: Callable[..., FakeOpenAIServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(Reply.error(401, "invalid api key"))
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with OpenAICompatible(server.url, "m", api_key=SECRET) as backend:
            await complete(backend, ChatRequest.of("hi"))

    with pytest.raises(BackendRejected) as info:
        asyncio.run(main())
    assert SECRET not in str(info.value) and SECRET not in caplog.text


class OneBodyTransport:
    """A transport double that answers every request with one fixed body, in the given pieces."""

    def __init__(self, *pieces: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.pieces = pieces
        self.headers = [(b"content-type", b"text/event-stream"), *headers]
        self.sent: list[httpcore.Request] = []

    async def _body(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        self.sent.append(request)
        return httpcore.Response(200, headers=self.headers, content=self._body())

    async def aclose(self) -> None:
        pass


EVENTS = (
    b"".join(b'data: {"choices":[{"delta":{"content":"%s"}}]}\n\n' % t for t in (b"Net ", b"income ", b"rose"))
    + b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


def test_events_of_one_read_reach_the_caller_as_one_delta() -> None:
    async def main(transport: OneBodyTransport) -> list[Delta]:
        async with OpenAICompatible("http://x/v1", "m", transport=transport) as backend:
            return await collect(backend, ChatRequest.of("hi"))

    together = asyncio.run(main(OneBodyTransport(EVENTS)))
    assert [d.text for d in together] == ["Net income rose", ""]
    assert together[-1].finish_reason == "stop"
    # split anywhere, even inside an event, the caller gets the same text and nothing twice
    pieces = [EVENTS[i : i + 7] for i in range(0, len(EVENTS), 7)]
    split = asyncio.run(main(OneBodyTransport(*pieces)))
    assert "".join(d.text for d in split) == "Net income rose" and len(split) > 2


def test_a_gzip_compressed_stream_is_read_and_an_unknown_encoding_is_a_clear_error() -> None:
    import gzip

    async def main(transport: OneBodyTransport) -> str:
        async with OpenAICompatible("http://x/v1", "m", transport=transport) as backend:
            return (await complete(backend, ChatRequest.of("hi")))[0]

    packed = gzip.compress(EVENTS)
    gz = OneBodyTransport(packed[:20], packed[20:], headers=((b"content-encoding", b"gzip"),))
    assert asyncio.run(main(gz)) == "Net income rose"
    with pytest.raises(BadBackendResponse, match=r"compressed with 'br'.*send it uncompressed"):
        asyncio.run(main(OneBodyTransport(EVENTS, headers=((b"content-encoding", b"br"),))))
    with pytest.raises(BadBackendResponse, match="gzip event stream is corrupt"):
        asyncio.run(main(OneBodyTransport(b"not gzip", headers=((b"content-encoding", b"gzip"),))))


def test_request_headers_host_length_and_basic_auth_from_the_url() -> None:
    transport = OneBodyTransport(EVENTS)

    async def main() -> None:
        async with OpenAICompatible("http://svc:pw@10.0.0.5:8000/v1", "m", transport=transport) as backend:
            await complete(backend, ChatRequest.of("hi"))

    asyncio.run(main())
    request = transport.sent[0]
    headers = dict(request.headers)
    assert headers[b"host"] == b"10.0.0.5:8000"
    assert headers[b"authorization"] == b"Basic c3ZjOnB3"  # svc:pw
    assert bytes(request.url.target) == b"/v1/chat/completions"
    assert int(headers[b"content-length"]) > 0


@pytest.mark.parametrize("url", ["ftp://host/v1", "vllm:8000/v1", ""])
def test_a_base_url_that_is_not_http_is_refused_at_once(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        OpenAICompatible(url, "m")


def test_an_ipv6_backend_gets_a_bracketed_host_header() -> None:
    transport = OneBodyTransport(EVENTS)

    async def main() -> None:
        async with OpenAICompatible("http://[::1]:8000/v1", "m", transport=transport) as backend:
            await complete(backend, ChatRequest.of("hi"))

    asyncio.run(main())
    assert dict(transport.sent[0].headers)[b"host"] == b"[::1]:8000"
