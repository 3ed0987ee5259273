"""A training job for torchrun in the fault tests: ``torchrun ... ddp_job.py CONFIG.json``.

The config holds the trainer's settings plus what the test scripts: ``step_sleep_s`` (so a
test can kill a worker mid-run) and ``die_in_save`` (rank 1 SIGKILLs itself while its part
of that step's background checkpoint is being written, on the first attempt only). Each
attempt (``JOB_LAUNCH`` plus torchrun's restart count) logs the steps it ran to ``output_dir/steps-rankR-attemptA.txt``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from strongroom.train.embedder import TrainConfig, train_embedder
from strongroom.train.pairs import Pair

WORDS = "revenue margin research development cash debt coupon notes sales income quarter total net cost".split()


def pairs(n: int = 24) -> list[Pair]:
    out = []
    for i in range(n):
        a, b, c = WORDS[i % len(WORDS)], WORDS[(i * 3 + 1) % len(WORDS)], WORDS[(i * 5 + 2) % len(WORDS)]
        out.append(Pair(f"{a} {b}", f"{a} {b} {c} total", f"c{i}", f"d{i % 4}", (f"{c} debt",)))
    return out


def main() -> None:
    raw = json.loads(Path(sys.argv[1]).read_text())
    sleep_s = float(raw.pop("step_sleep_s", 0.0))
    die_in_save = raw.pop("die_in_save", None)
    config = TrainConfig(**raw)
    rank = int(os.environ.get("RANK", "0"))
    # a launch of torchrun by the test, or a restart of the workers by torchrun itself
    attempt = int(os.environ.get("JOB_LAUNCH", "0")) + int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    if die_in_save is not None and rank == 1 and attempt == 0:
        from torch.distributed.checkpoint.filesystem import FileSystemWriter

        write_data = FileSystemWriter.write_data

        def dying_write(self: FileSystemWriter, plan: object, planner: object) -> object:
            if str(self.path).endswith(f"step-{die_in_save}"):
                os.kill(os.getpid(), signal.SIGKILL)
            return write_data(self, plan, planner)  # type: ignore[arg-type]

        FileSystemWriter.write_data = dying_write  # type: ignore[method-assign]
    log = config.output_dir / f"steps-rank{rank}-attempt{attempt}.txt"
    config.output_dir.mkdir(parents=True, exist_ok=True)

    def on_step(step: int, loss: float) -> None:
        with log.open("a") as fh:
            fh.write(f"{step}\n")
        time.sleep(sleep_s)

    train_embedder(config, pairs(), on_step=on_step)


if __name__ == "__main__":
    main()
