"""Structured datasets over real HTTP (uvicorn on localhost, OIDC tokens from a local provider):
``GET /v1/datasets`` and ``POST /v1/datasets/query`` for a reader, an outsider, a caller
without the reader role and one without credentials; both clocks; refusals and their audit
records. A service of its own (its home holds two datasets, loaded before it starts)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.service import Platform
from strongroom.service.datasets import DatasetLoad
from strongroom.testing import HashEmbedder
from strongroom.types import Principal
from tests.api.conftest import audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

READER = ["readers", "research"]  # reads prices
OUTSIDER = ["readers", "public"]  # reads no dataset
NO_ROLE = ["research"]  # entitled to prices, but not a reader
ADMIN = ["admins", "research", "risk"]
QUERY = "/v1/datasets/query"


@dataclass
class Env:
    url: str
    provider: Provider
    first_loaded_at: str

    def client(self, groups: list[str] | None, sub: str = "ana") -> httpx.Client:
        headers = {} if groups is None else {"Authorization": f"Bearer {self.provider.token(sub=sub, groups=groups)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Env]:
    home, files = tmp_path_factory.mktemp("data-home"), tmp_path_factory.mktemp("data-files")
    (files / "prices.csv").write_text("ticker,day,close\nZQXW,2024-01-02,101.25\nZQXW,2024-01-03,102.5\n")
    (files / "fix.csv").write_text("ticker,day,close\nZQXW,2024-01-03,103.75\nZQXW,2024-01-04,187.4411\n")
    (files / "positions.csv").write_text("book,day,notional\nrates,2024-01-02,9917.03\n")
    settings = Settings(home=home, embedder="hash")
    loader = Principal("loader", frozenset({"research", "risk"}), frozenset({"reader", "ingester"}), "python")
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        key = ("ticker",)
        first = p.load_dataset(loader, DatasetLoad(files / "prices.csv", "prices", frozenset({"research"}), "day", key))
        p.load_dataset(loader, DatasetLoad(files / "fix.csv", "prices", frozenset({"research"}), "day", key))
        p.load_dataset(loader, DatasetLoad(files / "positions.csv", "positions", frozenset({"risk"}), "day"))
    app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
    with live_server(app) as url:
        yield Env(url, provider, first.loaded_at.isoformat())


def _ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store"
    return r.json()


def _refused(r: httpx.Response, status: int = 422) -> str:
    assert r.status_code == status, r.text
    message: str = r.json()["error"]["message"]
    return message


def test_a_reader_lists_and_queries_only_what_it_may_read(env: Env) -> None:
    with env.client(READER) as reader:
        listed = _ok(reader.get("/v1/datasets"))["datasets"]
        assert [d["name"] for d in listed] == ["prices"]
        assert [v["version"] for v in listed[0]["versions"]] == [2, 1] and listed[0]["acl"] == ["research"]
        assert [c["name"] for c in listed[0]["columns"]] == ["ticker", "day", "close"]
        answer = _ok(reader.post(QUERY, json={"sql": "SELECT day, close FROM prices ORDER BY day"}))
        assert answer["columns"] == ["day", "close"] and answer["row_count"] == 3 and not answer["truncated"]
        assert [r[0] for r in answer["rows"]] == ["2024-01-02", "2024-01-03", "2024-01-04"]
        assert [(d["name"], d["version"]) for d in answer["datasets"]] == [("prices", 2)]
        assert answer["sql"] == "SELECT day, close FROM prices ORDER BY day" and answer["executed_sql"]

        hidden = _refused(reader.post(QUERY, json={"sql": "SELECT * FROM prices JOIN positions USING (day)"}))
        missing = _refused(reader.post(QUERY, json={"sql": "SELECT * FROM prices JOIN nosuchdata USING (day)"}))
        assert hidden.replace("positions", "X") == missing.replace("nosuchdata", "X")


def test_an_outsider_sees_no_dataset_and_each_is_refused_as_if_absent(env: Env) -> None:
    with env.client(OUTSIDER, sub="olga") as outsider:
        assert _ok(outsider.get("/v1/datasets")) == {"datasets": []}
        for name in ("prices", "positions"):
            hidden = _refused(outsider.post(QUERY, json={"sql": f"SELECT * FROM {name}"}))
            missing = _refused(outsider.post(QUERY, json={"sql": "SELECT * FROM nosuchdata"}))
            assert hidden.replace(name, "X") == missing.replace("nosuchdata", "X")


def test_roles_and_credentials(env: Env) -> None:
    with env.client(NO_ROLE, sub="nora") as nora, env.client(None) as anonymous:
        assert _refused(nora.get("/v1/datasets"), 403)
        assert "reader" in _refused(nora.post(QUERY, json={"sql": "SELECT * FROM prices"}), 403)
        assert anonymous.get("/v1/datasets").status_code == 401
        r = anonymous.post(QUERY, json={"sql": "SELECT * FROM prices"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


def test_both_clocks_over_http(env: Env) -> None:
    sql = "SELECT day, close FROM prices ORDER BY day"
    with env.client(READER) as reader:
        at = _ok(reader.post(QUERY, json={"sql": sql, "as_of": "2024-01-03"}))
        assert at["rows"] == [["2024-01-02", 101.25], ["2024-01-03", 103.75]]  # the correction; no 2024-01-04
        then = _ok(reader.post(QUERY, json={"sql": sql, "known_at": env.first_loaded_at}))
        assert then["rows"] == [["2024-01-02", 101.25], ["2024-01-03", 102.5]]
        assert [(d["name"], d["version"]) for d in then["datasets"]] == [("prices", 1)]
        listed = _ok(reader.get("/v1/datasets", params={"known_at": env.first_loaded_at}))["datasets"]
        assert [v["version"] for v in listed[0]["versions"]] == [1]
        future = _ok(reader.post(QUERY, json={"sql": "SELECT 1 AS one", "as_of": "2999-12-31"}))
        assert future["as_of"] < "2999" and future["known_at"] < "2999"
        assert "as_of" in _refused(reader.post(QUERY, json={"sql": sql, "as_of": "last tuesday"}))


def test_a_refused_query_is_answered_like_on_every_v1_route(env: Env) -> None:
    with env.client(READER) as reader:
        bad_clock = {"as_of": "last tuesday"}
        elsewhere = reader.post("/v1/search", json={"query": "close", **bad_clock})
        for r in (
            reader.post(QUERY, json={"sql": "SELECT 1", **bad_clock}),
            reader.post(QUERY, json={"sql": "DROP TABLE prices"}),
            reader.post(QUERY, json={"sql": "SELECT * FROM positions"}),
        ):
            assert (r.status_code, r.json()["error"]["type"]) == (
                elsewhere.status_code,
                elsewhere.json()["error"]["type"],
            )
            assert r.status_code == 422 and r.json()["error"]["message"]


def test_bad_requests(env: Env) -> None:
    with env.client(READER) as reader:
        assert "max_rows" in _refused(reader.post(QUERY, json={"sql": "SELECT 1", "max_rows": 10**9}))
        cut = _ok(reader.post(QUERY, json={"sql": "SELECT * FROM prices", "max_rows": 1}))
        assert cut["row_count"] == 1 and cut["truncated"] is True
        for bad in ("DROP TABLE prices", "SELECT 1; SELECT 2", "SELECT * FROM read_csv_auto('/etc/passwd')", "((("):
            assert _refused(reader.post(QUERY, json={"sql": bad}))
        assert reader.post(QUERY, json={"sql": "SELECT 1", "extra": 1}).status_code == 422
        assert reader.post(QUERY, json={"sql": ""}).status_code == 422
        assert reader.post(QUERY, json={"sql": "x" * 20_001}).status_code == 422


def test_queries_are_audited_without_rows(env: Env) -> None:
    with env.client(READER, sub="auditee") as reader, env.client(ADMIN, sub="root") as admin:
        _ok(reader.post(QUERY, json={"sql": "SELECT close FROM prices WHERE ticker <> 'password=Hunter2xyz!'"}))
        _refused(reader.post(QUERY, json={"sql": "SELECT * FROM positions"}))
        mine = [r for r in audit_records(admin) if r["principal"] == "auditee" and r["action"] == "datasets.query"]
    ok, refused = mine[-2], mine[-1]
    assert ok["outcome"] == "ok" and ok["filters"]["datasets"][0][:2] == ["prices", 2] and ok["filters"]["rows"] == 3
    assert ok["auth"].startswith("oidc")
    assert "Hunter2xyz" not in ok["query"] and ok["query_hmac"]
    assert refused["outcome"] == "error" and "positions" in refused["query"]
    for value in ("101.25", "103.75", "187.4411"):
        assert value not in str(mine)


_WORDS = ["SELECT", "FROM", "prices", "positions", "WHERE", "JOIN", "WITH", "AS", "(", ")", "*", ",", ";", "'",
          '"', "UNION", "ALL", "read_csv", "CAST", "close", "day", "1", "--", "/*", "LIMIT", "-1", "NULL", "\\x00"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(min_size=1, max_size=200), st.lists(st.sampled_from(_WORDS), min_size=1).map(" ".join)))
def test_hostile_sql_is_answered_or_refused_never_a_server_error(env: Env, sql: str) -> None:
    with env.client(OUTSIDER, sub="fuzz") as outsider:
        r = outsider.post(QUERY, json={"sql": sql})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:  # an outsider reads no dataset: nothing it got can come from one
        assert r.json()["datasets"] == []
