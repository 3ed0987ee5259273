"""The evaluation questions of a synthetic set, with gold plans in the agent's tool calls and
gold values computed from the set's files by :class:`~strongroom.data.synthetic.gold.Timeline`
(plain Python, the bitemporal rules): never by SQL, so running the plans through the real
tools checks them. The file format is :mod:`strongroom.data.questions`.

Kinds (about 70 questions for the default set): ``price_asof``, ``price_move``,
``correction`` (the same question before and after a correction: the gold differs),
``late_row``, ``lookahead``, ``asof_join``, ``barrier_screen``, ``rates``, ``fundamentals``,
``document``, ``both`` (a filing and prices), ``refusal`` (expect a refused tool call),
``entitlement``, ``compliance`` and ``injection``. Choices are drawn from ``seed``; a kind whose
prerequisites the set lacks (a short calendar, no NVDA) is left out.

Regenerate the evaluation set (data, manifest and ``questions.jsonl``)::

    python -m strongroom.data.synthetic /tmp/agent-eval --seed 7
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from strongroom.data.questions import Question, write_questions
from strongroom.data.synthetic import ask_desk, ask_market, ask_prices
from strongroom.data.synthetic.kit import Asker
from strongroom.data.synthetic.market import SyntheticSet, generate_market_data

__all__ = ["QUESTIONS", "generate_questions", "main"]

#: the questions' file name in a set's folder
QUESTIONS = "questions.jsonl"


def generate_questions(data: SyntheticSet, seed: int = 7) -> list[Question]:
    """The questions of ``data``, in a fixed order; the same set and seed give the same list."""
    ask = Asker(data, seed)
    for part in (
        ask_prices.price_asof,
        ask_prices.price_move,
        ask_prices.corrections,
        ask_prices.late_rows,
        ask_prices.lookahead,
        ask_desk.asof_joins,
        ask_desk.barrier_screens,
        ask_market.rates,
        ask_market.fundamentals,
        ask_market.documents,
        ask_market.both,
        ask_desk.refusals,
        ask_desk.compliance,
        ask_desk.injections,
    ):
        part(ask)
    return ask.out


def main(argv: Sequence[str] | None = None) -> int:
    """Write a set and its questions into a folder (the command line of this module)."""
    parser = argparse.ArgumentParser(description="Generate the agent evaluation's synthetic set and questions.")
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    data = generate_market_data(args.out, args.seed)
    count = write_questions(args.out / QUESTIONS, generate_questions(data, args.seed))
    print(f"{len(data.loads)} files, {count} questions in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
