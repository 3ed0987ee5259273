"""Reading a model's evidence from the audit log: what an evaluation run's record keeps
(:func:`eval_filters`, :func:`eval_set_sha256`), what it evaluated (its subject:
:func:`eval_subject` for a retrieval run, :func:`agent_subject` for an agent run), and whether
it is evidence of a registry entry at all (:func:`read_run`: a successful, unnarrowed run that
measured the entry's ``binding``). Used by :class:`strongroom.service.registry.Registry`; the
metrics and subjects are always read from the record, never taken from the caller.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypedDict

from strongroom.audit import AuditLog, AuditRecord
from strongroom.errors import QueryError
from strongroom.governance.registry import Evidence, ModelEntry

__all__ = [
    "AGENT_EVAL",
    "Subject",
    "agent_subject",
    "check_agent_run",
    "check_measures",
    "eval_filters",
    "eval_set_sha256",
    "eval_subject",
    "read_run",
    "record_at",
    "run_subject",
    "with_subjects",
]

#: the audit action of an agent evaluation (``strongroom eval-agent``: a chat model's evidence)
AGENT_EVAL = "agent.eval"


def record_at(log: AuditLog, seq: int) -> AuditRecord | None:
    """Audit record ``seq`` of ``log`` (None if there is none)."""
    if seq < 1:
        return None
    found = next(iter(log.read(seq - 1, 1)), None)
    return found if found is not None and found.seq == seq else None


def eval_set_sha256(items: Sequence[object]) -> str:
    """The SHA-256 of an evaluation set's questions (each as canonical JSON, one per line):
    the same questions give the same hash, whatever the file's spacing."""
    digest = hashlib.sha256()
    for item in items:
        dump = getattr(item, "model_dump", None)
        value = dump(mode="json") if callable(dump) else item
        digest.update(json.dumps(value, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return digest.hexdigest()


def eval_filters(
    result: Mapping[str, object], sha256: str, subject: Mapping[str, object] | None = None
) -> dict[str, object]:
    """What an evaluation run's audit record keeps so that it can be attached as evidence:
    the evaluation set's hash, the numeric metrics (never a question or an answer) and its
    ``subject`` (what was evaluated, under which clocks, by which groups: :func:`eval_subject`)."""
    metrics = {k: v for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {"eval_sha256": sha256, "metrics": metrics, **({"subject": dict(subject)} if subject else {})}


class Subject(TypedDict):
    """What an evaluation run evaluated, under which clocks, by which groups (:class:`Evidence` fields)."""

    embedder: str
    query_encoder: str
    as_of: str | None
    known_at: str | None
    groups: tuple[str, ...]


def eval_subject(filters: Mapping[str, object]) -> Subject | None:
    """An evaluation record's subject as :class:`Evidence` fields (``embedder``,
    ``query_encoder``, ``as_of``, ``known_at``, ``groups``); None when the record names none
    (recorded before runs did) or names it malformed."""
    subject = filters.get("subject")
    if not isinstance(subject, dict):
        return None
    embedder, encoder, groups = subject.get("embedder"), subject.get("query_encoder", ""), subject.get("groups")
    as_of, known_at = subject.get("as_of"), subject.get("known_at")
    if not isinstance(embedder, str) or not embedder or not isinstance(encoder, str):
        return None
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        return None
    if not all(v is None or isinstance(v, str) for v in (as_of, known_at)):
        return None
    return Subject(embedder=embedder, query_encoder=encoder, as_of=as_of, known_at=known_at,
                   groups=tuple(sorted(groups)))  # fmt: skip


def agent_subject(filters: Mapping[str, object]) -> Subject | None:
    """An agent evaluation record's subject as :class:`Evidence` fields (no embedder; the
    clocks and groups the record names); None when it names none (a ``--tools-only`` run, or
    one recorded before runs named the deployments that served them) or names it malformed."""
    subject = filters.get("subject")
    if not isinstance(subject, dict) or filters.get("tools_only"):
        return None
    served, groups = subject.get("deployments"), subject.get("groups")
    as_of, known_at = subject.get("as_of"), subject.get("known_at")
    if not isinstance(served, list) or not served or not all(isinstance(d, str) and d for d in served):
        return None
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        return None
    if not all(v is None or isinstance(v, str) for v in (as_of, known_at)):
        return None
    return Subject(embedder="", query_encoder="", as_of=as_of, known_at=known_at, groups=tuple(sorted(groups)))


def run_subject(action: str, filters: Mapping[str, object]) -> Subject | None:
    """The subject of an evaluation record of ``action`` (``eval`` or ``agent.eval``)."""
    if action == AGENT_EVAL:
        return agent_subject(filters)
    return eval_subject(filters) if action == "eval" else None


def with_subjects(
    evidence: Sequence[Evidence], read_record: Callable[[int], AuditRecord | None]
) -> tuple[Evidence, ...]:
    """``evidence`` with each run's subject read from its audit record (the registry keeps the
    seq; the record is the source): a run without one keeps ``groups=None``."""
    out = []
    for ev in evidence:
        record = read_record(ev.audit_seq)
        filters = record.event().get("filters") if record is not None else None
        action = record.event().get("action") if record is not None else None
        subject = run_subject(str(action), filters) if isinstance(filters, dict) else None
        out.append(replace(ev, **subject) if subject is not None else ev)
    return tuple(out)


def read_run(entry: ModelEntry, record: AuditRecord | None, audit_seq: int) -> tuple[dict[str, Any], Subject]:
    """The fields and subject of the evaluation run recorded at ``audit_seq`` (``record``), if it
    is evidence of ``entry``: a successful ``eval`` or ``agent.eval``, not narrowed, naming its
    subject, and measuring the entry's ``binding``; QueryError saying why not otherwise."""
    fields = record.event() if record is not None else {}
    filters = fields.get("filters")
    action = fields.get("action")
    if record is None or action not in ("eval", AGENT_EVAL) or fields.get("outcome") != "ok":
        raise QueryError(
            f"audit record {audit_seq} is not a successful evaluation run (`strongroom eval`, or "
            "`strongroom eval-agent --route` for a chat model)"
        )
    if action == AGENT_EVAL:
        check_agent_run(entry, filters, audit_seq)
    elif entry.kind in ("chat", "reranker"):
        named = eval_subject(filters) if isinstance(filters, dict) else None
        raise QueryError(
            f"audit record {audit_seq} is a retrieval evaluation: it measures the embedder"
            f"{' ' + named['embedder'] if named else ''}, not the "
            f"{entry.kind} model {entry.ref}; "
            + (
                "evaluate the chat model with `strongroom eval-agent QUESTIONS --route R --record`"
                if entry.kind == "chat"
                else "the registry takes no evidence for reranker models yet"
            )
        )
    if not isinstance(filters, dict) or not isinstance(filters.get("metrics"), dict):
        raise QueryError(f"audit record {audit_seq} holds no metrics; run `strongroom eval QA --record` again")
    if filters.get("doc_types") or filters.get("meta_filters") or filters.get("published_from"):
        raise QueryError(
            f"audit record {audit_seq} is an evaluation narrowed by --doc-type, --filter or published_from;"
            " the release gate compares runs over everything the evaluator may read: run "
            "`strongroom eval QA --record` without them"
        )
    subject = run_subject(str(action), filters)
    if subject is None:
        raise QueryError(
            f"audit record {audit_seq} is an evaluation that does not name its subject (embedder, query "
            "encoder, clocks, groups): it was recorded before runs did; run `strongroom eval QA --record` again"
        )
    if action == "eval":
        check_measures(entry, subject, audit_seq)
    return fields, subject


def check_agent_run(entry: ModelEntry, filters: object, audit_seq: int) -> None:
    """Refuse an agent evaluation as evidence of ``entry`` unless every model turn of its
    runs was served by the entry's deployment (its ``binding``)."""
    if entry.kind not in ("chat", "fine-tuned"):
        raise QueryError(
            f"audit record {audit_seq} is an agent evaluation: it measures a chat deployment, not the "
            f"{entry.kind} model {entry.ref}"
        )
    if not isinstance(filters, dict) or filters.get("tools_only") or not filters.get("end_to_end"):
        raise QueryError(
            f"audit record {audit_seq} is a tool-level agent evaluation (--tools-only, or no --route): it asked "
            f"no model, so it is no evidence of {entry.ref}; run `strongroom eval-agent QUESTIONS --route R "
            "--record` end to end"
        )
    subject = filters.get("subject")
    if not isinstance(subject, dict) or agent_subject(filters) is None:
        raise QueryError(
            f"audit record {audit_seq} is an agent evaluation that does not name the deployments that served it: "
            "it was recorded before runs did; run `strongroom eval-agent QUESTIONS --route R --record` again"
        )
    served = [str(d) for d in subject.get("deployments", [])]
    unserved = subject.get("unserved_turns")
    if not entry.binding or set(served) != {entry.binding}:
        raise QueryError(
            f"audit record {audit_seq}: the runs' model turns were served by {', '.join(served) or 'no deployment'}"
            f", not only by {entry.ref}'s deployment ({entry.binding or 'none bound'}): every turn must be "
            "served by the model being evaluated (a route that failed over, or another route, measures another "
            "model); evaluate it through a route to its deployment alone"
        )
    if unserved:
        raise QueryError(
            f"audit record {audit_seq}: {unserved} model turn(s) of the runs were answered by no deployment, "
            f"so not by {entry.ref}; evaluate it again when its deployment answers"
        )


def check_measures(entry: ModelEntry, subject: Subject, audit_seq: int) -> None:
    """Refuse a retrieval run as evidence of a model it did not evaluate."""
    embedder, encoder = subject["embedder"], subject["query_encoder"]
    if not entry.binding or entry.binding not in {embedder, encoder} - {""}:
        raise QueryError(
            f"audit record {audit_seq} evaluated the embedder {embedder}"
            + (f" with the query encoder {encoder}" if encoder else "")
            + f", not {entry.ref} (bound to {entry.binding or 'nothing'}): evaluate that model itself"
        )
