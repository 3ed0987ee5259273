"""Document understanding at ingestion: what a document is, how sensitive, and its terms.

understand(parsed, name, policy) -> Understanding
  ├── classify        rule-based type + confidence (classify.py), trainable option (trainable.py)
  ├── pii             validated sensitive-data findings, redaction, MNPI markers (pii.py)
  ├── policy          flag / redact / reject, sensitivity rules, ACL groups (policy.py)
  └── termsheet       typed term-sheet fields with spans (termsheet.py)
synth / evaluate      a seeded synthetic term-sheet corpus and field-level scoring
"""

from __future__ import annotations

from strongroom.understand.classify import Classification, classify
from strongroom.understand.core import DocumentRejected, Understanding, understand
from strongroom.understand.pii import Finding, detect_text, redact_text
from strongroom.understand.policy import Policy
from strongroom.understand.termsheet import Amount, TermSheetField, extract_termsheet

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
    "redact_text",
    "understand",
]
