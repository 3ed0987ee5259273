"""CLI pieces of the ingestion bus, mounted by :mod:`strongroom.cli`: ``strongroom worker``
consumes the jobs ``ingest --bus`` queues (``Platform.queue``), and ``dead-letters`` lists
the ones given up on."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.common import HomeOpt, JsonOpt, emit, err, exits_on_error, say, settings_for
from strongroom.service import worker

__all__ = ["BusOpt", "StreamOpt", "dead_letters_command", "worker_command"]

StreamOpt = Annotated[
    str, typer.Option("--stream", envvar="STRONGROOM_BUS_STREAM", help="The job stream's name on the bus.")
]
BUSES = "sqlite:///path/bus.sqlite3, redis://host:6379/0 or kafka://broker:9092"
BusUrlOpt = Annotated[str, typer.Option("--bus", envvar="STRONGROOM_BUS_URL", help=f"The bus: {BUSES}.")]
BusOpt = Annotated[
    str | None, typer.Option("--bus", envvar="STRONGROOM_BUS_URL", help=f"Queue jobs for workers on this bus: {BUSES}.")
]


def worker_command(
    bus: BusUrlOpt,
    consumer: Annotated[str | None, typer.Option("--consumer", help="This worker's name (default: host-pid).")] = None,
    reclaim_idle_s: Annotated[
        float, typer.Option("--reclaim-idle-s", help="Take over a job another worker held this long without finishing.")
    ] = 60.0,
    max_attempts: Annotated[int, typer.Option("--max-attempts", help="Deliveries before a job is dead-lettered.")] = 3,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Stop when no job is waiting.")] = False,
    group: Annotated[
        str, typer.Option("--group", envvar="STRONGROOM_BUS_GROUP", help="The consumer group the workers share.")
    ] = "workers",
    stream: StreamOpt = "strongroom:ingest",
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="When stopped, print the counts as JSON.")] = False,
) -> None:
    """Consume ingestion jobs from the bus until stopped (SIGTERM or Ctrl-C: after the current job).
    Says on stderr when it starts and, when stopped, how many jobs were done, retried and dead-lettered."""
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    options: dict[str, float | str] = {"stream": stream, "group": group, "reclaim_idle_s": reclaim_idle_s,
                                       "max_attempts": max_attempts}  # fmt: skip
    with exits_on_error(2):  # the bus, the store or the audit log cannot be opened
        counts = worker.serve(settings_for(home), bus, name, stop=stop, until_idle=until_idle,
                              on_start=lambda url: say(f"worker {name} consuming {url}", err), **options)  # fmt: skip
    done, retry, dead = counts["done"], counts["retry"], counts["dead"]
    say(f"worker {name} stopped: {done} done, {retry} to retry, {dead} dead-lettered", err)
    if as_json:
        emit(counts, True)


def dead_letters_command(
    bus: BusUrlOpt,
    stream: StreamOpt = "strongroom:ingest",
    as_json: JsonOpt = False,
) -> None:
    """List the jobs that were given up on (after --max-attempts, or malformed), with their errors.
    Queue a fixed file again with `strongroom ingest FILE --bus URL`."""
    with exits_on_error(2):
        letters = worker.dead_letters(bus, stream)
    if as_json:
        emit({"dead_letters": letters}, True)
        return
    shown = [{**d, "file": Path(str(d["file"])).name or "(not a job)", "error": str(d["error"])[:200]} for d in letters]
    emit(shown, False, title="dead letters")
