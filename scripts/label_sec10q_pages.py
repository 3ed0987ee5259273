"""Derive page labels for sec10q's questions: the evidence-filing pages where each fact appears.

Each question in ``qa.jsonl`` names its evidence filings and the facts (numbers such as
"82,959") its reference answer quotes. A fact is on a page when the page's text, as
strongroom's own parser extracts it (so page numbers match what the store cites), holds
the same number as a whole token after normalising whitespace and number formatting:
``$81,797``, ``81,797`` and ``(2,028)`` all read as the number token ``81,797``/``2,028``,
and ``182,959`` does not hold ``82,959``. Only the question's evidence filings are searched;
a fact found on several pages keeps all of them.

    .venv/bin/python scripts/label_sec10q_pages.py \\
        --corpus ../shared/corpus/sec10q --out benchmarks/data/sec10q_pages.jsonl \\
        --merged benchmarks/data/sec10q_qa_pages.jsonl

Writes one line per question with at least one labelled page
(``{"id": ..., "pages": [{"doc", "page", "fact"}, ...]}``) and, with ``--merged``, a QA file
that ``strongroom eval`` reads directly: the source's records with ``{"doc", "page"}``
evidence added next to the original ``{"doc"}`` entries (so doc metrics are unchanged).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from strongroom.ingest.parsers import parse

# A number as filings print it: digits with thousands separators and an optional decimal part.
# Greedy, so "182,959" is one token and never holds "82,959".
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def normalise_fact(fact: str) -> str:
    """The number a fact names, without currency, sign, parentheses or spaces."""
    return re.sub(r"[\s$()%\u2212-]", "", fact)


def page_numbers(text: str) -> set[str]:
    """Every number token on a page, with whitespace inside numbers removed first."""
    compact = re.sub(r"(?<=\d)\s*,\s*(?=\d{3}\b)", ",", " ".join(text.split()))
    return set(_NUMBER.findall(compact))


def label(qa: list[dict[str, Any]], pages: dict[str, list[tuple[int, set[str]]]]) -> dict[str, list[dict[str, Any]]]:
    """For each question id, the (doc, page, fact) triples where its facts appear."""
    labels: dict[str, list[dict[str, Any]]] = {}
    for item in qa:
        labels[item["id"]] = [
            {"doc": e["doc"], "page": page, "fact": fact}
            for fact in item["facts"]
            for e in item["evidence"]
            for page, numbers in pages.get(e["doc"], [])
            if normalise_fact(fact) in numbers
        ]
    return labels


def report(qa: list[dict[str, Any]], labels: dict[str, list[dict[str, Any]]]) -> None:
    """Print the statistics a reviewer checks: coverage, unmatched facts, pages per question."""
    with_facts = [item for item in qa if item["facts"]]
    found = {(item["id"], x["fact"]) for item in with_facts for x in labels[item["id"]]}
    unmatched = [(item["id"], f) for item in with_facts for f in item["facts"] if (item["id"], f) not in found]
    per_question = Counter(len({(x["doc"], x["page"]) for x in labels[item["id"]]}) for item in with_facts)
    covered = sum(bool(labels[item["id"]]) for item in with_facts)
    print(f"questions: {len(qa)}, with facts: {len(with_facts)}, with at least one page: {covered}")
    print(f"facts: {sum(len(i['facts']) for i in with_facts)}, matched nowhere: {len(unmatched)} {unmatched}")
    print("pages per question (pages: questions):", dict(sorted(per_question.items())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Derive page labels for sec10q's questions.")
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus/sec10q"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/data/sec10q_pages.jsonl"))
    parser.add_argument("--merged", type=Path, default=None, help="also write a QA file with page evidence")
    args = parser.parse_args(argv)

    lines = (args.corpus / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    qa: list[dict[str, Any]] = [json.loads(line) for line in lines if line.strip()]
    needed = sorted({e["doc"] for item in qa if item["facts"] for e in item["evidence"]})
    pages: dict[str, list[tuple[int, set[str]]]] = {}
    for doc in needed:
        parsed = parse((args.corpus / "docs" / doc).read_bytes(), doc)
        pages[doc] = [(p.number, page_numbers(p.text)) for p in parsed.pages]

    labels = label(qa, pages)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for item in qa:
            if labels[item["id"]]:
                out.write(json.dumps({"id": item["id"], "pages": labels[item["id"]]}) + "\n")
    if args.merged is not None:
        with args.merged.open("w", encoding="utf-8") as out:
            for item in qa:
                cited = sorted({(x["doc"], x["page"]) for x in labels[item["id"]]})
                evidence = item["evidence"] + [{"doc": d, "page": p} for d, p in cited]
                out.write(json.dumps({**item, "evidence": evidence}) + "\n")
    report(qa, labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
