"""A seeded synthetic term-sheet corpus with ground truth (there is no public one).

``generate(n, seed)`` returns :class:`SyntheticTermSheet` values: the file bytes in one of
several layouts (two-column table, bullet list, prose) and formats (PDF, DOCX, HTML, TXT)
and the ground-truth fields as canonical strings (see :mod:`strongroom.ingest.understand.termsheet`).
The same ``n`` and ``seed`` always give the same bytes.

    >>> sheets = generate(2, seed=7)
    >>> sheets[0].name.endswith((".pdf", ".docx", ".html", ".txt")), "isin" in sheets[0].truth
    (True, True)
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path

from strongroom.errors import QueryError
from strongroom.ingest.understand.checkdigits import cusip_check_digit, isin_check_digit

__all__ = ["FORMATS", "LAYOUTS", "PRODUCTS", "SyntheticTermSheet", "generate", "pdf_bytes", "write_corpus"]

LAYOUTS = ("table", "bullets", "prose")
FORMATS = ("pdf", "docx", "html", "txt")
PRODUCTS = ("fixed_rate_note", "floating_rate_note", "autocallable", "reverse_convertible", "barrier_note")

_ISSUERS = (
    ("Barclays Bank PLC", "GB"),
    ("BNP Paribas Issuance B.V.", "XS"),
    ("Goldman Sachs International", "XS"),
    ("UBS AG, London Branch", "CH"),
    ("Citigroup Global Markets Holdings Inc.", "US"),
    ("Morgan Stanley Finance LLC", "US"),
    ("Societe Generale", "FR"),
    ("Credit Agricole CIB Financial Solutions", "FR"),
    ("HSBC Bank plc", "GB"),
    ("JPMorgan Chase Financial Company LLC", "US"),
    ("Deutsche Bank AG", "DE"),
    ("Nordic Capital Bank ASA", "NO"),
    ("Raiffeisen Switzerland B.V.", "CH"),
    ("Toronto-Dominion Bank", "CA"),
)
_GUARANTORS = (
    "BNP Paribas",
    "Citigroup Inc.",
    "Morgan Stanley",
    "The Goldman Sachs Group, Inc.",
    "JPMorgan Chase & Co.",
    "Societe Generale",
    "Credit Agricole Corporate and Investment Bank",
)
_UNDERLYINGS = (
    ("S&P 500 Index", 4512.35),
    ("EURO STOXX 50 Index", 4290.1),
    ("Russell 2000 Index", 1875.22),
    ("Nikkei 225 Index", 32810.5),
    ("SMI Index", 11205.4),
    ("FTSE 100 Index", 7520.8),
    ("Apple Inc.", 189.25),
    ("Microsoft Corporation", 338.11),
    ("NVIDIA Corporation", 455.72),
    ("Nestle SA", 101.36),
    ("Tesla Inc.", 251.6),
    ("ASML Holding NV", 612.4),
    ("Amazon.com Inc.", 131.69),
)
_CURRENCIES = ("USD", "EUR", "GBP", "CHF", "JPY")
_INDEXES = {"USD": "SOFR", "EUR": "EURIBOR", "GBP": "SONIA", "CHF": "SARON", "JPY": "TONA"}
_LAWS = ("England", "New York", "Germany", "Switzerland", "France")
_FREQ = {
    "annual": ("Annual", "annually"),
    "semi_annual": ("Semi-annual", "semi-annually"),
    "quarterly": ("Quarterly", "quarterly"),
    "monthly": ("Monthly", "monthly"),
}
_DAYCOUNT = {
    "30/360": ("30/360", "30/360 (unadjusted)"),
    "ACT/360": ("Actual/360", "ACT/360"),
    "ACT/365F": ("Actual/365 (Fixed)", "ACT/365F"),
    "ACT/ACT": ("Actual/Actual (ICMA)", "ACT/ACT"),
}
_PRODUCT_NAMES = {
    "fixed_rate_note": ("Fixed Rate Notes", "Fixed Rate Senior Notes"),
    "floating_rate_note": ("Floating Rate Notes", "Floating Rate Senior Notes"),
    "autocallable": ("Autocallable Notes", "Phoenix Autocallable Notes", "Autocallable Worst-of Notes"),
    "reverse_convertible": ("Reverse Convertible Notes", "Barrier Reverse Convertible"),
    "barrier_note": ("Barrier Notes", "Capital-at-Risk Barrier Notes"),
}
_LABELS = {
    "issuer": ("Issuer", "Issuer"),
    "guarantor": ("Guarantor", "Guarantor"),
    "isin": ("ISIN", "ISIN Code"),
    "cusip": ("CUSIP", "CUSIP"),
    "product_type": ("Product Type", "Type of Notes"),
    "currency": ("Currency", "Specified Currency"),
    "notional": ("Aggregate Nominal Amount", "Issue Size"),
    "issue_price": ("Issue Price", "Issue Price"),
    "trade_date": ("Trade Date", "Pricing Date"),
    "issue_date": ("Issue Date", "Settlement Date"),
    "maturity_date": ("Maturity Date", "Final Maturity Date"),
    "coupon_rate": ("Coupon Rate", "Interest Rate"),
    "floating": ("Floating Rate", "Reference Rate"),
    "payment_frequency": ("Payment Frequency", "Coupon Frequency"),
    "day_count": ("Day Count Fraction", "Day Count"),
    "underlying": ("Underlying", "Underlying Assets"),
    "initial_level": ("Initial Level", "Initial Reference Level"),
    "barrier_level": ("Barrier Level", "Knock-in Barrier"),
    "strike_level": ("Strike Level", "Strike"),
    "autocall_level": ("Autocall Trigger Level", "Early Redemption Level"),
    "governing_law": ("Governing Law", "Governing Law"),
}
# Rows real term sheets carry that are not extracted fields: the extractor must not take them for one.
_DISTRACTORS = (
    ("Calculation Agent", "Citigroup Global Markets Limited"),
    ("Listing", "Application will be made to the Luxembourg Stock Exchange"),
    ("Business Days", "New York and London (TARGET2 for EUR payments)"),
    ("Settlement", "Cash settlement or physical delivery, at the Issuer's option"),
    ("Denomination", "1,000 per Note"),
    ("Observation Dates", "Each scheduled trading day from the Strike Date to the Final Valuation Date"),
    ("Redemption Amount", "100% of the nominal amount unless a Knock-in Event has occurred"),
    ("Selling Restrictions", "No sales to retail investors in the EEA"),
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class SyntheticTermSheet:
    """One generated term sheet: file name, bytes, layout, format and ground truth."""

    name: str
    data: bytes
    layout: str
    format: str
    product: str
    truth: dict[str, str]


def _num(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _fmt_date(d: date, style: int) -> str:
    if style == 0:
        return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"
    if style == 1:
        return f"{_MONTHS[d.month - 1]} {d.day}, {d.year}"
    if style == 2:
        return d.isoformat()
    return f"{d.day:02d}-{_MONTHS[d.month - 1][:3]}-{d.year}"


def _fmt_amount(ccy: str, amount: int, style: int) -> str:
    if style == 1 and amount % 100_000 == 0:
        return f"{ccy} {_num(amount / 1_000_000)} million"
    if style == 2 and ccy == "USD":
        return f"${amount:,}"
    return f"{ccy} {amount:,}"


def _fmt_pct(value: float, style: int) -> str:
    text = f"{value:.2f}" if style != 2 else _num(value)
    return f"{text} per cent." if style == 1 else f"{text}%"


def _isin(rng: random.Random, country: str) -> tuple[str, str | None]:
    if country in {"US", "CA"}:
        payload = "".join(rng.choice("0123456789") for _ in range(6)) + "".join(
            rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2)
        )
        cusip = payload + str(cusip_check_digit(payload))
        body = country + cusip
        return body + str(isin_check_digit(body)), cusip
    body = country + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(9))
    return body + str(isin_check_digit(body)), None


def _terms(rng: random.Random, product: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Ground truth and display rows (field, label, value text) for one term sheet."""
    issuer, country = rng.choice(_ISSUERS)
    ccy = "USD" if country in {"US", "CA"} else rng.choice(_CURRENCIES)
    isin, cusip = _isin(rng, country)
    trade = date(2021, 1, 1) + timedelta(days=rng.randrange(0, 1500))
    issue = trade + timedelta(days=rng.choice((5, 7, 10, 14)))
    maturity = issue.replace(year=issue.year + rng.choice((1, 2, 3, 5, 7, 10)), day=min(issue.day, 28))
    notional = rng.choice((1, 2, 5, 10, 15, 25, 50, 100, 250)) * 1_000_000 + rng.choice((0, 0, 500_000))
    dstyle, astyle, pstyle = rng.randrange(4), rng.randrange(3), rng.randrange(3)
    label_variant = rng.randrange(2)
    truth: dict[str, str] = {}
    rows: list[tuple[str, str, str]] = []

    def add(field: str, shown: str, canonical: str, truth_key: str | None = None) -> None:
        rows.append((field, _LABELS[field][label_variant], shown))
        truth[truth_key or field] = canonical

    add("issuer", issuer, issuer)
    if rng.random() < 0.5 and issuer not in _GUARANTORS:
        guarantor = rng.choice(_GUARANTORS)
        add("guarantor", guarantor, guarantor)
    add("isin", isin, isin)
    if cusip and rng.random() < 0.7:
        add("cusip", cusip, cusip)
    add("product_type", rng.choice(_PRODUCT_NAMES[product]), product)
    add("currency", ccy, ccy)
    add("notional", _fmt_amount(ccy, notional, astyle), f"{ccy} {notional:.2f}")
    price = rng.choice((100.0, 100.0, 99.5, 98.75, 101.25))
    add("issue_price", _fmt_pct(price, pstyle) + rng.choice(("", " of the Aggregate Nominal Amount")), _num(price))
    add("trade_date", _fmt_date(trade, dstyle), trade.isoformat())
    add("issue_date", _fmt_date(issue, dstyle), issue.isoformat())
    add("maturity_date", _fmt_date(maturity, dstyle), maturity.isoformat())
    freq = rng.choice(tuple(_FREQ))
    if product == "floating_rate_note":
        index = _INDEXES[ccy]
        tenor = rng.choice(("3M ", "6M ", "")) if index in {"EURIBOR"} else ""
        spread_bps = rng.choice((25, 40, 55, 75, 85, 110, 125, 150))
        spread = f"{spread_bps} bps" if rng.random() < 0.5 else f"{spread_bps / 100:.2f}%"
        rows.append(("floating", _LABELS["floating"][label_variant], f"{tenor}{index} + {spread}"))
        truth["floating_index"] = index
        truth["floating_spread"] = _num(spread_bps / 100)
    elif product != "barrier_note":
        coupon = rng.choice((2.5, 3.25, 4.0, 4.75, 5.5, 6.25, 7.8, 8.5, 9.75, 11.0))
        add("coupon_rate", _fmt_pct(coupon, pstyle) + rng.choice(("", " per annum")), _num(coupon))
    if product != "barrier_note":
        add("payment_frequency", _FREQ[freq][0], freq)
        dc = rng.choice(tuple(_DAYCOUNT))
        add("day_count", rng.choice(_DAYCOUNT[dc]), dc)
    if product in {"autocallable", "reverse_convertible", "barrier_note"}:
        count = rng.choice((1, 1, 2, 3)) if product != "reverse_convertible" else 1
        picks = rng.sample(_UNDERLYINGS, count)
        names = [p[0] for p in picks]
        add("underlying", ", ".join(names[:-1]) + (" and " if count > 1 else "") + names[-1], "; ".join(names))
        if count == 1:
            add("initial_level", f"{picks[0][1]:,.2f}", _num(picks[0][1]))
        suffix = " of the Initial Level"
        if product in {"autocallable", "barrier_note"}:
            barrier = rng.choice((50.0, 55.0, 60.0, 65.0, 70.0, 75.0))
            add("barrier_level", _fmt_pct(barrier, 0) + suffix, _num(barrier))
        if product == "reverse_convertible":
            strike = rng.choice((80.0, 85.0, 90.0, 95.0, 100.0))
            add("strike_level", _fmt_pct(strike, 0) + suffix, _num(strike))
        if product == "autocallable":
            level = rng.choice((90.0, 95.0, 100.0))
            add("autocall_level", _fmt_pct(level, 0) + suffix, _num(level))
    for label, value in rng.sample(_DISTRACTORS, rng.randrange(1, 4)):
        rows.insert(rng.randrange(3, len(rows) + 1), ("other", label, value))
    law = rng.choice(_LAWS)
    add(
        "governing_law",
        f"{law} law"
        if law == "England" and rng.random() < 0.5
        else f"The laws of {'the State of ' if law == 'New York' else ''}{law}",
        law,
    )
    return truth, rows


