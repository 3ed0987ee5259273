"""Write tiny PDFs for parser tests: text pages, Info metadata, zero pages, RC4 encryption.

Enough of the PDF format (Standard security handler, revision 2, 40-bit RC4) to produce
files that real readers treat as encrypted, without a PDF-writing dependency.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence

_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
_FILE_ID = bytes(range(16))
_PERMISSIONS = -44  # print and copy allowed, modify not: a typical "protected" report


def _rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def _padded(password: str) -> bytes:
    return (password.encode("latin-1") + _PAD)[:32]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(
    pages: Sequence[str],
    info: Mapping[str, str] | None = None,
    *,
    user_password: str | None = None,
    owner_password: str = "owner",
) -> bytes:
    """A PDF with one page per string (lines in Helvetica; "" gives a page without text).

    ``user_password`` encrypts the file: a non-empty one is needed to open it, "" gives a
    file that opens freely but carries permission restrictions.
    """
    objects: list[bytes] = []  # object n is objects[n - 1]
    key = b""
    encrypt_dict = b""
    if user_password is not None:
        owner = _rc4(hashlib.md5(_padded(owner_password)).digest()[:5], _padded(user_password))
        key = hashlib.md5(_padded(user_password) + owner + struct.pack("<i", _PERMISSIONS) + _FILE_ID).digest()[:5]
        encrypt_dict = (
            f"<< /Filter /Standard /V 1 /R 2 /Length 40 /P {_PERMISSIONS} "
            f"/O <{owner.hex()}> /U <{_rc4(key, _PAD).hex()}> >>"
        ).encode()

    def seal(number: int, data: bytes) -> bytes:
        if not key:
            return data
        object_key = hashlib.md5(key + number.to_bytes(3, "little") + b"\x00\x00").digest()[:10]
        return _rc4(object_key, data)

    page_numbers = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{n} 0 R" for n in page_numbers)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for number, text in zip(page_numbers, pages, strict=True):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {number + 1} 0 R >>".encode()
        )
        shown = " T* ".join(f"({_escape(line)}) Tj" for line in text.split("\n")) if text else ""
        content = f"BT /F1 11 Tf 14 TL 72 720 Td {shown} ET".encode("latin-1") if text else b""
        body = seal(number + 1, content)
        objects.append(b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream")
    info_ref = ""
    if info:
        number = len(objects) + 1
        entries = " ".join(f"/{k} <{seal(number, v.encode('latin-1')).hex()}>" for k, v in info.items())
        objects.append(f"<< {entries} >>".encode())
        info_ref = f" /Info {number} 0 R"
    encrypt_ref = ""
    if encrypt_dict:
        objects.append(encrypt_dict)
        encrypt_ref = f" /Encrypt {len(objects)} 0 R"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info_ref}{encrypt_ref} "
        f"/ID [<{_FILE_ID.hex()}> <{_FILE_ID.hex()}>] >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)
