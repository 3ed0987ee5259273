"""The contract every :class:`~strongroom.audit.AuditLog` backend passes, with the tamper
matrix: each way of tampering with the stored log is caught, with its kind and the seq
where it is, and erasure (issue 20): an erased record's text is gone from the storage and
the chain, its checkpoints included, still verifies. A backend's test subclasses
:class:`AuditLogContract` and supplies a ``backend`` fixture (a :class:`Backend`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import pytest

import strongroom.audit as audit_log
from strongroom.audit import GENESIS, AuditBackend, AuditEvent, AuditRecord, Erasable
from strongroom.audit.records import event_body, record_hash
from strongroom.errors import NotErasable, QueryError


@dataclass
class Backend:
    """How a contract test reaches one backend's storage."""

    open: Callable[[], AuditBackend]  # a new handle on the same log, anchor and key
    sql: Callable[[list[tuple[str, tuple[object, ...]]]], None]  # run statements with the guards off
    table: str
    anchor: Path
    stored: Callable[[], bytes]  # everything the storage holds of the log, as bytes (files, or rows)


def event(i: int) -> AuditEvent:
    return AuditEvent(
        principal=f"user{i}", groups=("research",), action="search", query=f"q{i}", chunks=((f"c{i}", f"v{i}"),),
        filters={"k": 10, "ratio": 0.25, "as_of": None, "when": "2026-01-01"}, query_hmac=f"{i:064x}",
    )  # fmt: skip


def filled(backend: Backend, n: int = 6) -> list[AuditRecord]:
    """``n`` records appended one at a time (a checkpoint each); the stored records."""
    log = backend.open()
    for i in range(n):
        audit_log.append(log, event(i))
    records = list(log.read())
    log.close()
    return records


def problems(backend: Backend) -> list[tuple[int, str]]:
    log = backend.open()
    try:
        return [(p.seq, p.kind) for p in log.verify(grace_s=0).problems]
    finally:
        log.close()


def _edit(b: Backend, rs: list[AuditRecord]) -> None:
    body = {**json.loads(rs[2].body), "principal": "someone-innocent"}
    b.sql([(f"UPDATE {b.table} SET body = ? WHERE seq = 3", (json.dumps(body),))])


def _edit_erasable(b: Backend, rs: list[AuditRecord]) -> None:
    assert rs[2].erasable is not None
    text = rs[2].erasable.replace('"q2"', '"something innocent"')
    b.sql([(f"UPDATE {b.table} SET erasable = ? WHERE seq = 3", (text,))])


def _edit_erasable_sha256(b: Backend, rs: list[AuditRecord]) -> None:
    b.sql([(f"UPDATE {b.table} SET erasable_sha256 = ? WHERE seq = 3", ("0" * 64,))])


def _edit_salt(b: Backend, rs: list[AuditRecord]) -> None:
    b.sql([(f"UPDATE {b.table} SET erasable_salt = ? WHERE seq = 3", ("ab" * 32,))])


def _erase_then_edit(b: Backend, rs: list[AuditRecord]) -> None:
    log = b.open()
    assert log.erase([3]) == [3]
    log.close()
    _edit(b, rs)


def _half_erase(b: Backend, rs: list[AuditRecord]) -> None:
    b.sql([(f"UPDATE {b.table} SET erasable_salt = NULL WHERE seq = 3", ())])


def _delete_middle(b: Backend, rs: list[AuditRecord]) -> None:
    b.sql([(f"DELETE FROM {b.table} WHERE seq = 4", ())])


def _delete_newest(b: Backend, rs: list[AuditRecord]) -> None:
    b.sql([(f"DELETE FROM {b.table} WHERE seq = 6", ())])


def _wipe(b: Backend, rs: list[AuditRecord]) -> None:
    b.sql([(f"DELETE FROM {b.table}", ())])


def _drop(b: Backend, rs: list[AuditRecord]) -> None:
    b.sql([(f"DROP TABLE {b.table}", ())])


def _rewrite(b: Backend, rs: list[AuditRecord]) -> None:
    """Edit record 3 and recompute its hash and every later one: a consistent forged chain."""
    statements: list[tuple[str, tuple[object, ...]]] = []
    prev = rs[1].hash
    for r in rs[2:]:
        body = r.body.replace('"user2"', '"user-innocent"') if r.seq == 3 else r.body
        digest = record_hash(r.format, r.seq, r.at, prev, body, r.erasable_sha256)
        statements.append(
            (f"UPDATE {b.table} SET body = ?, prev = ?, hash = ? WHERE seq = ?", (body, prev, digest, r.seq))
        )
        prev = str(digest)
    b.sql(statements)


