"""Who is calling and what they may do: an authenticated principal and its roles.

Roles come from groups by configuration (:attr:`ServiceSettings.role_groups`); they are
ordered, so an admin may do what an ingester may, and an ingester what a reader may.
Entitlements to documents are the groups themselves, matched against each ACL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from strongroom.auth.settings import Role
from strongroom.types import Principal

__all__ = ["ROLE_ORDER", "Caller", "roles_for"]

ROLE_ORDER: tuple[Role, ...] = ("reader", "ingester", "admin")
_APART: tuple[Role, ...] = ("approver", "auditor")


def roles_for(groups: Iterable[str], role_groups: Mapping[str, Sequence[str]]) -> frozenset[Role]:
    """The roles that ``groups`` grant, each implying the ones below it.

    >>> sorted(roles_for({"ops"}, {"ingester": ["ops"]}))
    ['ingester', 'reader']
    >>> sorted(roles_for({"risk"}, {"approver": ["risk"]}))
    ['approver']
    """
    mine = set(groups)
    top = -1
    for i, role in enumerate(ROLE_ORDER):
        if mine & set(role_groups.get(role, ())):
            top = i
    ordered: frozenset[Role] = frozenset(ROLE_ORDER[: top + 1])
    # the four-eyes checker and the auditor stand apart: admin implies neither, nor they anything
    apart: frozenset[Role] = frozenset(r for r in _APART if mine & set(role_groups.get(r, ())))
    return ordered | apart


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the principal (name and groups), roles and how it proved itself."""

    principal: Principal
    roles: frozenset[Role]
    method: Literal["oidc", "api-key", "dev"]
    key_id: str = ""

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def groups(self) -> frozenset[str]:
        return self.principal.groups

    def may_read(self, acl: Iterable[str]) -> bool:
        """Whether a document with this ACL is within the caller's entitlements."""
        return bool(self.principal.groups & frozenset(acl))
