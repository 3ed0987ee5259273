"""The redaction corpus: a seeded secret in every place it can be written, ingested for real, then
every file under the home folder (SQLite catalog and WAL, index snapshots, anything) read as bytes.

Places: the body of a TXT, Markdown, HTML, Word, PDF and Excel file; the file name; the title
(PDF Info, Word core properties, HTML <title>); the PDF Info Author, Subject and Keywords; the Word
Author, Subject and Keywords; the batch's --meta values and its --source. Every form in
:mod:`secret_forms` goes into every place that can hold it, each with its own tag, and no
spelling of any seeded value (as written, lower case, run together) may be found afterwards.
"""

from __future__ import annotations

import html
import logging
import re
import time
from pathlib import Path

import pytest
from docx.document import Document as DocxDocument

from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from strongroom.types import Scope
from tests.ingest.office_fixtures import docx_bytes, xlsx_bytes
from tests.ingest.pdf_fixtures import make_pdf
from tests.understand.secret_forms import SecretForm, forms, spellings

PUBLIC = frozenset({"public"})


def _lines(fs: list[SecretForm]) -> str:
    return "Quarterly operations note.\n\n" + "\n\n".join(f.text for f in fs) + "\n\nKind regards,\nOps\n"


def _docx(paragraphs: list[str], props: dict[str, str]) -> bytes:
    def build(document: DocxDocument) -> None:
        for text in paragraphs:
            document.add_paragraph(text)
        for key, value in props.items():
            setattr(document.core_properties, key, value)

    return docx_bytes(build)


def _write_corpus(folder: Path) -> dict[str, list[SecretForm]]:
    """Every file of the corpus; returns the seeded forms by place."""
    seeded: dict[str, list[SecretForm]] = {}

    def seed(place: str) -> list[SecretForm]:
        seeded[place] = forms(_tag(place))
        return seeded[place]

    body = seed("btxt")
    (folder / "body.txt").write_text(_lines(body))
    (folder / "body.md").write_text("# Ops note\n\n" + _lines(seed("bmdn")))
    pre = seed("bhtm")
    (folder / "body.html").write_text(
        "<html><head><title>Ops</title></head><body>"
        + "".join(f"<pre>{html.escape(f.text)}</pre>" for f in pre)
        + "</body></html>"
    )
    (folder / "body.docx").write_bytes(_docx([f.text for f in seed("bdoc")], {}))
    (folder / "body.pdf").write_bytes(make_pdf([_lines(seed("bpdf"))]))
    (folder / "body.xlsx").write_bytes(xlsx_bytes({"Creds": [[f.text, "rotated"] for f in seed("bxls")]}))
    for i, form in enumerate(f for f in seed("name") if f.file_name_ok):
        (folder / f"{form.one_line()}.txt").write_text(f"Operations note number {i}.")
    for i, (title, author, subject, keywords) in enumerate(
        zip(seed("ptit"), seed("paut"), seed("psub"), seed("pkey"), strict=True)
    ):
        info = {
            "Title": title.one_line(),
            "Author": author.one_line(),
            "Subject": subject.one_line(),
            "Keywords": keywords.one_line(),
        }
        (folder / f"props{i}.pdf").write_bytes(make_pdf([f"Board pack page {i}."], info))
    for i, (title, author, subject, keywords) in enumerate(
        zip(seed("dtit"), seed("daut"), seed("dsub"), seed("dkey"), strict=True)
    ):
        props = {
            "title": title.one_line(),
            "author": author.one_line(),
            "subject": subject.one_line(),
            "keywords": keywords.one_line(),
        }
        (folder / f"props{i}.docx").write_bytes(_docx([f"Minutes of meeting {i}."], props))
    for i, form in enumerate(seed("htit")):
        (folder / f"titled{i}.html").write_text(
            f"<html><head><title>{html.escape(form.one_line())}</title></head><body><p>Page {i}.</p></body></html>"
        )
    return seeded


def _tag(place: str) -> str:
    """The tag of a place's secrets. It appears inside their values and nowhere else, so finding it
    at all means a piece of a secret was kept (a keyword index stores a value as its tokens)."""
    return f"Zq{place.title()}7"


def _needles(seeded: dict[str, list[SecretForm]]) -> dict[bytes, tuple[str, str]]:
    """Lower-cased strings to look for, each naming the place and form it came from: every spelling
    of every value, every run of six or more letters and digits in it (a keyword index keeps a value
    as its tokens), and each place's tag."""
    needles: dict[bytes, tuple[str, str]] = {}
    for place, fs in seeded.items():
        texts = {(_tag(place), "tag")}
        for form in fs:
            for secret in form.secrets:
                texts |= {(s, form.name) for s in spellings(secret)}
                texts |= {(run, form.name) for run in re.findall(r"[A-Za-z0-9]{6,}", secret)}
        for text, name in texts:
            needles.setdefault(text.lower().encode(), (place, name))
    return needles


def _haystack(path: Path) -> bytes:
    """The file lower-cased, and again without its NUL bytes: SQLite keeps UTF-8, while the index
    snapshots keep numpy unicode arrays (UTF-32), whose ASCII text is UTF-8 once the NULs are gone."""
    data = path.read_bytes().lower()
    return data + b"\n" + data.replace(b"\x00", b"")


