"""Both answer generators pass the generator contract: the extractive one, and one written
by a model behind the gateway (a scripted OpenAI-compatible server on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from strongroom.llm import Deployment, Gateway, OpenAICompatible, RetryPolicy, Route, StaticRoutes, Target
from strongroom.rag import ExtractiveGenerator, Generator
from strongroom.rag.llm import LLMGenerator
from strongroom.testing.generator_contract import Answering, GeneratorContract
from strongroom.testing.openai_server import FakeOpenAIServer, Reply


class TestExtractiveGenerator(GeneratorContract):
    @pytest.fixture
    def answering(self) -> Answering:
        return lambda reply: ExtractiveGenerator()


class TestLLMGenerator(GeneratorContract):
    @pytest.fixture
    def answering(self) -> Iterator[Answering]:
        opened: list[LLMGenerator] = []
        with FakeOpenAIServer(Reply.error(500, "unscripted")) as server:

            def make(reply: str) -> Generator:
                server.script(Reply.stream(reply))
                model = OpenAICompatible(server.url, "fake-llama", name="vllm")
                gateway = Gateway(
                    StaticRoutes([Route("chat", 1, (Target("vllm", 100),))]),
                    [Deployment("vllm", model)],
                    retry=RetryPolicy(attempts=1),
                )
                opened.append(LLMGenerator(gateway, "chat", user="contract"))
                return opened[-1]

            yield make
            for generator in opened:
                generator.close()
