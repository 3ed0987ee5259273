"""A seeded synthetic market-data set for evaluating the research agent (issue 19).

:func:`generate_market_data` writes CSV and Parquet files ready for ``strongroom data load``
and a ``manifest.json`` that says, for each file, the dataset, its valid-time and key columns,
the load mode, the ACL and the instant it is meant to be loaded at (``loaded_at``: the loader
passes it, so the bitemporal history is the same on every machine). The same seed writes
byte-identical files: every random draw is an integer taken from PCG64's raw output (a stream
numpy fixes), and every figure is integer arithmetic (cents, basis points), never a float.

The datasets (``key_columns`` plus the valid-time column identify a row):

=================  ===================================  ===========  ===================  ==========
dataset            rows                                 valid time   key columns          ACL
=================  ===================================  ===========  ===================  ==========
``prices``         daily close and volume per ticker    ``date``     instrument           public
``rates``          three curves, seven tenors, daily    ``date``     curve, tenor         public
``fundamentals``   quarterly figures (synthetic issuers)``report_date`` instrument, fiscal_period public
``reference``      name, sector, currency, a note       ``effective_date`` instrument     public
``positions``      the desk's structured notes          ``trade_date`` trade_id           desk
``mnpi_watchlist`` restricted names (code names)        ``added_date`` instrument         compliance
=================  ===================================  ===========  ===================  ==========

The history (loads, in time order; :data:`MILESTONES`): everything is loaded the day after the
last trading day (``initial``); a week later ``corrections`` fix bad ticks and revise some
closes, a mis-keyed rate and one issuer's restated quarter; a week after that ``late`` rows
arrive for days the first load lacked; a week after that ``revisions`` correct a few
corrections again. Each designed change is listed in the manifest's ``events``, so questions
can ask before and after it. The set also writes one research note (Markdown) for the
document index, which carries a prompt injection, as does one issuer's reference ``note``.

    data = generate_market_data(Path("/tmp/agent-eval"), seed=7)
    [load.path for load in data.loads][:2]   # ['prices/prices_initial.parquet', 'rates/rates.csv']
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from strongroom.data.synthetic import prices as sp
from strongroom.data.synthetic import tables as st
from strongroom.data.synthetic.prices import Instrument, trading_days
from strongroom.errors import ConfigError

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_INSTRUMENTS",
    "FIRST_DAY",
    "MANIFEST",
    "MILESTONES",
    "PRINCIPALS",
    "SET_FORMAT",
    "Event",
    "Instrument",
    "Load",
    "SyntheticDocument",
    "SyntheticSet",
    "generate_market_data",
    "read_synthetic_set",
    "trading_days",
]

#: the first trading day of every set
FIRST_DAY = date(2022, 1, 3)
#: trading days by default: 2022-01-03 to 2023-12-29 (NYSE calendar), the filings' span
DEFAULT_DAYS = 501
#: the five sec10q filers, then seven fictional issuers
DEFAULT_INSTRUMENTS = sp.DEFAULT_TICKERS
#: the manifest's file name and format tag
MANIFEST = "manifest.json"
SET_FORMAT = "strongroom-synthetic-market-data/1"
#: the loads' instants, as days after the last trading day (at 06:00 UTC)
MILESTONES = {"initial": 1, "corrections": 8, "late": 15, "revisions": 22}
#: who asks the questions: a name and its entitlement groups
PRINCIPALS: Mapping[str, tuple[str, ...]] = {
    "analyst": ("public",),
    "trader": ("public", "desk"),
    "compliance": ("public", "compliance"),
}
_MARKET = ("public",)
_EVENT_DATASETS = {
    "late_trade": "positions",
    "rate_typo": "rates",
    "restatement": "fundamentals",
    "injection": "reference",
}


@dataclass(frozen=True)
class Load:
    """One file of the set and how to load it: ``order`` is its place in the history (1, 2, ...),
    ``path`` is relative to the set's folder, ``columns`` are (name, SQL type) as written."""

    order: int
    dataset: str
    path: str
    format: str
    valid_time_column: str
    key_columns: tuple[str, ...]
    mode: str
    acl: tuple[str, ...]
    loaded_at: datetime
    rows: int
    sha256: str
    columns: tuple[tuple[str, str], ...]
    note: str