def _leaks(home: Path, seeded: dict[str, list[SecretForm]]) -> list[tuple[str, str, str, str]]:
    blobs = {path: _haystack(path) for path in home.rglob("*") if path.is_file()}
    assert blobs, "nothing was written under the home folder"
    return [
        (place, name, needle.decode(), path.name)
        for needle, (place, name) in _needles(seeded).items()
        for path, blob in blobs.items()
        if needle in blob
    ]


def test_no_seeded_secret_is_anywhere_under_the_home_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    seeded = _write_corpus(docs)
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "plain.txt").write_text("A note with nothing secret in it.")
    meta_forms = seeded["meta"] = forms(_tag("meta"))
    meta = {f"note{i}": f.one_line() for i, f in enumerate(meta_forms)}
    meta["db_password"] = "MetaLabelled77"  # a value only its key makes a password
    seeded["meta"].append(SecretForm("meta_key", "db_password=MetaLabelled77", ("MetaLabelled77",), "password"))
    seeded["source"] = [SecretForm("source", "s3://svc:SrcPass77@bucket", ("SrcPass77",), "password")]

    home = tmp_path / "home"
    runtime = open_runtime(Settings(home=home, embedder="hash"), HashEmbedder(64))
    try:
        with caplog.at_level(logging.DEBUG):
            report = ingest([docs], runtime.store, runtime.embedder, IngestOptions())
            assert report.ok, report.failures
            meta_report = ingest(
                [batch], runtime.store, runtime.embedder, IngestOptions(meta=meta, source="s3://svc:SrcPass77@bucket")
            )
            assert meta_report.ok, meta_report.failures
        files = len(list(docs.iterdir()))
        assert report.ingested == files, report.as_dict()
        versions = runtime.store.versions()
        assert len(versions) == files + 1
        by_name = {v.source.rsplit("/", 1)[-1]: v for v in versions}
        body = by_name["body.txt"]
        assert body.metadata["sensitivity"] == "restricted"  # it holds credentials
        assert int(body.metadata["redacted"]) >= len(seeded["btxt"])
        assert "[REDACTED:PASSWORD]" in (runtime.store.page_text(body.id, 1) or "")
        assert "passwd=[REDACTED:PASSWORD].txt" in by_name  # a redacted file name keeps its extension
        runtime.store.save_indexes()
        assert _leaks(home, seeded) == []  # the catalog, its WAL and the index snapshots, while open
    finally:
        runtime.close()

    logged = caplog.text
    in_logs = [(place, f.name) for place, fs in seeded.items() for f in fs for s in f.secrets if s in logged]
    assert in_logs == []
    assert _leaks(home, seeded) == []


def test_a_redacted_property_cannot_be_confirmed_by_a_metadata_filter(tmp_path: Path) -> None:
    subject = "Rotation note, password: Hunter2Subject"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.pdf").write_bytes(make_pdf(["Credential rotation schedule."], {"Subject": subject}))
    runtime = open_runtime(Settings(home=tmp_path / "home", embedder="hash"), HashEmbedder(64))
    try:
        assert ingest([docs], runtime.store, runtime.embedder, IngestOptions()).ingested == 1
        (version,) = runtime.store.versions()
        assert version.metadata["pdf.subject"] == "Rotation note, password: [REDACTED:PASSWORD]"
        time.sleep(1.05 - time.time() % 1)  # the store reads "now" to the second: let the version be knowable

        def hits(value: str) -> int:
            scope = Scope(PUBLIC, filters={"pdf.subject": value})
            return len(runtime.store.keyword_search("credential rotation schedule", scope, 5))

        assert hits(subject) == 0  # a guess of the secret matches nothing, right or wrong
        assert hits("Rotation note, password: wrong-guess") == 0
        assert hits(version.metadata["pdf.subject"]) == 1
    finally:
        runtime.close()


def test_reingesting_a_file_with_a_secret_in_its_name_finds_the_same_document(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    path = docs / "passwd=hunter2Twice.txt"
    path.write_text("First version.")
    runtime = open_runtime(Settings(home=tmp_path / "home", embedder="hash"), HashEmbedder(64))
    try:
        ingest([docs], runtime.store, runtime.embedder, IngestOptions(source="drive"))
        path.write_text("Second version.")
        ingest([docs], runtime.store, runtime.embedder, IngestOptions(source="drive"))
        versions = runtime.store.versions()
        assert len(versions) == 2 and len({v.document_id for v in versions}) == 1
        assert {v.source for v in versions} == {"drive/passwd=[REDACTED:PASSWORD].txt"}
        assert all("hunter2Twice" not in v.title for v in versions)
    finally:
        runtime.close()


def test_a_failure_reason_names_the_file_with_its_secret_redacted(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "passwd=hunter2Bad.pdf").write_bytes(b"<html>not a pdf</html>")
    runtime = open_runtime(Settings(home=tmp_path / "home", embedder="hash"), HashEmbedder(64))
    try:
        (failure,) = ingest([docs], runtime.store, runtime.embedder, IngestOptions()).failures
    finally:
        runtime.close()
    assert "hunter2Bad" not in failure.error
    assert failure.error.startswith("passwd=[REDACTED:PASSWORD].pdf: not a PDF")
