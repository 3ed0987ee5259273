"""What the document and administration commands need around the :class:`~strongroom.service.Platform`:
a document (or one page of it) by name, the document a write names (by file name, source
key or id), and a check of the audit log that needs no principal and writes nothing to it
(for an operator, or an auditor holding a copy of the home).

    >>> report = verify_audit_log(Settings(home=Path("/srv/strongroom")), trust_keys=[AUDITOR_KEY])  # doctest: +SKIP
    >>> report.ok, [(p.seq, p.kind) for p in report.problems]                                       # doctest: +SKIP
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from strongroom.audit import VerifyReport, open_audit_log
from strongroom.config import Settings
from strongroom.errors import ConfigError, NotFound, QueryError, StoreError
from strongroom.service.platform import Platform, check_home
from strongroom.service.requests import DocumentView, PageView, View
from strongroom.types import Principal

__all__ = ["public_key", "resolve_document_id", "shown_document", "verify_audit_log"]


def shown_document(
    platform: Platform, principal: Principal, name: str, view: View, page: int | None = None, version: str | None = None
) -> tuple[DocumentView, PageView | None]:
    """The document ``name`` finds (:meth:`~strongroom.service.Platform.find_document`), with
    every version of it ``principal`` may see; with ``page``, that page of ``version`` (an id or
    a prefix of one; default: the current version)."""
    doc = platform.document(principal, platform.find_document(principal, name, view).document_id, view)
    if page is None:
        return doc, None
    chosen = doc.current if version is None else doc.version(version)
    return doc, platform.page(principal, doc.document_id, chosen.id, page, view)


def resolve_document_id(platform: Platform, principal: Principal, name: str) -> str:
    """The id of the document ``name`` names, for a write (``acl set``, ``delete``). A name that
    finds nothing is passed on as given, so the write itself refuses it, and its audit record
    says so; one the principal may not read is refused in the same words as a missing one."""
    try:
        return platform.find_document(principal, name).document_id
    except NotFound:
        return name


def public_key(text: str, option: str = "--trust-key") -> bytes:
    """A raw 32-byte Ed25519 public key from its base64 form."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise QueryError(f"{option}: {text!r} is not base64") from exc
    if len(raw) != 32:
        raise QueryError(f"{option}: an Ed25519 public key is 32 bytes, not {len(raw)}")
    return raw


def verify_audit_log(settings: Settings, anchors: Sequence[Path] = (), trust_keys: Sequence[str] = ()) -> VerifyReport:
    """Check the hash chain and its signed checkpoints, against this home's anchor and
    ``anchors`` (other replicas' files). ``trust_keys`` (base64): trust only these signing keys;
    default: the deployment's own key where its key file is here, else the keys the anchors declare.
    A home that holds no store is a :class:`ConfigError` (a mistyped home: nothing to verify)."""
    try:
        check_home(settings, create=False)
    except StoreError as exc:
        raise ConfigError(str(exc)) from exc
    trusted = [public_key(k) for k in trust_keys] or None
    log = open_audit_log(settings)
    try:
        return log.verify(anchors=anchors, public_keys=trusted)
    finally:
        log.close()
