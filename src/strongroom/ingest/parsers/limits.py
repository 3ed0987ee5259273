"""Limits on the work one file may cause, and the zip checks made before a package is opened.

A zip package (``.docx``, ``.xlsx``, or any file that starts like a zip) is checked from
its central directory before any parser sees it: member count, each member's and the total expanded size, the
compression ratio and the compression method; and no XML part may declare a DTD (the
billion-laughs entity bomb needs one, and Office never writes one). A header that understates a member's size
gets no further: :mod:`zipfile`, which python-docx and openpyxl read through, stops a
deflated member at its declared size (and then fails its CRC check), and methods that
:mod:`zipfile` would expand in one unbounded call (bzip2, LZMA) are refused, since Office
never writes them. What the checks cannot see (a parser that is slow or greedy on a
small input) is bounded by :mod:`strongroom.ingest.sandbox`, which enforces
``timeout_s`` and ``memory_mb``.

    >>> limits = ParseLimits(zip_max_bytes=100 * MB)
    >>> check_zip(docx_bytes, "memo.docx", limits)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strongroom.errors import CorruptDocument, TooLarge

if TYPE_CHECKING:
    from strongroom.config import Settings

__all__ = ["MB", "ParseLimits", "check_zip", "format_bytes", "is_memory_error"]

MB = 1024 * 1024
#: A member (or a whole package) expanding to less than this is never refused for its ratio:
#: a few MB of XML are harmless however well they compress (5,000 identical paragraphs
#: in Word compress 200:1).
RATIO_FLOOR_BYTES = 10 * MB
_ALLOWED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_DTD_SNIFF_BYTES = 8192
_INFLATE_STEP = MB
_DTD_MARKERS = tuple(m.encode(enc) for m in ("<!DOCTYPE", "<!ENTITY") for enc in ("utf-8", "utf-16-le", "utf-16-be"))
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF


@dataclass(frozen=True)
class ParseLimits:
    """How much one file may cost to parse. The defaults fit real bank documents (a
    200-page Word file with images expands to a few MB; a 10-Q PDF parses in under a second
    and 50 MB) with a wide margin, and refuse decompression bombs in milliseconds.

    ``timeout_s`` and ``memory_mb`` bound the parser's child process (wall clock, and
    address space on top of what the child starts with); ``in_process`` skips the child
    (tests and benchmarks only: a hostile file can then take the whole process down).
    """

    timeout_s: float = 60.0
    memory_mb: int = 384
    zip_max_bytes: int = 500 * MB
    zip_max_member_bytes: int = 250 * MB
    zip_max_ratio: float = 200.0
    zip_max_members: int = 10_000
    in_process: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        """The limits configured by ``STRONGROOM_PARSE_*`` and ``STRONGROOM_ZIP_*``."""
        return cls(
            timeout_s=settings.parse_timeout_s,
            memory_mb=settings.parse_memory_mb,
            zip_max_bytes=settings.zip_max_bytes,
            zip_max_member_bytes=settings.zip_max_member_bytes,
            zip_max_ratio=settings.zip_max_ratio,
            zip_max_members=settings.zip_max_members,
        )


def format_bytes(size: int) -> str:
    """``2.1 GB``, ``500 MB``, ``12 KB``: sizes as a user reads them (binary units)."""
    for unit, scale in (("GB", 1024 * MB), ("MB", MB), ("KB", 1024)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 and not value.is_integer() else f"{value:.0f} {unit}"
    return f"{size} bytes"


def is_memory_error(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, a :class:`MemoryError` (parsers wrap library errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, MemoryError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def check_zip(data: bytes, name: str, limits: ParseLimits) -> None:
    """Refuse a zip package that would expand past ``limits``, before anything inflates it.

    Raises :class:`TooLarge` for too many members, a member or a total over the size
    limits, or a ratio over ``zip_max_ratio`` (for anything expanding past 10 MB), and
    :class:`CorruptDocument` for a compression method Office does not use or an XML part
    that declares a DTD (entity bombs; OPC forbids DTDs). Data that is not a readable zip is
    left to the parser to report.
    """
    if not data.startswith(b"PK"):
        return
    count = _declared_members(data)
    if count is not None and count > limits.zip_max_members:
        raise _too_many(name, count, limits)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, struct.error, EOFError):
        return  # not a readable zip: the parser says so in its own words
    members = archive.infolist()
    if len(members) > limits.zip_max_members:
        raise _too_many(name, len(members), limits)
    total = 0
    for member in members:
        if member.compress_type not in _ALLOWED_METHODS and not member.is_dir():
            raise CorruptDocument(
                f"{name}: member {member.filename!r} uses compression method {member.compress_type}, which "
                "Office never writes (only stored and deflate); open the file in Office, save it again and ingest that"
            )
        size = member.file_size
        total += size
        # A member's compressed span cannot exceed the file, whatever its header says.
        ratio = size / max(min(member.compress_size, len(data)), 1)
        if size > limits.zip_max_member_bytes:
            raise _bomb(name, f"member {member.filename!r} expands to", size, ratio, limits.zip_max_member_bytes)
        if size > RATIO_FLOOR_BYTES and ratio > limits.zip_max_ratio:
            raise _ratio(name, f"member {member.filename!r} expands to", size, ratio, limits)
    ratio = total / max(len(data), 1)
    if total > limits.zip_max_bytes:
        raise _bomb(name, "expands to", total, ratio, limits.zip_max_bytes)
    if total > RATIO_FLOOR_BYTES and ratio > limits.zip_max_ratio:
        raise _ratio(name, "expands to", total, ratio, limits)
    for member in members:
        head, honest = _inflate(data, member)
        if not honest:
            raise CorruptDocument(
                f"{name}: member {member.filename!r} expands past the {format_bytes(member.file_size)} its header "
                "declares: a forged zip (a hidden zip bomb?); open the file in Office, save it again and ingest that"
            )
        if member.filename.lower().endswith((".xml", ".rels")) and any(m in head for m in _DTD_MARKERS):
            raise CorruptDocument(
                f"{name}: member {member.filename!r} declares a DTD or XML entities, which Office never "
                "writes (an entity-expansion bomb?); open the file in Office, save it again and ingest that"
            )


def _inflate(data: bytes, member: zipfile.ZipInfo) -> tuple[bytes, bool]:
    """Inflate ``member`` 1 MB at a time: its first bytes (to look for a DTD), and whether
    it stays within the size its header declares.

    zipfile stops a member at its declared size, but inflates each read in one call first
    (up to 2 GB), so a member that expands past its declared size is refused here,
    without more than 1 MB of it held at once. (A DTD hidden past the first 8 KiB still
    meets the XML parsers' own entity-amplification limits, libxml2's and expat's.)
    """
    offset = member.header_offset
    if member.flag_bits & 0x1 or data[offset : offset + 4] != b"PK\x03\x04":
        return b"", True  # encrypted, or no local header: the parser refuses it
    name_len, extra_len = struct.unpack_from("<HH", data, offset + 26)
    start = offset + 30 + name_len + extra_len
    raw = memoryview(data)[start : start + member.compress_size]
    if member.compress_type == zipfile.ZIP_STORED:
        return bytes(raw[:_DTD_SNIFF_BYTES]), True
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    head = b""
    produced = 0
    try:
        for position in range(0, len(raw), _INFLATE_STEP):
            pending: bytes | memoryview = raw[position : position + _INFLATE_STEP]
            while pending and not inflater.eof:
                out = inflater.decompress(pending, _INFLATE_STEP)
                produced += len(out)
                if produced > member.file_size:
                    return head, False
                if len(head) < _DTD_SNIFF_BYTES:
                    head += out[: _DTD_SNIFF_BYTES - len(head)]
                pending = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error:
        pass  # damaged deflate data: the parser reports it
    return head, True


def _declared_members(data: bytes) -> int | None:
    """The entry count in the end-of-central-directory record (zip64 aware), read without
    building the member list, so a directory of millions of entries costs nothing."""
    start = data.rfind(_EOCD, max(0, len(data) - _EOCD_SIZE - _MAX_COMMENT))
    if start < 0 or start + _EOCD_SIZE > len(data):
        return None
    (count,) = struct.unpack_from("<H", data, start + 10)
    locator = start - 20
    if count == 0xFFFF and locator >= 0 and data[locator : locator + 4] == _EOCD64_LOCATOR:
        (offset,) = struct.unpack_from("<Q", data, locator + 8)
        if offset + 56 <= len(data) and data[offset : offset + 4] == _EOCD64:
            (count,) = struct.unpack_from("<Q", data, offset + 32)
    return int(count)


def _too_many(name: str, count: int, limits: ParseLimits) -> TooLarge:
    return TooLarge(
        f"{name}: the package holds {count:,} files, over the {limits.zip_max_members:,} limit; "
        "this looks like a zip bomb. If it is a genuine document, save it again in Office "
        "(or raise STRONGROOM_ZIP_MAX_MEMBERS)"
    )


def _bomb(name: str, what: str, size: int, ratio: float, limit: int) -> TooLarge:
    setting = "STRONGROOM_ZIP_MAX_BYTES" if what == "expands to" else "STRONGROOM_ZIP_MAX_MEMBER_BYTES"
    return TooLarge(
        f"{name}: {what} {format_bytes(size)} (ratio {ratio:.0f}:1), over the {format_bytes(limit)} limit; "
        f"this looks like a zip bomb. If it is a genuine document, split it or raise {setting}"
    )


def _ratio(name: str, what: str, size: int, ratio: float, limits: ParseLimits) -> TooLarge:
    return TooLarge(
        f"{name}: {what} {format_bytes(size)} (ratio {ratio:.0f}:1), over the {limits.zip_max_ratio:.0f}:1 "
        "compression-ratio limit; this looks like a zip bomb. If it is a genuine document, save it again "
        "in Office or raise STRONGROOM_ZIP_MAX_RATIO"
    )
