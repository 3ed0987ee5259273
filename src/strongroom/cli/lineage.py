"""``strongroom lineage RECORD_ID``: where an answer came from (:mod:`strongroom.service.lineage`).

    strongroom ask "What were total net sales?" --json | jq .audit_seq     # 42
    strongroom lineage 42                 # chunks, versions, ingestion job, parser, models, policies
    strongroom lineage 42 --json

An admin or auditor may read any record's lineage; anyone else only that of their own requests
(another's record, and one that does not exist, are the same "not found", exit status 1).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from strongroom.cli.common import GroupsOpt, HomeOpt, JsonOpt, UserOpt, emit, platform_session, say

__all__ = ["lineage_command"]


def _short(value: str, n: int = 12) -> str:
    return value[:n] if value else "-"


def _versions(data: dict[str, Any]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for v in data["versions"]:
        ingestion = v.get("ingestion") or {}
        removal = v.get("removal") or {}
        rows.append(
            {
                "version": _short(v["version_id"]),
                "document": _short(v["document_id"]),
                "status": v["status"] + (f" (record {removal['seq']})" if removal else ""),
                "title": v["title"] or "-",
                "published": v["published_at"] or "-",
                "acl then": ",".join(v["acl_at_record"]) or "-",
                "job": _short(ingestion.get("job_id", "")),
                "parser": ingestion.get("parser") or "-",
            }
        )
    return rows


def lineage_command(
    record_id: Annotated[str, typer.Argument(help="The audit record's seq (an ask's audit_seq).")],
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Where an answer came from: chunks, versions, ingestion job, parser, models, prompt, policies."""
    with platform_session(home, user, groups) as (platform, principal):
        data = platform.lineage(principal, record_id).as_dict()
    if as_json:
        return emit(data, as_json)
    model = data["model"]
    say(f"record {data['seq']} ({data['action']}, {data['outcome']}) by {data['principal']} at {data['at']}")
    route = f"route {model['route']} v{model['route_version']} " if model["route"] else ""
    deployment = f", deployment {model['deployment']}" if model["deployment"] else ""
    say(f"answered by {route}{model['generator'] or '-'}{deployment}; prompt {model['prompt_template_version'] or '-'}")
    embedder = data["embedder"]
    say(f"embedder {embedder['setting']} ({embedder['store_model_id'] or '-'})")
    emit(_versions(data), False, title="Versions", empty="no versions")
    chunks = [
        {"chunk": _short(c["chunk_id"]), "version": _short(c["version_id"]), "status": c["status"],
         "page": c["page"] if c["page"] is not None else "-",
         "chars": f"{c['char_start']}-{c['char_end']}" if c["page"] is not None else "-"}
        for c in data["chunks"]
    ]  # fmt: skip
    emit(chunks, False, title="Chunks", empty="no chunks")
