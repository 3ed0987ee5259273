"""The secret forms an outside attack found reaching the index, and their relatives, made unique by a tag.

Each :class:`SecretForm` is written the way people write it (``text``) and names the values
that must not survive anywhere (``secrets``). ``forms(tag)`` makes a fresh set whose values
all hold ``tag``, so a leak points at the place (body, file name, PDF Subject, ...) it came from.
Card, IBAN and SSN values are valid (Luhn, mod-97, issuable range) for every tag.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

from strongroom.ingest.understand.checkdigits import luhn_check_digit
from strongroom.ingest.understand.policy import FindingType


@dataclass(frozen=True)
class SecretForm:
    name: str
    text: str
    secrets: tuple[str, ...]
    kind: FindingType
    file_name_ok: bool = True  # no "/" and short enough to be a file name

    def one_line(self) -> str:
        """The form where a value cannot hold a line break (a title, a PDF property): lines joined by spaces."""
        return " ".join(self.text.split("\n"))


def _digits(tag: str, n: int) -> str:
    """``n`` digits derived from ``tag`` (stable across runs)."""
    out = ""
    counter = 0
    while len(out) < n:
        out += "".join(ch for ch in hashlib.sha256(f"{tag}{counter}".encode()).hexdigest() if ch.isdigit())
        counter += 1
    return out[:n]


def card_number(tag: str, prefix: str = "4") -> str:
    payload = prefix + _digits(tag + "card", 15 - len(prefix))
    return payload + str(luhn_check_digit(payload))


def iban_number(tag: str, country: str = "GB", bank: str = "WEST") -> str:
    bban = bank + _digits(tag + "iban", 14)
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def ssn_number(tag: str) -> str:
    digits = _digits(tag + "ssn", 9)
    area = str(100 + int(digits[:3]) % 565)  # 100..664: never 000, 666 or 9xx
    group = f"{1 + int(digits[3:5]) % 99:02d}"
    serial = f"{1 + int(digits[5:]) % 9999:04d}"
    return area + group + serial


def _grouped(value: str, sep: str, size: int = 4) -> str:
    return sep.join(value[i : i + size] for i in range(0, len(value), size))


def _wrapped(grouped: str) -> str:
    """The groups on two lines, as a narrow column wraps them."""
    groups = grouped.split(" ")
    return " ".join(groups[:3]) + "\n" + " ".join(groups[3:])


def _jwt(tag: str) -> str:
    def part(obj: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    signature = base64.urlsafe_b64encode(hashlib.sha256(tag.encode()).digest()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': tag, 'name': 'Ann'})}.{signature}"


def _pem(kind: str, tag: str) -> tuple[str, tuple[str, ...]]:
    lines = [base64.b64encode(hashlib.sha512(f"{tag}{kind}{i}".encode()).digest()).decode()[:64] for i in range(2)]
    lines = [re.sub(r"[/+]", "A", line) for line in lines]
    label = f"{kind} PRIVATE KEY" if kind else "PRIVATE KEY"
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----", tuple(lines)


def forms(tag: str) -> list[SecretForm]:
    """Every form, its values holding ``tag`` (letters and digits, 4 characters)."""
    t = tag
    aws_secret = ("wJalrXUtnFEMI/K7MDENG/bPx" + t + "RfiCYEXAMPLEKEYEXAMPLE")[:40]
    aws_id = ("AKIA" + t.upper() + "IOSFODNN7EXAMPLE")[:20]
    card = card_number(t)
    iban = iban_number(t)
    ssn = ssn_number(t)
    azure_key = (t + base64.b64encode(hashlib.sha512(t.encode()).digest()).decode() * 2)[:86] + "=="
    pem = {kind or "PKCS8": _pem(kind, t) for kind in ("RSA", "EC", "OPENSSH", "ENCRYPTED", "")}
    made = [
        SecretForm("aws_secret_access_key", f"aws_secret_access_key = {aws_secret}", (aws_secret,), "api_key", False),
        SecretForm("aws_access_key_id", f"aws_access_key_id={aws_id}", (aws_id,), "api_key"),
        SecretForm("password_colon", f"password: Tr0ub4dor&3{t}", (f"Tr0ub4dor&3{t}",), "password"),
        SecretForm("passwd_equals", f"passwd=hunter2{t}", (f"hunter2{t}",), "password"),
        SecretForm("pwd_short", f"pwd = {t}9z", (f"{t}9z",), "password"),
        SecretForm("db_password", f"db_password={t}S3cr3t", (f"{t}S3cr3t",), "password"),
        SecretForm("json_password", f'{{"password": "{t} correct horse"}}', (f"{t} correct horse",), "password"),
        SecretForm("yaml_password", f"database:\n  password: yml{t}Pass", (f"yml{t}Pass",), "password"),
        SecretForm("env_password", f"DB_PASSWORD=env{t}Pass", (f"env{t}Pass",), "password"),
        SecretForm("ini_password", f"[database]\npassword = ini{t}Pass", (f"ini{t}Pass",), "password"),
        SecretForm("symbol_password", f"password: !{t}$ecret", (f"!{t}$ecret",), "password"),
        SecretForm(
            "bearer",
            f"Authorization: Bearer {t}abcdef0123456789abcdef",
            (f"{t}abcdef0123456789abcdef",),
            "access_token",
        ),
        SecretForm("jwt", _jwt(t), (_jwt(t), _jwt(t).rsplit(".", 1)[1]), "access_token"),
        SecretForm(
            "slack",
            f"xoxb-123456789012-1234567890123-{t}EXAMPLEexampleEXAMPLE",
            (f"xoxb-123456789012-1234567890123-{t}EXAMPLEexampleEXAMPLE",),
            "access_token",
        ),
        SecretForm("github", "ghp_" + (t + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8")[:36], (), "access_token"),
        SecretForm(
            "github_fine_grained",
            f"github_pat_11ABCDEFG0{t}_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW",
            (),
            "access_token",
        ),
        SecretForm("stripe", "sk_live_" + (t + "EXAMPLE0EXAMPLE0EXAMPLE0")[:24], (), "api_key"),
        SecretForm("google", "AIza" + (t + "SyEXAMPLE0123456789abcdefghijklmnop")[:35], (), "api_key"),
        SecretForm(
            "azure_storage",
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={azure_key};EndpointSuffix=core.windows.net",
            (azure_key,),
            "connection_string",
            False,
        ),
        SecretForm(
            "azure_service_bus",
            f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={t}abc123def456ghi789=",
            (f"{t}abc123def456ghi789=",),
            "connection_string",
            False,
        ),
        SecretForm(
            "azure_sas",
            f"https://acct.blob.core.windows.net/c?sv=2019-02-02&sig={t}AbCdEf0123456789xyz%3D&se=2030",
            (f"{t}AbCdEf0123456789xyz%3D",),
            "connection_string",
            False,
        ),
        SecretForm(
            "postgres_url", f"postgres://admin:pg{t}Secret@db.internal:5432/app", (f"pg{t}Secret",), "password", False
        ),
        SecretForm(
            "mongodb_url",
            f"mongodb+srv://user:mongo{t}Pass@cluster0.example.net/db",
            (f"mongo{t}Pass",),
            "password",
            False,
        ),
        SecretForm(
            "jdbc", f"jdbc:sqlserver://host:1433;user=sa;password=jdbc{t}Pw;", (f"jdbc{t}Pw",), "password", False
        ),
        SecretForm(
            "quoted_high_entropy",
            f'client_config = "{t}Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg=="',
            (f"{t}Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg==",),
            "high_entropy",
        ),
        SecretForm("iban_lower", "iban " + _grouped(iban.lower(), " "), (iban,), "iban"),
        SecretForm("iban_compact", f"IBAN {iban}", (iban,), "iban"),
        SecretForm("iban_odd_spacing", f"{iban[:2]} {iban[2:4]} {iban[4:8]} {iban[8:14]} {iban[14:]}", (iban,), "iban"),
        SecretForm("iban_wrapped", "IBAN " + _wrapped(_grouped(iban, " ")), (iban,), "iban", False),
        SecretForm("card_dots", "card " + _grouped(card, "."), (card,), "card"),
        SecretForm("card_spaces", "card " + _grouped(card, " "), (card,), "card"),
        SecretForm("card_wrapped", "card " + card[:8] + "\n" + card[8:], (card,), "card", False),
        SecretForm("ssn_spaces", f"SSN {ssn[:3]} {ssn[3:5]} {ssn[5:]}", (ssn,), "ssn"),
        SecretForm("ssn_dots", f"SSN: {ssn[:3]}.{ssn[3:5]}.{ssn[5:]}", (ssn,), "ssn"),
        *(SecretForm(f"pem_{kind.lower()}", block, body, "private_key", False) for kind, (block, body) in pem.items()),
    ]
    # A form whose secret is its whole token lists it here.
    return [f if f.secrets else SecretForm(f.name, f.text, (f.text,), f.kind, f.file_name_ok) for f in made]


def spellings(secret: str) -> set[str]:
    """The secret as written, in lower case, and run together (separators removed): each must be gone."""
    compact = re.sub(r"[\s.\-]", "", secret)
    found = {secret, secret.lower(), compact, compact.lower()}
    return {s for s in found if len(s) >= 6}
