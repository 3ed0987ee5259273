"""The bus protocol and the values that cross it.

A worker's loop over any backend::

    while (delivery := bus.receive("worker-1", block_s=2.0)) is not None:
        try:
            ingest(delivery.job)
        except Exception as exc:
            bus.settle(delivery, Outcome.retry(str(exc)))
        else:
            bus.settle(delivery, Outcome.done())
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

from strongroom.bus.job import IngestJob
from strongroom.types import frozen_meta

__all__ = ["Backlog", "Bus", "DeadLetter", "Delivery", "Outcome", "display_url", "parse_job"]


def parse_job(raw: str) -> IngestJob | None:
    """The job a message holds, or None when it holds none (poison: it goes to the dead letters)."""
    try:
        return IngestJob.from_json(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class Delivery:
    """A message as a consumer received it. ``attempt`` is 1 on the first delivery;
    ``last_error`` is what the attempt before this one settled with, if it failed."""

    message_id: str
    job: IngestJob | None  # None: the message was not a job (it goes to the dead letters)
    attempt: int
    raw: str = ""
    last_error: str | None = None
    consumer: str = ""  # who holds it


@dataclass(frozen=True)
class Outcome:
    """What became of a delivery: ``done`` (settled for good), ``retry`` (deliver it again
    later, remembering ``error``), ``dead`` (give up: keep it with ``error`` in the dead
    letters) or ``hold`` (still working on it: keep it from other consumers for another
    ``reclaim_idle_s``, a heartbeat). Build one with :meth:`done`, :meth:`retry`,
    :meth:`dead` or :meth:`hold`."""

    kind: Literal["done", "retry", "dead", "hold"]
    error: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("done", "retry", "dead", "hold"):
            raise ValueError(f"an outcome is done, retry, dead or hold, not {self.kind!r}")

    @classmethod
    def done(cls) -> Outcome:
        return cls("done")

    @classmethod
    def retry(cls, error: str) -> Outcome:
        return cls("retry", error[:2000])

    @classmethod
    def dead(cls, error: str) -> Outcome:
        return cls("dead", error[:2000])

    @classmethod
    def hold(cls) -> Outcome:
        return cls("hold")


@dataclass(frozen=True)
class DeadLetter:
    """A message given up on: what was published (``raw``), its id, the deliveries it had
    and the error it was given up with."""

    message_id: str
    raw: str
    attempts: int
    error: str

    @property
    def job(self) -> IngestJob | None:
        return parse_job(self.raw)


@dataclass(frozen=True)
class Backlog:
    """What a stream holds now. ``outstanding``: messages not yet settled (waiting for a
    first delivery, held by a consumer, or due for a retry); ``dead_letters``: oldest first;
    ``last_errors``: message id -> the error of its last failed attempt, for outstanding
    messages that failed at least once."""

    outstanding: int
    dead_letters: tuple[DeadLetter, ...] = ()
    last_errors: Mapping[str, str] = field(default_factory=frozen_meta)


class Bus(Protocol):
    """At-least-once delivery of ingestion jobs to a group of consumers (workers).

    A message stays outstanding until a consumer settles it; one whose consumer died
    unsettled is delivered again (to any consumer of the group) after the backend's
    reclaim time. ``max_attempts`` is how many deliveries a job gets before the worker
    gives up on it; ``reclaim_idle_s`` how long a consumer may hold one without a sign of
    life (``Outcome.hold``) before it is given to another."""

    max_attempts: int
    reclaim_idle_s: float

    def publish(self, job: IngestJob) -> str:
        """Queue a job; returns the bus's message id."""
        ...

    def receive(self, consumer: str, block_s: float) -> Delivery | None:
        """The next message for ``consumer`` (one a dead consumer left behind, a retry or a
        new one), waiting up to ``block_s`` for one; None if none came."""
        ...

    def settle(self, delivery: Delivery, outcome: Outcome) -> None:
        """Say what became of a delivery: done, retry later, dead-letter, or still held (see
        :class:`Outcome`). Only the consumer holding it settles it; a late settle from one whose
        hold ran out changes nothing (except ``done``, which is always kept)."""
        ...

    def backlog(self) -> Backlog:
        """The stream's outstanding count, dead letters and the errors of jobs due for a retry."""
        ...

    def close(self) -> None: ...


#: query parameters that may carry a credential (redis ``password``, librdkafka ``sasl.password`` ...)
_SECRET_PARAMETER = re.compile(r"pass|secret|token|key|cred|auth", re.IGNORECASE)


def display_url(url: str) -> str:
    """A bus URL as it may be printed or logged: without its user and password, and without
    the query parameters that may hold a secret.

    >>> display_url("redis://worker:s3cret@cache:6379/0?password=s3cret&health_check_interval=5")
    'redis://cache:6379/0?health_check_interval=5'
    """
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "(a malformed bus URL)"
    if not parts.scheme or not url.startswith(f"{parts.scheme}://"):
        return "(a malformed bus URL)"
    kept = urlencode([(k, v) for k, v in query if not _SECRET_PARAMETER.search(k)])
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}" + (f"?{kept}" if kept else "")
