from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.ingest.understand.checkdigits import luhn_check_digit
from strongroom.ingest.understand.pii import detect_text, find_markers, redact_text
from strongroom.ingest.understand.policy import Policy

SECRETS = {
    "card": "4111 1111 1111 1111",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "ssn": "123-45-6780",
    "aba_routing": "021000021",
    "email": "jane.doe@example.com",
    "phone": "+1 (212) 555-0147",
    "api_key": "AKIAIOSFODNN7EXAMPLE",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "person_name": "Jane Doe",
}
CONTEXT = {"aba_routing": "ABA routing number ", "ssn": "SSN: "}
POLICY = Policy(person_names=("Jane Doe",))


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_kind_is_found_with_its_span_and_a_confidence(kind: str) -> None:
    secret = SECRETS[kind]
    text = f"Please note: {CONTEXT.get(kind, '')}{secret} as discussed."
    findings = [f for f in detect_text(text, 3, POLICY) if f.type == kind]
    assert len(findings) == 1
    f = findings[0]
    assert text[f.start : f.end] == secret
    assert f.page == 3
    assert 0.5 <= f.confidence <= 1.0
    assert secret not in f.preview


@pytest.mark.parametrize(
    "text",
    [
        "Card 4111 1111 1111 1112 is a typo.",  # Luhn fails
        "IBAN GB82 WEST 1234 5698 7654 33 is corrupted.",  # mod-97 fails
        "Reference 000-12-3456 is not an SSN.",  # area 000
        "Order number 021000021 shipped.",  # ABA-valid, but no routing context
        "Revenue was 1,234,567,890 dollars in 2023-2024.",
    ],
)
def test_invalid_or_context_free_numbers_are_not_findings(text: str) -> None:
    assert detect_text(text, 1) == []


def test_an_iban_is_one_finding_not_a_phone_number_too() -> None:
    findings = detect_text("Pay to DE89 3704 0044 0532 0130 00 today", 1)
    assert [f.type for f in findings] == ["iban"]


def test_mnpi_markers_are_found_case_and_hyphen_insensitively() -> None:
    text = "This is MATERIAL NON-PUBLIC information; you are wall crossed."
    assert [m for m, _, _ in find_markers(text, Policy().mnpi_markers)] == ["material non-public", "wall-crossed"]


filler = st.text(alphabet=string.ascii_letters + string.digits + " .,:;\n-()", max_size=60)
card_payloads = st.sampled_from(["4", "51", "37", "6011"]).flatmap(
    lambda prefix: st.text(alphabet=string.digits, min_size=15 - len(prefix), max_size=15 - len(prefix)).map(
        lambda rest: prefix + rest
    )
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(filler, st.sampled_from(sorted(SECRETS))), min_size=1, max_size=4), filler, card_payloads)
def test_redaction_never_leaves_a_detected_secret(parts: list[tuple[str, str]], tail: str, card_payload: str) -> None:
    secrets = dict(SECRETS, card=card_payload + str(luhn_check_digit(card_payload)))
    # Each secret stands on its own line so that the noise cannot legitimately change what it is.
    text = "".join(f"{noise}\n{CONTEXT.get(kind, '')}{secrets[kind]}\n" for noise, kind in parts) + tail
    findings = detect_text(text, 1, POLICY)
    redacted = redact_text(text, findings)
    for f in findings:  # a value under six characters is only removed where it was found (see redact_text)
        value = text[f.start : f.end]
        assert len(value.strip()) < 6 or value.strip() not in redacted
    for kind in {kind for _, kind in parts}:
        assert secrets[kind] not in redacted, kind
        assert f"[REDACTED:{kind.upper()}]" in redacted


@given(filler)
def test_redaction_without_findings_is_the_identity(text: str) -> None:
    assert redact_text(text, []) == text


def test_a_row_of_table_figures_is_not_a_card_even_when_luhn_passes() -> None:
    row = "Financing obligations, including interest (1) 118 468 461 468 476 6,765 8,756"
    assert detect_text(row, 1) == []
    assert [f.type for f in detect_text("Amex 3782 822463 10005 on file", 1)] == ["card"]
