"""The dataset store contract: every backend's test subclasses :class:`DatasetStoreContract`
and supplies one fixture, ``datasets`` (an empty store, ready)::

    class TestDuckDBDatasets(DatasetStoreContract):
        @pytest.fixture
        def datasets(self, tmp_path): return DuckDBDatasets(tmp_path / "datasets.duckdb")

The checks go through :class:`~strongroom.data.base.DatasetStore` only, except one: the
engine's own refusals are shown through the backend's ``_run_engine`` (SQL that skips the
checker), with the statements in :attr:`DatasetStoreContract.engine_file_reads`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from strongroom.data.base import DatasetStore, DatasetVersion, QueryLimits, QueryResult
from strongroom.errors import IngestError, QueryError

__all__ = ["DatasetStoreContract", "write_csv"]

T1 = datetime(2024, 2, 1, 18, 0, tzinfo=UTC)  # the first load
T2 = datetime(2024, 2, 2, 18, 0, tzinfo=UTC)  # a correction
T3 = datetime(2024, 2, 3, 18, 0, tzinfo=UTC)
LATER = datetime(2030, 1, 1, tzinfo=UTC)
DAYS = [date(2024, 1, d) for d in (2, 3, 4, 5, 8)]
PRICES = [("ACME", 10.0 + i, d) for i, d in enumerate(DAYS)] + [("BETA", 20.0 + i, d) for i, d in enumerate(DAYS)]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    """A small CSV file (values written with ``str``; None as an empty field)."""
    lines = [",".join(header), *(",".join("" if v is None else str(v) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class DatasetStoreContract:
    """Behaviour every dataset backend must have."""

    #: statements that read a file, which the engine itself must refuse
    engine_file_reads: tuple[str, ...] = ()

    @pytest.fixture
    def prices(self, datasets: DatasetStore, tmp_path: Path) -> DatasetVersion:
        """Ten daily closes of two tickers, loaded at T1 for the research group."""
        path = write_csv(tmp_path / "prices.csv", ["date", "ticker", "close"], [(d, t, c) for t, c, d in PRICES])
        return datasets.load(
            "prices", path, acl=frozenset({"research"}), valid_time_column="date", key_columns=["ticker"],
            loaded_by="loader", loaded_at=T1,
        )  # fmt: skip

    def ask(
        self, datasets: DatasetStore, sql: str, *, as_of: datetime = LATER, known_at: datetime = LATER, **kw: object
    ) -> QueryResult:
        limits = QueryLimits(**kw)  # type: ignore[arg-type]
        return datasets.query(sql, ["prices", "extra"], as_of=as_of, known_at=known_at, limits=limits)

    # -- loads and versions -------------------------------------------------------------------

    def test_load_records_a_version(self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path) -> None:
        assert prices.dataset == "prices" and prices.version == 1 and prices.rows == len(PRICES)
        assert prices.sha256 == hashlib.sha256((tmp_path / "prices.csv").read_bytes()).hexdigest()
        assert prices.loaded_at == T1 and prices.loaded_by == "loader" and prices.acl == frozenset({"research"})
        assert prices.valid_time_column == "date" and prices.key_columns == ("ticker",)
        assert prices.columns == (("date", "DATE"), ("ticker", "VARCHAR"), ("close", "DOUBLE"))
        assert prices.source == "prices.csv" and prices.mode == "append" and prices.superseded == 0
        assert datasets.versions() == [prices] and datasets.versions("prices") == [prices]
        assert datasets.versions("nothing") == []

    def test_same_bytes_load_no_new_version(
        self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path
    ) -> None:
        again = datasets.load(
            "prices", tmp_path / "prices.csv", acl=frozenset({"research"}), valid_time_column="date",
            key_columns=["ticker"], loaded_at=T2,
        )  # fmt: skip
        assert again == prices and datasets.versions("prices") == [prices]
        assert self.ask(datasets, "SELECT count(*) FROM prices").rows == ((len(PRICES),),)

    def test_same_bytes_under_a_new_acl_record_it_and_change_no_rows(
        self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path
    ) -> None:
        wider = datasets.load(
            "prices", tmp_path / "prices.csv", acl=frozenset({"research", "desk"}), valid_time_column="date",
            key_columns=["ticker"], loaded_at=T2,
        )  # fmt: skip
        assert (wider.version, wider.rows, wider.superseded, wider.acl) == (2, 0, 0, frozenset({"research", "desk"}))
        assert wider.sha256 == prices.sha256 and datasets.versions("prices") == [prices, wider]
        assert self.ask(datasets, "SELECT count(*), sum(close) FROM prices").rows == ((len(PRICES), 170.0),)

    def test_a_parquet_file_loads_like_its_csv(self, datasets: DatasetStore, tmp_path: Path) -> None:
        import duckdb

        csv = write_csv(tmp_path / "p.csv", ["date", "ticker", "close"], [(d, t, c) for t, c, d in PRICES])
        with duckdb.connect() as engine:
            engine.read_csv(str(csv)).write_parquet(str(tmp_path / "p.parquet"))
        v = datasets.load("extra", tmp_path / "p.parquet", acl=frozenset({"x"}), valid_time_column="date")
        assert v.source == "p.parquet" and v.rows == len(PRICES) and dict(v.columns)["date"] == "DATE"
        assert self.ask(datasets, "SELECT round(sum(close), 2) FROM extra").rows == ((170.0,),)

    # -- the two clocks -----------------------------------------------------------------------

    @pytest.mark.parametrize("day", DAYS)
    def test_no_row_after_as_of_ever_appears(self, datasets: DatasetStore, prices: DatasetVersion, day: date) -> None:
        for as_of in (at(day), at(day) + timedelta(hours=23), at(day) - timedelta(microseconds=1)):
            result = self.ask(datasets, "SELECT date, ticker, close FROM prices", as_of=as_of)
            expected = {(d, t, c) for t, c, d in PRICES if at(d) <= as_of}
            assert set(result.rows) == expected
            assert all(isinstance(row[0], date) and row[0] <= as_of.date() for row in result.rows)

    def test_a_correction_is_invisible_before_it_was_loaded(
        self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path
    ) -> None:
        fix = write_csv(tmp_path / "fix.csv", ["date", "ticker", "close"], [(DAYS[1], "ACME", 99.5)])
        v2 = datasets.load(
            "prices", fix, acl=prices.acl, valid_time_column="date", key_columns=["ticker"], loaded_at=T2
        )
        assert (v2.version, v2.rows, v2.superseded) == (2, 1, 1)
        sql = f"SELECT close FROM prices WHERE ticker = 'ACME' AND date = DATE '{DAYS[1]}'"
        before = self.ask(datasets, sql, known_at=T2 - timedelta(microseconds=1))
        assert before.rows == ((11.0,),) and [d.version for d in before.datasets] == [1]
        after = self.ask(datasets, sql, known_at=T2)
        assert after.rows == ((99.5,),) and [d.version for d in after.datasets] == [2]
        # no other row moved, and nothing at all is known before the first load
        assert self.ask(datasets, "SELECT count(*) FROM prices", known_at=T2).rows == ((len(PRICES),),)
        early = self.ask(datasets, "SELECT count(*) FROM prices", known_at=T1 - timedelta(days=1))
        assert early.rows == ((0,),) and early.datasets == ()

    def test_a_late_row_is_invisible_before_it_was_loaded(
        self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path
    ) -> None:
        late_day = date(2024, 1, 1)  # a price for a day before every loaded one, learnt at T3
        late = write_csv(tmp_path / "late.csv", ["date", "ticker", "close"], [(late_day, "GAMMA", 5.0)])
        datasets.load("prices", late, acl=prices.acl, valid_time_column="date", key_columns=["ticker"], loaded_at=T3)
        sql = "SELECT close FROM prices WHERE ticker = 'GAMMA'"
        assert self.ask(datasets, sql, known_at=T3 - timedelta(microseconds=1)).rows == ()
        assert self.ask(datasets, sql, known_at=T3).rows == ((5.0,),)
        assert self.ask(datasets, sql, known_at=T3, as_of=at(late_day) - timedelta(seconds=1)).rows == ()

    def test_replace_supersedes_every_current_row(
        self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path
    ) -> None:
        whole = write_csv(tmp_path / "whole.csv", ["date", "ticker", "close"], [(DAYS[0], "ACME", 1.0)])
        v2 = datasets.load(
            "prices", whole, acl=prices.acl, valid_time_column="date", key_columns=["ticker"], mode="replace",
            loaded_at=T2,
        )  # fmt: skip
        assert (v2.mode, v2.rows, v2.superseded) == ("replace", 1, len(PRICES))
        sql = "SELECT ticker, close FROM prices ORDER BY ticker"
        assert self.ask(datasets, sql, known_at=T2).rows == (("ACME", 1.0),)
        assert len(self.ask(datasets, sql, known_at=T1).rows) == len(PRICES)

    def test_loads_happen_in_time_order(self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path) -> None:
        fix = write_csv(tmp_path / "fix.csv", ["date", "ticker", "close"], [(DAYS[1], "ACME", 99.5)])
        with pytest.raises(IngestError, match="not after"):
            datasets.load("prices", fix, acl=prices.acl, valid_time_column="date", key_columns=["ticker"], loaded_at=T1)
        with pytest.raises(IngestError, match="time zone"):
            datasets.load(
                "prices", fix, acl=prices.acl, valid_time_column="date", key_columns=["ticker"],
                loaded_at=datetime(2025, 1, 1),
            )  # fmt: skip
        with pytest.raises(QueryError, match="time zone"):
            datasets.query("SELECT 1 FROM prices", ["prices"], as_of=datetime(2024, 1, 1), known_at=LATER)
        assert datasets.versions("prices") == [prices]

    def test_a_timestamp_valid_time_cuts_at_the_instant(self, datasets: DatasetStore, tmp_path: Path) -> None:
        rows = [("2024-01-02 09:30:00+00:00", "ACME", 1), ("2024-01-02 16:00:00+00:00", "ACME", 2)]
        path = write_csv(tmp_path / "ticks.csv", ["ts", "ticker", "qty"], rows)
        v = datasets.load("extra", path, acl=frozenset({"x"}), valid_time_column="ts", key_columns=["ticker"])
        assert dict(v.columns)["ts"] == "TIMESTAMPTZ"
        noon = datetime(2024, 1, 2, 12, tzinfo=UTC)
        assert self.ask(datasets, "SELECT sum(qty) FROM extra", as_of=noon).rows == ((1,),)
        assert self.ask(datasets, "SELECT sum(qty) FROM extra").rows == ((3,),)

    # -- refusals -----------------------------------------------------------------------------

    def bad_loads(self, tmp_path: Path) -> list[tuple[str, Callable[[DatasetStore], object]]]:
        """(what the message says, a load that must be refused) for an existing ``prices``."""
        good = ["date", "ticker", "close"]

        def load(name: str, path: Path, vt: str = "date", keys: Sequence[str] = ("ticker",)) -> Callable[..., object]:
            return lambda d: d.load(name, path, acl=frozenset({"research"}), valid_time_column=vt, key_columns=keys)

        def f(file: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
            return write_csv(tmp_path / file, header, rows)

        (tmp_path / "empty.csv").write_bytes(b"")
        (tmp_path / "prices.json").write_text('[{"date": "2024-01-02"}]')
        (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
        one = [(DAYS[0], "ACME", 1.5)]
        return [
            ("empty", load("fresh", tmp_path / "empty.csv")),
            ("no rows", load("fresh", f("header.csv", good, []))),
            (".csv or .parquet", load("fresh", tmp_path / "prices.json")),
            ("cannot read it as Parquet", load("fresh", tmp_path / "broken.parquet")),
            ("no valid-time column 'day'", load("fresh", f("a.csv", good, one), vt="day")),
            ("no key column 'isin'", load("fresh", f("b.csv", good, one), keys=("isin",))),
            ("not dates", load("fresh", f("c.csv", good, [("soon", "ACME", 1.0)]))),
            ("one row per key", load("fresh", f("d.csv", good, [*one, *one]))),
            ("empty in 1 rows", load("fresh", f("e.csv", good, [*one, (DAYS[1], None, 2.0)]))),
            ("bad dataset name", load("Prices", f("g.csv", good, one))),
            ("bad dataset name", load("prices;drop", f("g.csv", good, one))),
            ("bad dataset name", load("../prices", f("g.csv", good, one))),
            ("reserved", load("pg_class", f("g.csv", good, one))),
            ("reserved", load("duckdb_settings", f("g.csv", good, one))),
            ("not a usable name", load("fresh", f("h.csv", ['da"te', "ticker", "close"], one), vt='da"te')),
            ("not a usable name", load("fresh", f("i.csv", ["date", "tick er", "close"], one))),
            ("reserved for strongroom", load("fresh", f("j.csv", [*good, "_superseded_at"], [(*one[0], 1)]))),
            ("unknown load mode", lambda d: d.load("fresh", f("k.csv", good, one), acl=frozenset(), valid_time_column="date", mode="upsert")),  # noqa: E501
            # against the existing dataset
            ("lacks close", load("prices", f("l.csv", ["date", "ticker"], [(DAYS[0], "ACME")]))),
            ("has volume", load("prices", f("m.csv", [*good, "volume"], [(*one[0], 7)]))),
            ("does not fit", load("prices", f("n.csv", good, [(DAYS[0], "ACME", "n/a")]))),
            ("load it with the same ones", load("prices", f("o.csv", good, one), keys=())),
        ]  # fmt: skip

    def test_refused_loads_leave_nothing_behind(
        self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path
    ) -> None:
        before = self.ask(datasets, "SELECT * FROM prices ORDER BY ticker, date").rows
        for message, bad in self.bad_loads(tmp_path):
            with pytest.raises(IngestError, match=re.escape(message)):
                bad(datasets)
        assert datasets.versions() == [prices]
        assert self.ask(datasets, "SELECT * FROM prices ORDER BY ticker, date").rows == before
        with pytest.raises(QueryError, match="unknown dataset 'fresh'"):
            datasets.query("SELECT * FROM fresh", ["prices", "fresh"], as_of=LATER, known_at=LATER)

    def test_a_dataset_outside_allowed_is_unknown_like_a_missing_one(
        self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path
    ) -> None:
        desk = write_csv(tmp_path / "desk.csv", ["date", "book", "pnl"], [(DAYS[0], "rates", 1.0)])
        datasets.load("desk_pnl", desk, acl=frozenset({"desk"}), valid_time_column="date")
        messages = []
        for name in ("desk_pnl", "no_such_thing"):
            for sql in (f"SELECT * FROM {name}", f"SELECT * FROM prices WHERE ticker IN (SELECT book FROM {name})"):
                with pytest.raises(QueryError) as info:
                    datasets.query(sql, ["prices"], as_of=LATER, known_at=LATER)
                messages.append(str(info.value).replace(name, "X"))
        assert len(set(messages)) == 1 and "these are yours: prices" in messages[0]

    def test_rows_past_max_rows_are_cut_and_flagged(self, datasets: DatasetStore, prices: DatasetVersion) -> None:
        cut = self.ask(datasets, "SELECT * FROM prices ORDER BY close", max_rows=3)
        assert cut.truncated and [r[2] for r in cut.rows] == [10.0, 11.0, 12.0]
        whole = self.ask(datasets, "SELECT * FROM prices", max_rows=len(PRICES))
        assert not whole.truncated and len(whole.rows) == len(PRICES)
        assert not self.ask(datasets, "SELECT * FROM prices LIMIT 2", max_rows=3).truncated
        assert cut.columns == ("date", "ticker", "close") and "LIMIT 4" in cut.executed_sql.upper()

    def test_a_slow_query_is_interrupted_by_the_engine(self, datasets: DatasetStore, tmp_path: Path) -> None:
        rows = [(f"I{i:05d}", float(i), DAYS[0]) for i in range(3000)]
        path = write_csv(tmp_path / "wide.csv", ["ticker", "close", "date"], rows)
        datasets.load("extra", path, acl=frozenset({"x"}), valid_time_column="date", key_columns=["ticker"])
        sql = "SELECT sum(a.close * b.close - c.close) FROM extra a, extra b, extra c"
        for seconds in (0.5, 0.0):  # no limit is ever "none": a zero limit stops the query at once
            with pytest.raises(QueryError, match=f"ran past {seconds:g} s"):
                self.ask(datasets, sql, timeout_s=seconds)
        assert self.ask(datasets, "SELECT count(*) FROM extra").rows == ((3000,),)  # the store still answers

    def test_the_engine_refuses_files_and_writes_without_the_checker(
        self, datasets: DatasetStore, prices: DatasetVersion
    ) -> None:
        raw = datasets._run_engine  # type: ignore[attr-defined]
        assert self.engine_file_reads, "a backend names the statements that would read a file"
        for sql in self.engine_file_reads:
            with pytest.raises(QueryError, match=r"(?i)permission|denied|disabled|not allowed"):
                raw(sql)
        for sql in ("DELETE FROM strongroom_data.prices", "DROP TABLE strongroom_data.prices"):
            with pytest.raises(QueryError, match=r"(?i)read.only"):
                raw(sql)
        assert self.ask(datasets, "SELECT count(*) FROM prices").rows == ((len(PRICES),),)

    def test_checked_sql_refuses_what_is_not_a_select(self, datasets: DatasetStore, prices: DatasetVersion) -> None:
        for sql in (
            "SELECT * FROM read_csv_auto('/etc/passwd')",
            "DROP TABLE prices",
            "SELECT 1; DROP TABLE prices",
            "SELECT * FROM strongroom_data.prices",
            "SELECT * FROM strongroom_data._versions",
        ):
            with pytest.raises(QueryError):
                self.ask(datasets, sql)
        assert self.ask(datasets, "SELECT count(*) FROM prices").rows == ((len(PRICES),),)

    def test_hostile_but_legal_names_work_quoted(self, datasets: DatasetStore, tmp_path: Path) -> None:
        header = ["Date", "ORDER", "select", "from_"]
        path = write_csv(tmp_path / "odd name; drop.csv", header, [(DAYS[0], 1, "a", "x'); --")])
        v = datasets.load("extra", path, acl=frozenset({"x"}), valid_time_column="DATE", key_columns=["Order"])
        assert [c for c, _ in v.columns] == ["date", "order", "select", "from_"] and v.source == "odd name; drop.csv"
        result = self.ask(datasets, "SELECT \"order\", \"select\", from_ FROM extra WHERE from_ = 'x''); --'")
        assert result.rows == ((1, "a", "x'); --"),)

    def test_queries_run_side_by_side_with_a_load(
        self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path
    ) -> None:
        fixes = write_csv(tmp_path / "fix.csv", ["date", "ticker", "close"], [(d, "ACME", 0.0) for d in DAYS])
        sql = "SELECT count(*), sum(close) FROM prices"

        def asked(i: int) -> tuple[object, ...]:
            known = T1 if i % 2 else LATER
            return self.ask(datasets, sql, known_at=known).rows[0]

        loaded = threading.Thread(
            target=datasets.load, args=("prices", fixes),
            kwargs={"acl": prices.acl, "valid_time_column": "date", "key_columns": ["ticker"], "loaded_at": T2},
        )  # fmt: skip
        with ThreadPoolExecutor(4) as pool:
            loaded.start()
            answers = list(pool.map(asked, range(40)))
            loaded.join()
        assert {a for i, a in enumerate(answers) if i % 2} == {(len(PRICES), 170.0)}
        assert {a for i, a in enumerate(answers) if not i % 2} <= {(len(PRICES), 170.0), (len(PRICES), 110.0)}
        assert self.ask(datasets, sql).rows == ((len(PRICES), 110.0),)

    # -- as-of joins (DuckDB's ASOF JOIN; a LATERAL subquery where the engine has none) -------

    @pytest.fixture
    def trades(self, datasets: DatasetStore, prices: DatasetVersion, tmp_path: Path) -> DatasetVersion:
        """Five trades (as dataset ``extra``): before every price, on a Saturday, on a price
        day, after the last price, and of a ticker without prices."""
        rows = [
            (date(2024, 1, 1), "ACME", 1), (date(2024, 1, 6), "ACME", 2), (date(2024, 1, 4), "BETA", 3),
            (date(2024, 1, 9), "BETA", 4), (date(2024, 1, 5), "GAMMA", 5),
        ]  # fmt: skip
        path = write_csv(tmp_path / "trades.csv", ["day", "ticker", "qty"], rows)
        return datasets.load("extra", path, acl=frozenset({"x"}), valid_time_column="day", loaded_at=T1)

    ASOF = (
        "SELECT t.ticker, t.day, p.date, p.close FROM extra AS t {join} prices AS p "
        "ON t.ticker = p.ticker AND {inequality} ORDER BY t.ticker, t.day"
    )

    def test_asof_join_takes_the_latest_right_row_at_or_before(
        self, datasets: DatasetStore, trades: DatasetVersion
    ) -> None:
        d = date
        inner = self.ask(datasets, self.ASOF.format(join="ASOF JOIN", inequality="t.day >= p.date"))
        assert inner.rows == (
            ("ACME", d(2024, 1, 6), d(2024, 1, 5), 13.0),
            ("BETA", d(2024, 1, 4), d(2024, 1, 4), 22.0),
            ("BETA", d(2024, 1, 9), d(2024, 1, 8), 24.0),
        )
        left = self.ask(datasets, self.ASOF.format(join="ASOF LEFT JOIN", inequality="p.date <= t.day"))
        assert left.rows == (
            ("ACME", d(2024, 1, 1), None, None),
            *inner.rows,
            ("GAMMA", d(2024, 1, 5), None, None),
        )
        strictly = self.ask(datasets, self.ASOF.format(join="ASOF JOIN", inequality="t.day > p.date"))
        assert [r[2] for r in strictly.rows] == [d(2024, 1, 5), d(2024, 1, 3), d(2024, 1, 8)]

    def test_asof_join_the_other_way_takes_the_first_right_row_at_or_after(
        self, datasets: DatasetStore, trades: DatasetVersion
    ) -> None:
        d = date
        after = self.ask(datasets, self.ASOF.format(join="ASOF JOIN", inequality="t.day <= p.date"))
        assert after.rows == (
            ("ACME", d(2024, 1, 1), d(2024, 1, 2), 10.0),
            ("ACME", d(2024, 1, 6), d(2024, 1, 8), 14.0),
            ("BETA", d(2024, 1, 4), d(2024, 1, 4), 22.0),
        )
        strictly = self.ask(datasets, self.ASOF.format(join="ASOF JOIN", inequality="p.date > t.day"))
        assert [r[2] for r in strictly.rows] == [d(2024, 1, 2), d(2024, 1, 8), d(2024, 1, 5)]

    def test_asof_join_sees_both_sides_at_the_query_clocks(
        self, datasets: DatasetStore, trades: DatasetVersion, tmp_path: Path
    ) -> None:
        fix = write_csv(tmp_path / "fix.csv", ["date", "ticker", "close"], [(DAYS[3], "ACME", 99.0)])
        datasets.load("prices", fix, acl=frozenset({"research"}), valid_time_column="date", key_columns=["ticker"],
                      loaded_at=T2)  # fmt: skip
        sql = self.ASOF.format(join="ASOF JOIN", inequality="t.day >= p.date")
        # as of Jan 5: neither the trades after it nor the prices after it exist yet
        early = self.ask(datasets, sql, as_of=at(date(2024, 1, 5)) + timedelta(hours=23))
        assert early.rows == (("BETA", date(2024, 1, 4), date(2024, 1, 4), 22.0),)
        acme = [r[3] for r in self.ask(datasets, sql, known_at=T2 - timedelta(microseconds=1)).rows if r[0] == "ACME"]
        assert acme == [13.0]  # before the correction was loaded
        assert [r[3] for r in self.ask(datasets, sql, known_at=T2).rows if r[0] == "ACME"] == [99.0]
        assert sorted((v.dataset, v.version) for v in self.ask(datasets, sql, known_at=T2).datasets) == [
            ("extra", 1), ("prices", 2),
        ]  # fmt: skip

    def test_asof_join_reads_only_allowed_datasets(self, datasets: DatasetStore, trades: DatasetVersion) -> None:
        sql = self.ASOF.format(join="ASOF JOIN", inequality="t.day >= p.date")
        with pytest.raises(QueryError, match="unknown dataset 'prices'"):
            datasets.query(sql, ["extra"], as_of=LATER, known_at=LATER)
        nested = f"SELECT count(*) FROM extra WHERE day IN (SELECT day FROM ({sql}) AS j)"
        with pytest.raises(QueryError, match="unknown dataset 'prices'"):
            datasets.query(nested, ["extra"], as_of=LATER, known_at=LATER)
