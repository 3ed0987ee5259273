"""The :class:`AuditLog` protocol, the conveniences around it, and what its backends share."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from strongroom.audit.anchor import Anchor, Checkpoint
from strongroom.audit.records import FORMAT, AuditEvent, AuditHead, AuditRecord, canonical_record
from strongroom.audit.verify import Evidence, VerifyReport, check

if TYPE_CHECKING:
    from strongroom.config import Settings

__all__ = ["AuditBackend", "AuditLog", "ChainedLog", "append", "chain_rows", "export", "records"]


class AuditLog(Protocol):
    """An append-only, hash-chained, anchored audit log; safe to share between threads.

    Four methods and ``close``; :func:`append`, :func:`records` and :func:`export` are
    conveniences around them, and :class:`AuditBackend` adds what a migration needs.

    >>> log = open_audit_log(Settings(home=Path("/tmp/sr")))  # doctest: +SKIP
    >>> append(log, AuditEvent(principal="ana", groups=("research",), action="search"))  # doctest: +SKIP
    1
    >>> [r.seq for r in log.read(after_seq=0, limit=100)]  # doctest: +SKIP
    [1]
    """

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append records chained in order, in one transaction, then checkpoint the head; their seqs."""
        ...

    def read(
        self, after_seq: int = 0, limit: int | None = None, *, since: datetime | None = None
    ) -> Iterator[AuditRecord]:
        """Records with seq > ``after_seq`` (and written at or after ``since``) in seq order, at
        most ``limit``, streamed from the database."""
        ...

    def head(self) -> AuditHead:
        """The newest record's seq and hash."""
        ...

    def verify(
        self, *, anchors: Sequence[Path] = (), public_keys: Collection[bytes] | None = None, grace_s: float = 0.5
    ) -> VerifyReport:
        """Check every record and the signed checkpoints (of this log's anchor and ``anchors``);
        every problem with its seq and kind. ``public_keys``: trust only these signing keys."""
        ...

    def close(self) -> None:
        """Release the connection; the log is not used afterwards."""
        ...


class AuditBackend(AuditLog, Protocol):
    """An audit log another one can be copied into, verbatim (moving a deployment)."""

    def chain(self) -> Iterator[AuditRecord]:
        """Every record as stored, in seq order (streamed), for :meth:`adopt` elsewhere."""
        ...

    def adopt(self, records: Iterable[AuditRecord]) -> int:
        """Append another log's records verbatim (same hashes); returns how many were added."""
        ...


def append(log: AuditLog, event: AuditEvent) -> int:
    """Append one record; returns its seq."""
    return log.append_many([event])[0]


def records(log: AuditLog, since: datetime | None = None) -> list[dict[str, object]]:
    """Records (oldest first) written at or after ``since``, each as :meth:`AuditRecord.as_dict`.
    Builds a list: prefer ``log.read`` for more than a page."""
    return [r.as_dict() for r in log.read(since=since)]


def export(log: AuditLog, out: Path | TextIO, since: datetime | None = None) -> int:
    """Write records written at or after ``since`` as JSON lines for a SIEM, streaming; how many."""
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8") as fh:
            return export(log, fh, since)
    n = 0
    for record in log.read(since=since):
        out.write(json.dumps(record.as_dict(), sort_keys=True, default=str) + "\n")
        n += 1
    return n


def chain_rows(head: AuditHead, at: str, bodies: Sequence[bytes]) -> list[tuple[int, str, str, str, str, int]]:
    """Rows ``(seq, at, prev, hash, body, format)`` of format-2 records chained after ``head``."""
    import hashlib

    rows = []
    seq, prev = head
    for body in bodies:
        seq += 1
        digest = hashlib.sha256(canonical_record(seq, at, prev, body)).hexdigest()
        rows.append((seq, at, prev, digest, body.decode(), FORMAT))
        prev = digest
    return rows


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


#: records read per query when streaming the log
PAGE = 1000


def _utc(since: datetime) -> str:
    return (since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)).isoformat()