def _forge_append(b: Backend, rs: list[AuditRecord]) -> None:
    """A record appended by someone who knows the format but not the signing key."""
    last, first = rs[-1], rs[0]
    body = first.body.replace('"user0"', '"mallory"')
    digest = record_hash(3, 7, last.at, last.hash, body, first.erasable_sha256)
    row = (7, last.at, last.hash, digest, body, first.erasable, first.erasable_salt, first.erasable_sha256)
    b.sql([(f"INSERT INTO {b.table} (seq, at, prev, hash, body, format, erasable, erasable_salt, erasable_sha256) "
            "VALUES (?, ?, ?, ?, ?, 3, ?, ?, ?)", row)])  # fmt: skip


def _reorder(b: Backend, rs: list[AuditRecord]) -> None:
    b.sql([(f"UPDATE {b.table} SET seq = 100 WHERE seq = 2", ()),
           (f"UPDATE {b.table} SET seq = 2 WHERE seq = 3", ()),
           (f"UPDATE {b.table} SET seq = 3 WHERE seq = 100", ())])  # fmt: skip


TAMPERS: list[tuple[str, Callable[[Backend, list[AuditRecord]], None], list[tuple[int, str]]]] = [
    ("edit a record", _edit, [(3, "edited")]),
    ("delete one in the middle", _delete_middle, [(4, "deleted")]),
    ("delete the newest", _delete_newest, [(6, "truncated")]),
    ("wipe every record", _wipe, [(1, "wiped")]),
    ("drop the table", _drop, [(1, "dropped")]),
    ("rewrite and re-hash the chain", _rewrite, [(3, "rewritten")]),
    ("forge an appended record", _forge_append, [(7, "unanchored")]),
    ("reorder two records", _reorder, [(2, "reordered"), (3, "reordered")]),
    ("edit a record's erasable part", _edit_erasable, [(3, "edited")]),
    ("edit a record's erasable_sha256", _edit_erasable_sha256, [(3, "edited")]),
    ("replace a record's salt", _edit_salt, [(3, "edited")]),
    ("erase a record, then edit its body", _erase_then_edit, [(3, "edited")]),
    ("erase the text but leave the salt", _half_erase, [(3, "edited")]),
]

#: an identifier a test erases: in a query, a target, a detail and the filters
NEEDLE = "Zebulon Quixwell-4471"


def personal(i: int, who: str = NEEDLE) -> AuditEvent:
    """An event naming ``who`` in each of its erasable fields (a long detail: more than a page)."""
    return AuditEvent(
        principal=f"user{i}", groups=("research",), action="ask", query=f"what does {who} owe?",
        target=f"statements/{who}.pdf", detail=f"quoted: {who} " + "x" * 5000,
        filters={"customer": who.upper(), "k": 5}, chunks=((f"c{i}", f"v{i}"),),
    )  # fmt: skip


def legacy_record(backend: Backend, n: int = 2) -> list[AuditRecord]:
    """``n`` format-2 records naming :data:`NEEDLE`, as strongroom wrote them before issue 20
    (adopted verbatim, then anchored); the log's own records chain after them."""
    prev, at, out = GENESIS, "2026-01-01T00:00:00.000000+00:00", []
    for seq in range(1, n + 1):
        body = event_body(personal(seq)).decode()
        digest = str(record_hash(2, seq, at, prev, body))
        out.append(AuditRecord(seq, at, prev, digest, body, 2))
        prev = digest
    log = backend.open()
    assert log.adopt(out) == n
    log.close()
    return out


