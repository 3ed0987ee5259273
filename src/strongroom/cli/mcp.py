"""``strongroom mcp``: the research agent's tools as a Model Context Protocol server on
stdin/stdout, for an agent that starts it as a subprocess (Claude Desktop, an IDE, a bank's
own agent).

It runs as the CLI's local principal (``--user``/``--groups``, else the configured
defaults), like every other command, or, with ``--api-key-env VAR``, as the owner of the API
key held in that environment variable, checked against the key store exactly as the HTTP
service checks it (expired or revoked: refused). The clocks (``--as-of``, ``--known-at``)
hold for the whole process. stdout carries the protocol alone: messages and logs go to
stderr, and no secret is ever printed.

    strongroom mcp --groups research --as-of 2024-03-28
    STRONGROOM_MCP_KEY=sr_... strongroom mcp --api-key-env STRONGROOM_MCP_KEY
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.auth import Authenticator, ServiceSettings
from strongroom.auth.apikeys import KEY_PREFIX
from strongroom.cli.common import AsOfOpt, GroupsOpt, HomeOpt, KnownAtOpt, UserOpt, exits_on_error, fail, settings_for
from strongroom.errors import AuthenticationError
from strongroom.service import Platform, parse_instant
from strongroom.service.requests import parse_groups
from strongroom.types import Principal

if TYPE_CHECKING:
    from strongroom.agent.base import Toolbox, ToolOutput
    from strongroom.api.mcp import Binding
    from strongroom.llm.types import ToolSpec

__all__ = ["mcp_command"]

KEY_ENV_HELP = (
    "Run as the owner of the API key in this environment variable (its groups and roles, checked against "
    "the key store like the HTTP service does) instead of --user/--groups."
)


def _principal(platform: Platform, user: str | None, groups: str | None, secret: str | None) -> Principal:
    """The caller: the key's owner (refused like a request with that key), else the CLI's principal."""
    if secret is None:
        members = None if groups is None else parse_groups(groups, "--groups")
        return platform.principal(user, members, auth="cli")
    return _KeyHolder(platform, secret).principal()


class _KeyHolder:
    """The owner of an API key, checked again at every call as the HTTP service checks it at
    every request (a key revoked, expired or regrouped while the process runs counts at once)."""

    def __init__(self, platform: Platform, secret: str) -> None:
        self._authenticator = Authenticator(ServiceSettings(), platform.keys, None)
        self._authorization = f"Bearer {secret}"

    def principal(self) -> Principal:
        caller = self._authenticator.cached(self._authorization)
        return (caller or self._authenticator.authenticate(self._authorization)).principal


class _Checked:
    """The tools of a key's owner: each call first checks the key (on the platform's thread,
    where calls run), then runs as the key's owner is now. A refused key is recorded as the
    call's denial, under the principal the key named when the process started."""

    def __init__(
        self, holder: _KeyHolder, toolbox_of: Callable[[Principal], Toolbox], platform: Platform, binding: Binding
    ) -> None:
        self._holder, self._toolbox_of = holder, toolbox_of
        self._platform, self._binding = platform, binding

    def specs(self) -> Sequence[ToolSpec]:
        from strongroom.service.tool_args import TOOL_SPECS

        return TOOL_SPECS

    def call(self, name: str, arguments: Mapping[str, object]) -> ToolOutput:
        try:
            principal = self._holder.principal()
        except AuthenticationError as exc:
            from strongroom.service.agent_tools import TOOL_ACTION

            b, p = self._binding, self._platform
            tool = name if name in {spec.name for spec in self.specs()} else "unknown"
            filters = {"run_id": b.run_id, "tool": tool}
            record = p.ops.record(b.principal, TOOL_ACTION + tool, target=b.run_id, filters=filters,
                                  outcome="denied", detail=f"the API key was refused: {exc}")  # fmt: skip
            p.audit.append_many([record])
            raise
        return self._toolbox_of(principal).call(name, arguments)


def mcp_command(
    home: HomeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env", metavar="VAR", help=KEY_ENV_HELP)] = None,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
) -> None:
    """Serve the research tools (search, datasets, SQL, calculator, term sheets, filing tables)
    over MCP on stdin/stdout, entitled to you and fixed at your clocks; every call is audited."""
    from strongroom.api.mcp import Binding, ThreadedToolboxes, serve_stdio
    from strongroom.service.agent_tools import toolbox_for

    if api_key_env is not None and (user is not None or groups is not None):
        raise fail("--api-key-env names the caller: leave out --user and --groups")
    secret = None
    if api_key_env is not None:
        secret = os.environ.get(api_key_env, "").strip()
        if not secret.startswith(KEY_PREFIX):
            raise fail(f"${api_key_env} holds no strongroom API key ({KEY_PREFIX}...): set it to the key's secret")
    with exits_on_error():
        clocks = parse_instant(as_of, "--as-of"), parse_instant(known_at, "--known-at")
    settings = settings_for(home)
    # the embedded store's connection stays on the thread that opened it: every call runs there
    thread = ThreadPoolExecutor(1, thread_name_prefix="strongroom-mcp")
    try:
        with exits_on_error(2):
            platform = thread.submit(lambda: Platform.open(settings, create=False)).result()
        try:
            with exits_on_error():
                principal = thread.submit(_principal, platform, user, groups, secret).result()
            binding = Binding(principal, *clocks, run_id=f"mcp-{uuid.uuid4().hex}")
            holder = None if secret is None else _KeyHolder(platform, secret)

            def bind(b: Binding) -> Toolbox:
                def toolbox(principal: Principal) -> Toolbox:
                    return toolbox_for(platform, principal, as_of=b.as_of, known_at=b.known_at, run_id=b.run_id)

                return toolbox(b.principal) if holder is None else _Checked(holder, toolbox, platform, b)

            source = ThreadedToolboxes(bind, thread)
            asyncio.run(serve_stdio(source, binding))
        finally:
            thread.submit(platform.close).result()
    finally:
        thread.shutdown(wait=True)
