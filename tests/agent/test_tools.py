"""A tool call's arguments, checked before the tool runs; the agent's own calculate."""

from __future__ import annotations

import json

import pytest

from strongroom.agent.base import Evidence
from strongroom.agent.tools import CALCULATE, check_schema, parse_arguments, run_calculate
from strongroom.errors import QueryError
from tests.agent.fakes import SEARCH

PAGE = Evidence("page", {"page": 4}, "(In millions) Total net sales 81,797 94,836; tax rate 21.5%")


def test_arguments_are_parsed_and_checked_against_the_schema() -> None:
    assert parse_arguments(SEARCH, '{"query": "net sales", "k": 3}') == {"query": "net sales", "k": 3}
    with pytest.raises(QueryError, match="lacks the required field 'expression'"):
        parse_arguments(CALCULATE, "")  # empty text is an empty object


@pytest.mark.parametrize(
    "arguments",
    ["[" * 100_000 + "]" * 100_000, '{"query": ' * 50_000 + "1" + "}" * 50_000, "\x00", '{"query": "x"} trailing'],
)
def test_hostile_argument_text_is_an_error_not_a_crash(arguments: str) -> None:
    with pytest.raises(QueryError):
        parse_arguments(SEARCH, arguments)


def test_the_schema_subset() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "number"]},
            "b": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
            "c": {"enum": ["x", "y"]},
            "d": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "additionalProperties": {"type": "boolean"},
    }
    check_schema({"a": 1.5, "b": [1, 2.0], "c": "x", "d": 0.5, "extra": True}, schema)
    for bad, words in [
        ({"a": None}, "arguments.a must be string or number"),
        ({"b": [1, 1.5]}, r"arguments.b\[1\] must be integer"),
        ({"b": [1, 2, 3]}, "at most 2 items"),
        ({"c": "z"}, 'one of "x", "y"'),
        ({"d": 2}, "at most 1"),
        ({"d": -1}, "at least 0"),
        ({"extra": "yes"}, "arguments.extra must be boolean"),
    ]:
        with pytest.raises(QueryError, match=words):
            check_schema(bad, schema)


def test_calculate_binds_inputs_to_the_evidence_that_states_them() -> None:
    args = {
        "expression": "pct_change(q2, q3) + tax * 0 + x / 1e6 * 100",
        "inputs": {
            "q2": {"value": "94,836", "evidence": 1},
            "q3": {"value": 81797, "evidence": 1},
            "tax": {"value": "21.5%", "evidence": 1},
            "x": {"value": "$81.797 billion", "evidence": 1},  # the page is in millions
        },
    }
    parse_arguments(CALCULATE, json.dumps(args))
    out = run_calculate(args, [PAGE])
    (evidence,) = out.evidence
    assert evidence.kind == "calculation"
    assert evidence.ref["inputs"] == {
        "q2": {"value": "94,836", "evidence": 1},
        "q3": {"value": "81797", "evidence": 1},
        "tax": {"value": "21.5%", "evidence": 1},
        "x": {"value": "$81.797 billion", "evidence": 1},
    }
    assert evidence.text.startswith("pct_change(94836, 81797) + 0.215 * 0 + 81797000000 / 1e6 * 100 ≈ 8179686.251")
    assert out.content["value"] == evidence.numbers[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"expression": "81797 * 2"}, "the number 81797 in the expression must come from the evidence"),
        ({"expression": "a * 1.5", "inputs": {"a": {"value": "81,797", "evidence": 1}}}, "the number 1.5"),
        ({"expression": "a * 2", "inputs": {"a": {"value": "99,999", "evidence": 1}}}, "not stated by evidence"),
        ({"expression": "a", "inputs": {"a": {"value": "81,797", "evidence": 2}}}, "the run has 1 evidence"),
        ({"expression": "a", "inputs": {"a": {"value": "lots", "evidence": 1}}}, "not one number"),
        ({"expression": "a / (a - a)", "inputs": {"a": {"value": "81,797", "evidence": 1}}}, "division by zero"),
    ],
)
def test_calculate_refuses_numbers_the_evidence_does_not_state(args: dict[str, object], words: str) -> None:
    with pytest.raises(QueryError, match=words):
        run_calculate(args, [PAGE])


def test_small_whole_numbers_and_powers_of_ten_may_be_written() -> None:
    args = {"expression": "a / 4 * 12 / 1000 * 1e6 - 365 + 100", "inputs": {"a": {"value": "81,797", "evidence": 1}}}
    assert run_calculate(args, [PAGE]).content["exact"] is True
