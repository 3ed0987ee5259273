from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from strongroom.cli import app
from strongroom.testing.openai_server import FakeOpenAIServer, Reply


def run(home: Path, *args: str, embedder: str = "hash", **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STRONGROOM_EMBEDDER": embedder, "STRONGROOM_HOME": str(home), **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


#: every route may be used by the group public (the CLI's default principal)
GRANTED = {"STRONGROOM_ROUTE_GROUPS": json.dumps({"*": ["public"]})}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "desk.md").write_text("# Desk note\nThe Example Bank notes pay a coupon of 4.25% semi-annually.\n")
    (docs / "q1.txt").write_text("Quarterly revenue was 1,234 million, up 5%.\nCosts were flat.\n")
    return docs


def test_ingest_search_ask_eval_documents(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "home"
    ingested = run(
        home, "ingest", str(corpus), "--acl", "rates", "--published", "2024-01-02", "--meta", "desk=rates", "--json"
    )
    assert ingested.returncode == 0, ingested.stderr
    report = json.loads(ingested.stdout)
    assert (
        report["ingested"] == 2
        and report["failed"] == 0
        and set(report["seconds"]) >= {"parse", "chunk", "embed", "index"}
    )

    denied = run(home, "search", "coupon", "--json")  # default principal: group public
    assert json.loads(denied.stdout)["hits"] == []
    allowed = json.loads(run(home, "search", "coupon", "--groups", "rates", "--json", "--filter", "desk=rates").stdout)
    assert allowed["hits"][0]["document"] == "desk.md" and allowed["hits"][0]["page"] == 1
    before = json.loads(run(home, "search", "coupon", "--groups", "rates", "--json", "--as-of", "2024-01-01").stdout)
    assert before["hits"] == []  # published 2024-01-02: not knowable on 2024-01-01

    asked = json.loads(
        run(home, "ask", "What coupon do the Example Bank notes pay?", "--groups", "rates", "--json").stdout
    )
    assert asked["found"] is True
    citation = asked["claims"][0]["citations"][0]
    assert citation["document"] == "desk.md" and "4.25%" in citation["quote"]
    assert citation["doc_type"] and citation["sensitivity"]  # classification shown in citations
    assert asked["metadata"] == {"generator": "extractive-v1", "prompt_template_version": "extractive-v1"}
    page = (corpus / "desk.md").read_text()
    assert page[citation["char_start"] : citation["char_end"]] == citation["quote"]
    nothing = json.loads(run(home, "ask", "What is the weather on Mars?", "--groups", "rates", "--json").stdout)
    assert nothing["found"] is False and nothing["claims"] == []

    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps(
            {
                "id": "1",
                "question": "coupon semi-annually",
                "evidence": [{"doc": "desk.md", "page": 1}],
                "facts": ["4.25%"],
            }
        )
        + "\n"
    )
    scores = json.loads(run(home, "eval", str(qa), "-k", "1", "--groups", "rates", "--json").stdout)
    assert scores["doc_hit_at_1"] == 1.0 and scores["fact_recall_at_1"] == 1.0 and scores["page_recall_at_1"] == 1.0
    assert scores["n"] == 1 and scores["mrr"] == 1.0 and "search_ms_p50" in scores

    assert json.loads(run(home, "documents", "--json").stdout) == []  # public may read neither
    listed = json.loads(run(home, "documents", "--groups", "rates", "--json").stdout)
    assert {d["document"] for d in listed} == {"desk.md", "q1.txt"}

    again = json.loads(run(home, "ingest", str(corpus), "--acl", "rates", "--groups", "rates", "--json").stdout)
    assert again["duplicates"] == 2 and again["ingested"] == 0
    # the same bytes by someone who may not read them, or under another ACL: refused, never a silent no-op
    outsider = run(home, "ingest", str(corpus), "--json")
    assert outsider.returncode == 1 and json.loads(outsider.stdout)["failed"] == 2
    relabel = run(home, "ingest", str(corpus), "--acl", "public", "--groups", "rates", "--json")
    assert relabel.returncode == 1 and "strongroom acl set" in relabel.stdout


