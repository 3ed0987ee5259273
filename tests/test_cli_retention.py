"""``strongroom retention`` and ``strongroom holds``: a held document survives ``retention apply``
and ``strongroom delete`` (exit 1, naming the matter) until ``holds release``; only admins
(STRONGROOM_CLI_ROLES) may use them; bad input exits 2 and changes nothing; with four-eyes on,
``retention set`` and ``holds release`` print a proposal the maker cannot approve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from strongroom.cli import app

ADMIN = {"STRONGROOM_CLI_ROLES": '["reader","ingester","admin"]'}
READER = {"STRONGROOM_CLI_ROLES": '["reader","ingester"]'}
CHECKER = {"STRONGROOM_CLI_ROLES": '["reader","approver"]'}


class Cli:
    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.env = {"STRONGROOM_EMBEDDER": "hash", **env}

    def invoke(self, *args: str, roles: dict[str, str] = ADMIN) -> Result:
        env = {**self.env, **roles}
        return CliRunner().invoke(app, [*args, "--home", str(self.home), "--groups", "research"], env=env)

    def __call__(self, *args: str, roles: dict[str, str] = ADMIN) -> Any:
        done = self.invoke(*args, "--json", roles=roles)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)


def _ingest(cli: Cli, folder: Path) -> None:
    for name in ("old.md", "held.md"):
        (folder / name).write_text(f"# {name}\n\nThe research note {name} expects rates to fall.\n")
        cli("ingest", str(folder / name), "--acl", "research", "--published", "2001-03-01", "--doc-type",
            "research_report")  # fmt: skip


def test_a_held_document_survives_retention_and_delete(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    _ingest(cli, tmp_path)
    policy = cli("retention", "set", "research-7y", "--keep", "7y", "--doc-type", "research_report")
    assert policy["keep"] == "7y" and policy["doc_type"] == "research_report"
    assert [p["id"] for p in cli("retention", "list")] == ["research-7y"]
    hold = cli("holds", "place", "--matter", "M-2026-9", "--reason", "litigation", "--document", "held.md")
    assert hold["kind"] == "document" and hold["active"]

    refused = cli.invoke("delete", "held.md")
    assert refused.exit_code == 1 and "M-2026-9" in refused.output
    dry = cli("retention", "apply", "--dry-run")
    assert (dry["deleted"], dry["held"], dry["dry_run"]) == (1, 1, True)
    assert cli.invoke("show", "old.md").exit_code == 0  # a dry run deletes nothing
    plain = cli.invoke("retention", "apply")
    assert plain.exit_code == 0 and "deleted 1 of 2 documents; 1 expired but held" in plain.output
    assert cli.invoke("show", "old.md").exit_code == 1
    assert cli.invoke("show", "held.md").exit_code == 0

    assert [h["id"] for h in cli("holds", "list", "--active")] == [hold["id"]]
    released = cli("holds", "release", hold["id"], "--reason", "matter closed")
    assert released["active"] is False and cli("holds", "list", "--active") == []
    assert cli("delete", "held.md")["deleted_versions"]
    assert cli("retention", "remove", "research-7y")["removed"]["id"] == "research-7y"


def test_only_admins_and_bad_input_exits_2(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    _ingest(cli, tmp_path)
    for args in (
        ("retention", "set", "p", "--keep", "7y", "--doc-type", "x"),
        ("retention", "list"),
        ("retention", "apply"),
        ("holds", "place", "--matter", "M", "--reason", "r", "--source", "/"),
        ("holds", "list"),
        ("holds", "release", "abc"),
    ):
        refused = cli.invoke(*args, roles=READER)
        assert refused.exit_code == 1 and "admin role" in refused.output, args
    for args in (
        ("retention", "set", "p", "--keep", "forever", "--doc-type", "x"),
        ("retention", "set", "p", "--keep", "7y"),
        ("holds", "place", "--matter", "M", "--reason", "r"),
        ("holds", "place", "--matter", "M", "--reason", "r", "--where", "nonsense"),
    ):
        assert cli.invoke(*args).exit_code == 2, args
    assert cli.invoke("holds", "release", "nope").exit_code == 1
    assert cli("retention", "list") == [] and cli("holds", "list") == []


def test_four_eyes_proposals_the_maker_cannot_approve(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", STRONGROOM_FOUR_EYES="true")
    _ingest(cli, tmp_path)
    proposed = cli("retention", "set", "research-7y", "--keep", "7y", "--doc-type", "research_report", "--user", "ana")
    assert proposed["status"] == "proposed" and cli("retention", "list") == []
    mine = cli.invoke("approvals", "approve", proposed["proposal_id"], "--user", "key:ana", roles=CHECKER)
    assert mine.exit_code == 1 and "another person" in mine.output
    done = cli("approvals", "approve", proposed["proposal_id"], "--user", "bo", roles=CHECKER)
    assert done["proposal"]["status"] == "applied" and done["result"]["id"] == "research-7y"

    hold = cli("holds", "place", "--matter", "M-1", "--reason", "r", "--where", "title=held", "--user", "ana")
    release = cli("holds", "release", hold["id"], "--user", "ana")
    assert release["status"] == "proposed"
    assert cli("retention", "apply")["held"] == 1  # still held
    cli("approvals", "approve", release["proposal_id"], "--user", "bo", roles=CHECKER)
    assert cli("retention", "apply")["deleted"] == 1
