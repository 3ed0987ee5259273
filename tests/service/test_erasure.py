"""The issue's target: after ``erase``, an identifier seeded across documents (text, Markdown and
PDF files through the real ingest path, term-sheet-style metadata), questions (the audit log),
conversations and agent runs (through the platform's own operations) occurs **0 times** in any
file under the home (raw bytes, any case: SQLite main and -wal files, DuckDB, JSON lines, index
snapshots) and, on PostgreSQL, in any table of the store's database. ``verify`` proves it.
Held documents survive. Also the CLI and HTTP entry points."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner, Result

from strongroom.cli import app
from strongroom.config import Settings
from strongroom.errors import DocumentHeld, NotFound, PermissionDenied, QueryError
from strongroom.governance.erasure import MARKER, Needles
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore
from strongroom.llm.routing import Target
from strongroom.service import AskRequest, IngestRequest, Platform, SearchRequest
from strongroom.service.agent_local import LocalAgentRuns
from strongroom.service.agent_runs import AgentRunRequest
from strongroom.service.erasure import Erasures, count_in_bytes, done
from strongroom.testing import HashEmbedder
from strongroom.testing.chat import tool_call
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from strongroom.types import Principal
from tests.ingest.pdf_fixtures import make_pdf
from tests.store.conftest import fresh_database, server_url  # noqa: F401 (the store tests' server fixture)

ROUTE = "research"
ROOT = Principal("root", frozenset({"research"}), frozenset({"reader", "ingester", "admin"}))
ANA = Principal("ana", frozenset({"research"}), frozenset({"reader"}))
_FIRST = ("Zorbu", "Quilla", "Marlo", "Jessamy", "Odran")
_LAST = ("Quaxley", "Fenwarth", "Strauß", "Oyelaran", "Müller-Vey")


def customer(rng: random.Random) -> str:
    """A random customer: a name in no fixture (any match is one this test seeded)."""
    return f"{rng.choice(_FIRST)}{rng.randrange(10**5):05d} {rng.choice(_LAST)}{rng.randrange(10**3):03d}"


class Model:
    """The scripted model: search for the customer (the name in a tool call), then answer naming them."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, body: dict[str, Any]) -> Reply:
        if not any(m["role"] == "tool" for m in body["messages"]):
            return Reply.calls(tool_call("search_documents", {"query": f"{self.name} overdraft"}))
        return Reply.stream(f"{self.name}'s overdraft facility was renewed [1].")


@dataclass
class World:
    settings: Settings
    name: str
    account: str


def account_of(name: str) -> str:
    """The customer's account number (derived from the name, so a failure names both)."""
    rng = random.Random(name)
    return f"QX{rng.randrange(100):02d} {rng.randrange(10**4):04d} {rng.randrange(10**4):04d} {rng.randrange(100):02d}"


def seed(home: Path, files: Path, model_url: str, name: str, *, store_url: str = "") -> World:
    """Put ``name`` and their account number in documents, questions, a conversation and an agent
    run, through the platform."""
    account = account_of(name)
    settings = Settings(home=home, embedder="hash", route_groups={ROUTE: ["research"]}, store_url=store_url)
    save_deployment(
        home, "fake", DeploymentSpec(backend="openai-compatible", url=model_url, model="fake", clearance="restricted")
    )
    RouteStore(home).set_route(ROUTE, [Target("fake", 100)])
    (files / f"letter to {name}.txt").write_text(
        f"Dear {name},\n\nyour overdraft facility on account {account} was renewed until 2027.\n\n"
        "Regards, the credit desk.\n"
    )
    (files / "review.md").write_text(
        f"# Credit review: {name.upper()}\n\nThe borrower {name} keeps a current account.\n\n"
        "| item | 2024 |\n|---|---|\n| Overdraft limit | 5,000 |\n"
    )
    (files / "statement.pdf").write_bytes(
        make_pdf([f"Statement for {name}", "Overdraft facility renewed"], {"Title": f"Statement {name}"})
    )
    (files / "memo.md").write_text("# Credit memo\n\nOverdraft facilities were renewed for the quarter.\n")
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        meta = {"customer": name, "counterparty": f"{name} Holdings"}
        report = p.ingest(
            ROOT,
            IngestRequest(paths=tuple(sorted(files.iterdir())), acl=frozenset({"research"}), meta=meta, roots=(files,)),
        )
        assert report.ingested == 4, report
        p.ask(ANA, AskRequest(question=f"What facility does {name} hold on {account}?"))
        p.search(ANA, SearchRequest(query=f"{name.lower()} overdraft"))
        p.converse(ANA, None, AskRequest(question=f"Summarise the credit review of {name}"))
        with LocalAgentRuns(p) as agent:
            run = agent.ask(ANA, AgentRunRequest(f"Find {name}'s overdraft on {account}", route=ROUTE))
            assert run.status == "answered", run
        p.runtime.store.save_indexes()  # the keyword and vector snapshot files, with the name in them
    return World(settings, name, account)


