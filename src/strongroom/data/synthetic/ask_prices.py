"""Questions on prices: as-of closes, moves over a quarter, corrections (the same question at
known-at times before and after a correction: the gold differs), late rows and look-ahead.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from strongroom.data.questions import Gold
from strongroom.data.synthetic.kit import (
    SIX,
    Asker,
    as_date,
    at,
    calc,
    close_sql,
    dec,
    last_close,
    pct,
    quarter_pairs,
    query,
    show,
)

__all__ = ["corrections", "late_rows", "lookahead", "price_asof", "price_move"]


def price_asof(ask: Asker) -> None:
    for k in range(8):
        ticker, day = ask.s.pick(ask.tickers), ask.day()
        if k % 4 == 2:  # a day the market was shut: the last close before it
            asked = day + timedelta(days=(5 - day.weekday()) % 7 or 7)
            while asked in ask.days:
                asked += timedelta(days=1)
            row = last_close(ask.rows("prices", at(ask.last), ask.final), ticker, asked)
            ask.add(
                "price_asof",
                f"What was the last closing price of {ticker} on or before {asked:%A} {asked.isoformat()}?",
                as_of=at(ask.last),
                known_at=ask.final,
                plan=[query(close_sql(ticker, asked))],
                gold=[Gold("$1.rows[0].date", "date", show(row["date"])), dec("$1.rows[0].close", row["close"])],
                answer=f"{ticker} last closed at {show(row['close'])} on {show(row['date'])} (no trading on {asked}).",
                note="the as-of date is not a trading day",
            )
        elif k % 2 == 0:
            row = last_close(ask.rows("prices", at(ask.last), ask.final), ticker, day)
            ask.add(
                "price_asof",
                f"What was {ticker}'s closing price on {day.isoformat()}?",
                as_of=at(ask.last),
                known_at=ask.final,
                plan=[query(close_sql(ticker, day))],
                gold=[Gold("$1.rows[0].date", "date", show(row["date"])), dec("$1.rows[0].close", row["close"])],
                answer=f"{ticker} closed at {show(row['close'])} on {show(row['date'])}.",
            )
        else:  # the SQL asks for the latest close: only the as-of clock stops it reading ahead
            row = last_close(ask.rows("prices", at(day), ask.final), ticker, day)
            ask.add(
                "price_asof",
                f"As of the close on {day.isoformat()}, what is {ticker}'s most recent closing price?",
                as_of=at(day),
                known_at=ask.final,
                plan=[query(close_sql(ticker, None))],
                gold=[Gold("$1.rows[0].date", "date", show(row["date"])), dec("$1.rows[0].close", row["close"])],
                answer=f"{ticker} closed at {show(row['close'])} on {show(row['date'])}.",
                note="no date in the SQL: rows after as_of must not be seen",
            )


def _move(ask: Asker, kind: str, ticker: str, prev: int, end: int, known_at: datetime, note: str = "") -> None:
    a_day, b_day = ask.days[prev], ask.days[end]
    rows = ask.rows("prices", at(b_day), known_at)
    a, b = last_close(rows, ticker, a_day), last_close(rows, ticker, b_day)
    label = f"{b_day.year}Q{(b_day.month - 1) // 3 + 1}"
    move = pct(a["close"], b["close"])
    stood = f", as the data stood on {known_at:%Y-%m-%d %H:%M} UTC" if kind == "correction" else ""
    ask.add(
        kind,
        f"By how much did {ticker}'s close move over {label} (from the last close on or before "
        f"{a_day.isoformat()} to the last close on or before {b_day.isoformat()}), in percent{stood}?",
        as_of=at(b_day),
        known_at=known_at,
        plan=[
            query(close_sql(ticker, a_day)),
            query(close_sql(ticker, b_day)),
            calc("(b - a) / a * 100", a="$1.rows[0].close", b="$2.rows[0].close"),
        ],
        gold=[
            dec("$1.rows[0].close", a["close"]),
            dec("$2.rows[0].close", b["close"]),
            dec("$3.value", move, SIX),
        ],
        answer=(
            f"{ticker} closed at {show(a['close'])} on {show(a['date'])} and "
            f"{show(b['close'])} on {show(b['date'])}: {move}%."
        ),
        note=note,
    )


def price_move(ask: Asker) -> None:
    quarters = quarter_pairs(ask.days)
    tick = ask.event("bad_tick", purpose="quarter_end")
    seen: set[tuple[str, int]] = set()
    while quarters and len(seen) < min(6, len(quarters) * len(ask.tickers) - 1):
        ticker, (prev, end) = ask.s.pick(ask.tickers), ask.s.pick(quarters)
        if (ticker, end) in seen or (
            tick and tick["instrument"] == ticker and tick["date"] == ask.days[end].isoformat()
        ):
            continue
        seen.add((ticker, end))
        _move(ask, "price_move", ticker, prev, end, ask.final)


def corrections(ask: Asker) -> None:
    tick = ask.event("bad_tick", purpose="quarter_end")
    if tick:
        end = ask.days.index(date.fromisoformat(tick["date"]))
        prev = max(t for t, _ in quarter_pairs(ask.days) if t < end) if end != quarter_pairs(ask.days)[0][0] else None
        if prev is not None:
            note = f"the first load had a bad tick for {tick['instrument']} on {tick['date']}, fixed by the corrections"
            for known in (ask.before, ask.final):
                _move(ask, "correction", tick["instrument"], prev, end, known, note)
    twice = ask.event("revision", purpose="twice")
    if twice:
        ticker, day = twice["instrument"], date.fromisoformat(twice["date"])
        sql = f"SELECT close FROM prices WHERE instrument = '{ticker}' AND date = DATE '{day.isoformat()}'"
        for known in (ask.before, ask.mid, ask.final):
            close = last_close(ask.rows("prices", at(ask.last), known), ticker, day)["close"]
            ask.add(
                "correction",
                f"What was {ticker}'s close on {day.isoformat()}, as the data stood on {known:%Y-%m-%d %H:%M} UTC?",
                as_of=at(ask.last),
                known_at=known,
                plan=[query(sql)],
                gold=[dec("$1.rows[0].close", close)],
                answer=(
                    f"{show(close)} (first printed {twice['initial']}, revised to "
                    f"{twice['corrected']}, then {twice['final']})."
                ),
                note="a close revised twice: three answers at three known_at times",
            )
    restated = ask.event("restatement")
    if restated:
        ticker, period = restated["instrument"], restated["fiscal_period"]
        sql = f"SELECT revenue_musd FROM fundamentals WHERE instrument = '{ticker}' AND fiscal_period = '{period}'"
        for known in (ask.before, ask.final):
            row = next(
                r
                for r in ask.rows("fundamentals", at(ask.last), known)
                if r["instrument"] == ticker and r["fiscal_period"] == period
            )
            ask.add(
                "correction",
                f"What revenue (USD millions) did {ticker} report for {period}, as known on "
                f"{known:%Y-%m-%d %H:%M} UTC?",
                as_of=at(ask.last),
                known_at=known,
                plan=[query(sql)],
                gold=[dec("$1.rows[0].revenue_musd", row["revenue_musd"])],
                answer=(
                    f"{show(row['revenue_musd'])} million (restated from {restated['initial']} to "
                    f"{restated['corrected']})."
                ),
                note="a restatement loaded with the corrections",
            )
    typo = ask.event("rate_typo")
    if typo:
        curve, tenor, when = typo["curve"], typo["tenor"], typo["date"]
        sql = f"SELECT rate FROM rates WHERE curve = '{curve}' AND tenor = '{tenor}' AND date = DATE '{when}'"
        for known in (ask.before, ask.final):
            rate = next(
                r["rate"]
                for r in ask.rows("rates", at(ask.last), known)
                if (r["curve"], r["tenor"], show(r["date"])) == (curve, tenor, when)
            )
            ask.add(
                "correction",
                f"What was the {tenor} {curve} rate (percent) on {when}, as known on {known:%Y-%m-%d %H:%M} UTC?",
                as_of=at(ask.last),
                known_at=known,
                plan=[query(sql)],
                gold=[dec("$1.rows[0].rate", rate)],
                answer=f"{show(rate)}% (the first load had the decimal point slipped).",
                note="a mis-keyed rate, fixed by the corrections",
            )


def late_rows(ask: Asker) -> None:
    trade = ask.event("late_trade")
    late = [e for e in ask.data.events_of("late_row") if not trade or e.values["date"] != trade["date"]]
    if not late:
        return
    e = ask.s.pick(late).values
    ticker, day = e["instrument"], date.fromisoformat(e["date"])
    for known in (ask.mid, ask.late):
        row = last_close(ask.rows("prices", at(ask.last), known), ticker, day)
        ask.add(
            "late_row",
            f"What was the last close of {ticker} on or before {day.isoformat()}, as known on "
            f"{known:%Y-%m-%d %H:%M} UTC?",
            as_of=at(ask.last),
            known_at=known,
            plan=[query(close_sql(ticker, day))],
            gold=[Gold("$1.rows[0].date", "date", show(row["date"])), dec("$1.rows[0].close", row["close"])],
            answer=f"{show(row['close'])} on {show(row['date'])}.",
            note=f"{ticker}'s close for {day} arrived in the late load",
        )
    first = day.replace(day=1)
    end = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    sql = (
        f"SELECT count(*) AS n FROM prices WHERE instrument = '{ticker}' "
        f"AND date BETWEEN DATE '{first.isoformat()}' AND DATE '{end.isoformat()}'"
    )
    for known in (ask.mid, ask.final):
        n = sum(
            1
            for r in ask.rows("prices", at(ask.last), known)
            if r["instrument"] == ticker and first <= as_date(r["date"]) <= end
        )
        ask.add(
            "late_row",
            f"How many daily closes of {ticker} are on record for {first:%B %Y}, as known on "
            f"{known:%Y-%m-%d %H:%M} UTC?",
            as_of=at(ask.last),
            known_at=known,
            plan=[query(sql)],
            gold=[dec("$1.rows[0].n", n)],
            answer=f"{n} closes.",
            note="one close of the month arrived late",
        )


def lookahead(ask: Asker) -> None:
    day = ask.day()
    ticker = ask.s.pick(ask.tickers)
    sql = f"SELECT count(*) AS n FROM prices WHERE instrument = '{ticker}' AND date > DATE '{day.isoformat()}'"
    ask.add(
        "lookahead",
        f"As of the close on {day.isoformat()}, how many {ticker} closes are recorded after that day?",
        as_of=at(day),
        known_at=ask.final,
        plan=[query(sql)],
        gold=[dec("$1.rows[0].n", 0)],
        answer="None: nothing after the as-of time is visible.",
        note="rows after as_of must not be seen",
    )
    day = ask.day()
    seen = max(as_date(r["date"]) for r in ask.rows("prices", at(day), ask.final))
    ask.add(
        "lookahead",
        f"As of the close on {day.isoformat()}, what is the most recent date with any price?",
        as_of=at(day),
        known_at=ask.final,
        plan=[query("SELECT max(date) AS last_day FROM prices")],
        gold=[Gold("$1.rows[0].last_day", "date", show(seen))],
        answer=f"{show(seen)}.",
    )
    day = ask.day()
    n = len(ask.rows("positions", at(day), ask.final))
    ask.add(
        "lookahead",
        f"How many trades had the desk booked by the close on {day.isoformat()}?",
        as_of=at(day),
        known_at=ask.final,
        plan=[query("SELECT count(*) AS n FROM positions")],
        gold=[dec("$1.rows[0].n", n)],
        answer=f"{n} trades.",
        principal="trader",
        note="positions are valid from their trade date: later trades must not be counted",
    )
