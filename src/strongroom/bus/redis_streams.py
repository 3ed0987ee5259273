"""Ingestion jobs on a Redis Stream with one consumer group of workers.

- ``publish``: ``XADD`` to the stream (``job`` field holds the job's JSON).
- ``receive``: first ``XAUTOCLAIM`` an entry some worker has held for ``reclaim_idle_s``
  without acknowledging it (the worker died, or the job failed and waits for its retry),
  else ``XREADGROUP >`` a new one. Redis counts deliveries per entry: that count is the
  attempt number, so an entry that kills every worker that takes it still reaches
  ``max_attempts`` and goes to the dead letters instead of looping forever.
- ``ack``: ``XACK`` after the version is stored. ``dead_letter``: ``XADD`` to
  ``<stream>:dead`` with the error, then ``XACK``, in one transaction.

The last error of a job that waits for its retry is kept in the hash ``<stream>:errors``,
so its dead letter says why it failed and not only that it failed.
"""

from __future__ import annotations

from typing import Any

from strongroom.bus.base import Delivery, IngestJob
from strongroom.errors import BusUnavailable, ConfigError

__all__ = ["BusUnavailable", "RedisStreamsBus"]


class RedisStreamsBus:
    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        stream: str = "strongroom:ingest",
        group: str = "workers",
        reclaim_idle_s: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("the Redis bus needs the 'redis' package: pip install 'redis>=5'") from exc
        if max_attempts < 1 or reclaim_idle_s <= 0:
            raise ConfigError("the bus needs max_attempts >= 1 and reclaim_idle_s > 0")
        self.stream = stream
        self.dead = f"{stream}:dead"
        self.errors = f"{stream}:errors"
        self.group = group
        self.reclaim_idle_ms = int(reclaim_idle_s * 1000)
        self.max_attempts = int(max_attempts)
        self._where = url.split("@")[-1]  # never the password of redis://user:pw@host
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._redis: Any = redis.Redis.from_url(url, decode_responses=True, socket_timeout=30)
        self._call(self._ensure_group)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise BusUnavailable(
                f"cannot reach the Redis bus at {self._where} ({type(exc).__name__}: {exc}); check that Redis is up"
            ) from exc

    def _ensure_group(self) -> None:
        import redis

        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists already: fine
                raise

    def publish(self, job: IngestJob) -> str:
        return str(self._call(self._redis.xadd, self.stream, {"job": job.to_json()}))

    def receive(self, consumer: str, block_s: float) -> Delivery | None:
        return self._call(self._receive, consumer, block_s)  # type: ignore[no-any-return]

    def _receive(self, consumer: str, block_s: float) -> Delivery | None:
        _, claimed, *_ = self._redis.xautoclaim(
            self.stream, self.group, consumer, self.reclaim_idle_ms, start_id="0-0", count=1
        )
        if claimed:
            message_id, fields = claimed[0]
            pending = self._redis.xpending_range(self.stream, self.group, message_id, message_id, 1)
            attempt = int(pending[0]["times_delivered"]) if pending else 1
            return self._delivery(message_id, fields, attempt)
        got = self._redis.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=1, block=max(1, int(block_s * 1000))
        )
        if not got:
            return None
        message_id, fields = got[0][1][0]
        return self._delivery(message_id, fields, 1)

    @staticmethod
    def _delivery(message_id: str, fields: dict[str, str] | None, attempt: int) -> Delivery:
        raw = (fields or {}).get("job", "")
        try:
            job: IngestJob | None = IngestJob.from_json(raw)
        except ValueError:
            job = None
        return Delivery(message_id, job, attempt, raw)

    def ack(self, delivery: Delivery) -> None:
        def run() -> None:
            with self._redis.pipeline(transaction=True) as tx:
                tx.xack(self.stream, self.group, delivery.message_id)
                tx.hdel(self.errors, delivery.message_id)
                tx.execute()

        self._call(run)

    def retry_later(self, delivery: Delivery, error: str) -> None:
        self._call(self._redis.hset, self.errors, delivery.message_id, error[:2000])

    def last_error(self, message_id: str) -> str | None:
        value = self._call(self._redis.hget, self.errors, message_id)
        return str(value) if value is not None else None

    def dead_letter(self, delivery: Delivery, error: str) -> None:
        def run() -> None:
            with self._redis.pipeline(transaction=True) as tx:
                tx.xadd(
                    self.dead,
                    {
                        "job": delivery.raw,
                        "message_id": delivery.message_id,
                        "attempts": str(delivery.attempt),
                        "error": error[:2000],
                    },
                )
                tx.xack(self.stream, self.group, delivery.message_id)
                tx.hdel(self.errors, delivery.message_id)
                tx.execute()

        self._call(run)

    def dead_letters(self) -> list[dict[str, str]]:
        """Every dead letter (job JSON, message id, attempts, error), oldest first."""
        return [dict(fields) for _, fields in self._call(self._redis.xrange, self.dead)]

    def outstanding(self) -> int:
        for group in self._call(self._redis.xinfo_groups, self.stream):
            if group["name"] == self.group:
                return int(group["pending"]) + int(group["lag"] or 0)
        return 0

    def pending(self) -> list[dict[str, Any]]:
        """Entries delivered and not yet acknowledged: id, consumer, idle ms, deliveries."""
        return list(self._call(self._redis.xpending_range, self.stream, self.group, "-", "+", 1000))

    def close(self) -> None:
        self._redis.close()
