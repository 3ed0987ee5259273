"""Why the right page is missed: the page hit@k misses on the page-labelled sec10q set,
sorted by cause (issue 16's target asks for them classified).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/page_misses.py --home H [-k 5] [--json]

``H`` holds the 20 filings (``strongroom ingest ../shared/corpus/sec10q/docs --home H``).
Each labelled question is searched as the CLI's default principal through the application
layer; a question whose top k holds no labelled page is a miss, and its cause is:

* ``wrong document``: no hit comes from a filing the question's evidence names;
* ``near page``: a hit is in an evidence filing within two pages of a labelled page;
* ``wrong page``: hits in an evidence filing, none within two pages of a labelled one.

("Wrong statement" and "wrong period" need to know what each page and table is, which is
deliverable 2 of the issue; until then the two page causes stand for them.)
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from strongroom import Platform, SearchRequest, Settings
from strongroom.evaluate import QAItem, load_qa

DEFAULT_QA = Path(__file__).parent / "data" / "sec10q_qa_pages.jsonl"


def classify(item: QAItem, hits: list[tuple[str, int]]) -> str | None:
    """The cause of a miss (None: a labelled page is among ``hits``, (file name, page) pairs)."""
    labelled = {(e.doc, e.page) for e in item.evidence if e.page is not None}
    if labelled & set(hits):
        return None
    docs = {e.doc for e in item.evidence}
    in_docs = [(doc, page) for doc, page in hits if doc in docs]
    if not in_docs:
        return "wrong document"
    if any(doc == ldoc and abs(page - lpage) <= 2 for doc, page in in_docs for ldoc, lpage in labelled):
        return "near page"
    return "wrong page"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home holding the sec10q filings")
    parser.add_argument("--qa", type=Path, default=DEFAULT_QA)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    items = [i for i in load_qa(args.qa) if any(e.page is not None for e in i.evidence)]
    causes: Counter[str] = Counter()
    misses: list[dict[str, object]] = []
    with Platform.open(Settings(home=args.home)) as platform:
        principal = platform.principal(None, None, auth="cli")
        for item in items:
            result = platform.search(principal, SearchRequest(query=item.question, k=args.k))
            cause = classify(item, [(h.version.name, h.chunk.page) for h in result.hits])
            if cause is not None:
                causes[cause] += 1
                misses.append({"id": item.id, "cause": cause, "question": item.question})
    summary = {"questions": len(items), "k": args.k, "hits": len(items) - len(misses), "misses": dict(causes)}
    if args.json:
        print(json.dumps({**summary, "missed": misses}, indent=1))
        return
    print(json.dumps(summary))
    for miss in misses:
        print(f"{miss['id']}\t{miss['cause']}\t{miss['question']}")


if __name__ == "__main__":
    main()
