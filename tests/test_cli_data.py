"""``strongroom data load | list | query``: JSON that parses, tables, and exit statuses (2 for
bad input, 1 for a refusal or a failed operation), as a real process and through typer's runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from strongroom.cli import app

PRICES = "ticker,day,close\nZQXW,2024-01-02,101.25\nZQXW,2024-01-03,102.5\nZQXW,2024-01-04,187.4411\n"
POSITIONS = "book,day,notional\nrates,2024-01-02,9917.03\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "prices.csv").write_text(PRICES)
    (tmp_path / "positions.csv").write_text(POSITIONS)
    return tmp_path / "home"


def cli(home: Path, *args: str, **env: str) -> Result:
    environ = {"STRONGROOM_HOME": str(home), "STRONGROOM_EMBEDDER": "hash", **env}
    return CliRunner().invoke(app, ["data", *args], env=environ)


def load(home: Path, name: str, acl: str, *more: str, **env: str) -> Result:
    return cli(home, "load", str(home.parent / f"{name}.csv"), "--dataset", name, "--acl", acl,
               "--valid-time-column", "day", *more, **env)  # fmt: skip


def test_load_list_query_as_a_real_process(home: Path) -> None:
    env = {**os.environ, "STRONGROOM_HOME": str(home), "STRONGROOM_EMBEDDER": "hash"}
    csv = str(home.parent / "prices.csv")
    loaded = subprocess.run(
        [sys.executable, "-m", "strongroom.cli", "data", "load", csv, "--dataset", "prices", "--acl", "research",
         "--valid-time-column", "day", "--key", "ticker", "--groups", "research", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    version = json.loads(loaded.stdout)
    assert (version["dataset"], version["version"], version["rows"], version["acl"]) == ("prices", 1, 3, ["research"])
    assert version["key_columns"] == ["ticker"] and len(version["sha256"]) == 64
    sql = "SELECT day, close FROM prices ORDER BY day"
    queried = subprocess.run(
        [sys.executable, "-m", "strongroom.cli", "data", "query", sql, "--as-of", "2024-01-03", "--groups", "research",
         "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert queried.returncode == 0, queried.stderr
    result = json.loads(queried.stdout)
    assert result["rows"] == [["2024-01-02", 101.25], ["2024-01-03", 102.5]]
    assert result["datasets"][0]["name"] == "prices" and result["as_of"] == "2024-01-03T23:59:59.999999+00:00"
    refused = subprocess.run(
        [sys.executable, "-m", "strongroom.cli", "data", "query", sql, "--groups", "public"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 2 and "error:" in refused.stderr and refused.stdout == ""


def test_list_and_query_print_json_and_tables(home: Path) -> None:
    assert load(home, "prices", "research", "--groups", "research").exit_code == 0
    assert load(home, "positions", "risk", "--groups", "risk").exit_code == 0
    listed = json.loads(cli(home, "list", "--groups", "research", "--json").stdout)
    assert [d["name"] for d in listed] == ["prices"] and listed[0]["versions"][0]["rows"] == 3
    assert json.loads(cli(home, "list", "--json").stdout) == []  # the default principal: group public
    assert "No datasets you may read." in cli(home, "list").stdout
    table = cli(home, "list", "--groups", "research,risk")
    assert table.exit_code == 0 and "positions" in table.stdout and "prices" in table.stdout

    shown = cli(home, "query", "SELECT ticker, close, close FROM prices ORDER BY day", "--groups", "research")
    assert shown.exit_code == 0 and "187.4411" in shown.stdout and "close (3)" in shown.stdout
    cut = json.loads(
        cli(home, "query", "SELECT * FROM prices", "--max-rows", "2", "--groups", "research", "--json").stdout
    )
    assert cut["row_count"] == 2 and cut["truncated"] is True


def test_exit_statuses(home: Path) -> None:
    assert load(home, "positions", "risk", "--groups", "risk").exit_code == 0
    bad_input = [
        load(home, "prices", ""),  # no group
        load(home, "missing", "research"),  # no such file
        load(home, "prices", "research", "--mode", "upsert"),
        cli(
            home,
            "load",
            str(home.parent / "prices.csv"),
            "--dataset",
            "Prices!",
            "--acl",
            "x",
            "--valid-time-column",
            "d",
        ),
        cli(home, "query", "SELECT * FROM positions", "--groups", "research"),  # not yours: as if absent
        cli(home, "query", "SELECT * FROM nosuchdata", "--groups", "research"),
        cli(home, "query", "DELETE FROM positions", "--groups", "risk"),
        cli(home, "query", "SELECT 1", "--max-rows", "0"),
        cli(home, "query", "SELECT 1", "--as-of", "soon"),
    ]
    assert [r.exit_code for r in bad_input] == [2] * len(bad_input), [r.output for r in bad_input]
    refused = [
        load(home, "positions", "research", "--groups", "research"),  # may not read it: may not load into it
        load(home, "positions", "risk,research", "--groups", "risk", STRONGROOM_CLI_ROLES='["reader", "ingester"]'),
        load(home, "prices", "research", STRONGROOM_CLI_ROLES='["reader"]'),
        cli(home, "query", "SELECT 1", STRONGROOM_CLI_ROLES='["ingester"]'),
    ]
    assert [r.exit_code for r in refused] == [1] * len(refused), [r.output for r in refused]
    assert "admin" in refused[1].output or "readable by risk" in refused[1].output
    assert cli(home, "list", "--groups", "risk", "--json").exit_code == 0
    assert cli(home.parent / "nohome", "list").exit_code == 2  # a mistyped --home holds no store