def _prose(rows: list[tuple[str, str, str]]) -> list[str]:
    v = {field: (label, value) for field, label, value in rows if field != "other"}
    out: list[str] = []

    def sentence(field: str, template: str) -> None:
        if field in v:
            out.append(template.format(label=v[field][0], value=v[field][1]))

    sentence("product_type", 'This term sheet describes {value} (the "Notes").')
    sentence("issuer", 'The Notes are issued by {value} (the "{label}").')
    sentence("guarantor", 'Payments under the Notes are guaranteed by {value} (the "{label}").')
    sentence("isin", "The {label} of the Notes is {value}.")
    sentence("cusip", "The {label} is {value}.")
    sentence("currency", 'The Notes are denominated in {value} (the "{label}").')
    sentence("notional", "The {label} is {value} and the Issue Price is " + v["issue_price"][1] + ".")
    sentence(
        "trade_date",
        "The {label} is {value}, the Issue Date is "
        + v["issue_date"][1]
        + " and the Maturity Date is "
        + v["maturity_date"][1]
        + ".",
    )
    sentence("coupon_rate", "The Notes bear a {label} of {value}.")
    sentence("floating", "Interest accrues at a {label} of {value}.")
    sentence(
        "payment_frequency",
        "Coupons are paid with a {label} of {value} and a Day Count Fraction of "
        + v.get("day_count", ("", ""))[1]
        + ".",
    )
    sentence("underlying", 'The Notes are linked to {value} (the "{label}").')
    sentence("initial_level", "The {label} is {value}.")
    sentence("barrier_level", "The {label} is {value}.")
    sentence("strike_level", "The {label} is {value}.")
    sentence(
        "autocall_level",
        "The Notes are redeemed early if the Underlying closes at or above the {label} "
        "of {value} on any observation date.",
    )
    sentence("governing_law", "The Notes are governed by {value}.")
    out += [f"{label}: {value}." for field, label, value in rows if field == "other"]
    return out


