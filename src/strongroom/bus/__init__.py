"""Durable ingestion over a message bus: the CLI and the API publish jobs, workers consume them.

A job names one file the workers can read (a shared volume) and the ingestion options. A
worker acknowledges a job only after its version is stored, so a worker that dies mid-file
leaves the job pending, and another worker reclaims it. Versions are content-addressed, so
a job delivered twice stores once. After ``max_attempts`` deliveries a job goes to the
dead-letter stream with its last error, and the others go on.

Backends behind :class:`Bus`: :class:`strongroom.bus.redis_streams.RedisStreamsBus` (Redis
Streams with a consumer group) and :class:`strongroom.bus.kafka.KafkaBus` (a Kafka topic and
consumer group, offsets committed by hand). In-process ingestion (no bus) stays the embedded
default.
"""

from strongroom.bus.base import Bus, Delivery, IngestJob
from strongroom.errors import BusUnavailable, ConfigError

__all__ = ["Bus", "BusUnavailable", "Delivery", "IngestJob", "open_bus"]


def open_bus(url: str, **options: float | str) -> Bus:
    """A bus from its URL: ``redis://host:6379/0`` (Redis Streams) or ``kafka://broker:9092`` (Kafka)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from strongroom.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(url, **options)  # type: ignore[arg-type]
    if url.startswith("kafka://"):
        from strongroom.bus.kafka import KafkaBus

        return KafkaBus(url, **options)  # type: ignore[arg-type]
    raise ConfigError(
        f"unknown bus {url.split('://')[0]!r}; use redis://host:6379/0 (Redis Streams) or kafka://broker:9092 (Kafka)"
    )
