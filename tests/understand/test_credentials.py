"""Credential detection: every form people write, exact spans, and no finding on ordinary filing text."""

from __future__ import annotations

import pytest

from strongroom.ingest.understand.credentials import credentials, private_keys
from strongroom.ingest.understand.pii import detect_text, redact_text
from strongroom.ingest.understand.policy import SECRET_TYPES, Policy
from tests.understand.secret_forms import forms, spellings

FORMS = {f.name: f for f in forms("Unit")}


@pytest.mark.parametrize("name", sorted(FORMS))
def test_each_form_is_found_with_its_type_and_gone_after_redaction(name: str) -> None:
    form = FORMS[name]
    for text in (form.text, form.one_line(), f"Note for the team:\n{form.text}\nThanks."):
        findings = detect_text(text, 1)
        assert form.kind in {f.type for f in findings}, (text, findings)
        redacted = redact_text(text, findings)
        for secret in form.secrets:
            for spelling in spellings(secret):
                assert spelling.lower() not in redacted.lower(), (spelling, redacted)
        assert f"[REDACTED:{form.kind.upper()}]" in redacted


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("db_password=hunter2", "password", "hunter2"),
        ("pwd = ab1", "password", "ab1"),  # a short password, when labelled
        ("contraseña: clave99", "password", "clave99"),  # one of detect-secrets' own keyword spellings
        ('"api_key": "9f2c1e7a"', "secret", "9f2c1e7a"),
        ("client_secret := s3cr3tValue", "secret", "s3cr3tValue"),
        ("password: !Sup3r$ecret", "password", "!Sup3r$ecret"),  # starts with a symbol
        ("PIN: 4321", "password", "4321"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "access_token", "dXNlcjpwYXNzd29yZA=="),
        ("postgres://admin:pgSecret1@10.0.0.5:5432/app", "password", "pgSecret1"),
        ("jdbc:oracle:thin:scott/tiger99@host:1521:orcl", "password", "tiger99"),
        (
            "AWS secret key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "api_key",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
    ],
)
def test_the_span_is_the_secret(text: str, kind: str, value: str) -> None:
    (finding,) = [f for f in detect_text(text, 1) if f.type == kind]
    assert text[finding.start : finding.end] == value
    assert value not in finding.preview


def test_a_token_longer_than_the_plugin_pattern_is_covered_to_its_end() -> None:
    # detect-secrets' GitHub pattern takes 36 characters and its JWT pattern stops before the signature.
    token = "ghp_" + "A1b2C3d4E5" * 5
    jwt = FORMS["jwt"].text
    for secret in (token, jwt):
        text = f"token {secret} rotated"
        (finding,) = detect_text(text, 1)
        assert text[finding.start : finding.end] == secret


def test_a_key_block_cut_by_a_page_break_is_redacted_on_both_pages() -> None:
    block = FORMS["pem_rsa"].text
    lines = block.split("\n")
    first = "Deploy notes.\n" + "\n".join(lines[:2]) + "\n"
    second = "\n".join(lines[2:]) + "\nEnd of notes, see you Monday."
    for page, secret in ((first, lines[1]), (second, lines[2])):
        findings = list(private_keys(page))
        assert findings, page
        redacted = redact_text(page, detect_text(page, 1))
        assert secret not in redacted and "[REDACTED:PRIVATE_KEY]" in redacted
    assert redact_text(second, detect_text(second, 1)).endswith("End of notes, see you Monday.")
    assert redact_text(first, detect_text(first, 1)).startswith("Deploy notes.\n")


def test_putty_and_pgp_keys_are_blocks_too() -> None:
    putty = "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nPrivate-Lines: 1\nAAAAgQCqGKukO1De7zhZj6\nPrivate-MAC: 1a2b3c"
    pgp = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0xJ9sBCAC\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----"
    for block in (putty, pgp):
        text = f"Key:\n{block}\nDone."
        assert redact_text(text, detect_text(text, 1)) == "Key:\n[REDACTED:PRIVATE_KEY]\nDone."


ORDINARY = [
    "Total net sales 82,959 81,434 304,182 282,457",
    "CUSIP 037833100, ISIN US0378331005, SEDOL 2046251",
    "for the quarterly period ended July 1, 2023 (Commission File Number 001-36743)",
    "Accession No. 0000320193-23-000077 filed 2023-08-04",
    "Exhibit 101.SCH sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    'Words such as "anticipate", "believe", "could", "estimate" and "expect" identify forward-looking statements.',
    "We rely on trade secrets and key personnel; the loss of key employees could harm us.",
    "By: /s/ Katherine Adams, Senior Vice President, General Counsel and Secretary",
    "Basic and diluted earnings per share 1.26 1.20",
    "The notes are issued in bearer form and held through Euroclear.",
    "https://www.sec.gov/Archives/edgar/data/320193/000032019323000077/aapl-20230701.htm",
    "Passwords must be rotated every 90 days under the access policy.",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_filing_text_has_no_finding(text: str) -> None:
    assert list(credentials(text)) == []
    assert detect_text(text, 1) == []


def test_a_quoted_random_string_is_flagged_but_a_bare_digest_is_not() -> None:
    # Decision: the entropy plugins see quoted strings only (detect-secrets' default). A digest
    # in an exhibit list or a hash column is unquoted and stays; a quoted high-entropy value, as
    # in a pasted config file, is redacted, even if it happens to be a digest.
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert detect_text(f"sha256 {digest}", 1) == []
    assert [f.type for f in detect_text(f'checksum = "{digest}"', 1)] == ["high_entropy"]
    assert detect_text('label = "Apple Inc. common stock"', 1) == []
    assert detect_text('code = "ABCDEFGHIJ"', 1) == []  # quoted, but short and low in entropy


def test_secret_types_raise_sensitivity_to_restricted_and_are_redacted_by_default() -> None:
    policy = Policy()
    for kind in SECRET_TYPES:
        assert policy.raises[kind] == "restricted"
        assert policy.action_for(kind) == "redact"


def test_a_password_inside_a_connection_string_is_redacted_though_it_looks_like_an_email() -> None:
    text = "mongodb://app:s3cretPw@db.example.com/prod"
    findings = detect_text(text, 1)
    assert [f.type for f in findings] == ["password"]  # the e-mail-shaped overlap is merged into it
    assert "s3cretPw" not in redact_text(text, findings)