def test_ask_with_a_model_route_answers_through_the_gateway(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "home"
    with FakeOpenAIServer(Reply.error(500, "scripted outage")) as server:
        assert run(home, "ingest", str(corpus), "--json").returncode == 0
        added = run(home, "models", "set-deployment", "fake-vllm", "--backend", "openai-compatible",
                    "--url", server.url, "--model", "fake-llama", "--clearance", "internal")  # fmt: skip
        routed = run(home, "models", "set-route", "chat", "-d", "fake-vllm:100", "-d", "extractive")
        assert added.returncode == 0 and routed.returncode == 0, added.stderr + routed.stderr

        server.script(Reply.stream("Quarterly revenue was 1,234 million [1]."))
        # routes are granted to groups (deny by default): nobody may use "chat" yet
        refused = run(home, "ask", "What was quarterly revenue?", "--model", "chat")
        assert refused.returncode == 1 and "no model route 'chat' that you may use" in refused.stderr
        asked = run(home, "ask", "What was quarterly revenue?", "--model", "chat", "--json", **GRANTED)
        assert asked.returncode == 0, asked.stderr
        data = json.loads(asked.stdout)
        assert data["found"] and data["generator"] == "llm" and data["answer"] == "Quarterly revenue was 1,234 million."
        meta = data["metadata"]
        assert (meta["model"], meta["deployment"], meta["route_version"]) == ("chat", "fake-vllm", "1")
        assert meta["prompt_template_version"] == "rag-cite-v1" and meta["failovers"] == "0"
        [citation] = data["claims"][0]["citations"]
        page = (corpus / "q1.txt").read_text()
        assert citation["document"] == "q1.txt" and citation["page"] == 1
        assert page[citation["char_start"] : citation["char_end"]] == citation["quote"]
        assert "Quarterly revenue was 1,234 million" in citation["quote"]
        prompt = server.requests[0]["messages"][-1]["content"]
        assert "[1] q1.txt, page 1" in prompt and prompt.endswith("Question: What was quarterly revenue?")

        # the backend is down (500s): the route falls back to the extractive deployment
        down = run(home, "ask", "What was quarterly revenue?", "--model", "chat", **GRANTED)
        assert down.returncode == 0, down.stderr
        assert "1,234 million" in down.stdout and "q1.txt p.1" in down.stdout
        assert "route chat v1 answered by extractive (failed over from fake-vllm); prompt extractive-v1" in " ".join(
            down.stdout.split()
        )
        # v2 has no extractive last resort: the whole gateway call fails and `ask` says so
        assert run(home, "models", "set-route", "chat", "-d", "fake-vllm:100").returncode == 0
        failed = json.loads(
            run(home, "ask", "What was quarterly revenue?", "--model", "chat", "--json", **GRANTED).stdout
        )
        assert failed["found"] and failed["generator"] == "extractive-v1"
        assert failed["metadata"]["fallback"] == "gateway-error" and failed["metadata"]["route_version"] == ""

    unknown = run(home, "ask", "What was quarterly revenue?", "--model", "nope", **GRANTED)
    assert unknown.returncode == 1 and "no model route 'nope' that you may use" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_published_from_bounds_search_and_ask(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "ingest", str(corpus), "--published", "2024-01-02").returncode == 0

    def hits(*args: str) -> list[dict[str, Any]]:
        result = run(home, "search", "coupon revenue", "--json", *args)
        assert result.returncode == 0, result.stderr
        return list(json.loads(result.stdout)["hits"])

    assert {h["document"] for h in hits("--published-from", "2024-01-02")} == {"desk.md", "q1.txt"}  # that day on
    assert hits("--published-from", "2024-01-03") == []
    asked = json.loads(
        run(home, "ask", "What coupon do the notes pay?", "--published-from", "2024-01-03", "--json").stdout
    )
    assert asked["found"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "--as-of", "yesterday"], "not a date"),
        (["search", "x", "--filter", "novalue"], "KEY=VALUE"),
        (["ask", "x", "--published-from", "2024-02-01", "--as-of", "2024-01-31"], "is after as_of"),
        (["search", "   "], "query is empty"),
        (["search", "x", "--groups", ","], "at least one group"),
        (["ingest", "/no/such/path"], "no such file"),
    ],
)
def test_bad_input_gets_a_clear_error(tmp_path: Path, corpus: Path, args: list[str], message: str) -> None:
    assert run(tmp_path / "home", "ingest", str(corpus)).returncode == 0
    result = run(tmp_path / "home", *args)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_bad_qa_file_names_the_line(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "1", "question": "ok"}\n{"question": 3}\n')
    result = run(tmp_path / "home", "eval", str(qa))
    assert result.returncode == 2 and "qa.jsonl:2" in result.stderr


