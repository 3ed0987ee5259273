"""What every ``strongroom`` command shares: the consoles, the common options, settings
that fail with a clear message, the platform (the application layer) and the one way to
stop with an error."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from strongroom.config import Settings, load_settings
from strongroom.errors import ConfigError, QueryError, StrongroomError
from strongroom.service import Platform
from strongroom.service.requests import parse_groups
from strongroom.types import Principal

__all__ = [
    "AsOfOpt",
    "DocTypeOpt",
    "GroupsOpt",
    "HomeOpt",
    "JsonOpt",
    "KnownAtOpt",
    "UserOpt",
    "emit",
    "err",
    "exit_code",
    "exits_on_error",
    "fail",
    "out",
    "platform_session",
    "say",
    "settings_for",
]

# Lines are never wrapped here (a pipe gets whole lines; a terminal wraps them itself), and a
# document's ":smile:" or a file name's ":warning:" prints as it is, never as an emoji.
out = Console(emoji=False, soft_wrap=True)
err = Console(stderr=True, emoji=False, soft_wrap=True)

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data folder (default: $STRONGROOM_HOME, else ~/.strongroom).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UserOpt = Annotated[
    str | None,
    typer.Option("--user", help="Who you are, for the audit log (default: STRONGROOM_CLI_USER, else $USER)."),
]
GroupsOpt = Annotated[
    str | None,
    typer.Option(
        "--groups",
        help="Your entitlement groups, comma-separated (default: STRONGROOM_CLI_GROUPS, else public).",
    ),
]


AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="Only what was published by then: DATE (the end of that day, UTC) or ISO datetime."),
]
KnownAtOpt = Annotated[
    str | None,
    typer.Option(
        "--known-at",
        help="Only what the platform held by then (ingested): DATE (end of day, UTC) or ISO datetime. "
        "With --as-of, replays what a query saw at that time.",
    ),
]
PublishedFromOpt = Annotated[
    str | None,
    typer.Option(
        "--published-from",
        help="Only what was published then or later: DATE (the start of that day, UTC) or ISO datetime; "
        "not after --as-of.",
    ),
]
DocTypeOpt = Annotated[list[str] | None, typer.Option("--doc-type", help="Only these document types (repeatable).")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` (plain text, never markup) as an error; raise what this returns to exit with ``code``."""
    err.print(f"[bold red]error:[/] {escape(visible(message))}", highlight=False, emoji=False, soft_wrap=True)
    return typer.Exit(code)


def exit_code(exc: StrongroomError) -> int:
    """2 for a request that cannot be right (bad input, bad settings), 1 for one refused or not found."""
    return 2 if isinstance(exc, QueryError | ConfigError) else 1


def settings_for(home: Path | None) -> Settings:
    """The settings (``--home`` over the environment); a bad value is a clear error (exit 2)."""
    with exits_on_error(2):
        return load_settings(home)


@contextmanager
def exits_on_error(code: int | None = None) -> Iterator[None]:
    """A library error raised inside becomes its message and an exit status: ``code``, else
    :func:`exit_code`'s."""
    try:
        yield
    except StrongroomError as exc:
        raise fail(str(exc), code or exit_code(exc)) from exc


@contextmanager
def platform_session(
    home: Path | None, user: str | None, groups: str | None, *, create: bool = False
) -> Iterator[tuple[Platform, Principal]]:
    """The application layer and the CLI's principal (``--user``/``--groups``, else the
    configured defaults) for one command; its errors become a message and an exit status.
    ``create``: for commands that may start a home (ingest, a first key, a first model route);
    read commands refuse a home that holds no store (a mistyped --home: exit 2)."""
    with exits_on_error(2):
        platform = Platform.open(settings_for(home), create=create)
    try:
        with exits_on_error():
            members = None if groups is None else parse_groups(groups, "--groups")
            yield platform, platform.principal(user, members, auth="cli")
    finally:
        platform.close()


def say(text: str, console: Console = out) -> None:
    """Print plain text as it is: never rich markup or emoji codes (a document's text or name,
    or a user's input, may hold brackets and colons), never wrapped."""
    console.print(visible(text), highlight=False, markup=False, emoji=False, soft_wrap=True)


# C0 and C1 control characters but tab, line feed and carriage return (each output mode deals
# with those): a document's text or a dataset's cell could otherwise drive the terminal (ESC ]52
# writes the clipboard, ESC [2J clears the screen, ESC [8m hides what follows)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``), safe for a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def emit(rows: Sequence[Mapping[str, object]] | Mapping[str, object], as_json: bool, *, title: str = "",
         empty: str = "") -> None:  # fmt: skip
    """Print records as JSON (``--json``: one document, for scripts) or as a table.

    A mapping prints as one JSON object, or as a two-column table of its fields; a list of
    records as a JSON array, or a table with a column per key of the first record (none:
    ``empty``). Values print as they are; nested ones as compact JSON. Where stdout is not a
    terminal, the table is a header line and tab-separated rows, nothing cut (``cut -f``).
    """
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    if isinstance(rows, Mapping):
        rows = [{"field": k, "value": v} for k, v in rows.items()]
    if not rows:
        return say(empty or f"(no {title or 'rows'})")
    columns, cells = [visible(str(c)) for c in rows[0]], [[_cell(row.get(c)) for c in rows[0]] for row in rows]
    if not out.is_terminal:  # a script reads it: stdout is the rows alone (the title goes to stderr)
        if title:
            say(title, err)
        out.file.write("".join("\t".join(c.translate(_FLAT) for c in line) + "\n" for line in [columns, *cells]))
        return
    table = Table(title=escape(title) or None)
    for column in columns:
        table.add_column(escape(column))
    for line in cells:
        table.add_row(*map(escape, line))  # a document's title or a user's input is never rich markup
    out.print(table)


_FLAT = str.maketrans("\t\n\r", "   ")  # a value's tabs and line breaks would split its row


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value) if isinstance(value, str | int | float) else json.dumps(value, default=str, separators=(",", ":"))
    return visible(text)
