"""SSE decoding is pure: lines in, deltas out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.errors import BackendRejected, BackendUnavailable, BadBackendResponse, RateLimited
from strongroom.llm.sse import DONE, SSEDecoder, parse_chunk
from strongroom.llm.types import Delta, Usage


def chunk(content: str | None = None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_decoder_joins_data_lines_and_ignores_other_fields() -> None:
    d = SSEDecoder()
    lines = [": keep-alive", "event: message", "id: 7", "data: first", "data:second", "retry: 10", ""]
    assert [d.feed(line) for line in lines] == [None] * 6 + ["first\nsecond"]
    assert d.feed("") is None  # a blank line with no data is no event


def test_decoder_flushes_an_event_cut_before_its_blank_line() -> None:
    d = SSEDecoder()
    assert d.feed("data: [DONE]") is None
    assert d.flush() == DONE
    assert d.flush() is None


def test_parse_chunk_content_finish_and_usage() -> None:
    assert parse_chunk(chunk("Hel")) == Delta("Hel")
    assert parse_chunk(chunk(None, "stop")) == Delta("", "stop")
    usage_only = json.dumps({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}})
    assert parse_chunk(usage_only) == Delta("", usage=Usage(9, 3))


def test_parse_chunk_skips_role_only_and_empty_chunks() -> None:
    role = json.dumps({"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    assert parse_chunk(role) is None
    assert parse_chunk(json.dumps({"choices": []})) is None


@pytest.mark.parametrize(
    "data",
    [
        "{not json",
        "[1, 2]",
        '{"id": "x"}',
        '{"choices": ["text"]}',
        '{"choices": [{"delta": {"content": 5}}]}',
    ],
)
def test_parse_chunk_rejects_garbage(data: str) -> None:
    with pytest.raises(BadBackendResponse, match="malformed"):
        parse_chunk(data)


def test_parse_chunk_maps_errors_streamed_by_the_backend() -> None:
    with pytest.raises(RateLimited):
        parse_chunk(json.dumps({"error": {"message": "slow down", "code": 429}}))
    with pytest.raises(BackendRejected):
        parse_chunk(json.dumps({"error": {"message": "context too long", "code": 400}}))
    with pytest.raises(BackendUnavailable, match="engine died"):
        parse_chunk(json.dumps({"object": "error", "message": "engine died"}))


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=10), st.data())
def test_bytes_split_anywhere_decode_to_the_same_events(texts: list[str], data: st.DataObject) -> None:
    stream = "".join(f": c\r\ndata: {chunk(t)}\r\n\r\n" for t in texts).encode() + b"data: [DONE]\n\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = SSEDecoder()
    events: list[str] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events += decoder.feed_bytes(stream[a:b])
    assert events[-1] == DONE and decoder.flush() is None
    decoded = [parse_chunk(e) for e in events[:-1]]
    assert "".join(d.text for d in decoded if d is not None) == "".join(texts)


pieces = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20)
noise = st.lists(st.sampled_from([": ping", "event: message", "id: 1"]), max_size=2)


@given(pieces, st.lists(noise, min_size=20, max_size=20))
def test_any_stream_decodes_to_exactly_its_text(texts: list[str], noises: list[list[str]]) -> None:
    lines: list[str] = []
    for text, extra in zip(texts, noises, strict=False):
        lines += [*extra, f"data: {chunk(text)}", ""]
    lines += [f"data: {chunk(None, 'stop')}", "", f"data: {DONE}", ""]
    decoder = SSEDecoder()
    out: list[Delta] = []
    for line in lines:
        data = decoder.feed(line)
        if data is not None and data != DONE and (delta := parse_chunk(data)) is not None:
            out.append(delta)
    assert "".join(d.text for d in out) == "".join(texts)
    assert out[-1].finish_reason == "stop"
