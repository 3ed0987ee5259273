"""Signed checkpoints of the chain head, appended to a file outside the database.

After each append the log signs ``{seq, hash, at, key_id}`` of its head with an Ed25519
key kept outside the catalog and appends it to the anchor, a JSON-lines file. Someone who
can rewrite the database but not the key or the anchor cannot delete the newest records,
rewrite the chain or append a forged record without ``verify`` seeing it. Lines::

    {"alg":"Ed25519","at":"...","key_id":"<16 hex>","public_key":"<base64, 32 bytes>","type":"key"}
    {"at":"...","hash":"<hex>","key_id":"<16 hex>","seq":42,"sig":"<base64, 64 bytes>","type":"checkpoint"}

A process that opens the anchor for writing first appends a ``key`` line with its public
key, so the file verifies on its own (and a rotated key keeps its old checkpoints
verifiable); an auditor should also pin the deployment's key, ``verify(public_keys=...)``,
so that a key someone added to the file is not trusted. ``sig`` signs the JCS (RFC 8785) bytes of the checkpoint
line without its ``sig`` member. ``key_id`` is the first 16 hex digits of the SHA-256 of
the raw 32-byte public key.

Durability: each line is one ``write`` to a file opened with ``O_APPEND`` (one syscall, so
lines of concurrent writers never interleave), without an ``fsync``: a crash of the
process loses nothing, a power loss may lose the newest checkpoints, which ``verify``
then reports as unanchored records (never as a truncation, since the SQLite log commits
its records with ``synchronous=FULL`` before the checkpoint is written).

>>> anchor = Anchor(Path("/mnt/anchor/audit-anchor.jsonl"), Path("/run/secrets/audit-signing.key"))  # doctest: +SKIP
>>> anchor.write(anchor.sign(AuditHead(42, "ab...")))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from strongroom.audit.records import AuditHead
from strongroom.errors import ConfigError, StoreError

__all__ = ["Anchor", "BadLine", "Checkpoint", "KeyLine", "SigningKey", "iter_anchor", "key_id_of", "verify_checkpoint"]

log = logging.getLogger("strongroom.audit")


def key_id_of(public_key: bytes) -> str:
    """The id of a raw 32-byte Ed25519 public key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


class SigningKey:
    """An Ed25519 private key in a PEM (PKCS #8) file, created on first use (0600, in a
    0700 folder)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_key = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """The key in ``path``, made there first if there is none (two processes racing get the same one)."""
        if not path.exists():
            cls._create(path)
        try:
            data = path.read_bytes()
            private = serialization.load_pem_private_key(data, password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"cannot read the audit signing key {path}: {exc}; fix its permissions or restore it "
                "(STRONGROOM_AUDIT_SIGNING_KEY)"
            ) from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigError(f"the audit signing key {path} is not an Ed25519 key")
        if path.stat().st_mode & 0o077:
            log.warning("the audit signing key %s is readable by others; chmod 600 it", path)
        return cls(private)

    @staticmethod
    def _create(path: Path) -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(staged, path)  # never replaces a key another process made meanwhile
            except FileExistsError:
                pass
            finally:
                staged.unlink()
        except OSError as exc:
            raise ConfigError(
                f"cannot create the audit signing key {path}: {exc}; point STRONGROOM_AUDIT_SIGNING_KEY "
                "at a writable place (a secret mount in production)"
            ) from exc
        log.info("created the audit signing key %s (key id %s)", path, key_id_of(SigningKey.load_public(path)))

    @staticmethod
    def load_public(path: Path) -> bytes:
        """The raw public key of the private key in ``path``."""
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the chain's record ``seq`` had hash ``hash`` at time ``at``."""

    seq: int
    hash: str
    at: str
    key_id: str
    sig: str = ""

    def _fields(self) -> dict[str, str | int]:
        return {"at": self.at, "hash": self.hash, "key_id": self.key_id, "seq": self.seq, "type": "checkpoint"}

    def message(self) -> bytes:
        """The signed bytes: the JCS form of the line without ``sig``."""
        return rfc8785.dumps(self._fields())

    def line(self) -> bytes:
        return rfc8785.dumps({**self._fields(), "sig": self.sig}) + b"\n"


@dataclass(frozen=True)
class KeyLine:
    """A public key declared in the anchor."""

    key_id: str
    public_key: bytes


@dataclass(frozen=True)
class BadLine:
    """A line of the anchor that is not a key or a checkpoint (``last``: the final, unterminated
    line, as a crash in the middle of a write leaves)."""

    number: int
    reason: str
    last: bool = False


