"""``understand()``: one pure step between parsing and chunking.

    parse ─► understand(parsed, name, policy) ─► chunk(redacted pages) ─► embed ─► store

It classifies the document, detects sensitive data on every page and everywhere else a
secret can be written (the title, the file name, every metadata value a parser read, such
as a PDF's Subject or a Word file's Author, and the user's ``--meta`` values), applies the
policy (flag, redact or reject), derives the sensitivity level and any extra ACL groups,
and, for term sheets, extracts the fields. Redaction happens here, before chunking, so
chunk offsets are computed on the redacted text and no detected secret reaches the chunks,
the keyword indexes, the vectors, the catalog, logs or the audit log; a metadata filter
compares against the redacted value, so it cannot confirm a guess of the secret either.

    >>> from strongroom.types import Page, ParsedDocument, frozen_meta
    >>> doc = ParsedDocument((Page(1, "Dear Ann, my card is 4111 1111 1111 1111. Regards"),), "text/plain")
    >>> u = understand(doc, "note.txt", Policy())
    >>> u.sensitivity, u.pages[0].text
    ('confidential', 'Dear Ann, my card is [REDACTED:CARD]. Regards')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from strongroom.errors import DocumentRejected
from strongroom.ingest.understand.classify import Classification, classify
from strongroom.ingest.understand.pii import Finding, detect_text, find_markers, redact_text
from strongroom.ingest.understand.policy import Policy, Sensitivity, max_sensitivity
from strongroom.ingest.understand.redaction import redact_metadata, redact_name, redact_value
from strongroom.ingest.understand.termsheet import TermSheetField, extract_termsheet, fields_as_metadata
from strongroom.types import Page, ParsedDocument, frozen_meta

__all__ = ["Understanding", "understand"]


@dataclass(frozen=True)
class Understanding:
    """What strongroom knows about one document version before it is chunked.

    ``pages`` is the text to chunk and store (redacted where the policy says so), and
    ``title``, ``name`` (the file name), ``source_metadata`` (the parser's) and
    ``user_metadata`` (the batch's ``--meta``) likewise. ``findings`` locate sensitive data
    in the *original* page text; page 0 holds those outside the pages (title, name, metadata).
    ``acl_groups`` are the groups the policy requires; :meth:`acl` applies them to a batch ACL.
    :meth:`metadata` gives the string metadata to store.
    """

    doc_type: str
    confidence: float
    classification: Classification
    sensitivity: Sensitivity
    findings: tuple[Finding, ...]
    redacted: tuple[Finding, ...]
    mnpi_markers: tuple[str, ...]
    acl_groups: frozenset[str]
    pages: tuple[Page, ...]
    termsheet: tuple[TermSheetField, ...]
    title: str | None = None
    acl_mode: Literal["replace", "add"] = "replace"
    name: str = ""
    source_metadata: Mapping[str, str] = field(default_factory=frozen_meta)
    user_metadata: Mapping[str, str] = field(default_factory=frozen_meta)

    def acl(self, base: frozenset[str]) -> frozenset[str]:
        """The version's ACL: ``base`` unless the policy restricts this document (then only its groups,
        or ``base`` plus them when the policy says ``add``)."""
        if not self.acl_groups:
            return base
        return self.acl_groups if self.acl_mode == "replace" else base | self.acl_groups

    def parsed(self, original: ParsedDocument) -> ParsedDocument:
        """``original`` with its pages, title and metadata replaced by the (possibly redacted) ones to store."""
        return replace(original, pages=self.pages, title=self.title, metadata=self.source_metadata)

    def finding_counts(self) -> dict[str, int]:
        """Finding counts by type, e.g. ``{"card": 2, "email": 1}``."""
        return dict(Counter(f.type for f in self.findings))

    def metadata(self) -> dict[str, str]:
        """Metadata strings to store on the version (all usable as search filters)."""
        meta = {
            "doc_type": self.doc_type,
            "doc_type_confidence": f"{self.confidence:.3f}",
            "sensitivity": self.sensitivity,
            "findings": str(len(self.findings)),
        }
        meta.update({f"findings.{k}": str(v) for k, v in sorted(self.finding_counts().items())})
        if self.redacted:
            meta["redacted"] = str(len(self.redacted))
        if self.mnpi_markers:
            meta["mnpi_markers"] = "; ".join(self.mnpi_markers)
        if self.acl_groups:
            meta["acl_added"] = ",".join(sorted(self.acl_groups))
        meta.update(fields_as_metadata(self.termsheet))
        return meta


def _marked_sensitivity(head: str, policy: Policy) -> Sensitivity | None:
    """``confidential`` when a confidentiality marker stands on its own line near the top."""
    for line in head.splitlines()[:40]:
        stripped = line.strip().strip("*#-_ ").lower()
        if stripped and any(stripped == m or stripped.startswith(m + " ") for m in policy.confidential_markers):
            return "confidential"
    return None


def understand(
    parsed: ParsedDocument, name: str, policy: Policy | None = None, *, meta: Mapping[str, str] | None = None
) -> Understanding:
    """Classify, detect, apply the policy and extract, without any I/O.

    ``name`` is the file name and ``meta`` the batch's own metadata (``--meta``); both are
    redacted like the pages. Raises :class:`DocumentRejected` when a finding's action is
    ``reject``; its message names the (redacted) file and the finding types, never a value.
    """
    policy = policy or Policy()
    classification = classify(parsed, name)  # the name as given; classification keeps none of it
    shown_name, name_findings = redact_name(name, policy)
    findings: list[Finding] = []
    markers: list[str] = []
    pages: list[Page] = []
    redacted: list[Finding] = []
    for page in parsed.pages:
        page_findings = detect_text(page.text, page.number, policy)
        findings.extend(page_findings)
        markers.extend(m for m, _, _ in find_markers(page.text, policy.mnpi_markers))
        to_redact = [f for f in page_findings if policy.action_for(f.type) == "redact"]
        redacted.extend(to_redact)
        pages.append(Page(page.number, redact_text(page.text, to_redact)) if to_redact else page)
    title, title_findings = redact_value(parsed.title or "", policy)
    source_metadata, source_findings = redact_metadata(parsed.metadata, policy)
    user_metadata, user_findings = redact_metadata(meta or {}, policy)
    outside = [*title_findings, *name_findings, *source_findings, *user_findings]
    findings.extend(outside)
    redacted.extend(f for f in outside if policy.action_for(f.type) != "flag")
    rejected = Counter(f.type for f in findings if policy.action_for(f.type) == "reject")
    if rejected:
        summary = ", ".join(f"{n} {t}" for t, n in sorted(rejected.items()))
        raise DocumentRejected(
            f"{shown_name}: refused by the sensitive-data policy ({summary} found); remove the data or change the "
            "policy's action for these types to 'redact' or 'flag'"
        )
    levels: list[Sensitivity] = [policy.base_sensitivity.get(classification.doc_type, "internal")]
    head = parsed.pages[0].text[:4000] if parsed.pages else ""
    if marked := _marked_sensitivity(head, policy):
        levels.append(marked)
    levels.extend(policy.raises[f.type] for f in findings if f.type in policy.raises)
    groups: set[str] = set()
    if markers and classification.doc_type not in policy.mnpi_exempt_types:
        levels.append("restricted")
        groups.add(policy.mnpi_group)
    termsheet: list[TermSheetField] = []
    if policy.extract_termsheets and classification.doc_type == "term_sheet":
        # Extract from the redacted pages so no field (and no span) can carry a redacted secret.
        termsheet = extract_termsheet(replace(parsed, pages=tuple(pages), title=title or None))
    return Understanding(
        doc_type=classification.doc_type,
        confidence=classification.confidence,
        classification=classification,
        sensitivity=max_sensitivity(*levels),
        findings=tuple(findings),
        redacted=tuple(redacted),
        mnpi_markers=tuple(dict.fromkeys(m.lower() for m in markers)),
        acl_groups=frozenset(groups),
        pages=tuple(pages),
        termsheet=tuple(termsheet),
        title=title or None,
        acl_mode=policy.mnpi_acl,
        name=shown_name,
        source_metadata=frozen_meta(source_metadata),
        user_metadata=frozen_meta(user_metadata),
    )
