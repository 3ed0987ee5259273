from __future__ import annotations

import pytest

from strongroom.errors import DocumentRejected, IngestError
from strongroom.ingest.chunking import chunk_pages
from strongroom.ingest.parsers import parse
from strongroom.ingest.understand import Policy, understand
from strongroom.ingest.understand.synth import generate
from strongroom.types import Page, ParsedDocument

CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
KEY = "AKIAIOSFODNN7EXAMPLE"
LETTER = f"""Dear Ann,

Please pay the invoice from card {CARD} or by transfer to {IBAN}.
The deploy key is {KEY}; reach me at ann.smith@example.com.

Kind regards,
Bob
"""


def _doc(*pages: str, title: str | None = None) -> ParsedDocument:
    return ParsedDocument(tuple(Page(i + 1, t) for i, t in enumerate(pages)), "text/plain", title=title)


def test_redacted_text_reaches_no_chunk() -> None:
    u = understand(_doc(LETTER, "Page two repeats the card: " + CARD), "letter.txt", Policy())
    assert u.doc_type == "correspondence"
    stored = u.parsed(_doc(LETTER))
    chunks = chunk_pages(u.pages, 50)
    texts = {p.number: p.text for p in u.pages}
    chunk_texts = [texts[c.page][c.start : c.end] for c in chunks]
    everything = "\n".join([*chunk_texts, *(p.text for p in stored.pages)])
    for secret in (CARD, IBAN, KEY):
        assert secret not in everything
    assert "[REDACTED:CARD]" in everything and "[REDACTED:IBAN]" in everything
    assert "ann.smith@example.com" in everything  # e-mail is flagged, not redacted, by default
    assert u.finding_counts() == {"card": 2, "iban": 1, "api_key": 1, "email": 1}
    assert u.sensitivity == "restricted"  # an API key raises it to restricted


def test_findings_locate_the_original_text() -> None:
    u = understand(_doc(LETTER), "letter.txt", Policy())
    card = next(f for f in u.findings if f.type == "card")
    assert LETTER[card.start : card.end] == CARD
    assert card.page == 1


def test_reject_policy_refuses_the_document_without_naming_the_value() -> None:
    policy = Policy(actions={"card": "reject"})
    with pytest.raises(DocumentRejected) as info:
        understand(_doc(LETTER), "letter.txt", policy)
    assert isinstance(info.value, IngestError)  # so the batch records it and goes on
    assert "1 card" in str(info.value) and CARD not in str(info.value)


def test_flag_policy_keeps_the_text() -> None:
    u = understand(_doc(LETTER), "letter.txt", Policy(action="flag", actions={}))
    assert u.pages[0].text == LETTER
    assert not u.redacted and u.findings


def test_mnpi_markers_make_it_restricted_and_add_the_group() -> None:
    text = "Project Falcon update. This memo contains material non-public information; recipients are wall-crossed."
    u = understand(_doc(text), "memo.txt", Policy(mnpi_group="mnpi-falcon"))
    assert u.sensitivity == "restricted"
    assert u.acl_groups == frozenset({"mnpi-falcon"})
    # ACLs grant access to any listed group, so the MNPI group replaces the batch's ACL by default.
    assert u.acl(frozenset({"public"})) == frozenset({"mnpi-falcon"})
    added = understand(_doc(text), "memo.txt", Policy(mnpi_group="mnpi-falcon", mnpi_acl="add"))
    assert added.acl(frozenset({"desk"})) == frozenset({"desk", "mnpi-falcon"})
    assert understand(_doc("Shopping list"), "list.txt").acl(frozenset({"public"})) == frozenset({"public"})
    assert u.metadata()["mnpi_markers"] == "material non-public; wall-crossed"


def test_insider_trading_boilerplate_in_a_filing_does_not_restrict_it() -> None:
    filing = (
        "UNITED STATES\nSECURITIES AND EXCHANGE COMMISSION\nFORM 10-Q\nCommission File Number 001-1\n"
        "Participants may not trade while in possession of inside information."
    )
    u = understand(_doc(filing), "10q.txt")
    assert (u.doc_type, u.sensitivity, u.acl_groups) == ("regulatory_filing", "public", frozenset())
    assert u.mnpi_markers == ("inside information",)


