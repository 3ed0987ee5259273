"""Why the right page is missed: the page hit@k misses on the page-labelled sec10q set,
sorted by cause (issue 16's target asks for them classified).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/page_misses.py --home H [-k 5] [--json]

``H`` holds the 20 filings (``strongroom ingest ../shared/corpus/sec10q/docs --home H``).
Each labelled question is searched as the CLI's default principal through the application
layer; a question whose top k holds no labelled page is a miss. Each page has a kind: the
statement whose title its first lines carry (income, balance, cash_flow, ...; see
:func:`strongroom.finance.statement_of`), else "other" (notes, MD&A). The cause is:

* ``wrong document``: no hit comes from a filing the question's evidence names;
* ``wrong statement``: hits in evidence filings, none on a page of a labelled page's kind;
* ``wrong period``: a hit on a page of a labelled page's kind, but in another evidence
  filing than that page's (the right statement of another quarter);
* ``near page``: a hit of the right kind in the labelled page's filing, within two pages;
* ``wrong page``: a hit of the right kind in the labelled page's filing, further away
  (another note, or the same kind of table elsewhere).

Independently, ``not found`` counts the misses whose labelled pages are not even in the
top 50 (retrieval never saw them, so no re-ranking of the top candidates could help).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from strongroom import Platform, SearchRequest, Settings
from strongroom.evaluate import QAItem, load_qa
from strongroom.finance import statement_of

DEFAULT_QA = Path(__file__).parent / "data" / "sec10q_qa_pages.jsonl"
DEEP = 50

#: (file name, page) -> the page's kind
Kind = Callable[[str, int], str]


def classify(item: QAItem, hits: list[tuple[str, int]], kind: Kind) -> str | None:
    """The cause of a miss (None: a labelled page is among ``hits``, (file name, page) pairs)."""
    labelled = {(e.doc, e.page) for e in item.evidence if e.page is not None}
    if labelled & set(hits):
        return None
    docs = {e.doc for e in item.evidence}
    in_docs = [(doc, page) for doc, page in hits if doc in docs]
    if not in_docs:
        return "wrong document"
    right_kind = [
        (doc, page, ldoc, lpage)
        for doc, page in in_docs
        for ldoc, lpage in labelled
        if kind(doc, page) == kind(ldoc, lpage)
    ]
    if not right_kind:
        return "wrong statement"
    same_filing = [(page, lpage) for doc, page, ldoc, lpage in right_kind if doc == ldoc]
    if not same_filing:
        return "wrong period"
    return "near page" if any(abs(page - lpage) <= 2 for page, lpage in same_filing) else "wrong page"


def page_kinds(platform: Platform) -> Kind:
    store = platform.ops.store
    version_of = {v.name: v.id for v in store.versions()}
    cache: dict[tuple[str, int], str] = {}

    def kind(doc: str, page: int) -> str:
        if (doc, page) not in cache:
            text = store.page_text(version_of[doc], page) if doc in version_of else None
            cache[doc, page] = statement_of("\n".join((text or "").splitlines()[:12])) or "other"
        return cache[doc, page]

    return kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home holding the sec10q filings")
    parser.add_argument("--qa", type=Path, default=DEFAULT_QA)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    items = [i for i in load_qa(args.qa) if any(e.page is not None for e in i.evidence)]
    causes: Counter[str] = Counter()
    unseen = 0
    misses: list[dict[str, object]] = []
    with Platform.open(Settings(home=args.home)) as platform:
        principal = platform.principal(None, None, auth="cli")
        kind = page_kinds(platform)
        for item in items:
            result = platform.search(principal, SearchRequest(query=item.question, k=DEEP))
            pages = [(h.version.name, h.chunk.page) for h in result.hits]
            cause = classify(item, pages[: args.k], kind)
            if cause is not None:
                causes[cause] += 1
                labelled = {(e.doc, e.page) for e in item.evidence if e.page is not None}
                rank = next((i for i, p in enumerate(pages, start=1) if p in labelled), None)
                unseen += rank is None
                misses.append({"id": item.id, "cause": cause, "first_labelled_rank": rank, "question": item.question})
    summary = {
        "questions": len(items),
        "k": args.k,
        "hits": len(items) - len(misses),
        "misses": dict(causes),
        f"not_found_in_top_{DEEP}": unseen,
    }
    if args.json:
        print(json.dumps({**summary, "missed": misses}, indent=1))
        return
    print(json.dumps(summary))
    for miss in misses:
        print(f"{miss['id']}\t{miss['cause']}\t{miss['first_labelled_rank']}\t{miss['question']}")


if __name__ == "__main__":
    main()
