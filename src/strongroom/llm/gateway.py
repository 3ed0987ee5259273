"""The model gateway: one ChatModel in front of many deployments, with failover and limits.

For each call: look up the route's active version, check size limits, reserve budget, pick
the first deployment (champion/challenger split), then try deployments in order. A
deployment is skipped when its breaker is open or its concurrency cap is full; a retryable
error is retried on the same deployment after a short jittered backoff; any backend error
before text reached the caller fails over to the next deployment. Once text has reached
the caller the gateway fails over only if the request allows it, and then only continues
if the new answer starts with exactly what was already sent (:mod:`strongroom.llm.replay`):
the caller sees one continuous answer, or a StreamInterrupted error, never a repeat.

Tool calls pass through: a request's ``tools`` go to deployments whose model says it can
call tools (``supports_tools``; the others are skipped as refusing it), and the calls a
deployment makes reach the caller whole and land in ``ChatResult.tool_calls``. A call
that reached the caller counts as answer text already sent: a fallback may continue only
by making the same calls (name and arguments) again, and the caller never sees one twice.
Tool arguments are never logged (they can hold document text); the log counts the calls.

Sensitivity: each deployment declares the highest level it is cleared for (``clearance``,
``public`` unless configured: deny by default) and whether it may see MNPI (``mnpi``). A
request says what its context holds (``ChatRequest.sensitivity``, ``ChatRequest.mnpi``);
the route's deployments not cleared for it are struck out before any is tried, so neither
the champion/challenger draw nor failover ever reaches one. When none is cleared the call
is refused with :class:`~strongroom.errors.NotCleared` and nothing is sent anywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strongroom.errors import (
    BackendError,
    BackendRejected,
    BackendUnavailable,
    DeploymentBusy,
    NoDeploymentAvailable,
    NotCleared,
    RateLimited,
    StreamInterrupted,
    UnknownRoute,
)
from strongroom.llm.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from strongroom.llm.limits import BucketStore, Budgets, Limits, check_request
from strongroom.llm.protocol import ChatModel, aclose
from strongroom.llm.replay import continuation
from strongroom.llm.routing import RetryPolicy, Route, RouteSource, draw_for, failover_order
from strongroom.llm.types import (
    ChatRequest,
    ChatResult,
    Delta,
    Failover,
    Sensitivity,
    ToolCall,
    Usage,
    cleared,
    estimate_tokens,
)

if TYPE_CHECKING:
    from strongroom.llm.metrics import GatewayMetrics

__all__ = ["Deployment", "Gateway", "GatewayStream"]

log = logging.getLogger("strongroom.llm.gateway")


@dataclass(frozen=True)
class Deployment:
    """A named backend and how the gateway treats it.

    ``max_concurrency`` caps calls in flight to it; a call that finds the cap full waits up
    to ``queue_timeout_s`` for a slot, then fails over. ``retry`` overrides the gateway's
    retry policy for this deployment. ``clearance`` is the highest sensitivity level of
    context it may be sent (``public`` by default: an external API stays so; the bank's own
    servers are cleared higher) and ``mnpi`` whether it may see material non-public
    information.

        Deployment("vllm-a", OpenAICompatible("http://gpu1:8000/v1", "llama-3.1-8b"),
                   max_concurrency=32, breaker=BreakerPolicy(failure_threshold=3),
                   clearance="restricted", mnpi=True)
    """

    name: str
    model: ChatModel
    max_concurrency: int | None = None
    queue_timeout_s: float = 0.0
    breaker: BreakerPolicy = BreakerPolicy()  # noqa: RUF009 - frozen value
    retry: RetryPolicy | None = None
    clearance: Sensitivity = "public"
    mnpi: bool = False

    def cleared_for(self, request: ChatRequest) -> bool:
        """Whether this deployment may be sent ``request`` (its context's sensitivity and MNPI)."""
        return cleared(self.clearance, self.mnpi, request.sensitivity, request.mnpi)


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

    __slots__ = ("attempts", "calls", "deployment", "failovers", "first_token_s", "result", "route")

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []  # the tool calls the caller has, in order
        self.route: Route | None = None
        self.deployment: str | None = None
        self.failovers: list[Failover] = []
        self.attempts = 0
        self.first_token_s: float | None = None
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

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._gen  # ``async for`` drives the generator itself: no extra frame per delta

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

    #: tools pass through to the deployments that can call them
    supports_tools = True

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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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

    def _uncleared(self, route: Route, request: ChatRequest) -> frozenset[str]:
        """The deployments of ``route`` not cleared for ``request``'s context (an unknown
        one counts as not cleared); raise NotCleared when that is every one of them."""
        if request.sensitivity in (None, "public") and not request.mnpi:
            return frozenset()  # the common case: anything may see public context
        barred = frozenset(
            t.deployment
            for t in route.targets
            if (slot := self._slots.get(t.deployment)) is None or not slot.deployment.cleared_for(request)
        )
        if len(barred) < len(route.targets):
            if barred:
                log.info("route %s v%d: %s context: not sending to %s", route.name, route.version,
                         _context(request), ", ".join(sorted(barred)))  # fmt: skip
            return barred
        levels = ", ".join(f"{t.deployment} ({_clearance(self._slots.get(t.deployment))})" for t in route.targets)
        raise NotCleared(
            f"the context holds {_context(request)} content; no deployment of route {route.name!r} "
            f"v{route.version} is cleared for it: {levels}; send it to a route with a deployment cleared "
            "that high (`strongroom models set-deployment NAME --clearance LEVEL [--mnpi]`), or ask "
            "without that content"
        )

    def _left(self, call: _Call, route: Route, name: str, exc: BackendError) -> None:
        call.failovers.append(Failover(name, type(exc).__name__, str(exc)))
        if self.metrics is not None:
            self.metrics.failover(route.name, name)
        log.warning("route %s v%d: leaving deployment %s: %s", route.name, route.version, name, exc)

    async def _run(self, request: ChatRequest, call: _Call) -> AsyncGenerator[Delta, None]:
        start = self._clock()
        route = self.routes.get(request.model)
        if route is None:
            if self.metrics is not None:
                self.metrics.error(request.model, "-", "UnknownRoute")
            raise UnknownRoute(
                f"no route named {request.model!r}; known routes: "
                f"{', '.join(self.routes.names()) or 'none'}; create one with `strongroom models set-route`"
            )
        call.route = route
        try:
            barred = self._uncleared(route, request)
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
        sent: list[str] = []  # the text the caller has, in order
        cannot: list[str] = []  # deployments skipped because they cannot call tools
        used_tokens = 0
        try:
            for name in failover_order(route, draw):
                if name in barred:
                    continue  # never tried: not cleared for what the context holds
                slot = self._slots.get(name)
                if slot is None:
                    self._left(call, route, name, BackendUnavailable(
                        f"deployment {name!r} is not configured; "
                        f"add it, or take it out of route {route.name!r}"
                    ))  # fmt: skip
                    continue
                if request.tools and not getattr(slot.deployment.model, "supports_tools", False):
                    cannot.append(name)
                    self._left(call, route, name, BackendRejected(
                        f"{name}: this deployment's model cannot call tools and the request offers "
                        f"{len(request.tools)}; route tool-calling requests to a deployment that can"
                    ))  # fmt: skip
                    continue
                if not slot.breaker.allow():
                    self._left(call, route, name, DeploymentBusy(
                        f"{name}: circuit open after repeated failures; "
                        f"next probe in {slot.breaker.retry_in:.1f}s"
                    ))  # fmt: skip
                    continue
                if not await slot.acquire():
                    slot.breaker.release()
                    self._left(call, route, name, DeploymentBusy(
                        f"{name}: all {slot.deployment.max_concurrency} concurrent slots busy; "
                        "raise max_concurrency or queue_timeout_s, or add a deployment"
                    ))  # fmt: skip
                    continue
                try:
                    async with aclosing(self._attempts(request, call, route, slot, sent, start)) as deltas:
                        async for delta in deltas:
                            if delta.finish_reason is None:
                                yield delta
                                continue
                            text = "".join(sent)
                            usage = delta.usage or self._estimate(prompt_est, text, call.calls)
                            used_tokens = usage.total_tokens
                            call.result = self._finish(request, call, route, name, text, usage, delta, start)
                            yield Delta("", delta.finish_reason, usage, delta.tool_calls)
                            return
                except _Failed as failed:
                    self._left(call, route, name, failed.error)
                finally:
                    slot.release()
            summary = "; ".join(f"{f.deployment}: {f.error}" for f in call.failovers)
            if sent or call.calls:
                raise StreamInterrupted(
                    f"route {route.name!r}: the answer was cut after {len(''.join(sent))} characters "
                    f"and {len(call.calls)} tool call(s) and no fallback could continue it ({summary}); "
                    "retry the request",
                    deployment=call.deployment or "",
                    sent_text="".join(sent),
                )
            hint = (
                f"; {', '.join(cannot)} cannot call tools: route tool-calling requests to deployments that can"
                if cannot
                else ""
            )
            if barred:
                hint += f"; not cleared for this context, so not tried: {', '.join(sorted(barred))}"
            raise NoDeploymentAvailable(
                f"route {route.name!r} v{route.version}: no deployment could answer ({summary}){hint}; "
                f"check their health with `strongroom models show {route.name}` and the gateway log",
                attempts=tuple((f.deployment, f"{f.error}: {f.message}") for f in call.failovers),
            )
        finally:
            if call.result is None and (sent or call.calls):
                used_tokens = self._estimate(prompt_est, "".join(sent), call.calls).total_tokens
            await self._budgets.settle(reservation, used_tokens)

    async def _attempts(
        self,
        request: ChatRequest,
        call: _Call,
        route: Route,
        slot: _Slot,
        sent: list[str],
        start: float,
    ) -> AsyncGenerator[Delta, None]:
        """Call one deployment, retrying retryable errors: yield its new text, then a final
        delta with the finish reason; or raise _Failed to fail over, StreamInterrupted to stop."""
        name = slot.deployment.name
        policy = slot.deployment.retry or self.retry
        breaker = slot.breaker
        metrics = self.metrics
        retry = 0
        while True:
            call.attempts += 1
            call.deployment = name
            if metrics is not None:
                metrics.request(route.name, name)
            fresh = False  # whether this attempt added text (or tool calls) for the caller
            verdict = False
            final: Delta | None = None
            calls = call.calls
            deltas = slot.deployment.model.stream(request)
            if sent or calls:
                deltas = continuation(deltas, "".join(sent), tuple(calls), name)
            try:
                try:
                    async for delta in deltas:
                        if delta.text:
                            if call.first_token_s is None:
                                call.first_token_s = self._clock() - start
                                if metrics is not None:
                                    metrics.first_token(route.name, name, call.first_token_s)
                            sent.append(delta.text)
                            fresh = True
                            if delta.finish_reason is None and delta.usage is None:
                                if delta.tool_calls:
                                    calls.extend(delta.tool_calls)
                                yield delta
                            else:  # the final delta's calls go out with the finish reason
                                pending = delta.tool_calls if delta.finish_reason is None else ()
                                calls.extend(pending)
                                yield Delta(delta.text, tool_calls=pending)
                        elif delta.tool_calls and delta.finish_reason is None:
                            if call.first_token_s is None:
                                call.first_token_s = self._clock() - start
                                if metrics is not None:
                                    metrics.first_token(route.name, name, call.first_token_s)
                            calls.extend(delta.tool_calls)
                            fresh = True
                            yield Delta("", tool_calls=delta.tool_calls)
                        if delta.finish_reason is not None:
                            final = delta
                            if delta.tool_calls:
                                calls.extend(delta.tool_calls)
                            break
                finally:
                    await aclose(deltas)
                verdict = True
                breaker.record_success()
                if final is None:
                    yield Delta("", "stop")
                elif final.tool_calls or final.text:
                    yield Delta("", final.finish_reason, final.usage, final.tool_calls)
                else:
                    yield final
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
                            f"{name} failed after {len(''.join(sent))} characters and {len(calls)} tool "
                            f"call(s) of the answer were sent ({type(exc).__name__}: {exc}); the gateway "
                            "does not fail over mid-answer unless the request sets allow_mid_stream_failover; "
                            "retry the request",
                            deployment=name,
                            sent_text="".join(sent),
                        ) from exc
                    raise _Failed(exc) from exc
                hint = exc.retry_after if isinstance(exc, RateLimited) else None
                delay = policy.delay(retry, self._rng, hint)
                retry += 1
                if not exc.retryable or retry >= policy.attempts or delay is None:
                    raise _Failed(exc) from exc
                if breaker.state is not BreakerState.CLOSED:
                    raise _Failed(exc) from exc  # this failure opened it (or a probe failed)
                log.info("route %s: %s failed (%s); retry %d in %.3fs", route.name, name, type(exc).__name__,
                         retry, delay)  # fmt: skip
                await self._sleep(delay)
            finally:
                if not verdict:
                    # The caller left mid-stream (or a bug): healthy if it was streaming.
                    if fresh:
                        breaker.record_success()
                    else:
                        breaker.release()

    @staticmethod
    def _estimate(prompt_est: int, text: str, calls: list[ToolCall]) -> Usage:
        completion = estimate_tokens(text)
        if calls:
            completion += sum(estimate_tokens(c.name + c.arguments) for c in calls)
        return Usage(prompt_est, completion, estimated=True)

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
        result = ChatResult(
            text=text,
            usage=usage,
            model=route.name,
            deployment=name,
            route_version=route.version,
            finish_reason=final.finish_reason or "stop",
            failovers=tuple(call.failovers),
            first_token_s=call.first_token_s,
            latency_s=latency,
            request_id=request.request_id,
            attempts=call.attempts,
            tool_calls=tuple(call.calls),
        )
        if self.metrics is not None:
            self.metrics.done(
                route.name, name, first_token_s=call.first_token_s, latency_s=latency,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            )  # fmt: skip
        if log.isEnabledFor(logging.INFO):
            log.info(
                "route %s v%d answered by %s: %d+%d tokens%s, %d tool call(s), %d failover(s), %.3fs",
                route.name, route.version, name, usage.prompt_tokens, usage.completion_tokens,
                " (estimated)" if usage.estimated else "", len(call.calls), len(call.failovers), latency,
            )  # fmt: skip
        return result


def _context(request: ChatRequest) -> str:
    level = request.sensitivity or "public"
    return f"{level} (MNPI)" if request.mnpi else level


def _clearance(slot: _Slot | None) -> str:
    if slot is None:
        return "not configured"
    d = slot.deployment
    return f"cleared {d.clearance}{' and MNPI' if d.mnpi else ''}"


class _Failed(Exception):
    """Internal: this deployment failed before adding text; fail over to the next."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(str(error))
        self.error = error