def _title(rows: list[tuple[str, str, str]], rng: random.Random) -> str:
    product = next(value for field, _, value in rows if field == "product_type")
    return f"{rng.choice(('Indicative Term Sheet', 'Final Term Sheet', 'Term Sheet'))}: {product}"


def _lines(layout: str, rows: list[tuple[str, str, str]]) -> list[str]:
    if layout == "table":
        return [f"{label}: {value}" for _, label, value in rows]
    if layout == "bullets":
        return [f"- {label}: {value}" for _, label, value in rows]
    return _prose(rows)


def _html(title: str, layout: str, rows: list[tuple[str, str, str]]) -> bytes:
    parts = [f"<html><head><title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>"]
    if layout == "table":
        parts.append("<table><tr><th>Term</th><th>Details</th></tr>")
        parts += [f"<tr><td>{escape(label)}</td><td>{escape(value)}</td></tr>" for _, label, value in rows]
        parts.append("</table>")
    elif layout == "bullets":
        parts.append(
            "<ul>" + "".join(f"<li><b>{escape(label)}:</b> {escape(value)}</li>" for _, label, value in rows) + "</ul>"
        )
    else:
        parts += [f"<p>{escape(s)}</p>" for s in _prose(rows)]
    parts.append("<p>This document is for information only and is not an offer.</p></body></html>")
    return "".join(parts).encode()


