"""``strongroom registry`` and ``strongroom eval --record``: register, evaluate and attach in one
step, propose stage moves that another person approves (four-eyes off: the registry needs
approval anyway), a regressed evaluation refused at the gate, ``which --at`` and ``resolve``,
and bad input refused with exit status 2 (nothing kept)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from strongroom.cli import app

MAKER = {"STRONGROOM_CLI_ROLES": '["reader","ingester","admin"]'}
CHECKER = {"STRONGROOM_CLI_ROLES": '["reader","approver"]'}
READER = {"STRONGROOM_CLI_ROLES": '["reader"]'}


def test_register_evaluate_promote_and_ask_which_model(tmp_path: Path) -> None:
    (tmp_path / "desk.md").write_text("# Desk\n\nThe desk expects two cuts this year; net interest income 4,210.\n")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q", "question": "How many cuts?", "evidence": [{"doc": "desk.md"}]}) + "\n")
    card = tmp_path / "card.md"
    card.write_text("# chat v1\nIntended use: research Q&A only.\n")

    def invoke(*args: str, roles: dict[str, str] = MAKER, user: str = "ana") -> Result:
        env = {"STRONGROOM_EMBEDDER": "hash", **roles}
        return CliRunner().invoke(app, [*args, "--user", user, "--home", str(tmp_path / "home")], env=env)

    def cli(*args: str, roles: dict[str, str] = MAKER, user: str = "ana") -> Any:
        done = invoke(*args, "--json", roles=roles, user=user)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    cli("ingest", str(tmp_path / "desk.md"), "--acl", "rates", "--groups", "rates", "--published", "2024-01-02")
    registered = cli("registry", "register", "chat@1", "--kind", "chat", "--owner", "model-risk", "--risk-tier",
                     "high", "--binding", "vllm-a", "--parent", "llama-3.1-8b", "--card", str(card))  # fmt: skip
    assert registered["stage"] == "candidate" and registered["card"].startswith("# chat v1")
    denied = invoke("registry", "register", "chat@9", "--kind", "chat", "--owner", "x", "--risk-tier", "low",
                    roles=READER)  # fmt: skip
    assert denied.exit_code == 1 and "admin" in denied.output

    result = cli("eval", str(qa), "--groups", "rates", "--record", "chat@1")
    assert result["recorded"]["model"] == "chat@1" and result["doc_recall_at_5"] == 1.0
    shown = cli("registry", "show", "chat@1", roles=CHECKER, user="bo")
    assert [e["audit_seq"] for e in shown["evidence"]] == [result["recorded"]["audit_seq"]]

    for stage in ("validated", "production"):
        proposed = cli("registry", "promote", "chat@1", "--to", stage, "--reason", "MRM review")
        pid = proposed["proposal"]["id"]
        own = invoke("approvals", "approve", pid, roles=CHECKER, user="key:ana")  # the maker, by another name
        assert own.exit_code == 1 and "another person" in own.output
        done = cli("approvals", "approve", pid, roles=CHECKER, user="bo")
        assert done["proposal"]["status"] == "applied" and done["result"]["entry"]["stage"] == stage
    assert [e["ref"] for e in cli("registry", "which", roles=CHECKER, user="bo")] == ["chat@1"]
    assert cli("registry", "which", "--at", "2020-01-01", roles=CHECKER, user="bo") == []

    cli("registry", "register", "chat@2", "--kind", "chat", "--owner", "model-risk", "--risk-tier", "high")
    worse = cli("eval", str(qa), "--groups", "rates", "--as-of", "2023-01-01", "--record", "chat@2")
    assert worse["doc_recall_at_5"] == 0.0
    pid = cli("registry", "promote", "chat@2", "--to", "validated")["proposal"]["id"]
    cli("approvals", "approve", pid, roles=CHECKER, user="bo")
    refused = invoke("registry", "promote", "chat@2", "--to", "production")
    assert refused.exit_code == 1 and "release gate refuses chat@2" in refused.output
    assert [e["ref"] for e in cli("registry", "list", "--name", "chat")] == ["chat@1", "chat@2"]
    assert cli("registry", "show", "chat@1")["stage"] == "production"

    assert cli("ask", "How many cuts?", "--groups", "rates")["found"]
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
