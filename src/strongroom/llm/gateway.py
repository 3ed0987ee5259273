"""The model gateway: one ChatModel in front of many deployments, with failover and limits.

For each call: look up the route's active version, check size limits, reserve budget, pick
the first deployment (champion/challenger split), then try deployments in order. A
deployment is skipped when its breaker is open or its concurrency cap is full; a retryable
error is retried on the same deployment after a short jittered backoff; any backend error
before text reached the caller fails over to the next deployment. Once text has reached
the caller the gateway fails over only if the request allows it, and then only continues
if the new answer starts with exactly what was already sent: the caller sees one
continuous answer, or a StreamInterrupted error, never a repeat.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass

from strongroom.llm.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from strongroom.llm.errors import (
    BackendError,
    DeploymentBusy,
    NoDeploymentAvailable,
    RateLimited,
    StreamInterrupted,
    UnknownRoute,
)
from strongroom.llm.limits import BucketStore, Budgets, Limits, check_request
from strongroom.llm.metrics import GatewayMetrics
from strongroom.llm.protocol import ChatModel
from strongroom.llm.routing import RetryPolicy, Route, RouteSource, draw_for, failover_order
from strongroom.llm.types import ChatRequest, ChatResult, Delta, Failover, Usage, estimate_tokens

__all__ = ["Deployment", "Gateway", "GatewayStream"]

log = logging.getLogger("strongroom.llm.gateway")


@dataclass(frozen=True)
class Deployment:
    """A named backend and how the gateway treats it.

    ``max_concurrency`` caps calls in flight to it; a call that finds the cap full waits up
    to ``queue_timeout_s`` for a slot, then fails over. ``retry`` overrides the gateway's
    retry policy for this deployment.

        Deployment("vllm-a", OpenAICompatible("http://gpu1:8000/v1", "llama-3.1-8b"),
                   max_concurrency=32, breaker=BreakerPolicy(failure_threshold=3))
    """

    name: str
    model: ChatModel
    max_concurrency: int | None = None
    queue_timeout_s: float = 0.0
    breaker: BreakerPolicy = BreakerPolicy()  # noqa: RUF009 - frozen value
    retry: RetryPolicy | None = None


class _Slot:
    """A deployment's run-time state: its breaker and its concurrency cap."""

    __slots__ = ("breaker", "deployment", "semaphore")

    def __init__(self, deployment: Deployment, breaker: CircuitBreaker) -> None:
        self.deployment = deployment
        self.breaker = breaker
        cap = deployment.max_concurrency
        self.semaphore = asyncio.Semaphore(cap) if cap else None

    async def acquire(self) -> bool:
        sem = self.semaphore
        if sem is None:
            return True
        if not sem.locked():
            await sem.acquire()  # returns at once: a slot is free
            return True
        if self.deployment.queue_timeout_s <= 0:
            return False
        try:
            async with asyncio.timeout(self.deployment.queue_timeout_s):
                await sem.acquire()
        except TimeoutError:
            return False
        return True

    def release(self) -> None:
        if self.semaphore is not None:
            self.semaphore.release()


class _Call:
    """What one call has done so far; read by GatewayStream."""

    __slots__ = ("attempts", "deployment", "failovers", "result", "route")

    def __init__(self) -> None:
        self.route: Route | None = None
        self.deployment: str | None = None
        self.failovers: list[Failover] = []
        self.attempts = 0
        self.result: ChatResult | None = None


class GatewayStream:
    """The deltas of one gateway call, and afterwards its :class:`ChatResult`.

        async with gateway.stream(ChatRequest.of("Who audits the bank?", model="chat")) as s:
            async for delta in s:
                print(delta.text, end="")
        print(s.result.deployment, s.result.route_version)

    Leaving the ``async with`` (or calling :meth:`aclose`) early releases the backend at once.
    """

    __slots__ = ("_call", "_gen")

    def __init__(self, gen: AsyncGenerator[Delta, None], call: _Call) -> None:
        self._gen = gen
        self._call = call

    def __aiter__(self) -> GatewayStream:
        return self

    async def __anext__(self) -> Delta:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def __aenter__(self) -> GatewayStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._gen.aclose()

    @property
    def route_version(self) -> int | None:
        """The version of the route serving this call, once it is known."""
        return self._call.route.version if self._call.route else None

    @property
    def deployment(self) -> str | None:
        """The deployment streaming now (or that answered)."""
        return self._call.deployment

    @property
    def result(self) -> ChatResult:
        """The finished call; raises RuntimeError before the stream has ended."""
        if self._call.result is None:
            raise RuntimeError("the stream has not finished: iterate it to the end first")
        return self._call.result


