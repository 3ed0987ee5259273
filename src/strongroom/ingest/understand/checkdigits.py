"""Check-digit validators for the identifiers found in financial documents.

A regex finds candidates; these functions decide. Each takes the candidate as printed
(spaces, dots, hyphens and line breaks are ignored, so ``4111.1111.1111.1111`` and an IBAN
wrapped across two lines validate) and returns ``True`` only for a well-formed value whose
check digit is right.

    >>> luhn_valid("4111 1111 1111 1111"), isin_valid("US0378331005"), cusip_valid("037833100")
    (True, True, True)
"""

from __future__ import annotations

import re

__all__ = [
    "IBAN_LENGTHS",
    "aba_valid",
    "cusip_check_digit",
    "cusip_valid",
    "iban_valid",
    "isin_check_digit",
    "isin_valid",
    "luhn_check_digit",
    "luhn_valid",
    "ssn_valid",
]

_SEPARATORS = re.compile(r"[\s.\-]")

# ISO 13616 registry: the length of an IBAN in each country that issues them.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BI": 27,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DJ": 27,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FK": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HN": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MN": 20,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NI": 28,
    "NL": 18,
    "NO": 15,
    "OM": 23,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "RU": 33,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "SO": 23,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
}


def _digits(value: str) -> str:
    return _SEPARATORS.sub("", value)


def _luhn_sum(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total


def luhn_check_digit(payload: str) -> int:
    """The Luhn digit to append to the digit string ``payload``."""
    return (10 - _luhn_sum(payload + "0") % 10) % 10


def luhn_valid(value: str) -> bool:
    """True if ``value`` (digits, spaces or hyphens allowed) passes the Luhn check."""
    digits = _digits(value)
    return len(digits) >= 2 and digits.isascii() and digits.isdigit() and _luhn_sum(digits) % 10 == 0


def _alnum_to_digits(value: str) -> str:
    return "".join(str(int(ch, 36)) for ch in value)


def iban_valid(value: str) -> bool:
    """True for an IBAN of the registered length for its country whose mod-97 check is 1."""
    iban = _digits(value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,30}", iban):
        return False
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    if expected is None and not 15 <= len(iban) <= 34:
        return False
    return int(_alnum_to_digits(iban[4:] + iban[:4])) % 97 == 1


def isin_check_digit(payload: str) -> int:
    """The check digit of an 11-character ISIN payload (country code + NSIN)."""
    return luhn_check_digit(_alnum_to_digits(payload.upper()))


def isin_valid(value: str) -> bool:
    """True for a 12-character ISIN (2 letters, 9 alphanumerics, 1 digit) with a right check digit."""
    isin = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}[A-Z0-9]{9}\d", isin):
        return False
    return isin_check_digit(isin[:11]) == int(isin[11])


def _cusip_value(ch: str) -> int:
    if ch.isdigit():
        return int(ch)
    if ch.isalpha():
        return ord(ch) - ord("A") + 10
    return {"*": 36, "@": 37, "#": 38}[ch]


def cusip_check_digit(payload: str) -> int:
    """The check digit of an 8-character CUSIP payload."""
    total = 0
    for i, ch in enumerate(payload.upper()):
        v = _cusip_value(ch)
        if i % 2 == 1:
            v *= 2
        total += v // 10 + v % 10
    return (10 - total % 10) % 10


def cusip_valid(value: str) -> bool:
    """True for a 9-character CUSIP whose last digit is the right check digit."""
    cusip = value.strip().upper()
    if not re.fullmatch(r"[A-Z0-9*@#]{8}\d", cusip):
        return False
    return cusip_check_digit(cusip[:8]) == int(cusip[8])


def aba_valid(value: str) -> bool:
    """True for a 9-digit ABA routing number with a valid prefix and 3-7-1 checksum."""
    digits = _digits(value)
    if not (len(digits) == 9 and digits.isascii() and digits.isdigit()):
        return False
    prefix = int(digits[:2])
    if not (prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80):
        return False
    weights = (3, 7, 1) * 3
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def ssn_valid(value: str) -> bool:
    """True for a US SSN in an issuable range: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    digits = _digits(value)
    if not (len(digits) == 9 and digits.isascii() and digits.isdigit()):
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in {"000", "666"} or area.startswith("9"):
        return False
    if group == "00" or serial == "0000":
        return False
    # Numbers the SSA has published as invalid (advertising and Woolworth's wallet card).
    return digits not in {"078051120", "219099999", "123456789"}