class AuditLogContract:
    """Subclass with a ``backend`` fixture."""

    backend_name: ClassVar[str] = ""

    def test_an_intact_log_verifies_and_is_anchored(self, backend: Backend) -> None:
        records = filled(backend)
        log = backend.open()
        report = log.verify()
        log.close()
        assert report.ok and report.records == 6 and report.anchored == 6 and report.checkpoints == 6
        assert report.head == (6, records[-1].hash) and len(report.key_ids) == 1
        assert records[0].prev == GENESIS and all(b.prev == a.hash for a, b in pairwise(records))
        assert {r.format for r in records} == {3}
        assert all(r.erasable and r.erasable_salt and r.erasable_sha256 for r in records)

    @pytest.mark.parametrize(("tamper", "expected"), [(t[1], t[2]) for t in TAMPERS], ids=[t[0] for t in TAMPERS])
    def test_the_tamper_matrix(
        self, backend: Backend, tamper: Callable[[Backend, list[AuditRecord]], None], expected: list[tuple[int, str]]
    ) -> None:
        tamper(backend, filled(backend))
        assert problems(backend) == expected

    def test_a_group_commit_chains_in_order_and_checkpoints_once(self, backend: Backend) -> None:
        log = backend.open()
        assert log.append_many([event(i) for i in range(2)]) == [1, 2]
        assert log.append_many([event(i) for i in range(2, 7)]) == [3, 4, 5, 6, 7]
        assert log.append_many([]) == []
        assert [r.event()["principal"] for r in log.read()] == [f"user{i}" for i in range(7)]
        report = log.verify()
        log.close()
        assert report.ok and report.checkpoints == 2 and report.anchored == 7

    def test_read_pages_forward_by_seq(self, backend: Backend) -> None:
        log = backend.open()
        log.append_many([event(i) for i in range(2500)])
        assert [r.seq for r in log.read(after_seq=990, limit=1100)] == list(range(991, 2091))
        assert [r.seq for r in log.read(after_seq=2498)] == [2499, 2500]
        assert list(log.read(after_seq=2500)) == [] and list(log.read(limit=0)) == []
        assert log.head().seq == 2500
        page, after, seen = 700, 0, []
        while batch := list(log.read(after_seq=after, limit=page)):  # a SIEM paging forward
            seen += [r.seq for r in batch]
            after = batch[-1].seq
        assert seen == list(range(1, 2501))
        log.close()

    def test_a_stored_record_holds_exactly_the_event_s_fields(self, backend: Backend) -> None:
        from dataclasses import asdict

        e = event(1)
        log = backend.open()
        audit_log.append(log, e)
        (record,) = audit_log.records(log)
        log.close()
        expected: dict[str, Any] = json.loads(json.dumps(asdict(e)))
        meta = ("seq", "at", "prev", "hash", "format", "erasable_sha256", "erased")
        assert {k: v for k, v in record.items() if k not in meta} == expected
        assert record["erased"] is False and record["format"] == 3

    def test_a_bad_checkpoint_signature_is_a_forged_anchor(self, backend: Backend) -> None:
        filled(backend, 3)
        lines = backend.anchor.read_text().splitlines()
        checkpoint = json.loads(lines[-1])
        checkpoint["hash"] = "f" * 64  # claims another head, without the key to sign it
        backend.anchor.write_text("\n".join([*lines, json.dumps(checkpoint)]) + "\n")
        assert (3, "forged_checkpoint") in problems(backend)

    def test_a_key_line_someone_appends_does_not_vouch_for_their_forgery(self, backend: Backend) -> None:
        """Write access to the database and append access to the anchor, but not the deployment's
        key: the forger appends a record, its own key line, and a checkpoint it signed."""
        import base64
        from datetime import UTC, datetime

        from strongroom.audit.anchor import Checkpoint, SigningKey

        last = filled(backend, 3)[-1]
        body = last.body.replace('"user2"', '"mallory"')
        digest = record_hash(2, 4, last.at, last.hash, body)
        assert digest is not None
        backend.sql([(f"INSERT INTO {backend.table} (seq, at, prev, hash, body, format) VALUES (?, ?, ?, ?, ?, 2)",
                      (4, last.at, last.hash, digest, body))])  # fmt: skip
        mallory = SigningKey.generate()
        unsigned = Checkpoint(4, digest, datetime.now(UTC).isoformat(), mallory.key_id)
        signed = Checkpoint(
            4, digest, unsigned.at, mallory.key_id, base64.b64encode(mallory.sign(unsigned.message())).decode()
        )
        key_line = {"type": "key", "alg": "Ed25519", "at": unsigned.at, "key_id": mallory.key_id,
                    "public_key": base64.b64encode(mallory.public_key).decode()}  # fmt: skip
        with backend.anchor.open("ab") as fh:
            fh.write(json.dumps(key_line).encode() + b"\n" + signed.line())
        found = problems(backend)
        assert found and {seq for seq, _ in found} == {4}, found  # caught, at the forged record

    def test_adopt_copies_verbatim_and_again_adds_nothing(self, backend: Backend, tmp_path: Path) -> None:
        from strongroom.audit import SqliteAuditLog

        source = SqliteAuditLog(tmp_path / "source.sqlite3")
        source.append_many([event(i) for i in range(5)])
        log = backend.open()
        assert log.adopt(source.chain()) == 5 and log.adopt(source.chain()) == 0
        assert list(log.chain()) == list(source.chain())
        audit_log.append(source, event(5))
        assert log.adopt(source.chain()) == 1
        assert log.verify().ok and log.head() == source.head()
        source.close()
        log.close()

    def test_a_table_dropped_while_running_is_made_again_and_the_drop_is_reported(self, backend: Backend) -> None:
        log = backend.open()
        for i in range(3):
            audit_log.append(log, event(i))
        backend.sql([(f"DROP TABLE {backend.table}", ())])
        assert audit_log.append(log, event(9)) == 1  # the service keeps auditing, on a new chain
        found = {(p.seq, p.kind) for p in log.verify(grace_s=0).problems}
        log.close()
        assert {(1, "rewritten"), (2, "truncated")} <= found

    # -- erasure (issue 20) ----------------------------------------------------------------

    def test_erasing_keeps_the_chain_and_its_checkpoints_verifying(self, backend: Backend) -> None:
        log = backend.open()
        assert isinstance(log, Erasable)
        log.append_many([event(0), personal(1), event(2)])
        audit_log.append(log, personal(3, "someone else"))
        audit_log.append(log, personal(4))
        before = {r.seq: r for r in log.read()}
        assert log.find_text([NEEDLE.lower()]) == [2, 5]  # case-insensitive
        assert log.find_text(["quixwell", "SOMEONE ELSE"]) == [2, 4, 5]
        assert log.find_text(["not there"]) == [] and log.find_text([]) == []
        assert log.erase([5, 2, 2]) == [2, 5]
        after = {r.seq: r for r in log.read()}
        for seq in (2, 5):
            r = after[seq]
            assert r.erased and r.erasable is None and r.erasable_salt is None
            assert (r.hash, r.body, r.erasable_sha256) == (
                before[seq].hash,
                before[seq].body,
                before[seq].erasable_sha256,
            )
            shown = r.as_dict()
            assert shown["erased"] is True and NEEDLE not in json.dumps(shown) and "query" not in shown
            assert shown["principal"] == f"user{seq - 1}" and shown["chunks"] == [[f"c{seq - 1}", f"v{seq - 1}"]]
        assert after[4].as_dict()["query"] == "what does someone else owe?"  # the others are untouched
        assert log.find_text([NEEDLE]) == []
        report = log.verify(grace_s=0)
        assert report.ok, report.problems
        assert report.anchored == 5 and report.checkpoints == 3 and report.erased == 2
        pinned = log.verify(public_keys=[k for k in _public_keys(backend)], grace_s=0)
        assert pinned.ok and pinned.anchored == 5
        assert log.erase([2]) == [2]  # again: already erased, nothing to do
        audit_log.append(log, event(6))  # the chain goes on after an erasure
        assert log.verify(grace_s=0).ok
        log.close()

    def test_erased_text_is_gone_from_the_storage(self, backend: Backend) -> None:
        log = backend.open()
        for i in range(30):  # many pages, appended one group commit at a time
            log.append_many([personal(i) if i % 3 == 0 else event(i)])
        log.close()
        assert NEEDLE.encode() in backend.stored()  # the check can fail
        log = backend.open()
        assert log.erase(log.find_text([NEEDLE])) == list(range(1, 31, 3))
        log.close()
        stored = backend.stored()
        for text in (NEEDLE, NEEDLE.upper(), "Quixwell"):
            assert text.encode() not in stored, text
        assert b"q1" in stored or b"q2" in stored  # what was not erased is still there

    def test_each_record_has_its_own_salt(self, backend: Backend) -> None:
        log = backend.open()
        log.append_many([personal(1), personal(1)])
        one, two = log.read()
        log.close()
        assert one.erasable == two.erasable and one.erasable_salt != two.erasable_salt
        assert one.erasable_sha256 != two.erasable_sha256  # a guess cannot be confirmed without the salt

    def test_format_2_records_and_missing_seqs_are_refused_and_nothing_is_erased(self, backend: Backend) -> None:
        legacy_record(backend, 2)
        log = backend.open()
        audit_log.append(log, personal(3))
        assert [r.format for r in log.read()] == [2, 2, 3]
        assert log.find_text([NEEDLE]) == [1, 2, 3]  # found everywhere, erasable or not
        with pytest.raises(NotErasable, match="format 1 or 2") as refused:
            log.erase([1, 2, 3])
        assert refused.value.legacy == (1, 2) and refused.value.missing == ()
        assert not any(r.erased for r in log.read())  # all or nothing
        with pytest.raises(NotErasable, match="no record 9") as missing:
            log.erase([3, 9])
        assert missing.value.missing == (9,) and missing.value.legacy == ()
        assert log.erase([3]) == [3] and log.find_text([NEEDLE]) == [1, 2]
        assert log.verify(grace_s=0).ok
        log.close()

    def test_an_empty_needle_is_refused(self, backend: Backend) -> None:
        log = backend.open()
        audit_log.append(log, personal(1))
        for needles in ([""], ["  "], [NEEDLE, ""]):
            with pytest.raises(QueryError, match="empty needle"):
                log.find_text(needles)
        with pytest.raises(QueryError, match="not one string"):
            log.find_text(NEEDLE)
        log.close()


def _public_keys(backend: Backend) -> list[bytes]:
    """The public keys the anchor's key lines declare."""
    import base64

    keys = []
    for line in backend.anchor.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("type") == "key":
            keys.append(base64.b64decode(entry["public_key"]))
    return keys
