"""Run every gold plan of the synthetic evaluation set through the research agent's real tools
(``strongroom.service.agent_tools``) over a fresh home, and print the tool-level accuracy.

    .venv/bin/python benchmarks/data/agent_eval/gold_through_tools.py --set /tmp/agent-eval \
        --corpus ../shared/corpus/sec10q/docs

The set is generated into ``--set`` if it has no manifest. Datasets are loaded straight into the
home's DuckDB file with each file's ``loaded_at`` from the manifest (the application layer's
load has no ``loaded_at`` yet); the sec10q filings and the set's research note are ingested
through the platform (ACL ``public``; the filings' publication dates come from their PDF
metadata, the note's from the manifest). Documents are ingested now, so the questions that
need them have ``known_at`` null (now). The hash embedder keeps it fast; ``search_documents``
steps are not checked for figures except the note's (the only document naming its issuer).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from strongroom.config import Settings
from strongroom.data.duckdb import DuckDBDatasets
from strongroom.data.questions import bind, check_plan
from strongroom.data.synthetic import MANIFEST, generate_market_data, generate_questions, read_synthetic_set
from strongroom.errors import StrongroomError
from strongroom.service import IngestRequest, Platform
from strongroom.service.agent_tools import toolbox_for
from strongroom.testing import HashEmbedder
from strongroom.types import Principal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=Path(tempfile.gettempdir()) / "agent-eval")
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus/sec10q/docs"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data = read_synthetic_set(args.set) if (args.set / MANIFEST).exists() else generate_market_data(args.set, args.seed)
    with tempfile.TemporaryDirectory() as home:
        store = DuckDBDatasets(Path(home) / "datasets.duckdb")
        for load in data.loads:
            store.load(
                load.dataset, data.path(load.path), acl=frozenset(load.acl), valid_time_column=load.valid_time_column,
                key_columns=load.key_columns, mode=load.mode, loaded_by="agent-eval", loaded_at=load.loaded_at,
            )  # fmt: skip
        store.close()
        groups, roles = frozenset({"public", "desk", "compliance"}), frozenset({"reader", "ingester", "admin"})
        admin = Principal("eval", groups, roles)
        with Platform.open(Settings(home=Path(home), embedder="hash"), embedder=HashEmbedder(64)) as p:
            filings = tuple(sorted(args.corpus.glob("*.pdf")))
            p.ingest(admin, IngestRequest(paths=filings, acl=frozenset({"public"})))
            for doc in data.documents:
                note = IngestRequest(paths=(data.path(doc.path),), acl=frozenset(doc.acl), published=doc.published_at)
                p.ingest(admin, note)
            passed, started = 0, time.perf_counter()
            questions = generate_questions(data, data.seed)
            for q in questions:
                who = Principal(q.principal, frozenset(q.groups), frozenset({"reader"}))
                box = toolbox_for(p, who, as_of=q.as_of, known_at=q.known_at, run_id=q.id)
                outputs: list[object] = []
                refused: list[bool] = []
                for step in q.plan:
                    try:
                        outputs.append(dict(box.call(step.tool, bind(step.arguments, outputs)).content))
                        refused.append(False)
                    except StrongroomError:
                        outputs.append(None)
                        refused.append(True)
                problems = check_plan(q, outputs, refused)
                passed += not problems
                if problems:
                    print(q.id, "; ".join(problems))
            took = time.perf_counter() - started
    share = passed / len(questions)
    print(f"tool-level accuracy {passed}/{len(questions)} = {share:.3f} ({len(filings)} filings, plans: {took:.1f} s)")
    return 0 if passed == len(questions) else 1


if __name__ == "__main__":
    raise SystemExit(main())
