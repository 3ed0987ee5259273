"""Attack: newcomer papercuts (issue 15, "Why"), on the real ``strongroom`` command. A ``--home``
that is a file is a clear error, not a traceback; a mistyped ``--home`` for a read command is an
error that creates nothing (not an empty store that answers "no passage", exit 0); an empty
folder to ingest exits 1 with a message; ``--user``/``--groups`` are honoured; commands that need
no model do not load it; ``--version`` works; the home is private; ``--help`` starts with the
everyday commands.

Every command runs in its own process, two at a time (each is mostly interpreter start-up).
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.attack.conftest import audit_export, cli, cli_many

Done = subprocess.CompletedProcess[str]

#: read commands, and commands an operator reaches for first (keys, audit)
ON_A_FILE = {
    "search": ("search", "coupon"),
    "documents": ("documents",),
    "ingest": ("ingest", "DOCS"),
    "keys list": ("keys", "list"),
    "audit verify": ("audit", "verify"),
    "audit export": ("audit", "export"),
}
MISTYPED = {
    "search": ("search", "coupon"),
    "ask": ("ask", "What coupon do the notes pay?"),
    "documents": ("documents",),
    "audit verify": ("audit", "verify"),
}
NO_MODEL = {"documents": ("documents",), "keys list": ("keys", "list")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("newcomer")
    docs, empty, broken = root / "docs", root / "empty", root / "broken"
    for folder in (docs, empty, broken):
        folder.mkdir()
    (docs / "rates.txt").write_text("Rates note. The Example Bank notes pay a coupon of 4.25% semi-annually.\n")
    (broken / "scan.pdf").write_text("not a PDF at all")
    a_file = root / "home.txt"
    a_file.write_text("I am not a folder\n")
    home, model_home = root / "home", root / "model-home"

    def on_file(args: tuple[str, ...]) -> Done:
        return cli(None, *(str(docs) if a == "DOCS" else a for a in args), "--home", str(a_file))

    def mistyped(name: str, args: tuple[str, ...]) -> Done:
        return cli(None, *args, "--home", str(root / f"hmoe-{name.replace(' ', '-')}"))

    first = cli_many({
        **{f"file {name}": partial(on_file, args) for name, args in ON_A_FILE.items()},
        **{f"mistyped {name}": partial(mistyped, name, args) for name, args in MISTYPED.items()},
        "empty folder": lambda: cli(home.with_name("empty-home"), "ingest", str(empty)),
        "first ingest": lambda: cli(home, "ingest", str(docs), "--acl", "rates", "--groups", "rates"),
        # a home made with the real default embedder, without embedding anything (the file is refused)
        "model home": lambda: cli(model_home, "ingest", str(broken), embedder="minilm"),
        "version": lambda: cli(None, "--version"),
        "help": lambda: cli(None, "--help"),
    })  # fmt: skip
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [home, *home.rglob("*")]}
    importtime = ("-X", "importtime")
    second = cli_many({
        "search as": lambda: cli(home, "search", "coupon", "--user", "xavier", "--groups", "rates", "--json"),
        **{f"no model {name}": partial(cli, model_home, *args, embedder="minilm", python_flags=importtime)
           for name, args in NO_MODEL.items()},
    })  # fmt: skip
    return {**first, **second, "root": root, "home": home, "modes": modes, "records": audit_export(home)}


def _says(done: Done) -> str:
    return " ".join((done.stdout + done.stderr).split())


@pytest.mark.parametrize("command", list(ON_A_FILE))
def test_a_home_that_is_a_file_is_a_clear_error_not_a_traceback(runs: dict[str, Any], command: str) -> None:
    done: Done = runs[f"file {command}"]
    assert done.returncode != 0, _says(done)
    assert "Traceback" not in done.stderr and "Error:" not in done.stderr.replace("error:", ""), done.stderr[-1500:]
    assert "home.txt" in _says(done) and "not a folder" in _says(done)


@pytest.mark.parametrize("command", list(MISTYPED))
def test_a_mistyped_home_for_a_read_command_errors_and_creates_nothing(runs: dict[str, Any], command: str) -> None:
    done: Done = runs[f"mistyped {command}"]
    assert done.returncode != 0, _says(done)  # not "No passage answers this question", nor "intact: 0 records"
    assert "hmoe-" in _says(done) and "Traceback" not in done.stderr
    assert not (runs["root"] / f"hmoe-{command.replace(' ', '-')}").exists(), "a mistyped --home was created"


def test_ingesting_an_empty_folder_exits_1_with_a_message(runs: dict[str, Any]) -> None:
    done: Done = runs["empty folder"]
    assert done.returncode == 1, _says(done)
    assert "nothing to ingest" in _says(done)


def test_search_honours_user_and_groups_and_the_audit_record_names_them(runs: dict[str, Any]) -> None:
    done: Done = runs["search as"]
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hits"]  # the document readable by the group "rates" only
    [record] = [r for r in runs["records"] if r["action"] == "search"]
    assert record["principal"] == "xavier" and record["groups"] == ["rates"]


def _imported(done: Done) -> set[str]:
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:"):
            names.add(line.rsplit("|", 1)[-1].strip())
    return names


@pytest.mark.parametrize("command", list(NO_MODEL))
def test_commands_that_need_no_model_do_not_load_it(runs: dict[str, Any], command: str) -> None:
    assert runs["model home"].returncode == 1  # the broken file was refused; the store exists
    done: Done = runs[f"no model {command}"]
    assert done.returncode == 0, done.stderr[-1500:]
    imported = _imported(done)
    assert imported, "python -X importtime printed nothing"
    heavy = {n for n in imported if n.split(".")[0] in ("torch", "sentence_transformers", "transformers")}
    assert heavy == set()


def test_version_prints_the_version(runs: dict[str, Any]) -> None:
    done: Done = runs["version"]
    assert done.returncode == 0 and re.fullmatch(r"strongroom \d+\.\d+\S*\n", done.stdout), _says(done)


def test_the_home_folder_and_catalog_are_private_after_a_first_ingest(runs: dict[str, Any]) -> None:
    assert runs["first ingest"].returncode == 0, runs["first ingest"].stderr
    home: Path = runs["home"]
    modes: dict[Path, int] = runs["modes"]
    assert modes[home] == 0o700 and modes[home / "catalog.sqlite3"] == 0o600
    shared = {str(p.relative_to(home)): oct(m) for p, m in modes.items() if m & 0o077}
    assert shared == {}  # nothing under the home is readable by group or others


def test_help_lists_the_everyday_commands_before_admin_and_operations(runs: dict[str, Any]) -> None:
    done: Done = runs["help"]
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^│ ([a-z][a-z-]*) ", done.stdout, flags=re.MULTILINE)
    everyday = ["ingest", "search", "ask", "documents"]
    operator = ["acl", "delete", "keys", "audit", "serve", "migrate"]
    assert set(everyday + operator) <= set(listed), listed
    assert max(listed.index(c) for c in everyday) < min(listed.index(c) for c in operator)
    assert listed[:4] == everyday
