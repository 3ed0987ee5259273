"""``strongroom registry`` and ``strongroom eval --record``: register, evaluate and attach in one
step, propose stage moves that another person approves (four-eyes off: the registry needs
approval anyway), a run of another embedder refused as evidence, a retrieval run refused for a
chat model, a real regression (a worse embedder's run) refused at the gate, ``which --at`` and ``resolve``,
and bad input refused with exit status 2 (nothing kept)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from strongroom.cli import app
from tests.service.test_registry import switched_home

MAKER = {"STRONGROOM_CLI_ROLES": '["reader","ingester","admin"]'}
CHECKER = {"STRONGROOM_CLI_ROLES": '["reader","approver"]'}
READER = {"STRONGROOM_CLI_ROLES": '["reader"]'}


def test_register_evaluate_promote_and_ask_which_model(tmp_path: Path) -> None:
    """In a home re-embedded from hash-1 to hash-64 (:func:`switched_home`): the old embedder's
    run, in this home's log, is a real regression against production's."""
    home = switched_home(tmp_path)
    card = tmp_path / "card.md"
    card.write_text("# emb v1\nIntended use: research retrieval only.\n")

    def invoke(*args: str, roles: dict[str, str] = MAKER, user: str = "ana") -> Result:
        env = {"STRONGROOM_EMBEDDER": "hash", **roles}
        return CliRunner().invoke(app, [*args, "--user", user, "--home", str(home.settings.home)], env=env)

    def cli(*args: str, roles: dict[str, str] = MAKER, user: str = "ana") -> Any:
        done = invoke(*args, "--json", roles=roles, user=user)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    registered = cli("registry", "register", "emb@1", "--kind", "embedder", "--owner", "model-risk", "--risk-tier",
                     "high", "--binding", "hash-64", "--parent", "hash", "--card", str(card))  # fmt: skip
    assert registered["stage"] == "candidate" and registered["card"].startswith("# emb v1")
    denied = invoke("registry", "register", "emb@9", "--kind", "embedder", "--owner", "x", "--risk-tier", "low",
                    roles=READER)  # fmt: skip
    assert denied.exit_code == 1 and "admin" in denied.output

    groups = ("--groups", "public,research")  # the groups the old run was made with
    result = cli("eval", str(home.qa), "-k", "1", *groups, "--record", "emb@1")
    assert result["recorded"]["model"] == "emb@1" and result["doc_recall_at_1"] == 1.0
    shown = cli("registry", "show", "emb@1", roles=CHECKER, user="bo")
    assert [e["audit_seq"] for e in shown["evidence"]] == [result["recorded"]["audit_seq"]]
    assert shown["evidence"][0]["embedder"] == "hash-64"

    for stage in ("validated", "production"):
        proposed = cli("registry", "promote", "emb@1", "--to", stage, "--reason", "MRM review")
        pid = proposed["proposal"]["id"]
        own = invoke("approvals", "approve", pid, roles=CHECKER, user="key:ana")  # the maker, by another name
        assert own.exit_code == 1 and "another person" in own.output
        done = cli("approvals", "approve", pid, roles=CHECKER, user="bo")
        assert done["proposal"]["status"] == "applied" and done["result"]["entry"]["stage"] == stage
    assert [e["ref"] for e in cli("registry", "which", roles=CHECKER, user="bo")] == ["emb@1"]
    assert cli("registry", "which", "--at", "2020-01-01", roles=CHECKER, user="bo") == []

    cli("registry", "register", "emb@0", "--kind", "embedder", "--owner", "model-risk", "--risk-tier", "high",
        "--binding", "hash-1")  # fmt: skip
    wrong = invoke("registry", "evidence", "emb@0", "--seq", str(result["recorded"]["audit_seq"]))
    assert wrong.exit_code != 0 and "evaluated the embedder hash-64, not emb@0" in wrong.output
    cli("registry", "evidence", "emb@0", "--seq", str(home.old_run))
    pid = cli("registry", "promote", "emb@0", "--to", "validated")["proposal"]["id"]
    cli("approvals", "approve", pid, roles=CHECKER, user="bo")
    refused = invoke("registry", "promote", "emb@0", "--to", "production")
    assert refused.exit_code == 1 and "release gate refuses emb@0" in refused.output
    assert "regressed: 0.25" in refused.output
    assert [e["ref"] for e in cli("registry", "list", "--name", "emb")] == ["emb@1", "emb@0"]
    assert cli("registry", "show", "emb@1")["stage"] == "production"

    cli("registry", "register", "chat@1", "--kind", "chat", "--owner", "model-risk", "--risk-tier", "high",
        "--binding", "vllm-a")  # fmt: skip
    chat = invoke("eval", str(home.qa), *groups, "--record", "chat@1")
    assert chat.exit_code != 0 and "measures the embedder, not the chat model" in chat.output
    assert cli("registry", "show", "chat@1")["evidence"] == []

    assert cli("ask", "What about rates?", *groups)["found"]
    records = [json.loads(line) for line in invoke("audit", "export").stdout.splitlines() if line.strip()]
    ask_seq = max(r["seq"] for r in records if r["action"] == "ask")
    resolved = cli("registry", "resolve", str(ask_seq))
    assert resolved["seq"] == ask_seq and "generator" in resolved and "store_embedder" in resolved


def test_bad_input_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    (tmp_path / "desk.md").write_text("# Desk\n\nRates.\n")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q", "question": "Rates?", "evidence": [{"doc": "desk.md"}]}) + "\n")

    def invoke(*args: str) -> Result:
        env = {"STRONGROOM_EMBEDDER": "hash", **MAKER}
        return CliRunner().invoke(app, [*args, "--user", "ana", "--home", str(tmp_path / "home")], env=env)

    assert invoke("ingest", str(tmp_path / "desk.md"), "--acl", "rates", "--groups", "rates").exit_code == 0
    for args in (
        ("registry", "register", "no-version", "--kind", "chat", "--owner", "x", "--risk-tier", "low"),
        ("registry", "register", "m@1", "--kind", "oracle", "--owner", "x", "--risk-tier", "low"),
        ("registry", "register", "m@1", "--kind", "chat", "--owner", "x", "--risk-tier", "extreme"),
        ("registry", "register", "m@1", "--kind", "chat", "--owner", "x", "--risk-tier", "low", "--card",
         str(tmp_path / "missing.md")),
        ("eval", str(qa), "--groups", "rates", "--record", "not a ref"),
        ("registry", "which", "--at", "yesterday"),
        ("registry", "promote", "m@1", "--to", "live"),
    ):  # fmt: skip
        done = invoke(*args)
        assert done.exit_code == 2, (args, done.output)
    missing = invoke("eval", str(qa), "--groups", "rates", "--record", "ghost@1")
    assert missing.exit_code == 1 and "no model 'ghost@1'" in missing.output
    listed = invoke("registry", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    evals = [line for line in invoke("audit", "export").stdout.splitlines() if json.loads(line)["action"] == "eval"]
    assert evals == []  # the refused --record ran no evaluation
