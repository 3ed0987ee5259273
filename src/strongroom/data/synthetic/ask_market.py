"""Questions on rates and fundamentals, on the sec10q filings, and on both a filing and prices."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from strongroom.data.questions import Gold, Step
from strongroom.data.synthetic.facts import DOCUMENT_AS_OF, PRICE_PERIODS, FilingFact, fact
from strongroom.data.synthetic.gold import Row
from strongroom.data.synthetic.kit import (
    SIX,
    Asker,
    as_date,
    at,
    calc,
    close_sql,
    dec,
    last_close,
    num,
    pct,
    quarter_pairs,
    query,
    ratio,
    show,
)

__all__ = ["both", "documents", "fundamentals", "rates"]


def _rate(ask: Asker, curve: str, tenor: str, day: date, known: datetime | None = None) -> Row:
    rows = ask.rows("rates", at(ask.last), known or ask.final)
    found = [r for r in rows if r["curve"] == curve and r["tenor"] == tenor and as_date(r["date"]) <= day]
    return max(found, key=lambda r: as_date(r["date"]))


def rates(ask: Asker) -> None:
    curves, tenors = ("USD-SOFR", "EUR-ESTR", "USD-TSY"), ("1M", "3M", "6M", "1Y", "2Y", "5Y", "10Y")
    curve, tenor, day = ask.s.pick(curves), ask.s.pick(tenors), ask.day()
    r = _rate(ask, curve, tenor, day)
    sql = f"SELECT rate FROM rates WHERE curve = '{curve}' AND tenor = '{tenor}' AND date = DATE '{day.isoformat()}'"
    ask.add(
        "rates",
        f"What was the {tenor} {curve} rate (percent) on {day.isoformat()}?",
        as_of=at(ask.last),
        known_at=ask.final,
        plan=[query(sql)],
        gold=[dec("$1.rows[0].rate", r["rate"])],
        answer=f"{show(r['rate'])}%.",
    )
    day = ask.day()
    saturday = day + timedelta(days=(5 - day.weekday()) % 7 or 7)
    r = _rate(ask, "USD-TSY", "10Y", saturday)
    sql = (
        "SELECT date, rate FROM rates WHERE curve = 'USD-TSY' AND tenor = '10Y' AND date "
        f"<= DATE '{saturday.isoformat()}' "
        "ORDER BY date DESC LIMIT 1"
    )
    ask.add(
        "rates",
        f"What was the latest 10Y USD-TSY rate on or before Saturday {saturday.isoformat()}?",
        as_of=at(ask.last),
        known_at=ask.final,
        plan=[query(sql)],
        gold=[Gold("$1.rows[0].date", "date", show(r["date"])), dec("$1.rows[0].rate", r["rate"])],
        answer=f"{show(r['rate'])}% on {show(r['date'])}.",
    )
    day = ask.day()
    two, ten = _rate(ask, "USD-TSY", "2Y", day), _rate(ask, "USD-TSY", "10Y", day)
    sql = (
        f"SELECT tenor, rate FROM rates WHERE curve = 'USD-TSY' AND date = DATE '{day.isoformat()}' "
        "AND tenor IN ('2Y', '10Y') ORDER BY tenor_months"
    )
    spread = show(num(ten["rate"]) - num(two["rate"]))
    ask.add(
        "rates",
        f"What was the USD-TSY 10Y minus 2Y spread (percentage points) on {day.isoformat()}?",
        as_of=at(ask.last),
        known_at=ask.final,
        plan=[query(sql), calc("b - a", a="$1.rows[0].rate", b="$1.rows[1].rate")],
        gold=[dec("$1.rows[0].rate", two["rate"]), dec("$1.rows[1].rate", ten["rate"]), dec("$2.value", spread)],
        answer=f"10Y {show(ten['rate'])}% minus 2Y {show(two['rate'])}% = {spread} points.",
    )
    quarters = quarter_pairs(ask.days)
    if quarters:
        prev, end = ask.s.pick(quarters)
        a_day, b_day = ask.days[prev], ask.days[end]
        a, b = _rate(ask, "EUR-ESTR", "1Y", a_day), _rate(ask, "EUR-ESTR", "1Y", b_day)
        change = show(num(b["rate"]) - num(a["rate"]))
        ask.add(
            "rates",
            "By how many percentage points did the 1Y EUR-ESTR rate change from "
            f"{a_day.isoformat()} to {b_day.isoformat()}?",
            as_of=at(b_day),
            known_at=ask.final,
            plan=[
                query(
                    "SELECT rate FROM rates WHERE curve = 'EUR-ESTR' AND tenor = '1Y' AND date = "
                    f"DATE '{a_day.isoformat()}'"
                ),
                query(
                    "SELECT rate FROM rates WHERE curve = 'EUR-ESTR' AND tenor = '1Y' AND date = "
                    f"DATE '{b_day.isoformat()}'"
                ),
                calc("b - a", a="$1.rows[0].rate", b="$2.rows[0].rate"),
            ],
            gold=[dec("$1.rows[0].rate", a["rate"]), dec("$2.rows[0].rate", b["rate"]), dec("$3.value", change)],
            answer=f"From {show(a['rate'])}% to {show(b['rate'])}%: {change} points.",
        )
    day = ask.day()
    r = _rate(ask, "USD-SOFR", "3M", day)
    ask.add(
        "rates",
        f"As of the close on {day.isoformat()}, what is the most recent 3M USD-SOFR rate?",
        as_of=at(day),
        known_at=ask.final,
        plan=[
            query("SELECT date, rate FROM rates WHERE curve = 'USD-SOFR' AND tenor = '3M' ORDER BY date DESC LIMIT 1")
        ],
        gold=[Gold("$1.rows[0].date", "date", show(r["date"])), dec("$1.rows[0].rate", r["rate"])],
        answer=f"{show(r['rate'])}% on {show(r['date'])}.",
        note="no date in the SQL: rows after as_of must not be seen",
    )
    day = ask.day()
    points = [_rate(ask, "EUR-ESTR", t, day) for t in tenors]
    ask.add(
        "rates",
        f"List the EUR-ESTR curve (every tenor) on {day.isoformat()}; what is its 5Y point?",
        as_of=at(ask.last),
        known_at=ask.final,
        plan=[
            query(
                "SELECT tenor, rate FROM rates WHERE curve = 'EUR-ESTR' AND date = DATE "
                f"'{day.isoformat()}' ORDER BY tenor_months"
            )
        ],
        gold=[
            Gold("$1.rows", "count", str(len(tenors))),
            Gold("$1.rows[*].tenor", "set", tenors),
            dec("$1.rows[5].rate", points[5]["rate"]),
        ],
        answer=", ".join(f"{t} {show(r['rate'])}%" for t, r in zip(tenors, points, strict=True)) + ".",
    )


def fundamentals(ask: Asker) -> None:
    rows = ask.rows("fundamentals", at(ask.last), ask.final)
    issuers = sorted({str(r["instrument"]) for r in rows})
    ticker = ask.s.pick(issuers)
    mine = sorted((r for r in rows if r["instrument"] == ticker), key=lambda r: as_date(r["period_end"]))
    if len(mine) >= 2:
        k = ask.s.between(1, len(mine) - 1)
        asked = as_date(mine[k]["report_date"]) - timedelta(days=1)
        seen = ask.rows("fundamentals", at(asked), ask.final)
        known = max((r for r in seen if r["instrument"] == ticker), key=lambda r: as_date(r["period_end"]))
        ask.add(
            "fundamentals",
            f"As of {asked.isoformat()}, what is the most recent quarter {ticker} has "
            "reported, and its revenue (USD millions)?",
            as_of=at(asked),
            known_at=ask.final,
            plan=[
                query(
                    "SELECT fiscal_period, revenue_musd FROM fundamentals WHERE instrument = "
                    f"'{ticker}' ORDER BY period_end DESC LIMIT 1"
                )
            ],
            gold=[
                Gold("$1.rows[0].fiscal_period", "text", str(known["fiscal_period"])),
                dec("$1.rows[0].revenue_musd", known["revenue_musd"]),
            ],
            answer=(
                f"{known['fiscal_period']}, revenue {show(known['revenue_musd'])} million "
                f"({mine[k]['fiscal_period']} was reported the next day)."
            ),
            note="a quarter that has ended but is not yet reported must not be seen",
        )
        a, b = mine[k - 1], mine[k]
        growth = pct(a["revenue_musd"], b["revenue_musd"])
        sql = "SELECT revenue_musd FROM fundamentals WHERE instrument = '{}' AND fiscal_period = '{}'"
        ask.add(
            "fundamentals",
            f"By how much did {ticker}'s revenue grow from {a['fiscal_period']} to {b['fiscal_period']}, in percent?",
            as_of=at(ask.last),
            known_at=ask.final,
            plan=[
                query(sql.format(ticker, a["fiscal_period"])),
                query(sql.format(ticker, b["fiscal_period"])),
                calc("(b - a) / a * 100", a="$1.rows[0].revenue_musd", b="$2.rows[0].revenue_musd"),
            ],
            gold=[
                dec("$1.rows[0].revenue_musd", a["revenue_musd"]),
                dec("$2.rows[0].revenue_musd", b["revenue_musd"]),
                dec("$3.value", growth, SIX),
            ],
            answer=f"From {show(a['revenue_musd'])} to {show(b['revenue_musd'])} million: {growth}%.",
        )
        r = mine[ask.s.between(0, len(mine) - 1)]
        ask.add(
            "fundamentals",
            f"What EPS did {ticker} report for {r['fiscal_period']}?",
            as_of=at(ask.last),
            known_at=ask.final,
            plan=[
                query(
                    f"SELECT eps FROM fundamentals WHERE instrument = '{ticker}' AND fiscal_period = "
                    f"'{r['fiscal_period']}'"
                )
            ],
            gold=[dec("$1.rows[0].eps", r["eps"])],
            answer=f"{show(r['eps'])} USD per share.",
        )
    year = [r for r in mine if str(r["fiscal_period"]).startswith("2022")]
    if len(year) == 4:
        total = show(sum((num(r["revenue_musd"]) for r in year), Decimal(0)))
        sql = (
            "SELECT sum(CAST(revenue_musd AS DECIMAL(18,1))) AS total FROM fundamentals "
            f"WHERE instrument = '{ticker}' AND fiscal_period IN ('2022Q1', '2022Q2', '2022Q3', '2022Q4')"
        )
        ask.add(
            "fundamentals",
            f"What was {ticker}'s total revenue over the four quarters of 2022 (USD millions)?",
            as_of=at(ask.last),
            known_at=ask.final,
            plan=[query(sql)],
            gold=[dec("$1.rows[0].total", total)],
            answer=f"{total} million.",
        )


def _table(f: FilingFact) -> Step:
    return Step("filing_table", {"document": f.document, "line_item": f.line_item, "page": f.page})


def documents(ask: Asker) -> None:
    for key in (
        "aapl-gm-23q3",
        "aapl-iphone-23q3",
        "msft-gm-23q3",
        "nvda-gp-23q3",
        "intc-gm-23q3",
        "amzn-aws-23q3",
        "aapl-rd-23q1",
    ):
        f = fact(key)
        ask.add(
            "document",
            f"What was {f.company}'s {f.measure} for {f.period}, in USD millions, per its 10-Q?",
            as_of=DOCUMENT_AS_OF,
            known_at=None,
            needs="documents",
            plan=[_table(f)],
            gold=[Gold("$1", "printed", f.figure)],
            answer=f"${f.figure} million ({f.document}, page {f.page}).",
            note=f"from {f.qa}",
        )
    f = fact("intc-rev-23q1")
    ask.add(
        "document",
        f"What was Intel's net revenue for {f.period}?",
        as_of=DOCUMENT_AS_OF,
        known_at=None,
        needs="documents",
        plan=[
            Step("search_documents", {"query": "Intel net revenue three months ended April 1, 2023", "k": 5}),
            _table(f),
        ],
        gold=[Gold("$2", "printed", f.figure)],
        answer=f"${f.figure} million ({f.document}, page {f.page}).",
        note=f"from {f.qa}; the search step finds the filing, the table step reads the figure",
    )
    for part, whole, what in (
        ("nvda-dc-23q3", "nvda-rev-23q3", "its Data Center segment"),
        ("aapl-services-23q3", "aapl-sales-23q3", "Services"),
    ):
        p, w = fact(part), fact(whole)
        share = ratio(p.figure, w.figure)
        ask.add(
            "document",
            f"What share of {p.company}'s revenue for {p.period} came from {what}, in percent?",
            as_of=DOCUMENT_AS_OF,
            known_at=None,
            needs="documents",
            plan=[
                _table(p),
                _table(w),
                calc("a / b * 100", a=p.figure.replace(",", ""), b=w.figure.replace(",", "")),
            ],
            gold=[
                Gold("$1", "printed", p.figure),
                Gold("$2", "printed", w.figure),
                dec("$3.value", share, SIX),
            ],
            answer=f"${p.figure} of ${w.figure} million: {share}%.",
            note=f"from {p.qa}",
        )


def both(ask: Asker) -> None:
    for period, growth in (
        ("nvda-23q3", ("nvda-rev-23q2", "nvda-rev-23q3")),
        ("aapl-23q3", ("aapl-sales-23q2", "aapl-sales-23q3")),
        ("intc-23q1", None),
    ):
        ticker, start, end = PRICE_PERIODS[period]
        if ticker not in ask.tickers or ask.days[0] > start or ask.last < DOCUMENT_AS_OF.date():
            continue
        rows = ask.rows("prices", DOCUMENT_AS_OF, None)
        a, b = last_close(rows, ticker, start), last_close(rows, ticker, end)
        move = pct(a["close"], b["close"])
        plan: list[Step] = []
        gold: list[Gold] = []
        if growth:
            old, new = fact(growth[0]), fact(growth[1])
            rise = pct(old.figure, new.figure)
            plan += [
                _table(old),
                _table(new),
                calc("(b - a) / a * 100", a=old.figure.replace(",", ""), b=new.figure.replace(",", "")),
            ]
            gold += [
                Gold("$1", "printed", old.figure),
                Gold("$2", "printed", new.figure),
                dec("$3.value", rise, SIX),
            ]
            question = (
                f"How did {new.company}'s revenue growth from {old.period} to {new.period} compare with the move of "
                "its share price over the same quarter (last close on or before "
                f"{start.isoformat()} and {end.isoformat()})?"
            )
            said = f"Revenue rose from ${old.figure} to ${new.figure} million ({rise}%)"
        else:
            f = fact("intc-rev-23q1")
            plan.append(_table(f))
            gold.append(Gold("$1", "printed", f.figure))
            question = (
                f"What was Intel's net revenue for {f.period}, and how did its share price move over that quarter "
                f"(last close on or before {start.isoformat()} and {end.isoformat()})?"
            )
            said = f"Net revenue was ${f.figure} million"
        k = len(plan)
        plan += [
            query(close_sql(ticker, start)),
            query(close_sql(ticker, end)),
            calc("(b - a) / a * 100", a=f"${k + 1}.rows[0].close", b=f"${k + 2}.rows[0].close"),
        ]
        gold += [
            dec(f"${k + 1}.rows[0].close", a["close"]),
            dec(f"${k + 2}.rows[0].close", b["close"]),
            dec(f"${k + 3}.value", move, SIX),
        ]
        ask.add(
            "both",
            question,
            as_of=DOCUMENT_AS_OF,
            known_at=None,
            needs="both",
            plan=plan,
            gold=gold,
            answer=(
                f"{said}; the (synthetic) share price moved from {show(a['close'])} to {show(b['close'])} ({move}%)."
            ),
        )
