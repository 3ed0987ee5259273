"""The service's CLI pieces mount on a Typer app the way strongroom.cli mounts them."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from strongroom.cli.serve import audit_app, keys_app, serve_command


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("serve")(serve_command)
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
    return app


def test_serve_keys_and_audit_mount_and_document_themselves() -> None:
    runner = CliRunner()
    serve = runner.invoke(_app(), ["serve", "--help"])
    assert serve.exit_code == 0 and "--dev" in serve.output and "--port" in serve.output
    for group, commands in (("keys", ("create", "list", "revoke")), ("audit", ("verify", "export"))):
        result = runner.invoke(_app(), [group, "--help"])
        assert result.exit_code == 0
        assert all(c in result.output for c in commands)
