"""The original bytes of each stored version, content-addressed: ``<folder>/<sha256>``.

A version's id is the SHA-256 of its bytes, so the original of version ``v`` is the file
named ``v``: identical bytes are kept once, and writing one again changes nothing. A file is
written to a temporary name in the same folder, fsynced and renamed into place (owner-only,
0600), so a crash leaves either the whole original or none. Reading checks the bytes against
the name: a file changed on disk is refused, never handed on (and so never rendered).

Erasure (a later issue) must reach this folder too: deleting a document removes its
versions' originals (:func:`remove_original`), but copies of the folder (back-ups, another
replica's) are for that job to find.

    >>> keep_original(folder, Path("q3.pdf"), version_id)      # doctest: +SKIP
    True
    >>> read_original(folder, version_id)                       # doctest: +SKIP
    b'%PDF-1.7 ...'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from strongroom.errors import IngestError, StoreError
from strongroom.store.sqlite import private_dir

__all__ = ["has_original", "keep_original", "originals_folder", "read_original", "remove_original"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 1024 * 1024


def originals_folder(home: Path) -> Path:
    """Where a strongroom home keeps its originals."""
    return home / "originals"


def _path(folder: Path, version_id: str) -> Path:
    if not _SHA256.match(version_id):  # a name from outside never walks out of the folder
        raise StoreError(f"{version_id!r} is not a version id (64 hex digits)")
    return folder / version_id


def has_original(folder: Path, version_id: str) -> bool:
    """Whether the original of ``version_id`` was kept (not whether it is intact)."""
    return _path(folder, version_id).is_file()


def keep_original(folder: Path, source: Path, version_id: str) -> bool:
    """Copy ``source`` to ``folder/<version_id>`` unless it is there; True when this call wrote it.

    The copy is hashed as it is written: a file that changed since it was parsed (its bytes
    no longer hash to ``version_id``) is refused with :class:`IngestError`, and nothing is kept.
    """
    target = _path(folder, version_id)
    if target.is_file():
        return False
    try:
        private_dir(folder)
        fd, name = tempfile.mkstemp(prefix=f".{version_id}.", suffix=".tmp", dir=folder)  # 0600, a name per call
    except OSError as exc:
        raise _unwritable(version_id, exc) from exc
    temp = Path(name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            while block := src.read(_BLOCK):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != version_id:
            raise IngestError(f"{source.name} changed while it was ingested; ingest it again")
        os.replace(temp, target)
    except OSError as exc:
        raise _unwritable(version_id, exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _sync_dir(folder)
    return True


def _unwritable(version_id: str, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot keep the original of version {version_id} in the home's originals folder: {exc.strerror or exc}; "
        "check the folder's permissions and free space"
    )


def _sync_dir(folder: Path) -> None:
    """Make the rename itself durable (the folder's entry), where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_original(folder: Path, version_id: str) -> None:
    """Remove a kept original (a deleted document's, or one whose write the store refused);
    gone already is fine."""
    path = _path(folder, version_id)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot remove the original {path}: {exc.strerror or exc}; remove it by hand") from exc


def read_original(folder: Path, version_id: str) -> bytes | None:
    """The original bytes of ``version_id``; None when it was not kept.

    Raises :class:`StoreError` when the file's bytes do not hash to its name: it was changed
    on disk, and is refused rather than shown.
    """
    path = _path(folder, version_id)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read the original {path}: {exc.strerror or exc}; check its permissions") from exc
    if hashlib.sha256(data).hexdigest() != version_id:
        raise StoreError(
            f"the original {path} does not match its SHA-256 name: it was changed on disk and is refused; "
            "restore it from a backup, or delete it and ingest the file again"
        )
    return data
