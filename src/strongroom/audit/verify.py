"""Checking a chain against itself and against its signed checkpoints (pure: no I/O).

:func:`check` walks the records in seq order, once, with a window of neighbours (so a
chain of any length verifies in bounded memory), and compares them with the checkpoints
gathered by :class:`Evidence`. Every problem names the seq where it is and its kind:

==================  =========================================================================
edited              a record's content no longer matches its hash (or the record before
                    it was replaced: the next record was chained to another one), or a
                    format-3 record's erasable part no longer matches its erasable_sha256
deleted             records are missing in the middle (a gap in seq, or a break in the
                    links where the later records were renumbered)
reordered           a record is intact but stored at another place than it was written
truncated           a signed checkpoint vouches for records past the newest one
wiped               the table is empty, but signed checkpoints vouch for records
dropped             the table is gone, but signed checkpoints vouch for records
rewritten           the chain is consistent but disagrees with a signed checkpoint (records
                    edited and every later hash recomputed)
unanchored          records after the last signed checkpoint (forged, or written just
                    before a crash that lost their checkpoint)
forged_checkpoint   a checkpoint whose signature fails, or by a key that is not trusted
bad_anchor          an anchor line that is not a key or a checkpoint
==================  =========================================================================

A format-3 record whose erasable part was erased (text and salt NULL) verifies: its hash
covers ``erasable_sha256``, not the text. :attr:`VerifyReport.erased` counts them.
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from strongroom.audit.anchor import BadLine, Checkpoint, KeyLine, iter_anchor, key_id_of, verify_checkpoint
from strongroom.audit.records import GENESIS, AuditHead, AuditRecord, erasable_digest, record_hash

__all__ = ["AuditProblem", "Evidence", "ProblemKind", "VerifyReport", "check"]

ProblemKind = Literal[
    "edited",
    "deleted",
    "reordered",
    "truncated",
    "wiped",
    "dropped",
    "rewritten",
    "unanchored",
    "forged_checkpoint",
    "bad_anchor",
]
_EMPTY = AuditHead(0, GENESIS)
_WINDOW = 1024  # records looked at either side of the one checked, to name a reordering


@dataclass(frozen=True)
class AuditProblem:
    """One problem, at record ``seq``."""

    seq: int
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`AuditLog.verify` found. ``anchored``: the highest seq a valid signed
    checkpoint vouches for (None: no anchor was consulted)."""

    records: int
    problems: tuple[AuditProblem, ...]
    head: AuditHead = _EMPTY
    anchored: int | None = None
    checkpoints: int = 0
    key_ids: tuple[str, ...] = ()
    erased: int = 0  # format-3 records whose erasable part was erased

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Evidence:
    """The valid checkpoints of one or more anchors (and, on PostgreSQL, the database's copies).

    ``pinned``: the only public keys to trust (an auditor's); otherwise the keys the anchor
    files declare, and ``local`` (this deployment's own key) are trusted.
    """

    pinned: Collection[bytes] | None = None
    local: bytes | None = None
    problems: list[AuditProblem] = field(default_factory=list)
    ignored: int = 0  # database copies by keys not trusted here
    _keys: dict[str, bytes] = field(default_factory=dict)
    _seqs: array[int] = field(default_factory=lambda: array("q"))
    _digests: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        for public in (*(self.pinned or ()), *(() if self.local is None else (self.local,))):
            self._keys[key_id_of(public)] = public

    def read_file(self, path: Path) -> None:
        """Take the checkpoints of the anchor file at ``path``."""
        for entry in iter_anchor(path):
            if isinstance(entry, KeyLine):
                if self.pinned is None:
                    self._keys.setdefault(entry.key_id, entry.public_key)
            elif isinstance(entry, BadLine):
                if not entry.last:  # a final half-written line is what a crash leaves
                    self.problems.append(
                        AuditProblem(
                            0,
                            "bad_anchor",
                            f"{path} line {entry.number} is not a key or a checkpoint: "
                            f"{entry.reason}; the anchor was altered",
                        )
                    )
            else:
                self._take(entry, str(path), trust_unknown=False)

    def take(self, checkpoints: Iterable[Checkpoint], source: str) -> None:
        """Take checkpoints kept elsewhere (the database's copies): those by keys not trusted
        here are ignored, not reported, as another replica's key may sign them."""
        for checkpoint in checkpoints:
            self._take(checkpoint, source, trust_unknown=True)

    def _take(self, cp: Checkpoint, source: str, *, trust_unknown: bool) -> None:
        public = self._keys.get(cp.key_id)
        if public is None and trust_unknown:
            self.ignored += 1
            return
        if public is None or not verify_checkpoint(cp, public):
            why = "is signed by a key not trusted here" if public is None else "has a signature that does not verify"
            self.problems.append(
                AuditProblem(
                    cp.seq,
                    "forged_checkpoint",
                    f"the checkpoint of record {cp.seq} in {source} {why} "
                    f"(key {cp.key_id}): the anchor was forged or tampered with",
                )
            )
            return
        try:
            digest = bytes.fromhex(cp.hash)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            self.problems.append(AuditProblem(cp.seq, "bad_anchor", f"the checkpoint of record {cp.seq} holds no hash"))
            return
        self._seqs.append(cp.seq)
        self._digests += digest

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def sorted(self) -> tuple[list[int], list[str]]:
        """The distinct valid checkpoints' seqs and hashes, by seq (the same one in two anchors counts once)."""
        seqs = np.frombuffer(self._seqs.tobytes(), dtype=np.int64) if self._seqs else np.zeros(0, np.int64)
        out_seqs: list[int] = []
        out_hashes: list[str] = []
        for i in np.argsort(seqs, kind="stable").tolist():
            seq, digest = int(seqs[i]), self._digests[32 * i : 32 * i + 32].hex()
            if not (out_seqs and out_seqs[-1] == seq and digest in out_hashes[-4:]):
                out_seqs.append(seq)
                out_hashes.append(digest)
        return out_seqs, out_hashes


