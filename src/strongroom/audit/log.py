"""The :class:`AuditLog` protocol, the conveniences around it, and what its backends share.

:class:`Erasable` is what erasure (issue 20) needs of the log: find the records whose
erasable part (format 3: ``query``, ``detail``, ``target``, ``filters``) holds an
identifier, and erase those parts; the chain keeps verifying (``docs/audit-format.md``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO, runtime_checkable

from strongroom.audit.anchor import Anchor, Checkpoint
from strongroom.audit.records import (
    ERASABLE_FIELDS,
    FORMAT,
    AuditEvent,
    AuditHead,
    AuditRecord,
    canonical_record3,
    erasable_digest,
    new_salt,
)
from strongroom.audit.verify import Evidence, VerifyReport, check
from strongroom.errors import NotErasable, QueryError

if TYPE_CHECKING:
    from strongroom.config import Settings

__all__ = [
    "AuditBackend",
    "AuditLog",
    "ChainedLog",
    "Erasable",
    "append",
    "chain_rows",
    "erasable_text",
    "export",
    "records",
]


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


@runtime_checkable
class Erasable(Protocol):
    """Erasing what an audit log holds of an identifier, keeping the chain verifiable.

    >>> seqs = log.find_text(["Jane Roe", "DE89370400440532013000"])  # doctest: +SKIP
    >>> log.erase(seqs)  # doctest: +SKIP
    [12, 40]
    """

    def find_text(self, needles: Sequence[str]) -> list[int]:
        """The seqs (ascending) of the records whose erasable part holds any of ``needles``
        (case-insensitive, in the text of its values and keys): format-3 records not yet
        erased, and format-1/2 records whose ``query``, ``detail``, ``target`` or ``filters``
        hold one (those cannot be erased: :meth:`erase` refuses them). A needle that is empty
        or only spaces is refused (:class:`~strongroom.errors.QueryError`): it matches everything."""
        ...

    def erase(self, seqs: Sequence[int]) -> list[int]:
        """Erase the erasable parts of the records ``seqs`` (their text and salt; the hashes
        stay, so the chain verifies), all or none, in one transaction; the seqs (ascending,
        each once) now erased, those erased before included. Raises
        :class:`~strongroom.errors.NotErasable` naming the format-1/2 records (``legacy``)
        and the seqs with no record (``missing``), erasing nothing. On SQLite the freed bytes
        are overwritten (``secure_delete``) and the WAL checkpointed and truncated, so the
        text is gone from the files; on PostgreSQL the rows no longer hold it, and the dead
        row versions are gone after the next VACUUM (autovacuum, or the operator's)."""
        ...


class AuditBackend(AuditLog, Erasable, Protocol):
    """An audit log another one can be copied into, verbatim (moving a deployment), and
    whose records' erasable parts can be erased."""

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


#: a stored row: seq, at, prev, hash, body, format, erasable, erasable_salt, erasable_sha256
Row = tuple[int, str, str, str, str, int, str | None, str | None, str | None]
#: the columns of a stored row, in :data:`Row`'s order
COLUMNS = "seq, at, prev, hash, body, format, erasable, erasable_salt, erasable_sha256"


def chain_rows(head: AuditHead, at: str, parts: Sequence[tuple[bytes, bytes]]) -> list[Row]:
    """Rows of format-3 records chained after ``head``, from each event's ``(body, erasable)``
    (:func:`~strongroom.audit.records.event_parts`), each erasable part with a new salt."""
    import hashlib

    rows: list[Row] = []
    seq, prev = head
    for body, erasable in parts:
        seq += 1
        salt, text = new_salt(), erasable.decode()
        sealed = erasable_digest(salt, text)
        assert sealed is not None
        digest = hashlib.sha256(canonical_record3(seq, at, prev, body, sealed)).hexdigest()
        rows.append((seq, at, prev, digest, body.decode(), FORMAT, text, salt, sealed))
        prev = digest
    return rows


def record_of(row: Sequence[object]) -> AuditRecord:
    """An :class:`AuditRecord` from a stored row (:data:`COLUMNS`)."""
    return AuditRecord(
        int(str(row[0])), str(row[1]), str(row[2]), str(row[3]), str(row[4]), int(str(row[5])),
        None if row[6] is None else str(row[6]), None if row[7] is None else str(row[7]),
        None if row[8] is None else str(row[8]),
    )  # fmt: skip


def _strings(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k))
            _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)
    elif value is not None:
        out.append(str(value))


def erasable_text(record: AuditRecord) -> str:
    """The text a record's erasable part holds (its values and keys, NUL-separated, casefolded):
    format 3 its stored part ("" once erased), format 1/2 the same fields of its body."""
    if record.format >= 3:
        if record.erasable is None:
            return ""
        try:
            value: object = json.loads(record.erasable)
        except ValueError:
            return record.erasable.casefold()
    else:
        try:
            body = json.loads(record.body)
        except ValueError:
            return record.body.casefold()
        value = {k: body[k] for k in ERASABLE_FIELDS if k in body} if isinstance(body, dict) else body
    out: list[str] = []
    _strings(value, out)
    return "\x00".join(out).casefold()


def _listed(seqs: tuple[int, ...]) -> str:
    shown = ", ".join(map(str, seqs[:10]))
    return shown + (f" and {len(seqs) - 10} more" if len(seqs) > 10 else "")


def refuse_unerasable(wanted: Sequence[int], formats: dict[int, int]) -> None:
    """Raise :class:`~strongroom.errors.NotErasable` when a seq in ``wanted`` has no record
    (not in ``formats``: seq -> format) or a format-1/2 one."""
    missing = tuple(s for s in wanted if s not in formats)
    legacy = tuple(s for s in wanted if s in formats and formats[s] < 3)
    if not missing and not legacy:
        return
    why = []
    if legacy:
        why.append(
            f"records {_listed(legacy)} are in format 1 or 2 (written before issue 20), whose hash covers "
            "their text, so erasing it would break the chain"
        )
    if missing:
        why.append(f"there is no record {_listed(missing)}")
    raise NotErasable(
        "nothing was erased: " + "; ".join(why) + "; erase the other records (NotErasable.legacy and .missing "
        "name these)",
        legacy=legacy,
        missing=missing,
    )


def needles_of(needles: Sequence[str]) -> list[str]:
    """``needles`` casefolded; an empty one is refused (it would match every record)."""
    if isinstance(needles, str):
        raise QueryError("find_text takes a list of strings, not one string")
    folded = [n.casefold() for n in needles]
    if any(not n.strip() for n in folded):
        raise QueryError("an empty needle would match every audit record; give the identifier to find")
    return folded


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

    def find_text(self, needles: Sequence[str]) -> list[int]:
        """See :meth:`Erasable.find_text`: one pass over the log, a page at a time."""
        folded = needles_of(needles)
        if not folded:
            return []
        return [r.seq for r in self.read() if (text := erasable_text(r)) and any(n in text for n in folded)]

    def erase(self, seqs: Sequence[int]) -> list[int]:
        """See :meth:`Erasable.erase`."""
        wanted = sorted({int(s) for s in seqs})
        if not wanted:
            return []
        self._erase(wanted)
        return wanted

    def _erase(self, seqs: list[int]) -> None:
        """Erase these records' erasable parts in one transaction, or raise NotErasable."""
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