def _docx(title: str, layout: str, rows: list[tuple[str, str, str]]) -> bytes:
    import docx

    document = docx.Document()
    # Fixed package dates, so the same seed gives the same bytes at any time.
    fixed = datetime(2024, 1, 1, tzinfo=UTC)
    props = document.core_properties
    props.created, props.modified, props.last_printed = fixed, fixed, fixed
    document.add_heading(title, level=1)
    if layout == "table":
        table = document.add_table(rows=0, cols=2)
        for _, label, value in rows:
            cells = table.add_row().cells
            cells[0].text, cells[1].text = label, value
    elif layout == "bullets":
        for _, label, value in rows:
            document.add_paragraph(f"{label}: {value}", style="List Bullet")
    else:
        for s in _prose(rows):
            document.add_paragraph(s)
    buffer = io.BytesIO()
    document.save(buffer)
    return _fixed_zip(buffer.getvalue())


def _fixed_zip(data: bytes) -> bytes:
    """The same zip package with every entry dated 2024-01-01 (zip entries carry the save time)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, src.read(info))
    return out.getvalue()


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current] if current else lines


def pdf_bytes(pages: list[list[tuple[float, str]]], title: str = "") -> bytes:
    """A minimal PDF (Helvetica, Latin-1) with one list of ``(x, text)`` lines per page.

    Lines are laid top to bottom, 14 points apart; a tuple's ``x`` is its left margin, and
    lines sharing a row are given as consecutive tuples whose text starts with ``\\t``.
    """
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    kids: list[int] = []
    for lines in pages:
        ops = ["BT /F1 10 Tf"]
        y = 770.0
        for x, text in lines:
            same_row = text.startswith("\t")
            if not same_row:
                y -= 14
            ops.append(f"1 0 0 1 {x:.1f} {y:.1f} Tm ({_pdf_escape(text.lstrip(chr(9)))}) Tj")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1", "replace")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % content
        )
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    objects.append(b"<< /Title (%s) >>" % _pdf_escape(title).encode("latin-1", "replace"))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, len(objects), xref)
    )
    return out.getvalue()


def _pdf(title: str, layout: str, rows: list[tuple[str, str, str]]) -> bytes:
    lines: list[tuple[float, str]] = [(72, title), (72, "")]
    if layout == "table":
        for _, label, value in rows:
            lines.append((72, label))
            lines.append((250, "\t" + value))
    elif layout == "bullets":
        lines += [(72, f"- {label}: {value}") for _, label, value in rows]
    else:
        for s in _prose(rows):
            lines += [(72, chunk) for chunk in _wrap(s, 90)]
            lines.append((72, ""))
    pages = [lines[i : i + 48] for i in range(0, len(lines), 48)]
    return pdf_bytes(pages, title)


def _txt(title: str, layout: str, rows: list[tuple[str, str, str]]) -> bytes:
    if layout == "table":
        body = [f"{label:<28}{value}" for _, label, value in rows]
    else:
        body = _lines(layout, rows)
    return "\n".join([title.upper(), "", *body, ""]).encode()


_WRITERS = {"pdf": _pdf, "docx": _docx, "html": _html, "txt": _txt}


def generate(n: int, seed: int) -> list[SyntheticTermSheet]:
    """``n`` term sheets cycling through every layout x format pair, products drawn at random."""
    rng = random.Random(seed)
    sheets: list[SyntheticTermSheet] = []
    combos = [(layout, fmt) for layout in LAYOUTS for fmt in FORMATS]
    for i in range(n):
        layout, fmt = combos[i % len(combos)]
        product = PRODUCTS[rng.randrange(len(PRODUCTS))]
        truth, rows = _terms(rng, product)
        title = _title(rows, rng)
        data = _WRITERS[fmt](title, layout, rows)
        sheets.append(SyntheticTermSheet(f"ts-{seed}-{i:04d}-{layout}.{fmt}", data, layout, fmt, product, truth))
    return sheets


def write_corpus(directory: Path, n: int, seed: int) -> list[Path]:
    """Write ``n`` generated term sheets and a ``NAME.truth.json`` beside each into the folder
    ``directory`` (created; files of the same names in it are replaced); returns the documents."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # it, or a folder above it, is a file; or it may not be written
        raise QueryError(f"{directory}: not a folder strongroom can write into ({exc.strerror or exc})") from exc
    written: list[Path] = []
    for sheet in generate(n, seed):
        path = directory / sheet.name
        path.write_bytes(sheet.data)
        meta = {"layout": sheet.layout, "format": sheet.format, "product": sheet.product, "fields": sheet.truth}
        (directory / (sheet.name + ".truth.json")).write_text(json.dumps(meta, indent=2, sort_keys=True))
        written.append(path)
    return written
