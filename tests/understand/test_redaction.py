"""Redaction outside the pages: queries (with their keyed digest), file names, source keys, metadata."""

from __future__ import annotations

import hashlib
import hmac
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import ConfigError
from strongroom.ingest.understand.policy import Policy
from strongroom.ingest.understand.redaction import (
    query_digest,
    redact_metadata,
    redact_name,
    redact_query,
    redact_source,
    redact_value,
)
from tests.understand.secret_forms import forms, spellings

FORMS = forms("Qry1")
KEY = b"k" * 32


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.name)
def test_a_query_keeps_its_words_and_loses_its_secrets(form: object) -> None:
    assert hasattr(form, "one_line")
    query = f"why was this refused: {form.one_line()}"  # type: ignore[attr-defined]
    text, findings = redact_query(query)
    assert findings and all(f.page == 0 for f in findings)
    assert text.startswith("why was this refused: ") and "[REDACTED:" in text
    for secret in form.secrets:  # type: ignore[attr-defined]
        for spelling in spellings(secret):
            assert spelling.lower() not in text.lower()
    for f in findings:  # the findings locate the original query and hold no value
        assert query[f.start : f.end] not in f.preview or len(query[f.start : f.end]) <= 4


def test_a_labelled_value_without_quotes_runs_to_the_end_of_its_line() -> None:
    # detect-secrets reads "password: x" as a config line: the value is the rest of the line,
    # so a passphrase with spaces is not half kept. Quotes or a new line end it sooner.
    assert redact_query("password: correct horse battery")[0] == "password: [REDACTED:PASSWORD]"
    assert redact_query('password: "s3cret" is the old one')[0] == 'password: "[REDACTED:PASSWORD]" is the old one'
    assert redact_query("password: s3cret\nwhy?")[0] == "password: [REDACTED:PASSWORD]\nwhy?"


def test_an_ordinary_query_is_unchanged() -> None:
    query = "What were Apple's total net sales in the quarter ended July 1, 2023, versus 82,959 a year ago?"
    assert redact_query(query) == (query, [])


def test_a_query_follows_the_policy() -> None:
    query = "mail jane@example.com the password: hunter2x"
    text, findings = redact_query(query)
    assert text == "mail jane@example.com the password: [REDACTED:PASSWORD]"  # e-mail is flagged by default
    assert {f.type for f in findings} == {"email", "password"}
    text, _ = redact_query(query, Policy(actions={"email": "redact"}))
    assert "jane@example.com" not in text
    rejecting = Policy(actions={"password": "reject"})
    text, findings = redact_query(query, rejecting)  # a query is redacted; the caller may refuse it
    assert "hunter2x" not in text and any(rejecting.action_for(f.type) == "reject" for f in findings)


def test_the_query_digest_is_hmac_sha256_under_the_key() -> None:
    query = "password: hunter2x"
    assert query_digest(query, KEY) == hmac.new(KEY, query.encode(), hashlib.sha256).hexdigest()
    assert query_digest(query, KEY) != query_digest(query, b"j" * 32)
    assert query_digest(query, KEY) != query_digest("password: hunter2y", KEY)
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        query_digest(query, b"short")


def test_a_file_name_keeps_its_document_extension_and_is_deterministic() -> None:
    assert redact_name("db_password=hunter2x.pdf")[0] == "db_password=[REDACTED:PASSWORD].pdf"
    assert redact_name("card 4111111111111111.txt")[0] == "card [REDACTED:CARD].txt"
    assert redact_name("board pack Q3.docx") == ("board pack Q3.docx", [])
    assert redact_name("passwd=abc123.xyz")[0] == "passwd=[REDACTED:PASSWORD]"  # an unknown suffix may be the secret
    assert redact_name("pwd=Tw1ce.md") == redact_name("pwd=Tw1ce.md")


def test_a_source_key_is_redacted_part_by_part_and_as_a_uri() -> None:
    assert (
        redact_source("s3://svc:SrcPass77@bucket/reports/q3.pdf")
        == "s3://svc:[REDACTED:PASSWORD]@bucket/reports/q3.pdf"
    )
    assert redact_source("/data/pwd=abc123/notes.txt") == "/data/pwd=[REDACTED:PASSWORD]/notes.txt"
    assert redact_source("/data/AKIAIOSFODNN7EXAMPLE.csv") == "/data/[REDACTED:API_KEY].csv"
    assert redact_source("examples/research/rates.md") == "examples/research/rates.md"


def test_metadata_values_are_read_after_their_keys() -> None:
    meta = {
        "db_password": "hunter2x",  # a password only its key says is one
        "pdf.subject": "Rotation: password: abc12345",
        "pdf.keywords": "AKIAIOSFODNN7EXAMPLE; 10-Q",
        "pdf.author": "EDGAR Online",
        "AKIAIOSFODNN7EXAMPLE": "key as key",
    }
    redacted, findings = redact_metadata(meta)
    assert redacted == {
        "db_password": "[REDACTED:PASSWORD]",
        "pdf.subject": "Rotation: password: [REDACTED:PASSWORD]",
        "pdf.keywords": "[REDACTED:API_KEY]; 10-Q",
        "pdf.author": "EDGAR Online",
        "[REDACTED:API_KEY]": "key as key",
    }
    assert sorted(f.type for f in findings) == ["api_key", "api_key", "password", "password"]


secret_texts = st.lists(
    st.one_of(st.sampled_from([f.one_line() for f in FORMS]), st.text(string.ascii_letters + " .,:", max_size=20)),
    min_size=1,
    max_size=4,
).map(" ; ".join)


@settings(max_examples=150, deadline=None)
@given(secret_texts)
def test_redaction_is_idempotent_and_deterministic(text: str) -> None:
    once, _ = redact_value(text)
    assert redact_value(text)[0] == once
    assert redact_value(once)[0] == once
