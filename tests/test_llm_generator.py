"""RAG answers through the model gateway, against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.errors import ConfigError
from strongroom.llm import (
    ChatRequest,
    Deployment,
    Gateway,
    NoDeploymentAvailable,
    OpenAICompatible,
    RetryPolicy,
    Route,
    StaticRoutes,
    Target,
)
from strongroom.rag import NOT_FOUND, ExtractiveGenerator
from strongroom.rag.llm import (
    PROMPT_TEMPLATE_VERSION,
    LLMGenerator,
    extractive_deployment,
    open_llm_generator,
    parse_claims,
)
from strongroom.testing.generator_contract import hit
from strongroom.testing.openai_server import FakeOpenAIServer, Reply

REVENUE = "Quarterly revenue was 1,234 million, up 5%. Costs were flat."
COUPON = "The Example Bank notes pay a coupon of 4.25% semi-annually."
QUESTION = "What was quarterly revenue?"


HITS = (hit("q1.txt", 2, REVENUE, 40), hit("desk.md", 3, COUPON, 7))


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(Reply.error(500, "scripted outage")) as fake:
        yield fake


def generator(server: FakeOpenAIServer, *, with_extractive: bool = True) -> LLMGenerator:
    """Route 'chat' at version 3: the fake server first, then (optionally) the extractive last resort."""
    targets = (Target("vllm", 100), Target("extractive")) if with_extractive else (Target("vllm", 100),)
    deployments = [Deployment("vllm", OpenAICompatible(server.url, "fake-llama", name="vllm"))]
    if with_extractive:
        deployments.append(extractive_deployment())
    gateway = Gateway(StaticRoutes([Route("chat", 3, targets)]), deployments, retry=RetryPolicy(attempts=1))
    return LLMGenerator(gateway, "chat", user="alice")


def test_claims_cite_the_chunks_the_model_marks(server: FakeOpenAIServer) -> None:
    server.script(
        Reply.stream("Revenue was 1,234 million [1]. The notes pay 4.25%. [2]"),
        Reply.stream("Costs were flat [1]."),
    )
    with generator(server) as llm:
        result = llm.generate(QUESTION, HITS)
        again = llm.generate("What about costs?", HITS)  # the same loop and connection pool
    assert result.found and result.generator == "llm"
    assert [c.text for c in result.claims] == ["Revenue was 1,234 million.", "The notes pay 4.25%."]
    revenue, coupon = (claim.citations for claim in result.claims)
    assert len(revenue) == 1 and len(coupon) == 1
    assert (revenue[0].version_id, revenue[0].page, revenue[0].char_start, revenue[0].char_end) == (
        "version-of-q1.txt", 2, 40, 40 + len(REVENUE),
    )  # fmt: skip
    assert revenue[0].quote == REVENUE and revenue[0].label == "q1.txt p.2"
    assert (coupon[0].version_id, coupon[0].page, coupon[0].quote) == ("version-of-desk.md", 3, COUPON)
    assert dict(result.metadata) == {
        "generator": "llm", "model": "chat", "deployment": "vllm", "route_version": "3",
        "prompt_template_version": PROMPT_TEMPLATE_VERSION, "failovers": "0", "finish_reason": "stop",
        "prompt_tokens": result.metadata["prompt_tokens"], "completion_tokens": "10",
        "dropped_citations": "0", "uncited_sentences": "0",
    }  # fmt: skip
    assert again.found and again.claims[0].citations[0].quote == REVENUE

    sent = server.requests[0]
    system, user = sent["messages"]
    assert system["role"] == "system" and "only" in system["content"] and "[1]" in system["content"]
    assert user["content"].startswith(f"Sources:\n\n[1] q1.txt, page 2\n{REVENUE}\n\n[2] desk.md, page 3\n{COUPON}")
    assert user["content"].endswith(f"Question: {QUESTION}")
    assert sent["temperature"] == 0 and sent["user"] == "alice" and sent["model"] == "fake-llama"


def test_a_marker_that_names_no_source_is_dropped(server: FakeOpenAIServer) -> None:
    server.script(Reply.stream("Revenue was 1,234 million [1][9]. Profit doubled [9]."))
    with generator(server) as llm:
        result = llm.generate(QUESTION, HITS)  # two sources: [9] points nowhere
    assert [c.text for c in result.claims] == ["Revenue was 1,234 million."]
    assert [c.version_id for c in result.claims[0].citations] == ["version-of-q1.txt"]
    assert result.metadata["dropped_citations"] == "2" and result.metadata["uncited_sentences"] == "1"


def test_an_answer_without_a_valid_citation_is_not_found(server: FakeOpenAIServer) -> None:
    server.script(Reply.stream("I cannot find the answer in the provided sources."))
    with generator(server) as llm:
        result = llm.generate("Who won the 1966 World Cup?", HITS)
    assert not result.found and result.claims == ()
    assert result.note == "I cannot find the answer in the provided sources." and result.text == result.note
    assert result.metadata["deployment"] == "vllm" and result.metadata["prompt_template_version"] == "rag-cite-v1"


def test_a_failing_backend_fails_over_to_the_extractive_deployment(server: FakeOpenAIServer) -> None:
    with generator(server) as llm:  # the server answers 500 to everything
        result = llm.generate(QUESTION, HITS)
    assert len(server.requests) == 1
    meta = result.metadata
    assert (meta["model"], meta["deployment"], meta["route_version"]) == ("chat", "extractive", "3")
    assert meta["generator"] == "extractive-v1" and meta["prompt_template_version"] == "extractive-v1"
    assert meta["failovers"] == "1" and meta["failed_over_from"] == "vllm" and "fallback" not in meta
    # the extractive generator's own precise span, not the whole chunk
    assert result.found and result.generator == "extractive-v1"
    citation = result.claims[0].citations[0]
    assert citation.quote == "Quarterly revenue was 1,234 million, up 5%."
    assert (citation.char_start, citation.char_end) == (40, 40 + len(citation.quote))


def test_when_the_whole_gateway_call_fails_it_answers_extractively_and_says_so(server: FakeOpenAIServer) -> None:
    with generator(server, with_extractive=False) as llm:
        result = llm.generate(QUESTION, HITS)
    meta = result.metadata
    assert result.found and result.claims[0].citations[0].quote.startswith("Quarterly revenue")
    assert meta["fallback"] == "gateway-error" and meta["gateway_error"].startswith("NoDeploymentAvailable: ")
    assert (meta["generator"], meta["deployment"], meta["route_version"]) == ("extractive-v1", "extractive", "")
    assert meta["model"] == "chat" and meta["failovers"] == "1" and meta["prompt_template_version"] == "extractive-v1"


def test_no_sources_means_no_model_call(server: FakeOpenAIServer) -> None:
    with generator(server) as llm:
        result = llm.generate(QUESTION, ())
    assert not result.found and result.note == NOT_FOUND and server.requests == []
    assert result.metadata["prompt_template_version"] == PROMPT_TEMPLATE_VERSION


def test_the_extractive_deployment_refuses_a_bare_chat_request() -> None:
    gateway = Gateway(StaticRoutes([Route("chat", 1, (Target("extractive"),))]), [extractive_deployment()])
    with pytest.raises(NoDeploymentAvailable, match="extractive: BackendRejected") as failed:
        asyncio.run(gateway.chat(ChatRequest.of("hello", model="chat")))
    assert "answers only RAG questions" in str(failed.value.attempts)


def test_open_llm_generator_needs_a_configured_route(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no model route named 'chat'.*`strongroom models set-route chat"):
        open_llm_generator(tmp_path, "chat")


def test_the_extractive_generator_records_its_version() -> None:
    found = ExtractiveGenerator().generate(QUESTION, HITS)
    missing = ExtractiveGenerator().generate(QUESTION, ())
    for result in (found, missing):
        assert dict(result.metadata) == {"generator": "extractive-v1", "prompt_template_version": "extractive-v1"}


@pytest.mark.parametrize(
    ("reply", "claims", "dropped", "uncited"),
    [
        ("Revenue rose [1]. Coupon 4.25% [2].", [("Revenue rose.", [0]), ("Coupon 4.25%.", [1])], 0, 0),
        ("- Revenue rose [1, 2]\n- Coupon [Source 2][2]", [("Revenue rose", [0, 1]), ("Coupon", [1])], 0, 0),
        ("U.S. revenue rose. It was 1,234 million. [1]", [("U.S. revenue rose. It was 1,234 million.", [0])], 0, 0),
        ("Answer:\nRevenue rose [1]. Profit fell.", [("Revenue rose.", [0])], 0, 2),
        ("Revenue rose [0][3].", [], 2, 1),
        ("Revenue rose.\n\n[1][2]\n[1]", [("Revenue rose.", [0, 1])], 0, 0),
        ("[1]\n. [2]", [], 0, 0),
        ("", [], 0, 0),
    ],
)
def test_parse_claims(reply: str, claims: list[tuple[str, list[int]]], dropped: int, uncited: int) -> None:
    parsed = parse_claims(reply, HITS)
    got = [(c.text, [HITS.index(next(h for h in HITS if h.version.id == x.version_id)) for x in c.citations])
           for c in parsed.claims]  # fmt: skip
    assert got == claims
    assert (parsed.dropped_markers, parsed.uncited) == (dropped, uncited)


@given(st.text(alphabet=st.sampled_from("ab .[]0123,\n9"), max_size=60))
def test_every_claim_cites_only_retrieved_chunks(reply: str) -> None:
    for claim in parse_claims(reply, HITS).claims:
        assert claim.citations and claim.text.strip()
        assert all(c.quote in (REVENUE, COUPON) for c in claim.citations)
