"""Cards, IBANs and SSNs in every spelling: always found and never left behind; table figures never."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.ingest.understand.checkdigits import IBAN_LENGTHS, luhn_check_digit
from strongroom.ingest.understand.identifiers import cards, ibans, ssns
from strongroom.ingest.understand.pii import detect_text, redact_text
from tests.understand.secret_forms import iban_number

# Words around a value: never digits or letters glued to it, so they cannot change what it is.
filler = st.text(alphabet=string.ascii_letters + " ,;:()\n", max_size=40).map(lambda s: f" {s} ")


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["4", "51", "55", "22", "37", "6011", "65"]))
    length = 15 if prefix == "37" else 16
    payload = prefix + draw(
        st.text(alphabet=string.digits, min_size=length - 1 - len(prefix), max_size=length - 1 - len(prefix))
    )
    return payload + str(luhn_check_digit(payload))


@st.composite
def spelled_cards(draw: st.DrawFn) -> tuple[str, str]:
    number = draw(card_numbers())
    sep = draw(st.sampled_from(["", " ", ".", "-"]))
    groups = [number[:4], number[4:10], number[10:]] if len(number) == 15 else re.findall(r".{1,4}", number)
    written = sep.join(groups) if sep else number
    if draw(st.booleans()):  # wrapped: one separator (or a split inside the run) becomes a line break
        cut = draw(st.integers(4, len(written) - 4))
        if written[cut] in " .-":
            written = written[:cut] + "\n" + written[cut + 1 :]
        elif not sep:
            written = written[:cut] + "\n" + written[cut:]
    return number, written


@st.composite
def spelled_ibans(draw: st.DrawFn) -> tuple[str, str]:
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    digits = draw(
        st.text(alphabet=string.digits, min_size=IBAN_LENGTHS[country] - 4, max_size=IBAN_LENGTHS[country] - 4)
    )
    bban = digits
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    style = draw(st.sampled_from(["compact", "fours", "odd", "dots"]))
    if style == "compact":
        written = iban
    elif style == "fours":
        written = " ".join(re.findall(r".{1,4}", iban))
    elif style == "dots":
        written = ".".join(re.findall(r".{1,4}", iban))
    else:
        written = f"{iban[:2]} {iban[2:4]} {iban[4:10]} {iban[10:]}"
    if draw(st.booleans()):
        written = written.lower()
    if style == "fours" and draw(st.booleans()):
        parts = written.split(" ")
        written = " ".join(parts[:2]) + "\n" + " ".join(parts[2:])
    return iban, written


@settings(max_examples=300, deadline=None)
@given(filler, spelled_cards(), filler)
def test_a_valid_card_in_any_allowed_spelling_is_found_and_never_survives(
    before: str, card: tuple[str, str], after: str
) -> None:
    number, written = card
    text = before + written + after
    findings = detect_text(text, 1)
    assert "card" in {f.type for f in findings}, repr(written)
    redacted = redact_text(text, findings)
    assert number not in re.sub(r"[\s.\-]", "", redacted)


@settings(max_examples=300, deadline=None)
@given(filler, spelled_ibans(), filler)
def test_a_valid_iban_in_any_allowed_spelling_is_found_and_never_survives(
    before: str, iban: tuple[str, str], after: str
) -> None:
    value, written = iban
    text = before + written + after
    findings = detect_text(text, 1)
    assert "iban" in {f.type for f in findings}, repr(written)
    redacted = redact_text(text, findings)
    assert value.lower() not in re.sub(r"[\s.\-]", "", redacted).lower()


@pytest.mark.parametrize(
    "written", ["SSN 123-45-6780", "SSN: 123 45 6780", "ssn 123.45.6780", "social security number 123-45-\n6780"]
)
def test_an_ssn_in_any_spelling_is_found(written: str) -> None:
    (finding,) = [f for f in detect_text(written, 1) if f.type == "ssn"]
    assert re.sub(r"\D", "", written[finding.start : finding.end]) == "123456780"


@pytest.mark.parametrize(
    "text",
    [
        "Financing obligations, including interest (1) 118 468 461 468 476 6,765 8,756",
        "September 30,\n2022\nJune 30,\n2022\n2009 issuance of $3.8 billion 2039",  # a year column, wrapped
        "Balance at 20 percent of the total in 2023 and 2024 across 12 segments",
        "at 2022 2021 2020 2019 2018 2017 2016 2015",
        "1.234.567 and 4.321.765 euros",
        "CUSIP 037833100 ISIN US0378331005 and DE0007164600",
    ],
)
def test_table_figures_and_prose_are_not_cards_or_ibans(text: str) -> None:
    assert list(cards(text)) == []
    assert list(ibans(text)) == []


def test_an_unlabelled_spaced_ssn_scores_low_and_a_labelled_one_high() -> None:
    (plain,) = ssns("Shares 123 45 6780 outstanding")
    (labelled,) = ssns("SSN 123 45 6780")
    assert plain[3] < labelled[3]


def test_a_card_after_figures_in_the_same_run_is_still_found() -> None:
    text = "Ref 2022 4111 1111 1111 1111 paid"
    (finding,) = detect_text(text, 1)
    assert text[finding.start : finding.end] == "4111 1111 1111 1111"


def test_an_iban_after_prose_that_starts_like_one_is_still_found() -> None:
    iban = iban_number("Prose")
    text = f"at 20 {' '.join(re.findall(r'.{1,4}', iban))} today"
    assert [f.type for f in detect_text(text, 1)] == ["iban"]
