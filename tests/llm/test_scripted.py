"""The scripted chat model that strongroom.testing ships: it passes the contract it stands in for."""

from __future__ import annotations

import asyncio

import pytest

from strongroom.errors import BackendRejected, BackendTimeout
from strongroom.llm.protocol import ChatModel, aclose, complete
from strongroom.llm.types import ChatRequest, Usage
from strongroom.testing import ChatModelContract, ScriptedChatModel
from strongroom.testing.chat_contract import ChatModelFactory, Refusal, Script


class TestScriptedChatModel(ChatModelContract):
    @pytest.fixture
    def chat_model(self) -> ChatModelFactory:
        def make(*script: Script) -> ChatModel:
            replies = [BackendRejected(s.message) if isinstance(s, Refusal) else s for s in script]
            return ScriptedChatModel(replies[:-1], default=replies[-1])

        return make


def test_it_answers_from_its_script_then_its_default_and_records_the_requests() -> None:
    model = ScriptedChatModel(["Revenue grew 4%.", BackendTimeout("scripted timeout")], default="No answer.")

    async def main() -> list[str]:
        texts = [(await complete(model, ChatRequest.of("q1")))[0]]
        with pytest.raises(BackendTimeout, match="scripted timeout"):
            await complete(model, ChatRequest.of("q2"))
        model.script("Later.")
        for prompt in ("q3", "q4"):
            texts.append((await complete(model, ChatRequest.of(prompt)))[0])
        return texts

    assert asyncio.run(main()) == ["Revenue grew 4%.", "Later.", "No answer."]
    assert [r.messages[-1].content for r in model.requests] == ["q1", "q2", "q3", "q4"]


def test_max_tokens_cuts_the_answer_and_usage_counts_words() -> None:
    model = ScriptedChatModel(default="one two three four five")
    text, finish, usage = asyncio.run(complete(model, ChatRequest.of("count", max_tokens=3)))
    assert (text, finish) == ("one two three ", "length")
    assert usage == Usage(prompt_tokens=6, completion_tokens=3)
    quiet = ScriptedChatModel(usage=False)
    assert asyncio.run(complete(quiet, ChatRequest.of("hi")))[2].estimated


def test_it_counts_the_streams_left_open() -> None:
    model = ScriptedChatModel(default="a b c")

    async def main() -> list[int]:
        stream = model.stream(ChatRequest.of("hi"))
        await anext(stream)
        counts = [model.open_streams]
        await aclose(stream)
        return [*counts, model.open_streams]

    assert asyncio.run(main()) == [1, 0]
