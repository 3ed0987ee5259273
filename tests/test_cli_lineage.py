"""``strongroom lineage RECORD_ID``: the record id ``ask --json`` prints (``audit_seq``) leads to
the version, page, ingestion job, parser and generator of the answer; another user's record and
one that does not exist are the same "not found" (exit 1); a malformed id is exit 2; after the
document is deleted the lineage still names its hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from strongroom.cli import app

ADMIN = {"STRONGROOM_CLI_ROLES": '["reader","ingester","admin"]'}
READER = {"STRONGROOM_CLI_ROLES": '["reader"]'}


def test_lineage_on_the_command_line(tmp_path: Path) -> None:
    note = tmp_path / "desk.md"
    note.write_text("# Rates desk\n\nThe rates desk expects two cuts this year.\n")

    def invoke(*args: str, roles: dict[str, str] = READER) -> Result:
        env = {"STRONGROOM_EMBEDDER": "hash", **roles}
        return CliRunner().invoke(app, [*args, "--home", str(tmp_path / "home")], env=env)

    def cli(*args: str, roles: dict[str, str] = READER) -> Any:
        done = invoke(*args, roles=roles)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    job = cli("ingest", str(note), "--acl", "rates", "--groups", "rates", "--user", "ana", "--json", roles=ADMIN)
    asked = cli("ask", "How many cuts does the rates desk expect?", "--groups", "rates", "--user", "ana", "--json")
    seq = asked["audit_seq"]
    lineage = cli("lineage", str(seq), "--groups", "rates", "--user", "ana", "--json")
    (version,) = lineage["versions"]
    assert version["version_id"] == hashlib.sha256(note.read_bytes()).hexdigest() and version["status"] == "live"
    assert version["ingestion"]["job_id"] == job["job_id"] and version["ingestion"]["parser"].startswith(
        "text.parse_markdown strongroom-"
    )
    assert [c["page"] for c in lineage["chunks"]] == [1] * len(lineage["chunks"]) and lineage["chunks"]
    assert lineage["model"]["generator"] == "extractive-v1" == lineage["model"]["prompt_template_version"]

    table = invoke("lineage", str(seq), "--groups", "rates", "--user", "ana")
    assert table.exit_code == 0 and version["version_id"][:12] in table.stdout and "extractive-v1" in table.stdout

    other = invoke("lineage", str(seq), "--groups", "rates", "--user", "bo")
    missing = invoke("lineage", "99999", "--groups", "rates", "--user", "ana")
    assert other.exit_code == missing.exit_code == 1
    assert "no audit record" in other.output and "no audit record" in missing.output
    assert version["title"] not in other.output
    assert invoke("lineage", "abc", "--user", "ana").exit_code == 2

    cli("delete", "desk.md", "--groups", "rates", "--user", "ana", "--json", roles=ADMIN)
    gone = cli("lineage", str(seq), "--user", "carl", "--json", roles={"STRONGROOM_CLI_ROLES": '["auditor"]'})
    assert gone["versions"][0]["status"] == "deleted" and gone["versions"][0]["version_id"] == version["version_id"]
    assert gone["versions"][0]["removal"]["action"] == "documents.delete"
