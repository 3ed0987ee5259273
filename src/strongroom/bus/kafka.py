"""Ingestion jobs on a Kafka topic with one consumer group of workers (confluent-kafka).

- ``publish``: produce the job's JSON (key: the job id) with ``acks=all`` and idempotence,
  and wait for the broker's acknowledgement, so a queued job survives a broker restart.
- ``receive``: poll the group's next message. Offsets are committed by hand, only when a
  delivery is settled: a worker that dies mid-job leaves its offset uncommitted, the group
  hands the partition to another worker after the session timeout, and that worker gets
  the job again. Versions are content-addressed, so a job that was stored just before the
  kill is found and skipped, never written twice.
- ``settle``: done commits the offset. Retry produces a copy of the job with ``attempt + 1``
  and the error in its headers, then commits the original. Dead produces the job with its
  error to ``<topic>.dead``, then commits.
- ``backlog``: the group's lag (messages past its committed offsets), the dead-letter
  topic, and the error headers of the retries in the lag, read by a consumer that never
  joins the group.

Kafka does not count deliveries the way Redis Streams does: a job whose processing kills
the worker process each time is delivered again with the same attempt number. Failures
the worker survives (a parse error, a store error) are counted and dead-lettered after
``max_attempts``.

A bus URL: ``kafka://broker1:9092,broker2:9092?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512``;
any query parameter is a librdkafka setting, and ``sasl.password`` comes from the
``STRONGROOM_KAFKA_PASSWORD`` environment variable, never from the URL.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from strongroom.bus.base import Backlog, DeadLetter, Delivery, Outcome, display_url, parse_job
from strongroom.bus.job import IngestJob
from strongroom.errors import BusUnavailable, ConfigError
from strongroom.types import frozen_meta

__all__ = ["KafkaBus", "kafka_settings"]

log = logging.getLogger("strongroom.bus.kafka")

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SECRET_KEYS = ("sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret")


def kafka_settings(url: str) -> dict[str, str | int | float | bool]:
    """librdkafka settings from a ``kafka://host:port[,host:port]?key=value`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ConfigError(f"not a Kafka bus URL: {display_url(url)!r}; use kafka://broker:9092")
    if "@" in parts.netloc:
        raise ConfigError(
            "put no credentials in the Kafka URL; set sasl.username in the query and the password "
            "in STRONGROOM_KAFKA_PASSWORD"
        )
    settings: dict[str, str | int | float | bool] = {"bootstrap.servers": parts.netloc}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _SECRET_KEYS:
            raise ConfigError(f"put no {key} in the Kafka URL; set STRONGROOM_KAFKA_PASSWORD instead")
        settings[key] = value
    if password := os.environ.get("STRONGROOM_KAFKA_PASSWORD"):
        settings["sasl.password"] = password
    return settings


