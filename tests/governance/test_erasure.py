"""The needles of an identifier and the scrub: after it, no form of the identifier is left,
in any case, whatever text surrounded it; markers never spell it again; idempotent."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import QueryError
from strongroom.governance.erasure import MARKER, Needles, identifier_digest, normalise, scrub

_LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüéßAEIOUQXZ0123456789", min_size=2, max_size=8)
identifiers = st.lists(_LETTERS, min_size=1, max_size=3).map(" ".join).filter(lambda s: len(s.replace(" ", "")) >= 4)
# text around the identifier: anything, the marker's own characters and pieces of identifiers included
noise = st.lists(
    st.sampled_from([*"abcdeqrsxyz []\n\t.,ÄÖÜ0123456789", "[erased]", "erase", "d]", "\\u00e4"]), max_size=12
).map("".join)


def _case(text: str, flips: list[bool]) -> str:
    return "".join(c.upper() if f else c.lower() for c, f in zip(text, flips + [False] * len(text), strict=False))


@settings(max_examples=300, deadline=None)
@given(identifiers, st.lists(noise, min_size=1, max_size=5), st.lists(st.booleans(), max_size=30), st.data())
def test_no_occurrence_survives_a_scrub(identifier: str, pieces: list[str], flips: list[bool], data: st.DataObject):
    needles = Needles.of(identifier)
    spaced = data.draw(st.sampled_from([identifier, identifier.replace(" ", "  "), identifier.replace(" ", "\n")]))
    text = _case(spaced, flips).join(pieces)
    out = scrub(text, needles)
    assert needles.count(out) == 0
    assert normalise(identifier) not in normalise(out)
    assert needles.count_bytes(out.encode()) == 0
    assert scrub(out, needles) == out  # idempotent
    if len(pieces) > 1:
        assert MARKER in out


@settings(max_examples=200, deadline=None)
@given(identifiers, st.lists(noise, min_size=2, max_size=4))
def test_the_json_escaped_form_is_found_and_scrubbed(identifier: str, pieces: list[str]):
    needles = Needles.of(identifier)
    stored = json.dumps({"customer": identifier.join(pieces)})  # how a metadata column keeps it
    assert needles.count(stored) >= len(pieces) - 1
    assert needles.count_bytes(stored.encode()) >= len(pieces) - 1
    assert needles.count(scrub(stored, needles)) == 0
    nested = json.dumps({"arguments": json.dumps({"query": identifier.upper().join(pieces)})})  # JSON in JSON
    assert needles.count(nested) >= len(pieces) - 1 and needles.count_bytes(nested.encode()) >= len(pieces) - 1
    assert needles.count(scrub(nested, needles)) == 0
    assert json.loads(json.loads(scrub(nested, needles))["arguments"])  # still JSON at both depths
    value = {"k": [identifier, {identifier: 1}]}
    assert needles.count_value(value) == 2
    assert needles.count_value(needles.scrub_value(value)) == 0


def test_account_numbers_match_with_or_without_their_spaces():
    needles = Needles.of("GB29 NWBK 6016 1331 9268 19")
    assert needles.scrub("iban gb29nwbk60161331926819.") == f"iban {MARKER}."
    assert needles.count("GB29 NWBK 6016-1331 9268 19") == 0  # punctuation is not matched (documented)


@pytest.mark.parametrize("bad", ["", "abc", "   a b  ", "x" * 201, "[erased]", "eras]ed", "ab\x00cd"])
def test_an_identifier_that_would_erase_too_much_or_never_end_is_refused(bad: str):
    with pytest.raises(QueryError):
        Needles.of(bad)


def test_the_digest_is_keyed_and_ignores_case_and_spacing():
    key = b"k" * 32
    assert identifier_digest("Jane  QUIXOTE", key) == identifier_digest("jane quixote", key)
    assert identifier_digest("jane quixote", key) != identifier_digest("jane quixote", b"j" * 32)
    assert identifier_digest("jane quixote", key) != identifier_digest("jane quixota", key)
