"""``strongroom approvals`` with four-eyes on (STRONGROOM_FOUR_EYES): ``acl set`` and ``keys
create`` print a proposal, the maker cannot approve it under another --user spelling of the
same key owner, an approver (STRONGROOM_CLI_ROLES) can, break glass needs --reason and is
listed by ``approvals review`` until reviewed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from strongroom.cli import app

MAKER = {"STRONGROOM_CLI_ROLES": '["reader","ingester","admin"]'}
CHECKER = {"STRONGROOM_CLI_ROLES": '["reader","approver"]'}


def test_acl_set_and_keys_create_go_through_approvals(tmp_path: Path) -> None:
    (tmp_path / "desk.md").write_text("# Desk\n\nThe desk sees rates at 4.25%.\n")

    def invoke(*args: str, roles: dict[str, str] = MAKER) -> Result:
        env = {"STRONGROOM_EMBEDDER": "hash", "STRONGROOM_FOUR_EYES": "true", **roles}
        return CliRunner().invoke(app, [*args, "--home", str(tmp_path / "home")], env=env)

    def cli(*args: str, roles: dict[str, str] = MAKER) -> Any:
        done = invoke(*args, roles=roles)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    cli("ingest", str(tmp_path / "desk.md"), "--acl", "rates", "--groups", "rates", "--user", "ana", "--json")
    proposed = cli("acl", "set", "desk.md", "--acl", "rates,credit", "--groups", "rates", "--user", "ana", "--json")
    assert proposed["status"] == "proposed"
    pid = proposed["proposal_id"]
    shown = cli("show", "desk.md", "--groups", "rates", "--json")
    assert shown["current"]["acl"] == ["rates"]  # not yet
    mine = invoke("approvals", "approve", pid, "--user", "key:ana", roles=CHECKER)
    assert mine.exit_code == 1 and "another person" in mine.output
    listed = cli("approvals", "list", "--status", "proposed", "--user", "bo", "--json", roles=CHECKER)
    assert [p["id"] for p in listed] == [pid] and listed[0]["maker"] == "ana"
    done = cli("approvals", "approve", pid, "--user", "bo", "--json", roles=CHECKER)
    assert done["proposal"]["status"] == "applied" and done["change"]["after"] == ["credit", "rates"]
    assert cli("show", "desk.md", "--groups", "rates", "--json")["current"]["acl"] == ["credit", "rates"]
    assert invoke("approvals", "list", "--status", "nonsense", "--user", "bo", roles=CHECKER).exit_code == 2

    key = cli("keys", "create", "--owner", "svc", "--grant", "rates", "--groups", "rates", "--user", "ana", "--json")
    assert key["status"] == "proposed"
    made = cli("approvals", "approve", key["proposal_id"], "--user", "bo", "--json", roles=CHECKER)
    assert made["key"]["owner"] == "svc" and made["key"]["key"].startswith("sr")

    bare = invoke("approvals", "break-glass", "acl.set", "--document", "desk.md", "--acl", "rates",
                  "--groups", "rates", "--user", "ana")  # fmt: skip
    assert bare.exit_code == 2 and "needs a reason" in bare.output
    glass = cli("approvals", "break-glass", "acl.set", "--document", "desk.md", "--acl", "rates", "--groups",
                "rates", "--user", "ana", "--reason", "incident 42", "--json")  # fmt: skip
    assert glass["proposal"]["break_glass"] is True and glass["proposal"]["status"] == "break-glass"
    assert cli("show", "desk.md", "--groups", "rates", "--json")["current"]["acl"] == ["rates"]
    todo = cli("approvals", "review", "--user", "bo", "--json", roles=CHECKER)
    assert [p["id"] for p in todo] == [glass["proposal"]["id"]]
    cli("approvals", "review", glass["proposal"]["id"], "--user", "bo", "--json", roles=CHECKER)
    assert cli("approvals", "review", "--user", "bo", "--json", roles=CHECKER) == []


def test_model_route_changes_print_a_proposal_and_apply_on_approval(tmp_path: Path) -> None:
    def cli(*args: str, roles: dict[str, str] = MAKER) -> Any:
        env = {"STRONGROOM_EMBEDDER": "hash", "STRONGROOM_FOUR_EYES": "true", **roles}
        done = CliRunner().invoke(app, [*args, "--home", str(tmp_path / "home"), "--json"], env=env)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    proposed = cli("models", "set-route", "chat", "--deployment", "extractive", "--user", "ana")
    assert proposed["status"] == "proposed"
    assert cli("models", "list")["routes"] == []
    done = cli("approvals", "approve", proposed["proposal_id"], "--user", "bo", roles=CHECKER)
    assert done["result"]["name"] == "chat" and done["result"]["version"] == 1
    assert [r["name"] for r in cli("models", "list")["routes"]] == ["chat"]