def verify_checkpoint(checkpoint: Checkpoint, public_key: bytes) -> bool:
    """Whether ``checkpoint`` carries a valid signature by ``public_key``."""
    try:
        signature = base64.b64decode(checkpoint.sig, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, checkpoint.message())
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def _parse(number: int, raw: bytes, last: bool) -> Checkpoint | KeyLine | BadLine:
    try:
        entry = json.loads(raw)
        if not isinstance(entry, dict):
            raise ValueError("not a JSON object")
        if entry.get("type") == "checkpoint":
            seq, digest, at, kid, sig = (entry[k] for k in ("seq", "hash", "at", "key_id", "sig"))
            if not (type(seq) is int and all(isinstance(v, str) for v in (digest, at, kid, sig))):
                raise ValueError("a field has the wrong type")
            return Checkpoint(seq, digest, at, kid, sig)
        if entry.get("type") == "key":
            public = base64.b64decode(str(entry["public_key"]), validate=True)
            if len(public) != 32 or entry.get("alg") != "Ed25519" or entry.get("key_id") != key_id_of(public):
                raise ValueError("not an Ed25519 key with its key id")
            return KeyLine(key_id_of(public), public)
        raise ValueError(f"unknown type {entry.get('type')!r}")
    except (ValueError, KeyError, binascii.Error) as exc:
        return BadLine(number, str(exc), last)


def iter_anchor(path: Path) -> Iterator[Checkpoint | KeyLine | BadLine]:
    """The entries of an anchor file, in order (nothing when there is no file)."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        number = 0
        for raw in fh:
            number += 1
            if raw.strip():
                yield _parse(number, raw, last=not raw.endswith(b"\n"))


class Anchor:
    """Appends signed checkpoints to the anchor file; safe to share between threads.

    The key and the file are opened on first use, so a process that only verifies never
    creates a key.
    """

    def __init__(self, path: Path, key_path: Path, *, key: SigningKey | None = None, create_key: bool = True) -> None:
        self.path = path
        self.key_path = key_path
        self._key = key
        self._create_key = create_key
        self._fd: int | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> SigningKey:
        if self._key is None:
            if not self._create_key and not self.key_path.exists() and self._has_signed():
                # a configured key that is missing after it signed this anchor (a secret mount
                # that failed): never sign with a new one. A first start makes it.
                raise ConfigError(
                    f"the audit signing key {self.key_path} (STRONGROOM_AUDIT_SIGNING_KEY) is missing; "
                    "mount or restore it, or unset the variable to use a key under the home folder"
                )
            self._key = SigningKey.load_or_create(self.key_path)
        return self._key

    def _has_signed(self) -> bool:
        """Whether this anchor file already holds a checkpoint."""
        try:
            with self.path.open("rb") as fh:
                return any(b'"checkpoint"' in line for line in fh)
        except FileNotFoundError:
            return False

    def local_public_key(self) -> bytes | None:
        """This deployment's public key, when its key file exists (verification pins it)."""
        if self._key is not None:
            return self._key.public_key
        try:
            return SigningKey.load_public(self.key_path)
        except (OSError, ValueError, TypeError, AssertionError):
            return None

    def sign(self, head: AuditHead) -> Checkpoint:
        """A checkpoint of ``head``, signed now (about 60 µs)."""
        key = self.key
        unsigned = Checkpoint(head.seq, head.hash, datetime.now(UTC).isoformat(), key.key_id)
        sig = base64.b64encode(key.sign(unsigned.message())).decode()
        return Checkpoint(unsigned.seq, unsigned.hash, unsigned.at, unsigned.key_id, sig)

    def write(self, checkpoint: Checkpoint) -> None:
        """Append ``checkpoint`` (one ``write``, no ``fsync``: see the module docstring)."""
        with self._lock:
            try:
                if self._fd is None:
                    self._fd = self._open()
                os.write(self._fd, checkpoint.line())
            except OSError as exc:
                raise StoreError(
                    f"the audit record is committed, but its checkpoint could not be written to {self.path} "
                    f"({exc}): verify will report it as unanchored until the next checkpoint; fix the anchor's "
                    "volume or permissions"
                ) from exc

    def checkpoint(self, head: AuditHead) -> Checkpoint:
        """Sign ``head`` and append the checkpoint."""
        checkpoint = self.sign(head)
        self.write(checkpoint)
        return checkpoint

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        key = self.key
        header = {
            "alg": "Ed25519",
            "at": datetime.now(UTC).isoformat(),
            "key_id": key.key_id,
            "public_key": base64.b64encode(key.public_key).decode(),
            "type": "key",
        }
        os.write(fd, rfc8785.dumps(header) + b"\n")
        return fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
