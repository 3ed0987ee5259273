"""`strongroom models ...` as a person would use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strongroom.cli.models import app
from strongroom.llm.deployments import load_deployments

runner = CliRunner()


def run(*args: str, home: Path | None = None) -> tuple[int, str]:
    argv = [*args, "--home", str(home)] if home else list(args)
    result = runner.invoke(app, argv)
    return result.exit_code, result.output


def test_set_route_show_rollback_list(tmp_path: Path) -> None:
    code, out = run("set-route", "chat", "-d", "vllm-a:90", "-d", "vllm-b:10", "-d", "extractive", home=tmp_path)
    assert code == 0 and "v1 active" in out and "vllm-a (90%)" in out and "extractive (fallback)" in out
    assert "'vllm-a' is not configured" in out  # a warning, not a failure
    assert "'extractive' is not configured" not in out
    code, out = run("set-route", "chat", "-d", "vllm-b:100", "--note", "promote b", home=tmp_path)
    assert code == 0 and "v2 active" in out
    code, out = run("rollback", "chat", home=tmp_path)
    assert code == 0 and "rolled back to v1" in out
    code, out = run("show", "chat", "--json", home=tmp_path)
    data = json.loads(out)
    assert data["active"] == 1 and [v["version"] for v in data["versions"]] == [1, 2]
    assert [h["action"] for h in data["history"]] == ["set-route", "set-route", "rollback"]
    code, out = run("list", home=tmp_path)
    assert code == 0 and "chat" in out and "v1" in out


def test_home_defaults_to_strongroom_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_HOME", str(tmp_path))
    assert run("set-route", "chat", "-d", "a:1")[0] == 0
    assert (tmp_path / "models" / "routes.json").exists()


def test_errors_exit_non_zero_with_a_message(tmp_path: Path) -> None:
    code, out = run("rollback", "nope", home=tmp_path)
    assert code == 2 and "no route named 'nope'" in out  # bad input: 2, as every command
    code, out = run("show", "nope", home=tmp_path)
    assert code == 2
    code, out = run("set-route", "chat", "-d", "a:-3", home=tmp_path)
    assert code == 2 and "invalid route" in out


def test_set_deployment_stores_the_key_variable_never_a_key(tmp_path: Path) -> None:
    code, out = run(
        "set-deployment", "vllm-a", "--backend", "openai-compatible", "--url", "http://gpu1:8000/v1",
        "--model", "llama-3.1-8b", "--api-key-env", "VLLM_A_KEY", "--max-concurrency", "8", home=tmp_path,
    )  # fmt: skip
    assert code == 0, out
    spec = load_deployments(tmp_path)["vllm-a"]
    assert spec.api_key_env == "VLLM_A_KEY" and spec.max_concurrency == 8
    code, out = run("list", "--json", home=tmp_path)
    assert json.loads(out)["deployments"]["vllm-a"]["url"] == "http://gpu1:8000/v1"
    code, out = run("set-deployment", "x", "--backend", "openai-compatible", home=tmp_path)
    assert code == 2 and "needs url and model" in out
    code, out = run("set-deployment", "x", "--backend", "magic", home=tmp_path)
    assert code == 2


def test_route_and_deployment_changes_print_what_was_saved_as_json(tmp_path: Path) -> None:
    code, out = run("set-deployment", "vllm-a", "--backend", "openai-compatible", "--url", "http://gpu1:8000/v1",
                    "--model", "llama-3.1-8b", "--api-key-env", "VLLM_A_KEY", "--json", home=tmp_path)  # fmt: skip
    assert code == 0 and json.loads(out) == {
        "name": "vllm-a", "backend": "openai-compatible", "url": "http://gpu1:8000/v1", "model": "llama-3.1-8b",
        "api_key_env": "VLLM_A_KEY",
    }  # fmt: skip
    code, out = run("set-route", "chat", "-d", "vllm-a:90", "-d", "extractive", "--json", home=tmp_path)
    first = json.loads(out)
    assert code == 0 and (first["name"], first["version"]) == ("chat", 1)
    assert first["targets"] == [{"deployment": "vllm-a", "weight": 90.0}, {"deployment": "extractive", "weight": 0.0}]
    code, out = run("set-route", "chat", "-d", "extractive", "--note", "no GPU", "--json", home=tmp_path)
    assert code == 0 and (json.loads(out)["version"], json.loads(out)["note"]) == (2, "no GPU")
    code, out = run("rollback", "chat", "--json", home=tmp_path)
    assert code == 0 and json.loads(out) == first
