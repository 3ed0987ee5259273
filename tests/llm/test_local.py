"""A real (tiny, random-weight) transformers model answering through the gateway, on CPU."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from strongroom.llm.gateway import Deployment
from strongroom.llm.local import LocalModel, render_prompt
from strongroom.llm.protocol import ChatModel
from strongroom.llm.types import ChatRequest, ChatResult, Delta, ToolCall, ToolSpec
from strongroom.testing.chat_contract import (
    TOOL_REQUEST,
    TOOL_RESULT_REQUEST,
    ChatModelContract,
    ChatModelFactory,
    Refusal,
    Script,
)
from tests.llm.helpers import ask, function, gateway


class TestLocalModel(ChatModelContract):
    """The tiny random-weight model says what its weights say; a refusal is a directory it cannot load.

    Not the tool-calling contract: its tests script the calls, and a real model writes what its
    weights say. Its tool handling is tested below and in test_tool_text.py."""

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


SEARCH = ToolSpec("search", "Search the filings", {"type": "object", "properties": {"q": {"type": "string"}}})
#: a minimal template that renders tools, calls and the tool role itself (as Qwen's and Llama 3's do)
NATIVE_TEMPLATE = (
    "{% if tools %}TOOLS {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
    "{% for c in m.get('tool_calls', []) %} CALL {{ c['function'] | tojson }}{% endfor %}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def _tokenizer(path: Path, template: str | None = None) -> object:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if template is not None:
        tok.chat_template = template
    return tok


def test_a_template_that_ignores_tools_gets_them_in_a_system_block(tiny_model_dir: Path) -> None:
    prompt = render_prompt(_tokenizer(tiny_model_dir), TOOL_RESULT_REQUEST)
    assert prompt.startswith("system: You may call these tools:") and '"lookup_metric"' in prompt
    assert '<tool_call>{"name": "lookup_metric", "arguments": {"metric": "CET1 ratio"' in prompt
    assert "<tool_response>" in prompt and prompt.endswith("assistant: ")
    no_tools = ChatRequest(TOOL_RESULT_REQUEST.messages, tools=TOOL_RESULT_REQUEST.tools, tool_choice="none")
    assert "You may call these tools" not in render_prompt(_tokenizer(tiny_model_dir), no_tools)


def test_a_template_that_renders_tools_gets_them_natively(tiny_model_dir: Path) -> None:
    prompt = render_prompt(_tokenizer(tiny_model_dir, NATIVE_TEMPLATE), TOOL_RESULT_REQUEST)
    assert prompt.startswith("TOOLS [") and "You may call these tools" not in prompt
    assert 'CALL {"name": "lookup_metric", "arguments": {"metric": "CET1 ratio"' in prompt
    assert 'tool: {"value": 14.2' in prompt and "<tool_response>" not in prompt


def test_tool_requests_reach_the_local_model_through_the_gateway(tiny_model_dir: Path) -> None:
    """The gateway no longer skips it for a tool request: the tiny model answers (what, its weights say)."""
    model = LocalModel(tiny_model_dir, name="tiny", max_new_tokens=8)
    gw = gateway([("tiny", 1)], [Deployment("tiny", model)])
    request = ChatRequest(TOOL_REQUEST.messages, model="chat", tools=(SEARCH,), tool_choice="auto")
    try:
        result = asyncio.run(gw.chat(request))
    finally:
        model.close()
    assert result.deployment == "tiny" and not result.failovers
    assert result.finish_reason in {"stop", "length", "tool_calls"}
    assert (result.finish_reason == "tool_calls") == bool(result.tool_calls)


def test_a_call_the_model_writes_comes_back_whole_with_finish_reason_tool_calls(tiny_model_dir: Path) -> None:
    """The weights are replaced by a fixed text, streamed in small pieces as the decoder would."""
    text = 'Checking. <tool_call>{"name": "search", "arguments": {"q": "CET1"}}</tool_call>'

    class _Writes(LocalModel):
        def _generate(self, request: ChatRequest, streamer: Any, stop: Any) -> tuple[int, int, int]:
            for i in range(0, len(text), 3):
                streamer.on_finalized_text(text[i : i + 3])
            return 10, 20, 64

    model = _Writes(tiny_model_dir, name="tiny")

    async def main() -> list[Delta]:
        return [d async for d in model.stream(ChatRequest.of("CET1?", tools=(SEARCH,)))]

    try:
        deltas = asyncio.run(main())
    finally:
        model.close()
    assert "".join(d.text for d in deltas) == "Checking. "
    assert [c for d in deltas for c in d.tool_calls] == [ToolCall("call_1", "search", '{"q": "CET1"}')]
    assert deltas[-1].finish_reason == "tool_calls" and deltas[-1].tool_calls
