"""Attack: look-ahead (issue 15, "Why"). A version published in the future must be invisible on
every path, whatever clock a caller asks for; a bare date means the same instant (the end of
that day, UTC) over HTTP and on the command line; ``as_of`` alone is a back-test and
``known_at`` hides what the platform learned later.

The corpus is ingested for real: with the CLI (``--published``) and with uploads over HTTP
(the ``published`` form field), into one home that a real server then serves.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.attack.conftest import Server, cli, cli_json, cli_many, serve
from tests.auth.oidc_provider import Provider

pytestmark = pytest.mark.integration

READER = ["desk", "readers"]
INGESTER = ["desk", "ingesters"]
FUTURE_WORD = "zeppelin"  # only the future versions say it
V1 = "Outlook for the desk. Revenue guidance for the alpha fund stays at 42 million.\n"
V2 = f"Outlook for the desk. The {FUTURE_WORD} merger closes and revenue guidance doubles to 84 million.\n"
MEMO_V1 = "Memo to the desk. Treasury funding costs were stable in the quarter.\n"
MEMO_V2 = f"Memo to the desk. Treasury funding costs jump after the {FUTURE_WORD} deal.\n"
NOON = "Noon bulletin. The kingfisher bond priced at par at noon.\n"
BACK = "Archive letter. The heron trust paid a special dividend.\n"
LATE = "Late note. The osprey fund opened to new investors.\n"
FAR = "2999-01-01T00:00:00Z"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Corpus:
    server: Server
    outlook_id: str  # the document with a future version ingested with the CLI
    memo_id: str  # the document with a future version uploaded over HTTP
    v1_ingested_at: datetime


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Corpus]:
    root = tmp_path_factory.mktemp("lookahead")
    home = root / "home"
    # the version current now, then a new version of the same document published in 2030
    for folder, text, published in [("v1", V1, "2024-01-01"), ("v2", V2, "2030-01-01")]:
        (root / folder).mkdir()
        (root / folder / "outlook.txt").write_text(text)
        args = ("ingest", str(root / folder), "--source", "desk", "--acl", "desk", "--groups", "desk")
        cli_json(home, *args, "--published", published)
    with serve(home, provider) as server:
        with server.client(READER) as c:
            docs = {d["source"]: d for d in c.get("/v1/documents").json()["documents"]}
        for name, text, published in [
            ("memo.txt", MEMO_V1, "2023-01-01"),
            ("memo.txt", MEMO_V2, "2031-06-01"),  # the upload form's field: a version published in 2031
            ("noon.txt", NOON, "2024-03-01T12:00:00Z"),
            ("back.txt", BACK, "2001-01-02"),
            ("late.txt", LATE, "2024-01-01"),  # ingested after outlook v1
        ]:
            job = server.upload(INGESTER, name, text.encode(), acl="desk", source="desk", published=published)
            assert job["status"] == "done", job
            if name == "memo.txt":
                memo_id = job["files"][0]["document_id"]
        outlook = docs["desk/outlook.txt"]
        yield Corpus(server, outlook["document_id"], memo_id, datetime.fromisoformat(outlook["current"]["ingested_at"]))


CLOCKS: list[dict[str, str]] = [
    {},
    {"as_of": FAR},
    {"known_at": FAR},
    {"as_of": FAR, "known_at": FAR},
    {"as_of": "2999-01-01"},
]
CLOCK_IDS = ["no clock", "as_of 2999", "known_at 2999", "both 2999", "as_of bare 2999"]


def _post(corpus: Corpus, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with corpus.server.client(READER) as c:
        r = c.post(path, json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _no_future(response: dict[str, Any] | list[Any]) -> None:
    shown = (
        {k: v for k, v in response.items() if k not in ("question", "query")}
        if isinstance(response, dict)
        else response
    )
    text = json.dumps(shown)  # the question itself names the future word
    assert FUTURE_WORD not in text, f"a version published in the future came back: {text[:600]}"
    assert sha(V2) not in text and sha(MEMO_V2) not in text


@pytest.mark.parametrize("clocks", CLOCKS, ids=CLOCK_IDS)
def test_http_search_never_returns_a_version_published_in_the_future(corpus: Corpus, clocks: dict[str, str]) -> None:
    found = _post(corpus, "/v1/search", {"query": f"{FUTURE_WORD} outlook revenue guidance memo", "k": 10, **clocks})
    _no_future(found)
    versions = {h["version_id"] for h in found["hits"]}
    assert sha(V1) in versions and sha(MEMO_V1) in versions  # the current versions are found instead


@pytest.mark.parametrize("clocks", CLOCKS, ids=CLOCK_IDS)
def test_http_ask_never_answers_from_a_version_published_in_the_future(corpus: Corpus, clocks: dict[str, str]) -> None:
    answer = _post(
        corpus, "/v1/ask", {"question": f"What does the {FUTURE_WORD} merger do to revenue guidance?", **clocks}
    )
    _no_future(answer)


@pytest.mark.parametrize("clocks", CLOCKS, ids=CLOCK_IDS)
def test_http_chat_completion_never_answers_from_the_future(corpus: Corpus, clocks: dict[str, str]) -> None:
    messages = [{"role": "user", "content": f"What does the {FUTURE_WORD} deal do to funding costs?"}]
    _no_future(_post(corpus, "/v1/chat/completions", {"model": "strongroom-rag", "messages": messages, **clocks}))


@pytest.mark.parametrize("clocks", CLOCKS, ids=CLOCK_IDS)
def test_http_document_lists_and_versions_never_show_a_future_version(corpus: Corpus, clocks: dict[str, str]) -> None:
    with corpus.server.client(READER) as c:
        listing = c.get("/v1/documents", params=clocks)
        outlook = c.get(f"/v1/documents/{corpus.outlook_id}", params=clocks)
        memo = c.get(f"/v1/documents/{corpus.memo_id}", params=clocks)
    assert listing.status_code == outlook.status_code == memo.status_code == 200
    for r in (listing, outlook, memo):
        _no_future(r.json())
    assert [v["version_id"] for v in outlook.json()["versions"]] == [sha(V1)]
    assert [v["version_id"] for v in memo.json()["versions"]] == [sha(MEMO_V1)]


@pytest.mark.parametrize("clocks", CLOCKS, ids=CLOCK_IDS)
def test_http_a_future_version_s_pages_are_not_found(corpus: Corpus, clocks: dict[str, str]) -> None:
    """The version id is the SHA-256 of the bytes: whoever holds the file can name it."""
    with corpus.server.client(READER) as c:
        for document_id, version_id in [(corpus.outlook_id, sha(V2)), (corpus.memo_id, sha(MEMO_V2))]:
            r = c.get(f"/v1/documents/{document_id}/versions/{version_id}/pages/1", params=clocks)
            assert r.status_code == 404, r.text
            assert FUTURE_WORD not in r.text
        current = c.get(f"/v1/documents/{corpus.outlook_id}/versions/{sha(V1)}/pages/1", params=clocks)
    assert current.status_code == 200 and "alpha fund" in current.json()["text"]


def _http_hits(corpus: Corpus, query: str, **clocks: str) -> set[str]:
    return {h["version_id"] for h in _post(corpus, "/v1/search", {"query": query, "k": 10, **clocks})["hits"]}


def test_http_a_bare_date_means_the_end_of_that_day_utc(corpus: Corpus) -> None:
    """Published 2024-03-01T12:00Z: "as of 2024-03-01" includes it, "as of 2024-02-29" does not."""
    assert sha(NOON) in _http_hits(corpus, "kingfisher bond noon", as_of="2024-03-01")
    assert sha(NOON) not in _http_hits(corpus, "kingfisher bond noon", as_of="2024-02-29")
    with corpus.server.client(READER) as c:
        listed = c.get("/v1/documents", params={"as_of": "2024-03-01"}).json()["documents"]
    assert sha(NOON) in {d["current"]["version_id"] for d in listed}


def test_http_as_of_alone_is_a_back_test_over_what_was_ingested_just_now(corpus: Corpus) -> None:
    """Published in 2001, ingested minutes ago: a back-test as of 2010 sees it."""
    assert sha(BACK) in _http_hits(corpus, "heron trust special dividend", as_of="2010-01-01")
    assert sha(BACK) not in _http_hits(corpus, "heron trust special dividend", as_of="2000-12-31")


def test_http_known_at_in_the_past_hides_what_was_ingested_after_it(corpus: Corpus) -> None:
    before = (corpus.v1_ingested_at + timedelta(milliseconds=200)).isoformat()
    assert sha(V1) in _http_hits(corpus, "alpha fund revenue guidance", known_at=before)
    assert sha(LATE) not in _http_hits(corpus, "osprey fund investors", known_at=before)
    assert sha(LATE) in _http_hits(corpus, "osprey fund investors")
    assert _http_hits(corpus, "alpha fund revenue guidance", known_at="2010-01-01") == set()


# -- the command line, on the same home --------------------------------------------------------


@pytest.fixture(scope="module")
def cli_runs(corpus: Corpus) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command-line case, run two at a time (read-only, beside the running server)."""
    home = corpus.server.home
    grp = ("--groups", "desk", "--json")
    query = f"{FUTURE_WORD} outlook revenue guidance memo"
    return cli_many({
        "search 2999": lambda: cli(home, "search", query, "--as-of", "2999-01-01", *grp),
        "search 2999 known": lambda: cli(home, "search", query, "--as-of", FAR, "--known-at", FAR, *grp),
        "ask 2999": lambda: cli(home, "ask", f"What does the {FUTURE_WORD} merger do?", "--as-of", "2999-01-01", *grp),
        "documents 2999": lambda: cli(home, "documents", "--as-of", "2999-01-01", *grp),
        "show outlook": lambda: cli(home, "show", "desk/outlook.txt", "--as-of", "2999-01-01", *grp),
        "noon on the day": lambda: cli(home, "search", "kingfisher bond noon", "--as-of", "2024-03-01", *grp),
        "noon the day before": lambda: cli(home, "search", "kingfisher bond noon", "--as-of", "2024-02-29", *grp),
    })  # fmt: skip


def _out(runs: dict[str, subprocess.CompletedProcess[str]], name: str) -> Any:
    done = runs[name]
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("case", ["search 2999", "search 2999 known", "ask 2999", "documents 2999", "show outlook"])
def test_cli_never_returns_a_version_published_in_the_future(
    cli_runs: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    found = _out(cli_runs, case)
    _no_future(found)
    assert sha(V1) in json.dumps(found) or case == "ask 2999"  # what is current now is still there


def test_cli_a_bare_date_means_the_same_instant_as_over_http(
    cli_runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    on_the_day = {h["version_id"] for h in _out(cli_runs, "noon on the day")["hits"]}
    day_before = {h["version_id"] for h in _out(cli_runs, "noon the day before")["hits"]}
    assert sha(NOON) in on_the_day and sha(NOON) not in day_before
