"""The research agent's page in a real browser (Debian's chromium via playwright), over real
HTTP, with the scripted OpenAI-compatible model as the route's deployment so that each run
really executes: its steps appear as they happen, a page citation opens the cited page (image
and highlight), a query citation shows its SQL, dataset versions and rows, a refused tool call
shows as refused, markup from a document or the model stays text, cancel stops a run, an
interrupted run is resumed after a restart of the service, and another user's run is the
"not found" page. Each test also checks (the ``page`` fixture) that nothing beyond this
machine was reached and nothing logged an error.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from strongroom.api import create_app
from strongroom.auth import ServiceSettings
from strongroom.config import Settings
from strongroom.service import IngestRequest, Platform
from strongroom.testing import HashEmbedder
from strongroom.testing.chat import tool_call
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.api.agent_world import LOADER, ROUTE, SECRET, ScriptedModel, build_home, tool_results
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import CLIENT_ID, Provider
from tests.ingest.pdf_fixtures import make_pdf
from tests.web.conftest import PDF_TEXT, Watched, WebEnv
from tests.web.test_browser import sign_in
from tests.web.test_signin import signed_in

pytestmark = pytest.mark.integration

RITA = ["readers", "research"]  # may use the route and read the filing and the prices
BOB = ["readers", "research"]  # the same entitlements, another person
ANA = ["readers", "public"]  # no model route
HOSTILE = (
    "Heron Bank hostile note\n\n"
    "Heron Bank analysts wrote <script>window.__pwned = 1</script> in the margin. "
    'Heron Bank also pasted <img src=x onerror="window.__pwned = 2"> into the note.\n'
)


# -- the scripted model: a scenario per tag in the question -----------------------------------


def cite(body: dict[str, Any], needle: str, kind: str = "page") -> int:
    """The number of the first ``kind`` evidence item the model was sent that states ``needle``
    (a passage shown in the result carries only its first words: matched by its span)."""
    for result in tool_results(body):
        content = result.get("untrusted_content", {})
        passages = content.get("result", {}).get("passages", []) if isinstance(content.get("result"), dict) else []
        for item in content.get("evidence", []):
            if item["kind"] != kind:
                continue
            ref = item["ref"]
            texts = [item.get("text", "")] + [
                p["text"]
                for p in passages
                if p["version_id"] == ref.get("version_id") and p["start"] == ref.get("start")
            ]
            if any(needle in t for t in texts):
                return int(item["cite"])
    raise AssertionError(f"the model was sent no {kind} evidence that states {needle!r}")


def _search(query: str) -> Reply:
    return Reply.calls(tool_call("search_documents", {"query": query}))


def _pdf(body: dict[str, Any]) -> Reply:
    if not tool_results(body):
        return _search("Osprey Fund return in the year")
    return Reply.stream(f"The Osprey Fund returned 7.2 percent in the year [{cite(body, '7.2 percent')}].")


def _research(body: dict[str, Any]) -> Reply:
    done = len(tool_results(body))
    if done == 0:
        return _search("Acme total net sales quarter")
    if done == 1:
        sql = "SELECT close FROM prices WHERE ticker = 'ACME' AND day = DATE '2023-06-30'"
        return Reply.calls(tool_call("query_data", {"sql": sql}))
    page, query = cite(body, "81,797"), cite(body, "104", "query")
    return Reply.stream(
        f"Acme's total net sales were 81,797 million [{page}]. Its close on June 30 was 104.00 [{query}]."
    )


def _hostile(body: dict[str, Any]) -> Reply:
    if not tool_results(body):
        return Reply.calls(tool_call("search_documents", {"query": "Heron Bank note <b onclick=alert(1)>margin</b>"}))
    n = cite(body, "Heron Bank")
    return Reply.stream(
        f'The note says <script>window.__pwned = 3</script> and <img src=y onerror="window.__pwned = 4"> [{n}].'
    )


@dataclass
class Gate:
    """A run whose second model turn waits until the test opens the gate (for cancel and
    for a restart mid-run): the test, not a clock, decides when the model answers."""

    opened: threading.Event = field(default_factory=threading.Event)
    waiting: threading.Event = field(default_factory=threading.Event)

    def __call__(self, body: dict[str, Any]) -> Reply:
        if not tool_results(body):
            return _search("Acme total net sales")
        self.waiting.set()
        self.opened.wait(timeout=60)
        return Reply.stream(f"Acme's total net sales were 81,797 million [{cite(body, '81,797')}].")

    def reset(self) -> None:
        self.opened.clear()
        self.waiting.clear()


# -- the service, restartable on the same home ------------------------------------------------


@dataclass
class Served:
    """The service on a home, over real HTTP; :meth:`restart` stops it (its running runs
    become interrupted) and starts another on the same home and session store."""

    settings: Settings
    config: ServiceSettings
    env: WebEnv | None = None
    _stack: ExitStack = field(default_factory=ExitStack)

    def start(self) -> tuple[str, FastAPI]:
        app = create_app(self.settings, self.config, embedder=HashEmbedder(64))
        url = self._stack.enter_context(live_server(app))
        return url, app

    def stop(self) -> None:
        self._stack.close()

    def restart(self) -> str:
        self.stop()
        url, app = self.start()
        assert self.env is not None
        self.env.url, self.env.app = url, app
        return url


def _more_documents(settings: Settings, folder: Path) -> None:
    (folder / "osprey.pdf").write_bytes(make_pdf(PDF_TEXT))
    (folder / "heron-note.txt").write_text(HOSTILE)
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        for name in ("osprey.pdf", "heron-note.txt"):
            request = IngestRequest(paths=(folder / name,), acl=frozenset({"research"}), published="2023-08-01")
            assert p.ingest(LOADER, request).ingested == 1


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, web_provider: Provider, gate: Gate) -> Iterator[Served]:
    model = ScriptedModel()
    model.scenarios.update({"[pdf]": _pdf, "[research]": _research, "[hostile]": _hostile, "[gate]": gate})
    with FakeOpenAIServer(model) as server:
        home, files = tmp_path_factory.mktemp("agent-web-home"), tmp_path_factory.mktemp("agent-web-files")
        settings = build_home(home, files, server.url)
        _more_documents(settings, files)
        served = Served(settings, service_settings(web_provider, ui_client_id=CLIENT_ID))
        url, app = served.start()
        shots = Path(os.environ.get("STRONGROOM_SCREENSHOTS") or tmp_path_factory.mktemp("agent-screenshots"))
        served.env = WebEnv(url, app, web_provider, settings, server, "", shots)
        try:
            yield served
        finally:
            gate.opened.set()  # a model turn still waiting answers, so the server can stop
            served.stop()


@pytest.fixture(scope="module")
def web(served: Served) -> WebEnv:
    """This module's workspace (the conftest's ``user`` and ``page`` fixtures use it)."""
    assert served.env is not None
    return served.env


# -- helpers ----------------------------------------------------------------------------------


def start_run(p: Any, question: str) -> str:
    """Open the agent page, start a run of ``question``; its id (from the address it moves to)."""
    p.goto("/ui/agent")
    p.locator(f"#agent-route option[value='{ROUTE}']").wait_for(state="attached")
    p.get_by_label("Question").fill(question)
    p.get_by_role("button", name="Start the run").click()
    p.wait_for_url("**/ui/agent/runs/*")
    return str(p.url.rsplit("/", 1)[1])


def wait_status(p: Any, status: str) -> None:
    p.wait_for_selector(f"#run[data-status='{status}']")


def steps(p: Any) -> list[tuple[str, str]]:
    items = p.locator("#steps > li")
    return [(items.nth(i).get_attribute("data-kind"), items.nth(i).inner_text()) for i in range(items.count())]


# -- the tests --------------------------------------------------------------------------------


def test_a_run_shows_its_steps_and_its_page_citation_opens_the_page(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RITA)
    p = page.page
    sign_in(p)
    p.get_by_role("link", name="Agent").click()
    p.wait_for_url("**/ui/agent")
    run_id = start_run(p, "[pdf] What did the Osprey Fund return in the year?")
    wait_status(p, "answered")
    kinds = [k for k, _ in steps(p)]
    assert kinds == ["started", "model", "tool", "model", "answer"], kinds
    tool = p.locator("#steps > li[data-kind='tool']")
    assert "Tool call: search_documents" in tool.inner_text()
    assert '"query": "Osprey Fund return in the year"' in tool.locator("pre.args").inner_text()  # its arguments
    assert "Returned" in tool.locator(".outcome").inner_text() and tool.locator("button.cite").count() >= 1
    assert "Calls: search_documents" in p.locator("#steps > li[data-kind='model']").first.inner_text()
    claim = p.locator("#run-answer-body .claim").first
    assert "7.2 percent" in claim.inner_text()
    assert p.get_by_role("status").filter(has_text="Answered.").count() == 1
    assert p.locator("#runs li[data-run='" + run_id + "'] .run-status").inner_text() == "answered"

    claim.locator("button.cite").click()
    p.get_by_role("dialog").wait_for()
    mark = p.locator("#viewer-text mark")
    mark.wait_for()
    assert "7.2 percent" in mark.inner_text()  # the cited span, marked in the page's text
    p.locator(".page-image .box").first.wait_for()  # and outlined on the page as printed
    assert p.evaluate("document.getElementById('viewer-image').naturalWidth") > 100
    assert any("/image?as_of=" in u for u in page.requests)  # read at the run's clocks
    p.screenshot(path=str(user.screenshots / "agent-run.png"), full_page=True)
    p.keyboard.press("Escape")
    p.locator("#viewer").wait_for(state="hidden")

    p.reload()  # an ended run: its steps replayed from the store, its answer from its result
    wait_status(p, "answered")
    p.locator("#steps > li[data-kind='answer']").wait_for()
    assert [k for k, _ in steps(p)] == kinds
    assert "7.2 percent" in p.locator("#run-answer-body").inner_text()
    assert p.locator("#run-cancel").is_hidden() and p.locator("#run-resume").is_hidden()


def test_a_query_citation_shows_its_sql_dataset_versions_and_rows(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RITA)
    p = page.page
    sign_in(p)
    start_run(p, "[research] What were Acme's net sales and its close on June 30?")
    wait_status(p, "answered")
    tools = p.locator("#steps > li[data-kind='tool']")
    assert tools.count() == 2 and "Tool call: query_data" in tools.nth(1).inner_text()
    assert "SELECT close FROM prices" in tools.nth(1).locator("pre.args").inner_text()
    sources = p.locator("#run-sources li")
    assert sources.count() == 2
    query = p.locator("#run-sources li", has_text="query over prices")
    query.locator("button.cite").click()
    p.locator("#cited-sql").wait_for()
    assert "SELECT close FROM prices WHERE ticker = 'ACME'" in p.locator("#cited-sql").inner_text()
    datasets = p.locator("#cited-datasets tbody tr")
    assert datasets.count() == 1 and datasets.first.locator("td").first.inner_text() == "prices"
    assert "104" in p.locator("#cited-rows").inner_text()
    assert p.locator("#viewer-page").is_hidden()
    p.locator("#run-sources li", has_text="p.").locator("button.cite").click()  # then a page citation
    p.locator("#viewer-text mark").wait_for()
    assert "81,797" in p.locator("#viewer-text mark").inner_text() and p.locator("#viewer-detail").is_hidden()


def test_a_refused_tool_call_shows_as_refused_and_reveals_nothing(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RITA)
    p = page.page
    sign_in(p)
    start_run(p, "[obey] What does the watchlist housekeeping memo say?")
    p.locator("#steps > li.step-refused").wait_for()
    refused = p.locator("#steps > li.step-refused")
    assert "Tool call: query_data" in refused.inner_text()
    assert "mnpi_watchlist" in refused.locator("pre.args").inner_text()  # what it tried
    assert refused.locator(".outcome.refused").inner_text().startswith("Refused: ")
    p.wait_for_selector("#run[data-status]:not([data-status='running']):not([data-status='queued'])")
    assert SECRET not in p.locator("body").inner_text()


def test_model_text_tool_arguments_and_results_are_shown_as_text(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RITA)
    p = page.page
    sign_in(p)
    start_run(p, "[hostile] What does the Heron Bank note say? <img src=z onerror=alert(1)>")
    wait_status(p, "answered")
    run = p.locator("#run")
    text = run.inner_text()
    assert "<script>window.__pwned = 1</script>" in text  # a document's markup, in a tool result
    assert "<b onclick=alert(1)>margin</b>" in text  # the model's tool arguments
    assert "<script>window.__pwned = 3</script>" in p.locator("#run-answer-body").inner_text()  # the answer
    assert "<img src=z onerror=alert(1)>" in p.locator("#run-question").inner_text()  # the question
    assert run.locator("script, img, b").count() == 0  # none of it became an element
    assert p.evaluate("window.__pwned === undefined")
    p.get_by_role("link", name="Agent").click()  # the runs list (rendered by the server) too
    p.locator("#runs li", has_text="[hostile]").wait_for()
    assert p.locator("#runs img").count() == 0


def test_cancel_stops_a_run_at_its_next_step(page: Watched, user: WebEnv, gate: Gate) -> None:
    gate.reset()
    user.as_user("rita", RITA)
    p = page.page
    sign_in(p)
    start_run(p, "[gate] What were Acme's total net sales?")
    p.locator("#steps > li[data-kind='tool']").wait_for()
    assert gate.waiting.wait(timeout=30)  # the model is on its second turn
    p.get_by_role("button", name="Cancel the run").click()
    p.get_by_role("status").filter(has_text="Cancel requested").wait_for()
    assert p.locator("#run-cancel").is_hidden()
    gate.opened.set()  # the model answers; the run stops before it goes on
    wait_status(p, "cancelled")
    assert p.locator("#steps > li").last.get_attribute("data-kind") == "cancelled"
    assert p.locator("#run-status").inner_text().startswith("Cancelled")
    assert p.locator("#run-cancel").is_hidden() and p.locator("#run-resume").is_hidden()


def test_another_user_gets_not_found_for_a_run_and_never_lists_it(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RITA)
    p = page.page
    sign_in(p)
    run_id = start_run(p, "[pdf] Osprey Fund return, for rita only?")
    wait_status(p, "answered")
    p.get_by_role("button", name="Sign out").click()
    p.wait_for_url("**/ui/signin")

    user.as_user("bob", BOB)  # the same groups: a run is its owner's alone
    sign_in(p)
    page.expect_status(404)
    p.goto(f"/ui/agent/runs/{run_id}")  # typed by hand
    p.get_by_role("heading", name="Not found").wait_for()
    assert "Osprey" not in p.locator("body").inner_text()
    page.expect_status(404)
    p.goto("/ui/agent/runs/" + "0" * 32)  # a run that does not exist: the same page
    p.get_by_role("heading", name="Not found").wait_for()
    p.goto("/ui/agent")
    assert "rita only" not in p.locator("#runs").inner_text()
    assert p.locator("#no-runs").is_visible()


def test_a_user_without_a_model_route_cannot_start_a_run(page: Watched, user: WebEnv) -> None:
    user.as_user("ana", ANA)
    p = page.page
    sign_in(p)
    p.goto("/ui/agent")
    p.get_by_text("No model route that you may use").wait_for()
    assert p.get_by_role("button", name="Start the run").is_disabled()
    assert p.locator("#agent-route option").count() == 0  # the extractive route cannot call tools


def test_every_control_of_the_agent_page_is_labelled(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RITA)
    p = page.page
    sign_in(p)
    start_run(p, "[research] Acme net sales and close?")
    wait_status(p, "answered")
    unlabelled = p.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                          && !(e.textContent || '').trim())
             .map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    p.locator("#run-answer-body button.cite").first.focus()  # citations work from the keyboard
    p.keyboard.press("Enter")
    p.locator("#viewer-text mark").wait_for()
    assert p.evaluate("document.activeElement.id") == "viewer"


def test_a_session_starts_cancels_and_resumes_runs_only_with_its_csrf_token(
    user: WebEnv, browser_client: httpx.Client
) -> None:
    user.as_user("rita", RITA)
    token = signed_in(user, browser_client)
    before = len(browser_client.get("/v1/agent/runs").json()["runs"])
    asked = {"question": "[pdf] Osprey Fund return?", "route": ROUTE}
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        refused = browser_client.post("/v1/agent/runs", json=asked, headers=headers)
        assert refused.status_code == 403 and "CSRF" in refused.text, refused.text
    assert len(browser_client.get("/v1/agent/runs").json()["runs"]) == before  # nothing started
    started = browser_client.post("/v1/agent/runs", json=asked, headers={"X-CSRF-Token": token})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    with browser_client.stream("GET", f"/v1/agent/runs/{run_id}/events") as events:
        assert "event: end" in events.iter_lines()  # read to the run's end
    for action in ("cancel", "resume"):
        refused = browser_client.post(f"/v1/agent/runs/{run_id}/{action}", json={})
        assert refused.status_code == 403 and "CSRF" in refused.text, refused.text
    assert browser_client.get(f"/v1/agent/runs/{run_id}").json()["status"] == "answered"
    with httpx.Client(base_url=user.url, timeout=30) as stranger:  # no session: sign in first
        page = stranger.get(f"/ui/agent/runs/{run_id}")
        assert page.status_code == 303 and page.headers["location"] == f"/ui/signin?next=/ui/agent/runs/{run_id}"
    assert browser_client.get("/ui/agent/runs/" + "a" * 101).status_code == 404
    shown = browser_client.get(f"/ui/agent/runs/{run_id}")
    assert shown.status_code == 200 and f'data-run="{run_id}"' in shown.text


def test_an_interrupted_run_is_resumed_from_the_page(page: Watched, user: WebEnv, gate: Gate, served: Served) -> None:
    """Last in the module: it restarts the service."""
    gate.reset()
    user.as_user("rita", RITA)
    p = page.page
    sign_in(p)
    run_id = start_run(p, "[gate] Acme's total net sales, across a restart?")
    p.locator("#steps > li[data-kind='tool']").wait_for()
    assert gate.waiting.wait(timeout=30)
    p.goto("about:blank")  # the page's event stream closes, so the service can stop
    url = served.restart()  # the run was mid-step: interrupted
    gate.opened.set()

    p.goto(f"{url}/ui/agent/runs/{run_id}")  # the session outlived the restart
    wait_status(p, "interrupted")
    assert "Resume it" in p.locator("#run-status").inner_text()
    assert [k for k, _ in steps(p)] == ["started", "model", "tool"]  # what it had done
    p.get_by_role("button", name="Resume the run").click()
    wait_status(p, "answered")
    kinds = [k for k, _ in steps(p)]
    assert kinds == ["started", "model", "tool", "resumed", "model", "answer"], kinds
    assert len([k for k in kinds if k == "tool"]) == 1  # the search was not made again
    assert "81,797" in p.locator("#run-answer-body").inner_text()
    events = json.dumps(kinds)
    assert "interrupted" not in events