def _header(headers: list[tuple[str, bytes | None]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return None


class KafkaBus:
    """The :class:`strongroom.bus.Bus` protocol on Kafka (see the module's notes)."""

    def __init__(
        self,
        url: str = "kafka://127.0.0.1:9092",
        *,
        stream: str = "strongroom.ingest",
        group: str = "workers",
        reclaim_idle_s: float = 60.0,
        max_attempts: int = 3,
        max_job_s: float = 1800.0,
        timeout_s: float = 30.0,
    ) -> None:
        try:
            import confluent_kafka
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "the Kafka bus needs the 'confluent-kafka' package: pip install 'strongroom[kafka]'"
            ) from exc
        if max_attempts < 1 or reclaim_idle_s <= 0:
            raise ConfigError("the bus needs max_attempts >= 1 and reclaim_idle_s > 0")
        self.topic = stream.replace(":", ".")  # Kafka topic names allow no colon
        if not _TOPIC.fullmatch(self.topic):
            raise ConfigError(f"{stream!r} cannot name a Kafka topic: use letters, digits, '.', '_' and '-'")
        self.dead = f"{self.topic}.dead"
        self.group = group
        self.max_attempts = int(max_attempts)
        self.timeout_s = timeout_s
        self._kafka = confluent_kafka
        self._settings = kafka_settings(url)
        self._where = str(self._settings["bootstrap.servers"])
        # a dead worker's partitions move to another worker after the session timeout; the
        # broker's default bounds are 6 s to 30 min
        self.reclaim_idle_s = float(reclaim_idle_s)
        self._session_ms = str(int(min(max(reclaim_idle_s, 6.0), 1800.0) * 1000))
        self._max_poll_ms = str(int(max(max_job_s, reclaim_idle_s) * 1000))
        self._producer = confluent_kafka.Producer(
            {**self._settings, "acks": "all", "enable.idempotence": True, "linger.ms": 0}
        )
        self._consumer: Any = None
        self._held: dict[str, Any] = {}  # message id -> the message, until it is committed
        self._check_reachable()

    # -- plumbing -------------------------------------------------------------------------

    def _unavailable(self, what: str, exc: object) -> BusUnavailable:
        return BusUnavailable(
            f"the Kafka bus at {self._where} failed to {what} ({exc}); check that the brokers are "
            "up and reachable and that this client may use the topic"
        )

    def _check_reachable(self) -> None:
        """Reach the brokers, and create the job and dead-letter topics if they are missing."""
        kafka = self._kafka
        try:
            existing = self._producer.list_topics(timeout=self.timeout_s).topics
        except kafka.KafkaException as exc:
            raise self._unavailable("answer", exc) from exc
        missing = [t for t in (self.topic, self.dead) if t not in existing]
        if not missing:
            return
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient(dict(self._settings))
        # -1: the broker's default partition count and replication factor
        futures = admin.create_topics([NewTopic(t, num_partitions=-1, replication_factor=-1) for t in missing])
        for topic, future in futures.items():
            try:
                future.result(self.timeout_s)
            except kafka.KafkaException as exc:
                if exc.args[0].code() != kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ConfigError(
                        f"the Kafka topic {topic!r} does not exist and this client cannot create it ({exc}); "
                        "ask the Kafka administrators to create it"
                    ) from exc

    def _produce(self, topic: str, key: str, value: str, headers: Mapping[str, str]) -> str:
        """Produce one message and wait for the broker's acknowledgement; returns its id."""
        result: dict[str, Any] = {}

        def delivered(error: Any, message: Any) -> None:
            result["error"], result["message"] = error, message

        try:
            self._producer.produce(
                topic,
                key=key.encode(),
                value=value.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
                on_delivery=delivered,
            )
            left = self._producer.flush(self.timeout_s)
        except (self._kafka.KafkaException, BufferError) as exc:
            raise self._unavailable("take a message", exc) from exc
        if left or "message" not in result:
            raise self._unavailable("acknowledge a message", f"no answer within {self.timeout_s:g}s")
        if result["error"] is not None:
            raise self._unavailable("store a message", result["error"])
        message = result["message"]
        return f"{message.topic()}/{message.partition()}/{message.offset()}"

    def _group_consumer(self) -> Any:
        if self._consumer is None:
            self._consumer = self._kafka.Consumer(
                {
                    **self._settings,
                    "group.id": self.group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": self._session_ms,
                    "max.poll.interval.ms": self._max_poll_ms,
                }
            )
            self._consumer.subscribe([self.topic])
        return self._consumer

    def _commit(self, delivery: Delivery) -> None:
        message = self._held.pop(delivery.message_id, None)
        if message is None:
            raise ConfigError(f"message {delivery.message_id} was not received by this bus (or is settled already)")
        try:
            self._group_consumer().commit(message=message, asynchronous=False)
        except self._kafka.KafkaException as exc:
            # A rebalance took the partition (or the broker is away): the job's outcome is
            # stored, and whoever gets the message again finds it stored and skips it.
            log.warning("could not commit %s (%s); it will be delivered again and store once", delivery.message_id, exc)

    # -- the Bus protocol -------------------------------------------------------------------

    def publish(self, job: IngestJob) -> str:
        return self._produce(self.topic, job.id, job.to_json(), {"attempt": "1"})

    def publish_raw(self, text: str) -> str:
        """Queue a message as it is, job or not (tools and tests use it for poison)."""
        return self._produce(self.topic, uuid.uuid4().hex, text, {"attempt": "1"})

    def receive(self, consumer: str, block_s: float) -> Delivery | None:
        group = self._group_consumer()
        try:
            message = group.poll(max(block_s, 0.0))
        except self._kafka.KafkaException as exc:
            raise self._unavailable("deliver a message", exc) from exc
        if message is None:
            return None
        if message.error() is not None:
            if message.error().code() == self._kafka.KafkaError._PARTITION_EOF:
                return None
            raise self._unavailable("deliver a message", message.error())
        message_id = _message_id(message)
        headers = message.headers()
        raw = (message.value() or b"").decode("utf-8", "replace")
        try:
            attempt = max(1, int(_header(headers, "attempt") or "1"))
        except ValueError:
            attempt = 1
        self._held[message_id] = message
        return Delivery(message_id, parse_job(raw), attempt, raw, _header(headers, "error"), consumer)

    def settle(self, delivery: Delivery, outcome: Outcome) -> None:
        if outcome.kind == "hold":  # the partition is this consumer's while it polls within max_job_s
            return
        key = delivery.job.id if delivery.job else delivery.message_id
        if outcome.kind == "retry":
            headers = {"attempt": str(delivery.attempt + 1), "error": outcome.error, "first_id": delivery.message_id}
            self._produce(self.topic, key, delivery.raw, headers)
        elif outcome.kind == "dead":
            headers = {"message_id": delivery.message_id, "attempts": str(delivery.attempt), "error": outcome.error}
            self._produce(self.dead, key, delivery.raw, headers)
        self._commit(delivery)

    def backlog(self) -> Backlog:
        """The group's lag, every dead letter, and the errors of retries not yet committed.

        Read by a consumer of its own that asks for the group's committed offsets and reads
        from them by hand: it never joins the group, so the workers see no rebalance."""
        kafka = self._kafka
        reader = kafka.Consumer(
            {**self._settings, "group.id": self.group, "enable.auto.commit": False, "enable.partition.eof": True}
        )
        try:
            outstanding, parts = 0, []
            for topic in (self.topic, self.dead):
                meta = reader.list_topics(topic, timeout=self.timeout_s).topics.get(topic)
                if meta is None or meta.error is not None:
                    continue
                if topic == self.dead:
                    parts += [kafka.TopicPartition(topic, p, kafka.OFFSET_BEGINNING) for p in meta.partitions]
                    continue
                committed = reader.committed([kafka.TopicPartition(topic, p) for p in meta.partitions],
                                             timeout=self.timeout_s)  # fmt: skip
                for tp in committed:
                    low, high = reader.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False)
                    start = tp.offset if tp.offset >= 0 else low
                    outstanding += high - start
                    if high > start:  # the unsettled messages: the retries among them carry their errors
                        parts.append(kafka.TopicPartition(topic, tp.partition, start))
            messages = self._read(reader, parts)
        except kafka.KafkaException as exc:
            raise self._unavailable("read the backlog", exc) from exc
        finally:
            reader.close()
        dead, errors = [], {}
        for message in messages:
            headers = message.headers()
            if message.topic() == self.dead:
                dead.append(
                    DeadLetter(
                        _header(headers, "message_id") or _message_id(message),
                        (message.value() or b"").decode("utf-8", "replace"),
                        _int(_header(headers, "attempts")),
                        _header(headers, "error") or "",
                    )
                )
            elif error := _header(headers, "error"):
                errors[_message_id(message)] = error
        return Backlog(outstanding, tuple(dead), frozen_meta(errors))

    def _read(self, reader: Any, parts: list[Any]) -> list[Any]:
        """Every message of ``parts`` (partitions with a start offset) up to its end, oldest first."""
        if not parts:
            return []
        kafka = self._kafka
        reader.assign(parts)
        ends = 0
        found: list[Any] = []
        while ends < len(parts):
            message = reader.poll(self.timeout_s)
            if message is None:
                break
            if message.error() is not None:
                if message.error().code() == kafka.KafkaError._PARTITION_EOF:
                    ends += 1
                    continue
                raise self._unavailable("read the backlog", message.error())
            found.append(message)
        found.sort(key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))
        return found

    def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()  # leaves the group at once: held jobs go to the other workers now
        self._producer.flush(self.timeout_s)


def _message_id(message: Any) -> str:
    return f"{message.topic()}/{message.partition()}/{message.offset()}"


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