def test_public_filing_stays_public_and_plain_text_is_internal() -> None:
    filing = "UNITED STATES\nSECURITIES AND EXCHANGE COMMISSION\nFORM 10-Q\nCommission File Number 001-1"
    assert understand(_doc(filing), "10q.txt").sensitivity == "public"
    assert understand(_doc("Shopping list"), "list.txt").sensitivity == "internal"
    assert understand(_doc("CONFIDENTIAL\nShopping list"), "list.txt").sensitivity == "confidential"


def test_configured_person_names_are_found() -> None:
    policy = Policy(person_names=("Ann Smith",), actions={"person_name": "redact"})
    u = understand(_doc("Client: ann smith, see notes."), "notes.txt", policy)
    assert u.pages[0].text == "Client: [REDACTED:PERSON_NAME], see notes."
    assert u.sensitivity == "confidential"


def test_a_secret_in_the_title_is_redacted_too() -> None:
    u = understand(_doc("body", title=f"Card {CARD}"), "x.txt")
    assert u.title == "Card [REDACTED:CARD]"
    assert u.parsed(_doc("body", title=f"Card {CARD}")).title == "Card [REDACTED:CARD]"


def test_term_sheet_fields_become_metadata() -> None:
    sheet = generate(1, seed=77)[0]
    u = understand(parse(sheet.data, sheet.name), sheet.name)
    meta = u.metadata()
    assert meta["doc_type"] == "term_sheet"
    assert meta["ts.isin"] == sheet.truth["isin"]
    assert meta["ts.maturity_date"] == sheet.truth["maturity_date"]
    assert all(isinstance(v, str) for v in meta.values())


def test_the_name_title_metadata_and_batch_meta_are_redacted_too() -> None:
    doc = ParsedDocument(
        (Page(1, "Quarterly board pack."),),
        "application/pdf",
        title="Access for the board: password: Tr0ub4dorX",
        metadata={"pdf.subject": f"Refund to card {CARD}", "pdf.keywords": f"ops; {KEY}", "pdf.author": "Ops desk"},
    )
    u = understand(doc, "db_password=hunter2x.pdf", meta={"db_password": "MetaPw77", "desk": "rates"})
    stored = u.parsed(doc)
    assert u.name == "db_password=[REDACTED:PASSWORD].pdf"
    assert stored.title == "Access for the board: password: [REDACTED:PASSWORD]"
    assert dict(stored.metadata) == {
        "pdf.author": "Ops desk",
        "pdf.keywords": "ops; [REDACTED:API_KEY]",
        "pdf.subject": "Refund to card [REDACTED:CARD]",
    }
    assert dict(u.user_metadata) == {"db_password": "[REDACTED:PASSWORD]", "desk": "rates"}
    assert u.finding_counts() == {"password": 3, "card": 1, "api_key": 1}
    assert all(f.page == 0 for f in u.findings)
    assert u.sensitivity == "restricted" and u.metadata()["redacted"] == "5"


def test_a_rejected_document_is_named_without_the_secret_in_its_file_name() -> None:
    with pytest.raises(DocumentRejected) as info:
        understand(_doc(LETTER), "passwd=hunter2x.txt", Policy(actions={"card": "reject"}))
    assert "hunter2x" not in str(info.value) and "passwd=[REDACTED:PASSWORD].txt" in str(info.value)


def test_a_public_filing_keeps_its_metadata() -> None:
    meta = {
        "pdf.subject": "Form 10-Q filed on 2023-08-04 for the period ending 2023-07-01",
        "pdf.keywords": "0000320193-23-000077; ; 10-Q",
    }
    doc = ParsedDocument((Page(1, "FORM 10-Q"),), "application/pdf", metadata=meta)
    u = understand(doc, "2023 Q3 AAPL.pdf")
    assert dict(u.parsed(doc).metadata) == meta and u.name == "2023 Q3 AAPL.pdf" and not u.findings