class ChainedLog:
    """What the backends share: reading by pages, adopting in batches, verification,
    conveniences. A backend provides ``_page``, ``_adopt``, ``_checkpoint_head``, ``head``,
    ``append_many``, ``close``, ``_first_at`` and ``_exists_now``."""

    anchor: Anchor | None

    def read(
        self, after_seq: int = 0, limit: int | None = None, *, since: datetime | None = None
    ) -> Iterator[AuditRecord]:
        """Records with seq > ``after_seq`` (and written at or after ``since``), in seq order, at
        most ``limit``, a page at a time (never the whole log in memory)."""
        if since is not None:
            first = self._first_at(_utc(since))
            if first is None:
                return
            after_seq = max(after_seq, first - 1)
        left = limit
        while left is None or left > 0:
            size = PAGE if left is None else min(PAGE, left)
            records = self._page(after_seq, size)
            yield from records
            if len(records) < size:
                return
            after_seq = records[-1].seq
            if left is not None:
                left -= len(records)

    def adopt(self, records: Iterable[AuditRecord]) -> int:
        """Append another log's records verbatim (same hashes), so the chain verifies where it
        was copied to, then checkpoint the head. Records already here (same seq and hash) are
        skipped, so a migration can run again; a different record at a seq is an error."""
        added = 0
        batch: list[AuditRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) == PAGE:
                added += self._adopt(batch)
                batch = []
        added += self._adopt(batch)
        if added and self.anchor is not None:
            self._checkpoint_head()
        return added

    def _adopt(self, batch: list[AuditRecord]) -> int:
        """Append one batch of another log's records verbatim; how many were new."""
        raise NotImplementedError

    def _checkpoint_head(self) -> None:
        """Sign the head and append the checkpoint to the anchor."""
        raise NotImplementedError

    def _page(self, after_seq: int, size: int) -> list[AuditRecord]:
        """Up to ``size`` records with seq > ``after_seq``, in seq order (none if there is no table)."""
        raise NotImplementedError

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        raise NotImplementedError

    def _exists_now(self) -> bool:
        """Whether the table is there (under the backend's lock)."""
        raise NotImplementedError

    def _first_at(self, since: str) -> int | None:
        """The smallest seq whose ``at`` is at or after ``since`` (None: none)."""
        raise NotImplementedError

    def _stored_checkpoints(self) -> Iterator[Checkpoint]:
        """Signed checkpoints the database keeps a copy of (replicas share them)."""
        return iter(())

    def chain(self) -> Iterator[AuditRecord]:
        """Every record as stored, in seq order (streamed)."""
        return self.read()

    def verify(
        self,
        *,
        anchors: Sequence[Path] = (),
        public_keys: Collection[bytes] | None = None,
        grace_s: float = 0.5,
    ) -> VerifyReport:
        """Check every record, and the chain against the signed checkpoints of this log's anchor
        and of ``anchors`` (other replicas' files). ``public_keys``: trust only these keys
        (an auditor's pinned ones). Records found unanchored are checked once more after
        ``grace_s``, in case their checkpoint was being written as the check read the anchor."""
        report = self._verify_once(anchors, public_keys)
        if grace_s > 0 and any(p.kind == "unanchored" for p in report.problems):
            time.sleep(grace_s)
            report = self._verify_once(anchors, public_keys)
        return report

    def _verify_once(self, anchors: Sequence[Path], public_keys: Collection[bytes] | None) -> VerifyReport:
        paths = [*([self.anchor.path] if self.anchor is not None else []), *anchors]
        if not paths:
            return check(self.read(), None, table_exists=self._exists_now())
        local = self.anchor.local_public_key() if self.anchor is not None and public_keys is None else None
        # with this deployment's key at hand, trust it alone: a key line someone appended to an
        # anchor file must not vouch for checkpoints it signed itself
        pinned = public_keys if public_keys is not None else ([local] if local is not None else None)
        evidence = Evidence(pinned=pinned, local=None)
        for path in paths:  # read before the records: every checkpoint then names a record already there
            evidence.read_file(path)
        evidence.take(self._stored_checkpoints(), "the database")
        exists = self._exists_now()
        return check(self.read() if exists else iter(()), evidence, table_exists=exists)


def anchor_for(settings: Settings) -> Anchor:
    """The anchor and signing key ``settings`` name (defaults under the home)."""
    home = settings.home
    return Anchor(
        (settings.audit_anchor or home / "audit-anchor.jsonl").expanduser(),
        (settings.audit_signing_key or home / "keys" / "audit-signing.key").expanduser(),
        create_key=settings.audit_signing_key is None,  # a key the settings name must exist
    )
