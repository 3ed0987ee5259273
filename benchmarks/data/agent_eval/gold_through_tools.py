"""Run every gold plan of the synthetic evaluation set through the research agent's real tools
(``strongroom.service.agent_tools``) over a fresh home, and print the tool-level accuracy.

    .venv/bin/python benchmarks/data/agent_eval/gold_through_tools.py --set /tmp/agent-eval \
        --corpus ../shared/corpus/sec10q/docs

The set is generated into ``--set`` if it has no manifest. The sec10q filings are ingested
through the platform (ACL ``public``; publication dates from their PDF metadata), then the set
is loaded as an operator loads it (:func:`strongroom.service.synthetic_load.load_synthetic_set`:
each dataset file at its manifest's ``loaded_at``, the research note at its publication time)
and the plans run as ``strongroom eval`` runs them
(:func:`strongroom.service.agent_eval.evaluate_plans`). Documents are ingested now, so the
questions that need them have ``known_at`` null (now). The hash embedder keeps it fast;
``search_documents`` steps are not checked for figures except the note's (the only document
naming its issuer).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from strongroom.config import Settings
from strongroom.data.synthetic import MANIFEST, generate_market_data, generate_questions, read_synthetic_set
from strongroom.service import IngestRequest, Platform
from strongroom.service.agent_eval import PlanOutcome, evaluate_plans
from strongroom.service.synthetic_load import load_synthetic_set
from strongroom.testing import HashEmbedder
from strongroom.types import Principal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=Path(tempfile.gettempdir()) / "agent-eval")
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus/sec10q/docs"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data = read_synthetic_set(args.set) if (args.set / MANIFEST).exists() else generate_market_data(args.set, args.seed)
    groups, roles = frozenset({"public", "desk", "compliance"}), frozenset({"reader", "ingester", "admin"})
    admin = Principal("eval", groups, roles)
    with (
        tempfile.TemporaryDirectory() as home,
        Platform.open(Settings(home=Path(home), embedder="hash"), embedder=HashEmbedder(64)) as p,
    ):
        filings = tuple(sorted(args.corpus.glob("*.pdf")))
        p.ingest(admin, IngestRequest(paths=filings, acl=frozenset({"public"})))
        load_synthetic_set(p, admin, data.root)
        started = time.perf_counter()
        questions = generate_questions(data, data.seed)
        outcomes = evaluate_plans(p, admin, questions, on_result=_show_failure)
        took = time.perf_counter() - started
    passed = sum(o.passed for o in outcomes)
    share = passed / len(questions)
    print(f"tool-level accuracy {passed}/{len(questions)} = {share:.3f} ({len(filings)} filings, plans: {took:.1f} s)")
    return 0 if passed == len(questions) else 1


def _show_failure(_: int, outcome: PlanOutcome) -> None:
    if not outcome.passed:
        print(outcome.id, "; ".join(outcome.problems))


if __name__ == "__main__":
    raise SystemExit(main())
