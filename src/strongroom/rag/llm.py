"""RAG answers written by a chat model through the model gateway, cited to the sources it read.

:class:`LLMGenerator` is a :class:`~strongroom.rag.Generator`: it numbers the retrieved
chunks [1]..[n] in a versioned prompt, asks the gateway route for an answer, and turns the
``[n]`` markers in the reply into claims that cite chunk ``n`` (document, version, page and
the chunk's characters). The route can end with the extractive generator as its last-resort
deployment (:func:`extractive_deployment`), and when the whole gateway call fails the
generator answers extractively itself; ``Answer.metadata`` records which of these happened::

    generator = open_llm_generator(home, "chat", user="alice")  # routes under HOME/models
    with generator:
        result = answer("What was Q1 revenue?", scope, store, embedder, generator=generator)
    result.metadata["deployment"], result.metadata["route_version"]  # what actually answered

The request carries the clearance its context needs (the highest sensitivity of the hits'
versions, and MNPI): the gateway sends it only to deployments cleared for that, and the
answer's metadata (so the ask's audit record) says ``context_clearance`` and
``clearance_forced_by`` (the version ids that forced it) whenever it is above public.
The extractive last resort runs in process and is cleared for everything.

Prompt building and citation parsing are pure functions; only the gateway call does I/O.
This module sits above ``rag`` and ``llm`` (it uses both), so neither imports it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from strongroom.errors import BackendRejected, ConfigError, GatewayError, NoDeploymentAvailable
from strongroom.llm.clearance import MNPI_GROUP, ContextClearance, context_clearance
from strongroom.llm.deployments import open_gateway
from strongroom.llm.function import FunctionModel
from strongroom.llm.gateway import Deployment, Gateway
from strongroom.llm.types import ChatMessage, ChatRequest, ChatResult
from strongroom.rag.base import NOT_FOUND, Generator, cite
from strongroom.rag.extractive import ExtractiveGenerator
from strongroom.types import Answer, Claim, Hit, frozen_meta

__all__ = [
    "EXTRACTIVE_DEPLOYMENT",
    "PROMPT_TEMPLATE_VERSION",
    "LLMGenerator",
    "ParsedAnswer",
    "build_messages",
    "extractive_deployment",
    "open_llm_generator",
    "parse_claims",
]

#: bump whenever SYSTEM_TEMPLATE, SOURCE_TEMPLATE or USER_TEMPLATE change: it goes into
#: every answer's metadata so an audited answer can be replayed with the same prompt
PROMPT_TEMPLATE_VERSION = "rag-cite-v1"
CANNOT_FIND = "I cannot find the answer in the provided sources."
SYSTEM_TEMPLATE = (
    "You answer questions for the staff of a regulated financial institution, using only the "
    "numbered sources the user gives you.\n"
    "- Use only facts stated in the sources; never use outside knowledge or guess.\n"
    "- End every sentence that states a fact with the numbers of the sources it comes from, "
    'in square brackets, e.g. "Revenue was 1,234 million [1]." or "... [1][3]."\n'
    f'- If the sources do not contain the answer, reply exactly: "{CANNOT_FIND}"\n'
    "- Be brief: a few sentences, no preamble."
)
SOURCE_TEMPLATE = "[{n}] {document}, page {page}\n{text}"
USER_TEMPLATE = "Sources:\n\n{sources}\n\nQuestion: {question}"

#: the name the extractive last-resort deployment is registered under (routes list it so)
EXTRACTIVE_DEPLOYMENT = "extractive"
GENERATOR_NAME = "llm"

_SOURCE = r"(?:(?:sources?|src|refs?)\s*)?"
_MARKER = re.compile(rf"\[\s*{_SOURCE}(\d+(?:\s*[,;]\s*{_SOURCE}\d+)*)\s*\]", re.IGNORECASE)
_MARKERS_AFTER_STOP = re.compile(rf"([.!?])((?:\s*{_MARKER.pattern})+)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")
_SPACE_BEFORE_STOP = re.compile(r"\s+([.,;:!?])")


# -- the prompt (pure) -------------------------------------------------------------------------


def build_messages(question: str, hits: Sequence[Hit]) -> tuple[ChatMessage, ...]:
    """The ``rag-cite-v1`` prompt: the rules, then sources [1]..[n] and the question."""
    sources = "\n\n".join(
        SOURCE_TEMPLATE.format(n=n, document=h.version.name, page=h.chunk.page, text=h.chunk.text.strip())
        for n, h in enumerate(hits, start=1)
    )
    return (
        ChatMessage("system", SYSTEM_TEMPLATE),
        ChatMessage("user", USER_TEMPLATE.format(sources=sources, question=question.strip())),
    )


# -- the reply (pure) --------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedAnswer:
    """Claims read from a model's reply. ``dropped_markers``: markers naming no source;
    ``uncited``: sentences left out because no valid marker supports them."""

    claims: tuple[Claim, ...]
    dropped_markers: int
    uncited: int


def parse_claims(text: str, hits: Sequence[Hit]) -> ParsedAnswer:
    """Turn ``[n]`` markers into citations of hit ``n`` (its whole chunk), one claim per sentence.

    A sentence without a marker joins the next cited sentence of its line (models often cite
    once at the end of a thought), or a line that holds only markers; what no marker
    supports is left out and counted, and so is a marker outside 1..len(hits).
    ``[1, 2]``, ``[1][2]`` and ``[Source 1]`` all work.

    >>> parse_claims("Revenue rose [1]. Costs fell [9].", hits).claims  # doctest: +SKIP
    (Claim(text='Revenue rose.', citations=(Citation(... hits[0] ...),)),)
    """
    claims: list[Claim] = []
    pending: list[str] = []  # uncited sentences waiting for a marker
    dropped = uncited = 0
    for raw in text.splitlines():
        # "... million. [1]" cites the sentence it follows: move the markers before the stop
        line = _MARKERS_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", _LIST_ITEM.sub("", raw)).strip()
        if not line:
            continue
        if _words(line) or not _MARKER.search(line):
            uncited += len(pending)  # a line of text: what the previous line left uncited stays so
            pending = []
        for sentence in _SENTENCE_END.split(line):
            numbers = [int(n) for m in _MARKER.finditer(sentence) for n in re.findall(r"\d+", m.group(1))]
            valid = [n for n in dict.fromkeys(numbers) if 1 <= n <= len(hits)]
            dropped += sum(1 for n in numbers if not 1 <= n <= len(hits))
            words = _words(sentence)
            if not valid:
                if words:
                    pending.append(words)
                continue
            cited = tuple(cite(hits[n - 1], 0, len(hits[n - 1].chunk.text)) for n in valid)
            if words or pending:
                claims.append(Claim(" ".join([*pending, words]).strip(), cited))
            elif claims:  # a bare marker right after a claim: it supports that claim too
                last = claims[-1]
                claims[-1] = Claim(last.text, tuple(dict.fromkeys(last.citations + cited)))
            pending = []
    return ParsedAnswer(tuple(claims), dropped, uncited + len(pending))


def _words(sentence: str) -> str:
    """The sentence without its markers, spaced as prose; "" when nothing but punctuation is left."""
    words = _SPACE_BEFORE_STOP.sub(r"\1", " ".join(_MARKER.sub(" ", sentence).split()))
    return words if words.strip(".!?;,: ") else ""


def _render(result: Answer) -> str:
    """An extractive answer as the text a model would have written: each claim with [n]."""
    if not result.found:
        return result.note
    lines = []
    for claim in result.claims:
        marks = ""
        for c in claim.citations:
            for n, h in enumerate(result.hits, start=1):
                k = h.chunk
                if h.version.id == c.version_id and k.page == c.page and k.char_start <= c.char_start <= k.char_end:
                    marks += f"[{n}]"
                    break
        lines.append(f"{' '.join(claim.text.split())} {marks}".rstrip())
    return "\n".join(lines)


# -- the extractive last resort, as a deployment -----------------------------------------------


@dataclass
class _Turn:
    """One RAG question in flight; the extractive deployment reads it and leaves its answer."""

    question: str
    hits: tuple[Hit, ...]
    extractive: Answer | None = None


_TURN: ContextVar[_Turn | None] = ContextVar("strongroom_rag_turn", default=None)


def extractive_deployment(generator: Generator | None = None, *, name: str = EXTRACTIVE_DEPLOYMENT) -> Deployment:
    """The extractive generator as a gateway deployment, so a route can fall back to it::

        gateway = open_gateway(home, extra=[extractive_deployment()])
        # strongroom models set-route chat -d vllm-a:100 -d extractive

    It answers only the RAG questions an :class:`LLMGenerator` sends (it quotes the retrieved
    chunks, which a bare chat request does not carry); any other request is rejected, so the
    gateway moves on. It runs in process (nothing leaves it), so it is cleared for every
    sensitivity level and for MNPI.
    """
    extractive = generator or ExtractiveGenerator()

    def quote_sources(request: ChatRequest) -> str:
        turn = _TURN.get()
        if turn is None:
            raise BackendRejected(
                f"deployment {name!r} answers only RAG questions (`strongroom ask --model`), "
                "not free chat requests; give this route a model deployment"
            )
        turn.extractive = extractive.generate(turn.question, turn.hits)
        return _render(turn.extractive)

    return Deployment(name, FunctionModel(quote_sources, name=name), clearance="restricted", mnpi=True)


# -- the generator -----------------------------------------------------------------------------


class LLMGenerator:
    """A :class:`~strongroom.rag.Generator` that asks gateway route ``route`` and cites [n].

        generator = LLMGenerator(gateway, "chat", user="alice")
        result = generator.generate("What was Q1 revenue?", hits)   # sync: owns an event loop
        result = await generator.agenerate("What was Q1 revenue?", hits)  # inside a running loop
        generator.close()

    If the gateway call fails as a whole (every deployment failed, a budget is spent, ...),
    it answers with ``extractive`` instead and ``metadata["fallback"]`` says why.
    The sync :meth:`generate` runs the gateway on an event loop this object owns;
    :meth:`close` closes the gateway's connections and that loop.
    """

    name = GENERATOR_NAME

    def __init__(
        self,
        gateway: Gateway,
        route: str,
        *,
        user: str | None = None,
        max_tokens: int = 512,
        extractive: Generator | None = None,
        mnpi_group: str = MNPI_GROUP,
    ) -> None:
        self.gateway = gateway
        self.mnpi_group = mnpi_group
        self.route = route
        self.user = user
        self.max_tokens = max_tokens
        self.extractive = extractive or ExtractiveGenerator()
        self._runner: asyncio.Runner | None = None

    def generate(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Answer ``question`` from ``hits`` (blocking; not from inside a running event loop)."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self.agenerate(question, hits))

    async def agenerate(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Answer ``question`` from ``hits`` on the running event loop."""
        hits = tuple(hits)
        if not hits:
            meta = self._meta(PROMPT_TEMPLATE_VERSION, deployment="", route_version="", failovers="0")
            return Answer(question, (), hits, self.name, found=False, note=NOT_FOUND, metadata=meta)
        need = context_clearance((h.version for h in hits), mnpi_group=self.mnpi_group)
        request = need.apply(
            ChatRequest(
                build_messages(question, hits), self.route, max_tokens=self.max_tokens, temperature=0.0, user=self.user
            )
        )
        turn = _Turn(question, hits)
        token = _TURN.set(turn)
        try:
            result = await self.gateway.chat(request)
        except GatewayError as exc:
            return _cleared(self._fallback(question, hits, exc), need)
        finally:
            _TURN.reset(token)
        return _cleared(self._answer(turn, result), need)

    def _meta(self, template: str, **items: str) -> dict[str, str]:
        return {"model": self.route, "prompt_template_version": template, **items}

    def _answer(self, turn: _Turn, result: ChatResult) -> Answer:
        served = {
            "deployment": result.deployment,
            "route_version": str(result.route_version),
            "failovers": str(len(result.failovers)),
            "finish_reason": result.finish_reason,
            "prompt_tokens": str(result.usage.prompt_tokens),
            "completion_tokens": str(result.usage.completion_tokens),
        }
        if result.failovers:
            served["failed_over_from"] = ",".join(f.deployment for f in result.failovers)
        if turn.extractive is not None:  # the route's last resort answered
            quoted = turn.extractive
            meta = {**quoted.metadata, **self._meta(quoted.metadata["prompt_template_version"], **served)}
            return replace(quoted, metadata=frozen_meta(meta))
        parsed = parse_claims(result.text, turn.hits)
        meta = self._meta(
            PROMPT_TEMPLATE_VERSION,
            generator=self.name,
            dropped_citations=str(parsed.dropped_markers),
            uncited_sentences=str(parsed.uncited),
            **served,
        )
        if not parsed.claims:
            note = result.text.strip() or NOT_FOUND
            return Answer(turn.question, (), turn.hits, self.name, found=False, note=note, metadata=frozen_meta(meta))
        return Answer(turn.question, parsed.claims, turn.hits, self.name, found=True, metadata=frozen_meta(meta))

    def _fallback(self, question: str, hits: tuple[Hit, ...], exc: GatewayError) -> Answer:
        quoted = self.extractive.generate(question, hits)
        failovers = len(exc.attempts) if isinstance(exc, NoDeploymentAvailable) else 0
        meta = {
            **quoted.metadata,
            **self._meta(
                quoted.metadata.get("prompt_template_version", ""),
                deployment=EXTRACTIVE_DEPLOYMENT,
                route_version="",  # no version of the route served this answer
                failovers=str(failovers),
                fallback="gateway-error",
                gateway_error=f"{type(exc).__name__}: {exc}",
            ),
        }
        return replace(quoted, metadata=frozen_meta(meta))

    def close(self) -> None:
        """Close the gateway's backends and the event loop :meth:`generate` used."""
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                runner.run(self.gateway.aclose())
            finally:
                runner.close()

    def __enter__(self) -> LLMGenerator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _cleared(answer: Answer, need: ContextClearance) -> Answer:
    """``answer`` whose metadata says the clearance its context needed (when above public)."""
    extra = need.metadata()
    return replace(answer, metadata=frozen_meta({**answer.metadata, **extra})) if extra else answer


def open_llm_generator(
    home: str | Path,
    route: str,
    *,
    user: str | None = None,
    max_tokens: int = 512,
    env: Mapping[str, str] | None = None,
    extra: Iterable[Deployment] = (),
) -> LLMGenerator:
    """An :class:`LLMGenerator` over the routes and deployments configured under ``home``
    (``strongroom models``), with the extractive generator registered as deployment
    ``extractive``. Raises ConfigError when no route is named ``route``."""
    extractive = ExtractiveGenerator()
    gateway = open_gateway(home, extra=[*extra, extractive_deployment(extractive)], env=env)
    if gateway.routes.get(route) is None:
        known = ", ".join(gateway.routes.names()) or "none"
        raise ConfigError(
            f"no model route named {route!r} under {home} (known: {known}); create one with "
            f"`strongroom models set-route {route} -d DEPLOYMENT:100 -d {EXTRACTIVE_DEPLOYMENT}`"
        )
    return LLMGenerator(gateway, route, user=user, max_tokens=max_tokens, extractive=extractive)