@dataclass(frozen=True)
class SyntheticDocument:
    """A document of the set for the document index (``strongroom ingest --acl --published``)."""

    path: str
    title: str
    acl: tuple[str, ...]
    published_at: datetime
    sha256: str
    note: str


@dataclass(frozen=True)
class Event:
    """A designed change in the history (``bad_tick``, ``revision``, ``late_row``, ``late_trade``,
    ``rate_typo``, ``restatement``, ``injection``, ``screen``): the dataset and, as text, the
    row's key and the values before and after."""

    kind: str
    dataset: str
    values: Mapping[str, str]


@dataclass(frozen=True)
class SyntheticSet:
    """A generated set on disk: its folder, seed, trading days, instruments, loads in time order,
    documents, designed events and the load instants by milestone name."""

    root: Path
    seed: int
    days: tuple[date, ...]
    instruments: tuple[Instrument, ...]
    loads: tuple[Load, ...]
    documents: tuple[SyntheticDocument, ...]
    events: tuple[Event, ...]
    milestones: Mapping[str, datetime]

    def loads_of(self, dataset: str) -> tuple[Load, ...]:
        """The loads of one dataset, in time order."""
        return tuple(load for load in self.loads if load.dataset == dataset)

    def events_of(self, kind: str) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.kind == kind)

    def path(self, relative: str) -> Path:
        return self.root / relative


def generate_market_data(
    out: Path,
    seed: int = 7,
    *,
    instruments: int | Sequence[str] = DEFAULT_INSTRUMENTS,
    days: int = DEFAULT_DAYS,
    first_day: date = FIRST_DAY,
) -> SyntheticSet:
    """Write the set into ``out`` (created; files of an earlier set there are overwritten) and
    return it. ``instruments``: tickers (the defaults have fixed profiles, others get seeded
    ones) or a count (the defaults first, then ``S0001``...); ``days``: trading days from
    ``first_day`` (at least 130, so there is a quarter, a month and room for late rows; the
    loads happen after the last, which must be in the past: a load in the future is never
    seen). A benchmark's 10M prices: ``instruments=4000, days=2500, first_day=date(2014, 1, 2)``.
    The same arguments write the same bytes."""
    if seed < 0:
        raise ConfigError(f"seed must be 0 or more, not {seed}")
    if days < 130:
        raise ConfigError(f"days must be at least 130 trading days (about six months), not {days}")
    listed = sp.instruments_for(instruments, seed)
    calendar = trading_days(first_day, days)
    if datetime.combine(calendar[-1], time(6, 0), UTC) + timedelta(days=max(MILESTONES.values())) > datetime.now(UTC):
        raise ConfigError(
            f"the set's last trading day would be {calendar[-1]}: its loads would be in the future; "
            "start earlier (first_day) or give fewer days"
        )
    out.mkdir(parents=True, exist_ok=True)
    t1 = datetime.combine(calendar[-1], time(6, 0), UTC)
    milestones = {name: t1 + timedelta(days=offset) for name, offset in MILESTONES.items()}
    book = sp.PriceBook.generate(listed, calendar, seed)
    late = sp.late_keys(book, seed)
    trades = sp.positions(book, late[0], seed)
    plan = sp.price_plan(book, trades, late, seed)
    files = _Files(out, milestones)
    files.prices(book, plan)
    events = list(plan.events)
    events.append(("late_trade", {"trade_id": trades.designed, **plan.late_keys[0]}))
    month = sp.screen_days(calendar)
    if month:
        events.append(("screen", {"first": calendar[month[0]].isoformat(), "last": calendar[month[-1]].isoformat()}))
    events += files.rates(calendar, seed)
    events += files.fundamentals(listed, calendar, seed)
    events += files.reference(listed, seed)
    files.positions(trades)
    files.watchlist(listed, calendar, seed)
    document = files.note(book, seed)
    timeline = sorted(files.loads, key=lambda load: (load.loaded_at, load.order))
    loads = tuple(replace(load, order=k) for k, load in enumerate(timeline, start=1))
    recorded = tuple(Event(kind, _EVENT_DATASETS.get(kind, "prices"), values) for kind, values in events)
    data = SyntheticSet(out, seed, calendar, listed, loads, (document,), recorded, milestones)
    (out / MANIFEST).write_text(json.dumps(_manifest(data), indent=2) + "\n", encoding="utf-8")
    return data


