"""The rules a new API key must meet, and its making, for
:meth:`~strongroom.service.operations.Operations.create_key` (which checks the role and
four-eyes, and writes the record) and the four-eyes proposals that create keys.

A key carries only groups its creator holds (or configuration allows), and an expiry: the
default lifetime unless told, never past the maximum, never-expiring only where configuration
allows it. A key carries entitlement groups, so with four-eyes on it is made only through an
approved proposal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from strongroom.auth.apikeys import ApiKeyStore
from strongroom.auth.authenticator import persons_of
from strongroom.config import Settings
from strongroom.errors import PermissionDenied, QueryError
from strongroom.service.requests import KeyCreated
from strongroom.types import Principal

__all__ = ["grantable", "key_expiry", "new_key"]


def key_expiry(settings: Settings, days: int | None, expires_at: datetime | None, no_expiry: bool) -> datetime | None:
    """When a new key expires: the default lifetime unless told, never past the maximum,
    never-expiring only where configuration allows it."""
    s = settings
    now = datetime.now(UTC)
    if no_expiry:
        if not s.key_allow_no_expiry:
            raise PermissionDenied(
                "keys that never expire are not allowed here (STRONGROOM_KEY_ALLOW_NO_EXPIRY); give --days"
            )
        return None
    if expires_at is not None and days is not None:
        raise QueryError("give an expiry date or a number of days, not both")
    if days is not None and days < 1:
        raise QueryError("a key lives at least 1 day")
    until = expires_at if expires_at is not None else now + timedelta(days=days if days else s.key_default_days)
    until = until if until.tzinfo else until.replace(tzinfo=UTC)
    if until <= now:
        raise QueryError("the expiry is in the past")
    if until > now + timedelta(days=s.key_max_days):
        raise QueryError(f"a key may live at most {s.key_max_days} days (STRONGROOM_KEY_MAX_DAYS)")
    return until


def grantable(settings: Settings, principal: Principal, groups: frozenset[str]) -> None:
    """A key may carry only groups its creator holds, or those configuration allows."""
    extra = groups - principal.groups - frozenset(settings.key_grantable_groups)
    if extra:
        raise PermissionDenied(
            f"you may not grant groups you do not hold: {', '.join(sorted(extra))} "
            "(or list them in STRONGROOM_KEY_GRANTABLE_GROUPS)"
        )


def new_key(
    settings: Settings,
    principal: Principal,
    keys: ApiKeyStore,
    owner: str,
    members: frozenset[str],
    days: int | None,
    expires_at: datetime | None,
    no_expiry: bool,
) -> tuple[KeyCreated, dict[str, object]]:
    """Make a key for ``owner`` with groups ``members`` (checked: :func:`grantable`,
    :func:`key_expiry`), recording the persons behind ``principal`` as its creators; with the
    fields of its audit record. The caller checked the role and four-eyes."""
    if not members:
        raise QueryError("give the key at least one group")
    if not owner.strip():
        raise QueryError("give the key an owner")
    grantable(settings, principal, members)
    until = key_expiry(settings, days, expires_at, no_expiry)
    key, secret = keys.create(owner, members, until, created_by=persons_of(principal, keys))
    expiry = until.isoformat() if until else "never"
    return KeyCreated(key.id, key.owner, key.groups, key.expires_at, secret), {
        "target": key.id,
        "detail": f"expires {expiry}",
    }
