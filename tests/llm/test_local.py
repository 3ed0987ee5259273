"""A real (tiny, random-weight) transformers model answering through the gateway, on CPU."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from strongroom.llm.gateway import Deployment
from strongroom.llm.local import LocalModel
from strongroom.llm.protocol import ChatModel
from strongroom.llm.types import ChatResult, Delta
from strongroom.testing.chat_contract import ChatModelFactory, NoToolsContract, Refusal, Script
from tests.llm.helpers import ask, function, gateway


class TestLocalModel(NoToolsContract):
    """The tiny random-weight model says what its weights say; a refusal is a directory it cannot load."""

    scripted = False

    @pytest.fixture
    def chat_model(self, tiny_model_dir: Path, tmp_path: Path) -> ChatModelFactory:
        def make(*script: Script) -> ChatModel:
            if any(isinstance(entry, Refusal) for entry in script):
                return LocalModel(tmp_path / "no-model-here", name="missing")
            return LocalModel(tiny_model_dir, name="tiny", max_new_tokens=12)

        return make


def test_local_model_streams_through_the_gateway(tiny_model_dir: Path) -> None:
    model = LocalModel(tiny_model_dir, name="tiny", max_new_tokens=12)
    gw = gateway([("tiny", 1), ("extractive", 0)], [Deployment("tiny", model), function("extractive", "fallback")])

    async def main() -> tuple[list[Delta], ChatResult, ChatResult]:
        async with gw.stream(ask("what did the bank report", request_id="r1")) as s:
            deltas = [d async for d in s]
        again = await gw.chat(ask("what did the bank report"))
        return deltas, s.result, again

    try:
        deltas, result, again = asyncio.run(main())
    finally:
        model.close()
    assert result.deployment == "tiny" and not result.failovers
    assert result.text.strip() and len([d for d in deltas if d.text]) > 1  # streamed word by word
    assert not result.usage.estimated and 1 <= result.usage.completion_tokens <= 12
    assert result.usage.prompt_tokens > 3
    assert result.finish_reason in {"stop", "length"}
    assert again.text == result.text  # greedy decoding is deterministic


def test_a_model_directory_that_cannot_load_fails_over(tmp_path: Path) -> None:
    model = LocalModel(tmp_path / "missing", name="broken")
    gw = gateway([("broken", 1), ("extractive", 0)], [Deployment("broken", model), function("extractive", "ok")])
    try:
        result = asyncio.run(gw.chat(ask()))
    finally:
        model.close()
    assert result.deployment == "extractive"
    assert result.failovers[0].error == "BackendUnavailable"
    assert "cannot load a local model" in result.failovers[0].message
