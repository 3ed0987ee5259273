"""Document understanding at ingestion: what a document is, how sensitive, and its terms.

understand(parsed, name, policy) -> Understanding
  ├── classify        rule-based type + confidence (classify.py), trainable option (trainable.py)
  ├── pii             validated sensitive-data findings, redaction, MNPI markers (pii.py):
  │     identifiers   cards, IBANs, SSNs, ABA in any spelling, decided by check digits
  │     credentials   keys, tokens, passwords, connection strings (detect-secrets plugins)
  ├── redaction       the same for file names, source keys, metadata, and queries
  │                   (redact_query, query_digest for the audit log)
  ├── policy          flag / redact / reject, sensitivity rules, ACL groups (policy.py)
  └── termsheet       typed term-sheet fields with spans (termsheet.py)
synth / evaluate      a seeded synthetic term-sheet corpus and field-level scoring
"""

from __future__ import annotations

from strongroom.errors import DocumentRejected
from strongroom.ingest.understand.classify import Classification, classify
from strongroom.ingest.understand.core import Understanding, understand
from strongroom.ingest.understand.pii import Finding, detect_text, redact_text
from strongroom.ingest.understand.policy import Policy
from strongroom.ingest.understand.redaction import query_digest, redact_query
from strongroom.ingest.understand.termsheet import Amount, TermSheetField, extract_termsheet

__all__ = [
    "Amount",
    "Classification",
    "DocumentRejected",
    "Finding",
    "Policy",
    "TermSheetField",
    "Understanding",
    "classify",
    "detect_text",
    "extract_termsheet",
    "query_digest",
    "redact_query",
    "redact_text",
    "understand",
]
