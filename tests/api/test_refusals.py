"""Refused logins are audited in aggregate: every refusal counted, a flood costs a few records."""

from __future__ import annotations

import asyncio

from strongroom.api.refusals import RefusedLogins, credential_kind
from strongroom.audit import AuditEvent


def test_credentials_are_named_without_their_secrets() -> None:
    assert credential_kind(None) == "none"
    assert credential_kind("Basic dXNlcjpwYXNz") == "other-scheme"
    assert credential_kind("Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig") == "bearer"
    assert credential_kind("Bearer sr_ab12cd34ef56_SECRETPART") == "api-key:ab12cd34ef56"


def test_a_flood_is_counted_in_full_in_a_bounded_number_of_records() -> None:
    written: list[AuditEvent] = []

    async def submit(event: AuditEvent) -> int:
        written.append(event)
        return len(written)

    refusals = RefusedLogins(submit, max_keys=10)
    for i in range(5000):  # 5,000 refusals from 1,000 addresses
        refusals.note("the token has expired; get a new one", f"10.0.{i % 1000 // 250}.{i % 250}", "bearer")
    refusals.note("the API key is not valid", "10.9.9.9", "api-key:ab12")
    asyncio.run(refusals.flush())
    assert len(written) == 11  # 10 distinct keys, then one "other" bucket
    assert sum(int(e.filters["count"]) for e in written) == 5001  # type: ignore[call-overload]
    assert {e.action for e in written} == {"auth.refused"} and {e.outcome for e in written} == {"denied"}
    assert all("SECRET" not in repr(e) for e in written)
    asyncio.run(refusals.flush())
    assert len(written) == 11  # nothing new: nothing more to write
