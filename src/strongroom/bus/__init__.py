"""Durable ingestion over a message bus: the CLI and the API publish jobs, workers consume them.

A job names one file the workers can read (a shared volume) and the ingestion options. A
worker settles a job as done only after its version is stored, so a worker that dies
mid-file leaves the job outstanding, and another worker takes it over. Versions are
content-addressed, so a job delivered twice stores once. After ``max_attempts`` deliveries
a job goes to the dead letters with its last error, and the others go on.

The :class:`Bus` protocol is four calls (``publish``, ``receive``, ``settle``, ``backlog``)
and ``close``. Its backends: :class:`strongroom.bus.local.SqliteBus` (a SQLite file, for
workers on one host and for tests), :class:`strongroom.bus.redis_streams.RedisStreamsBus`
(Redis Streams with a consumer group) and :class:`strongroom.bus.kafka.KafkaBus` (a Kafka
topic and consumer group, offsets committed by hand). In-process ingestion (no bus) stays
the embedded default. :mod:`strongroom.testing.bus_contract` is what every backend must do.
"""

import math

from strongroom.bus.base import Backlog, Bus, DeadLetter, Delivery, Outcome, display_url
from strongroom.bus.job import IngestJob
from strongroom.errors import BusUnavailable, ConfigError

__all__ = [
    "Backlog",
    "Bus",
    "BusUnavailable",
    "DeadLetter",
    "Delivery",
    "IngestJob",
    "Outcome",
    "display_url",
    "open_bus",
]

_KINDS = (
    "use sqlite:///path/to/bus.sqlite3 (a file, workers on one host), redis://host:6379/0 (Redis Streams) "
    "or kafka://broker:9092 (Kafka)"
)


def open_bus(url: str, **options: float | str) -> Bus:
    """A bus from its URL: ``sqlite:///path/bus.sqlite3``, ``redis://host:6379/0`` or
    ``kafka://broker:9092``. ``options``: the backend's ``stream``, ``group``,
    ``reclaim_idle_s`` and ``max_attempts``.

    >>> bus = open_bus("sqlite:///srv/strongroom/bus.sqlite3", stream="strongroom:ingest")  # doctest: +SKIP
    """
    hold = options.get("reclaim_idle_s", 60.0)
    if not isinstance(hold, int | float) or not 0 < hold < math.inf:  # nan and inf too: a hold must end
        raise ConfigError(f"reclaim_idle_s must be a number of seconds above 0, not {hold!r}")
    try:
        if url.startswith("sqlite://"):
            from strongroom.bus.local import SqliteBus

            return SqliteBus(url, **options)  # type: ignore[arg-type]
        if url.startswith(("redis://", "rediss://", "unix://")):
            from strongroom.bus.redis_streams import RedisStreamsBus

            return RedisStreamsBus(url, **options)  # type: ignore[arg-type]
        if url.startswith("kafka://"):
            from strongroom.bus.kafka import KafkaBus

            return KafkaBus(url, **options)  # type: ignore[arg-type]
    except ValueError as exc:  # a URL the client library cannot parse (a bad port, a stray bracket)
        raise ConfigError(f"bad bus URL {display_url(url)}: {exc}; {_KINDS}") from exc
    raise ConfigError(f"unknown bus {url.split('://')[0]!r}; {_KINDS}")
