from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.ingest.understand.checkdigits import (
    aba_valid,
    cusip_check_digit,
    cusip_valid,
    iban_valid,
    isin_check_digit,
    isin_valid,
    luhn_check_digit,
    luhn_valid,
    ssn_valid,
)

digits = st.text(alphabet=string.digits, min_size=12, max_size=18)
isin_payloads = st.tuples(
    st.text(alphabet=string.ascii_uppercase, min_size=2, max_size=2),
    st.text(alphabet=string.ascii_uppercase + string.digits, min_size=9, max_size=9),
).map("".join)
cusip_payloads = st.text(alphabet=string.ascii_uppercase + string.digits, min_size=8, max_size=8)


def _replace(value: str, index: int, new: str) -> str:
    return value[:index] + new + value[index + 1 :]


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (luhn_valid, "4111 1111 1111 1111"),
        (luhn_valid, "5500-0000-0000-0004"),
        (luhn_valid, "378282246310005"),
        (isin_valid, "US0378331005"),
        (isin_valid, "GB0002634946"),
        (isin_valid, "DE000BAY0017"),
        (cusip_valid, "037833100"),
        (cusip_valid, "38259P508"),
        (iban_valid, "GB82 WEST 1234 5698 7654 32"),
        (iban_valid, "DE89370400440532013000"),
        (iban_valid, "FR1420041010050500013M02606"),
        (aba_valid, "021000021"),
        (aba_valid, "011000015"),
        (ssn_valid, "123-45-6780"),
    ],
)
def test_known_good_identifiers_pass(check: object, value: str) -> None:
    assert callable(check)
    assert check(value)


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (luhn_valid, "4111 1111 1111 1112"),
        (isin_valid, "US0378331006"),
        (isin_valid, "US037833100"),
        (cusip_valid, "037833101"),
        (iban_valid, "GB82 WEST 1234 5698 7654 33"),
        (iban_valid, "GB82 WEST 1234 5698 7654"),  # wrong length for GB
        (aba_valid, "021000022"),
        (aba_valid, "991000021"),  # prefix outside the Federal Reserve ranges
        (ssn_valid, "000-12-3456"),
        (ssn_valid, "666-12-3456"),
        (ssn_valid, "912-12-3456"),
        (ssn_valid, "123-00-4567"),
        (ssn_valid, "123-45-0000"),
    ],
)
def test_corrupted_identifiers_are_rejected(check: object, value: str) -> None:
    assert callable(check)
    assert not check(value)


@given(digits, st.data())
def test_luhn_catches_every_single_digit_change(payload: str, data: st.DataObject) -> None:
    number = payload + str(luhn_check_digit(payload))
    assert luhn_valid(number)
    index = data.draw(st.integers(0, len(number) - 1))
    new = data.draw(st.sampled_from([d for d in string.digits if d != number[index]]))
    assert not luhn_valid(_replace(number, index, new))


@given(isin_payloads, st.data())
def test_isin_catches_every_single_digit_change(payload: str, data: st.DataObject) -> None:
    isin = payload + str(isin_check_digit(payload))
    assert isin_valid(isin)
    positions = [i for i, ch in enumerate(isin) if ch.isdigit()]
    index = data.draw(st.sampled_from(positions))
    new = data.draw(st.sampled_from([d for d in string.digits if d != isin[index]]))
    assert not isin_valid(_replace(isin, index, new))


@given(cusip_payloads, st.data())
def test_cusip_catches_a_changed_check_digit_or_a_changed_digit(payload: str, data: st.DataObject) -> None:
    cusip = payload + str(cusip_check_digit(payload))
    assert cusip_valid(cusip)
    positions = [i for i, ch in enumerate(cusip) if ch.isdigit()]
    index = data.draw(st.sampled_from(positions))
    new = data.draw(st.sampled_from([d for d in string.digits if d != cusip[index]]))
    assert not cusip_valid(_replace(cusip, index, new))


@given(st.sampled_from(["GB82WEST12345698765432", "DE89370400440532013000", "NL91ABNA0417164300"]), st.data())
def test_iban_catches_every_single_character_change(iban: str, data: st.DataObject) -> None:
    index = data.draw(st.integers(4, len(iban) - 1))
    alphabet = string.digits if iban[index].isdigit() else string.ascii_uppercase
    new = data.draw(st.sampled_from([c for c in alphabet if c != iban[index]]))
    assert not iban_valid(_replace(iban, index, new))
