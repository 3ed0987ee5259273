"""The understanding policy: what to detect, what to do with it, which groups to add.

This is configuration, read at the trust boundary (a TOML/JSON file or CLI flags), so it
is a pydantic model that rejects unknown keys. Everything downstream receives it typed.

    >>> policy = Policy(action="redact", person_names=["Jane Doe"])
    >>> policy.action_for("card")
    'redact'
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FINDING_TYPES",
    "SECRET_TYPES",
    "SENSITIVITY_LEVELS",
    "Action",
    "FindingType",
    "Policy",
    "Sensitivity",
    "max_sensitivity",
]

Action = Literal["flag", "redact", "reject"]
Sensitivity = Literal["public", "internal", "confidential", "restricted"]
FindingType = Literal[
    "card",
    "iban",
    "ssn",
    "aba_routing",
    "account_number",
    "email",
    "phone",
    "api_key",
    "private_key",
    "password",
    "secret",
    "access_token",
    "connection_string",
    "high_entropy",
    "person_name",
]
#: The credential types: a document holding one is ``restricted`` by default, and every place
#: it could be written (body, title, file name, metadata, query) has it redacted.
SECRET_TYPES: frozenset[FindingType] = frozenset(
    {"api_key", "private_key", "password", "secret", "access_token", "connection_string", "high_entropy"}
)
FINDING_TYPES: tuple[FindingType, ...] = get_args(FindingType)
SENSITIVITY_LEVELS: tuple[Sensitivity, ...] = ("public", "internal", "confidential", "restricted")

_DEFAULT_RAISES: dict[FindingType, Sensitivity] = {
    "card": "confidential",
    "iban": "confidential",
    "ssn": "confidential",
    "aba_routing": "confidential",
    "account_number": "confidential",
    "api_key": "restricted",
    "private_key": "restricted",
    "password": "restricted",
    "secret": "restricted",
    "access_token": "restricted",
    "connection_string": "restricted",
    "high_entropy": "restricted",
    "person_name": "confidential",
}

_DEFAULT_ACTIONS: dict[FindingType, Action] = {"email": "flag", "phone": "flag", "person_name": "flag"}

_DEFAULT_BASE: dict[str, Sensitivity] = {
    "regulatory_filing": "public",
    "earnings_call_transcript": "public",
    "prospectus": "public",
    "research_report": "internal",
    "term_sheet": "internal",
    "correspondence": "confidential",
    "other": "internal",
}


def max_sensitivity(*levels: Sensitivity) -> Sensitivity:
    """The highest of the given levels (``public`` when none are given)."""
    return max(levels, key=SENSITIVITY_LEVELS.index, default="public")


class Policy(BaseModel):
    """How documents are understood at ingestion.

    ``action`` applies to every finding type unless ``actions`` overrides it for a type.
    ``reject`` refuses the whole document; ``redact`` replaces the finding in the stored
    text with ``[REDACTED:TYPE]``; ``flag`` only records it. A finding below
    ``min_confidence`` is ignored. ``mnpi_markers`` found in the text make the document
    ``restricted`` and add ``mnpi_group`` to its ACL, except in ``mnpi_exempt_types``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action = "redact"
    actions: dict[FindingType, Action] = Field(default_factory=lambda: dict(_DEFAULT_ACTIONS))
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    person_names: tuple[str, ...] = ()
    mnpi_markers: tuple[str, ...] = (
        "material non-public",
        "material nonpublic",
        "wall-crossed",
        "wall crossed",
        "inside information",
        "over the wall",
    )
    mnpi_group: str = "restricted-mnpi"
    # Published filings discuss "inside information" in their insider-trading boilerplate;
    # in these types a marker is recorded but neither restricts the document nor adds the group.
    mnpi_exempt_types: tuple[str, ...] = ("regulatory_filing",)
    # ACLs are read as "any of these groups may read", so adding a group would widen access:
    # "replace" (the default) makes the MNPI group the only reader; "add" keeps the batch's ACL too.
    mnpi_acl: Literal["replace", "add"] = "replace"
    base_sensitivity: dict[str, Sensitivity] = Field(default_factory=lambda: dict(_DEFAULT_BASE))
    raises: dict[FindingType, Sensitivity] = Field(default_factory=lambda: dict(_DEFAULT_RAISES))
    confidential_markers: tuple[str, ...] = ("strictly confidential", "confidential", "internal use only")
    extract_termsheets: bool = True

    def action_for(self, finding_type: FindingType) -> Action:
        """The action for one finding type: its override, else the default ``action``."""
        return self.actions.get(finding_type, self.action)
