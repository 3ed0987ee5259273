#!/usr/bin/env python3
"""CPU per streamed call of the gateway's own code, without sockets or scheduler noise.

A transport double replays the fake backend's reply (a role chunk, 16 text chunks, a
finish chunk with usage, [DONE]) as 19 separate reads, with a socket stand-in so the
adapter takes its production path (the watchdog, not per-read timers). Three loops run
in one process, each the best of ``--repeats`` x ``--calls`` calls:

  raw      the leanest consumer: split lines, json.loads each data line
  adapter  strongroom's OpenAICompatible adapter over the same bytes
  gateway  Gateway -> OpenAICompatible (route, budgets, breaker, cap, metrics, result)

    python benchmarks/gateway_cpu_bench.py        # ~20 s

Prints JSON lines, then the adapter's and the gateway layer's cost over the raw loop.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpcore
from prometheus_client import CollectorRegistry

from strongroom.llm import (
    Budget,
    ChatRequest,
    Deployment,
    Gateway,
    GatewayMetrics,
    Limits,
    OpenAICompatible,
    Rate,
    Route,
    StaticRoutes,
    Target,
)


def _event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _reply(tokens: int) -> list[bytes]:
    head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "bench"}
    parts = [_event({**head, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})]
    parts += [
        _event({**head, "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]})
        for i in range(tokens)
    ]
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
    parts.append(_event({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}))
    parts.append(b"data: [DONE]\n\n")
    return parts


class _Socket:
    def shutdown(self, how: int) -> None:  # the watchdog's deadline action; never due here
        pass


class _Stream:
    def get_extra_info(self, name: str) -> Any:
        return _Socket() if name == "socket" else None


class ReplayTransport:
    """Answers every request with the same reply, one read per event."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.stream = _Stream()

    async def _body(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        return httpcore.Response(
            200,
            headers=[(b"content-type", b"text/event-stream")],
            content=self._body(),
            extensions={"network_stream": self.stream},
        )

    async def aclose(self) -> None:
        pass


async def main(args: argparse.Namespace) -> None:
    transport = ReplayTransport(_reply(args.tokens))
    adapter = OpenAICompatible("http://bench/v1", "bench", name="fake", transport=transport)
    gateway = Gateway(
        StaticRoutes([Route("bench", 1, (Target("fake", 1),))]),
        [Deployment("fake", adapter, max_concurrency=256)],
        limits=Limits(max_tokens=64, default_principal_budget=Budget(requests=Rate(1e9), tokens=Rate(1e12))),
        metrics=GatewayMetrics(CollectorRegistry()),
    )
    request = ChatRequest.of("What was the bank's CET1 ratio?", model="bench", max_tokens=64, user="bench")

    async def raw() -> None:
        response = await transport.handle_async_request(httpcore.Request("POST", "http://bench/v1"))
        tail = b""
        async for chunk in response.aiter_stream():
            *lines, tail = (tail + chunk).split(b"\n")
            for line in lines:
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    event = json.loads(line[6:])
                    if event.get("choices") and event["choices"][0]["delta"].get("content"):
                        pass
        await response.aclose()

    async def via_adapter() -> None:
        async for _ in adapter.stream(request):
            pass

    async def via_gateway() -> None:
        async with gateway.stream(request) as s:
            async for _ in s:
                pass

    loops: dict[str, Callable[[], Awaitable[None]]] = {"raw": raw, "adapter": via_adapter, "gateway": via_gateway}
    best = {name: float("inf") for name in loops}
    for call in loops.values():  # warm up
        for _ in range(500):
            await call()
    for _ in range(args.repeats):  # interleaved, so drift hits every loop alike
        for name, call in loops.items():
            started = time.process_time()
            for _ in range(args.calls):
                await call()
            best[name] = min(best[name], (time.process_time() - started) / args.calls * 1e6)
    for name, us in best.items():
        print(json.dumps({"loop": name, "cpu_us_per_call": round(us, 1), "reads": len(transport.parts)}))
    print(
        f"adapter over raw: {best['adapter'] - best['raw']:.1f} µs; "
        f"gateway layer over adapter: {best['gateway'] - best['adapter']:.1f} µs per {args.tokens}-token stream"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
