"""Figures of the sec10q filings that the evaluation questions ask about, each as printed on a
statement page, taken from the reviewed answers of ``corpus/sec10q/qa.jsonl`` (its ``facts``)
with the page where the filing prints it (``benchmarks/data/sec10q_pages.jsonl``; the tests
read each page again and find the figure on the row named).

These are the only real-company figures the evaluation uses; the synthetic set holds no
fundamentals of the five filers, and its share prices for their tickers are synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

__all__ = ["DOCUMENT_AS_OF", "FACTS", "PRICE_PERIODS", "FilingFact", "fact"]

#: after every filing's publication (the last, NVIDIA's 10-Q for 2023 Q3, on 2023-11-21)
DOCUMENT_AS_OF = datetime(2023, 12, 29, 21, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FilingFact:
    """``figure`` (USD millions, as printed) on ``line_item``'s row of ``page`` of ``document``:
    ``company``'s ``measure`` for ``period``; ``qa`` names the reviewed question it comes from."""

    key: str
    document: str
    line_item: str
    page: int
    figure: str
    company: str
    measure: str
    period: str
    qa: str


_JUL1 = "the three months ended July 1, 2023"
_APR1 = "the three months ended April 1, 2023"
_SEP30 = "the three months ended September 30, 2023"
_OCT29 = "the three months ended October 29, 2023"

FACTS = (
    FilingFact(
        "aapl-gm-23q3", "2023 Q3 AAPL.pdf", "Gross margin", 4, "36,413", "Apple", "gross margin", _JUL1, "sec10q-068"
    ),
    FilingFact(
        "aapl-iphone-23q3", "2023 Q3 AAPL.pdf", "iPhone", 10, "39,669", "Apple", "iPhone net sales", _JUL1, "sec10q-071"
    ),
    FilingFact(
        "aapl-services-23q3",
        "2023 Q3 AAPL.pdf",
        "Services",
        4,
        "21,213",
        "Apple",
        "Services net sales",
        _JUL1,
        "sec10q-072",
    ),
    FilingFact(
        "aapl-sales-23q3",
        "2023 Q3 AAPL.pdf",
        "Total net sales",
        4,
        "81,797",
        "Apple",
        "total net sales",
        _JUL1,
        "sec10q-000",
    ),
    FilingFact(
        "aapl-sales-23q2",
        "2023 Q2 AAPL.pdf",
        "Total net sales",
        4,
        "94,836",
        "Apple",
        "total net sales",
        _APR1,
        "sec10q-000",
    ),
    FilingFact(
        "aapl-rd-23q1",
        "2023 Q1 AAPL.pdf",
        "Research and development",
        4,
        "7,709",
        "Apple",
        "research and development expense",
        "the three months ended December 31, 2022",
        "sec10q-075",
    ),
    FilingFact(
        "msft-gm-23q3",
        "2023 Q3 MSFT.pdf",
        "Gross margin",
        3,
        "40,215",
        "Microsoft",
        "gross margin",
        _SEP30,
        "sec10q-083",
    ),
    FilingFact(
        "nvda-gp-23q3", "2023 Q3 NVDA.pdf", "Gross profit", 3, "13,400", "NVIDIA", "gross profit", _OCT29, "sec10q-098"
    ),
    FilingFact("nvda-rev-23q3", "2023 Q3 NVDA.pdf", "Revenue", 3, "18,120", "NVIDIA", "revenue", _OCT29, "sec10q-102"),
    FilingFact(
        "nvda-dc-23q3",
        "2023 Q3 NVDA.pdf",
        "Data Center",
        24,
        "14,514",
        "NVIDIA",
        "Data Center revenue",
        _OCT29,
        "sec10q-102",
    ),
    FilingFact(
        "nvda-rev-23q2",
        "2023 Q2 NVDA.pdf",
        "Revenue",
        3,
        "13,507",
        "NVIDIA",
        "revenue",
        "the three months ended July 30, 2023",
        "sec10q-100",
    ),
    FilingFact(
        "intc-gm-23q3", "2023 Q3 INTC.pdf", "Gross margin", 6, "6,018", "Intel", "gross margin", _SEP30, "sec10q-113"
    ),
    FilingFact(
        "intc-rev-23q1", "2023 Q1 INTC.pdf", "Net revenue", 6, "11,715", "Intel", "net revenue", _APR1, "sec10q-114"
    ),
    FilingFact(
        "amzn-aws-23q3",
        "2023 Q3 AMZN.pdf",
        "AWS",
        24,
        "23,059",
        "Amazon",
        "AWS segment net sales",
        _SEP30,
        "sec10q-131",
    ),
)

#: fiscal quarters of the "both" questions: (ticker, first day after the previous quarter's
#: end, the quarter's last day), as the filings date them
PRICE_PERIODS = {
    "nvda-23q3": ("NVDA", date(2023, 7, 30), date(2023, 10, 29)),
    "aapl-23q3": ("AAPL", date(2023, 4, 1), date(2023, 7, 1)),
    "intc-23q1": ("INTC", date(2022, 12, 31), date(2023, 4, 1)),
}


def fact(key: str) -> FilingFact:
    """The fact named ``key``."""
    return next(f for f in FACTS if f.key == key)
