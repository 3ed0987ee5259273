"""The clearance an agent's model turn needs: the highest over the evidence gathered so far.

The model's next turn carries every tool result of the run, so its request carries the
clearance of all of them (:class:`~strongroom.llm.clearance.ContextClearance`), and the
gateway sends it only to deployments cleared for that.

- ``page``, ``term_sheet`` and ``table`` evidence: the version's label, which the
  toolbox puts in the ref (``sensitivity``, ``mnpi``); a ref without one counts as public,
  as an unlabelled version does (:mod:`strongroom.llm.clearance`).
- ``query`` evidence (dataset rows), and any evidence naming ``datasets`` (their schemas):
  datasets carry no sensitivity label yet, so they count as ``confidential`` (client and
  trading data), forced by ``dataset:NAME@VERSION``.
- ``calculation`` evidence: computed from other evidence already counted; adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from strongroom.llm.clearance import ContextClearance
from strongroom.llm.types import SENSITIVITY_LEVELS, Sensitivity

__all__ = ["DATASET_SENSITIVITY", "evidence_clearance"]

#: the level of dataset query results (datasets have no label of their own yet)
DATASET_SENSITIVITY: Sensitivity = "confidential"


def evidence_clearance(evidence: Iterable[Mapping[str, object]]) -> ContextClearance:
    """The clearance a context holding ``evidence`` (the run state's evidence dicts) needs."""
    need = ContextClearance()
    for item in evidence:
        kind = item.get("kind")
        ref = item.get("ref")
        ref = ref if isinstance(ref, Mapping) else {}
        datasets = ref.get("datasets")
        if kind == "query" or isinstance(datasets, list):
            names = (
                [f"dataset:{d[0]}@{d[1]}" for d in datasets if isinstance(d, list | tuple) and len(d) >= 2]
                if isinstance(datasets, list)
                else []
            )
            need = need.join(ContextClearance(DATASET_SENSITIVITY, False, tuple(names) or ("dataset",)))
        elif kind != "calculation":
            raw = ref.get("sensitivity") or "public"
            level: Sensitivity = raw if raw in SENSITIVITY_LEVELS else "restricted"
            mnpi = ref.get("mnpi") is True
            if level != "public" or mnpi:
                need = need.join(ContextClearance(level, mnpi, (str(ref.get("version_id") or "?"),)))
    return need
