"""A research run in a process of its own, made to hang so a test can kill it mid-run
(tests/agent/test_resume.py)::

    python -m tests.agent.crash_run CHECKPOINTS FOLDER --hang model|sql

``--hang model``: the model's second turn (after the search completed) hangs;
``--hang sql``: the SQL call hangs before it completes. Either way FOLDER/hanging appears
when the run is stuck; completed tool calls go to FOLDER/tools.jsonl and events to
FOLDER/events.jsonl, both fsynced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from strongroom.agent.base import RunEvent
from strongroom.agent.checkpoint import open_checkpointer
from strongroom.agent.runner import AgentRunner
from strongroom.llm.types import ChatRequest
from strongroom.testing.chat import ScriptedChatModel, ScriptedReply
from tests.agent.fakes import FakeToolbox, research_turn, tool_messages

RUN_ID = "crash-run"
QUESTION = "How did Apple's net sales change in Q3 2023?"


def append_event(path: Path, event: RunEvent) -> None:
    with path.open("a") as f:
        f.write(json.dumps({"run_id": event.run_id, "seq": event.seq, "kind": event.kind}) + "\n")
        f.flush()
        os.fsync(f.fileno())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--hang", choices=["model", "sql"], required=True)
    args = parser.parse_args()
    folder: Path = args.folder
    hanging = folder / "hanging"

    async def turn(request: ChatRequest) -> ScriptedReply | str:
        if args.hang == "model" and len(tool_messages(request)) == 1:
            hanging.write_text(str(os.getpid()))
            await asyncio.sleep(3600)  # until killed
        return research_turn(request)

    def block(name: str) -> None:
        if args.hang == "sql" and name == "sql":
            hanging.write_text(str(os.getpid()))
            time.sleep(3600)  # until killed

    checkpointer = open_checkpointer(args.checkpoints)
    runner = AgentRunner(
        ScriptedChatModel(default=turn),
        FakeToolbox(log=folder / "tools.jsonl", block=block),
        checkpointer=checkpointer,
        on_event=lambda e: append_event(folder / "events.jsonl", e),
    )
    runner.run(RUN_ID, QUESTION)
    raise SystemExit("the run finished: it should have hung")


if __name__ == "__main__":
    main()
