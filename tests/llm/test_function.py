"""FunctionModel, the in-process ChatModel around a plain function, under the ChatModel contract."""

from __future__ import annotations

import itertools

import pytest

from strongroom.llm.function import FunctionModel
from strongroom.llm.protocol import ChatModel
from strongroom.llm.types import ChatRequest
from strongroom.testing.chat_contract import ChatModelFactory, NoToolsContract, Refusal, Script


class TestFunctionModel(NoToolsContract):
    reports_usage = False

    @pytest.fixture
    def chat_model(self) -> ChatModelFactory:
        def make(*script: Script) -> ChatModel:
            calls = itertools.count()

            def answer(request: ChatRequest) -> str:
                entry = script[min(next(calls), len(script) - 1)]
                if isinstance(entry, Refusal):
                    raise ValueError(entry.message)  # a library's exception: the model translates it
                return entry

            return FunctionModel(answer, name="contract")

        return make
