"""Refused authentications, recorded in the audit log in aggregate.

Each refusal is counted under (reason, client address, credential kind) and the counts are
written as ``auth.refused`` records once per window (and when the service stops), so an
auditor sees every refused login while a flood of bad tokens costs a handful of records a
minute, never a record per request. At most ``max_keys`` distinct keys are kept per window;
the rest are counted under one ``other`` key. No token or key secret is ever recorded: an
API key is named by its id (the public part of ``sr_<id>_<secret>``) only.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from strongroom.audit import AuditEvent

__all__ = ["RefusedLogins", "credential_kind"]

_KEY_ID = re.compile(r"^sr_([A-Za-z0-9]{1,32})_")


def credential_kind(authorization: str | None) -> str:
    """What kind of credential was presented, without any of its secret: ``none``,
    ``api-key:<id>``, ``bearer`` (a JWT or anything else) or ``other-scheme``."""
    if not authorization:
        return "none"
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return "other-scheme"
    match = _KEY_ID.match(token.strip())
    return f"api-key:{match.group(1)}" if match else "bearer"


@dataclass
class _Count:
    n: int
    first: datetime
    last: datetime


class RefusedLogins:
    """Aggregates refusals; ``submit`` appends one audit event (the service's group commit)."""

    def __init__(
        self, submit: Callable[[AuditEvent], Awaitable[int]], *, window_s: float = 60.0, max_keys: int = 100
    ) -> None:
        self._submit = submit
        self.window_s = window_s
        self.max_keys = max_keys
        self._counts: dict[tuple[str, str, str], _Count] = {}
        self.recorded = 0

    def note(self, reason: str, source: str, credential: str) -> None:
        """Count one refusal (cheap; call it on the event loop)."""
        now = datetime.now(UTC)
        key = (reason[:200], source[:64], credential[:64])
        if key not in self._counts and len(self._counts) >= self.max_keys:
            key = ("other reasons", "other", "other")
        count = self._counts.get(key)
        if count is None:
            self._counts[key] = _Count(1, now, now)
        else:
            count.n += 1
            count.last = now

    async def flush(self) -> None:
        """Write one record per counted key, then start a new window."""
        counts, self._counts = self._counts, {}
        events = [
            AuditEvent(
                principal="anonymous",
                groups=(),
                action="auth.refused",
                outcome="denied",
                auth=credential,
                target=source,
                filters={"count": c.n, "first_at": c.first.isoformat(), "last_at": c.last.isoformat()},
                detail=f"{c.n} refused: {reason}",
            )
            for (reason, source, credential), c in sorted(counts.items())
        ]
        if events:
            await asyncio.gather(*(self._submit(e) for e in events))
            self.recorded += len(events)

    async def run(self) -> None:
        """Flush every window until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(self.window_s)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())
