"""The official ``openai`` client talks to the service unchanged."""

from __future__ import annotations

import openai
import pytest

from tests.api.conftest import Env


@pytest.fixture
def client(env: Env) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{env.url}/v1", api_key=env.token(["readers", "research"]), max_retries=0)


def test_models_lists_the_rag_pipeline(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["strongroom-rag"]


def test_chat_completion_answers_with_citations(client: openai.OpenAI, env: Env) -> None:
    done = client.chat.completions.create(
        model="strongroom-rag", messages=[{"role": "user", "content": "What was the zephyr revenue?"}]
    )
    text = done.choices[0].message.content or ""
    assert "42 million" in text and "[1]" in text and "Sources:" in text
    citations = (done.model_extra or {})["citations"]
    assert citations and citations[0]["version_id"] == env.version_ids["zephyr"]
    assert done.choices[0].finish_reason == "stop"


def test_streaming_chat_completion(client: openai.OpenAI, env: Env) -> None:
    stream = client.chat.completions.create(
        model="strongroom-rag", messages=[{"role": "user", "content": "What was the zephyr revenue?"}], stream=True
    )
    parts, citations, finish = [], [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
            citations = (chunk.model_extra or {}).get("citations", [])
    assert "42 million" in "".join(parts) and finish == "stop"
    assert citations[0]["version_id"] == env.version_ids["zephyr"]


def test_unknown_model_and_bad_token_are_openai_errors(env: Env, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    bad = openai.OpenAI(base_url=f"{env.url}/v1", api_key="sr_nope_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