class _Walk:
    """The state of one pass over the records."""

    def __init__(self, records: Iterable[AuditRecord]) -> None:
        self._source: Iterator[AuditRecord] = iter(records)
        self._ahead: deque[AuditRecord] = deque()
        self._behind: deque[AuditRecord] = deque()
        self._by_hash: dict[str, AuditRecord] = {}
        self._written: dict[tuple[int, str], int | None] = {}
        self._fill()

    def _fill(self) -> None:
        while len(self._ahead) < _WINDOW:
            record = next(self._source, None)
            if record is None:
                return
            self._ahead.append(record)
            self._by_hash.setdefault(record.hash, record)

    def __iter__(self) -> Iterator[AuditRecord]:
        while self._ahead:
            record = self._ahead.popleft()
            yield record
            self._behind.append(record)
            if len(self._behind) > _WINDOW:
                old = self._behind.popleft()
                if self._by_hash.get(old.hash) is old:
                    del self._by_hash[old.hash]
                self._written.pop((old.seq, old.hash), None)
            self._fill()

    def near(self, digest: str) -> AuditRecord | None:
        """The record with this hash, if it is within the window."""
        return self._by_hash.get(digest)

    def written(self, record: AuditRecord, depth: int = 0) -> int | None:
        """The seq ``record`` was written as: its own when its hash verifies there, else the one
        after the record it links to, when its hash verifies there (None: neither)."""
        key = (record.seq, record.hash)
        if key in self._written:
            return self._written[key]
        found: int | None = None
        if _intact(record, record.seq):
            found = record.seq
        elif record.format in (2, 3) and depth < 8:
            before = 0 if record.prev == GENESIS else None
            linked = self.near(record.prev)
            if linked is not None:
                before = self.written(linked, depth + 1)
            if before is not None and _intact(record, before + 1):
                found = before + 1
        self._written[key] = found
        return found

    def remember(self, record: AuditRecord, seq: int) -> None:
        self._written[(record.seq, record.hash)] = seq


def _intact(record: AuditRecord, seq: int) -> bool:
    return record_hash(record.format, seq, record.at, record.prev, record.body, record.erasable_sha256) == record.hash


def _erasable_problem(record: AuditRecord) -> str | None:
    """What is wrong with a record's erasable part (None: nothing): in format 3 the stored
    text and salt must give ``erasable_sha256``, or both be erased; before, there is none."""
    if record.format < 3:
        if record.erasable is not None or record.erasable_salt is not None or record.erasable_sha256 is not None:
            return "a format-1/2 record holds an erasable part, which its hash does not cover"
        return None
    if record.erasable is None and record.erasable_salt is None:
        return None
    if record.erasable is None or record.erasable_salt is None:
        return "its erasable part is half erased (the text or the salt is left)"
    if erasable_digest(record.erasable_salt, record.erasable) != record.erasable_sha256:
        return "its erasable part does not match its erasable_sha256"
    return None


def _problem(problems: list[AuditProblem], seq: int, kind: ProblemKind, message: str) -> None:
    problems.append(AuditProblem(seq, kind, message))