def files_holding(home: Path, needles: Needles) -> dict[str, int]:
    """Every file under ``home`` whose bytes hold the identifier (any case, unpacked)."""
    found = {}
    for path in sorted(home.rglob("*")):
        if path.is_file() and (n := count_in_bytes(path.read_bytes(), needles)):
            found[str(path.relative_to(home))] = n
    return found


def tables_holding(url: str, needles: Needles) -> dict[str, int]:
    """Every (schema, table) of the database with a row whose text holds the identifier."""
    found = {}
    with psycopg.connect(url, autocommit=True) as db:
        tables = db.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            for (row,) in db.execute(f'SELECT t::text FROM "{schema}"."{table}" t'):  # every column, bytea as hex
                text = str(row)
                n = needles.count(text) + needles.count_bytes(_hex_strings(text))
                if n:
                    found[f"{schema}.{table}"] = found.get(f"{schema}.{table}", 0) + n
    return found


def _hex_strings(text: str) -> bytes:
    """The bytes of every ``\\x..`` bytea literal in a row's text (LangGraph's checkpoints)."""
    out = b""
    for part in text.split("\\\\x")[1:]:
        digits = part[: len(part) - len(part.lstrip("0123456789abcdef"))]
        out += bytes.fromhex(digits[: len(digits) // 2 * 2]) + b"\n"
    return out


@pytest.fixture
def model() -> Iterator[tuple[str, str]]:
    name = customer(random.Random())
    with FakeOpenAIServer(Model(name)) as server:
        yield server.url, name


def _erase(settings: Settings, principal: Principal = ROOT, **kw: Any) -> Any:
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        return done(p.audit, Erasures(p.ops, p.audit).erase(principal, **kw))


def _verify(settings: Settings, erasure_id: str, identifier: str) -> Any:
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        return done(p.audit, Erasures(p.ops, p.audit).verify(ROOT, erasure_id, identifier))


def _erased_everywhere(world: World, store_url: str = "") -> None:
    name, settings, home = world.name, world.settings, world.settings.home
    needles = Needles.of(name)
    before = files_holding(home, needles)
    assert "catalog.sqlite3" in before and any(k.startswith("originals/") for k in before), before
    if store_url:
        assert tables_holding(store_url, needles)
    else:
        assert (home / "index" / "keyword.npz").is_file()  # the snapshot holds the name's terms
    first = name.split()[0].lower()

    report = _erase(settings, identifier=name.upper(), reason=f"DSAR-{name}-114")
    assert report.held == () and report.pending == ()
    assert report.erased["audit"] >= 3 and report.erased["store.pages"] >= 3 and report.originals_removed >= 3
    assert name.casefold() not in str(report.as_dict()).casefold()

    assert files_holding(home, needles) == {}
    if store_url:
        assert tables_holding(store_url, needles) == {}
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        assert p.audit.verify().ok  # the chain still verifies
        found = p.search(ANA, SearchRequest(query=first)).hits  # no keyword index still knows its terms
        assert all(h.keyword_rank is None for h in found)
        p.runtime.store.save_indexes()
        hits = p.search(ANA, SearchRequest(query="overdraft facility renewed")).hits
        assert len(hits) >= 3 and any(MARKER in h.chunk.text for h in hits)
        letter = next(v for v in p.runtime.store.versions() if "letter" in v.source)
        assert letter.metadata["customer"] == MARKER and letter.metadata.get("original") == "erased"
        text = p.runtime.store.page_text(letter.id, 1) or ""
        assert text.startswith(f"Dear {MARKER},")
    assert files_holding(home, needles) == {}  # searching and saving the indexes brought nothing back
    proof = _verify(settings, report.plan.erasure_id, f" {name.lower()} ")
    assert proof.proven and proof.searched > 10, proof.as_dict()
    assert files_holding(home, needles) == {}  # verifying wrote no trace of it either
    account = Needles.of(world.account)
    assert files_holding(home, account)  # the account number is still there: the next erasure's job
    erased = _erase(settings, identifier=world.account.replace(" ", ""), reason="DSAR-114, the account")
    assert sum(erased.erased.values()) >= 1 and erased.pending == ()
    assert files_holding(home, account) == {} and files_holding(home, needles) == {}
    if store_url:
        assert tables_holding(store_url, account) == {}
    assert _verify(settings, erased.plan.erasure_id, world.account).proven
    if store_url:  # the database search can fail: a copy in any schema, any column type, is found
        with psycopg.connect(store_url, autocommit=True) as db:
            db.execute("CREATE SCHEMA side; CREATE TABLE side.copy (t text, j jsonb, b bytea, n int)")
            db.execute(
                "INSERT INTO side.copy VALUES (%s, %s, %s, 1)",
                (name.upper(), json.dumps({"who": name}), f"\x00{name}\x00".encode()),
            )
        found = _verify(settings, report.plan.erasure_id, name).found
        assert found == {"postgres:side.copy.t": 1, "postgres:side.copy.j": 1, "postgres:side.copy.b": 1}, found


def test_an_erased_identifier_is_in_no_file_under_the_home(tmp_path: Path, model: tuple[str, str]) -> None:
    url, name = model
    files = tmp_path / "files"
    files.mkdir()
    world = seed(tmp_path / "home", files, url, name)
    _erased_everywhere(world)


@pytest.mark.integration
def test_an_erased_identifier_is_in_no_file_and_no_postgres_table(
    tmp_path: Path,
    model: tuple[str, str],
    server_url: str,  # noqa: F811
) -> None:
    url, name = model
    files = tmp_path / "files"
    files.mkdir()
    database = conninfo_to_dict(fresh_database(server_url))
    where = f"host={database['host']}&port={database.get('port', 5432)}"  # a socket folder: in the query
    store_url = f"postgresql://{database['user']}@/{database['dbname']}?{where}"
    world = seed(tmp_path / "home", files, url, name, store_url=store_url)
    _erased_everywhere(world, store_url)


def test_verify_refuses_the_wrong_identifier_and_finds_what_is_left(tmp_path: Path, model: tuple[str, str]) -> None:
    url, name = model
    files = tmp_path / "files"
    files.mkdir()
    world = seed(tmp_path / "home", files, url, name)
    report = _erase(world.settings, identifier=name, reason="DSAR 1")
    with pytest.raises(PermissionDenied, match="not the identifier"):
        _verify(world.settings, report.plan.erasure_id, name + "x")
    with pytest.raises(NotFound):
        _verify(world.settings, "nope", name)
    stray = world.settings.home / "exports" / "copy.jsonl"
    stray.parent.mkdir()
    stray.write_text(f'{{"who": "{name.title()}"}}\n')  # a copy someone left under the home
    proof = _verify(world.settings, report.plan.erasure_id, name)
    assert not proof.proven and proof.found == {"file:exports/copy.jsonl": 1}
    again = _erase(world.settings, identifier=name, reason="DSAR 1, again")  # no step reaches it: it says so
    assert again.pending == ("file:exports/copy.jsonl still holds it",) and stray.is_file()


def test_bad_requests_are_refused_and_change_nothing(tmp_path: Path, model: tuple[str, str]) -> None:
    url, name = model
    files = tmp_path / "files"
    files.mkdir()
    world = seed(tmp_path / "home", files, url, name)
    before = files_holding(world.settings.home, Needles.of(name))
    for kw in ({"identifier": "ab"}, {"identifier": name, "document_id": "x"}, {}, {"identifier": "[erased]x"}):
        with pytest.raises(QueryError):
            _erase(world.settings, reason="r", **kw)
    with pytest.raises(QueryError, match="reason"):
        _erase(world.settings, identifier=name, reason=" ")
    with pytest.raises(PermissionDenied):
        _erase(world.settings, ANA, identifier=name, reason="not mine to erase")
    assert files_holding(world.settings.home, Needles.of(name)).keys() == before.keys()
    db = sqlite3.connect(world.settings.catalog_path)
    try:
        assert db.execute("SELECT count(*) FROM versions WHERE title LIKE '%erased%'").fetchone() == (0,)
    finally:
        db.close()


# -- legal holds -------------------------------------------------------------------------------


def test_a_held_document_survives_erasure_until_its_hold_is_released(tmp_path: Path, model: tuple[str, str]) -> None:
    url, name = model
    files = tmp_path / "files"
    files.mkdir()
    world = seed(tmp_path / "home", files, url, name)
    needles = Needles.of(name)
    with Platform.open(world.settings, embedder=HashEmbedder(64)) as p:
        review = p.find_document(ROOT, "review.md")
        hold = p.retaining(lambda r: r.place(ROOT, "M-2026-7", "litigation", document_id=review.document_id))
        held_version = review.current.id
        before = p.runtime.store.page_text(held_version, 1)
    assert before is not None and needles.count(before) == 2

    report = _erase(world.settings, identifier=name, reason="DSAR 7")
    assert report.held == (review.document_id,)
    with Platform.open(world.settings, embedder=HashEmbedder(64)) as p:
        assert p.runtime.store.page_text(held_version, 1) == before  # not altered
        assert (world.settings.home / "originals" / held_version).is_file()  # nor its original deleted
    proof = _verify(world.settings, report.plan.erasure_id, name)
    assert not proof.proven and proof.found["store.pages"] == 2  # the held page's two, and nothing but the held
    assert set(proof.found) == {"store.pages", "store.chunks", "store.versions", "file:catalog.sqlite3",
                                f"file:originals/{held_version}"}  # fmt: skip
    with pytest.raises(DocumentHeld, match="M-2026-7"):
        _erase(world.settings, document_id=review.document_id, reason="DSAR 7, the whole review")

    with Platform.open(world.settings, embedder=HashEmbedder(64)) as p:
        p.retaining(lambda r: r.release(ROOT, hold.id))
    again = _erase(world.settings, identifier=name, reason="DSAR 7, hold released")
    assert again.held == () and again.erased["store.pages"] == 2
    assert _verify(world.settings, again.plan.erasure_id, name).proven
    assert files_holding(world.settings.home, needles) == {}


def test_erasing_a_document_keeps_only_that_it_existed(tmp_path: Path, model: tuple[str, str]) -> None:
    url, name = model
    files = tmp_path / "files"
    files.mkdir()
    world = seed(tmp_path / "home", files, url, name)
    with Platform.open(world.settings, embedder=HashEmbedder(64)) as p:
        letter = next(v for v in p.runtime.store.versions() if "letter" in v.source)
    report = _erase(world.settings, document_id=letter.document_id, reason="DSAR 8")
    assert report.found["store.versions"] == 1 and report.originals_removed == 1
    assert not (world.settings.home / "originals" / letter.id).exists()
    with Platform.open(world.settings, embedder=HashEmbedder(64)) as p:
        assert p.runtime.store.versions(letter.document_id) == []
        assert all("letter" not in v.source for v in p.runtime.store.versions())
        with pytest.raises(NotFound):
            p.find_document(ROOT, letter.source)
    with pytest.raises(NotFound):
        _erase(world.settings, document_id=letter.document_id, reason="again")
    proof = _verify(world.settings, report.plan.erasure_id, "")  # a document erasure needs no identifier
    assert proof.proven, proof.as_dict()
    with pytest.raises(QueryError, match="identifier"):  # an identifier erasure still does
        _verify(world.settings, _erase(world.settings, identifier=name, reason="DSAR 8b").plan.erasure_id, " ")


class Quoting:
    """The scripted model for a document: search (agent), then answer quoting its sentence."""

    def __init__(self, sentence: str) -> None:
        self.sentence = sentence

    def __call__(self, body: dict[str, Any]) -> Reply:
        if body.get("tools") and not any(m["role"] == "tool" for m in body["messages"]):
            return Reply.calls(tool_call("search_documents", {"query": "turbine contract cancelled forged invoices"}))
        return Reply.stream(f"As the review says: {self.sentence} [1]")


def raw_count(home: Path, needle: str) -> dict[str, int]:
    """Files under ``home`` whose raw bytes hold ``needle`` (ASCII, any case): a plain count,
    not the erasure's matcher."""
    found = {}
    for path in sorted(home.rglob("*")):
        if path.is_file() and (n := path.read_bytes().lower().count(needle.lower().encode())):
            found[str(path.relative_to(home))] = n
    return found


def test_erasing_a_document_reaches_every_copy_of_its_text_and_verify_proves_it(tmp_path: Path) -> None:
    tag = f"{random.Random().randrange(10**6):06d}"
    sentence = f"The Halvorsen{tag} turbine contract was cancelled after the audit found forged invoices."
    title = f"Halvorsen{tag} turbine review"
    file_name = f"halvorsen{tag}-review.md"
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    (files / file_name).write_text(f"# {title}\n\n{sentence}\n\nThe board met twice in March.\n")
    (files / "memo.md").write_text("# Credit memo\n\nOverdraft facilities were renewed for the quarter.\n")
    settings = Settings(home=home, embedder="hash", route_groups={ROUTE: ["research"]})
    with FakeOpenAIServer(Quoting(sentence)) as server:
        save_deployment(
            home,
            "fake",
            DeploymentSpec(backend="openai-compatible", url=server.url, model="fake", clearance="restricted"),
        )
        RouteStore(home).set_route(ROUTE, [Target("fake", 100)])
        with Platform.open(settings, embedder=HashEmbedder(64)) as p:
            request = IngestRequest(paths=tuple(sorted(files.iterdir())), acl=frozenset({"research"}), roots=(files,))
            assert p.ingest(ROOT, request).ingested == 2
            turn = p.converse(ANA, None, AskRequest(question="Why was the turbine contract cancelled?"))
            with LocalAgentRuns(p) as agent:
                run = agent.ask(ANA, AgentRunRequest("Why was the turbine contract cancelled?", route=ROUTE))
                assert run.status == "answered", run
            review = p.find_document(ROOT, file_name)
            p.runtime.store.save_indexes()
    before = raw_count(home, sentence)
    assert "catalog.sqlite3" in before and "agent_checkpoints.sqlite3" in before, before  # the test can fail
    assert sum(before.values()) >= 4 and raw_count(home, title) and raw_count(home, file_name)

    report = _erase(settings, document_id=review.document_id, reason="DSAR 12, the whole review")
    assert report.pending == () and report.found["rows.conversations.turns"] >= 1, report.as_dict()
    assert report.erased["rows.agent_runs.events"] >= 1 and report.erased["rows.agent_checkpoints"] == 1
    assert report.erased["audit"] >= 1
    for needle in (sentence, title, file_name, f"Halvorsen{tag}"):
        assert raw_count(home, needle) == {}, needle
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        assert p.audit.verify().ok  # the chain still verifies
        thread = p.conversation(ANA, turn.conversation_id)  # it still opens, and says what went
        assert len(thread.turns) == 1 and "withheld" in thread.turns[0].answer["answer"]
        assert p.runtime.store.versions(review.document_id) == []
        memo = p.find_document(ROOT, "memo.md")  # the other document is as it was
        assert p.runtime.store.page_text(memo.current.id, 1) is not None
    runs = sqlite3.connect(settings.catalog_path)
    try:  # the run lost its saved steps; it was answered, so its status stands
        assert runs.execute("SELECT status FROM agent_runs WHERE id = ?", (run.id,)).fetchone() == ("answered",)
        (answer,) = runs.execute("SELECT answer FROM conversation_turns").fetchone()
        assert MARKER in answer and review.current.id in answer  # the quote went, the version id stays
    finally:
        runs.close()
    proof = _verify(settings, report.plan.erasure_id, "")
    assert proof.proven and proof.searched >= 5, proof.as_dict()
    cli = ["erasure", "verify", report.plan.erasure_id, "--home", str(home), "--groups", "research", "--json"]
    proven = CliRunner().invoke(app, cli, env=ADMIN_ENV)
    assert proven.exit_code == 0 and json.loads(proven.stdout)["proven"] is True, proven.output

    copy = home / "uploads" / "again.md"  # a copy of its original left in the uploads: verify finds it
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes((files / file_name).read_bytes())
    proof = _verify(settings, report.plan.erasure_id, "")
    assert not proof.proven and proof.found == {"uploads.copies": 1}, proof.as_dict()


def test_a_document_s_quotes_names_and_citations_are_scrubbed_and_json_stays_json() -> None:
    from strongroom.service.erasure_rows import DocumentText

    page = "The Halvorsen turbine contract was cancelled after the audit found forged invoices."
    names = ["Halvorsen review", "files/halvorsen-review.md", "halvorsen-review.md"]
    doc = DocumentText({"v1"}, {"c1"}, [page], names)
    cited = {"version_id": "v1", "quote": "was cancelled", "title": "Halvorsen review", "page": 1}
    other = {"version_id": "v2", "quote": "was cancelled", "title": "Other memo", "page": 2}
    said = "It said: the halvorsen  TURBINE contract\nwas cancelled (see halvorsen-review.md). Nothing else."
    answer = json.dumps(
        {"answer": said, "citations": [cited, other], "steps": json.dumps([{"chunk_id": "c1", "text": "x"}])}
    )
    out = json.loads(doc.scrub(answer))
    assert out["citations"][0] == {**cited, "quote": MARKER, "title": MARKER}  # the ids and places stay
    assert out["citations"][1] == other  # another document's citation, a short quote: as it was
    assert out["answer"] == f"It said: {MARKER}(see {MARKER}). Nothing else."  # quote and file name, any case
    assert json.loads(out["steps"]) == [{"chunk_id": "c1", "text": MARKER}]  # JSON inside a JSON string
    assert doc.scrub("nothing of it here") == "nothing of it here" and doc.scrub("{not json") == "{not json"
    assert doc.holds(b"\x92\xa2v1") and doc.holds(page.upper().encode()) and not doc.holds(b"an unrelated text")
    proof = DocumentText({"v1"}, {"c1"})  # verify's: no text, only the ids
    assert proof.scrub(answer) != answer  # a citation with its quote: found
    scrubbed = doc.scrub(answer)
    assert proof.scrub(scrubbed) == scrubbed  # once erased: nothing left to find


# -- the command line --------------------------------------------------------------------------

ADMIN_ENV = {"STRONGROOM_EMBEDDER": "hash", "STRONGROOM_CLI_ROLES": '["reader","ingester","admin"]'}


def test_the_command_line_erases_verifies_and_lists(tmp_path: Path, model: tuple[str, str]) -> None:
    url, name = model
    files = tmp_path / "files"
    files.mkdir()
    world = seed(tmp_path / "home", files, url, name)
    home = ["--home", str(world.settings.home), "--groups", "research"]

    def invoke(*args: str, env: dict[str, str] = ADMIN_ENV, stdin: str | None = None) -> Result:
        return CliRunner().invoke(app, [*args, *home], env=env, input=stdin)

    refused = invoke("erasure", "erase", "--identifier", name, "--reason", "r",
                     env={**ADMIN_ENV, "STRONGROOM_CLI_ROLES": '["reader"]'})  # fmt: skip
    assert refused.exit_code == 1 and "admin" in refused.output
    assert invoke("erasure", "erase", "--reason", "r").exit_code == 2  # neither --identifier nor --document
    assert invoke("erasure", "erase", "--identifier", "ab", "--reason", "r").exit_code == 2
    done_ = invoke("erasure", "erase", "--identifier", "-", "--reason", "DSAR 9", "--json", stdin=name + "\n")
    assert done_.exit_code == 0, done_.output
    erased = json.loads(done_.stdout)
    assert erased["erased"]["store.pages"] >= 3 and name.lower() not in done_.stdout.lower()
    erasure_id = erased["erasure_id"]

    wrong = invoke("erasure", "verify", erasure_id, "--identifier", "Somebody Else")
    assert wrong.exit_code == 1 and "not the identifier" in wrong.output
    proven = invoke("erasure", "verify", erasure_id, "--identifier", "-", "--json", stdin=name.upper() + "\n")
    assert proven.exit_code == 0, proven.output
    assert json.loads(proven.stdout)["proven"] is True
    (world.settings.home / "left.txt").write_text(f"a copy of {name}")
    found = invoke("erasure", "verify", erasure_id, "--identifier", name)
    assert found.exit_code == 1 and "left.txt" in found.output
    listed = invoke("erasure", "list", "--json")
    assert listed.exit_code == 0 and [e["erasure_id"] for e in json.loads(listed.stdout)] == [erasure_id]
    assert name.lower() not in listed.stdout.lower()


def test_a_big_file_is_searched_in_blocks_and_a_match_across_two_blocks_counted_once(tmp_path: Path) -> None:
    from strongroom.service import erasure_files

    needles = Needles.of("Jane Quixote")
    big = tmp_path / "big.bin"
    block = erasure_files._BLOCK
    with big.open("wb") as fh:  # one match across the first block's end, one inside the overlap, one later
        fh.write(b"\0" * (block - 5) + b"jane quixote" + b"\0" * 100 + b"JANE QUIXOTE")
        fh.write(b"\0" * (erasure_files._WHOLE + 1) + b"Jane\nQuixote")
    assert erasure_files.count_in_file(big, needles) == 3


def test_packed_files_are_searched_unpacked(tmp_path: Path) -> None:
    import gzip

    import numpy as np

    from strongroom.service.erasure import search_files

    name = "Jürgen Quixote"
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(json.dumps({"who": name}).encode()))
    np.savez(tmp_path / "terms.npz", terms=np.array(["jürgen quixote", "other"]))  # UTF-32 inside
    np.save(tmp_path / "plain.npy", np.array(["JÜRGEN QUIXOTE"]))
    (tmp_path / "clean.txt").write_text("nothing here")
    found = dict(search_files(tmp_path, Needles.of(name)))
    assert found == {"a.jsonl.gz": 1, "terms.npz": 1, "plain.npy": 1, "clean.txt": 0}


def test_a_pdf_is_searched_inside_its_compressed_streams(tmp_path: Path) -> None:
    import zlib

    from strongroom.service.erasure import search_files

    content = zlib.compress(b"BT /F1 12 Tf 72 700 Td (Statement for Jane Quixote) Tj ET")
    pdf = b"%PDF-1.4\n1 0 obj << /Length " + str(len(content)).encode() + b" /Filter /FlateDecode >>\nstream\n"
    (tmp_path / "statement.pdf").write_bytes(pdf + content + b"\nendstream\nendobj\n%%EOF\n")
    assert dict(search_files(tmp_path, Needles.of("jane quixote"))) == {"statement.pdf": 1}