class Gateway:
    """Route chat calls to deployments with retries, breakers, failover, budgets and metrics.

        gateway = Gateway(
            StaticRoutes([Route("chat", 1, (Target("vllm-a", 90), Target("vllm-b", 10),
                                            Target("extractive", 0)))]),
            [Deployment("vllm-a", backend_a), Deployment("vllm-b", backend_b),
             Deployment("extractive", FunctionModel(extract))],
            limits=Limits(max_tokens=1024, default_principal_budget=Budget(tokens=Rate(50_000))),
            metrics=GatewayMetrics(CollectorRegistry()),
        )
        result = await gateway.chat(ChatRequest.of("Summarise the 10-Q", model="chat", user="alice"))

    A Gateway is itself a :class:`ChatModel`: ``gateway.stream(request)`` yields deltas,
    the last one with the finish reason and usage. It lives on one event loop.
    """

    def __init__(
        self,
        routes: RouteSource,
        deployments: Iterable[Deployment] = (),
        *,
        limits: Limits = Limits(),  # noqa: B008 - frozen value
        buckets: BucketStore | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen value
        metrics: GatewayMetrics | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.routes = routes
        self.limits = limits
        self.retry = retry
        self.metrics = metrics
        self._budgets = Budgets(limits, buckets)
        self._rng = random.Random(seed)
        self._clock = clock
        self._sleep = sleep
        self._slots: dict[str, _Slot] = {}
        for d in deployments:
            self.register(d)

    def register(self, deployment: Deployment) -> None:
        """Add (or replace) a deployment, e.g. the RAG layer's extractive last resort."""
        name = deployment.name
        on_change = None
        if self.metrics is not None:
            metrics = self.metrics
            metrics.breaker_state(name, BreakerState.CLOSED)

            def on_change(state: BreakerState) -> None:
                metrics.breaker_state(name, state)

        breaker = CircuitBreaker(deployment.breaker, clock=self._clock, on_change=on_change)
        self._slots[name] = _Slot(deployment, breaker)

    @property
    def deployments(self) -> list[str]:
        return sorted(self._slots)

    def breaker(self, deployment: str) -> CircuitBreaker:
        """The circuit breaker of ``deployment`` (KeyError if it is not registered)."""
        return self._slots[deployment].breaker

    async def aclose(self) -> None:
        """Close every backend that holds connections."""
        for slot in self._slots.values():
            close = getattr(slot.deployment.model, "aclose", None)
            if close is not None:
                await close()

    def stream(self, request: ChatRequest) -> GatewayStream:
        """Stream the answer to ``request``; ``request.model`` names the route."""
        call = _Call()
        return GatewayStream(self._run(request, call), call)

    async def chat(self, request: ChatRequest) -> ChatResult:
        """The whole answer to ``request`` and what served it."""
        async with self.stream(request) as s:
            async for _ in s:
                pass
        return s.result

    # -- the call -----------------------------------------------------------------------

    def _failed(self, call: _Call, route: Route, name: str, exc: BackendError, next_up: bool) -> None:
        call.failovers.append(Failover(name, type(exc).__name__, str(exc)))
        if self.metrics is not None:
            self.metrics.failover(route.name, name)
        if next_up:
            log.warning("route %s v%d: leaving %s: %s", route.name, route.version, name, exc)

    async def _run(self, request: ChatRequest, call: _Call) -> AsyncIterator[Delta]:
        start = self._clock()
        route = self.routes.get(request.model)
        if route is None:
            if self.metrics is not None:
                self.metrics.error(request.model, "-", "UnknownRoute")
            raise UnknownRoute(
                f"no route named {request.model!r}; known routes: {', '.join(self.routes.names()) or 'none'}; "
                "create one with `strongroom models set-route`"
            )
        call.route = route
        try:
            prompt_est, max_tokens = check_request(request, self.limits)
            if max_tokens != request.max_tokens:
                request = dataclasses.replace(request, max_tokens=max_tokens)
            reserved = prompt_est + (max_tokens or self.limits.reserve_tokens)
            reservation = await self._budgets.reserve(route.name, request.user, reserved)
        except Exception as exc:
            if self.metrics is not None:
                self.metrics.error(route.name, "-", type(exc).__name__)
            raise
        draw = draw_for(route.name, request.request_id) if request.request_id else self._rng.random()
        order = failover_order(route, draw)
        sent: list[str] = []
        used_tokens = 0
        try:
            for index, name in enumerate(order):
                last = index == len(order) - 1
                slot = self._slots.get(name)
                if slot is None:
                    self._failed(call, route, name, DeploymentBusy(
                        f"deployment {name!r} is not configured; add it or fix route {route.name!r}"
                    ), not last)  # fmt: skip
                    continue
                if not slot.breaker.allow():
                    self._failed(call, route, name, DeploymentBusy(
                        f"{name}: circuit open after repeated failures; "
                        f"next probe in {slot.breaker.retry_in:.1f}s"
                    ), not last)  # fmt: skip
                    continue
                if not await slot.acquire():
                    slot.breaker.release()
                    self._failed(call, route, name, DeploymentBusy(
                        f"{name}: concurrency cap of {slot.deployment.max_concurrency} reached; "
                        "raise max_concurrency or add a deployment"
                    ), not last)  # fmt: skip
                    continue
                try:
                    error = None
                    async for delta in self._attempts(request, call, route, slot, sent, start):
                        if delta.finish_reason is None:
                            yield delta
                            continue
                        usage = delta.usage
                        text = "".join(sent)
                        if usage is None:
                            usage = Usage(prompt_est, estimate_tokens(text), estimated=True)
                        used_tokens = usage.total_tokens
                        call.result = self._finish(request, call, route, name, text, usage, delta, start)
                        yield Delta("", delta.finish_reason, usage)
                        return
                except _Failed as failed:
                    error = failed.error
                finally:
                    slot.release()
                self._failed(call, route, name, error, not last)
            if sent:
                raise StreamInterrupted(
                    f"route {route.name!r}: the answer was cut after {len(''.join(sent))} characters and no "
                    "fallback could continue it; retry the request",
                    deployment=call.deployment or "",
                    sent_text="".join(sent),
                )
            summary = "; ".join(f"{f.deployment}: {f.error}" for f in call.failovers)
            raise NoDeploymentAvailable(
                f"route {route.name!r} v{route.version}: no deployment could answer ({summary}); "
                f"check their health with `strongroom models show {route.name}` and the gateway log",
                attempts=tuple((f.deployment, f"{f.error}: {f.message}") for f in call.failovers),
            )
        finally:
            if call.result is None and sent:
                used_tokens = prompt_est + estimate_tokens("".join(sent))
            await self._budgets.settle(reservation, used_tokens)

    async def _attempts(
        self,
        request: ChatRequest,
        call: _Call,
        route: Route,
        slot: _Slot,
        sent: list[str],
        start: float,
    ) -> AsyncIterator[Delta]:
        """Call one deployment, retrying retryable errors; yields its new text and then its
        final delta, or raises _Failed to fail over (StreamInterrupted to stop)."""
        name = slot.deployment.name
        policy = slot.deployment.retry or self.retry
        breaker = slot.breaker
        metrics = self.metrics
        retry = 0
        while True:
            if retry and not breaker.allow():
                raise _Failed(DeploymentBusy(f"{name}: circuit opened while retrying"))
            call.attempts += 1
            call.deployment = name
            if metrics is not None:
                metrics.request(route.name, name)
            fresh = 0  # text this attempt added for the caller
            verdict = False
            try:
                deltas = slot.deployment.model.stream(request)
                if sent:
                    deltas = _continuation(deltas, "".join(sent), name)
                async with aclosing(deltas) as it:
                    async for delta in it:
                        if delta.text:
                            if not sent and call.result is None and metrics is not None:
                                metrics.ttft.labels(route.name, name).observe(self._clock() - start)
                            if not sent:
                                call.failovers = call.failovers  # first text of the call
                                self._first_token = self._clock() - start
                            sent.append(delta.text)
                            fresh += 1
                            yield Delta(delta.text)
                        if delta.finish_reason is not None:
                            verdict = True
                            breaker.record_success()
                            yield delta
                            return
                verdict = True
                breaker.record_success()
                yield Delta("", "stop")
                return
            except BackendError as exc:
                verdict = True
                if metrics is not None:
                    metrics.error(route.name, name, type(exc).__name__)
                if exc.counts_against_health:
                    breaker.record_failure()
                else:
                    breaker.release()
                if fresh:
                    if not request.allow_mid_stream_failover:
                        raise StreamInterrupted(
                            f"{name} failed after {len(''.join(sent))} characters of the answer had been "
                            f"sent ({type(exc).__name__}: {exc}); the gateway does not fail over mid-answer "
                            "unless the request sets allow_mid_stream_failover; retry the request",
                            deployment=name,
                            sent_text="".join(sent),
                        ) from exc
                    raise _Failed(exc) from exc
                retry += 1
                delay = policy.delay(retry - 1, self._rng, exc.retry_after if isinstance(exc, RateLimited) else None)
                if not exc.retryable or retry >= policy.attempts or delay is None:
                    raise _Failed(exc) from exc
                log.info("route %s: %s failed (%s); retry %d in %.3fs", route.name, name, type(exc).__name__, retry, delay)
                await self._sleep(delay)  # type: ignore[misc]
            finally:
                if not verdict:
                    # the caller left, or a bug: healthy if it was streaming, else no verdict
                    if fresh:
                        breaker.record_success()
                    else:
                        breaker.release()

    def _finish(
        self,
        request: ChatRequest,
        call: _Call,
        route: Route,
        name: str,
        text: str,
        usage: Usage,
        final: Delta,
        start: float,
    ) -> ChatResult:
        latency = self._clock() - start
        first = getattr(self, "_first_token", None)
        result = ChatResult(
            text=text,
            usage=usage,
            model=route.name,
            deployment=name,
            route_version=route.version,
            finish_reason=final.finish_reason or "stop",
            failovers=tuple(call.failovers),
            first_token_s=first,
            latency_s=latency,
            request_id=request.request_id,
            attempts=call.attempts,
        )
        if self.metrics is not None:
            self.metrics.done(
                route.name, name, first_token_s=None, latency_s=latency,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            )  # fmt: skip
        if log.isEnabledFor(logging.INFO):
            log.info(
                "route %s v%d answered by %s: %d+%d tokens%s, %d failover(s), %.3fs",
                route.name, route.version, name, usage.prompt_tokens, usage.completion_tokens,
                " (estimated)" if usage.estimated else "", len(call.failovers), latency,
            )  # fmt: skip
        return result


class _Failed(Exception):
    """Internal: this deployment failed before any new text; fail over."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(str(error))
        self.error = error


async def _continuation(deltas: AsyncIterator[Delta], already: str, name: str) -> AsyncIterator[Delta]:
    """Replay a stream on a fallback, passing on only what comes after ``already``; raise
    StreamInterrupted if the fallback's answer does not start with exactly ``already``."""
    seen = ""
    matched = False
    try:
        async for d in deltas:
            if matched:
                yield d
                continue
            seen += d.text
            if len(seen) >= len(already):
                if not seen.startswith(already):
                    break
                matched = True
                rest = seen[len(already):]
                if rest or d.finish_reason is not None:
                    yield Delta(rest, d.finish_reason, d.usage)
            elif not already.startswith(seen) or d.finish_reason is not None:
                break
        if not matched:
            raise StreamInterrupted(
                f"the answer was cut mid-stream and the fallback {name} gave a different answer, so it "
                "cannot be continued without repeating or contradicting what was sent; retry the request "
                "(mid-stream failover needs deterministic deployments, e.g. temperature 0)",
                deployment=name,
                sent_text=already,
            )
    finally:
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()
