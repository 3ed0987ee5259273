"""Tool calls written as text by open models: rendering them into the prompt and parsing them out."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from strongroom.llm.tool_text import (
    CLOSE,
    OPEN,
    ToolCallScanner,
    fallback_tools_block,
    message_dicts,
    parse_tool_calls,
    tool_schemas,
)
from strongroom.llm.types import ChatMessage, ToolCall, ToolSpec

LOOKUP = ToolSpec("lookup_metric", "Look up a metric", {"type": "object", "properties": {"metric": {"type": "string"}}})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=3).map(json.dumps)
names = st.text(st.characters(codec="utf-8", exclude_characters="<>"), min_size=1, max_size=12)
prose = st.text(st.characters(codec="utf-8", exclude_characters="<"), max_size=20)


def written(name: str, args: str) -> str:
    return f'{OPEN}{{"name": {json.dumps(name)}, "arguments": {args}}}{CLOSE}'


def test_a_call_comes_out_whole_with_its_arguments_as_written() -> None:
    text = 'Let me check. <tool_call>\n{"name": "lookup_metric", "arguments": {"metric":  "CET1"}}\n</tool_call>'
    said, calls = parse_tool_calls(text)
    assert said == "Let me check. "
    assert calls == (ToolCall("call_1", "lookup_metric", '{"metric":  "CET1"}'),)


def test_arguments_written_as_a_json_string_are_unwrapped() -> None:
    _, calls = parse_tool_calls('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>')
    assert calls == (ToolCall("call_1", "f", '{"a": 1}'),)


def test_malformed_calls_pass_through_as_text_for_the_caller_to_refuse() -> None:
    _, calls = parse_tool_calls('<tool_call>{"name": "lookup_metric", "arguments": {"metric": "CET1</tool_call>')
    assert calls == (ToolCall("call_1", "lookup_metric", '{"metric": "CET1'),)
    _, calls = parse_tool_calls("<tool_call>call lookup please</tool_call>")
    assert calls == (ToolCall("call_1", "", "call lookup please"),)


def test_an_unterminated_last_block_is_still_a_call() -> None:
    said, calls = parse_tool_calls('ok <tool_call>{"name": "f", "arguments": {"x": 1')
    assert said == "ok " and calls == (ToolCall("call_1", "f", '{"x": 1'),)


@given(st.lists(st.tuples(prose, names, arguments), max_size=4), prose)
def test_written_calls_parse_back_in_order(parts: list[tuple[str, str, str]], tail: str) -> None:
    text = "".join(p + written(n, a) for p, n, a in parts) + tail
    said, calls = parse_tool_calls(text)
    assert said == "".join(p for p, _, _ in parts) + tail
    assert calls == tuple(ToolCall(f"call_{i}", n, a) for i, (_, n, a) in enumerate(parts, 1))


@given(st.lists(st.tuples(prose, names, arguments), max_size=3), prose, st.lists(st.integers(1, 9), max_size=30))
def test_the_scanner_shows_no_call_text_however_the_stream_is_split(
    parts: list[tuple[str, str, str]], tail: str, cuts: list[int]
) -> None:
    text = "".join(p + written(n, a) for p, n, a in parts) + tail
    pieces, pos = [], 0
    for cut in cuts:
        pieces.append(text[pos : pos + cut])
        pos += cut
    pieces.append(text[pos:])
    scanner = ToolCallScanner()
    shown = "".join(scanner.feed(p) for p in pieces)
    assert OPEN not in shown  # the prose holds no "<": any tag shown would be a call's
    rest, calls = scanner.finish()
    assert shown + rest == parse_tool_calls(text)[0]
    assert calls == parse_tool_calls(text)[1]


def test_text_without_calls_streams_through_but_a_partial_tag_waits() -> None:
    scanner = ToolCallScanner()
    assert scanner.feed("The ratio is 14%. <tool") == "The ratio is 14%. "
    assert scanner.feed("kit>") == "<toolkit>"
    assert scanner.finish() == ("", ())


def test_messages_render_calls_and_results_for_templates_with_and_without_tool_support() -> None:
    call = ToolCall("call_1", "lookup_metric", '{"metric": "CET1"}')
    messages = (
        ChatMessage("user", "CET1?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"value": 14.2}', tool_call_id="call_1"),
    )
    native = message_dicts(messages, native_tools=True)
    assert native[1]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup_metric", "arguments": {"metric": "CET1"}}}
    ]
    assert native[2] == {"role": "tool", "content": '{"value": 14.2}', "tool_call_id": "call_1"}
    as_text = message_dicts(messages, native_tools=False)
    assert parse_tool_calls(as_text[1]["content"])[1] == (call,)
    assert as_text[2] == {"role": "user", "content": '<tool_response>\n{"value": 14.2}\n</tool_response>'}


def test_the_fallback_block_lists_every_tool_as_json() -> None:
    block = fallback_tools_block([LOOKUP])
    assert json.dumps(tool_schemas([LOOKUP])[0], sort_keys=True) in block and OPEN in block
