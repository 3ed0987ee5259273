"""A seeded secret in each place the CLI takes one ends up nowhere under the home folder.

Every secret form (tests/understand/secret_forms.py) is seeded in a document's body, in a
file name, in ``--meta`` values and in the queries of ``search`` and ``ask``; the commands
run as real processes with DEBUG logging into a file under the home folder, the audit log is
exported there too, and then every file under the home folder (catalog and WAL, index
snapshots, anchor, keys, the log, the export) is read as bytes and searched for every
spelling of every secret. The HTTP entry point is attacked the same way in
tests/attack/test_redaction.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.understand.secret_forms import SecretForm, forms, spellings


def _run(home: Path, log: Path, *args: str, module: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STRONGROOM_EMBEDDER": "hash", "STRONGROOM_HOME": str(home), "STRONGROOM_LOG_LEVEL": "DEBUG"}
    with log.open("a") as stderr:
        return subprocess.run(
            [sys.executable, *(["-m", "strongroom.cli"] if module else []), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=300,
        )


def test_no_seeded_secret_reaches_any_file_under_the_home_folder(tmp_path: Path) -> None:
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()
    home.mkdir(mode=0o700)
    log = home / "cli.log"
    body = forms("body")
    (docs / "handover.txt").write_text("Operations handover.\n\n" + "\n\n".join(f.text for f in body) + "\n")
    named = next(f for f in forms("name") if f.name == "password_colon")
    (docs / f"{named.text}.txt").write_text("Operations note.\n")
    meta = next(f for f in forms("meta") if f.name == "db_password")
    ingested = _run(home, log, "ingest", str(docs), "--meta", meta.text, "--json")
    assert ingested.returncode == 0, ingested.stdout
    assert json.loads(ingested.stdout)["ingested"] == 2

    asked = forms("query")
    queries = [f"handover {form.one_line()}" for form in asked]
    # every query through the CLI's own commands, in one process (a process per query costs seconds)
    script = (
        "import json, logging, sys\n"
        "from typer.testing import CliRunner\n"
        "from strongroom.cli import app\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
        "runner = CliRunner()\n"
        "for q in json.loads(sys.argv[1]):\n"
        "    for command in ('search', 'ask'):\n"
        "        result = runner.invoke(app, [command, q, '--json'])\n"
        "        assert result.exit_code == 0, result.exit_code\n"
    )
    queried = _run(home, log, "-c", script, json.dumps(queries), module=False)
    assert queried.returncode == 0
    assert not _leaks(_run(home, log, "search", "Operations handover", "--json").stdout, body)
    exported = _run(home, log, "audit", "export", "--out", str(home / "audit-export.jsonl"))
    assert exported.returncode == 0
    records = [json.loads(line) for line in (home / "audit-export.jsonl").read_text().splitlines()]
    assert sum(r["action"] == "search" for r in records) == len(asked) + 1
    assert sum(r["action"] == "ask" for r in records) == len(asked)
    assert all(r["query_hmac"] for r in records if r["action"] in ("search", "ask"))

    seeded = [*body, named, meta, *asked]
    found = []
    for path in home.rglob("*"):
        if path.is_file():
            found += [
                (leak, str(path.relative_to(home))) for leak in _leaks(path.read_bytes().decode("latin-1"), seeded)
            ]
    assert found == []
    assert log.stat().st_size > 0  # the commands did log (and the log was searched)


def _leaks(text: str, seeded: list[SecretForm]) -> list[str]:
    lowered = text.lower()
    return [
        f"{form.name}: {spelling[:12]}..."
        for form in seeded
        for secret in form.secrets
        for spelling in spellings(secret)
        if spelling in text or spelling.lower() in lowered
    ]
