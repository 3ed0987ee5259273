"""What the evaluation questions' builders share (:mod:`strongroom.data.synthetic.questions`):
gold helpers that compute with exact decimals, the steps of gold plans, and :class:`Asker`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from strongroom.data.questions import Gold, Question, Step
from strongroom.data.synthetic.gold import Row, Timeline
from strongroom.data.synthetic.market import PRINCIPALS, SyntheticSet
from strongroom.data.synthetic.prices import Stream, quarter_ends

__all__ = [
    "SIX",
    "Asker",
    "as_date",
    "at",
    "calc",
    "close_sql",
    "dec",
    "last_close",
    "num",
    "pct",
    "quarter_pairs",
    "query",
    "ratio",
    "show",
]

SIX_PLACES = Decimal("0.000001")
#: the tolerance of a gold value computed with a division (rounded to six places)
SIX = "0.000001"


def at(day: date) -> datetime:
    """The close of ``day`` (21:00 UTC): the as-of time of a question about that day."""
    return datetime.combine(day, time(21, 0), UTC)


def show(value: object) -> str:
    """A gold value as text: a decimal as written (no exponent), a date in ISO 8601."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def pct(a: object, b: object) -> str:
    """(b - a) / a * 100 to six places."""
    with localcontext() as ctx:
        ctx.prec = 60
        x, y = Decimal(str(a).replace(",", "")), Decimal(str(b).replace(",", ""))
        return show(((y - x) / x * 100).quantize(SIX_PLACES, rounding=ROUND_HALF_EVEN))


def ratio(a: object, b: object) -> str:
    """a / b * 100 to six places."""
    with localcontext() as ctx:
        ctx.prec = 60
        x, y = Decimal(str(a).replace(",", "")), Decimal(str(b).replace(",", ""))
        return show((x / y * 100).quantize(SIX_PLACES, rounding=ROUND_HALF_EVEN))


def query(sql: str, expect: str = "ok") -> Step:
    """A ``query_data`` step."""
    return Step("query_data", {"sql": sql}, expect)


def calc(expression: str, **variables: str) -> Step:
    """A ``calculate`` step; a variable may be a reference such as ``$1.rows[0].close``."""
    return Step("calculate", {"expression": expression, "variables": variables})


def dec(ref: str, value: object, tolerance: str = "0") -> Gold:
    """A ``decimal`` gold value (exact unless ``tolerance``)."""
    return Gold(ref, "decimal", show(value), tolerance)


def close_sql(ticker: str, day: date | None) -> str:
    """The SQL of a ticker's last close on or before ``day`` (None: the latest the clocks allow)."""
    bound = f" AND date <= DATE '{day.isoformat()}'" if day else ""
    return f"SELECT date, close FROM prices WHERE instrument = '{ticker}'{bound} ORDER BY date DESC LIMIT 1"


def last_close(rows: Iterable[Row], ticker: str, day: date) -> Row:
    """The gold for :func:`close_sql`: the row of ``ticker`` with the latest date at or before ``day``."""
    best: Row | None = None
    for r in rows:
        if r["instrument"] != ticker or as_date(r["date"]) > day:
            continue
        if best is None or as_date(r["date"]) > as_date(best["date"]):
            best = r
    if best is None:
        raise LookupError(f"no close of {ticker} by {day}")
    return best


def as_date(value: object) -> date:
    assert isinstance(value, date)
    return value


def quarter_pairs(days: Sequence[date]) -> list[tuple[int, int]]:
    """(previous quarter's last trading day, this quarter's) as day indices, for each quarter."""
    ends = quarter_ends(days)
    return list(itertools.pairwise(ends))


def num(value: object) -> Decimal:
    return Decimal(str(value))


class Asker:
    """What the question builders share: the set, its files read once (:class:`Timeline`), the
    seeded draws, the known-at times around each milestone and the questions so far."""

    def __init__(self, data: SyntheticSet, seed: int) -> None:
        self.data = data
        self.days = data.days
        self.tl = Timeline(data)
        self.s = Stream(seed, "questions")
        m = data.milestones
        one = timedelta(days=1)
        self.before, self.mid, self.late, self.final = (
            m[k] + one for k in ("initial", "corrections", "late", "revisions")
        )
        self.out: list[Question] = []
        self._counts: dict[str, int] = {}
        self._cache: dict[tuple[str, datetime, datetime | None], list[Row]] = {}
        self.tickers = [i.ticker for i in data.instruments]
        self.last = self.days[-1]

    def rows(self, dataset: str, as_of: datetime, known_at: datetime | None) -> list[Row]:
        """``dataset``'s rows visible at the two clocks (gold: the bitemporal rules in Python)."""
        key = (dataset, as_of, known_at)
        if key not in self._cache:
            self._cache[key] = self.tl.rows(dataset, as_of=as_of, known_at=known_at)
        return self._cache[key]

    def add(
        self,
        kind: str,
        question: str,
        *,
        as_of: datetime,
        known_at: datetime | None,
        plan: Sequence[Step],
        gold: Sequence[Gold],
        answer: str,
        principal: str = "analyst",
        needs: str = "data",
        expect: str = "answer",
        must_not_contain: Sequence[str] = (),
        note: str = "",
    ) -> None:
        """Add a question; its id is the kind and a number (``price-move-03``)."""
        n = self._counts[kind] = self._counts.get(kind, 0) + 1
        qid = f"{kind.replace('_', '-')}-{n:02d}"
        groups = PRINCIPALS[principal]
        self.out.append(
            Question(
                qid,
                kind,
                question,
                needs,
                as_of,
                known_at,
                principal,
                groups,
                tuple(plan),
                tuple(gold),
                answer,
                expect,
                tuple(must_not_contain),
                note,
            )
        )

    def day(self, low: int = 20) -> date:
        """A seeded trading day from the ``low``-th on, a week or more before the last (so that a
        question asked as of it would get another answer from a clock that read ahead)."""
        return self.days[self.s.between(low, len(self.days) - 6)]

    def event(self, kind: str, **match: str) -> dict[str, str] | None:
        """The first designed event of ``kind`` whose values include ``match``."""
        for e in self.data.events_of(kind):
            if all(e.values.get(k) == v for k, v in match.items()):
                return dict(e.values)
        return None
