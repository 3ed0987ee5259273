"""The audit log: hash-chained records, signed checkpoints anchored outside the database.

Each record holds the hash of the one before it and its own hash covers its format, seq,
time, that link and its body (RFC 8785 canonical JSON, :mod:`strongroom.audit.records`),
so an edit, a deletion in the middle or a reordering breaks the chain where it happens.
After each append the head is signed (Ed25519) and the checkpoint appended to a file
outside the database (:mod:`strongroom.audit.anchor`), so deleting the newest records,
wiping or dropping the table, rewriting the chain with new hashes or appending a forged
record is caught too: :meth:`AuditLog.verify` names each problem's seq and kind
(:mod:`strongroom.audit.verify`). ``docs/audit-format.md`` lets another language re-verify.

Backends: the catalog's SQLite file (embedded) and PostgreSQL (``Settings.store_url``: one
chain for every replica, appends serialised by an advisory lock). Get one with
:func:`open_audit_log`::

    log = open_audit_log(settings)
    seqs = log.append_many([AuditEvent(principal="ana", groups=("research",), action="search")])
    for record in log.read(after_seq=0, limit=500):   # a SIEM pages forward by seq
        ...
    report = log.verify()                              # report.problems: seq, kind, message

Erasure (issue 20): a record keeps its free text (``query``, ``detail``, ``target``,
``filters``) in a salted erasable part its hash covers only through a digest, so the text
can be erased and the chain still verifies (:class:`Erasable`)::

    seqs = log.find_text(["Jane Roe"])     # records whose erasable part names her
    log.erase(seqs)                        # NotErasable: format-1/2 ones, or missing seqs
"""

from strongroom.audit.anchor import Anchor, Checkpoint, SigningKey
from strongroom.audit.log import AuditBackend, AuditLog, Erasable, anchor_for, append, export, records
from strongroom.audit.records import (
    ERASABLE_FIELDS,
    FORMAT,
    GENESIS,
    AuditEvent,
    AuditHead,
    AuditRecord,
    answer_hash,
)
from strongroom.audit.sqlite import SqliteAuditLog
from strongroom.audit.verify import AuditProblem, ProblemKind, VerifyReport
from strongroom.config import Settings

__all__ = [
    "ERASABLE_FIELDS",
    "FORMAT",
    "GENESIS",
    "Anchor",
    "AuditBackend",
    "AuditEvent",
    "AuditHead",
    "AuditLog",
    "AuditProblem",
    "AuditRecord",
    "Checkpoint",
    "Erasable",
    "ProblemKind",
    "SigningKey",
    "SqliteAuditLog",
    "VerifyReport",
    "anchor_for",
    "answer_hash",
    "append",
    "export",
    "open_audit_log",
    "records",
]


def open_audit_log(settings: Settings) -> AuditBackend:
    """The deployment's audit log: in PostgreSQL when ``settings.store_url`` is set (one chain
    for every replica), else in the catalog's SQLite file; anchored as ``settings`` say."""
    if settings.store_url:
        from strongroom.audit.postgres import PostgresAuditLog  # psycopg: the optional [postgres] extra

        return PostgresAuditLog(settings.store_url, anchor=anchor_for(settings))
    return SqliteAuditLog(settings.catalog_path, anchor=anchor_for(settings))
