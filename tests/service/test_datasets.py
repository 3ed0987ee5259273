"""Structured datasets in the application layer (through the sync facade,
:class:`~strongroom.service.Platform`, over the real embedded dataset store): who may see,
query and load a dataset; no row after ``as_of``; no correction before its ``known_at``; and
audit records that say what was done without ever holding a row's values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import PermissionDenied, QueryError, StrongroomError, WriteDenied
from strongroom.service import Platform
from strongroom.service.datasets import DatasetLoad, DatasetQuery, json_value, readable, result_record
from strongroom.testing import HashEmbedder
from strongroom.types import Principal, utcnow

ALL = frozenset({"reader", "ingester", "admin"})
#: values that appear only in the datasets' rows: the audit log must never hold one
ROW_VALUES = ("187.4411", "101.25", "103.75", "55.125", "ZQXW", "WVBN", "9917.03", "KRAKENCO")

PRICES_V1 = (
    "ticker,day,close\n"
    "ZQXW,2024-01-02,101.25\n"
    "ZQXW,2024-01-03,102.5\n"
    "ZQXW,2024-01-04,187.4411\n"  # after the as_of of most queries below
    "WVBN,2024-01-02,55.125\n"
)
PRICES_FIX = "ticker,day,close\nZQXW,2024-01-03,103.75\n"  # a correction of 2024-01-03
POSITIONS = "book,day,counterparty,notional\nrates,2024-01-02,KRAKENCO,9917.03\n"


def who(name: str, *groups: str, roles: frozenset[str] = ALL) -> Principal:
    return Principal(name, frozenset(groups), roles, "python")


ANA = who("ana", "research", roles=frozenset({"reader"}))  # reads prices
RIKI = who("riki", "risk", roles=frozenset({"reader"}))  # reads positions
LOADER = who("loader", "research", "risk", roles=frozenset({"reader", "ingester"}))
ADMIN = who("root", "research", "risk")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "prices.csv").write_text(PRICES_V1)
    (folder / "prices-fix.csv").write_text(PRICES_FIX)
    (folder / "positions.csv").write_text(POSITIONS)
    return folder


@pytest.fixture
def platform(tmp_path: Path, files: Path) -> Iterator[Platform]:
    with Platform.open(Settings(home=tmp_path / "home", embedder="hash"), embedder=HashEmbedder(64)) as p:
        p.load_dataset(LOADER, load(files / "prices.csv", "prices", "research", key=("ticker",)))
        p.load_dataset(LOADER, load(files / "positions.csv", "positions", "risk"))
        yield p


def load(path: Path, name: str, *acl: str, key: tuple[str, ...] = (), mode: str = "append") -> DatasetLoad:
    return DatasetLoad(path, name, frozenset(acl), "day", key, mode)


def query(p: Platform, principal: Principal, sql: str, **clocks: object) -> list[tuple[object, ...]]:
    return list(p.query_datasets(principal, DatasetQuery(sql=sql, **clocks)).rows)  # type: ignore[arg-type]


def refusal(p: Platform, principal: Principal, sql: str, known_at: str | None = None) -> str:
    with pytest.raises(QueryError) as caught:
        p.query_datasets(principal, DatasetQuery(sql=sql, known_at=known_at))
    return str(caught.value)


def records(p: Platform, action: str) -> list[dict[str, object]]:
    return [r for r in p.audit_records(ADMIN) if r["action"] == action]


# -- who sees what -------------------------------------------------------------------------


def test_a_principal_lists_only_the_datasets_it_may_read(platform: Platform) -> None:
    assert [v.name for v in platform.datasets(ANA)] == ["prices"]
    assert [v.name for v in platform.datasets(RIKI)] == ["positions"]
    assert [v.name for v in platform.datasets(ADMIN)] == ["positions", "prices"]
    assert platform.datasets(who("eve", "public", roles=frozenset({"reader"}))) == []
    prices = platform.datasets(ANA)[0]
    assert prices.acl == {"research"} and prices.current.rows == 4 and prices.current.valid_time_column == "day"
    assert [c for c, _ in prices.current.columns] == ["ticker", "day", "close"]


# The SQL of an outsider who names a dataset it may not read, in every place a table can hide;
# each is refused exactly as the same SQL naming a dataset that does not exist.
HIDING = [
    "SELECT * FROM {t}",
    "select notional from {t} where book = 'rates'",
    "WITH p AS (SELECT * FROM {t}) SELECT count(*) FROM p",
    "SELECT * FROM prices WHERE ticker IN (SELECT book FROM {t})",
    "SELECT p.close FROM prices p JOIN {t} q ON p.day = q.day",
    "SELECT * FROM prices, {t}",
    "SELECT ticker FROM prices UNION ALL SELECT book FROM {t}",
    "SELECT (SELECT max(notional) FROM {t}) AS m FROM prices",
    "SELECT * FROM (SELECT * FROM (SELECT * FROM {t}) a) b",
    'SELECT * FROM "{t}"',
    "SELECT * FROM main.{t}",
    "SELECT * FROM {T}",
]


@pytest.mark.parametrize("shape", HIDING)
def test_a_dataset_outside_the_principals_groups_is_refused_like_one_that_does_not_exist(
    platform: Platform, shape: str
) -> None:
    hidden = refusal(platform, ANA, shape.format(t="positions", T="POSITIONS"))
    missing = refusal(platform, ANA, shape.format(t="nosuchdata", T="NOSUCHDATA"))
    assert hidden.lower().replace("positions", "X") == missing.lower().replace("nosuchdata", "X")
    assert "risk" not in hidden  # nothing says who may read it
    assert query(platform, RIKI, "SELECT count(*) FROM positions") == [(1,)]


def test_a_refused_query_is_audited_with_its_reason(platform: Platform) -> None:
    message = refusal(platform, ANA, "SELECT count(*) FROM positions")
    refused = records(platform, "datasets.query")[-1]
    assert refused["outcome"] == "error" and refused["principal"] == "ana" and refused["detail"] == message


def test_engine_reaches_no_file_and_runs_one_read_only_statement(platform: Platform, files: Path) -> None:
    for sql in (
        f"SELECT * FROM read_csv_auto('{files / 'positions.csv'}')",
        f"SELECT * FROM '{files / 'positions.csv'}'",
        "DELETE FROM prices",
        "DROP TABLE prices",
        "SELECT 1; SELECT * FROM positions",
        "COPY prices TO '/tmp/dsvc-out.csv'",
        "ATTACH '/tmp/dsvc.duckdb' AS other",
    ):
        with pytest.raises(StrongroomError):
            platform.query_datasets(ANA, DatasetQuery(sql=sql))
    assert query(platform, ANA, "SELECT count(*) FROM prices") == [(4,)]


# -- the two clocks ---------------------------------------------------------------------------


def test_no_row_after_as_of_ever_appears(platform: Platform) -> None:
    for as_of in ("2024-01-03", "2024-01-03T23:59:59Z", "2024-01-03T12:00:00+00:00"):
        days = query(platform, ANA, "SELECT day, close FROM prices ORDER BY day", as_of=as_of)
        assert {str(d) for d, _ in days} <= {"2024-01-02", "2024-01-03"}
        assert all(str(c) != "187.4411" for _, c in days)
    assert query(platform, ANA, "SELECT count(*) FROM prices", as_of="2024-01-01") == [(0,)]
    everything = query(platform, ANA, "SELECT max(day) FROM prices", as_of="2024-01-04")
    assert str(everything[0][0]) == "2024-01-04"  # a bare date is the end of that day


def test_a_correction_is_invisible_at_an_earlier_known_at(platform: Platform, files: Path) -> None:
    first = platform.datasets(ANA)[0].current
    fixed = platform.load_dataset(LOADER, load(files / "prices-fix.csv", "prices", "research", key=("ticker",)))
    assert fixed.version == 2 and fixed.superseded == 1
    sql = "SELECT close FROM prices WHERE day = DATE '2024-01-03'"
    assert [float(c) for (c,) in query(platform, ANA, sql)] == [103.75]  # type: ignore[arg-type]
    then = first.loaded_at.isoformat()
    assert [float(c) for (c,) in query(platform, ANA, sql, known_at=then)] == [102.5]  # type: ignore[arg-type]
    result = platform.query_datasets(ANA, DatasetQuery(sql=sql, known_at=then))
    assert [(v.dataset, v.version) for v in result.datasets] == [("prices", 1)]
    assert [v.version for v in platform.datasets(ANA, then)[0].versions] == [1]
    assert [v.version for v in platform.datasets(ANA)[0].versions] == [2, 1]
    # before its first load a dataset did not exist: not listed, and refused as any unknown name
    assert platform.datasets(ANA, "2000-01-01") == []
    early = refusal(platform, ANA, sql, known_at="2000-01-01")
    missing = refusal(platform, ANA, sql.replace("prices", "nosuchdata"), known_at="2000-01-01")
    assert early == missing.replace("nosuchdata", "prices")


def test_neither_clock_passes_now(platform: Platform) -> None:
    before = utcnow()
    result = platform.query_datasets(
        ANA, DatasetQuery(sql="SELECT 1 AS one", as_of="2999-01-01", known_at="2999-01-01")
    )
    assert before <= result.as_of <= utcnow() and before <= result.known_at <= utcnow()
    with pytest.raises(QueryError, match="as_of"):
        platform.query_datasets(ANA, DatasetQuery(sql="SELECT 1", as_of="yesterday"))


def test_rows_are_cut_at_max_rows_and_never_past_the_setting(platform: Platform) -> None:
    cut = platform.query_datasets(ANA, DatasetQuery(sql="SELECT * FROM prices ORDER BY day", max_rows=2))
    assert len(cut.rows) == 2 and cut.truncated
    whole = platform.query_datasets(ANA, DatasetQuery(sql="SELECT * FROM prices", max_rows=4))
    assert len(whole.rows) == 4 and not whole.truncated
    for rows in (0, -1, platform.settings.dataset_max_rows + 1):
        with pytest.raises(QueryError, match="max_rows"):
            platform.query_datasets(ANA, DatasetQuery(sql="SELECT 1", max_rows=rows))
    with pytest.raises(QueryError):
        platform.query_datasets(ANA, DatasetQuery(sql="   "))


# -- roles and write entitlements ---------------------------------------------------------------


def test_roles(platform: Platform, files: Path) -> None:
    nobody = who("nobody", "research", roles=frozenset())
    with pytest.raises(PermissionDenied):
        platform.datasets(nobody)
    with pytest.raises(PermissionDenied):
        platform.query_datasets(nobody, DatasetQuery(sql="SELECT * FROM prices"))
    with pytest.raises(PermissionDenied, match="ingester"):
        platform.load_dataset(ANA, load(files / "prices.csv", "prices2", "research"))
    assert query(platform, ANA, "SELECT count(*) FROM prices") == [(4,)]  # a reader may query


def test_an_ingester_loads_only_into_datasets_it_may_read_and_keeps_their_acl(platform: Platform, files: Path) -> None:
    outsider = who("olga", "research", roles=frozenset({"reader", "ingester"}))
    before = platform.datasets(ADMIN)
    with pytest.raises(WriteDenied, match="does not exist as a dataset you may read") as hidden:
        platform.load_dataset(outsider, load(files / "positions.csv", "positions", "research"))
    assert "risk" not in str(hidden.value)
    with pytest.raises(WriteDenied, match="readable by research") as widened:
        platform.load_dataset(LOADER, load(files / "prices-fix.csv", "prices", "research", "public"))
    assert "--acl research" in str(widened.value)
    assert platform.datasets(ADMIN) == before  # nothing was loaded
    denied = [r for r in records(platform, "datasets.load") if r["outcome"] != "ok"]
    assert [(r["principal"], r["target"]) for r in denied] == [("olga", "positions"), ("loader", "prices")]

    # an admin who may read it changes who may: for all of its history, at every known_at
    first = platform.datasets(ANA)[0].current.loaded_at.isoformat()
    platform.load_dataset(ADMIN, load(files / "prices-fix.csv", "prices", "risk", key=("ticker",)))
    assert platform.datasets(ANA) == [] and platform.datasets(ANA, first) == []
    refusal(platform, ANA, "SELECT * FROM prices")
    assert [v.name for v in platform.datasets(RIKI, first)] == ["prices"]  # loaded before positions
    assert [v.name for v in platform.datasets(RIKI)] == ["positions", "prices"]
    changed = records(platform, "datasets.load")[-1]
    assert changed["filters"]["acl_before"] == ["research"] and changed["filters"]["acl"] == ["risk"]  # type: ignore[index]


def test_a_failed_load_leaves_nothing_but_its_audit_record(platform: Platform, files: Path, tmp_path: Path) -> None:
    before = platform.datasets(ADMIN)
    (files / "bad.csv").write_text("ticker,when,close\nZQXW,2024-01-02,1\n")
    (files / "junk.csv").write_bytes(b"\x00\xff\x00 not, a\n\x00csv")
    attempts = [
        (load(files / "bad.csv", "prices", "research"), StrongroomError),  # no column "day"
        (load(files / "bad.csv", "fresh", "research"), StrongroomError),  # the same, into a new dataset
        (load(files / "missing.csv", "fresh", "research"), QueryError),
        (load(files, "fresh", "research"), QueryError),  # a folder
        (load(files / "prices.csv", "Bad-Name", "research"), QueryError),
        (load(files / "prices.csv", "fresh", "research", mode="upsert"), QueryError),
        (DatasetLoad(files / "prices.csv", "fresh", frozenset(), "day"), QueryError),
        (load(files / "junk.csv", "fresh", "research"), StrongroomError),
    ]
    for request, error in attempts:
        with pytest.raises(error):
            platform.load_dataset(LOADER, request)
    assert platform.datasets(ADMIN) == before
    refused = [r for r in records(platform, "datasets.load") if r["outcome"] != "ok"]
    assert len(refused) == len(attempts) and all(r["detail"] for r in refused)
    assert "fresh" not in [v.name for v in platform.datasets(ADMIN)]


# -- audit ----------------------------------------------------------------------------------


def test_audit_records_say_what_was_done_and_never_hold_row_values(platform: Platform, files: Path) -> None:
    secret_sql = "SELECT * FROM prices WHERE ticker <> 'password=Hunter2xyz!' -- DE89370400440532013000"
    result = platform.query_datasets(ANA, DatasetQuery(sql=secret_sql, as_of="2024-01-03"))
    shown = json.dumps(result_record(result))
    assert "101.25" in shown and "ZQXW" in shown  # the caller sees rows; the log below never does
    refusal(platform, ANA, "SELECT * FROM positions WHERE counterparty = 'password=Hunter2xyz!'")
    platform.datasets(ANA)

    loads = records(platform, "datasets.load")
    assert [(r["target"], r["filters"]["rows"], r["filters"]["version"]) for r in loads] == [  # type: ignore[index]
        ("prices", 4, 1),
        ("positions", 1, 1),
    ]
    first = loads[0]["filters"]
    assert isinstance(first, dict)
    assert first["acl"] == ["research"] and first["mode"] == "append" and len(first["sha256"]) == 64
    queried = records(platform, "datasets.query")
    ok, refused = queried[0], queried[1]
    assert ok["principal"] == "ana" and ok["outcome"] == "ok" and ok["query_hmac"]
    assert "Hunter2xyz" not in str(ok["query"]) and "DE89370400440532013000" not in str(ok["query"])
    filters = ok["filters"]
    assert isinstance(filters, dict)
    assert filters["datasets"] == [["prices", 1, first["sha256"]]] and filters["rows"] == 3
    assert filters["truncated"] is False and filters["elapsed_ms"] >= 0
    assert filters["as_of"] == "2024-01-03T23:59:59.999999+00:00" and filters["applied_known_at"]
    assert refused["outcome"] == "error" and "Hunter2xyz" not in json.dumps(refused)
    assert records(platform, "datasets.list")[-1]["detail"] == "1 datasets"

    exported = json.dumps(list(platform.audit_records(ADMIN)))
    catalog = platform.settings.catalog_path.read_bytes().decode("latin-1")  # the audit log's own file
    for value in ROW_VALUES:
        assert value not in exported and value not in catalog, value
    assert "Hunter2xyz" not in catalog


def test_an_engine_or_file_error_quoting_the_data_is_shown_to_the_caller_but_not_kept(
    platform: Platform, files: Path
) -> None:
    with pytest.raises(QueryError, match="KRAKENCO"):  # the caller may read the row it quotes
        platform.query_datasets(RIKI, DatasetQuery(sql="SELECT CAST(counterparty AS INTEGER) FROM positions"))
    (files / "twice.csv").write_text("book,day,notional\nKRAKENCO,2024-01-02,1\nKRAKENCO,2024-01-02,2\n")
    with pytest.raises(StrongroomError, match="KRAKENCO"):
        platform.load_dataset(LOADER, load(files / "twice.csv", "more_positions", "risk", key=("book",)))
    failed = [r for r in platform.audit_records(ADMIN) if r["outcome"] != "ok"]
    assert [r["action"] for r in failed] == ["datasets.query", "datasets.load"]
    assert all("dataset store" in str(r["detail"]) and "KRAKENCO" not in json.dumps(r) for r in failed)
    catalog = platform.settings.catalog_path.read_bytes().decode("latin-1")
    assert "KRAKENCO" not in catalog


# -- pure pieces ------------------------------------------------------------------------------


def test_readable_applies_the_newest_acl_at_every_known_at(platform: Platform) -> None:
    versions = [v for view in platform.datasets(ADMIN) for v in view.versions]
    now = utcnow()
    assert set(readable(versions, frozenset({"research"}), now)) == {"prices"}
    assert set(readable(versions, frozenset({"risk", "public"}), now)) == {"positions"}
    assert readable(versions, frozenset({"research"}), now.replace(year=2000)) == {}
    widened = [v if v.dataset != "prices" else replace(v, version=9, acl=frozenset({"public"})) for v in versions]
    assert readable([*versions, *widened], frozenset({"research"}), now) == {}  # the newest ACL governs


def test_json_value() -> None:
    from datetime import date, datetime, timedelta
    from decimal import Decimal

    assert json_value(Decimal("1.10")) == "1.10"
    assert json_value(float("nan")) == "nan" and json_value(1.5) == 1.5
    assert json_value(date(2024, 1, 2)) == "2024-01-02"
    assert json_value(datetime(2024, 1, 2, 3, 4)) == "2024-01-02T03:04:00"
    assert json_value(timedelta(seconds=90)) == 90.0
    assert json_value(b"\x01\xff") == "01ff"
    assert json_value({"a": [Decimal("2"), None]}) == {"a": ["2", None]}