@pytest.mark.slow
def test_real_embedder_on_a_real_filing(tmp_path: Path, sec10q: Path) -> None:
    home = tmp_path / "home"
    ingested = run(home, "ingest", str(sec10q / "docs" / "2023 Q3 AAPL.pdf"), "--json", embedder="minilm")
    assert ingested.returncode == 0, ingested.stderr
    asked = json.loads(run(home, "ask", "What were Apple's total net sales?", "--json", embedder="minilm").stdout)
    assert asked["found"]
    quotes = " ".join(c["citations"][0]["quote"] for c in asked["claims"])
    assert "81,797" in quotes  # total net sales, quarter ended July 1, 2023
    # the first claim is the cell, labelled from the page the CLI's answer read (issue 16)
    assert "Total net sales, in millions: three months ended July 1, 2023: 81,797" in asked["claims"][0]["text"]


def test_every_command_that_lists_or_changes_documents_or_keys_prints_json(tmp_path: Path, corpus: Path) -> None:
    """In-process (CliRunner): show, acl set, delete and keys print one JSON document with --json."""

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, [*args, "--home", str(tmp_path / "home")], env={"STRONGROOM_EMBEDDER": "hash"})

    def cli(*args: str) -> Any:
        done = invoke(*args)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    cli("ingest", str(corpus), "--acl", "rates", "--groups", "rates", "--json")
    shown = cli("show", "desk.md", "--groups", "rates", "--json")
    assert shown["current"]["document"] == "desk.md" and len(shown["versions"]) == 1
    version = shown["current"]["version_id"]
    page = cli("show", "desk.md", "--page", "1", "--version", version[:12], "--groups", "rates", "--json")
    assert page["version_id"] == version and "4.25%" in page["text"]
    bad = invoke("show", "desk.md", "--page", "1", "--version", "zzz", "--groups", "rates")
    assert bad.exit_code == 2 and "no version of the document matches" in bad.output
    changed = cli("acl", "set", "desk.md", "--acl", "rates,credit", "--groups", "rates", "--json")
    assert (
        changed["before"] == ["rates"] and changed["after"] == ["credit", "rates"] and changed["versions"] == [version]
    )
    key = cli("keys", "create", "--owner", "bot", "--grant", "rates", "--groups", "rates", "--json")
    assert cli("keys", "revoke", key["id"], "--json") == {"revoked": key["id"]}
    assert [k["status"] for k in cli("keys", "list", "--json")] == ["revoked"]
    deleted = cli("delete", "desk.md", "--groups", "rates", "--json")
    assert deleted == {"document_id": shown["document_id"], "deleted_versions": [version]}
    assert [d["document"] for d in cli("documents", "--groups", "rates", "--json")] == ["q1.txt"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STRONGROOM_EMBEDDER": "nope"}, "STRONGROOM_EMBEDDER"),
        ({"STRONGROOM_CLI_GROUPS": "public,research"}, "list and mapping settings are JSON"),
    ],
)
def test_bad_settings_are_a_clear_error_with_exit_2(tmp_path: Path, env: dict[str, str], message: str) -> None:
    done = CliRunner().invoke(app, ["documents", "--home", str(tmp_path)], env=env)
    assert done.exit_code == 2 and message in " ".join(done.output.split()), done.output


def test_tables_for_a_script_are_tab_separated_and_whole_on_a_terminal_a_table(tmp_path: Path, corpus: Path) -> None:
    """Piped (not a terminal): a header line and tab-separated rows, no value cut; the title on stderr."""
    home = tmp_path / "home"
    assert run(home, "ingest", str(corpus), "--acl", "rates", "--groups", "rates").returncode == 0
    piped = run(home, "verify-store", TTY_COMPATIBLE="0")
    assert piped.returncode == 0, piped.stderr
    header, *lines = piped.stdout.splitlines()
    assert header == "field\tvalue" and "verify-store" in piped.stderr
    checked = json.loads(dict(line.split("\t") for line in lines)["store"])
    assert len(checked["sha256"]) == 64 and checked["versions"] == 2  # the whole digest, as --json has it
    listed = run(home, "documents", "--groups", "rates", TTY_COMPATIBLE="0").stdout.splitlines()
    columns = listed[0].split("\t")
    rows = [dict(zip(columns, line.split("\t"), strict=True)) for line in listed[1:]]
    assert sorted(r["document"] for r in rows) == ["desk.md", "q1.txt"] and {r["acl"] for r in rows} == {"rates"}
    terminal = run(home, "documents", "--groups", "rates", TTY_COMPATIBLE="1").stdout
    assert "desk.md" in terminal and "\t" not in terminal and "━" in terminal


def test_empty_lists_say_what_to_do(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "ingest", str(corpus), "--acl", "rates", "--groups", "rates").returncode == 0
    none = run(home, "documents")  # the default principal (public) may read neither
    assert none.returncode == 0 and none.stdout.strip() == "No documents you may read."
    routes = run(home, "models", "list")
    assert routes.returncode == 0 and "no routes yet: create one with `strongroom models set-route`" in routes.stdout
    assert "(no deployments)" in routes.stdout


