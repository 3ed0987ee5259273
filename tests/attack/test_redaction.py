"""Attack: redaction (issue 15, "Why"). Secrets in the forms people write (labelled AWS secret
keys and passwords, a lower-case IBAN, a card with dots or split by a line break, an SSN with
spaces, a PEM private key), seeded in an uploaded document's body, its file name, its title and
its PDF and Word properties, must never come back from any endpoint, nor sit in the audit log
or anywhere under the home folder. A query holding a secret is audited redacted, with a keyed
hash; a metadata filter on a redacted property cannot confirm a guess.

Real files (Word and PDF built by the parser tests' builders), uploaded to a real server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from docx.document import Document as DocxDocument

from tests.attack.conftest import Server, audit_export, serve
from tests.auth.oidc_provider import Provider
from tests.ingest.office_fixtures import docx_bytes
from tests.ingest.pdf_fixtures import make_pdf
from tests.understand.secret_forms import SecretForm, forms, spellings

pytestmark = pytest.mark.integration

INGESTER = ["ops", "ingesters"]
READER = ["ops", "readers"]
#: the forms issue 15 found reaching the indexes
ATTACK_FORMS = (
    "aws_secret_access_key",
    "password_colon",
    "db_password",
    "iban_lower",
    "card_dots",
    "card_wrapped",
    "ssn_spaces",
    "pem_rsa",
)
#: forms that fit on one line (a title, a property, a file name)
ONE_LINE = ("aws_secret_access_key", "password_colon", "db_password", "iban_lower", "card_dots", "ssn_spaces")
NAME_FORMS = ("password_colon", "db_password", "iban_lower", "card_dots", "ssn_spaces")  # no '/' in a file name


def _forms(tag: str, names: tuple[str, ...]) -> list[SecretForm]:
    return [f for f in forms(tag) if f.name in names]


def _body(fs: list[SecretForm]) -> str:
    return "Operations handover note.\n\n" + "\n\n".join(f.text for f in fs) + "\n\nRegards,\nOps desk\n"


def _one_line(fs: list[SecretForm]) -> str:
    return " ; ".join(f.one_line() for f in fs)


def _sanitised(secret: str) -> str:
    """The secret with the characters a file name may not hold replaced, as an upload's name is
    cleaned: one character changed does not make a password safe to show."""
    return re.sub(r"[^A-Za-z0-9._ -]+", "_", secret)


@dataclass
class Seeded:
    server: Server
    places: dict[str, list[SecretForm]] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    pdf_subject: str = ""
    docx_subject: str = ""

    def seed(self, place: str, names: tuple[str, ...]) -> list[SecretForm]:
        """Fresh secrets for ``place`` (a four-letter tag: a leak names where it came from)."""
        self.places[place] = _forms(place.title(), names)
        return self.places[place]

    def leaks(self, text: str) -> list[tuple[str, str, str]]:
        """(place, form, spelling) of every seeded secret in ``text``."""
        lowered = text.lower()
        return [
            (place, form.name, spelling)
            for place, fs in self.places.items()
            for form in fs
            for secret in form.secrets
            for spelling in spellings(secret) | {_sanitised(secret)}
            if spelling in text or spelling.lower() in lowered
        ]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Seeded]:
    with serve(tmp_path_factory.mktemp("redaction") / "home", provider) as server:
        s = Seeded(server)
        uploads: list[tuple[str, bytes]] = []

        docx_props = {
            "title": _one_line(s.seed("dtit", ONE_LINE)),
            "author": _one_line(s.seed("daut", ONE_LINE)),
            "subject": _one_line(s.seed("dsub", ONE_LINE)),
            "keywords": _one_line(s.seed("dkey", ONE_LINE)),
        }
        s.docx_subject = docx_props["subject"]
        body = s.seed("bdoc", ATTACK_FORMS)

        def build(document: DocxDocument) -> None:
            document.add_paragraph("Operations handover note.")
            for form in body:
                document.add_paragraph(form.text)
            for key, value in docx_props.items():
                setattr(document.core_properties, key, value)

        uploads.append(("handover.docx", docx_bytes(build)))
        info = {
            "Title": _one_line(s.seed("ptit", ONE_LINE)),
            "Author": _one_line(s.seed("paut", ONE_LINE)),
            "Subject": _one_line(s.seed("psub", ONE_LINE)),
            "Keywords": _one_line(s.seed("pkey", ONE_LINE)),
        }
        s.pdf_subject = info["Subject"]
        uploads.append(("board-pack.pdf", make_pdf([_body(s.seed("bpdf", ATTACK_FORMS))], info)))
        uploads.append(("handover.txt", _body(s.seed("btxt", ATTACK_FORMS)).encode()))
        for i, form in enumerate(s.seed("name", NAME_FORMS)):
            uploads.append((f"{form.text}.txt", f"Operations note number {i}.\n".encode()))
        for name, data in uploads:
            job = s.server.upload(INGESTER, name, data, acl="ops", source="ops")
            assert job["status"] == "done", job  # each file is ingested (redacted), not refused
            s.jobs.append(job)
        yield s


def _post(server: Server, path: str, body: dict[str, Any]) -> str:
    with server.client(READER, sub="rita") as c:
        r = c.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.text


QUERIES = [
    "aws_secret_access_key password db_password",
    "iban card ssn",
    "BEGIN RSA PRIVATE KEY",
    "Operations handover note",
    "Operations note number",
    "Board pack",
]


def test_no_seeded_secret_comes_back_from_search(seeded: Seeded) -> None:
    found = [_post(seeded.server, "/v1/search", {"query": q, "k": 50}) for q in QUERIES]
    assert sum(len(json.loads(f)["hits"]) for f in found) > 0
    assert seeded.leaks("\n".join(found)) == []


def test_no_seeded_secret_comes_back_from_ask_or_chat(seeded: Seeded) -> None:
    out = []
    for q in QUERIES:
        out.append(_post(seeded.server, "/v1/ask", {"question": f"What does the note say about {q}?", "k": 20}))
        chat = {"model": "strongroom-rag", "messages": [{"role": "user", "content": f"Quote {q}"}], "k": 20}
        out.append(_post(seeded.server, "/v1/chat/completions", chat))
    assert seeded.leaks("\n".join(out)) == []


def test_no_seeded_secret_comes_back_from_documents_versions_or_pages(seeded: Seeded) -> None:
    shown = []
    with seeded.server.client(READER, sub="rita") as c:
        listing = c.get("/v1/documents", params={"limit": 1000})
        assert listing.status_code == 200
        shown.append(listing.text)
        documents = listing.json()["documents"]
        assert len(documents) == len(seeded.jobs)
        for d in documents:
            doc = c.get(f"/v1/documents/{d['document_id']}")
            shown.append(doc.text)
            for v in doc.json()["versions"]:
                for page in range(1, v["pages"] + 1):
                    r = c.get(f"/v1/documents/{d['document_id']}/versions/{v['version_id']}/pages/{page}")
                    assert r.status_code == 200
                    shown.append(r.text)
    assert seeded.leaks("\n".join(shown)) == []


def test_no_seeded_secret_comes_back_from_the_upload_jobs(seeded: Seeded) -> None:
    shown = [json.dumps(seeded.jobs)]
    with seeded.server.client(INGESTER, sub="ingester") as c:
        shown += [c.get(f"/v1/jobs/{job['job_id']}").text for job in seeded.jobs]
    assert seeded.leaks("\n".join(shown)) == []


def test_no_seeded_secret_is_in_the_audit_log(seeded: Seeded) -> None:
    over_http = json.dumps(seeded.server.audit())
    exported = json.dumps(audit_export(seeded.server.home))
    assert "documents.upload" in over_http and "documents.upload" in exported
    assert seeded.leaks(over_http) == [] and seeded.leaks(exported) == []


def test_no_seeded_secret_is_anywhere_under_the_home_folder(seeded: Seeded) -> None:
    """Catalog, its WAL, index snapshots, anchor, anything: read as bytes."""
    found = []
    for path in seeded.server.home.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("latin-1")
            found += [(*leak, path.name) for leak in seeded.leaks(text)]
    assert found == []


def test_a_query_holding_a_secret_is_audited_redacted_with_a_keyed_hash(seeded: Seeded) -> None:
    secret = "Qx7!hunter2Zebra"
    query = f"handover note password: {secret}"
    _post(seeded.server, "/v1/search", {"query": query})
    [record] = [r for r in seeded.server.audit() if r["action"] == "search" and r["query_hmac"]][-1:]
    assert secret not in json.dumps(record) and secret.lower() not in json.dumps(record).lower()
    assert record["query"].startswith("handover note password")  # what may be kept is kept
    key = seeded.server.settings.query_hash_key_path.read_bytes()
    assert record["query_hmac"] == hmac.new(key, query.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("prop", ["pdf.subject", "docx.subject"])
def test_a_metadata_filter_cannot_confirm_a_redacted_property(seeded: Seeded, prop: str) -> None:
    """Guessing the secret property exactly finds no more than a wrong guess."""
    right = seeded.pdf_subject if prop == "pdf.subject" else seeded.docx_subject
    wrong = right.replace(right[-6:], "000000")

    def hits(value: str) -> list[str]:
        found = json.loads(
            _post(seeded.server, "/v1/search", {"query": "Operations handover note", "filters": {prop: value}})
        )
        return [h["version_id"] for h in found["hits"]]

    assert hits(right) == hits(wrong) == []
    with seeded.server.client(READER, sub="rita") as c:
        listed = [c.get("/v1/documents", params={"limit": 1000}).json()]
    shown = [d["current"]["metadata"].get(prop) for d in listed[0]["documents"]]
    assert right not in shown and any(shown)  # the property is there, redacted