def check(
    records: Iterable[AuditRecord], evidence: Evidence | None = None, *, table_exists: bool = True
) -> VerifyReport:
    """Verify ``records`` (in seq order) and, with ``evidence``, against its checkpoints."""
    problems: list[AuditProblem] = []
    cp_seqs, cp_hashes = evidence.sorted() if evidence is not None else ([], [])
    i = 0
    last_good = 0  # the newest seq a checkpoint agreed with
    runs: list[tuple[int, int, int]] = []  # checkpoint disagreements: (first seq possibly rewritten, at, count)
    walk = _Walk(records)
    q: AuditRecord | None = None
    q_written = 0
    shift_reported = False
    newest_format = 1
    count = 0
    erased = 0
    for r in walk:
        count += 1
        s = r.seq
        expected = q.seq + 1 if q is not None else 1
        if s > expected:
            _problem(
                problems,
                expected,
                "deleted",
                f"records {expected}..{s - 1} are missing" if s - 1 > expected else f"record {expected} is missing",
            )
        if r.format not in (1, 2, 3):
            _problem(problems, s, "edited", f"record {s} claims an unknown format {r.format}")
        elif r.format < newest_format:
            _problem(
                problems, s, "edited", f"record {s} is in format {r.format} after records in format {newest_format}"
            )
        newest_format = max(newest_format, r.format)
        linked = s == expected and r.prev == (q.hash if q is not None else GENESIS)
        if r.erased:
            erased += 1
        part = _erasable_problem(r)
        if part is not None:
            _problem(problems, s, "edited", f"record {s}: {part}")
        w = walk.written(r)
        if w is None:
            shifted = _renumbered(r)
            if shifted is not None and not linked and walk.near(r.prev) is None:
                _problem(
                    problems,
                    s,
                    "deleted",
                    f"record {s} was written as record {shifted}: records before it "
                    "were deleted and the later ones renumbered",
                )
                walk.remember(r, shifted)
                w, shift_reported = shifted, True
            else:
                if part is None:
                    _problem(problems, s, "edited", f"record {s}: its content does not match its hash")
                w = s
        elif w == s:
            shift_reported = False
            if s == expected and not linked:
                before = walk.near(r.prev)
                if q is None:
                    _problem(problems, s, "edited", f"record {s} is the first but is chained to another record")
                elif before is None and not (problems and problems[-1].seq >= q.seq):
                    _problem(
                        problems,
                        q.seq,
                        "edited",
                        f"record {q.seq} was replaced: record {s} was chained "
                        f"to another record {q.seq} (its hash was recomputed)",
                    )
                elif before is not None and walk.written(before) != s - 1:
                    _problem(
                        problems,
                        s,
                        "reordered",
                        f"record {s} is out of place: it was written right after "
                        f"record {before.seq}, but follows record {s - 1}",
                    )
        elif linked and w == q_written + 1 and shift_reported:
            pass  # a renumbered run, reported where it starts
        else:
            _problem(problems, s, "reordered", f"record {s} is out of place: it was written as record {w}")
        q, q_written = r, w
        # the checkpoints of this seq (those of missing seqs were reported as gaps above)
        while i < len(cp_seqs) and cp_seqs[i] < s:
            i += 1
        while i < len(cp_seqs) and cp_seqs[i] == s:
            if cp_hashes[i] == r.hash:
                last_good = s
            elif runs and runs[-1][0] == last_good + 1:
                runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
            else:
                runs.append((last_good + 1, s, 1))
            i += 1
    head = AuditHead(q.seq, q.hash) if q is not None else AuditHead(0, GENESIS)
    flagged = sorted(p.seq for p in problems)
    for start, at, n in runs:
        k = bisect.bisect_left(flagged, start)
        if k < len(flagged) and flagged[k] <= at:
            continue  # explained by a problem found in the records themselves
        _problem(
            problems,
            start,
            "rewritten",
            f"records {start}..{at} were rewritten: the signed checkpoint of "
            f"record {at} holds another hash" + (f" ({n - 1} later checkpoints disagree too)" if n > 1 else ""),
        )
    anchored: int | None = None
    if evidence is not None:
        problems.extend(evidence.problems)
        anchored = cp_seqs[-1] if cp_seqs else 0
        if anchored > head.seq:
            where = f"checkpoints vouch for records up to {anchored}"
            if not table_exists:
                _problem(problems, 1, "dropped", f"the audit table is gone, but {where}")
            elif count == 0:
                _problem(problems, 1, "wiped", f"the audit table is empty, but {where}")
            else:
                _problem(
                    problems,
                    head.seq + 1,
                    "truncated",
                    f"records {head.seq + 1}..{anchored} are missing: the log ends at {head.seq}, but {where}",
                )
        elif head.seq > anchored:
            _problem(
                problems,
                anchored + 1,
                "unanchored",
                f"records {anchored + 1}..{head.seq} are not covered by any signed checkpoint: appended by "
                "someone without the signing key, or just before a crash that lost their checkpoint "
                "(then the next append anchors them)",
            )
    problems.sort(key=lambda p: p.seq)
    return VerifyReport(
        count,
        tuple(problems),
        head,
        anchored,
        len(cp_seqs),
        evidence.key_ids if evidence is not None else (),
        erased,
    )


def _renumbered(record: AuditRecord) -> int | None:
    """The seq a format-2 record was written as, when it is a few places after where it is."""
    if record.format not in (2, 3):
        return None
    for seq in range(record.seq + 1, record.seq + 9):
        if _intact(record, seq):
            return seq
    return None
