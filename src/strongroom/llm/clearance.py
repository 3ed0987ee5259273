"""What clearance a request's context needs: the highest sensitivity of the document
versions it carries, whether any is MNPI, and which versions forced that.

Ingestion labels each version (``metadata["sensitivity"]``; ``metadata["mnpi_markers"]`` and
the MNPI group in its ACL when it holds material non-public information). A caller that sends
documents' text to a model computes this over them and passes it on the request; the gateway
then sends it only to deployments cleared for it (:mod:`strongroom.llm.gateway`).

    need = context_clearance(h.version for h in hits)
    request = need.apply(ChatRequest(messages, model="chat"))
    need.forced_by  # the version ids at the top level (or MNPI): for the audit record

A version without a sensitivity label (not understood at ingestion) counts as ``public``: the
label is what the platform knows; ingestion writes it for every version it understands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from strongroom.llm.types import SENSITIVITY_LEVELS, ChatRequest, Sensitivity
from strongroom.types import DocumentVersion

__all__ = ["MNPI_GROUP", "ContextClearance", "context_clearance", "version_clearance"]

#: the ACL group ingestion gives MNPI documents (``Policy.mnpi_group``'s default)
MNPI_GROUP = "restricted-mnpi"


@dataclass(frozen=True, slots=True)
class ContextClearance:
    """The clearance a context needs: its highest ``sensitivity``, whether it holds ``mnpi``,
    and ``forced_by``: the ids of the versions at that level or holding MNPI (none when public)."""

    sensitivity: Sensitivity = "public"
    mnpi: bool = False
    forced_by: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``restricted (MNPI)``, ``internal``, ``public`` ..."""
        return f"{self.sensitivity} (MNPI)" if self.mnpi else self.sensitivity

    def apply(self, request: ChatRequest) -> ChatRequest:
        """``request`` carrying this clearance (no change when the context is public)."""
        if self.sensitivity == "public" and not self.mnpi:
            return request
        return dataclasses.replace(request, sensitivity=self.sensitivity, mnpi=self.mnpi)

    def join(self, other: ContextClearance) -> ContextClearance:
        """The clearance of both contexts together."""
        return _combine(
            [(self.sensitivity, self.mnpi, self.forced_by), (other.sensitivity, other.mnpi, other.forced_by)]
        )

    def metadata(self) -> dict[str, str]:
        """Answer/audit metadata: ``{}`` for public context, else the level and the forcing ids."""
        if self.sensitivity == "public" and not self.mnpi:
            return {}
        return {"context_clearance": self.label, "clearance_forced_by": ",".join(self.forced_by)}


def version_clearance(version: DocumentVersion, *, mnpi_group: str = MNPI_GROUP) -> tuple[Sensitivity, bool]:
    """The sensitivity label of ``version`` (an unknown label counts as ``restricted``) and
    whether it holds MNPI (markers found at ingestion, or the MNPI group in its ACL)."""
    raw = version.metadata.get("sensitivity") or "public"
    level: Sensitivity = raw if raw in SENSITIVITY_LEVELS else "restricted"
    mnpi = bool(version.metadata.get("mnpi_markers")) or mnpi_group in version.acl
    return level, mnpi


def context_clearance(versions: Iterable[DocumentVersion], *, mnpi_group: str = MNPI_GROUP) -> ContextClearance:
    """The clearance a context built from ``versions`` needs."""
    return _combine((*version_clearance(v, mnpi_group=mnpi_group), (v.id,)) for v in versions)


def _combine(parts: Iterable[tuple[Sensitivity, bool, tuple[str, ...]]]) -> ContextClearance:
    items = list(parts)
    if not items:
        return ContextClearance()
    top = max((SENSITIVITY_LEVELS.index(level) for level, _, _ in items), default=0)
    mnpi = any(m for _, m, _ in items)
    forced: dict[str, None] = {}
    for level, m, ids in items:
        if (top > 0 and SENSITIVITY_LEVELS.index(level) == top) or m:
            forced.update(dict.fromkeys(ids))
    return ContextClearance(SENSITIVITY_LEVELS[top], mnpi, tuple(forced))