def test_options_are_checked_before_the_home_is_opened_or_made(tmp_path: Path) -> None:
    new = tmp_path / "new"
    spec = run(new, "models", "set-deployment", "x", "--backend", "openai-compatible")
    assert spec.returncode == 2 and "needs url and model" in spec.stderr and not new.exists()
    named = run(new, "models", "set-deployment", "bad name", "--backend", "local", "--path", "/m")
    assert named.returncode == 2 and "invalid deployment name" in named.stderr and not new.exists()
    grant = run(new, "keys", "create", "--owner", "bot", "--grant", " , ")
    assert grant.returncode == 2 and "--grant: give at least one group" in grant.stderr and not new.exists()
    missing = tmp_path / "missing"
    for args, message in [
        (["search", "x", "--filter", "bad"], "--filter takes KEY=VALUE"),
        (["ask", "x", "--filter", "bad"], "--filter takes KEY=VALUE"),
        (["acl", "set", "desk.md", "--acl", ""], "--acl: give at least one group"),
        (["audit", "verify"], "no strongroom store"),
        (["upgrade-store"], "give the PostgreSQL store with --store"),
    ]:
        done = run(missing, *args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not missing.exists()


def test_the_worker_says_it_consumes_only_once_the_bus_is_open_and_prints_its_counts(
    tmp_path: Path, corpus: Path
) -> None:
    home, shown = tmp_path / "home", f"sqlite://{tmp_path}/bus.sqlite3"
    url = f"{shown}?password=s3cret"  # (the SQLite bus takes it as part of the file name)
    bad = run(home, "worker", "--bus", "nope://user:s3cret@host", "--until-idle")
    assert bad.returncode == 2 and "unknown bus" in bad.stderr and "consuming" not in bad.stderr
    queued = run(home, "ingest", str(corpus), "--bus", url)
    assert queued.returncode == 0, queued.stderr
    assert f"queued 2 file(s) on {shown}; " in queued.stdout and "s3cret" not in queued.stdout
    done = run(home, "worker", "--bus", url, "--until-idle", "--consumer", "w1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"done": 2, "retry": 0, "dead": 0}
    assert f"worker w1 consuming {shown}\n" in done.stderr and "worker w1 stopped: 2 done" in done.stderr
    assert "s3cret" not in done.stderr


def test_document_text_and_names_are_never_rewritten_as_emoji(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "memo :warning:.md").write_text("Coupon :smile: rose to :100: basis points.")
    home = tmp_path / "home"
    assert run(home, "ingest", str(docs)).returncode == 0
    found = run(home, "search", "coupon basis points")
    assert ":smile:" in found.stdout and ":warning:" in found.stdout and "😄" not in found.stdout
    listed = run(home, "documents")
    assert ":warning:" in listed.stdout and "⚠" not in listed.stdout


#: servers, with nothing for a script to read back: serve (HTTP) and mcp (the protocol owns stdout)
WITHOUT_JSON = {("serve",), ("mcp",)}


def test_every_command_that_lists_or_changes_things_takes_json() -> None:
    """Walks the whole command tree, so a command added without --json fails here."""

    def leaves(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        for name, sub in getattr(command, "commands", {}).items():
            yield from leaves(sub, (*path, name)) if hasattr(sub, "commands") else [((*path, name), sub)]

    commands = dict(leaves(typer.main.get_command(app), ()))
    assert {("audit", "export"), ("models", "rollback"), ("keys", "revoke"), ("ask",)} <= set(commands)
    missing = sorted(p for p, c in commands.items() if "--json" not in {o for q in c.params for o in q.opts})
    assert set(missing) <= WITHOUT_JSON, missing


def test_audit_export_to_a_file_says_what_it_wrote_as_json(tmp_path: Path, corpus: Path) -> None:
    home, written = tmp_path / "home", tmp_path / "audit.jsonl"
    env = {"STRONGROOM_EMBEDDER": "hash"}
    assert CliRunner().invoke(app, ["ingest", str(corpus), "--home", str(home)], env=env).exit_code == 0
    done = CliRunner().invoke(app, ["audit", "export", "--out", str(written), "--home", str(home), "--json"], env=env)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    lines = written.read_text().splitlines()
    assert report == {"records": len(lines), "out": str(written)} and report["records"] >= 1
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))  # the whole log
    plain = CliRunner().invoke(app, ["audit", "export", "--out", str(written), "--home", str(home)], env=env)
    assert plain.exit_code == 0 and plain.stdout == "" and f"wrote {len(lines) + 1} records" in plain.stderr
