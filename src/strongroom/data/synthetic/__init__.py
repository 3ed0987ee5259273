"""A seeded synthetic market-data set and evaluation questions with gold numbers (issue 19).

- :func:`generate_market_data` writes the datasets (CSV and Parquet) and ``manifest.json``
  (:mod:`~strongroom.data.synthetic.market`); :func:`read_synthetic_set` reads one back.
- :func:`generate_questions` builds the questions with gold plans and gold values
  (:mod:`~strongroom.data.synthetic.questions`), computed by :class:`Timeline`, the
  bitemporal rules in plain Python (:mod:`~strongroom.data.synthetic.gold`); the question
  file's format, its reference syntax and the gold checks are :mod:`strongroom.data.questions`.

    data = generate_market_data(Path("/tmp/agent-eval"), seed=7)
    write_questions(Path("/tmp/agent-eval/questions.jsonl"), generate_questions(data, seed=7))
"""

from strongroom.data.synthetic.gold import Timeline
from strongroom.data.synthetic.market import (
    MANIFEST,
    PRINCIPALS,
    Event,
    Load,
    SyntheticDocument,
    SyntheticSet,
    generate_market_data,
    read_synthetic_set,
)
from strongroom.data.synthetic.questions import QUESTIONS, generate_questions

__all__ = [
    "MANIFEST",
    "PRINCIPALS",
    "QUESTIONS",
    "Event",
    "Load",
    "SyntheticDocument",
    "SyntheticSet",
    "Timeline",
    "generate_market_data",
    "generate_questions",
    "read_synthetic_set",
]
