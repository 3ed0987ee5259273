"""Finding an erased identifier in files, as raw bytes: every file under a folder, and inside
what a file compresses or packs (gzip, zstd, zip and numpy's npz, numpy string arrays, a PDF's
Flate streams). :mod:`strongroom.service.erasure` deletes what these find and ``verify`` counts
it; a file too big to read whole is searched in overlapping blocks.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from strongroom.governance.erasure import Needles

__all__ = ["count_in_bytes", "count_in_file", "file_counts", "files", "search_files", "sha256"]

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_WHOLE = 64 * 1024 * 1024
_BLOCK = 16 * 1024 * 1024
_OVERLAP = 64 * 1024  # longer than any match: an identifier is at most 200 characters, escaped 12 bytes each


def sha256(path: Path) -> str:
    """The file's SHA-256, hex (read in blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def files(folder: Path) -> Iterator[Path]:
    """Every plain file under ``folder`` (symbolic links not followed), in a stable order; none
    when there is no such folder."""
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if not path.is_symlink() and path.is_file():
                yield path


def search_files(home: Path, needles: Needles) -> list[tuple[str, int | None]]:
    """Occurrences in every file under ``home`` (path relative to it), zeros included; None for
    a file that could not be read."""
    return [(str(path.relative_to(home)), n) for path, n in file_counts(home, needles)]


def file_counts(folder: Path, needles: Needles) -> Iterator[tuple[Path, int | None]]:
    """Occurrences in every file under ``folder``; None for a file that could not be read."""
    for path in files(folder):
        try:
            yield path, count_in_file(path, needles)
        except OSError:
            yield path, None


def count_in_file(path: Path, needles: Needles) -> int:
    """Occurrences in a file (see :func:`count_in_bytes`). A file over 64 MiB (a catalog, a DuckDB
    file) is read in blocks that overlap, as raw bytes only (nothing big is an archive here)."""
    if path.stat().st_size <= _WHOLE:
        return count_in_bytes(path.read_bytes(), needles)
    n = 0
    tail = b""
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            data = tail + block
            # a match wholly inside the overlap was counted with the block before
            n += sum(1 for m in needles.byte_pattern.finditer(data) if m.end() > len(tail))
            tail = data[-_OVERLAP:]
    return n


def count_in_bytes(data: bytes, needles: Needles) -> int:
    """Occurrences in a file's bytes: as they are (UTF-8, JSON escapes), and inside what they
    compress or pack (gzip, zstd, zip and numpy's npz, whose string arrays are UTF-32)."""
    n = max(needles.count_bytes(data), needles.count(data.decode("utf-8", "replace")))
    for inner in _unpacked(data):
        n += count_in_bytes(inner, needles)
    return n


def _unpacked(data: bytes) -> Iterator[bytes]:
    if data[:2] == b"\x1f\x8b":
        try:
            yield gzip.decompress(data)
        except (OSError, EOFError):
            pass
    elif data[:4] == _ZSTD_MAGIC:
        yield from _zstd(data)
    elif data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    yield archive.read(member)  # an npz member is an npy file: unpacked in turn
        except (zipfile.BadZipFile, OSError, ValueError):
            pass
    elif data[:6] == b"\x93NUMPY":
        yield from _npy_strings(data)
    elif data[:5] == b"%PDF-":
        yield from _pdf_streams(data)


_PDF_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)


def _pdf_streams(data: bytes) -> Iterator[bytes]:
    """A PDF's Flate-compressed streams, inflated (its text is mostly in them). Text drawn in
    pieces (kerned ``TJ`` arrays, custom encodings) can still hide from a byte search: that is
    why the erasure deletes the originals of every version whose text held the identifier."""
    for match in _PDF_STREAM.finditer(data):
        try:
            yield zlib.decompressobj().decompress(match.group(1), 64 * 1024 * 1024)
        except zlib.error:
            continue


def _npy_strings(data: bytes) -> Iterator[bytes]:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError):
        return
    if array.dtype.kind in ("U", "S"):
        yield "\n".join(str(x) for x in array.reshape(-1).tolist()).encode()


def _zstd(data: bytes) -> Iterator[bytes]:
    try:
        import zstandard
    except ImportError:
        return
    try:
        yield zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except zstandard.ZstdError:
        return
