"""What every ``strongroom`` command shares: the consoles, the common options, settings
that fail with a clear message, and the one way to stop with an error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from strongroom.config import Settings
from strongroom.errors import StrongroomError
from strongroom.runtime import Runtime, open_runtime

__all__ = ["HomeOpt", "JsonOpt", "err", "fail", "open_runtime_for", "out", "settings_for"]

out = Console()
err = Console(stderr=True)

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data folder (default: $STRONGROOM_HOME, else ~/.strongroom).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error; raise what this returns to exit with ``code``."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def settings_for(home: Path | None) -> Settings:
    """The settings (``--home`` over the environment); a bad value is a clear error."""
    try:
        return Settings(home=home) if home else Settings()
    except ValidationError as exc:
        problems = "; ".join(f"STRONGROOM_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise fail(f"bad configuration: {problems}") from exc


def open_runtime_for(home: Path | None) -> Runtime:
    """The store and embedder the settings name; a store that cannot open is a clear error."""
    try:
        return open_runtime(settings_for(home))
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