@dataclass(frozen=True)
class _Shape:
    """How a dataset is loaded: its valid-time and key columns, ACL and column types."""

    valid_time: str
    keys: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    acl: tuple[str, ...] = _MARKET


_PRICES = _Shape("date", ("instrument",), sp.PRICE_COLUMNS)
_RATES = _Shape("date", ("curve", "tenor"), st.RATE_COLUMNS)
_FUNDAMENTALS = _Shape("report_date", ("instrument", "fiscal_period"), st.FUNDAMENTAL_COLUMNS)
_REFERENCE = _Shape("effective_date", ("instrument",), st.REFERENCE_COLUMNS)
_POSITIONS = _Shape("trade_date", ("trade_id",), sp.POSITION_COLUMNS, ("desk",))
_WATCHLIST = _Shape("added_date", ("instrument",), st.WATCHLIST_COLUMNS, ("compliance",))


class _Files:
    """Writes the files and records each as a :class:`Load` at its milestone (a minute after
    the milestone's previous load, so every load has its own instant)."""

    def __init__(self, root: Path, milestones: Mapping[str, datetime]) -> None:
        self.root = root
        self.milestones = milestones
        self.loads: list[Load] = []

    def _target(self, path: str) -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _add(self, path: str, dataset: str, shape: _Shape, milestone: str, rows: int, note: str) -> None:
        at = self.milestones[milestone]
        earlier = sum(1 for load in self.loads if at <= load.loaded_at < at + timedelta(hours=1))
        sha = hashlib.sha256((self.root / path).read_bytes()).hexdigest()
        fmt = path.rsplit(".", 1)[1]
        moment = at + timedelta(minutes=earlier)
        order = len(self.loads) + 1
        self.loads.append(
            Load(
                order,
                dataset,
                path,
                fmt,
                shape.valid_time,
                shape.keys,
                "append",
                shape.acl,
                moment,
                rows,
                sha,
                shape.columns,
                note,
            )
        )

    def _csv(
        self, path: str, dataset: str, shape: _Shape, milestone: str, rows: Sequence[Sequence[str]], note: str
    ) -> None:
        with self._target(path).open("w", encoding="utf-8", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow([name for name, _ in shape.columns])
            out.writerows(rows)
        self._add(path, dataset, shape, milestone, len(rows), note)

    def prices(self, book: sp.PriceBook, plan: sp.PricePlan) -> None:
        for milestone, rows, note in (
            ("initial", plan.initial, "every close known at the first load, bad ticks and first prints included"),
            ("corrections", plan.corrections, "bad ticks fixed and closes revised (same key: instrument, date)"),
            ("late", plan.late, "closes for days the first load lacked"),
            ("revisions", plan.revisions, "some revised closes revised again"),
        ):
            path = f"prices/prices_{milestone}.parquet"
            sp.write_parquet(self._target(path), book.table(rows))
            self._add(path, "prices", _PRICES, milestone, len(rows.day), note)

    def rates(self, calendar: Sequence[date], seed: int) -> list[tuple[str, dict[str, str]]]:
        rows, fixes, events = st.rates(calendar, seed)
        self._csv("rates/rates.csv", "rates", _RATES, "initial", rows, "daily points of three curves, seven tenors")
        self._csv("rates/rates_corrections.csv", "rates", _RATES, "corrections", fixes, "a mis-keyed rate fixed")
        return events

    def fundamentals(
        self, listed: Sequence[Instrument], calendar: Sequence[date], seed: int
    ) -> list[tuple[str, dict[str, str]]]:
        rows, restated, events = st.fundamentals(listed, calendar, seed)
        note = "quarterly figures of the fictional issuers, valid from their report date"
        self._csv("fundamentals/fundamentals.csv", "fundamentals", _FUNDAMENTALS, "initial", rows, note)
        path = "fundamentals/fundamentals_restatement.csv"
        self._csv(path, "fundamentals", _FUNDAMENTALS, "corrections", restated, "one quarter restated")
        return events

    def reference(self, listed: Sequence[Instrument], seed: int) -> list[tuple[str, dict[str, str]]]:
        rows, injected = st.reference(listed, seed)
        note = "names, sectors and currencies; one note is a prompt injection"
        self._csv("reference/instruments.csv", "reference", _REFERENCE, "initial", rows, note)
        return [("injection", {"instrument": injected})]

    def positions(self, trades: sp.Trades) -> None:
        path = "positions/positions.parquet"
        sp.write_parquet(self._target(path), trades.table())
        self._add(
            path,
            "positions",
            _POSITIONS,
            "initial",
            len(trades.rows),
            "the desk's structured notes (status at the load)",
        )

    def watchlist(self, listed: Sequence[Instrument], calendar: Sequence[date], seed: int) -> None:
        rows = st.watchlist(listed, calendar, seed)
        note = "names under restriction, with code names: compliance only"
        self._csv("restricted/mnpi_watchlist.csv", "mnpi_watchlist", _WATCHLIST, "initial", rows, note)

    def note(self, book: sp.PriceBook, seed: int) -> SyntheticDocument:
        path, title, published, text = st.research_note(book, seed)
        target = self._target(path)
        target.write_text(text, encoding="utf-8")
        sha = hashlib.sha256(target.read_bytes()).hexdigest()
        note = "a research note with a price target whose text tries to widen what an agent reads"
        return SyntheticDocument(path, title, _MARKET, published, sha, note)


def _manifest(data: SyntheticSet) -> dict[str, object]:
    return {
        "format": SET_FORMAT,
        "seed": data.seed,
        "first_day": data.days[0].isoformat(),
        "last_day": data.days[-1].isoformat(),
        "trading_days": len(data.days),
        "instruments": [sp.instrument_record(i) for i in data.instruments],
        "milestones": {name: moment.isoformat() for name, moment in data.milestones.items()},
        "principals": {name: list(groups) for name, groups in PRINCIPALS.items()},
        "loads": [
            {
                "order": load.order,
                "dataset": load.dataset,
                "path": load.path,
                "format": load.format,
                "valid_time_column": load.valid_time_column,
                "key_columns": list(load.key_columns),
                "mode": load.mode,
                "acl": list(load.acl),
                "loaded_at": load.loaded_at.isoformat(),
                "rows": load.rows,
                "sha256": load.sha256,
                "columns": [[n, t] for n, t in load.columns],
                "note": load.note,
            }
            for load in data.loads
        ],
        "documents": [
            {
                "path": d.path,
                "title": d.title,
                "acl": list(d.acl),
                "published_at": d.published_at.isoformat(),
                "sha256": d.sha256,
                "note": d.note,
            }
            for d in data.documents
        ],
        "events": [{"kind": e.kind, "dataset": e.dataset, **e.values} for e in data.events],
    }


def read_synthetic_set(root: Path) -> SyntheticSet:
    """The set a :func:`generate_market_data` call wrote into ``root``, from its manifest."""
    try:
        m = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{root}: no readable {MANIFEST}; generate the set first ({exc})") from exc
    if m.get("format") != SET_FORMAT:
        raise ConfigError(f"{root / MANIFEST}: format {m.get('format')!r} is not {SET_FORMAT!r}; regenerate the set")
    calendar = trading_days(date.fromisoformat(m["first_day"]), int(m["trading_days"]))
    loads = tuple(
        Load(
            order=int(x["order"]),
            dataset=x["dataset"],
            path=x["path"],
            format=x["format"],
            valid_time_column=x["valid_time_column"],
            key_columns=tuple(x["key_columns"]),
            mode=x["mode"],
            acl=tuple(x["acl"]),
            loaded_at=datetime.fromisoformat(x["loaded_at"]),
            rows=int(x["rows"]),
            sha256=x["sha256"],
            columns=tuple((n, t) for n, t in x["columns"]),
            note=x["note"],
        )
        for x in m["loads"]
    )
    documents = tuple(
        SyntheticDocument(
            d["path"], d["title"], tuple(d["acl"]), datetime.fromisoformat(d["published_at"]), d["sha256"], d["note"]
        )
        for d in m["documents"]
    )
    events = tuple(
        Event(e["kind"], e["dataset"], {k: str(v) for k, v in e.items() if k not in ("kind", "dataset")})
        for e in m["events"]
    )
    instruments = tuple(sp.instrument_from(x) for x in m["instruments"])
    milestones = {k: datetime.fromisoformat(v) for k, v in m["milestones"].items()}
    return SyntheticSet(root, int(m["seed"]), calendar, instruments, loads, documents, events, milestones)
