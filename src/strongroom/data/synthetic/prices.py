"""The synthetic set's instruments, trading calendar, price paths, the desk's positions and the
price history's designed changes (bad ticks, revisions, late rows). Pure: nothing here opens a
file but :func:`write_parquet`.

Every draw is an integer from :class:`Stream` (PCG64's raw output, which numpy keeps the same
across versions; its distributions may change, so none is used) and every price is integer
cents, so a seed gives the same rows on every machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from numpy.typing import NDArray

from strongroom.errors import ConfigError

__all__ = [
    "DEFAULT_TICKERS",
    "POSITION_COLUMNS",
    "PRICE_COLUMNS",
    "Instrument",
    "PriceBook",
    "PricePlan",
    "PriceRows",
    "Stream",
    "Trades",
    "decimal_text",
    "instrument_from",
    "instrument_record",
    "instruments_for",
    "late_keys",
    "nyse_holidays",
    "positions",
    "price_plan",
    "trading_days",
    "write_parquet",
]

T = TypeVar("T")
Ints = NDArray[np.int64]
#: (name, SQL type) of the files' columns, as DuckDB reads them
PRICE_COLUMNS = (
    ("instrument", "VARCHAR"),
    ("date", "DATE"),
    ("close", "DECIMAL(12,2)"),
    ("volume", "BIGINT"),
    ("currency", "VARCHAR"),
)
POSITION_COLUMNS = (
    ("trade_id", "VARCHAR"),
    ("book", "VARCHAR"),
    ("product", "VARCHAR"),
    ("instrument", "VARCHAR"),
    ("currency", "VARCHAR"),
    ("notional", "BIGINT"),
    ("initial_level", "DECIMAL(12,2)"),
    ("knock_in_pct", "INTEGER"),
    ("coupon_pct", "DECIMAL(5,2)"),
    ("trade_date", "DATE"),
    ("maturity", "DATE"),
    ("status", "VARCHAR"),
)
_TICKER = re.compile(r"^[A-Z][A-Z0-9]{0,9}$")


class Stream:
    """Seeded integers, one independent stream per ``name`` (so adding draws to one part of the
    set leaves the others' rows as they were)."""

    def __init__(self, seed: int, name: str) -> None:
        self._bits = np.random.PCG64(np.random.SeedSequence([seed, *name.encode()]))

    def raw(self, shape: int | tuple[int, ...]) -> NDArray[np.uint64]:
        out: NDArray[np.uint64] = self._bits.random_raw(shape)
        return out

    def ints(self, low: int, high: int, size: int) -> Ints:
        """``size`` integers from ``low`` to ``high``, both included."""
        return (self.raw(size) % np.uint64(high - low + 1)).astype(np.int64) + low

    def between(self, low: int, high: int) -> int:
        return int(self.ints(low, high, 1)[0])

    def pick(self, items: Sequence[T]) -> T:
        return items[self.between(0, len(items) - 1)]

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        """``k`` distinct items (a partial Fisher-Yates shuffle), in draw order."""
        pool = list(items)
        for j in range(min(k, len(pool))):
            swap = self.between(j, len(pool) - 1)
            pool[j], pool[swap] = pool[swap], pool[j]
        return pool[: min(k, len(pool))]


def decimal_text(units: int, places: int) -> str:
    """An integer count of 10**-places as exact decimal text: ``decimal_text(-1205, 2)`` is ``-12.05``."""
    if places == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


# -- the calendar ---------------------------------------------------------------------------


def _nth(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th ``weekday`` (Monday 0) of a month; ``n = -1``: the last."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    # the anonymous Gregorian algorithm (Meeus/Jones/Butcher)
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(d: date) -> date:
    return d - timedelta(days=1) if d.weekday() == 5 else d + timedelta(days=1) if d.weekday() == 6 else d


@cache
def nyse_holidays(year: int) -> frozenset[date]:
    """The NYSE's full-day holidays of ``year`` by its rules (a Saturday New Year is not made up;
    one-off closures such as a national day of mourning are not included)."""
    days = {
        _nth(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _nth(year, 5, 0, -1),  # Memorial Day
        _observed(date(year, 7, 4)),
        _nth(year, 9, 0, 1),  # Labor Day
        _nth(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    if date(year, 1, 1).weekday() != 5:
        days.add(_observed(date(year, 1, 1)))
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth
    return frozenset(days)


def trading_days(first: date, count: int) -> tuple[date, ...]:
    """``count`` NYSE trading days from ``first`` (itself included if it is one)."""
    out: list[date] = []
    day = first
    while len(out) < count:
        if day.weekday() < 5 and day not in nyse_holidays(day.year):
            out.append(day)
        day += timedelta(days=1)
    return tuple(out)


# -- instruments ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instrument:
    """A ticker and how its price moves: ``start_cents`` on the first day, ``drift_bp`` a day,
    and ``vol_bp``, the half-width of each of the four uniform draws summed into a day's move
    (a standard deviation of about 1.15 times it)."""

    ticker: str
    name: str
    sector: str
    currency: str
    country: str
    start_cents: int
    drift_bp: int
    vol_bp: int
    volume: int
    synthetic: bool = True


def _real(ticker: str, name: str, sector: str, start: int, drift: int, vol: int, volume: int) -> Instrument:
    return Instrument(ticker, name, sector, "USD", "US", start, drift, vol, volume, synthetic=False)


_PROFILES = {
    i.ticker: i
    for i in (
        _real("AAPL", "Apple Inc.", "Information Technology", 18200, 3, 95, 80_000_000),
        _real("AMZN", "Amazon.com, Inc.", "Consumer Discretionary", 16700, 1, 140, 60_000_000),
        _real("INTC", "Intel Corporation", "Information Technology", 5300, -4, 130, 35_000_000),
        _real("MSFT", "Microsoft Corporation", "Information Technology", 33500, 3, 100, 25_000_000),
        _real("NVDA", "NVIDIA Corporation", "Information Technology", 30100, 8, 200, 45_000_000),
        Instrument("ALDR", "Alder Robotics plc", "Industrials", "USD", "GB", 4250, 2, 120, 2_000_000),
        Instrument("BRKV", "Brackenvale Mining Corp.", "Materials", "USD", "CA", 6800, -14, 160, 3_000_000),
        Instrument("CIRR", "Cirrus Biotherapeutics Inc.", "Health Care", "USD", "US", 2900, -6, 260, 5_000_000),
        Instrument("DOVX", "Dovex Energy Inc.", "Energy", "USD", "US", 5500, 4, 150, 4_000_000),
        Instrument("EMBR", "Emberline Retail Group", "Consumer Discretionary", "USD", "US", 3100, -3, 140, 3_000_000),
        Instrument("FJRD", "Fjordline Shipping ASA", "Industrials", "EUR", "NL", 1850, 1, 170, 1_500_000),
        Instrument("GLNT", "Gallant Financial Holdings", "Financials", "USD", "US", 7700, 0, 110, 2_000_000),
    )
}
#: the five sec10q filers (prices here are synthetic) and seven fictional issuers
DEFAULT_TICKERS = tuple(_PROFILES)
_SECTORS = ("Industrials", "Materials", "Health Care", "Energy", "Financials", "Utilities", "Real Estate")


def instruments_for(instruments: int | Sequence[str], seed: int) -> tuple[Instrument, ...]:
    """The instruments of a set: tickers (a default's profile, or a seeded one) or a count (the
    defaults, then ``S0001``, ``S0002``...). At least one must be fictional (fundamentals)."""
    if isinstance(instruments, int):
        if instruments < 1:
            raise ConfigError(f"instruments must be 1 or more, not {instruments}")
        tickers = [
            *DEFAULT_TICKERS[:instruments],
            *(f"S{k:04d}" for k in range(1, instruments - len(DEFAULT_TICKERS) + 1)),
        ]
    else:
        tickers = [str(t) for t in instruments]
    bad = [t for t in tickers if not _TICKER.match(t)]
    if bad or len(set(tickers)) != len(tickers) or not tickers:
        raise ConfigError(
            f"instruments: give distinct tickers of capital letters and digits (at most 10), not {bad or tickers}"
        )
    out = tuple(_PROFILES.get(t) or _seeded(t, seed) for t in tickers)
    if not any(i.synthetic for i in out):
        raise ConfigError("instruments: include at least one fictional issuer (e.g. ALDR): fundamentals need one")
    return out


def _seeded(ticker: str, seed: int) -> Instrument:
    s = Stream(seed, f"instrument:{ticker}")
    return Instrument(
        ticker,
        f"{ticker} Holdings (fictional)",
        s.pick(_SECTORS),
        "USD",
        "US",
        s.between(1000, 40000),
        s.between(-6, 6),
        s.between(80, 250),
        s.between(5, 200) * 100_000,
    )


def instrument_record(i: Instrument) -> dict[str, object]:
    return {
        "ticker": i.ticker,
        "name": i.name,
        "sector": i.sector,
        "currency": i.currency,
        "country": i.country,
        "start_cents": i.start_cents,
        "drift_bp": i.drift_bp,
        "vol_bp": i.vol_bp,
        "volume": i.volume,
        "synthetic": i.synthetic,
    }


def instrument_from(record: Mapping[str, object]) -> Instrument:
    r = dict(record)
    return Instrument(
        str(r["ticker"]),
        str(r["name"]),
        str(r["sector"]),
        str(r["currency"]),
        str(r["country"]),
        int(str(r["start_cents"])),
        int(str(r["drift_bp"])),
        int(str(r["vol_bp"])),
        int(str(r["volume"])),
        bool(r["synthetic"]),
    )


# -- prices ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PriceBook:
    """The true closes (cents) and volumes, indexed [instrument, day]."""

    instruments: tuple[Instrument, ...]
    days: tuple[date, ...]
    cents: Ints
    volume: Ints

    @classmethod
    def generate(cls, instruments: tuple[Instrument, ...], days: tuple[date, ...], seed: int) -> PriceBook:
        n, m = len(instruments), len(days)
        drift = np.array([i.drift_bp for i in instruments], dtype=np.int64)
        half = np.array([i.vol_bp for i in instruments], dtype=np.int64)
        span = (2 * half + 1).astype(np.uint64)
        cents = np.empty((n, m), dtype=np.int64)
        close = np.array([i.start_cents for i in instruments], dtype=np.int64)
        cents[:, 0] = close
        moves = Stream(seed, "prices")
        for t in range(1, m):
            shocks = (moves.raw((4, n)) % span).astype(np.int64) - half
            bp = drift + shocks.sum(axis=0)
            close = np.maximum((close * (10_000 + bp) + 5_000) // 10_000, 1)
            cents[:, t] = close
        base = np.array([i.volume for i in instruments], dtype=np.int64)
        pct = Stream(seed, "volume").ints(60, 140, n * m).reshape(n, m)
        return cls(instruments, days, cents, base[:, None] * pct // 100)

    def table(self, rows: PriceRows) -> dict[str, pa.Array]:
        tickers = pa.array([i.ticker for i in self.instruments], pa.string())
        currencies = pa.array([i.currency for i in self.instruments], pa.string())
        days = pa.array(np.array(self.days, dtype="datetime64[D]"), pa.date32())
        inst, day = pa.array(rows.inst), pa.array(rows.day)
        return {
            "instrument": tickers.take(inst),
            "date": days.take(day),
            "close": _decimals(rows.cents, 12, 2),
            "volume": pa.array(self.volume[rows.inst, rows.day], pa.int64()),
            "currency": currencies.take(inst),
        }


@dataclass(frozen=True, eq=False)
class PriceRows:
    """Rows of one price file: instrument and day indices and closes in cents, by (day, instrument)."""

    inst: Ints
    day: Ints
    cents: Ints

    @classmethod
    def of(cls, values: Mapping[tuple[int, int], int]) -> PriceRows:
        keys = sorted(values, key=lambda k: (k[1], k[0]))
        return cls(
            np.array([k[0] for k in keys], dtype=np.int64),
            np.array([k[1] for k in keys], dtype=np.int64),
            np.array([values[k] for k in keys], dtype=np.int64),
        )


@dataclass(frozen=True, eq=False)
class PricePlan:
    """What each price load holds, and the designed changes as (kind, values) pairs."""

    initial: PriceRows
    corrections: PriceRows
    late: PriceRows
    revisions: PriceRows
    events: tuple[tuple[str, dict[str, str]], ...]
    late_keys: tuple[dict[str, str], ...]


def _decimals(units: Ints, precision: int, scale: int) -> pa.Array:
    """Integer units of 10**-scale as an exact DECIMAL(precision, scale) column."""
    whole = pc.cast(pa.array(units, pa.int64()), pa.decimal128(19, 0))
    step = pa.scalar(Decimal(1).scaleb(-scale), pa.decimal128(scale + 1, scale))
    return pc.cast(pc.multiply(whole, step), pa.decimal128(precision, scale))


def late_keys(book: PriceBook, seed: int) -> list[tuple[int, int]]:
    """The (instrument, day) closes the first load lacks: at least six, after the first week."""
    n, m = len(book.instruments), len(book.days)
    s = Stream(seed, "late")
    count = max(6, n * m // 5000)
    keys: dict[tuple[int, int], None] = {}
    while len(keys) < count:
        keys.setdefault((s.between(0, n - 1), s.between(5, m - 3)))
    return list(keys)


def screen_days(days: Sequence[date]) -> list[int]:
    """The trading days of the month before the last day's month (the barrier screen's month)."""
    last = days[-1]
    month = (last.year, last.month - 1) if last.month > 1 else (last.year - 1, 12)
    return [t for t, d in enumerate(days) if (d.year, d.month) == month]


def quarter_ends(days: Sequence[date]) -> list[int]:
    """Indices of the last trading day of each calendar quarter the days cover to its end."""
    out = []
    for t in range(len(days) - 1):
        a, b = days[t], days[t + 1]
        if (a.year, (a.month - 1) // 3) != (b.year, (b.month - 1) // 3):
            out.append(t)
    return out


def price_plan(book: PriceBook, trades: Trades, late: Sequence[tuple[int, int]], seed: int) -> PricePlan:
    """Split the closes into the four price loads and design the changes between them."""
    n, m = len(book.instruments), len(book.days)
    s = Stream(seed, "plan")
    used = set(late)
    first: dict[tuple[int, int], int] = {}
    fixed: dict[tuple[int, int], int] = {}
    again: dict[tuple[int, int], int] = {}
    events: list[tuple[str, dict[str, str]]] = []

    def key_text(i: int, t: int) -> dict[str, str]:
        return {"instrument": book.instruments[i].ticker, "date": book.days[t].isoformat()}

    def tick(i: int, t: int, purpose: str) -> None:
        true = int(book.cents[i, t])
        first[(i, t)], fixed[(i, t)] = max(true // 10, 1), true
        used.add((i, t))
        wrong = decimal_text(first[(i, t)], 2)
        events.append(
            ("bad_tick", {**key_text(i, t), "initial": wrong, "corrected": decimal_text(true, 2), "purpose": purpose})
        )

    def free(i: int, low: int, high: int) -> int:
        while True:
            t = s.between(low, high)
            if (i, t) not in used:
                return t

    month = screen_days(book.days)
    safe = trades.unbreached(book, month)
    if month and safe:
        i = s.pick(safe)
        tick(i, free(i, month[0], month[-1]), "barrier")
    ends = quarter_ends(book.days)
    real = [k for k, inst in enumerate(book.instruments) if not inst.synthetic] or list(range(n))
    if len(ends) >= 2:
        i = s.pick(real)
        if (i, ends[-1]) not in used:
            tick(i, ends[-1], "quarter_end")
    for _ in range(max(1, n * m // 20000)):
        i = s.between(0, n - 1)
        tick(i, free(i, 0, m - 1), "random")
    count = max(12, n * m // 1000)
    for k in range(count):
        i = s.between(0, n - 1)
        t = free(i, 0, m - 1)
        used.add((i, t))
        true = int(book.cents[i, t])
        d1 = s.between(1, 40) * (1 if s.between(0, 1) else -1)
        first[(i, t)], fixed[(i, t)] = max(true + d1, 1), true
        values = {**key_text(i, t), "initial": decimal_text(first[(i, t)], 2)}
        if k < max(2, count // 6):
            d2 = d1 + (s.between(1, 25) if d1 > 0 else -s.between(1, 25))
            fixed[(i, t)], again[(i, t)] = max(true + d2, 1), true
            values |= {"corrected": decimal_text(fixed[(i, t)], 2), "final": decimal_text(true, 2), "purpose": "twice"}
        else:
            values |= {"corrected": decimal_text(true, 2), "purpose": "once"}
        events.append(("revision", values))
    missing = {t * n + i for i, t in late}
    keep = np.ones(n * m, dtype=bool)
    keep[sorted(missing)] = False
    flat = np.flatnonzero(keep).astype(np.int64)
    day, inst = flat // n, flat % n
    cents = book.cents[inst, day].copy()
    for (i, t), value in first.items():
        cents[np.searchsorted(flat, t * n + i)] = value
    events += [("late_row", {**key_text(i, t), "close": decimal_text(int(book.cents[i, t]), 2)}) for i, t in late]
    return PricePlan(
        PriceRows(inst, day, cents),
        PriceRows.of(fixed),
        PriceRows.of({k: int(book.cents[k]) for k in late}),
        PriceRows.of(again),
        tuple(events),
        tuple(key_text(i, t) for i, t in late),
    )


# -- positions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trade:
    trade_id: str
    book: str
    product: str
    inst: int
    notional: int
    initial_cents: int
    knock_in_pct: int
    coupon_bp: int  # hundredths of a percent
    day: int
    maturity: date
    status: str


@dataclass(frozen=True)
class Trades:
    """The desk's book; ``designed`` is the trade struck on a day whose close arrived late."""

    instruments: tuple[Instrument, ...]
    days: tuple[date, ...]
    rows: tuple[Trade, ...]
    designed: str = field(default="")

    def unbreached(self, book: PriceBook, month: Sequence[int]) -> list[int]:
        """Underlyings of live autocallables none of which closed below 70% of its initial
        level on a day of ``month`` (at or after its trade day), as instrument indices."""
        if not month:
            return []
        live = [r for r in self.rows if r.product == "autocallable" and r.status == "live" and r.day <= month[-1]]
        breached = {
            r.inst for r in live if any(book.cents[r.inst, t] * 100 < 70 * r.initial_cents for t in month if t >= r.day)
        }
        return sorted({r.inst for r in live} - breached)

    def table(self) -> dict[str, pa.Array]:
        rows = self.rows
        day = np.array(self.days, dtype="datetime64[D]")
        return {
            "trade_id": pa.array([r.trade_id for r in rows], pa.string()),
            "book": pa.array([r.book for r in rows], pa.string()),
            "product": pa.array([r.product for r in rows], pa.string()),
            "instrument": pa.array([self.instruments[r.inst].ticker for r in rows], pa.string()),
            "currency": pa.array([self.instruments[r.inst].currency for r in rows], pa.string()),
            "notional": pa.array([r.notional for r in rows], pa.int64()),
            "initial_level": _decimals(np.array([r.initial_cents for r in rows], dtype=np.int64), 12, 2),
            "knock_in_pct": pa.array([r.knock_in_pct for r in rows], pa.int32()),
            "coupon_pct": _decimals(np.array([r.coupon_bp for r in rows], dtype=np.int64), 5, 2),
            "trade_date": pa.array(day[[r.day for r in rows]], pa.date32()),
            "maturity": pa.array([r.maturity for r in rows], pa.date32()),
            "status": pa.array([r.status for r in rows], pa.string()),
        }


def positions(book: PriceBook, late: tuple[int, int], seed: int) -> Trades:
    """Three trades per instrument (at most 3,000), struck at the true close of their trade
    day, plus one autocallable struck on ``late``'s day (its close came in a late load)."""
    n, m = len(book.instruments), len(book.days)
    s = Stream(seed, "positions")
    last = book.days[-1]
    drafts: list[tuple[int, int, Trade]] = []
    for k in range(min(3 * n, 3000)):
        inst, draw, day = s.between(0, n - 1), s.between(0, 9), s.between(0, m - 30)
        if draw < 6:
            product, knock_in, years, low, high = "autocallable", s.pick((60, 65, 70)), s.pick((1, 2, 3)), 24, 48
        elif draw < 8:
            product, knock_in, years, low, high = "note", 0, s.pick((2, 3, 5)), 8, 20
        else:
            product, knock_in, years, low, high = "reverse_convertible", s.pick((70, 75, 80)), 1, 32, 56
        coupon = s.between(low, high) * 25
        maturity = book.days[day] + timedelta(days=365 * years)
        unwound = s.between(0, 9) == 0
        status = "matured" if maturity <= last else "unwound" if unwound else "live"
        desk = "EQD-LDN" if s.between(0, 1) else "EQD-NYC"
        notional = s.between(1, 20) * 250_000
        trade = Trade(
            "", desk, product, inst, notional, int(book.cents[inst, day]), knock_in, coupon, day, maturity, status
        )
        drafts.append((day, k, trade))
    i, t = late
    designed = Trade(
        "", "EQD-LDN", "autocallable", i, 2_000_000, int(book.cents[i, t]), 65, 900, t,
        book.days[t] + timedelta(days=3 * 365), "live",
    )  # fmt: skip
    drafts.append((t, len(drafts), designed))
    drafts.sort(key=lambda d: (d[0], d[1]))
    rows = tuple(replace(trade, trade_id=f"T-{number:04d}") for number, (_, _, trade) in enumerate(drafts, start=1))
    name = next(r.trade_id for r, (_, k, _) in zip(rows, drafts, strict=True) if k == len(drafts) - 1)
    return Trades(book.instruments, book.days, rows, name)


def write_parquet(path: Path, columns: Mapping[str, pa.Array]) -> None:
    """One Parquet file (zstd, statistics, no timestamps: the same columns give the same bytes)."""
    pq.write_table(pa.table(dict(columns)), path, compression="zstd", write_statistics=True)
