"""An "oracle" research model for :class:`~strongroom.testing.openai_server.FakeOpenAIServer`:
it replays each evaluation question's gold plan as OpenAI tool calls, one per turn, then
answers with the numbers the tools sent back, each cited to the evidence that states it.

It is a **protocol** fake, not a model: it proves that the agent loop, tool calling over
HTTP, citations and the scoring of ``strongroom eval-agent`` work together (a run of it
scores 1.0 only if every layer does its part); it says nothing of a real model's quality.

    oracle = OracleModel(read_questions(Path("set/questions.jsonl")))
    with FakeOpenAIServer(oracle) as server: ...       # the route's deployment at server.url
    OracleModel(questions, wrong=True)                 # the same calls, every number off by one unit

It finds the question by the run's user message, reads the tool results from the request's
``tool`` messages (``untrusted_content.result``, ``None`` for an error), binds the next step's
references (``$2.rows[0].close``) to them, and turns a plan's ``calculate`` (``variables``) into
the agent's (``inputs``: each value with the evidence item that states it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from strongroom.agent.base import Evidence
from strongroom.agent.citations import states
from strongroom.agent.numbers import parse_figure
from strongroom.agent.prompt import strings_of
from strongroom.data.questions import Gold, Question, bind, check_gold, resolve
from strongroom.errors import QueryError
from strongroom.testing.chat import tool_call
from strongroom.testing.openai_server import Reply

__all__ = ["OracleModel"]


class _Seen:
    """What the model has been sent so far: each tool result (None: an error) and the
    evidence items, by their cite number, with the step that returned them."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.outputs: list[object] = []
        self.errors: list[str] = []
        self.evidence: list[tuple[int, int, Evidence]] = []  # (cite, step, item)
        for message in body.get("messages", []):
            if message.get("role") != "tool":
                continue
            try:
                framed = json.loads(message.get("content") or "{}")
            except ValueError:
                framed = {}
            content = framed.get("untrusted_content") or {}
            step = len(self.outputs) + 1
            if framed.get("status") != "ok":
                self.outputs.append(None)
                self.errors.append(str(content.get("error", "")))
                continue
            result = content.get("result")
            self.outputs.append(result)
            shown = strings_of(result)
            for item in content.get("evidence", []):
                text = item.get("text")
                if text is None:  # shown in the result: find the string its quote starts
                    quote = str(item.get("quote", "")).removesuffix("...")
                    text = next((s for s in shown if s.startswith(quote)), quote)
                self.evidence.append((int(item["cite"]), step, Evidence(item["kind"], item.get("ref") or {}, text)))

    def cite(self, value: object, step: int | None) -> int | None:
        """The evidence number (of ``step`` if given, else any) that states ``value``."""
        figure = parse_figure(str(value))
        for cite, where, item in self.evidence:
            if step is not None and where != step:
                continue
            if figure is None or states(item, figure):
                return cite
        return None


def _step_of(ref: object) -> int | None:
    if isinstance(ref, str) and ref.startswith("$"):
        digits = ref[1:].split(".", 1)[0].split("[", 1)[0]
        return int(digits) if digits.isdigit() else None
    return None


def _off_by_one_unit(text: str) -> str:
    """``text`` if not a number, else the number one unit of its last place higher."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return text
    return str(value + Decimal(1).scaleb(value.as_tuple().exponent))  # type: ignore[arg-type]


class OracleModel:
    """The scripted model (a :data:`~strongroom.testing.openai_server.Responder`): see the
    module. ``wrong``: the same calls, then an answer whose every number is one unit off
    and whose refusals are answered instead (the scoring must fail it)."""

    def __init__(self, questions: Sequence[Question], *, wrong: bool = False) -> None:
        self.questions = {q.question.strip(): q for q in questions}
        self.wrong = wrong

    def __call__(self, body: dict[str, Any]) -> Reply:
        asked = next((str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"), "")
        question = self.questions.get(asked.strip())
        if question is None:
            return Reply.stream("I have no plan for this question.")
        seen = _Seen(body)
        k = len(seen.outputs)
        if k < len(question.plan):
            step = question.plan[k]
            try:
                arguments = bind(step.arguments, seen.outputs)
            except QueryError:  # a reference to a step that failed: answer with what there is
                return Reply.stream(self._answer(question, seen))
            if step.tool == "calculate":
                arguments = self._calculate(step.arguments, arguments, seen)
            return Reply.calls(tool_call(step.tool, arguments, id=f"call_{k + 1}"))
        return Reply.stream(self._answer(question, seen))

    @staticmethod
    def _calculate(asked: Mapping[str, object], bound: Mapping[str, object], seen: _Seen) -> dict[str, object]:
        """A plan's ``calculate`` (``variables``) as the agent's (``inputs`` with evidence)."""
        refs = asked.get("variables")
        values = bound.get("variables")
        inputs = {}
        for name, value in (values if isinstance(values, Mapping) else {}).items():
            ref = refs.get(name) if isinstance(refs, Mapping) else None
            cite = seen.cite(value, _step_of(ref)) or seen.cite(value, None) or 1
            inputs[str(name)] = {"value": str(value), "evidence": cite}
        return {"expression": str(bound.get("expression", "")), "inputs": inputs}

    def _answer(self, question: Question, seen: _Seen) -> str:
        if seen.errors and (question.expect == "refusal" or all(o is None for o in seen.outputs)):
            if self.wrong:
                return "The desk holds 3 such trades [1]."
            return "I could not answer this: the data it needs is not available to you."
        sentences = [s for s in (self._sentence(g, seen) for g in question.gold) if s]
        return " ".join(sentences) or "The tools returned nothing to answer with."

    def _sentence(self, gold: Gold, seen: _Seen) -> str:
        try:
            found = resolve(gold.ref, seen.outputs)
        except QueryError:
            return ""
        step = _step_of(gold.ref)
        if gold.match == "absent":
            return ""
        if gold.match in ("printed", "present"):
            if check_gold(gold, seen.outputs) is not None:
                return ""
            text = str(gold.value)  # it is there, as the tool sent it
        elif gold.match == "count":
            text = str(len(found)) if isinstance(found, list) else ""
        elif gold.match == "set":
            text = ", ".join(str(v) for v in found) if isinstance(found, list) else str(found)
        else:
            text = str(found)
        if self.wrong and gold.match in ("decimal", "printed"):
            text = _off_by_one_unit(text)
        cite = seen.cite(text, step) if gold.match in ("decimal", "printed") else None
        if cite is None:
            cite = next((c for c, where, _ in seen.evidence if where == step), None)
        marker = f" [{cite}]" if cite is not None else ""
        return f"Found: {text}{marker}."
