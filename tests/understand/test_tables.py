from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from strongroom.cli.understand import tables_app
from strongroom.ingest.parsers import parse
from strongroom.ingest.understand.tables import extract_tables, parse_figure
from strongroom.types import Page, ParsedDocument

STATEMENT = """CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS
Three Months Ended Nine Months Ended
Net sales:
Products $ 60,584 $ 63,355 $ 230,901 $ 245,241
Services 21,213 19,604 62,886 58,941
Total net sales 81,797 82,959 293,787 304,182
Other income/(expense), net (265) (10) (594) (97)
See accompanying Notes.
"""
SHEETS_SEC10Q = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "sec10q" / "docs"


def test_figure_table_rows_cells_and_spans() -> None:
    (table,) = extract_tables(ParsedDocument((Page(4, STATEMENT),), "application/pdf"))
    assert table.kind == "figures" and table.header == () and table.page == 4
    assert [r[0].text for r in table.rows] == ["Products", "Services", "Total net sales", "Other income/(expense), net"]
    assert [c.number for c in table.column(1)] == [60584.0, 21213.0, 81797.0, -265.0]
    for row in table.rows:
        for cell in row:
            assert STATEMENT[cell.start : cell.end] == cell.text
    assert sum(c.number or 0 for c in table.column(2)[:2]) == table.rows[2][2].number  # 63,355 + 19,604


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("t.csv", b"item,q1,q2\nRevenue,100,120\nCosts,50,(55)\n"),
        (
            "t.html",
            b"<table><tr><th>item</th><th>q1</th><th>q2</th></tr><tr><td>Revenue</td><td>100</td>"
            b"<td>120</td></tr><tr><td>Costs</td><td>50</td><td>(55)</td></tr></table>",
        ),
        ("t.md", b"| item | q1 | q2 |\n|---|---|---|\n| Revenue | 100 | 120 |\n| Costs | 50 | (55) |\n"),
    ],
)
def test_pipe_tables_from_parsed_formats(name: str, data: bytes) -> None:
    parsed = parse(data, name)
    (table,) = [t for t in extract_tables(parsed) if t.kind == "pipe"]
    assert table.header == ("item", "q1", "q2")
    assert [[c.text for c in r] for r in table.rows] == [["Revenue", "100", "120"], ["Costs", "50", "(55)"]]
    assert table.rows[1][2].number == -55.0
    text = parsed.pages[0].text
    assert all(text[c.start : c.end] == c.text for r in table.rows for c in r)


@pytest.mark.parametrize(
    ("text", "value"), [("1,234", 1234.0), ("(265)", -265.0), ("$ 1.27", 1.27), ("12%", 12.0), ("—", None)]
)
def test_parse_figure(text: str, value: float | None) -> None:
    assert parse_figure(text) == value


def test_prose_is_not_a_table() -> None:
    text = "Revenue rose 4% in 2023 to 1,200.\nWe expect 2024 growth of 3% to 5%.\nNothing else."
    assert extract_tables(ParsedDocument((Page(1, text),), "text/plain")) == []


def test_tables_cli_on_a_real_filing() -> None:
    pdf = SHEETS_SEC10Q / "2023 Q3 AAPL.pdf"
    if not pdf.is_file():
        pytest.skip(f"the sec10q corpus is not at {SHEETS_SEC10Q}")
    app = typer.Typer()
    app.add_typer(tables_app, name="tables")
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["tables", "list", str(pdf), "--json"]).output)
    assert len(listed) >= 5
    first = next(t for t in listed if t["first"] and t["first"][0] == "Products")
    shown = runner.invoke(app, ["tables", "show", str(pdf), "--index", str(first["index"]), "--json"])
    cells = json.loads(shown.output)["cells"]
    assert cells[0][1]["number"] == 60584.0
